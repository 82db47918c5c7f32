//! Realistic request bodies: browser-like track events of about 600 bytes each.
//!
//! Every message gets a unique, random-looking uuid4-shaped `messageId` like the Segment
//! libraries send (so the collector's dedupe index sees the same random insert pattern as in
//! production, and never hides work), and a `userId` / `anonymousId` drawn from a small pool
//! like real traffic. Bodies are formatted directly into a byte buffer: the load generator shares
//! the machine with the server, so it must spend as little CPU per message as it can.

use std::fmt::Write as _;

/// Builds the bodies one connection sends.
#[derive(Debug)]
pub struct EventFactory {
    run_id: u64,
    connection: u32,
    sequence: u64,
    timestamp: String,
}

impl EventFactory {
    /// Creates the factory of one connection. `timestamp` is the ISO-8601 time put on every
    /// event (the run's start), and `run_id` keeps message ids unique across runs.
    pub fn new(run_id: u64, connection: u32, timestamp: String) -> Self {
        Self {
            run_id,
            connection,
            sequence: 0,
            timestamp,
        }
    }

    /// A single track call, as posted to `/v1/track`.
    pub fn single(&mut self) -> Vec<u8> {
        let mut body = String::with_capacity(700);
        self.write_track(&mut body);
        body.into_bytes()
    }

    /// A batch of `size` track calls, as posted to `/v1/batch`.
    pub fn batch(&mut self, size: usize) -> Vec<u8> {
        let mut body = String::with_capacity(size * 640 + 64);
        body.push_str("{\"batch\":[");
        for index in 0..size {
            if index > 0 {
                body.push(',');
            }
            self.write_track(&mut body);
        }
        // Writing to a String cannot fail.
        let _ = write!(body, "],\"sentAt\":\"{}\"}}", self.timestamp);
        body.into_bytes()
    }

    fn write_track(&mut self, body: &mut String) {
        let sequence = self.sequence;
        self.sequence += 1;
        let user = (sequence.wrapping_mul(2_654_435_761) ^ u64::from(self.connection)) % 5000;
        let product = sequence % 977;
        // The low half is a bijection of (connection, sequence), so ids never repeat within a
        // run (for fewer than 2^40 messages per connection); the high half mixes in the run.
        let low = splitmix64((u64::from(self.connection) << 40) | sequence);
        let high = splitmix64(self.run_id ^ low);
        // Writing to a String cannot fail.
        let _ = write!(
            body,
            concat!(
                "{{\"type\":\"track\",\"event\":\"Product Viewed\",",
                "\"messageId\":\"{a:08x}-{b:04x}-4{c:03x}-{d:04x}-{e:012x}\",",
                "\"userId\":\"user-{user}\",\"anonymousId\":\"a7c2e9f0-51b3-4d8e-9a61-{user:012}\",",
                "\"timestamp\":\"{ts}\",",
                "\"properties\":{{\"product_id\":\"p-{product}\",",
                "\"category\":\"Games\",\"name\":\"Monopoly: 3rd Edition\",",
                "\"price\":18.99,\"quantity\":1,\"currency\":\"USD\"}},",
                "\"context\":{{\"library\":{{\"name\":\"analytics.js\",\"version\":\"next-1.84.3\"}},",
                "\"page\":{{\"path\":\"/products/p-{product}\",",
                "\"title\":\"Monopoly: 3rd Edition\",\"url\":\"https://shop.example.com/products/p-{product}\"}},",
                "\"userAgent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\",",
                "\"locale\":\"en-US\"}}}}"
            ),
            a = high >> 32,
            b = (high >> 16) & 0xffff,
            c = high & 0xfff,
            d = 0x8000 | ((low >> 48) & 0x3fff),
            e = low & 0xffff_ffff_ffff,
            user = user,
            ts = self.timestamp,
            product = product,
        );
    }
}

/// SplitMix64's output function: a bijection of `u64` that scatters consecutive inputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Formats a Unix time in milliseconds as an ISO-8601 UTC timestamp with milliseconds.
pub fn iso8601(unix_millis: u64) -> String {
    let days = unix_millis / 86_400_000;
    let millis_of_day = unix_millis % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        millis_of_day / 3_600_000,
        millis_of_day / 60_000 % 60,
        millis_of_day / 1000 % 60,
        millis_of_day % 1000
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_event_is_valid_json_of_about_600_bytes() {
        let mut factory = EventFactory::new(7, 3, iso8601(1_764_560_000_000));
        let body = factory.single();
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(value["type"], "track");
        assert!((560..=660).contains(&body.len()), "{} bytes", body.len());
    }

    #[test]
    fn a_batch_holds_unique_message_ids() {
        let mut factory = EventFactory::new(7, 3, iso8601(0));
        let body = factory.batch(100);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let batch = value["batch"].as_array().expect("a batch array");
        let ids: std::collections::HashSet<_> =
            batch.iter().map(|m| m["messageId"].to_string()).collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn timestamps_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_764_561_723_456), "2025-12-01T04:02:03.456Z");
    }
}
