//! Hex decoding and the QR drawing.

use super::*;

#[test]
fn hex_decodes_either_case() {
    assert_eq!(decode_hex(""), Ok(vec![]));
    assert_eq!(decode_hex("00ff7F10"), Ok(vec![0x00, 0xff, 0x7f, 0x10]));
    assert_eq!(decode_hex("ABCDEF"), Ok(vec![0xab, 0xcd, 0xef]));
}

#[test]
fn hex_refuses_junk_and_says_where() {
    assert_eq!(decode_hex("abc"), Err(HexError::OddLength(3)));
    assert_eq!(decode_hex("0g"), Err(HexError::InvalidDigit(1)));
    assert_eq!(decode_hex("00 1"), Err(HexError::InvalidDigit(2)));
    assert_eq!(decode_hex("zz00"), Err(HexError::InvalidDigit(0)));
    // A multi-byte character is never a digit, and never split mid-character.
    assert_eq!(decode_hex("é00"), Err(HexError::InvalidDigit(0)));
    assert_eq!(decode_hex("0é0"), Err(HexError::InvalidDigit(1)));
}

#[test]
fn the_code_is_drawn_inverted_with_a_quiet_zone() {
    let art = render(b"safety number payload").unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = art.lines().collect();
    // Version 2 (25 modules) plus a 4-module quiet zone on each side: 33 columns, and two
    // module rows per text line.
    let width = lines[0].chars().count();
    assert_eq!(width, 33);
    assert!(lines.iter().all(|l| l.chars().count() == width));
    assert_eq!(lines.len(), 17);
    // The quiet zone is light, and light is drawn (full blocks) for a dark terminal.
    assert!(lines[0].chars().all(|c| c == '█'), "{:?}", lines[0]);
    assert!(art.contains(' '), "dark modules are left blank");
}
