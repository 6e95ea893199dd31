//! Live capture: real frames at the selected settings, paced in real time, from the
//! virtual sources (which exercise the same `Source` contract as cameras and
//! microphones; those need hardware this machine does not have).

mod common;

use std::time::{Duration, Instant};

use common::{example, temp_file, usermedia, Devices};
use serde_json::Value;
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::{AudioFrame, MediaFrame, MediaStreamTrack, TrackState, VideoFrame};

fn video(frame: MediaFrame) -> std::sync::Arc<VideoFrame> {
    match frame {
        MediaFrame::Video(f) => f,
        MediaFrame::Audio(_) => panic!("audio on a video track"),
    }
}

fn audio(frame: MediaFrame) -> std::sync::Arc<AudioFrame> {
    match frame {
        MediaFrame::Audio(a) => a,
        MediaFrame::Video(_) => panic!("video on an audio track"),
    }
}

fn video_track(devices: &MediaDevices, json: &str) -> MediaStreamTrack {
    devices
        .get_user_media_json(json)
        .expect("getUserMedia")
        .get_video_tracks()
        .remove(0)
}

/// Collects video frames for `window` of stream time after the first one.
fn collect_video(track: &MediaStreamTrack, window: Duration) -> Vec<std::sync::Arc<VideoFrame>> {
    let rx = track.subscribe(256);
    let first = video(rx.recv().expect("a first frame"));
    let mut frames = vec![first.clone()];
    let end = Instant::now() + window;
    while Instant::now() < end {
        if let Some(f) = rx.recv_timeout(Duration::from_millis(200)).expect("live") {
            frames.push(video(f));
        }
    }
    assert_eq!(rx.dropped(), 0, "a 256-frame queue never fills here");
    frames
}

#[test]
fn pattern_640x480_at_30_fps_with_consecutive_counters() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let frames = collect_video(&track, Duration::from_secs(3));
    // 3 s after the first frame: 90 more, ±1 per second of slack.
    assert!(
        (88..=94).contains(&frames.len()),
        "{} frames in 3 s",
        frames.len()
    );
    let span = frames.last().unwrap().timestamp - frames[0].timestamp;
    let fps = (frames.len() - 1) as f64 / span.as_secs_f64();
    assert!((29.0..=31.0).contains(&fps), "{fps} fps");
    let numbers: Vec<u32> = frames
        .iter()
        .map(|f| {
            assert_eq!((f.width(), f.height()), (640, 480));
            read_strip(f).expect("strip").frame_number
        })
        .collect();
    for pair in numbers.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "counters must be consecutive: {numbers:?}"
        );
    }
    // The strip's capture time is the wall clock.
    let strip = read_strip(frames.last().unwrap()).unwrap();
    let age = strip.age_ms(usermedia::media::wall_clock_ms());
    assert!(age < 1000, "captured {age} ms ago");
}

/// Two seconds of a track selected at exactly 320×180@15 from `devices`: its settings say
/// so, and about 30 frames arrive (a loaded machine may be a frame short).
fn two_seconds_at_320x180_15fps(devices: &MediaDevices) -> Vec<std::sync::Arc<VideoFrame>> {
    let track = video_track(
        devices,
        r#"{"video": {"width": {"exact": 320}, "height": {"exact": 180}, "frameRate": {"exact": 15}}}"#,
    );
    let s = track.get_settings();
    assert_eq!(
        (s.width, s.height, s.frame_rate),
        (Some(320), Some(180), Some(15.0))
    );
    let frames = collect_video(&track, Duration::from_secs(2));
    assert!(
        (27..=33).contains(&frames.len()),
        "{} frames in 2 s",
        frames.len()
    );
    frames
}

#[test]
fn crop_and_scale_to_320x180_at_15_fps() {
    let devices = Devices::Builtin.media_devices(&[]);
    let frames = two_seconds_at_320x180_15fps(&devices);
    for f in &frames {
        assert_eq!((f.width(), f.height()), (320, 180));
    }
    let span = frames.last().unwrap().timestamp - frames[0].timestamp;
    let fps = (frames.len() - 1) as f64 / span.as_secs_f64();
    assert!((14.5..=15.5).contains(&fps), "{fps} fps");
}

