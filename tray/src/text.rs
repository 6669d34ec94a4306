//! Text that came from outside (message text, aliases, display names a peer chose) made safe
//! for a notification: control and bidirectional-override characters removed, whitespace
//! runs folded into one space, bounded length, and markup escaped for servers that parse it.

/// Makes `text` one line of at most `max_chars` characters: control characters (newlines
/// included) and invisible formatting characters that could reorder or hide text are replaced
/// by spaces, runs of whitespace become one space, and a cut is marked with `…`.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        let c = if c.is_control() || is_invisible_format(c) {
            ' '
        } else {
            c
        };
        if c.is_whitespace() {
            pending_space = count > 0;
            continue;
        }
        let needed = if pending_space { 2 } else { 1 };
        if count + needed > max_chars {
            // Room for the ellipsis: drop characters until it fits.
            while count + 1 > max_chars {
                if out.pop().is_none() {
                    break;
                }
                count -= 1;
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Escapes `&`, `<` and `>` for a notification body on a server that announces the
/// `body-markup` capability (the Desktop Notifications spec's subset of HTML), so a message
/// cannot format itself, inject links or hide its text.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Unicode format characters that change how surrounding text is shown: bidirectional
/// embeddings, overrides and isolates (which can make "gpj.exe" read as "exe.jpg"), zero-width
/// characters, and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_become_spaces_and_runs_fold() {
        assert_eq!(one_line("  hello\n\n\tworld\r\n ", 100), "hello world");
        assert_eq!(one_line("a\u{1b}[31mred\u{7}", 100), "a [31mred");
        assert_eq!(one_line("evil\u{202E}gpj.exe", 100), "evil gpj.exe");
        assert_eq!(one_line("zero\u{200B}width", 100), "zero width");
        assert_eq!(one_line("", 100), "");
        assert_eq!(one_line("\n\n", 100), "");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_within_the_bound() {
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("abcd efgh", 6), "abcd…");
        let long = "é".repeat(500);
        let cut = one_line(&long, 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
        for n in 1..12 {
            assert!(one_line("hello wide world", n).chars().count() <= n);
        }
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_markup("<b>1 & 2</b> <a href=\"x\">"),
            "&lt;b&gt;1 &amp; 2&lt;/b&gt; &lt;a href=\"x\"&gt;"
        );
    }
}
