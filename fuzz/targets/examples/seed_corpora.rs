//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/` (fuzz/README.md):
//! frames, envelopes, messages, bundles, invite refusals and group metadata from the protocol test vectors
//! (`protocol/testdata`) and from the fixed setup of the keyed targets, plus hand-written
//! invite codes, HTTP heads and RPC sessions. Run it, then minimise with `cargo fuzz cmin`:
//! `cargo run -p fuzz-targets --example seed_corpora`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use fuzz_targets::fixture::{self, fixture, rng};
use fuzz_targets::protocol_targets::{SESSION_RECORD_KIND, seal_raw};
use protocol::codec::{Encode, Writer};
use protocol::crypto::kdf::sha256;
use protocol::envelope::{SEAL_VERSION, SEAL_VERSION_1, Sealer};
use protocol::pickle;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vectors(file: &str) -> Value {
    let path = root().join("protocol/testdata").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every string under `key` anywhere in `value`.
fn strings<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key
                    && let Some(s) = v.as_str()
                {
                    out.push(s);
                }
                strings(v, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, key, out)),
        _ => {}
    }
}

fn all(file: &str, key: &str) -> Vec<String> {
    let value = vectors(file);
    let mut out = Vec::new();
    strings(&value, key, &mut out);
    out.into_iter().map(str::to_owned).collect()
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    out.extend_from_slice(rest);
    out
}

fn invite(relay: &str, identity: &[u8; 32], name: &str) -> String {
    let mut w = Writer::new();
    w.u8(1);
    w.str16(relay);
    w.raw(identity);
    w.raw(&[9; 16]);
    w.str16(name);
    w.u64(1_900_000_000_000);
    let mut bytes = w.into_bytes();
    let check = sha256(&[b"chatd/v1/invite", &bytes]);
    bytes.extend_from_slice(&check[..4]);
    format!("chatinvite1{}", to_hex(&bytes))
}

