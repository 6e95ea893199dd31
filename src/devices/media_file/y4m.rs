//! Y4M video files: the parser that checks a file whole when it is opened, the looped
//! [`Y4mSource`] played at the track's settings, and the [`Y4mWriter`] `usermedia capture`
//! records with. Every problem with a file is found at open and reported naming it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::open_error;
use crate::constraints::MediaTrackSettings;
use crate::frame::{i420_len, ModeAdapter, VideoFrame};
use crate::media::{
    frame_interval, video_settings, wall_clock_ms, MediaFrame, Pacer, Source, SourceError,
};

/// Why a Y4M file cannot be played: unreadable, or not a Y4M file we support.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not a Y4M file (no YUV4MPEG2 signature)")]
    NotY4m,
    #[error("bad frame rate {0:?}")]
    BadFrameRate(String),
    #[error("colour space C{colour} has {bits} bits per sample; only 8-bit 4:2:0 is supported")]
    DeepColour { colour: String, bits: String },
    #[error("colour space C{0} is not supported (only 4:2:0)")]
    ColourSpace(String),
    #[error("interlaced Y4M is not supported")]
    Interlaced,
    #[error("header lacks W (width) or H (height)")]
    NoSize,
    #[error("invalid size {width}x{height}")]
    InvalidSize { width: u32, height: u32 },
    /// `what`: the header, or frame N's header.
    #[error("{what}: no line end within {MAX_HEADER} bytes (truncated or not Y4M)")]
    NoLineEnd { what: String },
    #[error("{what} is not text")]
    NotText {
        what: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("frame {frame}: expected FRAME at byte {offset}, found {found:?}")]
    NoFrameMarker {
        frame: usize,
        offset: u64,
        found: String,
    },
    #[error("truncated: frame {frame} has {have} of {need} bytes")]
    Truncated { frame: usize, have: u64, need: u64 },
    #[error("no frames")]
    NoFrames,
}

/// What a Y4M file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Y4mInfo {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Byte offset of each frame's pixel data.
    pub frame_offsets: Vec<u64>,
}

/// Longest header line accepted.
const MAX_HEADER: usize = 1024;

