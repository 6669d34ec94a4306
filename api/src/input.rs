//! Checks of what a person types that both the daemon and its clients make, so that a client
//! refuses bad input itself with the daemon's own words (and without sending megabytes first):
//! message texts, safety numbers, and the warning about a weak passphrase.

/// Largest message text `messages.send` accepts, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Digits in a safety number (SPEC.md 9).
pub const SAFETY_NUMBER_DIGITS: usize = 60;

/// Why a message text is refused: empty or only white space, or over [`MAX_TEXT_LEN`] bytes.
pub fn text_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("the text is empty (or only white space)".to_owned());
    }
    if text.len() > MAX_TEXT_LEN {
        return Some(format!(
            "the text is {} bytes; at most {} KiB ({MAX_TEXT_LEN} bytes) fit in a message",
            text.len(),
            MAX_TEXT_LEN / 1024
        ));
    }
    None
}

/// A safety number as typed, white space removed: exactly [`SAFETY_NUMBER_DIGITS`] ASCII
/// digits, or why not.
pub fn safety_number_digits(text: &str) -> Result<String, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != SAFETY_NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "a safety number is {SAFETY_NUMBER_DIGITS} digits (spaces are ignored); this is not one"
        ));
    }
    Ok(digits)
}

/// Passphrases shorter than this many characters get a warning.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Passphrases with fewer distinct characters than this get a warning.
pub const MIN_DISTINCT_CHARS: usize = 5;

/// Why a passphrase is weak, or `None`: fewer than [`MIN_PASSPHRASE_CHARS`] characters, only
/// digits (a PIN or a date), or fewer than [`MIN_DISTINCT_CHARS`] distinct characters
/// (`aaaaaaaaaaaa`, `abababababab`). A weak passphrase is accepted; chatd and chatctl only
/// warn, since the user may have reasons (and the store is still encrypted). This is no
/// strength meter: a long passphrase of dictionary words passes, as it should.
pub fn passphrase_weakness(passphrase: &str) -> Option<String> {
    let chars = passphrase.chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Some(format!(
            "the passphrase is short ({chars} characters; use at least {MIN_PASSPHRASE_CHARS}, \
             for example four random words)"
        ));
    }
    if passphrase.chars().all(|c| c.is_ascii_digit()) {
        return Some(
            "the passphrase is only digits, which are quickly guessed (use words, for example \
             four random ones)"
                .to_owned(),
        );
    }
    let mut distinct: Vec<char> = passphrase.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Some(format!(
            "the passphrase repeats {} characters, which is quickly guessed (use words, for \
             example four random ones)",
            distinct.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_safety_numbers_are_checked() {
        assert!(text_problem("hi").is_none());
        assert!(text_problem("").is_some());
        assert!(text_problem(" \n\t ").is_some());
        assert!(text_problem(&"x".repeat(MAX_TEXT_LEN)).is_none());
        assert!(text_problem(&"x".repeat(MAX_TEXT_LEN + 1)).is_some());
        let number = "12345 ".repeat(12);
        assert_eq!(safety_number_digits(&number).map(|d| d.len()), Ok(60));
        assert!(safety_number_digits(&number[..number.len() - 2]).is_err());
        assert!(safety_number_digits(&number.replace('1', "a")).is_err());
        assert!(safety_number_digits("").is_err());
    }

    #[test]
    fn weak_passphrases_are_named() {
        for weak in [
            "",
            "hunter2",
            "elevenchars",
            "123456789012345",
            "aaaaaaaaaaaaaaa",
            "abababababab",
        ] {
            assert!(passphrase_weakness(weak).is_some(), "{weak:?} passed");
        }
        let short = passphrase_weakness("ünïcödé").unwrap_or_default();
        assert!(short.contains("7 characters"), "{short}");
        for fine in [
            "correct horse battery staple",
            "twelve chars",
            "Tr0ub4dor&3xyz",
        ] {
            assert_eq!(passphrase_weakness(fine), None, "{fine:?}");
        }
    }
}