#[test]
fn tone_has_its_frequency_and_sample_rate() {
    let devices = Devices::Builtin.media_devices(&[]);
    let stream = devices
        .get_user_media_json(r#"{"audio": {"channelCount": 2}}"#)
        .unwrap();
    let track = &stream.get_audio_tracks()[0];
    let rx = track.subscribe(512);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut blocks = 0;
    while samples.len() < 2 * 48000 {
        let a = audio(rx.recv().unwrap());
        assert_eq!((a.sample_rate, a.channels), (48000, 2));
        blocks += 1;
        samples.extend(a.to_i16().chunks_exact(2).map(|s| s[0]));
    }
    let elapsed = start.elapsed();
    // Two seconds of audio take two seconds: paced, not bursted.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert_eq!(blocks, 200, "10 ms blocks");
    let hz = usermedia::devices::tone::frequency(&samples, 48000);
    assert!((438.0..=442.0).contains(&hz), "{hz} Hz");
}

#[test]
fn apply_constraints_switches_size_live_without_a_gap() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let rx = track.subscribe(256);
    let mut small = video(rx.recv().unwrap());
    for _ in 0..4 {
        small = video(rx.recv().unwrap());
        assert_eq!(small.width(), 640);
    }
    track
        .apply_constraints_json(r#"{"width": {"exact": 1280}, "height": {"exact": 720}}"#)
        .unwrap();
    assert_eq!(track.get_settings().width, Some(1280));
    // `small` is the last 640-wide frame before the switch, whether or not more were
    // queued before it: the checks below always run.
    let first_big = loop {
        let f = video(rx.recv().unwrap());
        if f.width() == 1280 {
            break f;
        }
        assert_eq!(f.width(), 640);
        small = f;
    };
    assert_eq!(first_big.height(), 720);
    let gap = first_big.timestamp - small.timestamp;
    assert!(
        gap <= Duration::from_millis(34) + Duration::from_millis(5),
        "gap {gap:?}"
    );
    // The same consumer, the counter running on: no restart.
    assert_eq!(
        read_strip(&first_big).unwrap().frame_number,
        read_strip(&small).unwrap().frame_number + 1
    );
    // A failed applyConstraints changes nothing, and frames keep their size.
    let err = track
        .apply_constraints_json(r#"{"width": {"min": 4000}}"#)
        .unwrap_err();
    assert_eq!(err.name(), "OverconstrainedError");
    assert_eq!(track.get_settings().width, Some(1280));
    for _ in 0..3 {
        assert_eq!(video(rx.recv().unwrap()).width(), 1280);
    }
}

#[test]
fn disabled_tracks_deliver_black_and_silence_at_the_same_pace() {
    let devices = Devices::Builtin.media_devices(&[]);
    let stream = devices
        .get_user_media_json(r#"{"video": true, "audio": true}"#)
        .unwrap();
    let (a, v) = (&stream.get_audio_tracks()[0], &stream.get_video_tracks()[0]);
    a.set_enabled(false);
    v.set_enabled(false);
    let (arx, vrx) = (a.subscribe(256), v.subscribe(256));
    let start = Instant::now();
    let frames: Vec<_> = (0..15).map(|_| video(vrx.recv().unwrap())).collect();
    let elapsed = start.elapsed();
    // Paced at 30 fps: not a burst, and not slowed down (generous for a loaded machine).
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed <= Duration::from_secs(3), "{elapsed:?}");
    let span = frames[14].timestamp - frames[0].timestamp;
    let fps = 14.0 / span.as_secs_f64();
    assert!((28.0..=31.0).contains(&fps), "{fps} fps on the timeline");
    for f in &frames {
        assert!(f.y().iter().all(|&y| y == 16), "black luma");
        assert!(
            f.u().iter().chain(f.v()).all(|&c| c == 128),
            "neutral chroma"
        );
    }
    // Silence, at the same pace: 48000 samples a second of wall clock and of timestamps.
    // Blocks queued while the video was checked are drained first: they came at their
    // own pace, and would read as a burst here.
    while arx.try_recv().is_some() {}
    let mut blocks = vec![audio(arx.recv().unwrap())];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        blocks.push(audio(arx.recv().unwrap()));
    }
    let elapsed = start.elapsed();
    assert!(blocks.iter().all(|b| b.to_i16().iter().all(|&s| s == 0)));
    let samples: usize = blocks[1..].iter().map(|b| b.frames()).sum();
    let per_second = samples as f64 / elapsed.as_secs_f64();
    assert!(
        (40_000.0..=56_000.0).contains(&per_second),
        "{per_second} samples/s of wall clock"
    );
    let n = blocks.len() - 1;
    let span = blocks[n].timestamp - blocks[0].timestamp;
    let on_timeline =
        blocks[..n].iter().map(|b| b.frames()).sum::<usize>() as f64 / span.as_secs_f64();
    assert!(
        (45_000.0..=48_500.0).contains(&on_timeline),
        "{on_timeline} samples/s of timestamps"
    );
    // Enabled again: the pattern comes back.
    v.set_enabled(true);
    // Frames queued while disabled (during the audio check) are black: skip them.
    while vrx.try_recv().is_some() {}
    let back = (0..5)
        .map(|_| video(vrx.recv().unwrap()))
        .any(|f| read_strip(&f).is_some() && f.y().iter().any(|&y| y > 200));
    assert!(back);
}

#[test]
fn a_slow_consumer_loses_frames_and_blocks_nobody() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
    let slow = track.subscribe(2);
    let fast = track.subscribe(256);
    let start = Instant::now();
    let mut got = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if fast
            .recv_timeout(Duration::from_millis(100))
            .unwrap()
            .is_some()
        {
            got += 1;
        }
    }
    assert!(got >= 28, "the fast consumer got {got} frames in 1 s");
    assert!(slow.dropped() >= 20, "dropped {}", slow.dropped());
    // The slow one still has its two newest-queued frames and keeps receiving.
    assert!(slow.try_recv().is_some());
    assert!(slow
        .recv_timeout(Duration::from_millis(500))
        .unwrap()
        .is_some());
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(3);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stop_releases_the_device_and_clones_share_the_source() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": true}"#);
    let in_use = devices.devices_in_use();
    assert_eq!(in_use.len(), 1);
    assert_eq!(in_use[0].device_id, "virtual-pattern");
    let clone = track.clone_track();
    assert_eq!(
        devices.devices_in_use()[0].open_sources,
        1,
        "the clone shares the source"
    );
    let (a, b) = (track.subscribe(64), clone.subscribe(64));
    let fa = video(a.recv().unwrap());
    // Both see the same frames (same counter) from the one source.
    let nb = loop {
        let f = video(b.recv().unwrap());
        let n = read_strip(&f).unwrap().frame_number;
        if n >= read_strip(&fa).unwrap().frame_number {
            break n;
        }
    };
    assert!(nb - read_strip(&fa).unwrap().frame_number <= 2);
    track.stop();
    assert_eq!(track.ready_state(), TrackState::Ended);
    // Frames queued before stop may drain first; then the subscription ends.
    let ended = (0..100).any(|_| a.recv_timeout(Duration::from_millis(100)).is_err());
    assert!(ended, "the stopped track's subscription ends");
    assert!(
        b.recv_timeout(Duration::from_secs(1)).unwrap().is_some(),
        "the clone lives on"
    );
    assert_eq!(devices.devices_in_use().len(), 1);
    clone.stop();
    wait_until("the device to be released", || {
        devices.devices_in_use().is_empty()
    });
}

