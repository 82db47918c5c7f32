//! [`Timestamp`]: a strict ISO 8601 parser and an RFC 3339 formatter, with no clock.
//!
//! Accepted ([`Timestamp::parse`]): a full date `YYYY-MM-DD` in the extended format, `T` (or
//! `t`; a space is NOT accepted), a time with hours and minutes, optional seconds and an
//! optional fraction of 1 to 9 digits after the seconds (`.` or `,`), and a mandatory `Z` (or
//! `z`) or `±HH:MM` / `±HHMM` offset. Anything a reader could misread is refused: no offset,
//! no time, week dates (`2024-W01-1`), ordinal dates (`2024-001`), the basic format
//! (`20240101T000000Z`), two-digit or signed years, hour 24, leap seconds, and dates that do
//! not exist (`2023-02-29`). Instants outside what an `i64` of nanoseconds holds (before
//! 1677-09-21 or after 2262-04-11) are refused as out of range.
//!
//! [`Timestamp::parse_date_or_timestamp`] also accepts a bare date (`1990-05-17`), read as
//! midnight UTC; validation uses it for `birthday` and `createdAt` traits.

use std::fmt;

/// An instant, in nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_nanos: i64,
}

/// Why a string is not a strict ISO 8601 timestamp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TimestampError {
    /// A sentence naming the rule broken.
    pub reason: String,
}

impl Timestamp {
    /// From nanoseconds since the epoch.
    pub fn from_unix_nanos(unix_nanos: i64) -> Timestamp {
        Timestamp { unix_nanos }
    }

    /// From milliseconds since the epoch.
    pub fn from_unix_millis(unix_millis: i64) -> Timestamp {
        Timestamp {
            unix_nanos: unix_millis.saturating_mul(1_000_000),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn unix_nanos(self) -> i64 {
        self.unix_nanos
    }

    /// Milliseconds since the epoch (floored).
    pub fn unix_millis(self) -> i64 {
        self.unix_nanos.div_euclid(1_000_000)
    }

    /// Parses a strict ISO 8601 timestamp (see the module docs).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        parse_strict(text)
    }

    /// Parses a strict timestamp or a bare `YYYY-MM-DD` date (midnight UTC).
    pub fn parse_date_or_timestamp(text: &str) -> Result<Timestamp, TimestampError> {
        if text.len() == 10 {
            // The date at midnight UTC, built on the stack: no allocation.
            let mut buf = *b"YYYY-MM-DDT00:00:00Z";
            buf[..10].copy_from_slice(text.as_bytes());
            let with_time = std::str::from_utf8(&buf).map_err(|_| TimestampError {
                reason: "expected a date as YYYY-MM-DD".to_owned(),
            })?;
            return parse_strict(with_time);
        }
        parse_strict(text)
    }

    /// `self + nanos`, saturating.
    pub fn add_nanos(self, nanos: i64) -> Timestamp {
        Timestamp {
            unix_nanos: self.unix_nanos.saturating_add(nanos),
        }
    }

    /// `self - other` in nanoseconds, saturating.
    pub fn nanos_since(self, other: Timestamp) -> i64 {
        self.unix_nanos.saturating_sub(other.unix_nanos)
    }
}

impl Timestamp {
    /// RFC 3339 in UTC with milliseconds, as bytes: `2024-01-02T03:04:05.678Z`. Years
    /// outside 0..=9999 cannot occur (the range of an `i64` of nanoseconds is 1677 to 2262).
    fn rfc3339_millis(self) -> [u8; 24] {
        // Flooring to milliseconds could step below the earliest parseable instant in the
        // first millisecond of the range; clamp so that every output parses again.
        let millis = self.unix_millis().max(i64::MIN / 1_000_000);
        let days = millis.div_euclid(86_400_000);
        let ms_of_day = millis.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year.clamp(0, 9999));
        put(5, 2, i64::from(month));
        put(8, 2, i64::from(day));
        put(11, 2, ms_of_day / 3_600_000);
        put(14, 2, (ms_of_day / 60_000) % 60);
        put(17, 2, (ms_of_day / 1000) % 60);
        put(20, 3, ms_of_day % 1000);
        out
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2024-01-02T03:04:05.678Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.rfc3339_millis();
        // Only ASCII digits and punctuation were written.
        f.write_str(std::str::from_utf8(&bytes).unwrap_or("0000-00-00T00:00:00.000Z"))
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day). Howard Hinnant's
/// algorithm.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_strict(text: &str) -> Result<Timestamp, TimestampError> {
    let fail = |reason: &str| TimestampError {
        reason: reason.to_owned(),
    };
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
        )
    };
    let year = digits(0..4).ok_or_else(|| fail("expected a four-digit year (YYYY-MM-DD)"))?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(fail("expected a date as YYYY-MM-DD"));
    }
    let month = digits(5..7).ok_or_else(|| fail("expected a two-digit month"))? as u32;
    let day = digits(8..10).ok_or_else(|| fail("expected a two-digit day"))? as u32;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(fail("the date does not exist"));
    }
    if b.get(10) != Some(&b'T') && b.get(10) != Some(&b't') {
        return Err(fail(
            "expected 'T' and a time after the date (YYYY-MM-DDTHH:MM:SSZ)",
        ));
    }
    let hour = digits(11..13).ok_or_else(|| fail("expected a two-digit hour"))?;
    if b.get(13) != Some(&b':') {
        return Err(fail("expected HH:MM"));
    }
    let minute = digits(14..16).ok_or_else(|| fail("expected two-digit minutes"))?;
    let mut pos = 16;
    let mut second = 0;
    let mut nanos = 0i64;
    if b.get(pos) == Some(&b':') {
        second = digits(17..19).ok_or_else(|| fail("expected two-digit seconds"))?;
        pos = 19;
        if matches!(b.get(pos), Some(b'.') | Some(b',')) {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            let frac = &b[start..pos];
            if frac.is_empty() || frac.len() > 9 {
                return Err(fail("expected 1 to 9 digits of fraction after the seconds"));
            }
            nanos = frac
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
                * 10i64.pow(9 - frac.len() as u32);
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(fail("the time of day does not exist"));
    }
    let offset_seconds = match b.get(pos) {
        Some(b'Z') | Some(b'z') if pos + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let bad = || fail("expected an offset as ±HH:MM or ±HHMM at the end");
            let oh = digits(pos + 1..pos + 3).ok_or_else(bad)?;
            let minutes_at = if b.get(pos + 3) == Some(&b':') {
                pos + 4
            } else {
                pos + 3
            };
            let om = digits(minutes_at..minutes_at + 2).ok_or_else(bad)?;
            if minutes_at + 2 != b.len() || oh > 23 || om > 59 {
                return Err(bad());
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        None => {
            return Err(fail(
                "a time zone is required: end with Z or an offset like +02:00",
            ));
        }
        Some(_) => return Err(fail("unexpected characters after the time")),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let unix_nanos = i64::try_from(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
        .map_err(|_| fail("the timestamp is out of range (1677-09-21 to 2262-04-11)"))?;
    Ok(Timestamp { unix_nanos })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}
