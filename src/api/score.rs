//! Scores: integers saturating at ±INFINITY, with Pacemaker's arithmetic.
//!
//! Pacemaker caps every score at 1,000,000 (its `INFINITY`). Adding scores never
//! overflows: `-INFINITY` wins over everything (a ban cannot be outvoted), then
//! `+INFINITY`, and finite sums are clamped to the range.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Add, AddAssign, Neg};
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A placement score: an integer in `[-INFINITY, +INFINITY]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(i64);

/// The numeric value of Pacemaker's `INFINITY`.
pub const INFINITY_VALUE: i64 = 1_000_000;

impl Score {
    pub const ZERO: Score = Score(0);
    pub const INFINITY: Score = Score(INFINITY_VALUE);
    pub const NEG_INFINITY: Score = Score(-INFINITY_VALUE);

    /// A score from any integer; values beyond ±INFINITY are clamped, as Pacemaker does.
    pub fn new(value: i64) -> Score {
        Score(value.clamp(-INFINITY_VALUE, INFINITY_VALUE))
    }

    /// A value outside the score range, for internal markers that are never added to
    /// or shown (the scheduler's "unusable node" marker).
    pub(crate) const fn sentinel(value: i64) -> Score {
        Score(value)
    }

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn is_infinite(self) -> bool {
        self.0.abs() == INFINITY_VALUE
    }

    /// Multiplies by a colocation factor (`score / INFINITY`) the way Pacemaker does for
    /// dependent scores: infinities stay infinite (with the sign of the product), finite
    /// results are truncated toward zero and clamped.
    pub fn scaled(self, factor: f64) -> Score {
        if factor == 0.0 || self.0 == 0 {
            return Score::ZERO;
        }
        if self.is_infinite() {
            return if (self.0 > 0) == (factor > 0.0) { Score::INFINITY } else { Score::NEG_INFINITY };
        }
        let product = self.0 as f64 * factor;
        Score::new(product.clamp(-(INFINITY_VALUE as f64), INFINITY_VALUE as f64) as i64)
    }
}

impl Add for Score {
    type Output = Score;

    /// Pacemaker's `pcmk__add_scores`: -INFINITY dominates, then +INFINITY, otherwise
    /// the clamped sum.
    fn add(self, other: Score) -> Score {
        if self == Score::NEG_INFINITY || other == Score::NEG_INFINITY {
            Score::NEG_INFINITY
        } else if self == Score::INFINITY || other == Score::INFINITY {
            Score::INFINITY
        } else {
            Score::new(self.0 + other.0)
        }
    }
}

impl AddAssign for Score {
    fn add_assign(&mut self, other: Score) {
        *self = *self + other;
    }
}

impl Neg for Score {
    type Output = Score;
    fn neg(self) -> Score {
        Score(-self.0)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Score::INFINITY => f.write_str("INFINITY"),
            Score::NEG_INFINITY => f.write_str("-INFINITY"),
            Score(value) => write!(f, "{value}"),
        }
    }
}

/// Why a text is not a score.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid score {text:?}: expected an integer, INFINITY, +INFINITY or -INFINITY")]
pub struct ParseScoreError {
    text: String,
}

impl FromStr for Score {
    type Err = ParseScoreError;

    fn from_str(text: &str) -> Result<Score, ParseScoreError> {
        let trimmed = text.trim();
        match trimmed {
            "INFINITY" | "+INFINITY" => return Ok(Score::INFINITY),
            "-INFINITY" => return Ok(Score::NEG_INFINITY),
            _ => {}
        }
        let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseScoreError { text: text.to_string() });
        }
        // Longer than i64 but all digits: saturate like Pacemaker's char2score.
        match trimmed.parse::<i64>() {
            Ok(value) => Ok(Score::new(value)),
            Err(_) if trimmed.starts_with('-') => Ok(Score::NEG_INFINITY),
            Err(_) => Ok(Score::INFINITY),
        }
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_infinite() { serializer.collect_str(self) } else { serializer.serialize_i64(self.0) }
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Score, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Score;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, INFINITY, +INFINITY or -INFINITY")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Score, E> {
                Ok(Score::new(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Score, E> {
                Ok(Score::new(i64::try_from(value).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Score, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The schema pattern of a score written as a string.
pub(crate) const SCORE_PATTERN: &str = r"^\s*([+-]?INFINITY|[+-]?[0-9]+)\s*$";

impl JsonSchema for Score {
    fn schema_name() -> Cow<'static, str> {
        "Score".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["integer", "string"],
            "pattern": SCORE_PATTERN,
            "description": "An integer, or INFINITY / +INFINITY / -INFINITY (1,000,000). Sums saturate; -INFINITY wins.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_infinities_and_integers() {
        assert_eq!("INFINITY".parse(), Ok(Score::INFINITY));
        assert_eq!("+INFINITY".parse(), Ok(Score::INFINITY));
        assert_eq!("-INFINITY".parse(), Ok(Score::NEG_INFINITY));
        assert_eq!(" 100 ".parse(), Ok(Score::new(100)));
        assert_eq!("-5".parse(), Ok(Score::new(-5)));
        assert_eq!("+7".parse(), Ok(Score::new(7)));
        assert!("INFINTY".parse::<Score>().is_err());
        assert!("".parse::<Score>().is_err());
        assert!("1.5".parse::<Score>().is_err());
        assert!("-".parse::<Score>().is_err());
    }

    #[test]
    fn out_of_range_values_clamp_to_infinity() {
        assert_eq!(Score::new(5_000_000), Score::INFINITY);
        assert_eq!(Score::new(-5_000_000), Score::NEG_INFINITY);
        assert_eq!("99999999999999999999999".parse(), Ok(Score::INFINITY));
        assert_eq!("-99999999999999999999999".parse(), Ok(Score::NEG_INFINITY));
    }

    #[test]
    fn addition_saturates_and_negative_infinity_wins() {
        assert_eq!(Score::new(2) + Score::new(3), Score::new(5));
        assert_eq!(Score::new(999_999) + Score::new(5), Score::INFINITY);
        assert_eq!(Score::new(-999_999) + Score::new(-5), Score::NEG_INFINITY);
        assert_eq!(Score::INFINITY + Score::NEG_INFINITY, Score::NEG_INFINITY);
        assert_eq!(Score::NEG_INFINITY + Score::INFINITY, Score::NEG_INFINITY);
        assert_eq!(Score::INFINITY + Score::new(-500), Score::INFINITY);
        assert_eq!(Score::NEG_INFINITY + Score::new(500), Score::NEG_INFINITY);
        let mut total = Score::ZERO;
        total += Score::new(10);
        total += Score::INFINITY;
        assert_eq!(total, Score::INFINITY);
    }

    #[test]
    fn scaling_keeps_infinities_and_truncates() {
        assert_eq!(Score::new(100).scaled(0.5), Score::new(50));
        assert_eq!(Score::new(3).scaled(0.5), Score::new(1));
        assert_eq!(Score::INFINITY.scaled(0.2), Score::INFINITY);
        assert_eq!(Score::INFINITY.scaled(-0.2), Score::NEG_INFINITY);
        assert_eq!(Score::NEG_INFINITY.scaled(0.2), Score::NEG_INFINITY);
        assert_eq!(Score::new(100).scaled(0.0), Score::ZERO);
    }

    #[test]
    fn serializes_infinities_as_strings_and_the_rest_as_integers() {
        assert_eq!(serde_json::to_string(&Score::INFINITY).ok(), Some("\"INFINITY\"".into()));
        assert_eq!(serde_json::to_string(&Score::NEG_INFINITY).ok(), Some("\"-INFINITY\"".into()));
        assert_eq!(serde_json::to_string(&Score::new(-20)).ok(), Some("-20".into()));
        let parsed: Result<Vec<Score>, _> = serde_json::from_str(r#"[5, "INFINITY", "-3", "+INFINITY"]"#);
        assert_eq!(parsed.ok(), Some(vec![Score::new(5), Score::INFINITY, Score::new(-3), Score::INFINITY]));
        assert!(serde_json::from_str::<Score>("\"lots\"").is_err());
        assert!(serde_json::from_str::<Score>("1.5").is_err());
    }

    proptest::proptest! {
        #[test]
        fn addition_is_commutative_and_stays_in_range(a in -3_000_000i64..3_000_000, b in -3_000_000i64..3_000_000) {
            let (x, y) = (Score::new(a), Score::new(b));
            proptest::prop_assert_eq!(x + y, y + x);
            let sum = (x + y).value();
            proptest::prop_assert!((-INFINITY_VALUE..=INFINITY_VALUE).contains(&sum));
            if x == Score::NEG_INFINITY || y == Score::NEG_INFINITY {
                proptest::prop_assert_eq!(x + y, Score::NEG_INFINITY);
            }
        }

        #[test]
        fn display_round_trips(a in -3_000_000i64..3_000_000) {
            let score = Score::new(a);
            proptest::prop_assert_eq!(score.to_string().parse::<Score>(), Ok(score));
        }
    }
}
