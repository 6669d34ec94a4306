//! Vectors for the length limits of SPEC.md sections 5.3 and 8.4
//! (`protocol/testdata/limits.json`): every limit at its boundary, accepted at the limit and
//! refused one past it.
//!
//! An input is written as `prefix || fill * fill_len || suffix` so that inputs of 2 MiB stay
//! readable. The test rebuilds the file from the code's constants and decoders, compares it with
//! the committed one (or rewrites it under `CHATD_REGENERATE_VECTORS=1`), then replays every
//! committed case through the decoders.

use protocol::codec::{Decode, DecodeError, Encode, Writer};
use protocol::crypto::x25519::X25519Secret;
use protocol::envelope::{Content, ContentKind, MAX_BODY_LEN};
use protocol::frames::HANDLE_MAX_LEN;
use protocol::identity::{IdentityKeyPair, KEY_TYPE_X25519, PROTOCOL_VERSION};
use protocol::introduction::{
    DISPLAY_NAME_MAX_LEN, DisplayName, INTRODUCTION_VERSION, Introduction,
};
use protocol::invite::{Invite, InviteError, MAX_INVITE_CODE_LEN};
use protocol::ratchet::{MAX_CIPHERTEXT_LEN, RatchetMessage};
use protocol::reachability::{DeliveryToken, ReachabilityRecord, RelayEndpoint};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::identity_vectors::committed;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LimitVectors {
    description: String,
    cases: Vec<LimitCase>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct LimitCase {
    comment: String,
    /// `Content`, `RatchetMessage`, `Introduction` (bytes) or `InviteCode` (text, as ASCII).
    structure: String,
    prefix: String,
    fill: String,
    fill_len: usize,
    suffix: String,
    /// `ok`, or the refusal: a decode error's name, or an invite error's (`Malformed/<decode
    /// error>` when the invite's bytes do not decode).
    result: String,
}

impl LimitCase {
    fn input(&self) -> Vec<u8> {
        let fill = hex::decode(&self.fill).unwrap();
        let mut out = hex::decode(&self.prefix).unwrap();
        for _ in 0..self.fill_len {
            out.extend_from_slice(&fill);
        }
        out.extend_from_slice(&hex::decode(&self.suffix).unwrap());
        out
    }
}

fn decode_error_name(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Truncated { .. } => "Truncated",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::UnknownTag { .. } => "UnknownTag",
        DecodeError::TrailingBytes(_) => "TrailingBytes",
        DecodeError::TooLong { .. } => "TooLong",
        DecodeError::Invalid(_) => "Invalid",
    }
}

fn result_of<T>(r: Result<T, DecodeError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => decode_error_name(&e).into(),
    }
}

/// Runs the decoder `structure` names over `input`.
fn decode(structure: &str, input: &[u8]) -> String {
    match structure {
        "Content" => result_of(Content::from_bytes(input)),
        "RatchetMessage" => result_of(RatchetMessage::from_bytes(input)),
        "Introduction" => result_of(Introduction::from_bytes(input)),
        "InviteCode" => match Invite::parse_code(std::str::from_utf8(input).unwrap()) {
            Ok(_) => "ok".into(),
            Err(InviteError::Malformed(e)) => format!("Malformed/{}", decode_error_name(&e)),
            Err(e) => format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_owned(),
        },
        other => panic!("unknown structure {other}"),
    }
}

/// A case whose input is `prefix || fill * fill_len || suffix`.
fn case(
    comment: &str,
    structure: &str,
    prefix: &[u8],
    fill: &[u8],
    fill_len: usize,
    suffix: &[u8],
) -> LimitCase {
    let mut c = LimitCase {
        comment: comment.into(),
        structure: structure.into(),
        prefix: hex::encode(prefix),
        fill: hex::encode(fill),
        fill_len,
        suffix: hex::encode(suffix),
        result: String::new(),
    };
    c.result = decode(structure, &c.input());
    c
}

