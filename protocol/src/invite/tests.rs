//! Unit tests for invite codes: round trips, each refusal in order, and the length limits.

use super::*;
use crate::identity::IdentityKeyPair;
use crate::reachability::RelayEndpoint;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn record(relays: &[&str], pin: bool) -> ReachabilityRecord {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let identity = IdentityKeyPair::generate(&mut rng);
    let relays = relays
        .iter()
        .map(|url| RelayEndpoint::new(url, pin.then_some([5; 32])).unwrap())
        .collect();
    ReachabilityRecord::sign(&identity, 1_700_000_000_000, relays).unwrap()
}

fn invite_with(reachability: ReachabilityRecord, name: &str) -> Invite {
    Invite {
        reachability,
        token: [9; 16],
        delivery_token: DeliveryToken([8; 16]),
        name: DisplayName::parse(name).unwrap(),
        expires_at_ms: 1_700_000_000_000,
    }
}

fn invite(relay_url: &str, name: &str) -> Invite {
    invite_with(record(&[relay_url], false), name)
}

/// The code of arbitrary invite bytes, with a correct checksum.
fn code_of(bytes: &[u8]) -> String {
    let mut bytes = bytes.to_vec();
    let check = sha256(&[INVITE_CHECKSUM_CONTEXT, &bytes]);
    bytes.extend_from_slice(&check[..4]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{INVITE_PREFIX}{hex}")
}

#[test]
fn codes_round_trip() {
    let value = invite("wss://relay.example:8443/v1", "Ada");
    let code = value.to_code();
    assert!(code.starts_with(INVITE_PREFIX));
    assert_eq!(code, code_of(&value.to_bytes()));
    assert_eq!(Invite::parse_code(&code).unwrap(), value);
}

#[test]
fn the_longest_invite_is_accepted_and_one_byte_more_is_not() {
    let urls: Vec<String> = (0..4)
        .map(|i| format!("wss://{i}{}.example:65535/v1", "a".repeat(232)))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let longest = invite_with(record(&urls, true), &"\u{1F600}".repeat(64));
    assert_eq!(longest.to_bytes().len(), MAX_INVITE_LEN);
    let code = longest.to_code();
    assert_eq!(code.len(), MAX_INVITE_CODE_LEN);
    assert_eq!(MAX_INVITE_CODE_LEN, 3157);
    assert_eq!(Invite::parse_code(&code).unwrap(), longest);
    assert_eq!(
        Invite::parse_code(&format!("{code}0")),
        Err(InviteError::TooLong {
            len: MAX_INVITE_CODE_LEN + 1
        })
    );
}

#[test]
fn refusals_come_in_order() {
    let good = invite("wss://relay.example/v1", "Ada");
    let code = good.to_code();
    assert_eq!(
        Invite::parse_code(&format!(" {code}")),
        Err(InviteError::NotAnInvite)
    );
    assert_eq!(
        Invite::parse_code(&format!("{code}\n")),
        Err(InviteError::NotHex)
    );
    assert_eq!(
        Invite::parse_code(&code.to_uppercase()),
        Err(InviteError::NotAnInvite)
    );
    let upper_hex = format!(
        "{INVITE_PREFIX}{}",
        code[INVITE_PREFIX.len()..].to_uppercase()
    );
    assert_eq!(Invite::parse_code(&upper_hex), Err(InviteError::NotHex));
    assert_eq!(
        Invite::parse_code(&code[..code.len() - 1]),
        Err(InviteError::NotHex)
    );
    assert_eq!(
        Invite::parse_code(&code[..code.len() - 2]),
        Err(InviteError::Checksum)
    );
    assert_eq!(
        Invite::parse_code(&format!("{INVITE_PREFIX}0102")),
        Err(InviteError::Checksum)
    );
    // One digit changed.
    let mut typo = code.clone().into_bytes();
    let i = INVITE_PREFIX.len() + 10;
    typo[i] = if typo[i] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        Invite::parse_code(&String::from_utf8(typo).unwrap()),
        Err(InviteError::Checksum)
    );
    // Well-checksummed but malformed: trailing byte, another version, a bad name.
    let mut bytes = good.to_bytes();
    bytes.push(0);
    assert_eq!(
        Invite::parse_code(&code_of(&bytes)),
        Err(InviteError::Malformed(DecodeError::TrailingBytes(1)))
    );
    let mut bytes = good.to_bytes();
    bytes[0] = 1;
    assert!(matches!(
        Invite::parse_code(&code_of(&bytes)),
        Err(InviteError::Malformed(
            DecodeError::UnsupportedVersion { .. }
        ))
    ));
    let mut w = Writer::new();
    w.u8(INVITE_VERSION);
    good.reachability.encode(&mut w);
    w.raw(&[9; 16]);
    w.raw(&[8; 16]);
    w.str16(" Ada");
    w.u64(0);
    assert_eq!(
        Invite::parse_code(&code_of(&w.into_bytes())),
        Err(InviteError::Malformed(DecodeError::Invalid("display name")))
    );
    // A bad key is reported after a malformed field, and before a bad signature.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut bad_key = good.to_bytes();
    bad_key[2..34].copy_from_slice(&identity);
    assert_eq!(
        Invite::parse_code(&code_of(&bad_key)),
        Err(InviteError::InvalidKey)
    );
    bad_key.push(0);
    assert_eq!(
        Invite::parse_code(&code_of(&bad_key)),
        Err(InviteError::Malformed(DecodeError::TrailingBytes(1)))
    );
    // Well formed, but the record's signature does not verify (its sequence was changed).
    let mut forged = good.to_bytes();
    forged[34] ^= 1;
    assert_eq!(
        Invite::parse_code(&code_of(&forged)),
        Err(InviteError::BadSignature)
    );
}

#[test]
fn expiry_includes_its_last_millisecond() {
    let value = invite("wss://relay.example/v1", "Ada");
    assert!(!value.is_expired(value.expires_at_ms));
    assert!(value.is_expired(value.expires_at_ms + 1));
}

#[test]
fn debug_hides_the_token() {
    let text = format!("{:?}", invite("wss://relay.example/v1", "Ada"));
    assert!(
        !text.contains("token") && !text.contains("[9") && !text.contains("[8"),
        "{text}"
    );
}
