//! The bot's remote participants, in both kinds of room: each one's tracks, its
//! recording (`--record DIR`: one MP4 per participant and stay, video and audio together,
//! the received units written as they came, no re-encoding) and its entry in the `left`
//! line's `participants`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usermedia::analysis::{MediaReport, TrackReport};
use usermedia::constraints::MediaKind;
use usermedia::peer::RemoteTrack;
use usermedia::record::{RecordCodec, Recorder};

use crate::exit::CliError;
use crate::print_json;

/// Encoded units a track's recording may fall behind by.
const RECORD_QUEUE: usize = 256;

/// What the bot does with what it receives, beside decoding it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BotActions {
    /// Record every remote participant into DIR (created if missing): one MP4 file per
    /// participant, video and audio as received (no re-encoding), named
    /// `<participant>-<n>.mp4` (n counts the participant's stays: one who leaves and
    /// comes back gets a new file). Finalized when they leave, on Ctrl-C and --seconds.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Send each remote participant's media back to the room, as received (no
    /// re-encoding): one more connection of the bot's per participant (in Janus, one
    /// more publisher, displayed as `echo of FEED`; see docs/cli.md#bot).
    #[arg(long)]
    pub echo: bool,
}

/// One remote participant (a `/ws` peer id, a Janus feed).
struct Participant {
    id: String,
    /// Its tracks, with their place in the analysis' report.
    tracks: Vec<(RemoteTrack, Option<usize>)>,
    recorder: Option<Recorder>,
    files: Vec<String>,
    stays: u32,
    /// Since when it is here (`None`: it left).
    since: Option<Instant>,
    present_for: Duration,
}

/// The bot's remote participants, as they come and go.
pub struct Participants {
    dir: Option<PathBuf>,
    list: Vec<Participant>,
}

/// A participant id as a file-name part: letters, digits, `-` and `_` kept, others `_`.
fn file_part(id: &str) -> String {
    let s: String = id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "participant".into()
    } else {
        s
    }
}

impl Participants {
    /// Records into `actions.record` (created now: bad input if it cannot be).
    pub fn new(actions: &BotActions) -> Result<Self, CliError> {
        if let Some(dir) = &actions.record {
            std::fs::create_dir_all(dir).map_err(|e| {
                CliError::bad_input(format!("--record {}: cannot create it: {e}", dir.display()))
            })?;
        }
        Ok(Participants {
            dir: actions.record.clone(),
            list: Vec::new(),
        })
    }

    /// The file of `id`'s stay number `stay` in `dir`.
    pub fn file_name(dir: &Path, id: &str, stay: u32) -> PathBuf {
        dir.join(format!("{}-{stay}.mp4", file_part(id)))
    }

    /// `track` arrived from participant `id` (a new stay if it had left or is new).
    pub fn track(&mut self, id: &str, track: RemoteTrack, report: Option<usize>) {
        let index = match self.list.iter().position(|p| p.id == id) {
            Some(i) => i,
            None => {
                self.list.push(Participant {
                    id: id.to_owned(),
                    tracks: Vec::new(),
                    recorder: None,
                    files: Vec::new(),
                    stays: 0,
                    since: None,
                    present_for: Duration::ZERO,
                });
                self.list.len() - 1
            }
        };
        let dir = self.dir.clone();
        let p = &mut self.list[index];
        if p.since.is_none() {
            p.since = Some(Instant::now());
            p.stays += 1;
        }
        if let Some(dir) = dir {
            if p.recorder.is_none() {
                let path = Self::file_name(&dir, id, p.stays);
                match Recorder::create(&path) {
                    Ok(r) => p.recorder = Some(r),
                    Err(e) => tracing::warn!("cannot record participant {id}: {e}"),
                }
            }
            let codec = match track.kind() {
                MediaKind::Video => track.video_codec().map(RecordCodec::Video),
                MediaKind::Audio => Some(RecordCodec::Opus),
            };
            if let (Some(recorder), Some(codec)) = (&p.recorder, codec) {
                if let Err(e) = recorder.record(codec, track.subscribe_encoded(RECORD_QUEUE)) {
                    tracing::warn!("cannot record participant {id}'s {}: {e}", track.kind());
                }
            }
        }
        p.tracks.push((track, report));
    }

    /// Participant `id` left: its file is finalized (a `recorded` line says so).
    pub fn left(&mut self, id: &str) {
        if let Some(p) = self.list.iter_mut().find(|p| p.id == id) {
            close(p);
        }
    }

    /// Everyone is left (the bot leaves): every file finalized; the `participants` of
    /// the `left` line, with `quality` the analysis' report.
    pub fn finish(mut self, quality: &[TrackReport]) -> Vec<Value> {
        self.list.iter_mut().for_each(close);
        self.list.iter().map(|p| summary(p, quality)).collect()
    }
}

/// Ends `p`'s stay: its recording finalized.
fn close(p: &mut Participant) {
    if let Some(since) = p.since.take() {
        p.present_for += since.elapsed();
    }
    let Some(recorder) = p.recorder.take() else {
        return;
    };
    match recorder.finish() {
        Ok(recorded) => {
            let file = recorded.path.display().to_string();
            print_json(&json!({
                "event": "recorded", "participant": p.id, "file": file,
                "samples": recorded.samples,
            }));
            p.files.push(file);
        }
        Err(e) => {
            print_json(
                &json!({"event": "recordError", "participant": p.id, "error": e.to_string()}),
            );
        }
    }
}

/// `p`'s entry in the `left` line.
fn summary(p: &Participant, quality: &[TrackReport]) -> Value {
    let (mut frames, mut audio_seconds, mut video_bytes) = (0u64, 0f64, 0u64);
    let (mut freezes, mut longest) = (0u64, 0u64);
    for (track, report) in &p.tracks {
        if track.kind() == MediaKind::Video {
            video_bytes += track.stats().bytes_received;
        }
        match report.and_then(|i| quality.get(i)).map(|r| &r.media) {
            Some(MediaReport::Video(v)) => {
                frames += v.frames;
                freezes += v.freezes.count;
                longest = longest.max(v.freezes.longest_ms);
            }
            Some(MediaReport::Audio { audio, .. }) => audio_seconds += audio.seconds,
            None => {}
        }
    }
    let secs = p.present_for.as_secs_f64();
    let kbps = if secs > 0.0 {
        (video_bytes as f64 * 8.0 / 1000.0 / secs * 10.0).round() / 10.0
    } else {
        0.0
    };
    json!({
        "id": p.id,
        "video_frames": frames,
        "audio_seconds": (audio_seconds * 100.0).round() / 100.0,
        "video_kbps": kbps,
        "freezes": {"count": freezes, "longest_ms": longest},
        "files": p.files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_count_stays() {
        let dir = Path::new("/rec");
        assert_eq!(
            Participants::file_name(dir, "ab-1", 2),
            PathBuf::from("/rec/ab-1-2.mp4")
        );
        assert_eq!(
            Participants::file_name(dir, "../x y", 1),
            PathBuf::from("/rec/___x_y-1.mp4")
        );
        assert_eq!(
            Participants::file_name(dir, "", 1),
            PathBuf::from("/rec/participant-1.mp4")
        );
    }
}
