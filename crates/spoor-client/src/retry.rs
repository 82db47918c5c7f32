//! The retry policy: which answers are retried, and how long to wait between attempts.
//!
//! Retried: network errors, timeouts, 5xx except 501 and 505, and 408, 410, 429 and 460 (the
//! set of `@segment/analytics-node`). Never retried: every other 4xx, 501 and 505; the
//! server will not change its mind. A `Retry-After` in seconds is honoured (up to a cap);
//! otherwise the wait is exponential with jitter.

use std::time::Duration;

/// What to do with an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (2xx, 3xx).
    Delivered,
    /// Try again later.
    Retry,
    /// Refused for good.
    Rejected,
}

/// Classifies an HTTP status.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=399 => Verdict::Delivered,
        408 | 410 | 429 | 460 => Verdict::Retry,
        501 | 505 => Verdict::Rejected,
        500..=599 => Verdict::Retry,
        _ => Verdict::Rejected,
    }
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits a random time between half
/// and all of `min(max, initial × 2^(n-1))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry, before jitter (default 100 ms).
    pub initial: Duration,
    /// The longest wait (default 60 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1-based), for a jitter draw `unit` in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// Parses a `Retry-After` header given in seconds (the form Segment sends). HTTP dates are
/// not honoured: the ordinary backoff applies then.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_analytics_node() {
        for status in [200, 204, 301] {
            assert_eq!(classify(status), Verdict::Delivered, "{status}");
        }
        for status in [408, 410, 429, 460, 500, 502, 503, 504, 511, 599] {
            assert_eq!(classify(status), Verdict::Retry, "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422, 501, 505] {
            assert_eq!(classify(status), Verdict::Rejected, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay(1, 0.999_999).as_millis(), 99);
        assert_eq!(backoff.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff.delay(40, 0.0), Duration::from_secs(30));
        assert!(backoff.delay(40, 0.99) <= Duration::from_secs(60));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