#[test]
fn dropping_every_handle_releases_the_device() {
    let devices = Devices::Builtin.media_devices(&[]);
    {
        let stream = devices
            .get_user_media_json(r#"{"video": true, "audio": true}"#)
            .unwrap();
        assert_eq!(devices.devices_in_use().len(), 2);
        drop(stream);
    }
    wait_until("both devices released", || {
        devices.devices_in_use().is_empty()
    });
}

#[test]
fn apply_constraints_on_a_clone_leaves_the_original_alone() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let clone = track.clone_track();
    let rx = clone.subscribe(64);
    clone
        .apply_constraints_json(r#"{"width": {"exact": 320}, "height": {"exact": 240}}"#)
        .unwrap();
    assert_eq!(clone.get_settings().width, Some(320));
    assert_eq!(track.get_settings().width, Some(640));
    let f = loop {
        let f = video(rx.recv().unwrap());
        if f.width() == 320 {
            break f;
        }
    };
    assert_eq!(f.height(), 240);
    let orig = track.subscribe(8);
    assert_eq!(video(orig.recv().unwrap()).width(), 640);
    assert_eq!(devices.devices_in_use()[0].open_sources, 2);
}

#[test]
fn a_track_moving_off_a_shared_source_keeps_its_timeline() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let clone = track.clone_track();
    let rx = track.subscribe(256);
    let mut last = video(rx.recv().unwrap());
    for _ in 0..4 {
        let f = video(rx.recv().unwrap());
        assert!(f.timestamp > last.timestamp);
        last = f;
    }
    // Shared with the clone, so this track needs a source of its own at 1280×720.
    track
        .apply_constraints_json(r#"{"width": {"exact": 1280}, "height": {"exact": 720}}"#)
        .unwrap();
    assert_eq!(devices.devices_in_use()[0].open_sources, 2);
    let first_big = loop {
        let f = video(rx.recv().unwrap());
        assert!(
            f.timestamp > last.timestamp,
            "timestamps went back from {:?} to {:?} ({}x{})",
            last.timestamp,
            f.timestamp,
            f.width(),
            f.height()
        );
        if f.width() == 1280 {
            break f;
        }
        assert_eq!(f.width(), 640);
        last = f;
    };
    assert_eq!(first_big.height(), 720);
    assert!(read_strip(&first_big).is_some(), "a pattern frame");
    // The gap on the timeline is the real one: opening a pattern source is quick (a loaded
    // machine gets generous room).
    let gap = first_big.timestamp - last.timestamp;
    assert!(gap <= Duration::from_millis(300), "gap {gap:?}");
    let mut prev = first_big;
    for _ in 0..10 {
        let f = video(rx.recv().unwrap());
        assert_eq!((f.width(), f.height()), (1280, 720));
        assert!(f.timestamp > prev.timestamp);
        prev = f;
    }
    // The clone stays on the old source at 640×480.
    let crx = clone.subscribe(8);
    assert_eq!(video(crx.recv().unwrap()).width(), 640);
}

#[test]
fn a_track_moving_to_a_new_pattern_source_keeps_its_frame_counter() {
    // Receivers measure loss by the strip's frame counter: it must run on when the track
    // moves to a source of its own, not restart at 0.
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let clone = track.clone_track();
    let rx = track.subscribe(256);
    let counter = |f: &VideoFrame| read_strip(f).expect("a pattern frame").frame_number;
    // Let the shared source's counter get going, so a restart at 0 would show.
    let mut last = counter(&video(rx.recv().unwrap()));
    for _ in 0..4 {
        let n = counter(&video(rx.recv().unwrap()));
        assert_eq!(n, last.wrapping_add(1));
        last = n;
    }
    // Shared with the clone, so this track needs a source of its own at 1280×720.
    track
        .apply_constraints_json(r#"{"width": {"exact": 1280}, "height": {"exact": 720}}"#)
        .unwrap();
    assert_eq!(devices.devices_in_use()[0].open_sources, 2);
    let mut big = 0;
    while big < 5 {
        let f = video(rx.recv().unwrap());
        let n = counter(&f);
        assert_eq!(
            n,
            last.wrapping_add(1),
            "the counter jumped from {last} to {n} ({}x{})",
            f.width(),
            f.height()
        );
        last = n;
        if f.width() == 1280 {
            big += 1;
        }
    }
    assert!(last > 5, "counter {last}");
    clone.stop();
}

/// A 640×480 Y4M of `frames` frames at 30 fps, each a 640×360 pattern frame (strip saying
/// its index) in the middle rows 60..420, black above and below: exactly what a centred
/// 16:9 crop keeps, so frames stay identifiable after crop-and-scale.
fn letterboxed_y4m(frames: u32) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
    let mut w = usermedia::devices::media_file::Y4mWriter::new(f.reopen().unwrap(), 640, 480, 30.0)
        .unwrap();
    for n in 0..frames {
        let inner = usermedia::devices::pattern::render(640, 360, n, 0);
        let mut frame = VideoFrame::black(640, 480);
        let (y, u, v) = frame.planes_mut();
        y[60 * 640..420 * 640].copy_from_slice(inner.y());
        u[30 * 320..210 * 320].copy_from_slice(inner.u());
        v[30 * 320..210 * 320].copy_from_slice(inner.v());
        w.write(&frame).unwrap();
    }
    w.finish().unwrap();
    f
}

#[test]
fn a_y4m_file_is_cropped_scaled_and_decimated_live() {
    const CLIP: u32 = 30;
    let clip = letterboxed_y4m(CLIP);
    let devices_file = file_devices(clip.path());
    let devices =
        MediaDevices::from_devices_file(devices_file.path(), PermissionPolicy::granted()).unwrap();
    let frames = two_seconds_at_320x180_15fps(&devices);
    let span = frames.last().unwrap().timestamp - frames[0].timestamp;
    let fps = (frames.len() - 1) as f64 / span.as_secs_f64();
    assert!((14.0..=16.0).contains(&fps), "{fps} fps");
    let numbers: Vec<u32> = frames
        .iter()
        .map(|f| {
            assert_eq!((f.width(), f.height()), (320, 180));
            read_strip(f)
                .expect("the strip survives the 16:9 crop")
                .frame_number
        })
        .collect();
    assert!(numbers.iter().all(|&n| n < CLIP), "{numbers:?}");
    // 30 fps file at 15 fps: every other file frame (the clip loops). A pacer that fell
    // behind on a loaded machine may shift the cadence once or twice, never repeat.
    let steps: Vec<u32> = numbers
        .windows(2)
        .map(|p| (p[1] + CLIP - p[0]) % CLIP)
        .collect();
    assert!(steps.iter().all(|&d| (1..=4).contains(&d)), "{numbers:?}");
    let by_two = steps.iter().filter(|&&d| d == 2).count();
    assert!(by_two * 10 >= steps.len() * 9, "{numbers:?}");
}

/// A pattern Y4M of `frames` frames at 640×480.
fn pattern_y4m(frames: u32) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
    let mut w = usermedia::devices::media_file::Y4mWriter::new(f.reopen().unwrap(), 640, 480, 30.0)
        .unwrap();
    for n in 0..frames {
        w.write(&usermedia::devices::pattern::render(640, 480, n, 0))
            .unwrap();
    }
    w.finish().unwrap();
    f
}