/// Reads and checks a Y4M file: the header (4:2:0 only), then every frame marker and
/// that every frame is complete.
pub fn probe_y4m(path: &Path) -> Result<Y4mInfo, SourceError> {
    let file = File::open(path).map_err(|e| open_error(path, Y4mError::Io(e)))?;
    let file_len = file
        .metadata()
        .map_err(|e| open_error(path, Y4mError::Io(e)))?
        .len();
    let mut reader = BufReader::new(file);
    let header = read_line(&mut reader, path, "header")?;
    let mut params = header.split(' ');
    if params.next() != Some("YUV4MPEG2") {
        return Err(open_error(path, Y4mError::NotY4m));
    }
    let (mut width, mut height, mut frame_rate) = (None, None, None);
    for p in params.filter(|p| !p.is_empty()) {
        // The tag is the parameter's first character, which need not be ASCII (nor one
        // byte long) in a file that is not Y4M.
        let mut chars = p.chars();
        let tag = chars.next().map_or(0, |c| c.len_utf8());
        let (tag, value) = p.split_at(tag);
        match tag {
            "W" => width = value.parse::<u32>().ok(),
            "H" => height = value.parse::<u32>().ok(),
            "F" => {
                let (n, d) = value.split_once(':').unwrap_or((value, "1"));
                frame_rate = match (n.parse::<f64>(), d.parse::<f64>()) {
                    (Ok(n), Ok(d)) if n > 0.0 && d > 0.0 => Some(n / d),
                    _ => None,
                };
                if frame_rate.is_none() {
                    return Err(open_error(path, Y4mError::BadFrameRate(value.into())));
                }
            }
            "C" if value.starts_with("420p")
                && value.len() > 4
                && value[4..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(open_error(
                    path,
                    Y4mError::DeepColour {
                        colour: value.into(),
                        bits: value[4..].into(),
                    },
                ))
            }
            "C" if !value.starts_with("420") => {
                return Err(open_error(path, Y4mError::ColourSpace(value.into())))
            }
            "I" if value != "p" && value != "?" => {
                return Err(open_error(path, Y4mError::Interlaced))
            }
            _ => {}
        }
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err(open_error(path, Y4mError::NoSize));
    };
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(open_error(path, Y4mError::InvalidSize { width, height }));
    }
    let frame_rate = frame_rate.unwrap_or(25.0);
    let frame_len = i420_len(width, height) as u64;
    let mut offset = header.len() as u64 + 1;
    let mut frame_offsets = Vec::new();
    while offset < file_len {
        reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| open_error(path, Y4mError::Io(e)))?;
        let n = frame_offsets.len();
        let marker = read_line(&mut reader, path, &format!("frame {n} header"))?;
        if !marker.starts_with("FRAME") {
            return Err(open_error(
                path,
                Y4mError::NoFrameMarker {
                    frame: n,
                    offset,
                    found: truncate(&marker),
                },
            ));
        }
        let data = offset + marker.len() as u64 + 1;
        if data + frame_len > file_len {
            return Err(open_error(
                path,
                Y4mError::Truncated {
                    frame: n,
                    have: file_len.saturating_sub(data),
                    need: frame_len,
                },
            ));
        }
        frame_offsets.push(data);
        offset = data + frame_len;
    }
    if frame_offsets.is_empty() {
        return Err(open_error(path, Y4mError::NoFrames));
    }
    Ok(Y4mInfo {
        width,
        height,
        frame_rate,
        frame_offsets,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(16).collect()
}

/// Reads one `\n`-terminated ASCII line of at most [`MAX_HEADER`] bytes.
fn read_line(reader: &mut impl BufRead, path: &Path, what: &str) -> Result<String, SourceError> {
    let mut buf = Vec::new();
    reader
        .take(MAX_HEADER as u64)
        .read_until(b'\n', &mut buf)
        .map_err(|e| open_error(path, Y4mError::Io(e)))?;
    if buf.last() != Some(&b'\n') {
        return Err(open_error(path, Y4mError::NoLineEnd { what: what.into() }));
    }
    buf.pop();
    String::from_utf8(buf).map_err(|source| {
        open_error(
            path,
            Y4mError::NotText {
                what: what.into(),
                source,
            },
        )
    })
}

/// A Y4M file played in a loop. The file's frames are played at the file's own rate
/// (repeated when the track asks for more: a 25 fps clip on a 30 fps mode), and those
/// "native" frames go through the same [`ModeAdapter`] as a camera's: frame-rate
/// decimation to the track's rate, then crop-and-scale to its size. A frame the decimator
/// drops is never read.
pub struct Y4mSource {
    path: PathBuf,
    file: File,
    info: Y4mInfo,
    /// Position in the file, in file frames.
    position: f64,
    /// File frames advanced per native frame (1, or less when frames are repeated).
    step: f64,
    adapter: ModeAdapter,
    pacer: Pacer,
}

/// The rate the file is played at for a track at `track_rate`, and the file frames to
/// advance per played frame.
fn native_rate(file_rate: f64, track_rate: f64) -> (f64, f64) {
    let rate = file_rate.max(track_rate);
    (rate, file_rate / rate)
}

impl Y4mSource {
    pub fn open(path: &Path, settings: &MediaTrackSettings) -> Result<Self, SourceError> {
        let (width, height, frame_rate) = video_settings(settings)?;
        let info = probe_y4m(path)?;
        let file = File::open(path).map_err(|e| open_error(path, Y4mError::Io(e)))?;
        let (rate, step) = native_rate(info.frame_rate, frame_rate);
        Ok(Y4mSource {
            path: path.to_owned(),
            file,
            info,
            position: 0.0,
            step,
            adapter: ModeAdapter::new(width, height, frame_rate),
            pacer: Pacer::new(frame_interval(rate)),
        })
    }

    fn read_frame(&mut self, index: usize) -> Result<VideoFrame, SourceError> {
        let gone = |e: std::io::Error| SourceError::lost(self.path.display().to_string(), e);
        let len = i420_len(self.info.width, self.info.height);
        let mut data = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(self.info.frame_offsets[index]))
            .map_err(gone)?;
        self.file.read_exact(&mut data).map_err(gone)?;
        VideoFrame::from_i420(self.info.width, self.info.height, data)
            .map_err(|e| SourceError::lost(self.path.display().to_string(), e))
    }
}

