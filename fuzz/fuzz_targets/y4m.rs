//! The Y4M reader (`file:` video sources): the whole-file check at open. The input is
//! written to a file of this process (the reader takes a path).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usermedia::devices::media_file::probe_y4m;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("usermedia-fuzz-{}.y4m", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("the scratch file is writable");
    if let Ok(info) = probe_y4m(path) {
        assert!(!info.frame_offsets.is_empty());
        assert!(info.width > 0 && info.height > 0 && info.frame_rate > 0.0);
    }
});
