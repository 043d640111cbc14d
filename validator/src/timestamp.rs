//! RFC 3339 timestamps in answers, written digit by digit into a stack buffer. chrono's own
//! formatting goes through `core::fmt` (a `write_char` per separator, padding logic per field)
//! and was 0.8 µs of a 12 µs cache-hit validation (`perf record`, three timestamps per answer);
//! this writes the same text from chrono's calendar fields. Years outside 0000–9999 (never a
//! license's) fall back to chrono.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Fractional seconds as chrono's `SecondsFormat` has them.
#[derive(Clone, Copy)]
pub enum Fraction {
    /// Exactly three digits (`.123`).
    Millis,
    /// As chrono's `Display`/serde: none, 3, 6 or 9 digits, the fewest that are exact.
    Auto,
}

/// A timestamp that serialises as chrono would (`Millis`: `to_rfc3339_opts(Millis, true)`;
/// `Auto`: chrono's serde format).
pub struct Rfc3339(pub DateTime<Utc>, pub Fraction);

fn two(out: &mut [u8], at: usize, v: u32) {
    out[at] = b'0' + (v / 10 % 10) as u8;
    out[at + 1] = b'0' + (v % 10) as u8;
}

impl Rfc3339 {
    /// Writes the timestamp into `out`; the length written, or `None` for years chrono prints
    /// with a sign.
    fn write(&self, out: &mut [u8; 32]) -> Option<usize> {
        let t = self.0;
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let year = year as u32;
        two(out, 0, year / 100);
        two(out, 2, year % 100);
        out[4] = b'-';
        two(out, 5, t.month());
        out[7] = b'-';
        two(out, 8, t.day());
        out[10] = b'T';
        two(out, 11, t.hour());
        out[13] = b':';
        two(out, 14, t.minute());
        out[16] = b':';
        // A leap second is carried in the nanoseconds (≥ 1 s), shown as second 60.
        let nanos = t.nanosecond();
        two(out, 17, t.second() + nanos / 1_000_000_000);
        let nanos = nanos % 1_000_000_000;
        let digits = match self.1 {
            Fraction::Millis => 3,
            Fraction::Auto if nanos == 0 => 0,
            Fraction::Auto if nanos.is_multiple_of(1_000_000) => 3,
            Fraction::Auto if nanos.is_multiple_of(1_000) => 6,
            Fraction::Auto => 9,
        };
        let mut len = 19;
        if digits > 0 {
            out[len] = b'.';
            let mut v = nanos / 10u32.pow(9 - digits);
            for i in (0..digits as usize).rev() {
                out[len + 1 + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            len += 1 + digits as usize;
        }
        out[len] = b'Z';
        Some(len + 1)
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 32];
        match self.write(&mut buf) {
            // Only ASCII digits and separators were written.
            Some(n) => s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
            None => match self.1 {
                Fraction::Millis => {
                    s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
                }
                Fraction::Auto => self.0.serialize(s),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ours(t: DateTime<Utc>, f: Fraction) -> String {
        serde_json::to_string(&Rfc3339(t, f)).unwrap()
    }

    #[test]
    fn same_text_as_chrono_for_every_precision_and_field() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u64 {
            // Spread over 0000–9999, with round values (no fraction, millis, micros) mixed in.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 315_537_897_600) as i64 - 62_167_219_200;
            let nanos = match i % 4 {
                0 => 0,
                1 => (x % 1000) as u32 * 1_000_000,
                2 => (x % 1_000_000) as u32 * 1000,
                _ => (x % 1_000_000_000) as u32,
            };
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(
                ours(t, Fraction::Auto),
                serde_json::to_string(&t).unwrap(),
                "{secs} {nanos}"
            );
            assert_eq!(
                ours(t, Fraction::Millis),
                format!("\"{}\"", t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                "{secs} {nanos}"
            );
        }
    }

    #[test]
    fn leap_seconds_and_years_past_9999_as_chrono_has_them() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(
            ours(leap, Fraction::Auto),
            serde_json::to_string(&leap).unwrap()
        );
        let far = Utc.with_ymd_and_hms(12345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            ours(far, Fraction::Auto),
            serde_json::to_string(&far).unwrap()
        );
        assert_eq!(
            ours(far, Fraction::Millis),
            format!("\"{}\"", far.to_rfc3339_opts(SecondsFormat::Millis, true))
        );
    }
}