impl Source for Y4mSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        let count = self.info.frame_offsets.len();
        loop {
            let timestamp = self.pacer.wait();
            let index = self.position as usize % count;
            self.position = (self.position + self.step) % count as f64;
            if !self.adapter.keep(timestamp) {
                continue;
            }
            let native = self.read_frame(index)?;
            let frame = self
                .adapter
                .fit(native)
                .map_err(|e| SourceError::lost(self.path.display().to_string(), e))?
                .with_times(timestamp, wall_clock_ms());
            return Ok(MediaFrame::Video(Arc::new(frame)));
        }
    }

    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError> {
        let (width, height, frame_rate) = video_settings(settings)?;
        let (rate, step) = native_rate(self.info.frame_rate, frame_rate);
        self.step = step;
        self.adapter.set_target(width, height, frame_rate);
        self.pacer.set_interval(frame_interval(rate));
        Ok(())
    }
}

/// Writes I420 frames as a Y4M file (what `usermedia capture` produces).
pub struct Y4mWriter<W: std::io::Write> {
    out: W,
    width: u32,
    height: u32,
}

impl<W: std::io::Write> Y4mWriter<W> {
    pub fn new(mut out: W, width: u32, height: u32, frame_rate: f64) -> std::io::Result<Self> {
        let (num, den) = if (frame_rate - frame_rate.round()).abs() < 1e-9 {
            (frame_rate.round() as u64, 1)
        } else {
            ((frame_rate * 1000.0).round() as u64, 1000)
        };
        writeln!(
            out,
            "YUV4MPEG2 W{width} H{height} F{num}:{den} Ip A1:1 C420jpeg"
        )?;
        Ok(Y4mWriter { out, width, height })
    }

    /// Appends a frame; it must have the header's size.
    pub fn write(&mut self, frame: &VideoFrame) -> std::io::Result<()> {
        if (frame.width(), frame.height()) != (self.width, self.height) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "frame is {}x{}, the file {}x{}",
                    frame.width(),
                    frame.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(frame.data())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::{read_strip, render};
    use std::io::Write;

    fn settings(w: u32, h: u32, fps: f64) -> MediaTrackSettings {
        MediaTrackSettings {
            width: Some(w),
            height: Some(h),
            frame_rate: Some(fps),
            ..Default::default()
        }
    }

    fn write_y4m(frames: u32) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
        let mut w = Y4mWriter::new(f.reopen().unwrap(), 640, 480, 30.0).unwrap();
        for n in 0..frames {
            w.write(&render(640, 480, n, 0)).unwrap();
        }
        w.finish().unwrap();
        f
    }

