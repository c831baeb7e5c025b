//! Reading the logs Pacer's processes write, for the tests, benchmarks and the fault
//! campaign that judge by them.

/// `text` without its terminal escape sequences (the logs are coloured on a terminal).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_go_and_the_text_stays() {
        assert_eq!(strip_ansi("\u{1b}[2mtook\u{1b}[0m=\u{1b}[3m5ms\u{1b}[0m"), "took=5ms");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
