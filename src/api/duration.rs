//! Durations as Pacemaker writes them: `10` (seconds), `500ms`, `20s`, `2min`, `1h30m`.
//!
//! Stored in canonical form (`90s`, `2min`, `1h`, `250ms`) so that re-applying `120`
//! where `2min` is stored is recognised as no change.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative span of time with millisecond precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    millis: u64,
}

/// The longest duration accepted: about 49 days, Pacemaker's own limit for intervals.
pub const MAX_MILLIS: u64 = u32::MAX as u64;

impl Duration {
    pub const ZERO: Duration = Duration { millis: 0 };

    pub fn from_millis(millis: u64) -> Duration {
        Duration { millis }
    }

    pub fn from_secs(secs: u64) -> Duration {
        Duration { millis: secs.saturating_mul(1000) }
    }

    pub fn as_millis(self) -> u64 {
        self.millis
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }

    pub fn is_zero(&self) -> bool {
        self.millis == 0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.millis;
        if millis % 1000 != 0 {
            return write!(f, "{millis}ms");
        }
        let secs = millis / 1000;
        if secs != 0 && secs % 3600 == 0 {
            write!(f, "{}h", secs / 3600)
        } else if secs != 0 && secs % 60 == 0 {
            write!(f, "{}min", secs / 60)
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}")]
pub struct ParseDurationError {
    text: String,
    reason: &'static str,
}

fn unit_millis(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "s" | "sec" | "secs" => 1000,
        "ms" | "msec" => 1,
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hrs" => 3_600_000,
        _ => return None,
    })
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Duration, ParseDurationError> {
        let error = |reason| ParseDurationError { text: text.to_string(), reason };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("empty"));
        }
        let mut total: u64 = 0;
        let mut rest = trimmed;
        while !rest.is_empty() {
            let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits_end == 0 {
                return Err(error("expected a number followed by ms, s, min or h"));
            }
            let number: u64 = rest[..digits_end].parse().map_err(|_| error("number too large"))?;
            rest = &rest[digits_end..];
            let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = rest[..unit_end].trim();
            let millis_per_unit = unit_millis(unit).ok_or_else(|| error("unknown unit (use ms, s, min or h)"))?;
            rest = &rest[unit_end..];
            total = number.checked_mul(millis_per_unit).and_then(|part| total.checked_add(part)).ok_or_else(|| error("too long"))?;
        }
        if total > MAX_MILLIS {
            return Err(error("longer than 49 days"));
        }
        Ok(Duration { millis: total })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30, 500ms, 20s, 2min or 1h")
            }
            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
                if secs > MAX_MILLIS / 1000 {
                    return Err(E::custom(format!("invalid duration {secs}: longer than 49 days")));
                }
                Ok(Duration::from_secs(secs))
            }
            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
                match u64::try_from(secs) {
                    Ok(secs) => self.visit_u64(secs),
                    Err(_) => Err(E::custom(format!("invalid duration {secs}: negative"))),
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

pub(crate) const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*(ms|msec|s|sec|secs|m|min|mins|h|hr|hrs)?\s*)+$";

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": DURATION_PATTERN,
            "description": "Seconds as an integer, or a duration such as 500ms, 20s, 2min, 1h30m.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pacemaker_forms() {
        let parse = |text: &str| text.parse::<Duration>().map(Duration::as_millis);
        assert_eq!(parse("10"), Ok(10_000));
        assert_eq!(parse("10s"), Ok(10_000));
        assert_eq!(parse("500ms"), Ok(500));
        assert_eq!(parse("2min"), Ok(120_000));
        assert_eq!(parse("2m"), Ok(120_000));
        assert_eq!(parse("1h30m"), Ok(5_400_000));
        assert_eq!(parse("1h 30min 5s"), Ok(5_405_000));
        assert_eq!(parse("0"), Ok(0));
        assert!(parse("").is_err());
        assert!(parse("ten").is_err());
        assert!(parse("10 days").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("100000h").is_err());
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
        assert_eq!(Duration::from_secs(90).to_string(), "90s");
        assert_eq!(Duration::from_secs(120).to_string(), "2min");
        assert_eq!(Duration::from_secs(7200).to_string(), "2h");
        assert_eq!(Duration::ZERO.to_string(), "0s");
    }

    #[test]
    fn integers_are_seconds_and_negatives_are_refused() {
        assert_eq!(serde_json::from_str::<Duration>("240").ok(), Some(Duration::from_secs(240)));
        assert!(serde_json::from_str::<Duration>("-1").is_err());
        assert_eq!(serde_json::to_string(&Duration::from_secs(240)).ok(), Some("\"4min\"".into()));
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(millis in 0..MAX_MILLIS) {
            let duration = Duration::from_millis(millis);
            proptest::prop_assert_eq!(duration.to_string().parse::<Duration>(), Ok(duration));
        }
    }
}