    #[test]
    fn y4m_round_trip_and_scaling() {
        let f = write_y4m(3);
        let info = probe_y4m(f.path()).unwrap();
        assert_eq!((info.width, info.height, info.frame_rate), (640, 480, 30.0));
        assert_eq!(info.frame_offsets.len(), 3);
        let mut src = Y4mSource::open(f.path(), &settings(640, 480, 30.0)).unwrap();
        for expected in [0, 1, 2, 0, 1] {
            let MediaFrame::Video(frame) = src.next_frame().unwrap() else {
                panic!()
            };
            assert_eq!(read_strip(&frame).unwrap().frame_number, expected);
        }
        // Halved, the strip (16 rows → 8) stays readable.
        let mut small = Y4mSource::open(f.path(), &settings(320, 240, 15.0)).unwrap();
        let MediaFrame::Video(a) = small.next_frame().unwrap() else {
            panic!()
        };
        let MediaFrame::Video(b) = small.next_frame().unwrap() else {
            panic!()
        };
        assert_eq!((a.width(), a.height()), (320, 240));
        // 30 fps file at 15 fps: every other file frame.
        assert_eq!(read_strip(&a).unwrap().frame_number, 0);
        assert_eq!(read_strip(&b).unwrap().frame_number, 2);
    }

    /// Found by fuzzing (`fuzz/regressions/y4m/`): a header parameter starting with a
    /// character of more than one byte split inside it (a panic, not an error).
    #[test]
    fn a_header_parameter_with_a_multibyte_tag_is_not_a_panic() {
        let mut f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
        f.write_all(b"YUV4MPEG2 W2 H2 \xcd\xbd8 F30:1\nFRAME\n\0\0\0\0\0\0")
            .unwrap();
        let info = probe_y4m(f.path()).unwrap();
        assert_eq!(
            (info.width, info.height, info.frame_offsets.len()),
            (2, 2, 1)
        );
        let found =
            b"YUV4MPEG2 GFH  \xcd\xbd8.YUV4F  388.0:1 Ip  H90:1 Ip A0:1 C420 W8 H9\x000eg\n]";
        let m = y4m_error(found);
        assert!(m.contains("lacks W (width) or H (height)"), "{m}");
    }

    fn y4m_error(bytes: &[u8]) -> String {
        let mut f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
        f.write_all(bytes).unwrap();
        match probe_y4m(f.path()) {
            Err(e @ SourceError::CannotOpen { .. }) => {
                let m = e.to_string();
                assert!(m.contains(&f.path().display().to_string()), "{m}");
                m
            }
            other => panic!("expected an open error, got {other:?}"),
        }
    }

    #[test]
    fn bad_y4m_files_are_clear_errors() {
        assert!(y4m_error(b"garbage that is not y4m\n").contains("not a Y4M"));
        assert!(y4m_error(b"").contains("no line end"));
        assert!(y4m_error(b"YUV4MPEG2 W4 H4 F30:1 C444\n").contains("4:2:0"));
        let deep = y4m_error(b"YUV4MPEG2 W4 H4 F30:1 C420p10\nFRAME\n");
        assert!(
            deep.contains("C420p10") && deep.contains("10 bits"),
            "{deep}"
        );
        // 8-bit 4:2:0 variants are fine.
        let mut jpeg = b"YUV4MPEG2 W2 H2 F30:1 C420jpeg\nFRAME\n".to_vec();
        jpeg.extend_from_slice(&[0; 6]);
        let f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
        std::fs::write(f.path(), &jpeg).unwrap();
        assert!(probe_y4m(f.path()).is_ok());
        assert!(y4m_error(b"YUV4MPEG2 H4 F30:1\n").contains("W (width)"));
        assert!(y4m_error(b"YUV4MPEG2 W4 H4 F30:1\n").contains("no frames"));
        assert!(y4m_error(b"YUV4MPEG2 W4 H4 F30:1\nFRAME\n0123").contains("truncated"));
        assert!(y4m_error(b"YUV4MPEG2 W4 H4 F30:0\n").contains("frame rate"));
        let mut ok_then_junk = b"YUV4MPEG2 W2 H2\nFRAME\n".to_vec();
        ok_then_junk.extend_from_slice(&[0; 6]);
        ok_then_junk.extend_from_slice(b"JUNK!!\n");
        assert!(y4m_error(&ok_then_junk).contains("frame 1"));
        let missing = probe_y4m(Path::new("/nonexistent/clip.y4m")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/clip.y4m"));
    }
}
