//! What a received video track carried (pure): frames, rate and size, and — when the
//! frames carry the pattern's strip — skipped, repeated and reordered frames, freezes and
//! latency ([`QualityAnalyzer`]); without the strip, freezes from arrival times. Also
//! where the pattern's A/V marker block lit, for the A/V offset.

use serde::Serialize;

use super::arrival::ArrivalAnalyzer;
use crate::devices::pattern::{read_marker_luma, read_strip_luma};
use crate::media::{Freezes, Latency, QualityAnalyzer, StripFrame};

/// Where a video report's counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountSource {
    /// The pattern's strip on the frames.
    Strip,
    /// Arrival times only (the frames carry no strip).
    Arrival,
}

/// Video received so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoReport {
    /// Frames decoded.
    pub frames: u64,
    /// Frames decoded per second, first to last.
    pub fps: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub source: CountSource,
    /// Frames whose strip read (strip source only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_with_strip: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_skipped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_repeated: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_reordered: Option<u64>,
    pub freezes: Freezes,
    /// Strip capture time to decode, when both ends share a clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    /// Marker blocks seen lit.
    pub markers: u64,
}

/// Reads a video track's frames as they are decoded.
#[derive(Debug, Clone, Default)]
pub struct VideoAnalysis {
    quality: QualityAnalyzer,
    arrival: ArrivalAnalyzer,
    frames: u64,
    strip_frames: u64,
    first_ms: Option<u64>,
    last_ms: u64,
    size: Option<(u32, u32)>,
    /// The strip frame number of the last lit marker (a repeated frame is no new marker).
    last_marker: Option<u32>,
    markers: u64,
}

impl VideoAnalysis {
    pub fn new() -> Self {
        VideoAnalysis::default()
    }

    /// Takes a decoded frame's luma plane (`width` bytes a row), decoded at `decoded_ms`
    /// (wall clock). Returns when the instant its marker block stands for was presented
    /// (wall-clock ms) if it is a new lit marker: its decode time less how far past its
    /// second the strip says it was captured.
    pub fn push(&mut self, y: &[u8], width: u32, height: u32, decoded_ms: u64) -> Option<f64> {
        self.frames += 1;
        self.first_ms.get_or_insert(decoded_ms);
        self.last_ms = self.last_ms.max(decoded_ms);
        self.size = Some((width, height));
        self.arrival.push(decoded_ms);
        let strip = read_strip_luma(y, width, height);
        if let Some(s) = strip {
            self.strip_frames += 1;
            self.quality.push(StripFrame {
                number: s.frame_number,
                capture_ms: s.capture_time_ms,
                decoded_ms,
            });
        }
        if read_marker_luma(y, width, height) != Some(true) {
            return None;
        }
        match strip {
            Some(s) if self.last_marker == Some(s.frame_number) => None,
            Some(s) => {
                self.last_marker = Some(s.frame_number);
                self.markers += 1;
                // The capture time on our clock's full scale, and its place in its second.
                let age = (decoded_ms as u32).wrapping_sub(s.capture_time_ms) as i32;
                let captured = decoded_ms as i64 - i64::from(age);
                let past_second = captured.rem_euclid(1000);
                Some(decoded_ms as f64 - past_second as f64)
            }
            None => {
                self.markers += 1;
                Some(decoded_ms as f64)
            }
        }
    }

    /// The report at `now_ms` (a freeze still going on then counts).
    pub fn report(&self, now_ms: u64) -> VideoReport {
        let span_ms = self.first_ms.map_or(0, |f| self.last_ms - f);
        let fps = (self.frames > 1 && span_ms > 0)
            .then(|| ((self.frames - 1) as f64 * 1000.0 / span_ms as f64 * 100.0).round() / 100.0);
        let (width, height) = (self.size.map(|s| s.0), self.size.map(|s| s.1));
        let base = VideoReport {
            frames: self.frames,
            fps,
            width,
            height,
            source: CountSource::Arrival,
            frames_with_strip: None,
            frames_skipped: None,
            frames_repeated: None,
            frames_reordered: None,
            freezes: self.arrival.freezes(now_ms),
            latency_ms: None,
            markers: self.markers,
        };
        if self.strip_frames == 0 {
            return base;
        }
        let q = self.quality.report(now_ms);
        VideoReport {
            source: CountSource::Strip,
            frames_with_strip: Some(self.strip_frames),
            frames_skipped: Some(q.frames_skipped),
            frames_repeated: Some(q.frames_repeated),
            frames_reordered: Some(q.frames_reordered),
            freezes: q.freezes,
            latency_ms: q.latency_ms,
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::render_marked;
    use crate::frame::VideoFrame;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn strip_frames_are_counted_from_the_strip_and_markers_found() {
        let mut v = VideoAnalysis::new();
        let mut marker = None;
        for n in 0..60u32 {
            // Captured 33 ms apart from T0 + 940, decoded 20 ms later; frame 2 is the
            // first of second T0 + 1000 (captured at T0 + 1006).
            let captured = T0 + 940 + u64::from(n) * 33;
            let f = render_marked(320, 240, n, captured, n == 2);
            if let Some(m) = v.push(f.y(), 320, 240, captured + 20) {
                assert!(marker.is_none());
                marker = Some(m);
            }
        }
        assert_eq!(marker, Some((T0 + 1000 + 20) as f64));
        let r = v.report(T0 + 940 + 59 * 33 + 20);
        assert_eq!(r.source, CountSource::Strip);
        assert_eq!(
            (r.frames, r.frames_skipped, r.frames_repeated),
            (60, Some(0), Some(0))
        );
        assert_eq!(r.latency_ms.unwrap().p50, 20);
        assert_eq!((r.width, r.height), (Some(320), Some(240)));
        assert!((r.fps.unwrap() - 30.3).abs() < 0.1, "{:?}", r.fps);
        assert_eq!(r.markers, 1);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["source"], "strip");
        assert_eq!(json["freezes"]["count"], 0);
    }

    #[test]
    fn frames_without_the_strip_count_from_arrival() {
        let mut v = VideoAnalysis::new();
        let grey = {
            let mut f = VideoFrame::black(320, 240);
            f.planes_mut().0.fill(128);
            f
        };
        for k in 0..30u64 {
            v.push(grey.y(), 320, 240, T0 + k * 33);
        }
        v.push(grey.y(), 320, 240, T0 + 29 * 33 + 700);
        let r = v.report(T0 + 29 * 33 + 700);
        assert_eq!(r.source, CountSource::Arrival);
        assert_eq!(r.freezes.count, 1);
        assert_eq!(r.frames_skipped, None);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["source"], "arrival");
        assert!(json.get("frames_skipped").is_none());
    }
}
