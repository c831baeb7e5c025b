//! An alert's `timestampFormat`, read and applied as Pacemaker 2.1's
//! `crm_time_format_hr` does: strftime, plus `%<digits>N` for the fraction of a second
//! — `%3N` milliseconds, `%6N` (or `%06N`: a leading zero is ignored) microseconds,
//! truncated, never rounded; more than 6 digits give 6, and a plain `%N` (or `%0N`)
//! gives no digits at all, as in Pacemaker. The strftime part is chrono's, which has
//! glibc's conversions; a format with a conversion chrono does not know does not
//! parse (glibc would print it as it is). Pure: the caller gives the time, already in
//! the zone it wants (alerts use the scheduler's local time, as Pacemaker does).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset};

/// Pacemaker's default (`PCMK__ALERT_DEFAULT_TSTAMP_FORMAT`).
pub const DEFAULT_TIMESTAMP_FORMAT: &str = "%H:%M:%S.%06N";

/// A parsed format: strftime pieces and fractions of a second, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampFormat {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Text for strftime (conversions and literal text).
    Strftime(String),
    /// `%<digits>N`: this many digits of the fraction (0 to 6).
    Fraction(usize),
}

impl TimestampFormat {
    /// Reads a format; `Err` names the first conversion that does not parse.
    pub fn parse(format: &str) -> Result<TimestampFormat, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            // `%` then digits: Pacemaker's fraction when an `N` follows.
            let mut digits = String::new();
            while let Some((_, digit)) = chars.peek().filter(|(_, next)| next.is_ascii_digit()) {
                digits.push(*digit);
                chars.next();
            }
            match chars.peek() {
                Some((_, 'N')) => {
                    chars.next();
                    if !text.is_empty() {
                        pieces.push(Piece::Strftime(std::mem::take(&mut text)));
                    }
                    // atoi: leading zeros ignored; capped at 6 (microseconds are all
                    // there is).
                    let count = digits.trim_start_matches('0').parse::<usize>().unwrap_or(0).min(6);
                    pieces.push(Piece::Fraction(count));
                }
                Some((_, '%')) if digits.is_empty() => {
                    chars.next();
                    text.push_str("%%");
                }
                None if digits.is_empty() => return Err(format!("a lone '%' at the end (position {})", at + 1)),
                // Any other conversion: strftime's (the loop copies what follows).
                _ => {
                    text.push('%');
                    text.push_str(&digits);
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Strftime(text));
        }
        for piece in &pieces {
            if let Piece::Strftime(text) = piece
                && StrftimeItems::new(text).any(|item| matches!(item, Item::Error))
            {
                return Err(format!("{text:?} has a conversion strftime does not know"));
            }
        }
        Ok(TimestampFormat { pieces })
    }

    /// The time as the format says; `micros` is the fraction of its second (0 to
    /// 999,999).
    pub fn render(&self, time: &DateTime<FixedOffset>, micros: u32) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let fraction = format!("{:06}", micros.min(999_999));
        for piece in &self.pieces {
            match piece {
                // Parsed without errors, so formatting cannot fail; a failure would
                // only leave the piece out.
                Piece::Strftime(text) => {
                    let _ = write!(out, "{}", time.format_with_items(StrftimeItems::new(text)));
                }
                Piece::Fraction(count) => out.push_str(&fraction[..*count]),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-06-02 03:04:05 UTC, Pacemaker's own test time.
    fn at() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2024-06-02T03:04:05+00:00").expect("a time")
    }

    fn render(format: &str, micros: u32) -> String {
        TimestampFormat::parse(format).expect("parses").render(&at(), micros)
    }

    /// The cases of Pacemaker's `pcmk__time_format_hr_test.c`.
    #[test]
    fn renders_as_pacemaker_does() {
        assert_eq!(render("%Y-%m-%d %H:%M:%S", 0), "2024-06-02 03:04:05");
        assert_eq!(render("%H:%M %a %b %d", 0), "03:04 Sun Jun 02");
        assert_eq!(render("The time is %H:%M right now", 0), "The time is 03:04 right now");
        assert_eq!(render("%%H %%N", 0), "%H %N");
        assert_eq!(render("%H:%M:%S.%6N", 0), "03:04:05.000000");
        assert_eq!(render("%H:%M:%S.%6N %H", 0), "03:04:05.000000 03");
        assert_eq!(render("%H:%M:%S.%0N", 0), "03:04:05.");
        assert_eq!(render("%H:%M:%S.%N", 123_456), "03:04:05.");
        assert_eq!(render("The time is %H:%M:%S.%06N right NOW", 0), "The time is 03:04:05.000000 right NOW");
        assert_eq!(render("%H:%M:%S.%5N", 123_456), "03:04:05.12345");
        assert_eq!(render("%H:%M:%S.%3N", 123_456), "03:04:05.123");
        assert_eq!(render("%H:%M:%S.%1N", 123_456), "03:04:05.1");
        assert_eq!(render("%H:%M:%S.%03N", 123_456), "03:04:05.123");
        assert_eq!(render("%H:%M:%S.%6N %S", 789), "03:04:05.000789 05");
        assert_eq!(render("%H:%M:%S.%4N", 789), "03:04:05.0007");
        assert_eq!(render(DEFAULT_TIMESTAMP_FORMAT, 42), "03:04:05.000042");
        // More digits than there are: six.
        assert_eq!(render("%9N", 123_456), "123456");
        assert_eq!(render("no specifiers", 0), "no specifiers");
        assert_eq!(render("%-d/%-m %:z", 0), "2/6 +00:00");
    }

    #[test]
    fn unknown_conversions_do_not_parse() {
        assert!(TimestampFormat::parse("%H:%Q").is_err());
        assert!(TimestampFormat::parse("%H %").is_err());
        assert!(TimestampFormat::parse("%3S").is_err());
        assert!(TimestampFormat::parse("").is_ok());
    }
}
