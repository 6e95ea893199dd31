//! VP8 RTP (framed as `tests/fixtures/rtp/*.rtp`: a big-endian u16 length, then the
//! packet) through a remote track's depacketizer, unit maker, size gate and libvpx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usermedia::encode::VideoCodec;
use usermedia::fuzzing::rtp_video;

fuzz_target!(|data: &[u8]| {
    rtp_video(VideoCodec::Vp8, data).expect("a decoder");
});
