//! Refuses to build without nasm: openh264 would silently build without its assembly and
//! encode about 3× slower (DESIGN.md). `./scripts/setup.sh` installs it.

fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    let found = std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        panic!(
            "nasm is not installed: openh264 would build without its assembly and encode ~3x \
             slower. Install it (apt-get install nasm, or run ./scripts/setup.sh)."
        );
    }
}
