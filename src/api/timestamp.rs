//! Points in time as RFC 3339 text (`2025-06-01T12:00:00Z`, `2025-06-01T14:00:00+02:00`),
//! held as whole seconds since the Unix epoch: a `Location`'s `expires`.
//!
//! Stored in canonical form (UTC, whole seconds, `Z`), so the same instant written with
//! another offset is recognised as no change. A fraction of a second rounds up: an
//! expiry never takes effect before the instant written. Pure: parsing and formatting
//! only, never the clock.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// An instant, in whole seconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
}

/// Years outside 1970..=9999 are refused: RFC 3339 has four-digit years, and nothing
/// a cluster schedules lies before the epoch.
const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 9999;

impl Timestamp {
    pub fn from_epoch_secs(secs: i64) -> Timestamp {
        Timestamp { secs }
    }

    pub fn epoch_secs(self) -> i64 {
        self.secs
    }
}

/// Why a text is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {text:?}: {reason}")]
pub struct ParseTimestampError {
    text: String,
    reason: &'static str,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(text: &str) -> Result<Timestamp, ParseTimestampError> {
        let error = |reason| ParseTimestampError { text: text.to_string(), reason };
        let expected = "expected RFC 3339 such as 2025-06-01T12:00:00Z or 2025-06-01T14:00:00+02:00";
        let bytes = text.trim().as_bytes();
        let number = |from: usize, to: usize| -> Option<i64> {
            let digits = bytes.get(from..to)?;
            digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0')))
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if bytes.len() < 20 || separators.iter().any(|(at, byte)| bytes[*at] != *byte) || !matches!(bytes[10], b'T' | b't' | b' ') {
            return Err(error(expected));
        }
        let fields = (number(0, 4), number(5, 7), number(8, 10), number(11, 13), number(14, 16), number(17, 19));
        let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields else {
            return Err(error(expected));
        };
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(error("the year must be between 1970 and 9999"));
        }
        // A leap second (60) is read as the second after.
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
            return Err(error("no such date or time"));
        }
        let mut rest = &bytes[19..];
        let mut fraction = false;
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|byte| byte.is_ascii_digit()).count();
            if digits == 0 {
                return Err(error(expected));
            }
            fraction = rest[1..=digits].iter().any(|digit| *digit != b'0');
            rest = &rest[1 + digits..];
        }
        let offset = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(error(expected));
                }
                let hours = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
                let minutes = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
                if hours > 23 || minutes > 59 {
                    return Err(error("no such offset"));
                }
                let offset = hours * 3600 + minutes * 60;
                if *sign == b'-' { -offset } else { offset }
            }
            _ => return Err(error("expected Z or an offset such as +02:00 after the time")),
        };
        let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        let secs = local - offset + i64::from(fraction);
        if secs < 0 {
            return Err(error("before 1970"));
        }
        // 9999-12-31T23:59:59Z: later, in UTC, would be written with five digits,
        // which this parser (RFC 3339) could not read back.
        if secs > 253_402_300_799 {
            return Err(error("after 9999-12-31T23:59:59Z"));
        }
        Ok(Timestamp { secs })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.secs.div_euclid(86_400));
        let of_day = self.secs.rem_euclid(86_400);
        write!(f, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// The shape of RFC 3339 text; the date's and offset's ranges are checked on decoding.
pub(crate) const TIMESTAMP_PATTERN: &str = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\s*$";

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "description": "An RFC 3339 timestamp such as 2025-06-01T12:00:00Z or 2025-06-01T14:00:00+02:00; stored in UTC, whole seconds.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<i64, ParseTimestampError> {
        text.parse::<Timestamp>().map(Timestamp::epoch_secs)
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(secs("2025-06-01T12:00:00Z"), Ok(1_748_779_200));
        assert_eq!(secs("2025-06-01T14:00:00+02:00"), Ok(1_748_779_200));
        assert_eq!(secs("2025-06-01T11:30:00-00:30"), Ok(1_748_779_200));
        assert_eq!(secs("2025-06-01t12:00:00z"), Ok(1_748_779_200));
        // A fraction rounds up, so an expiry never comes early; zeros are no fraction.
        assert_eq!(secs("2025-06-01T11:59:59.25Z"), Ok(1_748_779_200));
        assert_eq!(secs("2025-06-01T12:00:00.000Z"), Ok(1_748_779_200));
        assert_eq!(secs("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for text in [
            "",
            "tomorrow",
            "2025-06-01",
            "2025-06-01T12:00:00",
            "2025-06-01T12:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01T12:00:00+2:00",
            "1969-12-31T23:59:59Z",
            "2025-06-01T12:00:00.Z",
            // In UTC it is year 10000, which could not be written back in four digits.
            "9999-12-31T23:30:00-01:00",
        ] {
            assert!(secs(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            secs("soon").unwrap_err().to_string(),
            "invalid timestamp \"soon\": expected RFC 3339 such as 2025-06-01T12:00:00Z or 2025-06-01T14:00:00+02:00"
        );
    }

    #[test]
    fn displays_in_utc_and_round_trips() {
        for secs in [0, 951_782_400, 1_709_164_800, 1_748_779_200, 253_402_300_799] {
            let shown = Timestamp::from_epoch_secs(secs).to_string();
            assert_eq!(shown.parse::<Timestamp>().map(Timestamp::epoch_secs), Ok(secs), "{shown}");
        }
        assert_eq!(Timestamp::from_epoch_secs(1_748_779_200).to_string(), "2025-06-01T12:00:00Z");
        assert_eq!(serde_json::to_string(&"2025-06-01T14:00:00+02:00".parse::<Timestamp>().ok()).ok().as_deref(), Some("\"2025-06-01T12:00:00Z\""));
    }
}
