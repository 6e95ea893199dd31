//! Detailed video for the benchmarks: the pattern with fresh luma noise on every frame, as
//! a camera's sensor noise gives. The bare pattern compresses to ~240 kbit/s at 720p and
//! would understate what each packet costs; with the noise the encoder fills its budget.

use std::path::{Path, PathBuf};

use super::BenchError;
use crate::devices::media_file::Y4mWriter;
use crate::devices::pattern;
use crate::frame::VideoFrame;

/// Frame `n` of the pattern at `width`×`height` with ±8 of luma noise (the same for the
/// same `n`).
pub fn noisy_frame(width: u32, height: u32, n: u32) -> VideoFrame {
    let mut f = pattern::render(width, height, n, 0);
    let mut state = 0x9e37_79b9u32.wrapping_mul(n + 1);
    for px in f.planes_mut().0.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *px = px.saturating_add((state >> 28) as u8).saturating_sub(8);
    }
    f
}

/// Writes `frames` noisy frames as `clip.y4m` in `dir` and a devices file naming it, a
/// camera `clip` with the one mode `width`×`height`@`fps`; returns the devices file's path.
pub fn write_noisy_clip(
    dir: &Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: u32,
) -> Result<PathBuf, BenchError> {
    let clip = dir.join("clip.y4m");
    let file = std::fs::File::create(&clip)
        .map_err(BenchError::io(format!("creating {}", clip.display())))?;
    let writing = || BenchError::io(format!("writing {}", clip.display()));
    let mut w =
        Y4mWriter::new(std::io::BufWriter::new(file), width, height, fps).map_err(writing())?;
    for n in 0..frames {
        w.write(&noisy_frame(width, height, n)).map_err(writing())?;
    }
    w.finish().map_err(writing())?;
    let devices = dir.join("devices.json");
    let text = serde_json::json!({"devices": [{
        "kind": "videoinput", "deviceId": "clip", "label": "noisy pattern clip",
        "source": {"file": "clip.y4m"},
        "modes": [{"width": width, "height": height, "frameRate": fps}],
    }]});
    std::fs::write(&devices, text.to_string())
        .map_err(BenchError::io(format!("writing {}", devices.display())))?;
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{MediaDevices, PermissionPolicy};

    #[test]
    fn the_clip_is_a_camera_of_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let devices = write_noisy_clip(dir.path(), 160, 120, 30.0, 3).unwrap();
        let devices =
            MediaDevices::from_devices_file(&devices, PermissionPolicy::granted()).unwrap();
        let stream = devices
            .get_user_media_json(
                r#"{"video": {"width": {"exact": 160}, "height": {"exact": 120}}}"#,
            )
            .unwrap();
        let frame = stream.get_video_tracks()[0].subscribe(4).recv().unwrap();
        assert!(matches!(frame, crate::media::MediaFrame::Video(f) if f.width() == 160));
        // Noise: two frames differ, one frame is the same each time.
        assert_ne!(noisy_frame(64, 48, 0).y(), noisy_frame(64, 48, 1).y());
        assert_eq!(noisy_frame(64, 48, 1).y(), noisy_frame(64, 48, 1).y());
    }
}
