//! Recording what a receiver got, as playable files, without re-encoding: the encoded
//! units of its tracks (a remote track's `subscribe_encoded`) written by [`Recorder`] into
//! one MP4 file ([`mp4`]: H.264 or VP8 video, Opus audio), each track on a thread of its
//! own, finalized by [`Recorder::finish`] — on `--seconds`, Ctrl-C or the stream's end alike.

mod mp4;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use mp4::{Mp4Recording, RecordCodec};

use crate::encode::EncodedUnit;
use crate::sync::lock;

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be created or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The container refused a unit or could not be finalized.
    #[error("{}: cannot write the MP4 file: {message}", path.display())]
    Mux { path: PathBuf, message: String },
    /// A thread could not be started.
    #[error("cannot start a recording thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// How often a waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub path: PathBuf,
    /// Samples written, every track.
    pub samples: u64,
}

/// One file recording the encoded units of a receiver's tracks as they arrive.
pub struct Recorder {
    file: Arc<Mutex<Option<Mp4Recording>>>,
    failed: Arc<Mutex<Option<RecordError>>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Recorder {
    /// Creates the file at `path`.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        Ok(Recorder {
            file: Arc::new(Mutex::new(Some(Mp4Recording::create(path)?))),
            failed: Arc::new(Mutex::new(None)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Records `units` (one track's, of `codec`) until they end or [`finish`](Self::finish).
    /// A unit the file refuses stops the recording; `finish` reports it.
    pub fn record(
        &self,
        codec: RecordCodec,
        units: Receiver<EncodedUnit>,
    ) -> Result<(), RecordError> {
        let (file, failed, stop) = (
            Arc::clone(&self.file),
            Arc::clone(&self.failed),
            Arc::clone(&self.stop),
        );
        let handle = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let unit = match units.recv_timeout(POLL) {
                        Ok(unit) => unit,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let mut file = lock(&file);
                    let Some(recording) = file.as_mut() else {
                        break;
                    };
                    if let Err(e) = recording.write(codec, &unit) {
                        lock(&failed).get_or_insert(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(RecordError::Thread)?;
        lock(&self.threads).push(handle);
        Ok(())
    }

    /// Stops recording and completes the file (playable from then on).
    pub fn finish(self) -> Result<Recorded, RecordError> {
        self.stop.store(true, Ordering::Relaxed);
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
        if let Some(e) = lock(&self.failed).take() {
            return Err(e);
        }
        let Some(recording) = lock(&self.file).take() else {
            return Err(RecordError::Mux {
                path: PathBuf::new(),
                message: "finished twice".into(),
            });
        };
        let samples = recording.samples();
        let path = recording.finish()?;
        Ok(Recorded { path, samples })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::render;
    use crate::encode::h264::{H264Config, H264Encoder};

    #[test]
    fn a_recording_of_h264_and_opus_units_is_a_complete_mp4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mp4");
        let mut rec = Mp4Recording::create(&path).unwrap();
        let mut encoder = H264Encoder::new(H264Config::new(320, 240, 30.0, 500_000)).unwrap();
        let mut written = 0;
        for n in 0..30u32 {
            let frame = render(320, 240, n, 0);
            if let Some(mut unit) = encoder.encode(&frame, n == 0).unwrap() {
                unit.timestamp = Duration::from_millis(u64::from(n) * 1000 / 30);
                rec.write(RecordCodec::Video(crate::encode::VideoCodec::H264), &unit)
                    .unwrap();
                written += 1;
            }
        }
        // Opus packets: a TOC byte of a 20 ms CELT frame, stereo, and silence.
        for k in 0..50u64 {
            let unit = EncodedUnit {
                data: bytes::Bytes::from_static(&[0xfc, 0xff, 0xfe]),
                keyframe: true,
                timestamp: Duration::from_millis(k * 20),
                duration: Duration::from_millis(20),
                capture_time_ms: 0,
            };
            rec.write(RecordCodec::Opus, &unit).unwrap();
        }
        assert_eq!(rec.samples(), written + 50);
        let path = rec.finish().unwrap();
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[4..8], b"ftyp");
        let has = |tag: &[u8]| bytes.windows(4).any(|w| w == tag);
        assert!(has(b"moov") && has(b"avcC") && has(b"dOps"));
    }
}
