//! Unit tests for the codec primitives.

use super::*;

#[test]
fn integers_are_big_endian() {
    let mut w = Writer::new();
    w.u16(0x0102);
    w.u32(0x03040506);
    w.u64(0x0708090a0b0c0d0e);
    assert_eq!(
        w.as_bytes(),
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    );
}

#[test]
fn truncation_is_distinct_from_invalid() {
    let mut r = Reader::new(&[0, 5, 1, 2]);
    assert_eq!(
        r.bytes16("field", 100),
        Err(DecodeError::Truncated { needed: 3 })
    );
    let mut r = Reader::new(&[0, 5, 1, 2, 3, 4, 5]);
    assert_eq!(
        r.bytes16("field", 4),
        Err(DecodeError::TooLong {
            what: "field",
            len: 5,
            max: 4
        })
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut r = Reader::new(&[1, 2]);
    assert_eq!(r.u8(), Ok(1));
    assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn a_lying_length_does_not_allocate() {
    // A u32 length of 4 GiB with three bytes behind it must fail cleanly.
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert!(matches!(
        r.bytes32("blob", usize::MAX),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn option_tag_must_be_zero_or_one() {
    assert_eq!(Reader::new(&[0]).option::<u8>("opt"), Ok(None));
    assert_eq!(Reader::new(&[1, 7]).option::<u8>("opt"), Ok(Some(7)));
    assert_eq!(
        Reader::new(&[2, 7]).option::<u8>("opt"),
        Err(DecodeError::Invalid("opt"))
    );
}
