//! Candidate settings dictionaries of devices: every native mode (resizeMode `none`) and,
//! for cameras, crop-and-scale settings derived from each native mode.

use super::model::{AudioMode, DeviceModel, DeviceModes, ResizeMode, VideoMode};
use super::property::Property;
use super::settings::{MediaTrackSettings, SettingValue, Settings};
use super::value::{ConstraintSet, Flag, MediaTrackConstraints, NumberConstraint};

/// The values of one candidate; the device's strings are looked up through
/// [`CandidateView`] so candidates stay `Copy` and cheap to score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CandidateValues {
    Video {
        width: u32,
        height: u32,
        frame_rate: f64,
        resize_mode: ResizeMode,
    },
    Audio {
        mode: AudioMode,
        echo_cancellation: Flag,
        auto_gain_control: bool,
        noise_suppression: bool,
    },
}

/// A candidate settings dictionary: the index of its device plus its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub device: usize,
    pub values: CandidateValues,
}

impl Candidate {
    /// The full settings dictionary, as the track would report it.
    pub fn to_settings(&self, device: &DeviceModel) -> MediaTrackSettings {
        let mut s = MediaTrackSettings {
            device_id: Some(device.device_id.clone()),
            group_id: Some(device.group_id.clone()),
            ..Default::default()
        };
        match self.values {
            CandidateValues::Video {
                width,
                height,
                frame_rate,
                resize_mode,
            } => {
                s.width = Some(width);
                s.height = Some(height);
                s.aspect_ratio = Some(width as f64 / height as f64);
                s.frame_rate = Some(frame_rate);
                s.facing_mode = device.facing_mode;
                s.resize_mode = Some(resize_mode);
            }
            CandidateValues::Audio {
                mode,
                echo_cancellation,
                auto_gain_control,
                noise_suppression,
            } => {
                s.sample_rate = Some(mode.sample_rate);
                s.sample_size = Some(mode.sample_size);
                s.channel_count = Some(mode.channel_count);
                s.latency = Some(mode.latency);
                s.echo_cancellation = Some(echo_cancellation);
                s.auto_gain_control = Some(auto_gain_control);
                s.noise_suppression = Some(noise_suppression);
            }
        }
        s
    }

    /// How far the candidate is from the default 640×480 at 30 fps (the tie-breaker).
    pub(crate) fn default_closeness(&self) -> f64 {
        match self.values {
            CandidateValues::Video {
                width,
                height,
                frame_rate,
                ..
            } => rel(width as f64, 640.0) + rel(height as f64, 480.0) + rel(frame_rate, 30.0),
            CandidateValues::Audio { .. } => 0.0,
        }
    }

    pub(crate) fn resize_rank(&self) -> u8 {
        match self.values {
            CandidateValues::Video {
                resize_mode: ResizeMode::CropAndScale,
                ..
            } => 1,
            _ => 0,
        }
    }
}

fn rel(a: f64, b: f64) -> f64 {
    let d = a.abs().max(b.abs());
    if d == 0.0 {
        0.0
    } else {
        (a - b).abs() / d
    }
}

/// A candidate seen together with its device: a [`Settings`] dictionary.
pub struct CandidateView<'a> {
    pub device: &'a DeviceModel,
    pub values: &'a CandidateValues,
}

impl Settings for CandidateView<'_> {
    fn get(&self, property: Property) -> Option<SettingValue<'_>> {
        use SettingValue::{Number, Str};
        match property {
            Property::DeviceId => return Some(Str(&self.device.device_id)),
            Property::GroupId => return Some(Str(&self.device.group_id)),
            _ => {}
        }
        match *self.values {
            CandidateValues::Video {
                width,
                height,
                frame_rate,
                resize_mode,
            } => match property {
                Property::Width => Some(Number(width as f64)),
                Property::Height => Some(Number(height as f64)),
                Property::AspectRatio => Some(Number(width as f64 / height as f64)),
                Property::FrameRate => Some(Number(frame_rate)),
                Property::FacingMode => self.device.facing_mode.map(|f| Str(f.as_str())),
                Property::ResizeMode => Some(Str(resize_mode.as_str())),
                _ => None,
            },
            CandidateValues::Audio {
                mode,
                echo_cancellation,
                auto_gain_control,
                noise_suppression,
            } => match property {
                Property::SampleRate => Some(Number(mode.sample_rate as f64)),
                Property::SampleSize => Some(Number(mode.sample_size as f64)),
                Property::ChannelCount => Some(Number(mode.channel_count as f64)),
                Property::Latency => Some(Number(mode.latency)),
                Property::EchoCancellation => Some(SettingValue::Flag(echo_cancellation)),
                Property::AutoGainControl => {
                    Some(SettingValue::Flag(Flag::from_bool(auto_gain_control)))
                }
                Property::NoiseSuppression => {
                    Some(SettingValue::Flag(Flag::from_bool(noise_suppression)))
                }
                _ => None,
            },
        }
    }
}