fn content_prefix(body_len: usize) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PROTOCOL_VERSION);
    w.raw(&[0x11; 16]);
    w.u64(1_700_000_000_000);
    w.u8(ContentKind::Text.to_byte());
    w.u32(u32::try_from(body_len).unwrap());
    w.into_bytes()
}

fn ratchet_prefix(ciphertext_len: usize) -> Vec<u8> {
    let key = X25519Secret::from_bytes(&[0x42; 32]).public_key();
    let mut w = Writer::new();
    w.u8(PROTOCOL_VERSION);
    w.u8(KEY_TYPE_X25519);
    w.raw(key.as_bytes());
    w.u32(0);
    w.u32(0);
    w.u32(u32::try_from(ciphertext_len).unwrap());
    w.into_bytes()
}

/// An introduction's bytes up to its name's characters; then `name_len` bytes of name follow.
fn introduction_prefix(name_len: usize) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(INTRODUCTION_VERSION);
    w.u16(u16::try_from(name_len).unwrap());
    w.into_bytes()
}

fn introduction_with_handle(handle_len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut w = Writer::new();
    w.u8(INTRODUCTION_VERSION);
    w.str16("Ada");
    w.u8(1);
    w.u16(u16::try_from(handle_len).unwrap());
    w.raw(b"a");
    (w.into_bytes(), vec![0])
}

/// An invite whose record lists `relays` relay URLs of 256 bytes (the longest relay id),
/// each with a certificate pin.
fn invite(relays: usize, name: &str) -> Invite {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let identity = IdentityKeyPair::generate(&mut rng);
    let relays = (0..relays)
        .map(|i| {
            let url = format!("wss://{i}{}.example:65535/v1", "a".repeat(232));
            RelayEndpoint::new(&url, Some([0x33; 32])).unwrap()
        })
        .collect();
    Invite {
        reachability: ReachabilityRecord::sign(&identity, 1_700_000_000_000, relays).unwrap(),
        token: [0x22; 16],
        delivery_token: DeliveryToken([0x44; 16]),
        name: DisplayName::parse(name).unwrap(),
        expires_at_ms: 1_700_000_000_000,
    }
}

