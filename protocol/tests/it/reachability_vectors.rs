//! Vectors for reachability (`protocol/testdata/reachability.json`, SPEC.md 10.9): relay URLs
//! and their canonical relay bindings, relay-qualified handles, reachability records and
//! delivery-token digests. Generated from fixed inputs, committed, and replayed here through
//! the public API, so the file alone pins the behaviour.

use protocol::codec::{Decode, Encode};
use protocol::identity::IdentityKeyPair;
use protocol::reachability::{
    DeliveryToken, QualifiedHandle, QualifiedHandleError, ReachabilityRecord, RelayEndpoint,
    relay_binding,
};
use serde::{Deserialize, Serialize};

use crate::identity_vectors::committed;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vectors {
    description: String,
    relay_urls: Vec<RelayUrl>,
    qualified_handles: Vec<Qualified>,
    records: Vec<Record>,
    tokens: Vec<Token>,
}

/// A relay URL as typed, and its binding or the reason it is refused.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RelayUrl {
    input: String,
    result: String,
}

/// A relay-qualified handle's text, and the handle and relay it names (`relay` null for the
/// reader's own home relay), its shortest text form, or the reason it is refused.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Qualified {
    input: String,
    handle: Option<String>,
    relay: Option<String>,
    shown: Option<String>,
    error: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Endpoint {
    url: String,
    tls_pin: Option<String>,
}

/// A record signed by the identity of an RFC 8032 seed, and its encoding.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    identity_seed: String,
    sequence: u64,
    relays: Vec<Endpoint>,
    signed_bytes: String,
    hex: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Token {
    token: String,
    digest: String,
}

const URLS: [&str; 24] = [
    "ws://127.0.0.1:7420",
    "ws://127.0.0.1:7420/",
    "ws://127.0.0.1:7420/v1/",
    "WSS://Relay.Example.ORG:443/v1",
    "ws://relay.example.org:80",
    "wss://relay.example.org:80",
    "wss://[2001:DB8:0:0::1]:7420",
    "ws://[::1]:7420/v1",
    "wss://xn--rlay-bpa.example/v1",
    "http://relay.example.org",
    "relay.example.org",
    "wss://relay.example.org/v2",
    "wss://relay.example.org/v1/x",
    "wss://relay.example.org/v1?x=1",
    "wss://relay.example.org/v1#x",
    "wss://user@relay.example.org/v1",
    "wss:///v1",
    "wss://relay example/v1",
    "wss://r\u{e9}lay.example/v1",
    "wss://[2001:db8::g]/v1",
    "wss://relay.example.org:0/v1",
    "wss://relay.example.org:65536/v1",
    "wss://relay.example.org:/v1",
    " wss://relay.example.org/v1",
];

const HANDLES: [&str; 12] = [
    "bob",
    "@bob",
    "bob@relay.example.org",
    "@bob@relay.example.org:8443",
    "bob@127.0.0.1:7421",
    "bob@localhost:7421",
    "bob@[::1]:7421",
    "bob@ws://relay.example.org:7420/v1",
    "bob@wss://127.0.0.1:7421",
    "Bob@relay.example.org",
    "bob@relay.example.org/v1",
    "bob@",
];

fn url_result(input: &str) -> String {
    match relay_binding(input) {
        Ok(binding) => binding,
        Err(e) => format!("{e:?}"),
    }
}

fn qualified(input: &str) -> Qualified {
    match QualifiedHandle::parse(input) {
        Ok(q) => Qualified {
            input: input.to_owned(),
            handle: Some(q.handle.to_string()),
            relay: q.relay.clone(),
            shown: Some(q.to_string()),
            error: None,
        },
        Err(e) => Qualified {
            input: input.to_owned(),
            handle: None,
            relay: None,
            shown: None,
            error: Some(match e {
                QualifiedHandleError::Handle(_) => "Handle".to_owned(),
                QualifiedHandleError::Relay(r) => format!("Relay/{r:?}"),
            }),
        },
    }
}

