//! The keyed targets reach past authentication: the fixture's messages and the targets' own
//! sealing open and decrypt for real, and the service targets get real answers. Without this,
//! a target could pass every input by refusing all of them at the first check.

use fuzz_targets::fixture::{fixture, rng};
use fuzz_targets::protocol_targets::seal_raw;
use protocol::codec::Encode;
use protocol::envelope::{Opener, SEAL_VERSION, SEAL_VERSION_1, Sealer};
use protocol::session::SessionMessage;

#[test]
fn envelopes_sealed_by_the_protocol_and_by_the_target_open() {
    let f = fixture();
    let mut random = rng(20);
    let sealer = Sealer::new(&f.bob.cert, &mut random).unwrap();
    let mut opener = Opener::new();
    for message in &f.messages {
        let payload = sealer.seal(&f.alice, message, &mut random);
        assert_eq!(&opener.open(&f.bob, &payload).unwrap().message, message);
        let mut inner = f.alice.cert.identity().as_bytes().to_vec();
        inner.extend_from_slice(&f.alice.cert.device_id().get().to_be_bytes());
        inner.extend_from_slice(&message.to_bytes());
        for version in [SEAL_VERSION_1, SEAL_VERSION] {
            let payload = seal_raw(version, &f.bob, &[3; 32], &[4; 16], &inner).unwrap();
            let opened = Opener::new().open(&f.bob, &payload).unwrap();
            assert_eq!(&opened.message, message);
            assert_eq!(opened.sender_identity, f.alice.cert.identity());
        }
    }
}

#[test]
fn bob_decrypts_the_next_message_and_a_new_session_from_alice() {
    let f = fixture();
    let peer = (f.alice.cert.identity(), f.alice.cert.device_id());
    let SessionMessage::Normal(next) = &f.messages[2] else {
        panic!("the third message is a normal one");
    };
    let mut bob = f.bob_record.clone();
    assert!(!bob.decrypt(next).unwrap().is_empty());
    let SessionMessage::Prekey { header, message } = &f.messages[3] else {
        panic!("the fourth message starts a session");
    };
    let keys = f.responder_keys(
        header.signed_prekey_id,
        header.one_time_prekey_id,
        header.kem_prekey_id,
    );
    let mut bob = f.bob_record.clone();
    let mut replay = f.bob_replay.clone();
    bob.decrypt_prekey(&f.bob, peer, header, message, keys, &mut replay)
        .unwrap();
}

#[test]
fn the_service_targets_get_real_answers() {
    let methods = chatd::fuzzing::params_methods();
    let output = chatd::fuzzing::rpc_connection(
        methods,
        256,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"contacts.add\",\"params\":{\"alias\":\"b\",\"target\":\"@bob\"}}\n\
          {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"contacts.add\",\"params\":{}}\n",
    )
    .unwrap();
    let output = String::from_utf8(output).unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 2, "{output}");
    assert!(
        output.contains(r#""id":1,"result":"contacts.add""#),
        "{output}"
    );
    assert!(
        output.contains(r#""id":2,"error":{"code":-32602"#),
        "{output}"
    );

    let head =
        chat_relay::fuzzing::read_head(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\nrest", 3).unwrap();
    assert_eq!(head.route, "websocket");
    assert!(
        head.read
            .starts_with(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
    );

    assert_eq!(chatd::fuzzing::handle("@alice").as_deref(), Some("alice"));
    assert!(chatd::fuzzing::params("messages.send", Some(r#"{"to":"b","text":"x"}"#)).is_ok());
    assert!(chatd::fuzzing::params("messages.send", Some(r#"{"to":"b"}"#)).is_err());
}
