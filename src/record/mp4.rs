//! One MP4 file written from encoded units as they arrived, without re-encoding: H.264
//! (`avc1`, Annex B turned into length-prefixed NAL units), VP8 (`vp08`) and Opus (`Opus`),
//! one video and one audio track, through `shiguredo_mp4`'s muxer. Each sample's duration
//! is the next unit's timestamp less its own (the RTP clock), so gaps play as they
//! happened; both tracks start at the file's time 0. Video starts at its first keyframe.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shiguredo_mp4::bitstream::h264::{annexb_to_length_prefixed, build_avc1_box_from_annexb};
use shiguredo_mp4::bitstream::h264::{H264SampleEntryConfig, LengthSize};
use shiguredo_mp4::bitstream::opus::{build_opus_box, ChannelCount, OpusSampleEntryConfig};
use shiguredo_mp4::bitstream::vp8::{build_vp08_box, parse_frame_header, Vp8SampleEntryConfig};
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::mux::{Mp4FileMuxer, Sample};
use shiguredo_mp4::TrackKind;

use super::RecordError;
use crate::encode::{EncodedUnit, VideoCodec};

/// What a track of the file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCodec {
    Video(VideoCodec),
    Opus,
}

impl RecordCodec {
    fn kind(self) -> TrackKind {
        match self {
            RecordCodec::Video(_) => TrackKind::Video,
            RecordCodec::Opus => TrackKind::Audio,
        }
    }

    /// Ticks per second of the track's clock.
    fn timescale(self) -> u32 {
        match self {
            RecordCodec::Video(_) => 90_000,
            RecordCodec::Opus => 48_000,
        }
    }
}

/// A sample waiting for the next one (which gives its duration).
struct Pending {
    data: Vec<u8>,
    keyframe: bool,
    timestamp: Duration,
    duration: Duration,
    entry: Option<SampleEntry>,
}

/// One track's state in the file.
struct Track {
    codec: RecordCodec,
    pending: Option<Pending>,
    /// What the current sample entry was built from (SPS+PPS, VP8 size, channels).
    entry_key: Option<Vec<u8>>,
    samples: u64,
}

/// An MP4 file being written.
pub struct Mp4Recording {
    path: PathBuf,
    file: BufWriter<File>,
    muxer: Mp4FileMuxer,
    position: u64,
    tracks: Vec<Track>,
}