fn file_devices(video_path: &std::path::Path) -> tempfile::NamedTempFile {
    temp_file(
        &format!(
            r#"{{"devices": [{{"kind": "videoinput", "deviceId": "clip", "source": {{"file": {:?}}},
                "modes": [{{"width": 640, "height": 480, "frameRate": 30}}]}}]}}"#,
            video_path.display().to_string()
        ),
        ".json",
    )
}

#[test]
fn a_source_that_goes_away_ends_its_tracks() {
    let clip = pattern_y4m(5);
    let devices_file = file_devices(clip.path());
    let devices =
        MediaDevices::from_devices_file(devices_file.path(), PermissionPolicy::granted()).unwrap();
    let track = video_track(&devices, r#"{"video": true}"#);
    let rx = track.subscribe(64);
    assert!(rx.recv().is_ok());
    // Code that holds the track without subscribing learns of the end too: blocking and
    // async waiters, started before it happens.
    assert!(track.wait_ended(Duration::from_millis(50)).is_none());
    let watcher = {
        let track = track.clone();
        std::thread::spawn(move || track.wait_ended(Duration::from_secs(30)))
    };
    let async_watcher = {
        let track = track.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), track.ended()).await
                })
        })
    };
    // The "device" is unplugged: the file loses its frames while the track runs.
    std::fs::OpenOptions::new()
        .write(true)
        .open(clip.path())
        .unwrap()
        .set_len(100)
        .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let ended = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < end, "still delivering"),
        }
    };
    assert!(ended.reason.contains("source ended"), "{ended}");
    assert_eq!(track.ready_state(), TrackState::Ended);
    let seen = watcher.join().unwrap().expect("wait_ended saw the end");
    assert_eq!(seen, ended);
    let seen = async_watcher.join().unwrap().expect("ended() resolved");
    assert_eq!(seen, ended);
    // Asked after the fact: at once.
    assert_eq!(track.wait_ended(Duration::ZERO), Some(ended));
    wait_until("the device to be released", || {
        devices.devices_in_use().is_empty()
    });
    // The process (and getUserMedia on other devices) carries on.
    let other = Devices::Builtin.media_devices(&[]);
    assert!(other.get_user_media_json(r#"{"video": true}"#).is_ok());
}

#[test]
fn bad_files_fail_get_user_media_naming_file_and_problem() {
    let garbage = temp_file("definitely not a y4m file\n", ".y4m");
    let mut truncated_bytes = std::fs::read(pattern_y4m(2).path()).unwrap();
    truncated_bytes.truncate(truncated_bytes.len() - 1000);
    let truncated = tempfile::Builder::new().suffix(".y4m").tempfile().unwrap();
    std::fs::write(truncated.path(), &truncated_bytes).unwrap();
    for (file, problem) in [
        (garbage.path().to_owned(), "not a Y4M"),
        (truncated.path().to_owned(), "truncated"),
        (
            std::path::PathBuf::from("/nonexistent/clip.y4m"),
            "No such file",
        ),
    ] {
        let devices_file = file_devices(&file);
        let devices =
            MediaDevices::from_devices_file(devices_file.path(), PermissionPolicy::granted())
                .unwrap();
        let err = devices
            .get_user_media_json(r#"{"video": true}"#)
            .unwrap_err();
        assert_eq!(err.name(), "NotReadableError");
        assert!(err.message().contains(&file.display().to_string()), "{err}");
        assert!(err.message().contains(problem), "{err}");
        assert!(devices.devices_in_use().is_empty());
        // Through the CLI: a media error, exit 1, naming the file.
        let out = usermedia(&[
            "capture",
            "--seconds",
            "1",
            "--out",
            std::env::temp_dir().to_str().unwrap(),
            "--devices",
            devices_file.path().to_str().unwrap(),
            "--constraints",
            r#"{"video":true}"#,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["name"], "NotReadableError");
        assert!(v["error"]["message"].as_str().unwrap().contains(problem));
    }
}

fn wav_devices(audio_path: &std::path::Path) -> tempfile::NamedTempFile {
    temp_file(
        &format!(
            r#"{{"devices": [{{"kind": "audioinput", "deviceId": "clip", "source": {{"file": {:?}}},
                "modes": [{{"sampleRate": 48000, "channelCount": 1}}]}}]}}"#,
            audio_path.display().to_string()
        ),
        ".json",
    )
}

