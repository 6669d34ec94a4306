//! Where passphrases come from, and that none is printed.

use std::io::Write;

use super::*;
use crate::exit;

fn usage_error(result: anyhow::Result<Passphrase>) -> String {
    let err = result.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(exit::classify(&err).status, exit::USAGE, "{err:#}");
    format!("{err:#}")
}

#[test]
fn a_file_gives_its_first_line_without_the_line_ending() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (contents, expected) in [
        ("correct horse\n", "correct horse"),
        ("correct horse", "correct horse"),
        ("correct horse\r\nsecond line\n", "correct horse"),
        ("  spaces kept  \n", "  spaces kept  "),
    ] {
        let path = dir.path().join("pass");
        let mut file = fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        file.write_all(contents.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let passphrase = from_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(passphrase.expose(), expected);
    }
}

#[test]
fn an_empty_or_missing_file_is_refused_without_showing_contents() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("empty");
    fs::write(&path, "\nsecret on line two\n").unwrap_or_else(|e| panic!("{e}"));
    let message = usage_error(from_file(&path));
    assert!(message.contains("empty"), "{message}");
    assert!(!message.contains("secret"), "{message}");

    let missing = dir.path().join("missing");
    let err = from_file(&missing)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert!(format!("{err:#}").contains("missing"), "{err:#}");
}

#[test]
fn stdin_gives_one_line() {
    let passphrase = from_reader(&b"hunter2\nnot this\n"[..]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(passphrase.expose(), "hunter2");
    let passphrase = from_reader(&b"no newline"[..]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(passphrase.expose(), "no newline");
    assert!(usage_error(from_reader(&b""[..])).contains("stdin is empty"));
    assert!(usage_error(from_reader(&b"\r\n"[..])).contains("empty"));
}

#[test]
fn debug_shows_no_secret() {
    let passphrase = from_reader(&b"hunter2\n"[..]).unwrap_or_else(|e| panic!("{e:#}"));
    let debug = format!("{passphrase:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn a_wrong_passphrase_is_asked_again_up_to_three_times() {
    use std::cell::RefCell;
    let wrong = |e: &anyhow::Error| format!("{e}") == "wrong";
    let run = |typed: &[&str]| {
        let typed: RefCell<Vec<String>> =
            RefCell::new(typed.iter().rev().map(|t| (*t).to_owned()).collect());
        let tried = RefCell::new(Vec::new());
        let said = RefCell::new(Vec::new());
        let result = with_retries(
            TRIES,
            || {
                let next = typed.borrow_mut().pop().unwrap_or_default();
                Passphrase::new(next)
            },
            |p| {
                tried.borrow_mut().push(p.expose().to_owned());
                if p.expose() == "right" {
                    Ok(p.expose().to_owned())
                } else if p.expose() == "broken" {
                    Err(anyhow::anyhow!("chatd went away"))
                } else {
                    Err(anyhow::anyhow!("wrong"))
                }
            },
            wrong,
            |text| said.borrow_mut().push(text.to_owned()),
        );
        (
            result.map_err(|e| format!("{e}")),
            tried.into_inner(),
            said.into_inner(),
        )
    };
    // Right at the third try: two notes, three attempts.
    let (result, tried, said) = run(&["a", "b", "right", "never asked"]);
    assert_eq!(result.as_deref(), Ok("right"));
    assert_eq!(tried, ["a", "b", "right"]);
    assert_eq!(
        said,
        [
            "wrong passphrase; try again (2 tries left)",
            "wrong passphrase; try again (1 try left)"
        ]
    );
    // Three wrong ones: the third error is returned, and nothing more is asked.
    let (result, tried, said) = run(&["a", "b", "c", "right"]);
    assert_eq!(result, Err("wrong".to_owned()));
    assert_eq!(tried.len(), 3);
    assert_eq!(said.len(), 2);
    // Any other error ends at once.
    let (result, tried, _) = run(&["broken", "right"]);
    assert_eq!(result, Err("chatd went away".to_owned()));
    assert_eq!(tried, ["broken"]);
    // An empty answer is a usage error, not a try.
    let (result, tried, _) = run(&["", "right"]);
    assert!(result.is_err_and(|e| e.contains("empty")));
    assert!(tried.is_empty());
}
