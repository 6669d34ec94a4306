//! Contacts through real daemons: invites (both sides end up with each other, named), safety
//! numbers that agree on both sides, verification, and the errors for bad input.

use api::client::ClientError;
use serde_json::{Value, json};
use tests::{DaemonProcess, RelayProcess, wait_for};

fn error_code(daemon: &DaemonProcess, method: &str, params: Value) -> Option<i32> {
    match daemon.client().call_value(method, params) {
        Err(ClientError::Rpc(e)) => Some(e.code),
        Ok(v) => panic!("{method} unexpectedly succeeded: {v}"),
        Err(e) => panic!("{method}: {e}"),
    }
}

#[test]
fn an_invite_connects_two_accounts_without_handles() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    alice.create("Alice Liddell");
    bob.create("Bob");
    let invite = alice.call("invites.create", json!({}));
    let code = invite["code"].as_str().unwrap_or_default().to_owned();
    assert!(code.starts_with("chatinvite1"), "{code}");

    let contact = bob.call("invites.accept", json!({ "code": code }));
    assert_eq!(contact["display_name"], "Alice Liddell");
    let alias = contact["alias"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        alias, "alice-liddell",
        "the default alias is the name made typeable: lowercase, words joined by -"
    );

    // Alice learns about Bob from the introduction that carried the token.
    wait_for("alice to add bob from the introduction", || {
        let list = alice.call("contacts.list", json!({}));
        let found = list["contacts"]
            .as_array()?
            .iter()
            .any(|c| c["alias"] == "bob" && c["display_name"] == "Bob");
        found.then_some(())
    });
    bob.call(
        "messages.send",
        json!({ "to": alias, "text": "via invite" }),
    );
    wait_for("alice to receive", || {
        let history = alice.call("messages.history", json!({ "conversation": "Bob" }));
        (history["messages"].get(0)?["text"] == "via invite").then_some(())
    });

    // Garbage and typos are refused with invalid_invite.
    assert_eq!(
        error_code(&bob, "invites.accept", json!({ "code": "chatinvite1zz" })),
        Some(1017)
    );
    let mut typo = code.clone().into_bytes();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap_or_default();
    assert_eq!(
        error_code(&bob, "invites.accept", json!({ "code": typo })),
        Some(1017)
    );
}

#[test]
fn safety_numbers_agree_and_verification_checks_them() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let a = alice.create("Alice");
    let b = bob.create("Bob");
    alice.call(
        "contacts.add",
        json!({ "alias": "bob", "target": b.address }),
    );
    // Alice's add sends Bob an introduction, which may add her on his side ("Alice") before
    // his own add runs; then his add is refused as a duplicate. Either way she is his contact,
    // and her address finds her.
    match bob.client().call_value(
        "contacts.add",
        json!({ "alias": "alice", "target": a.address }),
    ) {
        Ok(_) => {}
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, 1015, "{}", e.message),
        Err(e) => panic!("contacts.add: {e}"),
    }
    let from_alice = alice.call("contacts.get", json!({ "contact": "bob" }));
    let from_bob = bob.call("contacts.get", json!({ "contact": a.address }));
    let number = from_alice["safety_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(number.len(), 60);
    assert_eq!(
        from_bob["safety_number"],
        number.as_str(),
        "both sides see the same number"
    );
    assert_eq!(
        from_alice["safety_number_groups"].as_array().map(Vec::len),
        Some(12)
    );
    assert_eq!(from_alice["trust"], "unverified");

    let mut wrong = number.clone().into_bytes();
    wrong[0] = if wrong[0] == b'1' { b'2' } else { b'1' };
    let wrong = String::from_utf8(wrong).unwrap_or_default();
    assert_eq!(
        error_code(
            &alice,
            "contacts.verify",
            json!({ "contact": "bob", "safety_number": wrong })
        ),
        Some(1018)
    );
    let spaced: Vec<String> = number
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let verified = alice.call(
        "contacts.verify",
        json!({ "contact": "bob", "safety_number": spaced.join(" ") }),
    );
    assert_eq!(verified["trust"], "verified");

    // Bad input gets the documented codes.
    assert_eq!(
        error_code(
            &alice,
            "contacts.add",
            json!({ "alias": "x", "target": "chat1nope" })
        ),
        Some(1012)
    );
    assert_eq!(
        error_code(
            &alice,
            "contacts.add",
            json!({ "alias": "me", "target": a.address })
        ),
        Some(1012)
    );
    assert_eq!(
        error_code(
            &alice,
            "contacts.add",
            json!({ "alias": "bob", "target": a.address })
        ),
        Some(1015)
    );
    assert_eq!(
        error_code(
            &alice,
            "contacts.add",
            json!({ "alias": "has space", "target": b.address })
        ),
        Some(1016)
    );
    assert_eq!(
        error_code(&alice, "contacts.get", json!({ "contact": "nobody" })),
        Some(1010)
    );
    assert_eq!(
        error_code(
            &alice,
            "messages.send",
            json!({ "to": "@nobody_here", "text": "x" })
        ),
        Some(1010)
    );
    alice.call("contacts.remove", json!({ "contact": "bob" }));
    assert_eq!(
        error_code(&alice, "contacts.get", json!({ "contact": "bob" })),
        Some(1010)
    );
}
