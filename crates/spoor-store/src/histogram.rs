//! [`Histogram`]: a lock-free latency histogram with fixed buckets, for metrics (the
//! collector's commit latency, the log's write and fsync times), and its [`Snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le` labels).
pub const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Durations counted per bucket, with their count and sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

/// A histogram's values at one moment: cumulative bucket counts (as Prometheus wants them),
/// the count and the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Observations at most `BUCKETS[i]` seconds.
    pub buckets: [u64; BUCKETS.len()],
    /// All observations.
    pub count: u64,
    /// Their sum, in microseconds.
    pub micros: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts one duration.
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(first) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[first].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The values now, buckets cumulative.
    pub fn snapshot(&self) -> Snapshot {
        let mut buckets = [0; BUCKETS.len()];
        let mut running = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            running += bucket.load(Ordering::Relaxed);
            buckets[i] = running;
        }
        Snapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            micros: self.micros.load(Ordering::Relaxed),
        }
    }
}

impl Snapshot {
    /// Appends the histogram in Prometheus text format under `name`, with its help text.
    pub fn write_prometheus(&self, out: &mut String, name: &str, help: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, n) in BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.micros as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_text_is_prometheus() {
        let h = Histogram::new();
        for ms in [0, 1, 3, 40, 40, 9_000] {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(s.micros, 9_084_000);
        // <= 1 ms: 0 and 1; <= 5 ms: and 3; <= 50 ms: and both 40s; 9 s is only in +Inf.
        assert_eq!(&s.buckets[..3], &[2, 2, 3]);
        assert_eq!(s.buckets[5], 5);
        assert_eq!(s.buckets[11], 5);
        let mut out = String::new();
        s.write_prometheus(&mut out, "x_seconds", "Help.");
        assert!(out.starts_with("# HELP x_seconds Help.\n# TYPE x_seconds histogram\n"));
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 5\n"));
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(out.contains("x_seconds_sum 9.084\nx_seconds_count 6\n"));
    }
}
