//! The A/V offset (pure): the tone's marker and the pattern's marker block start at the
//! same wall-clock instant at the sender; the receiver notes when each was presented and
//! pairs them. A positive offset means audio comes later than video.

/// Marker instants further apart than this are not a pair.
const PAIR_WITHIN_MS: f64 = 500.0;
/// Instants kept per kind (the most recent): bounded state.
const KEPT: usize = 64;
/// Offsets kept for the median.
const OFFSETS_KEPT: usize = 1024;

/// Pairs audio and video marker instants into offsets.
#[derive(Debug, Clone, Default)]
pub struct AvOffset {
    audio: Vec<f64>,
    video: Vec<f64>,
    offsets: Vec<f64>,
}

impl AvOffset {
    pub fn new() -> Self {
        AvOffset::default()
    }

    /// An audio marker started playing at `at_ms` (wall clock).
    pub fn audio(&mut self, at_ms: f64) {
        if let Some(i) = nearest(&self.video, at_ms) {
            let v = self.video.remove(i);
            self.push_offset(at_ms - v);
        } else {
            keep(&mut self.audio, at_ms);
        }
    }

    /// A video marker's instant was presented at `at_ms` (wall clock).
    pub fn video(&mut self, at_ms: f64) {
        if let Some(i) = nearest(&self.audio, at_ms) {
            let a = self.audio.remove(i);
            self.push_offset(a - at_ms);
        } else {
            keep(&mut self.video, at_ms);
        }
    }

    fn push_offset(&mut self, offset: f64) {
        if self.offsets.len() == OFFSETS_KEPT {
            self.offsets.remove(0);
        }
        self.offsets.push(offset);
    }

    /// Pairs found.
    pub fn pairs(&self) -> usize {
        self.offsets.len()
    }

    /// The median offset, ms, rounded (`None` before a pair).
    pub fn median_ms(&self) -> Option<i64> {
        let mut sorted = self.offsets.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        (n > 0).then(|| {
            let m = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            m.round() as i64
        })
    }
}

fn nearest(list: &[f64], at: f64) -> Option<usize> {
    list.iter()
        .enumerate()
        .filter(|(_, t)| (**t - at).abs() <= PAIR_WITHIN_MS)
        .min_by(|a, b| (a.1 - at).abs().total_cmp(&(b.1 - at).abs()))
        .map(|(i, _)| i)
}

fn keep(list: &mut Vec<f64>, at: f64) {
    if list.len() == KEPT {
        list.remove(0);
    }
    list.push(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_pair_in_either_order_and_give_the_median() {
        let mut s = AvOffset::new();
        assert_eq!(s.median_ms(), None);
        s.video(1000.0);
        s.audio(1012.0);
        s.audio(2030.0);
        s.video(2000.0);
        s.video(3000.0);
        s.audio(3011.4);
        assert_eq!(s.pairs(), 3);
        assert_eq!(s.median_ms(), Some(12));
        // Too far apart to be one instant.
        let mut s = AvOffset::new();
        s.video(1000.0);
        s.audio(1800.0);
        assert_eq!(s.median_ms(), None);
        // Audio ahead of video: negative.
        s.video(1825.0);
        assert_eq!(s.median_ms(), Some(-25));
    }
}
