//! File sources: a Y4M video or a WAV audio file, looped, delivered at the track's
//! settings. Every problem with the file — missing, not Y4M/WAV, an unsupported layout,
//! truncated — is found when it is opened and reported naming the file.
//!
//! Y4M is parsed here ([`y4m`]: its header is one text line and frames are raw I420); WAV
//! goes through `hound` ([`wav`]).

mod wav;
mod y4m;

use std::path::Path;

use crate::media::{Cause, SourceError};

pub use wav::{read_wav, WavData, WavError, WavSource};
pub use y4m::{probe_y4m, Y4mError, Y4mInfo, Y4mSource, Y4mWriter};

/// `path` could not be opened because of `cause`: the error names the file.
fn open_error(path: &Path, cause: impl Into<Cause>) -> SourceError {
    SourceError::cannot_open(path.display().to_string(), cause)
}
