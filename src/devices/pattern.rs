//! The `pattern` virtual camera: scrolling colour bars under a machine-readable strip.
//!
//! The strip is a public interface (docs/ARCHITECTURE.md, "The pattern's machine-readable strip"): the top ⌊height/30⌋ rows (at least 8, at
//! most the frame) hold 64 equal-width cells across the full width — the 32-bit frame
//! number, then the capture time in ms since the UNIX epoch modulo 2^32, most significant
//! bit first. A 1 is white (Y 235), a 0 black (Y 16), chroma neutral. A receiver samples
//! the luma at each cell's centre (threshold 128): [`read_strip`] does exactly that.
//!
//! Under the strip's left end, the A/V *marker block* is white on the first frame captured
//! in each wall-clock second (the instant the tone's marker starts) and black otherwise:
//! [`read_marker_luma`] reads it.
//!
//! The pattern is rendered at the track's own size (never cropped from a larger frame),
//! so the strip is always whole.

use std::time::Duration;

use std::sync::Arc;

use crate::constraints::MediaTrackSettings;
use crate::frame::{chroma_size, VideoFrame, NEUTRAL_CHROMA};
use crate::media::{
    frame_interval, video_settings, wall_clock_ms, MediaFrame, Pacer, Source, SourceError,
};

/// Luma of a 1 bit in the strip.
pub const STRIP_ONE: u8 = 235;
/// Luma of a 0 bit in the strip.
pub const STRIP_ZERO: u8 = 16;
/// Number of cells across the strip.
pub const STRIP_CELLS: u32 = 64;

/// What the strip of one frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripData {
    pub frame_number: u32,
    /// Capture time, ms since the UNIX epoch, modulo 2^32.
    pub capture_time_ms: u32,
}

impl StripData {
    /// Milliseconds from capture to `now_ms` (ms since the epoch), modulo-2^32 aware.
    pub fn age_ms(&self, now_ms: u64) -> u32 {
        (now_ms as u32).wrapping_sub(self.capture_time_ms)
    }
}

/// Rows the strip occupies in a frame of `height`.
pub fn strip_rows(height: u32) -> u32 {
    (height / 30).max(8).min(height)
}

/// The x range of strip cell `i` in a frame of `width`.
fn cell_span(i: u32, width: u32) -> (usize, usize) {
    let start = (i as u64 * width as u64 / STRIP_CELLS as u64) as usize;
    let end = ((i as u64 + 1) * width as u64 / STRIP_CELLS as u64) as usize;
    (start, end)
}

/// Reads the strip of a frame (ours, or decoded after a codec). `None` when the frame is
/// too small to carry one or a sampled cell is ambiguous (luma within 48 of the
/// threshold), which happens when the frame is not a pattern frame at all.
pub fn read_strip(frame: &VideoFrame) -> Option<StripData> {
    read_strip_luma(frame.y(), frame.width(), frame.height())
}

/// [`read_strip`] over a bare luma plane (`width` bytes a row), e.g. from a decoder.
pub fn read_strip_luma(y: &[u8], width: u32, height: u32) -> Option<StripData> {
    if width < STRIP_CELLS || height == 0 || y.len() < width as usize * height as usize {
        return None;
    }
    let row = (strip_rows(height) / 2) as usize * width as usize;
    let mut bits: u64 = 0;
    for i in 0..STRIP_CELLS {
        let (a, b) = cell_span(i, width);
        let luma = y[row + (a + b) / 2];
        if luma.abs_diff(128) < 48 {
            return None;
        }
        bits = (bits << 1) | u64::from(luma >= 128);
    }
    Some(StripData {
        frame_number: (bits >> 32) as u32,
        capture_time_ms: bits as u32,
    })
}

/// Cells of the strip the marker block spans (under cells 0–3).
pub const MARKER_CELLS: u32 = 4;

/// The marker block of a frame of `width` × `height`: its x range and its rows (the
/// strip's height, right under it); `None` when the frame cannot hold one.
fn marker_block(width: u32, height: u32) -> Option<((usize, usize), (usize, usize))> {
    let rows = strip_rows(height) as usize;
    if width < STRIP_CELLS || (height as usize) < 2 * rows {
        return None;
    }
    let end = (MARKER_CELLS as u64 * width as u64 / STRIP_CELLS as u64) as usize;
    Some(((0, end), (rows, 2 * rows)))
}

/// Whether a luma plane's marker block is lit: its centre pixel is at least 128. `None`
/// when the frame cannot hold the block or the sample is ambiguous (within 48 of 128).
pub fn read_marker_luma(y: &[u8], width: u32, height: u32) -> Option<bool> {
    let ((a, b), (top, bottom)) = marker_block(width, height)?;
    let at = (top + bottom) / 2 * width as usize + (a + b) / 2;
    let luma = *y.get(at)?;
    (luma.abs_diff(128) >= 48).then_some(luma >= 128)
}