/// The device-level part of a settings dictionary (ids and facing mode), shared by all
/// of a device's candidates, so those constraints are scored once per device.
pub(crate) struct DeviceView<'a>(pub &'a DeviceModel);

impl Settings for DeviceView<'_> {
    fn get(&self, property: Property) -> Option<SettingValue<'_>> {
        match property {
            Property::DeviceId => Some(SettingValue::Str(&self.0.device_id)),
            Property::GroupId => Some(SettingValue::Str(&self.0.group_id)),
            Property::FacingMode => self.0.facing_mode.map(|f| SettingValue::Str(f.as_str())),
            _ => None,
        }
    }
}

/// Whether a property is the same for every candidate of a device.
pub(crate) fn is_device_level(property: Property) -> bool {
    matches!(
        property,
        Property::DeviceId | Property::GroupId | Property::FacingMode
    )
}

/// The lowest frame rate frame dropping produces, and the minimum of a camera track's
/// frameRate capability ([`MediaTrackCapabilities::of_device`](super::MediaTrackCapabilities::of_device)):
/// the two must agree, or a rate the capabilities exclude could be selected.
pub const MIN_SCALED_FRAME_RATE: f64 = 1.0;

/// One dimension's required range and the value to aim for.
#[derive(Debug, Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    target: Option<f64>,
}

impl Axis {
    fn of(c: Option<&NumberConstraint>) -> Axis {
        match c {
            None => Axis {
                lo: f64::NEG_INFINITY,
                hi: f64::INFINITY,
                target: None,
            },
            Some(c) => {
                let (lo, hi) = c.required_range();
                Axis {
                    lo,
                    hi,
                    target: c.exact.or(c.ideal),
                }
            }
        }
    }

    /// This axis further narrowed by an advanced set's constraint; `None` when the two
    /// ranges do not overlap.
    fn narrowed(self, c: Option<&NumberConstraint>) -> Option<Axis> {
        let Some(c) = c else { return Some(self) };
        let (lo, hi) = c.required_range();
        let narrowed = Axis {
            lo: self.lo.max(lo),
            hi: self.hi.min(hi),
            target: c.exact.or(c.ideal).or(self.target),
        };
        (narrowed.lo <= narrowed.hi).then_some(narrowed)
    }
}

/// The sizes and rate a crop-and-scale candidate aims for, from one constraint context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScaleTargets {
    width: Axis,
    height: Axis,
    aspect: Axis,
    frame_rate: Axis,
    width_bounds: (f64, f64),
    height_bounds: (f64, f64),
    /// The lowest rate this context requires (before the per-mode floor of frame
    /// dropping, which depends on the native rate: see [`Self::apply`]).
    rate_lo: f64,
    /// No target and no range: every mode maps to itself.
    unconstrained: bool,
}

