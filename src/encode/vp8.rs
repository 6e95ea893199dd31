//! VP8 through libvpx: a realtime encoder for WebRTC (one pass, CBR, no lag, error
//! resilient, a keyframe every few seconds plus on request, bitrate changeable while
//! running) and the matching decoder, both on our [`VideoFrame`] — the same shape as
//! [`super::h264`], so the pipeline and the remote tracks use either.
//!
//! Why VP8 at all: Debian's Firefox has no H.264, and VP8 is the one video codec every
//! WebRTC browser must support (RFC 7742).
//!
//! The binding: `env-libvpx-sys` 5.1 links the system's libvpx through pkg-config and ships
//! pre-generated bindings per libvpx version (1.12.0, Debian 12's, among them), so the build
//! needs neither bindgen nor a network fetch. The safe crate `vpx-rs` 0.2.1 does not compile
//! against 1.12 (it uses a control added in 1.13) and passes cpu-used through varargs with
//! the wrong type, so the thin safe layer is ours, here: every `unsafe` block of the VP8
//! code is in this file, each with its reasons.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};
use std::time::Duration;

use bytes::Bytes;
use vpx_sys::{
    vp8e_enc_control_id, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_dec_cfg_t,
    vpx_codec_enc_cfg_t, vpx_codec_err_t, vpx_codec_iter_t, vpx_image_t, vpx_img_fmt, vpx_kf_mode,
    vpx_rc_mode,
};

use super::{EncodeError, EncodedUnit};
use crate::frame::{chroma_size, i420_len, VideoFrame};

/// The RTP clock of video; encoder timestamps use it too.
const CLOCK: u32 = 90_000;

/// Settings of a VP8 encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vp8Config {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Target bitrate in bits per second.
    pub bitrate: u32,
    /// A periodic keyframe every this many seconds (besides those requested).
    pub keyframe_interval: Duration,
    /// libvpx's speed setting. Negative: that fixed speed; positive: adaptive within the
    /// realtime deadline. −16 is the fastest. We use −8 (libwebrtc uses −6 on desktops):
    /// measured on a noisy 1280×720 pattern at 2 Mbit/s, 3.8 ms a frame against 4.8 ms at −6
    /// (3.6 at −10, 3.3 at −12), with the strip still exact at 300 kbit/s.
    pub cpu_used: i32,
    /// Encoder threads: libvpx splits a frame by macroblock rows. Its threads wait for each
    /// other by spinning, so on a busy machine a descheduled one makes the other burn CPU
    /// (`usermedia bench pipeline` on a loaded 2-core VM: 720p VP8 at 6 fps, 171 ms of CPU a
    /// frame, once): one thread up to 1280×720 (about 4 ms a frame there), two above.
    pub threads: u32,
}

impl Vp8Config {
    /// Realtime defaults: cpu-used −8, a keyframe every 5 s, 2 threads above 1280×720.
    pub fn new(width: u32, height: u32, frame_rate: f64, bitrate: u32) -> Self {
        Vp8Config {
            width,
            height,
            frame_rate,
            bitrate,
            keyframe_interval: Duration::from_secs(5),
            cpu_used: -8,
            threads: if width * height > 1280 * 720 { 2 } else { 1 },
        }
    }
}

/// A failed libvpx call: its status, and the context's message and detail when it has
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvpxError {
    pub status: vpx_codec_err_t,
    pub message: Option<String>,
    pub detail: Option<String>,
}

impl std::fmt::Display for LibvpxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m)?,
            None => write!(f, "{:?}", self.status)?,
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for LibvpxError {}

/// The error of a failed libvpx call on `ctx`, with libvpx's message and detail when it has
/// them.
///
/// # Safety
/// `ctx` must be a context that was passed to an init function (initialised or not: libvpx
/// fills in `err` either way).
unsafe fn context_error(
    ctx: &mut vpx_codec_ctx_t,
    what: &str,
    err: vpx_codec_err_t,
) -> EncodeError {
    // SAFETY: the caller guarantees `ctx` went through init; vpx_codec_error and
    // vpx_codec_error_detail return NULL or NUL-terminated static/context-owned strings that
    // we copy before the context changes.
    let (message, detail) = unsafe {
        let m = vpx_sys::vpx_codec_error(ctx);
        let d = vpx_sys::vpx_codec_error_detail(ctx);
        (
            (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned()),
            (!d.is_null()).then(|| CStr::from_ptr(d).to_string_lossy().into_owned()),
        )
    };
    EncodeError::Libvpx {
        what: what.to_owned(),
        source: LibvpxError {
            status: err,
            message,
            detail,
        },
    }
}