/// BT.601 limited-range Y, U, V of the eight bars: white, yellow, cyan, green, magenta,
/// red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

/// Pixels the bars move per frame.
const SCROLL_PER_FRAME: u64 = 4;

/// Renders pattern frame `frame_number` at `width` × `height` with the strip saying
/// `frame_number` and `capture_time_ms`, its marker block dark.
pub fn render(width: u32, height: u32, frame_number: u32, capture_time_ms: u64) -> VideoFrame {
    render_marked(width, height, frame_number, capture_time_ms, false)
}

/// [`render`] with the marker block lit when `marker` (the first frame of a second).
pub fn render_marked(
    width: u32,
    height: u32,
    frame_number: u32,
    capture_time_ms: u64,
    marker: bool,
) -> VideoFrame {
    let mut frame = VideoFrame::black(width, height);
    let w = width as usize;
    let (cw, ch) = chroma_size(width, height);
    let (cw, ch) = (cw as usize, ch as usize);
    let offset = (frame_number as u64 * SCROLL_PER_FRAME % width as u64) as usize;
    let bar_at = |x: usize| BARS[((x + offset) % w) * BARS.len() / w];
    let strip = strip_rows(height) as usize;
    let (y_plane, u_plane, v_plane) = frame.planes_mut();

    // The bars are vertical: render one row of each plane and copy it down.
    let (first, rest) = y_plane.split_at_mut(w);
    for (x, px) in first.iter_mut().enumerate() {
        *px = bar_at(x).0;
    }
    for row in rest.chunks_exact_mut(w) {
        row.copy_from_slice(first);
    }
    for (plane, pick) in [(&mut *u_plane, 1usize), (&mut *v_plane, 2usize)] {
        let (first, rest) = plane.split_at_mut(cw);
        for (x, px) in first.iter_mut().enumerate() {
            let (_, u, v) = bar_at((x * 2).min(w - 1));
            *px = if pick == 1 { u } else { v };
        }
        for row in rest.chunks_exact_mut(cw) {
            row.copy_from_slice(first);
        }
    }

    // The strip: one row of cells, copied down; neutral chroma under it.
    let bits = ((frame_number as u64) << 32) | (capture_time_ms & 0xffff_ffff);
    {
        let (first, rest) = y_plane.split_at_mut(w);
        for i in 0..STRIP_CELLS {
            let bit = bits >> (63 - i) & 1;
            let (a, b) = cell_span(i, width);
            first[a..b].fill(if bit == 1 { STRIP_ONE } else { STRIP_ZERO });
        }
        for row in rest.chunks_exact_mut(w).take(strip - 1) {
            row.copy_from_slice(first);
        }
    }
    let chroma_rows = strip.div_ceil(2).min(ch);
    u_plane[..chroma_rows * cw].fill(NEUTRAL_CHROMA);
    v_plane[..chroma_rows * cw].fill(NEUTRAL_CHROMA);
    // The marker block: white or black under the strip's first cells, neutral chroma.
    if let Some(((a, b), (top, bottom))) = marker_block(width, height) {
        let luma = if marker { STRIP_ONE } else { STRIP_ZERO };
        for row in top..bottom {
            y_plane[row * w + a..row * w + b].fill(luma);
        }
        let (ca, cb) = (a / 2, b.div_ceil(2).min(cw));
        for row in top / 2..bottom.div_ceil(2).min(ch) {
            u_plane[row * cw + ca..row * cw + cb].fill(NEUTRAL_CHROMA);
            v_plane[row * cw + ca..row * cw + cb].fill(NEUTRAL_CHROMA);
        }
    }
    frame
}

/// The pattern camera: renders at the track's settings, paced in real time; the frame
/// counter runs on across reconfiguration.
pub struct PatternSource {
    width: u32,
    height: u32,
    frame_number: u32,
    pacer: Pacer,
    /// The wall-clock second of the last frame (the marker lights on a new one).
    last_second: Option<u64>,
}

impl PatternSource {
    pub fn open(settings: &MediaTrackSettings) -> Result<Self, SourceError> {
        let (width, height, fps) = video_settings(settings)?;
        Ok(PatternSource {
            width,
            height,
            frame_number: 0,
            pacer: Pacer::new(frame_interval(fps)),
            last_second: None,
        })
    }
}