/// The smaller of two numbers neither of which is NaN (`f64::min` without its NaN care).
#[inline]
fn lesser(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

impl ScaleTargets {
    fn of(set: &ConstraintSet) -> ScaleTargets {
        Self::from_axes(
            Axis::of(set.number(Property::Width)),
            Axis::of(set.number(Property::Height)),
            Axis::of(set.number(Property::AspectRatio)),
            Axis::of(set.number(Property::FrameRate)),
        )
    }

    fn from_axes(width: Axis, height: Axis, aspect: Axis, frame_rate: Axis) -> ScaleTargets {
        let free = |a: &Axis| a.target.is_none() && a.lo <= 0.0 && a.hi == f64::INFINITY;
        ScaleTargets {
            unconstrained: free(&width) && free(&height) && free(&aspect) && free(&frame_rate),
            rate_lo: frame_rate.lo,
            width_bounds: Self::bounds(&width),
            height_bounds: Self::bounds(&height),
            width,
            height,
            aspect,
            frame_rate,
        }
    }

    fn narrowed(self, set: &ConstraintSet) -> Option<ScaleTargets> {
        Some(Self::from_axes(
            self.width.narrowed(set.number(Property::Width))?,
            self.height.narrowed(set.number(Property::Height))?,
            self.aspect.narrowed(set.number(Property::AspectRatio))?,
            self.frame_rate.narrowed(set.number(Property::FrameRate))?,
        ))
    }

    /// The crop-and-scale settings derived from `native` that come closest to the targets
    /// within the required ranges, keeping the aspect ratio unless asked otherwise; `None`
    /// if no size or rate at or below the native mode meets the required ranges.
    fn apply(&self, native: &VideoMode) -> Option<(u32, u32, f64)> {
        if self.unconstrained {
            return Some((native.width, native.height, native.frame_rate));
        }
        let (nw, nh, nf) = (native.width as f64, native.height as f64, native.frame_rate);
        // The integer bounds of the required ranges are precomputed (`Self::bounds`);
        // native sizes are integers, so capping them there keeps them integral.
        // Plain comparisons instead of f64::min/max (which handle NaN with extra
        // instructions; this runs per mode per context): every operand here is a native
        // size or a bound, never NaN.
        let (wlo, whi) = (self.width_bounds.0, lesser(self.width_bounds.1, nw));
        let (hlo, hhi) = (self.height_bounds.0, lesser(self.height_bounds.1, nh));
        // Frames are dropped down to MIN_SCALED_FRAME_RATE, or not at all below a slower
        // native rate: the same floor as `feasible` and the frameRate capability, so a
        // context `feasible` accepts through a slow mode is one `apply` can produce.
        let floor = lesser(MIN_SCALED_FRAME_RATE, nf);
        let flo = if self.rate_lo > floor {
            self.rate_lo
        } else {
            floor
        };
        let fhi = lesser(self.frame_rate.hi, nf);
        if wlo > whi || hlo > hhi || flo > fhi || self.aspect.lo > self.aspect.hi {
            return None;
        }
        // Manual clamps: the bounds are checked above, and NaN collapses to the lower bound
        // (as `v.max(lo).min(hi)` would).
        let clamp = |v: f64, lo: f64, hi: f64| {
            let v = if v > lo { v } else { lo };
            if v < hi {
                v
            } else {
                hi
            }
        };
        let (iw, ih) = (self.width.target, self.height.target);
        let aspect = self
            .aspect
            .target
            .or(match (iw, ih) {
                (Some(w), Some(h)) if h > 0.0 => Some(w / h),
                _ => None,
            })
            .unwrap_or(nw / nh);
        let aspect = clamp(aspect, self.aspect.lo, self.aspect.hi);
        let (tw, th) = match (iw, ih) {
            (Some(w), Some(h)) => (w, h),
            (Some(w), None) => (w, w / aspect),
            (None, Some(h)) => (h * aspect, h),
            (None, None) if nw / nh >= aspect => (nh * aspect, nh),
            (None, None) => (nw, nw / aspect),
        };
        let (tw, th) = (round(tw), round(th));
        let mut w = clamp(tw, wlo, whi);
        let mut h = clamp(th, hlo, hhi);
        // A side that had to be clamped drags the free side along, keeping the ratio.
        if ih.is_none() && w != tw {
            h = clamp(round(w / aspect), hlo, hhi);
        }
        if iw.is_none() && h != th {
            w = clamp(round(h * aspect), wlo, whi);
        }
        let f = clamp(self.frame_rate.target.unwrap_or(nf), flo, fhi);
        Some((w as u32, h as u32, f))
    }

    /// Whether some size and rate at or below `native` lies inside every required range
    /// (width, height, aspect ratio, frame rate) of this context.
    fn feasible(&self, native: &VideoMode) -> bool {
        let (wlo, whi) = (
            self.width_bounds.0,
            self.width_bounds.1.min(native.width as f64),
        );
        let (hlo, hhi) = (
            self.height_bounds.0,
            self.height_bounds.1.min(native.height as f64),
        );
        // Frames are dropped down to MIN_SCALED_FRAME_RATE; a slower native rate as it is.
        let (flo, fhi) = (
            self.frame_rate
                .lo
                .max(MIN_SCALED_FRAME_RATE.min(native.frame_rate)),
            self.frame_rate.hi.min(native.frame_rate),
        );
        // The aspect ratios reachable in that rectangle run from wlo/hhi to whi/hlo.
        wlo <= whi
            && hlo <= hhi
            && flo <= fhi
            && wlo / hhi <= self.aspect.hi
            && whi / hlo >= self.aspect.lo
    }

    /// [`feasible`](Self::feasible) for a native mode without limits: false when the
    /// ranges contradict each other whatever the device (1920×1080 exactly and an aspect
    /// ratio of 1.5), so no mode needs checking.
    fn feasible_at_any_size(&self) -> bool {
        let (wlo, whi) = self.width_bounds;
        let (hlo, hhi) = self.height_bounds;
        wlo <= whi && hlo <= hhi && wlo / hhi <= self.aspect.hi && whi / hlo >= self.aspect.lo
    }

    /// Integer bounds of a size range: at least 1, whole pixels inside the range.
    fn bounds(axis: &Axis) -> (f64, f64) {
        (axis.lo.max(1.0).ceil(), axis.hi.floor())
    }
}

/// Rounds half up. Sizes are positive and far below 2^31, where a cast is exact and, unlike
/// `f64::round` on baseline x86-64, not a libm call (this runs per mode per context).
fn round(x: f64) -> f64 {
    if x > 0.0 && x < 2_147_483_647.0 {
        (x + 0.5) as u32 as f64
    } else {
        x.round()
    }
}

/// The crop-and-scale targets, mirroring how SelectSettings applies the advanced sets: the
/// basic set; then, for each advanced set in order, the running context (basic ∩ every
/// earlier set kept) narrowed by that set — kept, and carried on, only when some device
/// that can still be selected has a native mode from which a setting inside every range of
/// it can be made. A set that no device can meet is skipped here as selection skips it, so
/// the sets after it still narrow the context (`advanced: [{width: 5000}, {width: 500}]`),
/// and a set that can be met narrows what the later sets are tried with
/// (`advanced: [{aspectRatio: 1}, {width: 500}]` gives 500×500, not 480×480).
///
/// `device_meets(set, device)` says whether `devices[device]` meets the device-level
/// constraints (ids, facing mode) of the basic set (`None`) or of advanced set `Some(k)`.
pub(crate) fn scale_contexts(
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
    mut device_meets: impl FnMut(Option<usize>, usize) -> bool,
) -> Vec<ScaleTargets> {
    let base = ScaleTargets::of(&constraints.basic);
    let mut contexts = vec![base];
    if constraints.advanced.is_empty() {
        return contexts;
    }
    let mut selectable: Vec<bool> = (0..devices.len()).map(|d| device_meets(None, d)).collect();
    let mut running = base;
    for (k, set) in constraints.advanced.iter().enumerate() {
        let Some(next) = running.narrowed(set) else {
            continue;
        };
        if !next.feasible_at_any_size() {
            continue;
        }
        let meets: Vec<bool> = selectable
            .iter()
            .enumerate()
            .map(|(d, &ok)| ok && device_meets(Some(k), d))
            .collect();
        let feasible = devices.iter().zip(&meets).any(|(device, &ok)| {
            ok && match &device.modes {
                DeviceModes::Video(modes) => modes.iter().any(|m| next.feasible(m)),
                DeviceModes::Audio { .. } => false,
            }
        });
        if feasible {
            contexts.push(next);
            running = next;
            selectable = meets;
        }
    }
    contexts
}

/// Emits the candidates of one device (index `index`) in mode order: each native mode,
/// then its crop-and-scale candidates, one per context, without repeats. Unless
/// `keep_unscaled` is set, a crop-and-scale candidate identical to its native mode is left
/// out: without a resizeMode constraint it can only tie with the native one, and ties go
/// to the native one. Candidates go straight to `emit` (selection scores them as they
/// come: no intermediate list to copy through).
pub(crate) fn generate_device(
    index: usize,
    device: &DeviceModel,
    contexts: &[ScaleTargets],
    keep_unscaled: bool,
    mut emit: impl FnMut(Candidate),
) {
    match &device.modes {
        DeviceModes::Video(modes) => {
            // The last crop-and-scale values each context produced on this device. Many
            // native modes scale to the same values (every mode above 1280×720 scales to
            // an ideal 1280×720): identical settings score identically and the earlier
            // wins the tie, so the repeats are dropped.
            let mut last: Vec<Option<(u32, u32, f64)>> = vec![None; contexts.len()];
            // The crop-and-scale values emitted for the current mode.
            let mut emitted: Vec<(u32, u32, f64)> = Vec::with_capacity(contexts.len());
            for mode in modes {
                emit(Candidate {
                    device: index,
                    values: CandidateValues::Video {
                        width: mode.width,
                        height: mode.height,
                        frame_rate: mode.frame_rate,
                        resize_mode: ResizeMode::None,
                    },
                });
                emitted.clear();
                for (targets, last) in contexts.iter().zip(last.iter_mut()) {
                    if targets.unconstrained && !keep_unscaled {
                        // Every mode maps to itself: nothing to add.
                        continue;
                    }
                    let Some(scaled) = targets.apply(mode) else {
                        continue;
                    };
                    if *last == Some(scaled) {
                        continue;
                    }
                    *last = Some(scaled);
                    let (width, height, frame_rate) = scaled;
                    let unscaled = width == mode.width
                        && height == mode.height
                        && frame_rate == mode.frame_rate;
                    if (unscaled && !keep_unscaled) || emitted.contains(&scaled) {
                        continue;
                    }
                    emitted.push(scaled);
                    emit(Candidate {
                        device: index,
                        values: CandidateValues::Video {
                            width,
                            height,
                            frame_rate,
                            resize_mode: ResizeMode::CropAndScale,
                        },
                    });
                }
            }
        }
        DeviceModes::Audio {
            modes,
            echo_cancellation,
            auto_gain_control,
            noise_suppression,
        } => {
            for mode in modes {
                for &ec in echo_cancellation {
                    for &agc in auto_gain_control {
                        for &ns in noise_suppression {
                            emit(Candidate {
                                device: index,
                                values: CandidateValues::Audio {
                                    mode: *mode,
                                    echo_cancellation: ec,
                                    auto_gain_control: agc,
                                    noise_suppression: ns,
                                },
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Every candidate of `devices` for `constraints`, in device order, then mode order,
/// including crop-and-scale candidates identical to their native mode.
#[cfg(test)]
pub(crate) fn generate(
    devices: &[&DeviceModel],
    constraints: &MediaTrackConstraints,
) -> Vec<Candidate> {
    let contexts = scale_contexts(constraints, devices, |_, _| true);
    let mut out = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        generate_device(index, device, &contexts, true, |c| out.push(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraints::MediaStreamConstraints;

    fn camera(modes: &[(u32, u32, f64)]) -> DeviceModel {
        DeviceModel::test_camera("cam", None, modes)
    }

    fn scaled(json: &str, mode: (u32, u32, f64)) -> Option<(u32, u32, f64)> {
        let (c, _) = MediaStreamConstraints::from_json_str(json).unwrap();
        let c = c.video.unwrap();
        let native = VideoMode {
            width: mode.0,
            height: mode.1,
            frame_rate: mode.2,
        };
        ScaleTargets::of(&c.basic).apply(&native)
    }

    #[test]
    fn scaling_keeps_aspect_ratio_by_default() {
        assert_eq!(
            scaled(r#"{"video":{"width":320}}"#, (1280, 720, 30.0)),
            Some((320, 180, 30.0))
        );
        assert_eq!(
            scaled(r#"{"video":{"height":360}}"#, (640, 480, 30.0)),
            Some((480, 360, 30.0))
        );
        assert_eq!(
            scaled(r#"{"video":{"frameRate":15}}"#, (640, 480, 30.0)),
            Some((640, 480, 15.0))
        );
    }

    #[test]
    fn scaling_crops_to_a_requested_aspect_ratio() {
        assert_eq!(
            scaled(r#"{"video":{"aspectRatio":1.0}}"#, (1280, 720, 30.0)),
            Some((720, 720, 30.0))
        );
        assert_eq!(
            scaled(r#"{"video":{"width":320,"height":180}}"#, (640, 480, 30.0)),
            Some((320, 180, 30.0))
        );
    }

    #[test]
    fn scaling_never_exceeds_native_and_respects_ranges() {
        assert_eq!(
            scaled(r#"{"video":{"width":4000}}"#, (1280, 720, 30.0)),
            Some((1280, 720, 30.0))
        );
        assert_eq!(
            scaled(r#"{"video":{"width":{"min":2000}}}"#, (1280, 720, 30.0)),
            None
        );
        assert_eq!(
            scaled(r#"{"video":{"frameRate":{"min":60}}}"#, (1280, 720, 30.0)),
            None
        );
        assert_eq!(
            scaled(r#"{"video":{"width":{"max":400}}}"#, (1280, 720, 30.0)),
            Some((400, 225, 30.0))
        );
    }

    #[test]
    fn a_mode_slower_than_the_frame_dropping_floor_still_scales() {
        // 0.5 fps native: the floor is the native rate, not 1 fps.
        assert_eq!(
            scaled(r#"{"video":{"width":{"exact":320}}}"#, (640, 480, 0.5)),
            Some((320, 240, 0.5))
        );
        assert_eq!(
            scaled(r#"{"video":{"frameRate":{"exact":0.5}}}"#, (640, 480, 0.5)),
            Some((640, 480, 0.5))
        );
        assert_eq!(
            scaled(r#"{"video":{"frameRate":{"exact":0.25}}}"#, (640, 480, 0.5)),
            None
        );
        // A faster mode still stops dropping at 1 fps.
        assert_eq!(
            scaled(r#"{"video":{"frameRate":{"exact":0.5}}}"#, (640, 480, 30.0)),
            None
        );
        assert_eq!(
            scaled(r#"{"video":{"frameRate":{"max":0.5}}}"#, (640, 480, 30.0)),
            None
        );
    }

    #[test]
    fn apply_produces_a_setting_wherever_feasible_says_one_exists() {
        // The two must agree, or a context kept through `feasible` narrows later sets
        // that no candidate can meet.
        let modes = [(640, 480, 0.5), (640, 480, 30.0), (1280, 720, 2.0)];
        let sets = [
            r#"{"video":{"width":{"exact":320}}}"#,
            r#"{"video":{"frameRate":{"exact":0.5}}}"#,
            r#"{"video":{"frameRate":{"max":0.75}}}"#,
            r#"{"video":{"frameRate":{"min":0.5,"max":1}}}"#,
            r#"{"video":{"frameRate":{"exact":1.5},"width":{"max":700}}}"#,
            r#"{"video":{"aspectRatio":{"exact":1},"frameRate":{"max":1}}}"#,
        ];
        for json in sets {
            let (c, _) = MediaStreamConstraints::from_json_str(json).unwrap();
            let targets = ScaleTargets::of(&c.video.unwrap().basic);
            for (w, h, f) in modes {
                let native = VideoMode {
                    width: w,
                    height: h,
                    frame_rate: f,
                };
                assert_eq!(
                    targets.feasible(&native),
                    targets.apply(&native).is_some(),
                    "{json} on {w}x{h}@{f}"
                );
            }
        }
    }

    #[test]
    fn candidates_cover_native_and_scaled_modes() {
        let cam = camera(&[(640, 480, 30.0), (1280, 720, 30.0)]);
        let (c, _) = MediaStreamConstraints::from_json_str(r#"{"video":{"width":320}}"#).unwrap();
        let out = generate(&[&cam], c.video.as_ref().unwrap());
        let sizes: Vec<_> = out
            .iter()
            .map(|c| match c.values {
                CandidateValues::Video {
                    width,
                    height,
                    resize_mode,
                    ..
                } => (width, height, resize_mode),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            sizes,
            vec![
                (640, 480, ResizeMode::None),
                (320, 240, ResizeMode::CropAndScale),
                (1280, 720, ResizeMode::None),
                (320, 180, ResizeMode::CropAndScale),
            ]
        );
    }

    #[test]
    fn audio_candidates_are_native_modes_times_processing_options() {
        let mic = DeviceModel {
            device_id: "mic".into(),
            group_id: "g".into(),
            facing_mode: None,
            modes: DeviceModes::Audio {
                modes: vec![AudioMode {
                    sample_rate: 48000,
                    channel_count: 1,
                    sample_size: 16,
                    latency: 0.01,
                }],
                echo_cancellation: vec![Flag::Off, Flag::On],
                auto_gain_control: vec![false, true],
                noise_suppression: vec![false],
            },
        };
        let out = generate(&[&mic], &MediaTrackConstraints::default());
        assert_eq!(out.len(), 4);
    }
}
