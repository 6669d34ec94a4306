//! Reading a message text from stdin (`send BOB -`), and when a wait is over.

use api::types::MessageStatus::{Delivered, Failed, Pending, Read, Sent};

use super::*;

#[test]
fn stdin_text_loses_exactly_one_trailing_line_break() {
    let read = |bytes: &[u8]| text_from(bytes).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(read(b"hello\n"), "hello");
    assert_eq!(read(b"hello\r\n"), "hello");
    assert_eq!(read(b"hello"), "hello");
    assert_eq!(read(b"two\nlines\n\n"), "two\nlines\n");
    assert_eq!(read(b"  indented\n"), "  indented");
    assert_eq!(read(b"\n"), "");
    assert_eq!(read(b""), "");
    assert_eq!(read("héllo ✓\n".as_bytes()), "héllo ✓");
}

#[test]
fn stdin_text_must_be_utf8() {
    let err = text_from(&b"\xff\xfe\n"[..])
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert!(format!("{err:#}").contains("UTF-8"), "{err:#}");
}

#[test]
fn a_later_status_satisfies_a_wait_and_failed_ends_it() {
    assert_eq!(reached(Pending, Sent), Some(false));
    assert_eq!(reached(Sent, Sent), Some(true));
    assert_eq!(reached(Delivered, Sent), Some(true));
    assert_eq!(reached(Sent, Delivered), Some(false));
    assert_eq!(reached(Read, Delivered), Some(true));
    assert_eq!(reached(Delivered, Read), Some(false));
    assert_eq!(reached(Failed, Sent), None);
    assert_eq!(reached(Failed, Read), None);
}
