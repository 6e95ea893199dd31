//! Settings dictionaries (what a track is running at) and capabilities (what it could run
//! at), plus the allocation-free view of a settings dictionary that fitness distance reads.

use serde::Serialize;

use super::candidates::MIN_SCALED_FRAME_RATE;
use super::model::{DeviceModel, DeviceModes, FacingMode, ResizeMode};
use super::property::Property;
use super::value::Flag;

/// One property's value in a settings dictionary, borrowed so that scoring thousands of
/// candidates allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettingValue<'a> {
    Number(f64),
    Str(&'a str),
    Flag(Flag),
}

/// Anything fitness distance can score: a settings dictionary.
pub trait Settings {
    /// The value of `property`, or `None` when the dictionary has no such member.
    fn get(&self, property: Property) -> Option<SettingValue<'_>>;
}

/// `MediaTrackSettings` as a track reports it (`getSettings()`). Members a track does not
/// have are `None` and left out of the JSON. Field order is the JSON order of the CLI.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTrackSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facing_mode: Option<FacingMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_mode: Option<ResizeMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_cancellation: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_gain_control: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_suppression: Option<bool>,
}

impl Settings for MediaTrackSettings {
    fn get(&self, property: Property) -> Option<SettingValue<'_>> {
        use SettingValue::{Number, Str};
        let num = |v: Option<u32>| v.map(|v| Number(v as f64));
        match property {
            Property::Width => num(self.width),
            Property::Height => num(self.height),
            Property::AspectRatio => self.aspect_ratio.map(Number),
            Property::FrameRate => self.frame_rate.map(Number),
            Property::FacingMode => self.facing_mode.map(|f| Str(f.as_str())),
            Property::ResizeMode => self.resize_mode.map(|r| Str(r.as_str())),
            Property::SampleRate => num(self.sample_rate),
            Property::SampleSize => num(self.sample_size),
            Property::ChannelCount => num(self.channel_count),
            Property::Latency => self.latency.map(Number),
            Property::EchoCancellation => self.echo_cancellation.map(SettingValue::Flag),
            Property::AutoGainControl => self
                .auto_gain_control
                .map(|b| SettingValue::Flag(Flag::from_bool(b))),
            Property::NoiseSuppression => self
                .noise_suppression
                .map(|b| SettingValue::Flag(Flag::from_bool(b))),
            Property::DeviceId => self.device_id.as_deref().map(Str),
            Property::GroupId => self.group_id.as_deref().map(Str),
        }
    }
}

/// A `{min, max}` capability range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
}

/// `MediaTrackCapabilities` (`getCapabilities()`): numbers as `{min, max}`, booleans and
/// strings as lists of supported values.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTrackCapabilities {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<Range<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<Range<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<Range<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<Range<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facing_mode: Option<Vec<FacingMode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_mode: Option<Vec<ResizeMode>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<Range<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<Range<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<Range<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Range<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_cancellation: Option<Vec<Flag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_gain_control: Option<Vec<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_suppression: Option<Vec<bool>>,
}

fn range<T: Copy + PartialOrd>(mut values: impl Iterator<Item = T>) -> Option<Range<T>> {
    let first = values.next()?;
    let (min, max) = values.fold((first, first), |(lo, hi), v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    });
    Some(Range { min, max })
}

impl MediaTrackCapabilities {
    /// The capabilities of a local track on `device`. A camera can crop, scale and drop
    /// frames, so sizes start at 1 and frame rates at 1 fps (or a slower native mode's
    /// rate); the maxima are its native
    /// maxima. A camera without a facing mode reports an empty list (as Chrome does).
    pub fn of_device(device: &DeviceModel) -> Self {
        let mut caps = MediaTrackCapabilities {
            device_id: Some(device.device_id.clone()),
            group_id: Some(device.group_id.clone()),
            ..Default::default()
        };
        match &device.modes {
            DeviceModes::Video(modes) => {
                let max_w = modes.iter().map(|m| m.width).max().unwrap_or(0);
                let max_h = modes.iter().map(|m| m.height).max().unwrap_or(0);
                let max_f = modes.iter().map(|m| m.frame_rate).fold(0.0, f64::max);
                let min_f = modes
                    .iter()
                    .map(|m| m.frame_rate)
                    .fold(f64::INFINITY, f64::min);
                caps.width = Some(Range { min: 1, max: max_w });
                caps.height = Some(Range { min: 1, max: max_h });
                caps.aspect_ratio = Some(Range {
                    min: 1.0 / max_h.max(1) as f64,
                    max: max_w as f64,
                });
                // Frame dropping goes down to MIN_SCALED_FRAME_RATE; a native mode slower
                // than that is selectable as it is.
                caps.frame_rate = Some(Range {
                    min: MIN_SCALED_FRAME_RATE.min(min_f).min(max_f),
                    max: max_f,
                });
                caps.facing_mode = Some(device.facing_mode.into_iter().collect());
                caps.resize_mode = Some(vec![ResizeMode::None, ResizeMode::CropAndScale]);
            }
            DeviceModes::Audio {
                modes,
                echo_cancellation,
                auto_gain_control,
                noise_suppression,
            } => {
                caps.sample_rate = range(modes.iter().map(|m| m.sample_rate));
                caps.sample_size = range(modes.iter().map(|m| m.sample_size));
                caps.channel_count = range(modes.iter().map(|m| m.channel_count));
                caps.latency = range(modes.iter().map(|m| m.latency));
                caps.echo_cancellation = Some(echo_cancellation.clone());
                caps.auto_gain_control = Some(auto_gain_control.clone());
                caps.noise_suppression = Some(noise_suppression.clone());
            }
        }
        caps
    }
}
