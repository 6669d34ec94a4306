//! The metadata codec: round trips, and every rule the decoder enforces.

use super::*;
use crate::identity::IdentityKeyPair;

fn admin(seed: u8) -> IdentityKey {
    IdentityKeyPair::from_seed(&[seed; 32]).public_key()
}

fn metadata() -> GroupMetadata {
    GroupMetadata {
        name: "Team".into(),
        description: "Ship it.\nTogether.".into(),
        admins: vec![admin(1), admin(2)],
    }
}

#[test]
fn metadata_round_trips() {
    let m = metadata();
    let bytes = m.to_bytes();
    assert_eq!(GroupMetadata::from_bytes(&bytes), Ok(m.clone()));
    assert_eq!(bytes[0], GROUP_METADATA_VERSION);
    assert!(m.is_admin(&admin(1)));
    assert!(!m.is_admin(&admin(3)));
}

#[test]
fn the_decoder_refuses_what_the_rules_forbid() {
    let refused = |m: GroupMetadata| {
        assert!(m.check().is_err(), "{m:?} passes check");
        assert!(
            GroupMetadata::from_bytes(&m.to_bytes()).is_err(),
            "{m:?} decodes"
        );
    };
    refused(GroupMetadata {
        name: String::new(),
        ..metadata()
    });
    refused(GroupMetadata {
        name: "x".repeat(MAX_GROUP_NAME_LEN + 1),
        ..metadata()
    });
    refused(GroupMetadata {
        name: "two\nlines".into(),
        ..metadata()
    });
    refused(GroupMetadata {
        name: "bell\u{7}".into(),
        ..metadata()
    });
    refused(GroupMetadata {
        description: "escape \u{1b}[2J".into(),
        ..metadata()
    });
    refused(GroupMetadata {
        description: "x".repeat(MAX_GROUP_DESCRIPTION_LEN + 1),
        ..metadata()
    });
    refused(GroupMetadata {
        admins: vec![],
        ..metadata()
    });
    refused(GroupMetadata {
        admins: vec![admin(1), admin(1)],
        ..metadata()
    });
    refused(GroupMetadata {
        admins: (0..=MAX_GROUP_ADMINS as u8).map(admin).collect(),
        ..metadata()
    });
    // The limits themselves are allowed.
    let at_limits = GroupMetadata {
        name: "n".repeat(MAX_GROUP_NAME_LEN),
        description: "d".repeat(MAX_GROUP_DESCRIPTION_LEN),
        admins: (0..MAX_GROUP_ADMINS as u8).map(admin).collect(),
    };
    assert_eq!(
        GroupMetadata::from_bytes(&at_limits.to_bytes()),
        Ok(at_limits)
    );
}

#[test]
fn other_versions_truncation_and_trailing_bytes_are_refused() {
    let bytes = metadata().to_bytes();
    let mut other = bytes.clone();
    other[0] = 2;
    assert!(matches!(
        GroupMetadata::from_bytes(&other),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
    for len in 0..bytes.len() {
        assert!(GroupMetadata::from_bytes(&bytes[..len]).is_err(), "{len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        GroupMetadata::from_bytes(&longer),
        Err(DecodeError::TrailingBytes(1))
    );
}

fn decode_hex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
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

/// `testdata/group_meta.json`: a valid case's fields encode to its bytes and its bytes decode
/// to its fields; a refused case's bytes fail with the error it names.
#[test]
fn group_metadata_vectors() {
    let path = "testdata/group_meta.json";
    let text = include_str!("../../testdata/group_meta.json");
    let vectors: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let cases = vectors["cases"].as_array().cloned().unwrap_or_default();
    let (mut valid, mut refused) = (0, Vec::new());
    for case in &cases {
        let comment = case["comment"].as_str().unwrap_or_default();
        let bytes = decode_hex(case["hex"].as_str().unwrap_or_default());
        let decoded = GroupMetadata::from_bytes(&bytes);
        match case["error"].as_str() {
            None => {
                let admins = case["admins"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        let key: [u8; 32] = decode_hex(a.as_str().unwrap_or_default())
                            .try_into()
                            .unwrap_or_else(|k| panic!("{comment}: admin {k:?}"));
                        IdentityKey::from_bytes(&key).unwrap_or_else(|e| panic!("{comment}: {e}"))
                    })
                    .collect();
                let value = GroupMetadata {
                    name: case["name"].as_str().unwrap_or_default().to_owned(),
                    description: case["description"].as_str().unwrap_or_default().to_owned(),
                    admins,
                };
                assert_eq!(value.to_bytes(), bytes, "{comment}: encoding");
                assert_eq!(decoded.as_ref(), Ok(&value), "{comment}: decoding");
                valid += 1;
            }
            Some(expected) => {
                assert!(case["name"].is_null() && case["admins"].is_null());
                assert_eq!(
                    decoded.map_err(|e| error_name(&e)),
                    Err(expected),
                    "{comment}"
                );
                refused.push(expected);
            }
        }
    }
    assert!(valid >= 2, "valid cases");
    for error in [
        "Truncated",
        "TrailingBytes",
        "UnsupportedVersion",
        "TooLong",
        "Invalid",
    ] {
        assert!(refused.contains(&error), "a refused case for {error}");
    }
}

proptest::proptest! {
    /// Arbitrary bytes never panic the decoder, and whatever decodes re-encodes to itself.
    #[test]
    fn arbitrary_bytes_decode_canonically_or_not_at_all(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300)) {
        if let Ok(metadata) = GroupMetadata::from_bytes(&bytes) {
            proptest::prop_assert_eq!(metadata.to_bytes(), bytes);
        }
    }
}
