//! Checks of what a person types that both the daemon and its clients make, so that a client
//! refuses bad input itself with the daemon's own words (and without sending megabytes first):
//! message texts, safety numbers, aliases, and the warning about a weak passphrase.

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

/// Most characters in an alias.
pub const MAX_ALIAS_CHARS: usize = 64;

/// Whether `c` is invisible or reorders text around it: bidirectional controls, zero-width
/// characters, joiners, variation selectors, tags and the other Unicode format characters
/// (general category Cf), plus fillers that render as nothing. A name containing one can look
/// like another name, or cannot be typed.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}' | '\u{110BD}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Why an alias a person chose is refused: empty, longer than [`MAX_ALIAS_CHARS`], starting
/// with `@` (which names handles), containing white space, control characters or invisible
/// ones ([`is_invisible`]). Otherwise it is kept as typed (lookups ignore case).
pub fn alias_problem(alias: &str) -> Option<String> {
    let count = alias.chars().count();
    let why = if count == 0 {
        "it is empty".to_owned()
    } else if count > MAX_ALIAS_CHARS {
        format!("it is {count} characters long; at most {MAX_ALIAS_CHARS} are allowed")
    } else if alias.starts_with('@') {
        "it starts with @, which names a handle".to_owned()
    } else if let Some(c) = alias.chars().find(|c| c.is_whitespace()) {
        format!("it contains white space (U+{:04X})", u32::from(c))
    } else if let Some(c) = alias.chars().find(|c| c.is_control()) {
        format!("it contains a control character (U+{:04X})", u32::from(c))
    } else if let Some(c) = alias.chars().find(|c| is_invisible(*c)) {
        format!(
            "it contains an invisible or direction-changing character (U+{:04X})",
            u32::from(c)
        )
    } else {
        return None;
    };
    Some(format!(
        "invalid alias {:?}: {why}; use 1 to {MAX_ALIAS_CHARS} visible characters without \
         spaces, not starting with @",
        alias.escape_default().to_string()
    ))
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

    #[test]
    fn aliases_are_visible_text_without_spaces() {
        for good in ["bob", "Bob", "bob-2", "mum", "José", "a@b", "Алиса"] {
            assert_eq!(alias_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "@bob",
            "two words",
            "tab\tbed",
            "bo\u{200B}b",
            "\u{202E}bob",
            "bob\u{2066}",
            "e\u{FE0F}",
            "x\u{7}",
        ] {
            let why = alias_problem(bad).unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(why.starts_with("invalid alias"), "{why}");
        }
        assert!(alias_problem(&"a".repeat(MAX_ALIAS_CHARS)).is_none());
        assert!(alias_problem(&"a".repeat(MAX_ALIAS_CHARS + 1)).is_some());
        // The message shows invisible characters escaped, so the user sees what was wrong.
        let why = alias_problem("bo\u{200B}b").unwrap_or_default();
        assert!(why.contains("\\u{200b}"), "{why}");
    }
}