fn main() {
    let f = fixture();
    let mut seeds: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    let mut add = |target: &'static str, data: Vec<u8>| seeds.entry(target).or_default().push(data);

    for frame in all("frames.json", "hex") {
        add("client_frame", hex(&frame));
        add("server_frame", hex(&frame));
        // The group delivery vector (and every other vector, refused) seeds its decoder.
        add("group_delivery", hex(&frame));
    }

    // Envelopes: the vectors (sealed to their own B: they exercise parsing and the failed
    // check), and the fixture's messages sealed to the fixture's Bob in both versions.
    for sealed in all("envelope.json", "sealed")
        .into_iter()
        .chain(all("sealed_batch.json", "sealed"))
    {
        add("envelope", with_mode(0, &hex(&sealed)));
    }
    let mut random = rng(9);
    let sealer = Sealer::new(&f.bob.cert, &mut random).unwrap_or_else(|e| panic!("{e}"));
    for (i, message) in f.messages.iter().enumerate() {
        add(
            "envelope",
            with_mode(0, &sealer.seal(&f.alice, message, &mut random)),
        );
        let mut inner = f.alice.cert.identity().as_bytes().to_vec();
        inner.extend_from_slice(&f.alice.cert.device_id().get().to_be_bytes());
        inner.extend_from_slice(&message.to_bytes());
        let ephemeral = [0x30 + i as u8; 32];
        let seed = [0x40 + i as u8; 16];
        for (mode, version) in [(1, SEAL_VERSION_1), (2, SEAL_VERSION)] {
            let payload = seal_raw(version, &f.bob, &ephemeral, &seed, &inner)
                .unwrap_or_else(|| panic!("sealing seed {i}"));
            add("envelope", with_mode(0, &payload));
            let mut structured = ephemeral.to_vec();
            structured.extend_from_slice(&seed);
            structured.extend_from_slice(&inner);
            add("envelope", with_mode(mode, &structured));
        }
        add("session_message", with_mode(0, &message.to_bytes()));
    }

    for message in all("pqxdh.json", "session_message")
        .into_iter()
        .chain(all("envelope.json", "session_message"))
    {
        add("session_message", with_mode(0, &hex(&message)));
    }
    for plaintext in [
        fixture::text(b"hello"),
        fixture::text(&[0xff; 200]),
        b"not content".to_vec(),
        Vec::new(),
    ] {
        add("session_message", with_mode(1, &plaintext));
    }

    let key = f.pickle_key();
    for record in [&f.alice_record, &f.bob_record] {
        let pickled = record.to_encrypted(&key, &mut rng(10));
        let plaintext =
            pickle::open(SESSION_RECORD_KIND, &key, &pickled).unwrap_or_else(|e| panic!("{e}"));
        add("pickle", with_mode(0, &pickled));
        add("pickle", with_mode(1, &plaintext));
    }

    add("prekey_bundle", f.bundle.to_bytes());
    for key in ["bundle", "bundle_without_one_time_prekey"] {
        for bundle in all("bundle.json", key) {
            add("prekey_bundle", hex(&bundle));
        }
    }

    for body in all("invite_refusal.json", "hex") {
        add("invite_refusal", hex(&body));
    }

    for body in all("group_meta.json", "hex") {
        add("group_meta", hex(&body));
    }

    for key in ["address", "input"] {
        for text in all("address.json", key) {
            add("address", text.into_bytes());
        }
    }

    let identity = f.alice.cert.identity();
    for code in [
        invite("wss://relay.example:8443/v1", identity.as_bytes(), "Alice"),
        invite("ws://127.0.0.1:1/v1", identity.as_bytes(), ""),
        invite("wss://relay.example/v1", &[0; 32], "zero key"),
    ] {
        add("invite_code", code.into_bytes());
    }
    add("invite_code", b"chatinvite1zz".to_vec());

    for (chunk, head) in [
        (
            7,
            &b"GET /v1 HTTP/1.1\r\nHost: relay.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"[..],
        ),
        (1, b"GET /healthz HTTP/1.1\r\n\r\n"),
        (200, b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\ntrailing"),
        (3, b"POST /v1 HTTP/1.1\r\n\r\n"),
        (0, b"\r\n\r\n"),
    ] {
        add("http_head", with_mode(chunk, head));
    }

    let params: &[&str] = &[
        "{}",
        "null",
        "[]",
        r#"{"passphrase":"correct horse","relay_url":"wss://relay.example/v1","alias":"me"}"#,
        r#"{"no_passphrase":true}"#,
        r#"{"passphrase":"x"}"#,
        r#"{"handle":"@alice"}"#,
        r#"{"alias":"bob","target":"chat1qx9g3c7awsylr90a2tdj6096t4ev5ecfhuwegysm7d6gsqd5pah4ca3ltv9"}"#,
        r#"{"alias":"bob","target":"@bob"}"#,
        r#"{"contact":"bob","safety_number":"12345 67890"}"#,
        r#"{"code":"chatinvite1ab","alias":"carol"}"#,
        r#"{"to":"bob","text":"hi"}"#,
        r#"{"conversation":"bob","limit":50,"before":"12"}"#,
        r#"{"conversation":"bob","up_to":"00112233445566778899aabbccddeeff"}"#,
        r#"{"since":0}"#,
        r#"{"subscription":1}"#,
    ];
    for (i, doc) in api::methods::ALL.iter().enumerate() {
        let _ = doc;
        for p in params {
            add("rpc_params", with_mode(i as u8, p.as_bytes()));
        }
    }

    for session in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"contacts.add\",\"params\":{\"alias\":\"b\",\"target\":\"@bob\"}}\n{\"jsonrpc\":\"2.0\",\"method\":\"account.lock\"}\n",
        b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\",\"params\":{\"since\":0}},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"messages.send\",\"params\":{\"to\":\"b\",\"text\":\"x\"}}]\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"events.subscribe\"}\n{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"events.unsubscribe\",\"params\":{\"subscription\":1}}\n",
        b"not json\n[]\n[1,2]\n{\"id\":5}\n\xff\xfe\n\n   \n{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"nope\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"daemon.status\",\"params\":{\"padding\":\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789\"}}\n{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"daemon.status\"}\n",
    ] {
        add("rpc_connection", session.to_vec());
    }

    for (target, inputs) in seeds {
        let dir = root().join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for data in inputs {
            let name = to_hex(&sha256(&[&data])[..20]);
            let path = dir.join(name);
            fs::write(&path, &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        println!("{target}: {}", dir.display());
    }
}
