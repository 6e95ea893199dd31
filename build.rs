//! Refuses to build without openh264's assembly: without it openh264 encodes about 3×
//! slower, and its build drops the assembly *silently* (docs/ARCHITECTURE.md, "Facts about our dependencies") when nasm is missing,
//! when nasm fails to assemble, or when `OPENH264_NO_ASM` is set. `./scripts/setup.sh`
//! installs nasm.
//!
//! What this script can check: nasm runs, and `OPENH264_NO_ASM` is not set. What it
//! cannot: whether openh264-sys2's own nasm run succeeded. That crate declares no `links`
//! key, so its build output (OUT_DIR) is neither passed to us nor guaranteed to exist yet
//! when this runs. That last case is caught at link time instead: the test
//! `encode::h264::tests::openh264_was_built_with_its_assembly` calls an SSE2 routine that
//! exists only in the assembly, so without it the test binary does not link.

fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=OPENH264_NO_ASM");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("OPENH264_NO_ASM").is_some() {
        panic!(
            "OPENH264_NO_ASM is set: openh264 would build without its assembly and encode ~3x \
             slower. Unset it (this project requires the assembly on x86)."
        );
    }
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
