//! Unit tests for invite refusals: the vectors of `testdata/invite_refusal.json` both ways,
//! every refusal of the strict decoder, the hidden token, and properties over arbitrary bytes.

use proptest::prelude::*;

use super::*;

fn decode_hex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn reason_name(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::Used => "used",
        RefusalReason::Expired => "expired",
        RefusalReason::Unknown => "unknown",
    }
}

fn error_name(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Truncated { .. } => "Truncated",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::UnknownTag { .. } => "UnknownTag",
        DecodeError::TrailingBytes(_) => "TrailingBytes",
        DecodeError::TooLong { .. } => "TooLong",
        DecodeError::Invalid(_) => "Invalid",
    }
}

/// `testdata/invite_refusal.json`: a valid case's fields encode to its bytes and its bytes
/// decode to its fields; a refused case's bytes fail with the error it names.
#[test]
fn invite_refusal_vectors() {
    let path = "testdata/invite_refusal.json";
    let text = include_str!("../../testdata/invite_refusal.json");
    let vectors: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases = vectors["cases"].as_array().cloned().unwrap_or_default();
    let (mut valid, mut refused) = (Vec::new(), Vec::new());
    for case in &cases {
        let comment = case["comment"].as_str().unwrap_or_default();
        let bytes = decode_hex(case["hex"].as_str().unwrap_or_default());
        let decoded = InviteRefusal::from_bytes(&bytes);
        match case["error"].as_str() {
            None => {
                let token: [u8; INVITE_TOKEN_LEN] =
                    decode_hex(case["invite_token"].as_str().unwrap_or_default())
                        .try_into()
                        .unwrap_or_else(|t| panic!("{comment}: token {t:?}"));
                let reason = RefusalReason::ALL
                    .into_iter()
                    .find(|r| Some(reason_name(*r)) == case["reason"].as_str())
                    .unwrap_or_else(|| panic!("{comment}: reason {}", case["reason"]));
                let value = InviteRefusal {
                    invite_token: token,
                    reason,
                };
                assert_eq!(value.to_bytes(), bytes, "{comment}: encoding");
                assert_eq!(decoded.as_ref(), Ok(&value), "{comment}: decoding");
                valid.push(reason);
            }
            Some(expected) => {
                assert!(case["invite_token"].is_null() && case["reason"].is_null());
                let found = decoded.map_err(|e| error_name(&e));
                assert_eq!(found, Err(expected), "{comment}");
                refused.push(expected);
            }
        }
    }
    assert_eq!(valid, RefusalReason::ALL, "one valid case per reason");
    for error in [
        "Truncated",
        "TrailingBytes",
        "UnsupportedVersion",
        "UnknownTag",
    ] {
        assert!(refused.contains(&error), "a refused case for {error}");
    }
}

#[test]
fn the_encoding_is_exactly_eighteen_bytes() {
    for reason in RefusalReason::ALL {
        let bytes = InviteRefusal {
            invite_token: [9; INVITE_TOKEN_LEN],
            reason,
        }
        .to_bytes();
        assert_eq!(bytes.len(), INVITE_REFUSAL_LEN);
        assert_eq!(INVITE_REFUSAL_LEN, 18);
        assert_eq!(bytes[0], INVITE_REFUSAL_VERSION);
        assert_eq!(bytes[17], reason.to_byte());
    }
}

#[test]
fn the_decoder_refuses_what_breaks_a_rule() {
    let good = InviteRefusal {
        invite_token: [7; INVITE_TOKEN_LEN],
        reason: RefusalReason::Expired,
    }
    .to_bytes();
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        edit(&mut b);
        InviteRefusal::from_bytes(&b)
    };
    assert_eq!(
        with(&|b| b[0] = 2),
        Err(DecodeError::UnsupportedVersion {
            what: "invite refusal",
            version: 2
        })
    );
    assert_eq!(
        with(&|b| b[0] = 0),
        Err(DecodeError::UnsupportedVersion {
            what: "invite refusal",
            version: 0
        })
    );
    for tag in [0, 4, 0x81, 0xff] {
        assert_eq!(
            with(&|b| b[17] = tag),
            Err(DecodeError::UnknownTag {
                what: "invite refusal reason",
                tag
            })
        );
    }
    assert_eq!(with(&|b| b.push(0)), Err(DecodeError::TrailingBytes(1)));
    assert_eq!(
        with(&|b| {
            b.pop();
        }),
        Err(DecodeError::Truncated { needed: 1 })
    );
    assert_eq!(
        with(&|b| b.truncate(1)),
        Err(DecodeError::Truncated {
            needed: INVITE_TOKEN_LEN
        })
    );
    assert_eq!(
        InviteRefusal::from_bytes(&[]),
        Err(DecodeError::Truncated { needed: 1 })
    );
}

#[test]
fn reasons_round_trip_through_their_byte_and_describe_themselves() {
    for reason in RefusalReason::ALL {
        assert_eq!(RefusalReason::from_byte(reason.to_byte()), Ok(reason));
    }
    assert_eq!(
        RefusalReason::ALL.map(RefusalReason::to_byte),
        [1, 2, 3],
        "SPEC.md 8.1"
    );
    assert_eq!(RefusalReason::Used.describe(), "it was already used");
    assert_eq!(RefusalReason::Expired.describe(), "it had expired");
    assert_eq!(
        RefusalReason::Unknown.describe(),
        "this account never issued it"
    );
}

#[test]
fn debug_hides_the_token() {
    let text = format!(
        "{:?}",
        InviteRefusal {
            invite_token: [0xab; INVITE_TOKEN_LEN],
            reason: RefusalReason::Used,
        }
    );
    assert_eq!(
        text,
        r#"InviteRefusal { invite_token: "..", reason: Used }"#
    );
}

fn reason() -> impl Strategy<Value = RefusalReason> {
    prop::sample::select(RefusalReason::ALL.to_vec())
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_what_decodes_is_canonical(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        if let Ok(value) = InviteRefusal::from_bytes(&bytes) {
            prop_assert_eq!(value.to_bytes(), bytes);
        }
    }

    #[test]
    fn nearly_valid_bytes_decode_exactly_when_version_and_reason_are_right(
        version in any::<u8>(),
        token in any::<[u8; INVITE_TOKEN_LEN]>(),
        reason_byte in any::<u8>(),
    ) {
        let mut bytes = vec![version];
        bytes.extend_from_slice(&token);
        bytes.push(reason_byte);
        let decoded = InviteRefusal::from_bytes(&bytes);
        prop_assert_eq!(
            decoded.is_ok(),
            version == INVITE_REFUSAL_VERSION && (1..=3).contains(&reason_byte)
        );
    }

    #[test]
    fn encoding_round_trips(token in any::<[u8; INVITE_TOKEN_LEN]>(), reason in reason()) {
        let value = InviteRefusal { invite_token: token, reason };
        let bytes = value.to_bytes();
        prop_assert_eq!(bytes.len(), INVITE_REFUSAL_LEN);
        prop_assert_eq!(InviteRefusal::from_bytes(&bytes), Ok(value));
    }
}