fn record(seed: u8, sequence: u64, relays: &[(&str, Option<[u8; 32]>)]) -> Record {
    let identity = IdentityKeyPair::from_seed(&[seed; 32]);
    let endpoints = relays
        .iter()
        .map(|(url, pin)| RelayEndpoint::new(url, *pin).unwrap())
        .collect();
    let signed = ReachabilityRecord::sign(&identity, sequence, endpoints).unwrap();
    let hex = hex::encode(signed.to_bytes());
    // The signed bytes: the context, then the encoding without the signature.
    let bytes = signed.to_bytes();
    let mut signed_bytes = b"chatd/v1/reachability\0".to_vec();
    signed_bytes.extend_from_slice(&bytes[..bytes.len() - 64]);
    Record {
        identity_seed: hex::encode([seed; 32]),
        sequence,
        relays: relays
            .iter()
            .map(|(url, pin)| Endpoint {
                url: relay_binding(url).unwrap(),
                tls_pin: pin.map(hex::encode),
            })
            .collect(),
        signed_bytes: hex::encode(signed_bytes),
        hex,
    }
}

fn generate() -> Vectors {
    Vectors {
        description: "Reachability (protocol/SPEC.md 10.9). relay_urls: a relay URL as typed and \
            its canonical relay binding (10.3), or the RelayUrlError that refuses it. \
            qualified_handles: a relay-qualified handle's text, the handle and relay binding it \
            names (relay null: the reader's own home relay) and its shortest text form, or why \
            it is refused (Handle, or Relay/<RelayUrlError>). records: ReachabilityRecords \
            signed by the Ed25519 identity of identity_seed (RFC 8032 seed), with the bytes the \
            signature covers and the encoding. tokens: delivery tokens and their digests, \
            SHA-256(\"chatd/v1/delivery-token\" || token)."
            .to_owned(),
        relay_urls: URLS
            .iter()
            .map(|input| RelayUrl {
                input: (*input).to_owned(),
                result: url_result(input),
            })
            .collect(),
        qualified_handles: HANDLES.iter().map(|input| qualified(input)).collect(),
        records: vec![
            record(1, 1_700_000_000_000, &[("wss://relay.example.org", None)]),
            record(
                2,
                1_700_000_000_001,
                &[
                    ("wss://[2001:db8::1]:7420", Some([0xab; 32])),
                    ("ws://127.0.0.1:7420", None),
                ],
            ),
        ],
        tokens: [[0u8; 16], [0x42; 16]]
            .iter()
            .map(|t| Token {
                token: hex::encode(t),
                digest: hex::encode(DeliveryToken(*t).digest()),
            })
            .collect(),
    }
}

#[test]
fn reachability_vectors() {
    let file = committed("reachability.json", &generate());
    for v in &file.relay_urls {
        assert_eq!(url_result(&v.input), v.result, "{}", v.input);
    }
    for v in &file.qualified_handles {
        assert_eq!(&qualified(&v.input), v, "{}", v.input);
    }
    for v in &file.records {
        let bytes = hex::decode(&v.hex).unwrap();
        let decoded = ReachabilityRecord::from_bytes(&bytes).unwrap();
        decoded.verify().unwrap();
        let seed: [u8; 32] = hex::decode(&v.identity_seed).unwrap().try_into().unwrap();
        assert_eq!(
            decoded.identity,
            IdentityKeyPair::from_seed(&seed).public_key()
        );
        assert_eq!(decoded.sequence, v.sequence);
        let urls: Vec<&str> = decoded.relays().iter().map(RelayEndpoint::url).collect();
        let expected: Vec<&str> = v.relays.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(urls, expected);
        assert_eq!(decoded.to_bytes(), bytes);
        // The signature covers exactly the documented bytes.
        let signed = hex::decode(&v.signed_bytes).unwrap();
        decoded
            .identity
            .ed25519()
            .verify(&signed, &decoded.signature)
            .unwrap();
    }
    for v in &file.tokens {
        let token: [u8; 16] = hex::decode(&v.token).unwrap().try_into().unwrap();
        assert_eq!(hex::encode(DeliveryToken(token).digest()), v.digest);
    }
}
