//! Property tests of SelectSettings over random cameras and random constraints:
//! - the chosen settings satisfy every required constraint (checked independently of the
//!   library's fitness code), and a failure means no native mode satisfies them all;
//! - the result never depends on the order of keys in the JSON;
//! - a candidate with a lower distance is never passed over (only an advanced set that
//!   the winner meets and it does not can remove it).

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use usermedia::constraints::{
    explain_selection, fitness_distance, select_settings, DeviceModel, DeviceModes, FacingMode,
    MediaKind, MediaStreamConstraints, MediaTrackConstraints, VideoMode,
};
use usermedia::MediaError;

#[derive(Debug, Clone)]
struct Camera {
    facing: Option<FacingMode>,
    modes: Vec<(u32, u32, u32)>,
}

fn camera() -> impl Strategy<Value = Camera> {
    let facing = prop_oneof![
        Just(None),
        Just(Some(FacingMode::User)),
        Just(Some(FacingMode::Environment)),
    ];
    let mode = (
        16u32..2000,
        16u32..2000,
        prop::sample::select(vec![5u32, 10, 15, 24, 30, 60]),
    );
    (facing, prop::collection::vec(mode, 1..5)).prop_map(|(facing, modes)| Camera { facing, modes })
}

fn models(cameras: &[Camera]) -> Vec<DeviceModel> {
    cameras
        .iter()
        .enumerate()
        .map(|(i, c)| DeviceModel {
            device_id: format!("cam{i}"),
            group_id: format!("group{}", i % 2),
            facing_mode: c.facing,
            modes: DeviceModes::Video(
                c.modes
                    .iter()
                    .map(|&(width, height, fps)| VideoMode {
                        width,
                        height,
                        frame_rate: fps as f64,
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn number(lo: f64, hi: f64, integer: bool) -> impl Strategy<Value = Value> {
    let v = (lo..hi).prop_map(move |x: f64| {
        if integer {
            json!(x.round() as i64)
        } else {
            json!(x)
        }
    });
    let v2 = v.clone();
    let v3 = v.clone();
    prop_oneof![
        v.clone(),
        v.clone().prop_map(|x| json!({ "ideal": x })),
        v.clone().prop_map(|x| json!({ "exact": x })),
        v.clone().prop_map(|x| json!({ "min": x })),
        v.clone().prop_map(|x| json!({ "max": x })),
        (v.clone(), v2.clone()).prop_map(|(a, b)| json!({ "min": a, "max": b })),
        (v, v2, v3).prop_map(|(a, b, c)| json!({ "min": a, "ideal": b, "max": c })),
    ]
}

fn strings(values: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let one = prop::sample::select(values);
    prop_oneof![
        one.clone().prop_map(|s| json!(s)),
        one.clone().prop_map(|s| json!({ "exact": s })),
        one.clone().prop_map(|s| json!({ "ideal": [s] })),
        (one.clone(), one).prop_map(|(a, b)| json!({ "exact": [a, b] })),
    ]
}

/// A constraint set as a list of (key, value) entries, in generation order.
fn constraint_entries() -> impl Strategy<Value = Vec<(String, Value)>> {
    (
        prop::option::of(number(1.0, 2500.0, true)),
        prop::option::of(number(1.0, 2500.0, true)),
        prop::option::of(number(1.0, 90.0, false)),
        prop::option::of(number(0.5, 3.0, false)),
        prop::option::of(strings(&["user", "environment", "left"])),
        prop::option::of(strings(&["none", "crop-and-scale"])),
        prop::option::of(strings(&["cam0", "cam1", "cam2", "nope"])),
    )
        .prop_map(|(w, h, f, a, facing, resize, id)| {
            [
                ("width", w),
                ("height", h),
                ("frameRate", f),
                ("aspectRatio", a),
                ("facingMode", facing),
                ("resizeMode", resize),
                ("deviceId", id),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
        })
}

/// Advanced sets: bare values (exact there) for a few properties.
fn advanced_sets() -> impl Strategy<Value = Vec<Vec<(String, Value)>>> {
    let set = (
        prop::option::of(prop::sample::select(vec![320u32, 640, 1280, 1920])),
        prop::option::of(prop::sample::select(vec![240u32, 480, 720])),
        prop::option::of(prop::sample::select(vec!["user", "environment"])),
    )
        .prop_map(|(w, h, f)| {
            let mut e = Vec::new();
            if let Some(w) = w {
                e.push(("width".to_string(), json!(w)));
            }
            if let Some(h) = h {
                e.push(("height".to_string(), json!(h)));
            }
            if let Some(f) = f {
                e.push(("facingMode".to_string(), json!(f)));
            }
            e
        });
    prop::collection::vec(set, 0..3)
}

fn to_json(
    entries: &[(String, Value)],
    advanced: &[Vec<(String, Value)>],
    order: &[usize],
) -> String {
    let mut video = Map::new();
    for &i in order {
        let (k, v) = &entries[i];
        video.insert(k.clone(), v.clone());
    }
    if !advanced.is_empty() {
        let sets: Vec<Value> = advanced
            .iter()
            .map(|set| {
                // Reverse inside advanced sets too when the order is reversed.
                let mut m = Map::new();
                let reverse = order.first().is_some_and(|&f| f != 0);
                let iter: Box<dyn Iterator<Item = &(String, Value)>> = if reverse {
                    Box::new(set.iter().rev())
                } else {
                    Box::new(set.iter())
                };
                for (k, v) in iter {
                    m.insert(k.clone(), v.clone());
                }
                Value::Object(m)
            })
            .collect();
        video.insert("advanced".into(), Value::Array(sets));
    }
    json!({ "video": video }).to_string()
}

fn parse(json: &str) -> MediaTrackConstraints {
    let (c, _) = MediaStreamConstraints::from_json_str(json).expect("generated JSON is valid");
    c.video.expect("video requested")
}

/// An independent check of one required constraint against settings (as JSON).
fn required_met(key: &str, constraint: &Value, settings: &Value) -> bool {
    let Some(obj) = constraint.as_object() else {
        return true;
    }; // bare = ideal
    let actual = settings.get(key);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0);
    for (member, want) in obj {
        let ok = match (member.as_str(), want) {
            ("ideal", _) => true,
            ("exact", Value::Number(n)) => actual
                .and_then(Value::as_f64)
                .is_some_and(|a| close(a, n.as_f64().unwrap())),
            ("min", Value::Number(n)) => actual
                .and_then(Value::as_f64)
                .is_some_and(|a| a >= n.as_f64().unwrap() - 1e-6 * a.abs().max(1.0)),
            ("max", Value::Number(n)) => actual
                .and_then(Value::as_f64)
                .is_some_and(|a| a <= n.as_f64().unwrap() + 1e-6 * a.abs().max(1.0)),
            ("exact", Value::String(s)) => actual.and_then(Value::as_str) == Some(s.as_str()),
            ("exact", Value::Array(list)) => actual.is_some_and(|a| list.contains(a)),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn native_settings(model: &DeviceModel, mode: &VideoMode) -> Value {
    let mut s = json!({
        "deviceId": model.device_id, "groupId": model.group_id,
        "width": mode.width, "height": mode.height,
        "aspectRatio": mode.width as f64 / mode.height as f64,
        "frameRate": mode.frame_rate, "resizeMode": "none",
    });
    if let Some(f) = model.facing_mode {
        s["facingMode"] = json!(f.as_str());
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn chosen_settings_satisfy_every_required_constraint(
        cameras in prop::collection::vec(camera(), 1..4),
        entries in constraint_entries(),
        advanced in advanced_sets(),
    ) {
        let models = models(&cameras);
        let refs: Vec<&DeviceModel> = models.iter().collect();
        let order: Vec<usize> = (0..entries.len()).collect();
        let constraints = parse(&to_json(&entries, &advanced, &order));
        match select_settings(MediaKind::Video, &constraints, &refs) {
            Ok(sel) => {
                let settings = serde_json::to_value(&sel.settings).unwrap();
                for (k, v) in &entries {
                    prop_assert!(required_met(k, v, &settings), "{k}: {v} not met by {settings}");
                }
                let model = &models[sel.device_index];
                let DeviceModes::Video(modes) = &model.modes else { unreachable!() };
                let (w, h, f) = (sel.settings.width.unwrap(), sel.settings.height.unwrap(), sel.settings.frame_rate.unwrap());
                if settings["resizeMode"] == "none" {
                    prop_assert!(modes.iter().any(|m| (m.width, m.height, m.frame_rate) == (w, h, f)), "not native: {settings}");
                } else {
                    prop_assert!(modes.iter().any(|m| w <= m.width && h <= m.height && f <= m.frame_rate), "not below a native mode: {settings}");
                }
            }
            Err(MediaError::OverconstrainedError { constraint, .. }) => {
                prop_assert!(entries.iter().any(|(k, _)| *k == constraint), "named {constraint}, not a constraint given");
                // No native mode of any device meets all required constraints.
                for model in &models {
                    let DeviceModes::Video(modes) = &model.modes else { unreachable!() };
                    for mode in modes {
                        let s = native_settings(model, mode);
                        prop_assert!(
                            !entries.iter().all(|(k, v)| required_met(k, v, &s)),
                            "failed although {s} meets every required constraint"
                        );
                    }
                }
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn result_does_not_depend_on_key_order(
        cameras in prop::collection::vec(camera(), 1..4),
        entries in constraint_entries(),
        advanced in advanced_sets(),
        seed in any::<u64>(),
    ) {
        let models = models(&cameras);
        let refs: Vec<&DeviceModel> = models.iter().collect();
        let order: Vec<usize> = (0..entries.len()).collect();
        // A seeded shuffle (Fisher-Yates over a simple LCG).
        let mut shuffled = order.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let a = select_settings(MediaKind::Video, &parse(&to_json(&entries, &advanced, &order)), &refs);
        let b = select_settings(MediaKind::Video, &parse(&to_json(&entries, &advanced, &shuffled)), &refs);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.device_index, b.device_index);
                prop_assert_eq!(a.settings, b.settings);
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.name(), b.name());
                prop_assert_eq!(a.constraint(), b.constraint());
            }
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
    }

    #[test]
    fn a_lower_distance_is_never_passed_over(
        cameras in prop::collection::vec(camera(), 1..4),
        entries in constraint_entries(),
        advanced in advanced_sets(),
    ) {
        let models = models(&cameras);
        let refs: Vec<&DeviceModel> = models.iter().collect();
        let order: Vec<usize> = (0..entries.len()).collect();
        let constraints = parse(&to_json(&entries, &advanced, &order));
        let (result, reports) = explain_selection(MediaKind::Video, &constraints, &refs);
        // The fast path (pruned candidates) and the full one agree.
        let fast = select_settings(MediaKind::Video, &constraints, &refs);
        match (&fast, &result) {
            (Ok(a), Ok(b)) => prop_assert_eq!(&a.settings, &b.settings),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "fast {a:?} vs full {b:?}"),
        }
        // Every reported distance is the public fitness distance of its settings.
        for r in &reports {
            let d = fitness_distance(&constraints.basic, MediaKind::Video, &r.settings);
            match r.distance {
                Some(x) => prop_assert!((x - d).abs() < 1e-9, "{x} vs {d}"),
                None => prop_assert!(d.is_infinite()),
            }
        }
        let Ok(sel) = result else {
            prop_assert!(reports.iter().all(|r| r.distance.is_none()), "failed with a finite candidate");
            return Ok(());
        };
        let winner = reports.iter().find(|r| r.selected).expect("winner reported");
        prop_assert_eq!(&winner.settings, &sel.settings);
        for r in &reports {
            let Some(d) = r.distance else { continue };
            if d < sel.distance - 1e-9 {
                // Only an advanced set the winner meets and this one fails may remove it.
                let k = r.eliminated_by_advanced;
                prop_assert!(k.is_some(), "{:?} (distance {d}) passed over for {} ", r.settings, sel.distance);
                let set = &constraints.advanced[k.unwrap()];
                prop_assert!(fitness_distance(set, MediaKind::Video, &r.settings).is_infinite());
                prop_assert!(fitness_distance(set, MediaKind::Video, &sel.settings).is_finite());
            }
        }
    }
}
