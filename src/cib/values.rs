//! Pacemaker's value syntaxes: booleans, scores, intervals, roles and names.

use crate::api::resource::Role;
use crate::api::{Duration, Name, Score};

/// Pacemaker's `crm_str_to_boolean`: case-insensitive yes/no words, `1`/`0`.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Pacemaker's `char2score` for the forms Pacer can hold: the infinities (any case)
/// and integers, read like `strtoll` (`1.0` is 1, as Pacemaker reads it). Health
/// colours (`red`, `yellow`, `green`) depend on cluster options Pacer does not have,
/// so they are `None`, as is text without a leading integer.
pub(crate) fn parse_score(text: &str) -> Option<Score> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    match upper.as_str() {
        "INFINITY" | "+INFINITY" => return Some(Score::INFINITY),
        "-INFINITY" => return Some(Score::NEG_INFINITY),
        _ => {}
    }
    let sign_length = usize::from(trimmed.starts_with(['+', '-']));
    let digits = trimmed[sign_length..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    trimmed[..sign_length + digits].parse().ok()
}

/// Pacemaker's interval syntax (`10`, `10s`, `2min`, `500ms`, `1h`) and the simple
/// ISO 8601 form it also accepts for operation intervals (`PT10S`, `PT1M30S`).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let trimmed = text.trim();
    if let Some(iso) = trimmed.strip_prefix("PT").or_else(|| trimmed.strip_prefix("pt")) {
        return iso.to_ascii_lowercase().replace('m', "min").parse().ok();
    }
    if let Some(micros) = trimmed.strip_suffix("us").or_else(|| trimmed.strip_suffix("usec")) {
        let value: u64 = micros.trim().parse().ok()?;
        return Some(Duration::from_millis(value / 1000));
    }
    trimmed.parse().ok()
}

/// A role by its current or legacy name (`Master` is `Promoted`, `Slave` is
/// `Unpromoted`), ignoring case as Pacemaker does.
pub(crate) fn parse_role(text: &str) -> Option<Role> {
    match text.trim().to_ascii_lowercase().as_str() {
        "started" => Some(Role::Started),
        "stopped" => Some(Role::Stopped),
        "promoted" | "master" => Some(Role::Promoted),
        "unpromoted" | "slave" => Some(Role::Unpromoted),
        _ => None,
    }
}

/// Makes a Pacer name of a Pacemaker id: characters outside `[A-Za-z0-9_.-]` (and a
/// leading `.` or `-`) become `_`. Deterministic, so references follow.
pub(crate) fn sanitize_name(id: &str) -> Name {
    let mut name: String = id
        .chars()
        .enumerate()
        .map(|(position, c)| {
            let allowed = c.is_ascii_alphanumeric() || c == '_' || (position > 0 && (c == '.' || c == '-'));
            if allowed { c } else { '_' }
        })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    name.truncate(crate::api::names::MAX_NAME_LEN);
    Name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_take_every_pacemaker_spelling() {
        for yes in ["true", "TRUE", "on", "yes", "y", "1"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "off", "no", "n", "0"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn scores_accept_infinities_in_any_case_but_not_colours() {
        assert_eq!(parse_score("INFINITY"), Some(Score::INFINITY));
        assert_eq!(parse_score("-infinity"), Some(Score::NEG_INFINITY));
        assert_eq!(parse_score("+INFINITY"), Some(Score::INFINITY));
        assert_eq!(parse_score("-50"), Some(Score::new(-50)));
        assert_eq!(parse_score("1.0"), Some(Score::new(1)));
        assert_eq!(parse_score("red"), None);
        assert_eq!(parse_score("-"), None);
    }

    #[test]
    fn durations_cover_pacemaker_intervals() {
        let millis = |text: &str| parse_duration(text).map(Duration::as_millis);
        assert_eq!(millis("10"), Some(10_000));
        assert_eq!(millis("1m"), Some(60_000));
        assert_eq!(millis("2min"), Some(120_000));
        assert_eq!(millis("30000ms"), Some(30_000));
        assert_eq!(millis("1h"), Some(3_600_000));
        assert_eq!(millis("PT1M30S"), Some(90_000));
        assert_eq!(millis("soon"), None);
    }

    #[test]
    fn roles_accept_legacy_names() {
        assert_eq!(parse_role("Master"), Some(Role::Promoted));
        assert_eq!(parse_role("Slave"), Some(Role::Unpromoted));
        assert_eq!(parse_role("started"), Some(Role::Started));
        assert_eq!(parse_role("Leader"), None);
    }

    #[test]
    fn names_are_sanitized_deterministically() {
        assert_eq!(sanitize_name("rsc:1").as_str(), "rsc_1");
        assert_eq!(sanitize_name("-x").as_str(), "_x");
        assert_eq!(sanitize_name("ok.name-1").as_str(), "ok.name-1");
        assert_eq!(sanitize_name("").as_str(), "_");
    }
}