impl Source for PatternSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        let timestamp: Duration = self.pacer.wait();
        let now = wall_clock_ms();
        let second = now / 1000;
        let marker = self.last_second.is_some_and(|s| s != second);
        self.last_second = Some(second);
        let frame = render_marked(self.width, self.height, self.frame_number, now, marker)
            .with_times(timestamp, now);
        self.frame_number = self.frame_number.wrapping_add(1);
        Ok(MediaFrame::Video(Arc::new(frame)))
    }

    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError> {
        let (width, height, fps) = video_settings(settings)?;
        self.width = width;
        self.height = height;
        self.pacer.set_interval(frame_interval(fps));
        Ok(())
    }

    /// A track moving to this source keeps its frame counter running: the next number
    /// after the last pattern frame it delivered.
    fn continue_after(&mut self, last: &MediaFrame) {
        if let MediaFrame::Video(frame) = last {
            if let Some(strip) = read_strip(frame) {
                self.frame_number = strip.frame_number.wrapping_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_round_trips_at_many_sizes() {
        for (w, h) in [
            (64, 8),
            (320, 240),
            (640, 480),
            (1280, 720),
            (1920, 1080),
            (333, 101),
        ] {
            for (n, t) in [
                (0u32, 0u64),
                (1, 1),
                (0xdead_beef, 1_700_000_000_123),
                (u32::MAX, u64::MAX),
            ] {
                let f = render(w, h, n, t);
                let s = read_strip(&f).unwrap_or_else(|| panic!("{w}x{h}"));
                assert_eq!(s.frame_number, n, "{w}x{h}");
                assert_eq!(s.capture_time_ms, t as u32, "{w}x{h}");
            }
        }
    }

    #[test]
    fn strip_layout_is_the_public_one() {
        let (w, h) = (640u32, 480u32);
        let f = render(w, h, 1, 0);
        assert_eq!(strip_rows(h), 16);
        assert_eq!(strip_rows(120), 8);
        // Frame number 1: cell 31 is white, cell 30 black, in every strip row.
        let cell = w as usize / 64;
        for row in 0..16usize {
            assert_eq!(f.y()[row * w as usize + 31 * cell + cell / 2], STRIP_ONE);
            assert_eq!(f.y()[row * w as usize + 30 * cell + cell / 2], STRIP_ZERO);
        }
        // Chroma under the strip is neutral.
        assert!(f.u()[..8 * 320].iter().all(|&u| u == NEUTRAL_CHROMA));
        // Below the strip: bars, not black.
        assert_ne!(
            f.y()[20 * w as usize..21 * w as usize].iter().min(),
            f.y()[20 * w as usize..21 * w as usize].iter().max()
        );
    }

    #[test]
    fn not_a_pattern_frame_reads_as_none() {
        let mut grey = VideoFrame::black(640, 480);
        grey.planes_mut().0.fill(128);
        assert!(read_strip(&grey).is_none());
        assert!(read_strip(&VideoFrame::black(32, 32)).is_none());
    }

    #[test]
    fn bars_move() {
        let a = render(640, 480, 0, 0);
        let b = render(640, 480, 1, 0);
        let row = 100 * 640;
        assert_ne!(a.y()[row..row + 640], b.y()[row..row + 640]);
    }

    #[test]
    fn the_marker_block_reads_back_and_leaves_the_strip_alone() {
        for (w, h) in [(64, 16), (320, 240), (640, 480), (1280, 720), (333, 101)] {
            let lit = render_marked(w, h, 7, 1_700_000_000_000, true);
            let dark = render(w, h, 7, 1_700_000_000_000);
            assert_eq!(read_marker_luma(lit.y(), w, h), Some(true), "{w}x{h}");
            assert_eq!(read_marker_luma(dark.y(), w, h), Some(false), "{w}x{h}");
            assert_eq!(read_strip(&lit), read_strip(&dark), "{w}x{h}");
        }
        // Too small to hold it.
        assert_eq!(read_marker_luma(render(64, 8, 0, 0).y(), 64, 8), None);
        // 640x480: cells 0-3 are x 0..40, rows 16..32.
        let f = render_marked(640, 480, 0, 0, true);
        assert_eq!(f.y()[24 * 640 + 20], STRIP_ONE);
        assert_eq!(render(640, 480, 0, 0).y()[24 * 640 + 20], STRIP_ZERO);
        // Outside it (x 40, row 32): the bars, as without the marker.
        let plain = render(640, 480, 0, 0);
        assert_eq!(f.y()[24 * 640 + 40], plain.y()[24 * 640 + 40]);
        assert_eq!(f.y()[32 * 640 + 20], plain.y()[32 * 640 + 20]);
    }

    #[test]
    fn age_wraps() {
        let s = StripData {
            frame_number: 0,
            capture_time_ms: u32::MAX - 9,
        };
        assert_eq!(s.age_ms(1u64 << 32), 10);
    }
}