fn generate() -> LimitVectors {
    let smiley = "\u{1F600}".as_bytes();
    let longest_invite = invite(4, &"\u{1F600}".repeat(64)).to_code();
    assert_eq!(longest_invite.len(), MAX_INVITE_CODE_LEN);
    let (handle_prefix, handle_suffix) = introduction_with_handle(HANDLE_MAX_LEN);
    let (handle_over_prefix, _) = introduction_with_handle(HANDLE_MAX_LEN + 1);
    // The first relay URL's length field says 257; one more byte of URL follows it.
    let url_over = {
        let mut bytes = invite(1, "A").to_bytes();
        let at = 1 + 1 + 32 + 8 + 1;
        assert_eq!(&bytes[at..at + 2], &[1, 0]);
        bytes[at + 1] = 1;
        bytes.insert(at + 2, b'x');
        let check = protocol::crypto::kdf::sha256(&[b"chatd/v1/invite", &bytes]);
        let hex = hex::encode([&bytes[..], &check[..4]].concat());
        format!("chatinvite1{hex}")
    };
    let cases = vec![
        case(
            "Content: a body of MAX_BODY_LEN bytes",
            "Content",
            &content_prefix(MAX_BODY_LEN),
            b"a",
            MAX_BODY_LEN,
            b"",
        ),
        case(
            "Content: a body one byte over MAX_BODY_LEN",
            "Content",
            &content_prefix(MAX_BODY_LEN + 1),
            b"a",
            MAX_BODY_LEN + 1,
            b"",
        ),
        case(
            "RatchetMessage: a ciphertext of 16 bytes (the tag alone)",
            "RatchetMessage",
            &ratchet_prefix(16),
            &[0],
            16,
            b"",
        ),
        case(
            "RatchetMessage: a ciphertext of 15 bytes",
            "RatchetMessage",
            &ratchet_prefix(15),
            &[0],
            15,
            b"",
        ),
        case(
            "RatchetMessage: a ciphertext of 2 MiB",
            "RatchetMessage",
            &ratchet_prefix(MAX_CIPHERTEXT_LEN),
            &[0],
            MAX_CIPHERTEXT_LEN,
            b"",
        ),
        case(
            "RatchetMessage: a ciphertext one byte over 2 MiB",
            "RatchetMessage",
            &ratchet_prefix(MAX_CIPHERTEXT_LEN + 1),
            &[0],
            MAX_CIPHERTEXT_LEN + 1,
            b"",
        ),
        case(
            "Introduction: a name of 64 four-byte characters (256 bytes)",
            "Introduction",
            &introduction_prefix(DISPLAY_NAME_MAX_LEN),
            smiley,
            64,
            &[0, 0],
        ),
        case(
            "Introduction: a name field of 257 bytes (refused by its length)",
            "Introduction",
            &introduction_prefix(DISPLAY_NAME_MAX_LEN + 1),
            smiley,
            64,
            b"a\0\0",
        ),
        case(
            "Introduction: a name of 64 one-byte characters",
            "Introduction",
            &introduction_prefix(64),
            b"a",
            64,
            &[0, 0],
        ),
        case(
            "Introduction: a name of 65 one-byte characters (65 bytes, but 65 characters)",
            "Introduction",
            &introduction_prefix(65),
            b"a",
            65,
            &[0, 0],
        ),
        case(
            "Introduction: an empty name",
            "Introduction",
            &introduction_prefix(0),
            b"a",
            0,
            &[0, 0],
        ),
        case(
            "Introduction: a handle of HANDLE_MAX_LEN characters",
            "Introduction",
            &handle_prefix,
            b"a",
            HANDLE_MAX_LEN - 1,
            &handle_suffix,
        ),
        case(
            "Introduction: a handle one character over HANDLE_MAX_LEN",
            "Introduction",
            &handle_over_prefix,
            b"a",
            HANDLE_MAX_LEN,
            &handle_suffix,
        ),
        case(
            "InviteCode: the longest invite (four relay URLs of 256 bytes with pins, name of 256 bytes)",
            "InviteCode",
            longest_invite.as_bytes(),
            b"",
            0,
            b"",
        ),
        case(
            "InviteCode: one character over the longest code",
            "InviteCode",
            longest_invite.as_bytes(),
            b"0",
            1,
            b"",
        ),
        case(
            "InviteCode: a relay URL one byte over 256 (correct checksum)",
            "InviteCode",
            url_over.as_bytes(),
            b"",
            0,
            b"",
        ),
    ];
    LimitVectors {
        description: "Length limits (SPEC.md sections 5.3 and 8.4), each at the limit and one \
                      past it. An input is prefix || fill repeated fill_len times || suffix \
                      (hex); result is ok or the refusal."
            .into(),
        cases,
    }
}

#[test]
fn limit_vectors() {
    let vectors = committed("limits.json", &generate());
    assert!(vectors.cases.len() >= 16);
    for c in &vectors.cases {
        assert_eq!(decode(&c.structure, &c.input()), c.result, "{}", c.comment);
    }
    // Every limit is accepted at its boundary and refused past it.
    let results: Vec<&str> = vectors.cases.iter().map(|c| c.result.as_str()).collect();
    assert_eq!(
        results,
        [
            "ok",
            "TooLong",
            "ok",
            "Invalid",
            "ok",
            "TooLong",
            "ok",
            "TooLong",
            "ok",
            "Invalid",
            "Invalid",
            "ok",
            "TooLong",
            "ok",
            "TooLong",
            "Malformed/TooLong"
        ]
    );
}