#[test]
fn bad_wav_files_fail_get_user_media_naming_file_and_problem() {
    // A valid 48 kHz mono WAV of 1000 samples, then cut in the middle of its data.
    let good = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(good.path(), spec).unwrap();
        for i in 0..1000 {
            w.write_sample(i as i16).unwrap();
        }
        w.finalize().unwrap();
    }
    let bytes = std::fs::read(good.path()).unwrap();
    let truncated = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
    std::fs::write(truncated.path(), &bytes[..bytes.len() - 700]).unwrap();
    let garbage = temp_file("RIFX and then nothing a WAV reader could use", ".wav");
    for (file, problem) in [
        (truncated.path().to_owned(), "truncated"),
        (garbage.path().to_owned(), "not a valid WAV file"),
    ] {
        let devices_file = wav_devices(&file);
        let devices =
            MediaDevices::from_devices_file(devices_file.path(), PermissionPolicy::granted())
                .unwrap();
        let err = devices
            .get_user_media_json(r#"{"audio": true}"#)
            .unwrap_err();
        assert_eq!(err.name(), "NotReadableError");
        assert!(err.message().contains(&file.display().to_string()), "{err}");
        assert!(err.message().contains(problem), "{err}");
        assert!(devices.devices_in_use().is_empty());
    }
    // The intact file opens.
    let devices_file = wav_devices(good.path());
    let devices =
        MediaDevices::from_devices_file(devices_file.path(), PermissionPolicy::granted()).unwrap();
    assert!(devices.get_user_media_json(r#"{"audio": true}"#).is_ok());
}

#[test]
fn capture_round_trip_through_y4m_and_wav() {
    let first = tempfile::tempdir().unwrap();
    let out = usermedia(&[
        "capture",
        "--seconds",
        "1.5",
        "--out",
        first.path().to_str().unwrap(),
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"width": 640, "height": 480}, "audio": true}"#,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tracks = v["tracks"].as_array().unwrap();
    let video_frames = tracks[1]["frames"].as_u64().unwrap();
    assert!(
        (40..=50).contains(&video_frames),
        "{video_frames} frames in 1.5 s"
    );
    let samples = tracks[0]["samples"].as_u64().unwrap();
    assert!(
        (69_000..=74_000).contains(&samples),
        "{samples} samples in 1.5 s"
    );
    assert_eq!(tracks[1]["settings"]["width"], 640);

    // The captured files become the sources of a second capture.
    let devices = temp_file(
        &format!(
            r#"{{"devices": [
              {{"kind": "videoinput", "deviceId": "v", "source": {{"file": "{0}/video.y4m"}},
                "modes": [{{"width": 640, "height": 480, "frameRate": 30}}]}},
              {{"kind": "audioinput", "deviceId": "a", "source": {{"file": "{0}/audio.wav"}},
                "modes": [{{"sampleRate": 48000, "channelCount": 1}}]}}]}}"#,
            first.path().display()
        ),
        ".json",
    );
    let second = tempfile::tempdir().unwrap();
    let out = usermedia(&[
        "capture",
        "--seconds",
        "1",
        "--out",
        second.path().to_str().unwrap(),
        "--devices",
        devices.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Video: the first capture's frames, counters consecutive, in order.
    let info = usermedia::devices::media_file::probe_y4m(&second.path().join("video.y4m")).unwrap();
    assert!(info.frame_offsets.len() >= 25);
    let bytes = std::fs::read(second.path().join("video.y4m")).unwrap();
    let numbers: Vec<u32> = info
        .frame_offsets
        .iter()
        .map(|&o| {
            let y = &bytes[o as usize..o as usize + 640 * 480];
            usermedia::devices::pattern::read_strip_luma(y, 640, 480)
                .unwrap()
                .frame_number
        })
        .collect();
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{numbers:?}");
    }
    // Audio: still the 440 Hz tone.
    let wav = usermedia::devices::media_file::read_wav(&second.path().join("audio.wav")).unwrap();
    assert_eq!((wav.sample_rate, wav.channels), (48000, 1));
    let hz = usermedia::devices::tone::frequency(&wav.samples, 48000);
    assert!((435.0..=445.0).contains(&hz), "{hz} Hz");
}

#[test]
fn capture_rejects_bad_arguments() {
    let out = usermedia(&["capture", "--seconds", "0", "--out", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = usermedia(&[
        "capture",
        "--seconds",
        "1",
        "--out",
        "/proc/forbidden/dir",
        "--devices",
        example("builtin.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/forbidden/dir"));
}
