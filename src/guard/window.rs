//! Velocity windows: "at most `max` per `per_s` seconds", counted with two fixed buckets and a
//! sliding estimate (the previous bucket's count weighted by how much of it still overlaps the
//! window, plus the current bucket's). O(1) state per window however much traffic there is, so a
//! country under attack costs a few rows, not a log of every request. Within the first bucket the
//! count is exact: the `max + 1`-th request is refused.

use serde::{Deserialize, Serialize};

/// One limit on one key, e.g. `{"name": "w:600", "max": 3, "per_s": 600}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The counter's name in the key's object: the scope (`w` every request, `e` enrolments)
    /// and the length.
    pub name: String,
    pub max: u64,
    pub per_s: u64,
}

/// A window's counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Start of the current bucket (epoch ms).
    pub start_ms: u64,
    pub count: u64,
    /// The previous bucket's count.
    pub prev: u64,
    /// Requests refused in the current bucket (the first one raises the alert).
    #[serde(default)]
    pub refused: u64,
}

impl Counter {
    /// The counter as of `now_ms`, its buckets advanced.
    pub fn rolled(self, now_ms: u64, per_s: u64) -> Counter {
        let per_ms = per_s.max(1) * 1000;
        if self.start_ms == 0 && self.count == 0 {
            return Counter { start_ms: now_ms, ..Counter::default() };
        }
        let elapsed = now_ms.saturating_sub(self.start_ms);
        match elapsed / per_ms {
            0 => self,
            1 => Counter { start_ms: self.start_ms + per_ms, count: 0, prev: self.count, refused: 0 },
            _ => Counter { start_ms: now_ms, ..Counter::default() },
        }
    }

    /// Requests counted in the sliding window ending at `now_ms` (of a rolled counter).
    pub fn estimate(&self, now_ms: u64, per_s: u64) -> u64 {
        let per_ms = per_s.max(1) * 1000;
        let into = now_ms.saturating_sub(self.start_ms).min(per_ms);
        let weight = (per_ms - into) as f64 / per_ms as f64;
        self.count + (self.prev as f64 * weight).ceil() as u64
    }
}

/// What a window says about one more request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    pub name: String,
    pub max: u64,
    pub per_s: u64,
    /// When one more request would next fit (at the latest: the end of the current bucket plus
    /// the window, when the previous bucket no longer counts).
    pub retry_after_ms: u64,
    /// This refusal is the window's first in its bucket: the key just tripped (alert).
    pub first: bool,
}

impl Limit {
    /// A limit the isolate remembered from an earlier refusal (it asked no object this time).
    pub fn remembered() -> Limit {
        Limit { name: String::new(), max: 0, per_s: 0, retry_after_ms: 0, first: false }
    }
}

/// Checks one more request against `window` at `now_ms`: the counter with it counted, or the
/// limit it hits (the counter then counts the refusal, not the request).
pub fn admit(counter: Counter, window: &Window, now_ms: u64) -> (Counter, Result<(), Limit>) {
    let c = counter.rolled(now_ms, window.per_s);
    if c.estimate(now_ms, window.per_s) < window.max {
        return (Counter { count: c.count + 1, ..c }, Ok(()));
    }
    let per_ms = window.per_s.max(1) * 1000;
    let bucket_end = c.start_ms + per_ms;
    let retry_after_ms = if c.count >= window.max { bucket_end + per_ms } else { bucket_end }.saturating_sub(now_ms);
    let limit = Limit {
        name: window.name.clone(),
        max: window.max,
        per_s: window.per_s,
        retry_after_ms: retry_after_ms.max(1000),
        first: c.refused == 0,
    };
    (Counter { refused: c.refused + 1, ..c }, Err(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(max: u64, per_s: u64) -> Window {
        Window { name: "w:t".into(), max, per_s }
    }

    #[test]
    fn refuses_exactly_the_max_plus_first() {
        let (win, mut c) = (w(3, 600), Counter::default());
        for i in 0..3 {
            let (next, ok) = admit(c, &win, 1_000_000 + i);
            assert!(ok.is_ok());
            c = next;
        }
        let (c, refused) = admit(c, &win, 1_000_010);
        let limit = refused.unwrap_err();
        assert_eq!((limit.max, limit.first), (3, true));
        assert!(limit.retry_after_ms >= 1000);
        assert!(!admit(c, &win, 1_000_011).1.unwrap_err().first, "only the first refusal alerts");
        assert_eq!(c.count, 3, "refusals are not counted as requests");
    }

    #[test]
    fn the_previous_bucket_decays_across_the_window() {
        let win = w(10, 100);
        let mut c = Counter::default();
        for _ in 0..10 {
            c = admit(c, &win, 1_000).0;
        }
        // Half a window into the next bucket, about half of the previous bucket still counts.
        let later = 1_000 + 100_000 + 50_000;
        let rolled = c.rolled(later, 100);
        assert_eq!(rolled.prev, 10);
        assert_eq!(rolled.estimate(later, 100), 5);
        let mut c = rolled;
        for _ in 0..5 {
            let (next, ok) = admit(c, &win, later);
            assert!(ok.is_ok());
            c = next;
        }
        assert!(admit(c, &win, later).1.is_err());
        // Two windows later everything is forgotten.
        assert_eq!(c.rolled(later + 250_000, 100).estimate(later + 250_000, 100), 0);
    }
}