/// An all-zero context: what libvpx's init functions expect to fill in.
fn zeroed_context() -> Box<vpx_codec_ctx_t> {
    // SAFETY: vpx_codec_ctx_t is a plain C struct of pointers, integers and a union of
    // pointers; all-zero (NULL, 0, VPX_CODEC_OK) is a valid value, and what C callers start
    // from (`vpx_codec_ctx_t ctx = {0}`).
    Box::new(unsafe { std::mem::zeroed() })
}

/// Encodes I420 frames to VP8 frames, one per input frame.
pub struct Vp8Encoder {
    /// Boxed: the context's address stays fixed for libvpx's lifetime.
    ctx: Box<vpx_codec_ctx_t>,
    /// The configuration libvpx runs with (changed and re-applied for bitrate changes).
    cfg: vpx_codec_enc_cfg_t,
    config: Vp8Config,
    /// Presentation time of the last frame, in 90 kHz ticks (must increase).
    last_pts: Option<i64>,
}

// SAFETY: a libvpx codec context belongs to no thread: libvpx keeps no thread-local state
// and its worker threads are internal to each call. `Vp8Encoder` is used through `&mut self`
// only (it is not Sync), so one thread at a time touches the context.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    pub fn new(config: Vp8Config) -> Result<Self, EncodeError> {
        if config.width == 0
            || config.height == 0
            || config.width > 16_383
            || config.height > 16_383
        {
            return Err(EncodeError::Mismatch(format!(
                "VP8 cannot encode {}x{}",
                config.width, config.height
            )));
        }
        // SAFETY: vpx_codec_vp8_cx returns a pointer to libvpx's static interface table.
        let iface = unsafe { vpx_sys::vpx_codec_vp8_cx() };
        // Not zeroed: some of its enums (the bit depth) have no 0 variant.
        let mut cfg = MaybeUninit::<vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: `iface` is VP8's encoder interface and `cfg` writable memory of the
        // config's size, which the call fills in whole when it succeeds.
        let err = unsafe { vpx_sys::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            return Err(EncodeError::Libvpx {
                what: "default VP8 configuration".into(),
                source: LibvpxError {
                    status: err,
                    message: None,
                    detail: None,
                },
            });
        }
        // SAFETY: vpx_codec_enc_config_default succeeded, so every field is written.
        let mut cfg = unsafe { cfg.assume_init() };
        let frame_rate = config.frame_rate.clamp(1.0, 240.0);
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_threads = config.threads.clamp(1, 8);
        cfg.g_timebase.num = 1;
        cfg.g_timebase.den = CLOCK as c_int;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = vpx_sys::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = kbps(config.bitrate);
        // No frame dropping: receivers count frames, and a skipped frame is a visible stall.
        cfg.rc_dropframe_thresh = 0;
        // libwebrtc's realtime rate-control settings for VP8.
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
        cfg.kf_min_dist = 0;
        cfg.kf_max_dist =
            ((frame_rate * config.keyframe_interval.as_secs_f64()).round() as c_uint).max(1);

        let mut ctx = zeroed_context();
        // SAFETY: `ctx` is a zeroed, boxed (address-stable) context; `iface` is VP8's encoder;
        // `cfg` is valid for the call (libvpx copies it into the context's private data).
        let err = unsafe {
            vpx_sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &cfg,
                0,
                vpx_sys::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: `ctx` went through init; on failure libvpx leaves nothing to destroy.
            return Err(unsafe { context_error(&mut ctx, "VP8 encoder init", err) });
        }
        let mut encoder = Vp8Encoder {
            ctx,
            cfg,
            config,
            last_pts: None,
        };
        // Each control takes an int (libvpx's vp8e control type table); passed as c_int
        // through the varargs, as the C macros do.
        let controls: [(vp8e_enc_control_id, c_int); 4] = [
            (
                vp8e_enc_control_id::VP8E_SET_CPUUSED,
                config.cpu_used.clamp(-16, 16),
            ),
            (vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0),
            // Skip macroblocks that did not change (cheap on static content).
            (vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1),
            // A keyframe may take at most this % of a frame's budget (libwebrtc's rule:
            // 0.5 × the buffer's optimal size in frames), so forced ones do not burst.
            (
                vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
                ((cfg.rc_buf_optimal_sz as f64 * 0.5 * frame_rate / 10.0) as c_int).max(300),
            ),
        ];
        for (id, value) in controls {
            encoder.control(id, value)?;
        }
        Ok(encoder)
    }

    fn control(&mut self, id: vp8e_enc_control_id, value: c_int) -> Result<(), EncodeError> {
        // SAFETY: the context is initialised (constructed by `new`); every control we use
        // takes one `int` argument, which is what we pass.
        let err = unsafe { vpx_sys::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: initialised context.
            return Err(unsafe { context_error(&mut self.ctx, &format!("control {id:?}"), err) });
        }
        Ok(())
    }

    pub fn config(&self) -> &Vp8Config {
        &self.config
    }

    /// Changes the target bitrate of the running encoder (no keyframe needed).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EncodeError> {
        let mut cfg = self.cfg;
        cfg.rc_target_bitrate = kbps(bitrate);
        // SAFETY: initialised context; `cfg` is the running configuration with only the
        // target changed, valid for the call (libvpx copies it).
        let err = unsafe { vpx_sys::vpx_codec_enc_config_set(&mut *self.ctx, &cfg) };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: initialised context.
            return Err(unsafe { context_error(&mut self.ctx, "set bitrate", err) });
        }
        self.cfg = cfg;
        self.config.bitrate = bitrate;
        Ok(())
    }

    /// Encodes one frame; `keyframe` forces a keyframe. Returns `None` when the encoder
    /// produced nothing for this frame.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        keyframe: bool,
    ) -> Result<Option<EncodedUnit>, EncodeError> {
        if (frame.width(), frame.height()) != (self.config.width, self.config.height) {
            return Err(EncodeError::Mismatch(format!(
                "frame is {}x{}, the encoder {}x{}",
                frame.width(),
                frame.height(),
                self.config.width,
                self.config.height
            )));
        }
        if frame.data().len() < i420_len(frame.width(), frame.height()) {
            return Err(EncodeError::Mismatch("frame shorter than its size".into()));
        }
        let frame_rate = self.config.frame_rate.clamp(1.0, 240.0);
        let duration = (CLOCK as f64 / frame_rate).round() as i64;
        // The timeline's position, forced to increase (libvpx rejects a pts going back).
        let mut pts = (frame.timestamp.as_secs_f64() * CLOCK as f64) as i64;
        if let Some(last) = self.last_pts {
            pts = pts.max(last + 1);
        }
        self.last_pts = Some(pts);

        let mut image = MaybeUninit::<vpx_image_t>::uninit();
        // SAFETY: `image` is writable memory of an image's size (vpx_img_wrap clears it and
        // fills it in when it succeeds). Our I420 layout is libvpx's with a stride alignment of 1: Y rows of
        // `width` bytes, then U and V rows of ⌈width/2⌉, tightly packed, and the buffer is at
        // least i420_len bytes (checked above). vpx_img_wrap only fills in `image`; the
        // encoder reads the planes during vpx_codec_encode and never writes them (the cast
        // to *mut is the C API's signature, not a write), and `frame` outlives the call.
        let wrapped = unsafe {
            vpx_sys::vpx_img_wrap(
                image.as_mut_ptr(),
                vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width(),
                frame.height(),
                1,
                frame.data().as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(EncodeError::Codec("libvpx: cannot wrap the frame".into()));
        }
        // SAFETY: vpx_img_wrap succeeded (non-NULL), so it initialised `image`.
        let image = unsafe { image.assume_init() };
        let flags = if keyframe {
            vpx_sys::VPX_EFLAG_FORCE_KF as vpx_sys::vpx_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: initialised context; `image` describes `frame`'s planes (see above) and
        // both live until the call returns; libvpx copies what it keeps.
        let err = unsafe {
            vpx_sys::vpx_codec_encode(
                &mut *self.ctx,
                &image,
                pts,
                duration as c_ulong,
                flags,
                vpx_sys::VPX_DL_REALTIME as c_ulong,
            )
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: initialised context.
            return Err(unsafe { context_error(&mut self.ctx, "encode", err) });
        }
        let mut out: Option<(Vec<u8>, bool)> = None;
        let mut iter: vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: initialised context; `iter` starts NULL and is only advanced by libvpx.
            // The packet stays valid until the next call on the context.
            let pkt = unsafe { vpx_sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-NULL packets point to libvpx's packet list, valid until the next
            // call on the context; we read `kind` first and the `frame` union member only
            // for frame packets, where it is the active member.
            let (kind, data, is_key) = unsafe {
                let pkt = &*pkt;
                if pkt.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    (pkt.kind, Vec::new(), false)
                } else {
                    let f = pkt.data.frame;
                    let bytes = if f.buf.is_null() || f.sz == 0 {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec()
                    };
                    (pkt.kind, bytes, f.flags & vpx_sys::VPX_FRAME_IS_KEY != 0)
                }
            };
            if kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT || data.is_empty() {
                continue;
            }
            match &mut out {
                None => out = Some((data, is_key)),
                // With no lag and no partition output libvpx gives one frame per call.
                Some(_) => tracing::debug!("VP8: a second frame packet in one call, dropped"),
            }
        }
        Ok(out.map(|(data, keyframe)| EncodedUnit {
            data: Bytes::from(data),
            keyframe,
            timestamp: frame.timestamp,
            duration: Duration::from_secs_f64(1.0 / frame_rate),
            capture_time_ms: frame.capture_time_ms,
        }))
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed exactly once, here.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

fn kbps(bps: u32) -> c_uint {
    (bps / 1000).max(1)
}

/// Whether a VP8 frame (RFC 6386 §9.1) is a keyframe: bit 0 of the first byte is 0.
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// Decodes VP8 frames to I420 frames.
pub struct Vp8Decoder {
    /// Boxed: the context's address stays fixed for libvpx's lifetime.
    ctx: Box<vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder: the context belongs to no thread and is used through
// `&mut self` only.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    pub fn new() -> Result<Self, EncodeError> {
        let mut ctx = zeroed_context();
        let cfg = vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: zeroed, boxed context; VP8's decoder interface (a static table); `cfg` is
        // valid for the call.
        let err = unsafe {
            vpx_sys::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx_sys::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx_sys::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: `ctx` went through init.
            return Err(unsafe { context_error(&mut ctx, "VP8 decoder init", err) });
        }
        Ok(Vp8Decoder { ctx })
    }

    /// Decodes one frame. `Ok(None)` when it shows no picture; `Err` for a corrupt or
    /// undecodable frame (the decoder recovers at the next keyframe).
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<VideoFrame>, EncodeError> {
        if frame.is_empty() {
            return Err(EncodeError::Codec("empty VP8 frame".into()));
        }
        let len = c_uint::try_from(frame.len())
            .map_err(|_| EncodeError::Codec("VP8 frame too large".into()))?;
        // SAFETY: initialised context; `frame` is valid for `len` bytes during the call and
        // libvpx does not keep the pointer (no frame-threading, no input fragments).
        let err = unsafe {
            vpx_sys::vpx_codec_decode(&mut *self.ctx, frame.as_ptr(), len, std::ptr::null_mut(), 0)
        };
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // SAFETY: initialised context.
            return Err(unsafe { context_error(&mut self.ctx, "decode", err) });
        }
        let mut iter: vpx_codec_iter_t = std::ptr::null();
        let mut picture = None;
        loop {
            // SAFETY: initialised context; `iter` starts NULL and only libvpx advances it.
            // The image stays valid until the next decode call.
            let img = unsafe { vpx_sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: non-NULL: a decoder-owned image, valid until the next decode call.
            picture = Some(copy_image(unsafe { &*img })?);
        }
        Ok(picture)
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed exactly once, here.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Copies a decoded 8-bit I420 image into a tightly packed [`VideoFrame`].
fn copy_image(img: &vpx_image_t) -> Result<VideoFrame, EncodeError> {
    if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 {
        return Err(EncodeError::Codec(format!(
            "VP8 decoder gave {:?}, not I420",
            img.fmt
        )));
    }
    let (w, h) = (img.d_w, img.d_h);
    if w == 0 || h == 0 {
        return Err(EncodeError::Codec("VP8 decoder gave an empty image".into()));
    }
    let (cw, ch) = chroma_size(w, h);
    let mut data = Vec::with_capacity(i420_len(w, h));
    for (plane, pw, ph) in [(0usize, w, h), (1, cw, ch), (2, cw, ch)] {
        let (ptr, stride) = (img.planes[plane], img.stride[plane]);
        if ptr.is_null() || stride < pw as c_int {
            return Err(EncodeError::Codec(
                "VP8 decoder gave a malformed image".into(),
            ));
        }
        for row in 0..ph as usize {
            // SAFETY: libvpx's image holds `ph` rows of `stride` bytes (≥ `pw`, checked)
            // from each plane pointer, valid while `img` is (until the next decode call,
            // after this copy).
            let line =
                unsafe { std::slice::from_raw_parts(ptr.add(row * stride as usize), pw as usize) };
            data.extend_from_slice(line);
        }
    }
    Ok(VideoFrame::from_i420(w, h, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::{read_strip, render};
    use crate::encode::test_frames::noisy_pattern;

    #[test]
    fn the_strip_survives_300_kbits_at_640x480() {
        let mut enc = Vp8Encoder::new(Vp8Config::new(640, 480, 30.0, 300_000)).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut bytes = 0;
        for n in 0..90u32 {
            let t0 = 1_700_000_000_000 + n as u64 * 33;
            let frame =
                render(640, 480, n, t0).with_times(Duration::from_millis(n as u64 * 33), t0);
            let unit = enc
                .encode(&frame, false)
                .unwrap()
                .expect("one frame per input");
            assert_eq!(unit.keyframe, n == 0, "frame {n}");
            assert_eq!(is_keyframe(&unit.data), n == 0);
            bytes += unit.data.len();
            let decoded = dec
                .decode(&unit.data)
                .unwrap()
                .expect("one picture per frame");
            assert_eq!((decoded.width(), decoded.height()), (640, 480));
            let strip =
                read_strip(&decoded).unwrap_or_else(|| panic!("frame {n}: strip unreadable"));
            assert_eq!(strip.frame_number, n);
            assert_eq!(strip.capture_time_ms, t0 as u32);
        }
        // Three seconds at 300 kbit/s is ~112 kB (measured: 90 kB; the pattern is easy).
        assert!((60_000..170_000).contains(&bytes), "{bytes} bytes in 3 s");
    }

    #[test]
    fn keyframes_can_be_forced_and_recur() {
        let mut config = Vp8Config::new(320, 240, 30.0, 300_000);
        config.keyframe_interval = Duration::from_secs(1);
        let mut enc = Vp8Encoder::new(config).unwrap();
        let keys: Vec<u32> = (0..70u32)
            .filter(|&n| {
                let frame =
                    render(320, 240, n, 0).with_times(Duration::from_millis(n as u64 * 33), 0);
                enc.encode(&frame, n == 10).unwrap().unwrap().keyframe
            })
            .collect();
        assert_eq!(keys[..2], [0, 10], "first and forced: {keys:?}");
        assert!(keys.len() >= 3, "periodic keyframes within ~1 s: {keys:?}");
        assert!(keys.windows(2).all(|w| w[1] - w[0] <= 30), "{keys:?}");
        // A decoder that starts late decodes from the next keyframe.
        let mut dec = Vp8Decoder::new().unwrap();
        let key = enc
            .encode(
                &render(320, 240, 80, 0).with_times(Duration::from_secs(3), 0),
                true,
            )
            .unwrap()
            .unwrap();
        assert!(dec.decode(&key.data).unwrap().is_some());
        assert!(
            enc.encode(&render(640, 480, 81, 0), false).is_err(),
            "size mismatch"
        );
    }

    #[test]
    fn bitrate_changes_take_effect() {
        let noisy = |n: u32| noisy_pattern(n).with_times(Duration::from_millis(n as u64 * 33), 0);
        let size = |before: u32, after: u32| {
            let mut enc = Vp8Encoder::new(Vp8Config::new(640, 480, 30.0, before)).unwrap();
            let mut bytes = 0;
            for n in 0..120u32 {
                if n == 30 {
                    enc.set_bitrate(after).unwrap();
                }
                let unit = enc.encode(&noisy(n), false).unwrap();
                if n >= 60 {
                    bytes += unit.map_or(0, |u| u.data.len());
                }
            }
            bytes
        };
        let (low, high) = (size(2_000_000, 100_000), size(100_000, 2_000_000));
        // Two seconds measured: 100 kbit/s is ~25 kB (libvpx's quantizer cap lets it
        // overshoot on pure noise), 2 Mbit/s ~500 kB.
        assert!(low < 120_000, "100 kbit/s gave {low} bytes");
        assert!(
            high > 3 * low,
            "2 Mbit/s gave {high} bytes, 100 kbit/s {low}"
        );
    }

    #[test]
    fn odd_sizes_round_trip() {
        let mut enc = Vp8Encoder::new(Vp8Config::new(321, 181, 30.0, 300_000)).unwrap();
        let unit = enc.encode(&render(321, 181, 0, 0), false).unwrap().unwrap();
        let frame = Vp8Decoder::new()
            .unwrap()
            .decode(&unit.data)
            .unwrap()
            .unwrap();
        assert_eq!((frame.width(), frame.height()), (321, 181));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(dec.decode(&[]).is_err());
        let _ = dec.decode(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0xff, 0xff, 0xff]);
        let _ = dec.decode(b"not vp8 at all");
        assert!(Vp8Encoder::new(Vp8Config::new(0, 480, 30.0, 1)).is_err());
    }
}