fn mux_error(path: &Path, e: impl std::fmt::Display) -> RecordError {
    RecordError::Mux {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl Mp4Recording {
    /// Creates the file at `path` (replacing one there).
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_owned(),
            source,
        };
        let muxer = Mp4FileMuxer::new().map_err(|e| mux_error(path, e))?;
        let mut file = BufWriter::new(File::create(path).map_err(io)?);
        let head = muxer.initial_boxes_bytes();
        file.write_all(head).map_err(io)?;
        Ok(Mp4Recording {
            path: path.to_owned(),
            position: head.len() as u64,
            file,
            muxer,
            tracks: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples written (or waiting) per track.
    pub fn samples(&self) -> u64 {
        self.tracks
            .iter()
            .map(|t| t.samples + u64::from(t.pending.is_some()))
            .sum()
    }

    /// Adds `unit` to the track of `codec`'s kind (the first unit of a kind creates it; a
    /// unit of another codec than that track's is refused). Video before its first
    /// keyframe is skipped.
    pub fn write(&mut self, codec: RecordCodec, unit: &EncodedUnit) -> Result<(), RecordError> {
        let index = match self
            .tracks
            .iter()
            .position(|t| t.codec.kind() == codec.kind())
        {
            Some(i) if self.tracks[i].codec == codec => i,
            Some(_) => {
                return Err(mux_error(
                    &self.path,
                    format!("a second {codec:?} track in one file"),
                ))
            }
            None => {
                self.tracks.push(Track {
                    codec,
                    pending: None,
                    entry_key: None,
                    samples: 0,
                });
                self.tracks.len() - 1
            }
        };
        let (key, entry) = match sample_entry(codec, unit) {
            Ok(Some((key, entry))) => (Some(key), Some(entry)),
            Ok(None) => (None, None),
            Err(e) => return Err(mux_error(&self.path, e)),
        };
        let track = &mut self.tracks[index];
        if track.entry_key.is_none() && key.is_none() {
            return Ok(()); // Nothing decodable yet (video before a keyframe).
        }
        let entry = match key {
            Some(key) if track.entry_key.as_ref() != Some(&key) => {
                track.entry_key = Some(key);
                entry
            }
            _ => None,
        };
        let data = match codec {
            RecordCodec::Video(VideoCodec::H264) => {
                annexb_to_length_prefixed(&unit.data, LengthSize::FourBytes)
                    .map_err(|e| mux_error(&self.path, e))?
            }
            _ => unit.data.to_vec(),
        };
        let next = Pending {
            data,
            keyframe: unit.keyframe || codec == RecordCodec::Opus,
            timestamp: unit.timestamp,
            duration: unit.duration,
            entry,
        };
        let previous = self.tracks[index].pending.replace(next);
        if let Some(p) = previous {
            let duration = unit.timestamp.saturating_sub(p.timestamp);
            let duration = if duration.is_zero() {
                p.duration
            } else {
                duration
            };
            self.append(index, p, duration)?;
        }
        Ok(())
    }

    fn append(&mut self, index: usize, p: Pending, duration: Duration) -> Result<(), RecordError> {
        let track = &mut self.tracks[index];
        let scale = track.codec.timescale();
        let ticks = (duration.as_secs_f64() * f64::from(scale)).round().max(1.0) as u32;
        let io = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&p.data).map_err(io)?;
        let sample = Sample {
            track_kind: track.codec.kind(),
            sample_entry: p.entry,
            keyframe: p.keyframe,
            timescale: NonZeroU32::new(scale).unwrap_or(NonZeroU32::MIN),
            duration: ticks,
            composition_time_offset: None,
            data_offset: self.position,
            data_size: p.data.len(),
        };
        self.position += p.data.len() as u64;
        track.samples += 1;
        self.muxer
            .append_sample(&sample)
            .map_err(|e| mux_error(&self.path, e))
    }

    /// Writes the waiting samples and the index: the file is complete and playable.
    pub fn finish(mut self) -> Result<PathBuf, RecordError> {
        for index in 0..self.tracks.len() {
            if let Some(p) = self.tracks[index].pending.take() {
                let duration = if p.duration.is_zero() {
                    Duration::from_millis(20)
                } else {
                    p.duration
                };
                self.append(index, p, duration)?;
            }
        }
        let path = self.path.clone();
        let io = |source| RecordError::Io {
            path: path.clone(),
            source,
        };
        let finalized = self.muxer.finalize().map_err(|e| mux_error(&path, e))?;
        for (offset, bytes) in finalized.offset_and_bytes_pairs() {
            self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
            self.file.write_all(bytes).map_err(io)?;
        }
        self.file.flush().map_err(io)?;
        self.file.get_ref().sync_all().map_err(io)?;
        Ok(path)
    }
}

/// The sample entry `unit` starts, with what it was built from (so an unchanged one is
/// not repeated): an H.264 unit carrying SPS and PPS, a VP8 keyframe, every Opus packet
/// (its channel count). `None` for a unit that starts none.
fn sample_entry(
    codec: RecordCodec,
    unit: &EncodedUnit,
) -> Result<Option<(Vec<u8>, SampleEntry)>, String> {
    match codec {
        RecordCodec::Video(VideoCodec::H264) => {
            if !unit.keyframe {
                return Ok(None);
            }
            let config = H264SampleEntryConfig {
                length_size: LengthSize::FourBytes,
            };
            match build_avc1_box_from_annexb(&unit.data, &config) {
                Ok(avc1) => {
                    let key = format!("{:?}", avc1.avcc_box).into_bytes();
                    Ok(Some((key, SampleEntry::Avc1(avc1))))
                }
                // A keyframe without SPS/PPS keeps the current entry.
                Err(_) => Ok(None),
            }
        }
        RecordCodec::Video(VideoCodec::Vp8) => {
            if !unit.keyframe {
                return Ok(None);
            }
            let header = parse_frame_header(&unit.data).map_err(|e| e.to_string())?;
            let Some(info) = header.keyframe else {
                return Ok(None);
            };
            let config = Vp8SampleEntryConfig {
                video_full_range_flag: false,
                colour_primaries: Vp8SampleEntryConfig::COLOUR_PRIMARIES_BT601,
                transfer_characteristics: Vp8SampleEntryConfig::TRANSFER_CHARACTERISTICS_BT601,
                matrix_coefficients: Vp8SampleEntryConfig::MATRIX_COEFFICIENTS_BT601,
                width: info.width,
                height: info.height,
            };
            let key = [info.width.to_be_bytes(), info.height.to_be_bytes()].concat();
            Ok(Some((key, SampleEntry::Vp08(build_vp08_box(&config)))))
        }
        RecordCodec::Opus => {
            // The TOC byte's stereo flag (RFC 6716 section 3.1).
            let stereo = unit.data.first().is_some_and(|toc| toc & 0x04 != 0);
            let channel_count = if stereo {
                ChannelCount::Stereo
            } else {
                ChannelCount::Mono
            };
            let config = OpusSampleEntryConfig {
                channel_count,
                pre_skip: 0,
                input_sample_rate: 48_000,
                output_gain: 0,
            };
            Ok(Some((
                vec![channel_count.as_u8()],
                SampleEntry::Opus(build_opus_box(&config)),
            )))
        }
    }
}
