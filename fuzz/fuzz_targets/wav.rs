//! The WAV reader (`file:` audio sources): the whole file decoded at open. The input is
//! written to a file of this process (the reader takes a path).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usermedia::devices::media_file::read_wav;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("usermedia-fuzz-{}.wav", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("the scratch file is writable");
    if let Ok(wav) = read_wav(path) {
        assert!(!wav.samples.is_empty());
    }
});
