//! Unit tests for display names and introductions: every rule, at and past each limit.

use super::*;

fn intro(name: &str, handle: Option<&str>, token: Option<[u8; 16]>) -> Introduction {
    Introduction {
        name: DisplayName::parse(name).unwrap(),
        handle: handle.map(|h| Handle::parse(h).unwrap()),
        invite_token: token,
        reachability: None,
        delivery_token: None,
    }
}

#[test]
fn display_names_follow_the_rules_in_order() {
    let longest = "\u{1F600}".repeat(DISPLAY_NAME_MAX_CHARS);
    assert_eq!(longest.len(), DISPLAY_NAME_MAX_LEN);
    assert_eq!(DisplayName::parse(&longest).unwrap().as_str(), longest);
    assert_eq!(DisplayName::parse("A").unwrap().as_str(), "A");
    assert_eq!(
        DisplayName::parse("Ada Lovelace").unwrap().as_str(),
        "Ada Lovelace"
    );
    assert_eq!(DisplayName::parse(""), Err(DisplayNameError::Empty));
    assert_eq!(
        DisplayName::parse(&"a".repeat(DISPLAY_NAME_MAX_CHARS + 1)),
        Err(DisplayNameError::TooLong)
    );
    assert_eq!(
        DisplayName::parse("a\u{7}b"),
        Err(DisplayNameError::ControlCharacter)
    );
    assert_eq!(
        DisplayName::parse("a\nb"),
        Err(DisplayNameError::ControlCharacter)
    );
    assert_eq!(DisplayName::parse(" ab"), Err(DisplayNameError::Untrimmed));
    assert_eq!(
        DisplayName::parse("ab\u{3000}"),
        Err(DisplayNameError::Untrimmed)
    );
    // A control character at an end is reported as such (the control check runs first).
    assert_eq!(
        DisplayName::parse("ab\t"),
        Err(DisplayNameError::ControlCharacter)
    );
}

#[test]
fn introductions_round_trip() {
    for value in [
        intro("Ada", None, None),
        intro("Ada", Some("ada.l"), None),
        intro("Ada", None, Some([7; 16])),
        intro(&"\u{e9}".repeat(64), Some(&"a".repeat(32)), Some([1; 16])),
    ] {
        let bytes = value.to_bytes();
        assert_eq!(Introduction::from_bytes(&bytes).unwrap(), value);
    }
}

#[test]
fn introduction_decoder_refuses_what_breaks_a_rule() {
    let good = intro("Ada", Some("ada"), Some([7; 16])).to_bytes();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        edit(&mut b);
        Introduction::from_bytes(&b)
    };
    // version
    assert!(matches!(
        with(&|b| b[0] = 3),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
    // version 2 reads two more presence bytes: here they are missing
    assert!(matches!(
        with(&|b| b[0] = 2),
        Err(DecodeError::Truncated { .. })
    ));
    // and a version 2 introduction without either field is not the canonical encoding
    assert_eq!(
        with(&|b| {
            b[0] = 2;
            b.extend_from_slice(&[0, 0]);
        }),
        Err(DecodeError::Invalid(
            "version 2 introduction without its fields"
        ))
    );
    // trailing bytes
    assert_eq!(with(&|b| b.push(0)), Err(DecodeError::TrailingBytes(1)));
    // presence bytes other than 0 and 1 (handle presence at 6, token presence at 12)
    assert_eq!(good[6], 1);
    assert_eq!(
        with(&|b| b[6] = 2),
        Err(DecodeError::Invalid("introduction handle presence"))
    );
    assert_eq!(good[12], 1);
    assert_eq!(
        with(&|b| b[12] = 2),
        Err(DecodeError::Invalid("introduction token presence"))
    );
    // a handle that breaks 10.6
    assert_eq!(
        with(&|b| b[9] = b'A'),
        Err(DecodeError::Invalid("introduction handle"))
    );
}

/// An introduction whose name field holds `name` as raw bytes, no handle, no token.
fn with_raw_name(name: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(INTRODUCTION_VERSION);
    w.bytes16(name);
    w.u8(0);
    w.u8(0);
    w.into_bytes()
}

#[test]
fn name_and_handle_limits_hold_at_the_boundary() {
    let at = "\u{1F600}".repeat(64);
    assert!(Introduction::from_bytes(&with_raw_name(at.as_bytes())).is_ok());
    // 257 bytes: refused by length before the characters are looked at.
    let over = format!("{at}a");
    assert_eq!(
        Introduction::from_bytes(&with_raw_name(over.as_bytes())),
        Err(DecodeError::TooLong {
            what: "display name",
            len: DISPLAY_NAME_MAX_LEN + 1,
            max: DISPLAY_NAME_MAX_LEN
        })
    );
    // 65 one-byte characters: within the byte limit, over the character limit.
    assert_eq!(
        Introduction::from_bytes(&with_raw_name("a".repeat(65).as_bytes())),
        Err(DecodeError::Invalid("display name"))
    );
    assert_eq!(
        Introduction::from_bytes(&with_raw_name(b"")),
        Err(DecodeError::Invalid("display name"))
    );
    assert_eq!(
        Introduction::from_bytes(&with_raw_name(&[0xff])),
        Err(DecodeError::Invalid("display name"))
    );
    // Handle: 32 bytes accepted, 33 refused by length.
    let handle = |len: usize| {
        let mut w = Writer::new();
        w.u8(INTRODUCTION_VERSION);
        w.str16("Ada");
        w.u8(1);
        w.str16(&"a".repeat(len));
        w.u8(0);
        Introduction::from_bytes(&w.into_bytes())
    };
    assert!(handle(HANDLE_MAX_LEN).is_ok());
    assert!(matches!(
        handle(HANDLE_MAX_LEN + 1),
        Err(DecodeError::TooLong { .. })
    ));
}

#[test]
fn debug_hides_the_token() {
    let text = format!("{:?}", intro("Ada", None, Some([0xab; 16])));
    assert!(!text.contains("ab, ") && !text.contains("171"), "{text}");
}

#[test]
fn version_2_carries_reachability_and_a_delivery_token() {
    use crate::identity::IdentityKeyPair;
    use crate::reachability::{DeliveryToken, ReachabilityRecord, RelayEndpoint};
    let alice = IdentityKeyPair::from_seed(&[1; 32]);
    let record = ReachabilityRecord::sign(
        &alice,
        7,
        vec![RelayEndpoint::new("wss://relay.example", None).unwrap()],
    )
    .unwrap();
    let mut value = intro("Ada", None, None);
    value.reachability = Some(record);
    value.delivery_token = Some(DeliveryToken([3; 16]));
    let bytes = value.to_bytes();
    assert_eq!(bytes[0], INTRODUCTION_VERSION_2);
    assert_eq!(Introduction::from_bytes(&bytes).unwrap(), value);
    // Either field alone makes a version 2 introduction.
    let mut token_only = value.clone();
    token_only.reachability = None;
    assert_eq!(token_only.to_bytes()[0], INTRODUCTION_VERSION_2);
    assert_eq!(
        Introduction::from_bytes(&token_only.to_bytes()).unwrap(),
        token_only
    );
    // Without them, version 1 as before.
    assert_eq!(intro("Ada", None, None).to_bytes()[0], INTRODUCTION_VERSION);
    assert!(!format!("{value:?}").contains("[3"));
}
