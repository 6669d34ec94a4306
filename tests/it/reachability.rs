//! Reachability across relays (SPEC.md 10.9), with real relays and daemons: accounts on
//! different relays find each other by invite, by relay-qualified handle and by address at a
//! relay, and talk both ways; a contact's relay that is down holds messages with a visible
//! reason until it is back.

use serde_json::{Value, json};
use tests::{DaemonProcess, RelayProcess, WsProxy, wait_for};

/// `host:port` of a relay, as a relay-qualified handle or address names it.
fn host_of(relay: &RelayProcess) -> String {
    relay.addr().to_string()
}

/// A daemon on `relay` with an account named `name`.
fn account_on(relay: &RelayProcess, name: &str) -> (DaemonProcess, String) {
    let daemon = DaemonProcess::start(&relay.url());
    let info = daemon.create(name);
    (daemon, info.address)
}

/// The contact `alias` of `daemon` appears (an introduction added it).
/// Waits until `daemon` holds `alias` as a contact: one that wrote first is a message request,
/// which is accepted (an invite's acceptor is a contact at once).
fn wait_contact(daemon: &DaemonProcess, alias: &str) {
    wait_for(&format!("the contact {alias}"), || {
        let requests = daemon.call("requests.list", json!({}));
        if requests["requests"]
            .as_array()?
            .iter()
            .any(|r| r["contact"]["alias"] == alias)
        {
            daemon.call("requests.accept", json!({ "contact": alias }));
        }
        let list = daemon.call("contacts.list", json!({}));
        list["contacts"]
            .as_array()?
            .iter()
            .any(|c| c["alias"] == alias)
            .then_some(())
    });
}

/// `from` sends to `to_alias` and the message is delivered; the recipient sees it from
/// `from_alias`.
fn talk(from: &DaemonProcess, to_alias: &str, to: &DaemonProcess, from_alias: &str, text: &str) {
    let id = from.send(to_alias, text);
    from.wait_status(to_alias, &id, "delivered");
    let got = to.messages_in(from_alias, "incoming");
    assert!(
        got.iter().any(|m| m["text"] == text),
        "{text:?} not in {got:?}"
    );
}

#[test]
fn three_accounts_on_three_relays_find_each_other_and_all_pairs_talk() {
    let relays: Vec<RelayProcess> = (0..3).map(|_| RelayProcess::start()).collect();
    let (alice, alice_address) = account_on(&relays[0], "alice");
    let (bob, _) = account_on(&relays[1], "bob");
    let (carol, _) = account_on(&relays[2], "carol");

    // Alice invites Bob: the code says where she is.
    let invite = alice.call("invites.create", json!({}));
    bob.call(
        "invites.accept",
        json!({ "code": invite["code"], "alias": "alice" }),
    );
    wait_contact(&alice, "bob");

    // Carol holds a handle on her relay; Bob finds her there by handle@relay.
    carol.call("account.register_handle", json!({ "handle": "carol" }));
    let qualified = format!("@carol@{}", host_of(&relays[2]));
    let added = bob.add_contact("carol", &qualified);
    assert_eq!(
        added["handle"],
        format!("carol@{}", host_of(&relays[2])),
        "{added}"
    );
    wait_contact(&carol, "bob");

    // Carol adds Alice by her address at Alice's relay.
    let at_relay = format!("{alice_address}@{}", host_of(&relays[0]));
    carol.add_contact("alice", &at_relay);
    wait_contact(&alice, "carol");

    talk(&alice, "bob", &bob, "alice", "alice to bob");
    talk(&bob, "alice", &alice, "bob", "bob to alice");
    talk(&bob, "carol", &carol, "bob", "bob to carol");
    talk(&carol, "bob", &bob, "carol", "carol to bob");
    talk(&carol, "alice", &alice, "carol", "carol to alice");
    talk(&alice, "carol", &carol, "alice", "alice to carol");

    // Each daemon holds links to the two other relays at most, and its own.
    for daemon in [&alice, &bob, &carol] {
        let status = daemon.call("daemon.status", json!({}));
        let others = status["other_relays"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(others.len() <= 2, "{status}");
        let own = status["relay_url"].clone();
        assert!(others.iter().all(|o| o["url"] != own), "{status}");
    }
}

#[test]
fn a_bare_address_from_another_relay_fails_with_a_reason_instead_of_waiting_silently() {
    let relays: Vec<RelayProcess> = (0..2).map(|_| RelayProcess::start()).collect();
    let (alice, _) = account_on(&relays[0], "alice");
    let (_bob, bob_address) = account_on(&relays[1], "bob");
    // Alice's relay knows nothing of Bob: the message waits, and says why.
    alice.add_contact("bob", &bob_address);
    let id = alice.send("bob", "are you there?");
    let message = wait_for("the message to say why it waits", || {
        let messages = alice.messages_in("bob", "outgoing");
        let message = messages.iter().find(|m| m["message_id"] == id)?.clone();
        message["failure"].as_str().is_some().then_some(message)
    });
    assert_eq!(message["status"], "pending", "{message}");
    let why = message["failure"].as_str().unwrap_or_default();
    assert!(
        why.contains("knows no device of this contact") && why.contains("another relay"),
        "{why}"
    );
}

#[test]
fn a_contacts_relay_that_is_down_holds_messages_with_a_reason_until_it_is_back() {
    let mut relays: Vec<RelayProcess> = (0..2).map(|_| RelayProcess::start()).collect();
    let (alice, _) = account_on(&relays[0], "alice");
    let (bob, _) = account_on(&relays[1], "bob");
    let invite = bob.call("invites.create", json!({}));
    alice.call(
        "invites.accept",
        json!({ "code": invite["code"], "alias": "bob" }),
    );
    wait_contact(&bob, "alice");
    talk(&alice, "bob", &bob, "alice", "before");

    relays[1].kill();
    let id = alice.send("bob", "while your relay is down");
    let waiting: Value = wait_for("the message to say why it waits", || {
        let messages = alice.messages_in("bob", "outgoing");
        let message = messages.iter().find(|m| m["message_id"] == id)?.clone();
        message["failure"].as_str().is_some().then_some(message)
    });
    assert_eq!(waiting["status"], "pending", "{waiting}");
    let why = waiting["failure"].as_str().unwrap_or_default().to_owned();
    assert!(
        why.contains(&relays[1].url()),
        "the reason names the relay: {why}"
    );

    relays[1].restart();
    bob.wait_connected();
    alice.wait_status("bob", &id, "delivered");
    let delivered = alice.messages_in("bob", "outgoing");
    let message = delivered.iter().find(|m| m["message_id"] == id).cloned();
    assert_eq!(
        message.map(|m| m["failure"].clone()),
        Some(Value::Null),
        "the reason goes once it is delivered"
    );
    assert!(
        bob.messages_in("alice", "incoming")
            .iter()
            .any(|m| m["text"] == "while your relay is down")
    );
}

#[test]
fn moving_home_loses_nothing_contacts_follow_and_the_old_relay_is_drained() {
    let mut relays: Vec<RelayProcess> = (0..3).map(|_| RelayProcess::start()).collect();
    let (alice, _) = account_on(&relays[0], "alice");
    let (bob, _) = account_on(&relays[1], "bob");
    let invite = alice.call("invites.create", json!({}));
    bob.call(
        "invites.accept",
        json!({ "code": invite["code"], "alias": "alice" }),
    );
    wait_contact(&alice, "bob");
    alice.call("account.register_handle", json!({ "handle": "alice" }));
    talk(&bob, "alice", &alice, "bob", "before the move");

    // Bob's relay is down: Alice's news of her move cannot reach him yet, so he keeps
    // delivering to her old relay, which she drains.
    relays[1].kill();
    let moved = alice.call("account.move_relay", json!({ "relay": relays[2].url() }));
    assert_eq!(moved["relay_url"], relays[2].url(), "{moved}");
    let old_handle = format!("alice@{}", host_of(&relays[0]));
    assert_eq!(moved["handles"], json!([old_handle]), "{moved}");
    alice.wait_connected();
    let early = bob.send("alice", "sent to the old relay");
    bob.wait_status("alice", &early, "sent");
    alice.wait_incoming("bob", 2);

    // Bob's relay is back: he learns of the move and delivers to the new relay.
    relays[1].restart();
    bob.wait_connected();
    let mut after = 0;
    wait_for("bob to learn alice's new relay", || {
        after += 1;
        let id = bob.send("alice", &format!("after the news {after}"));
        bob.wait_status("alice", &id, "sent");
        let status = bob.call("daemon.status", json!({}));
        let others = status["other_relays"].as_array()?.clone();
        others
            .iter()
            .any(|o| o["url"] == relays[2].url().as_str())
            .then_some(())
    });
    let texts: Vec<String> = alice
        .wait_incoming("bob", 3)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts[0], "before the move");
    assert_eq!(texts[1], "sent to the old relay");
    assert!(
        texts[2..].iter().all(|t| t.starts_with("after the news")),
        "{texts:?}"
    );
    let mut unique = texts.clone();
    unique.dedup();
    assert_eq!(unique.len(), texts.len(), "nothing shown twice: {texts:?}");

    // Her handle stays on the old relay, and a lookup there finds her new home.
    let (dave, _) = account_on(&relays[2], "dave");
    dave.add_contact("alice", &format!("@{old_handle}"));
    talk(&dave, "alice", &alice, "dave", "found you");
    // Replies go out too.
    talk(&alice, "bob", &bob, "alice", "from my new home");
    // And the handle can be released where it is.
    alice.call("account.release_handle", json!({ "handle": old_handle }));
    let info = alice.call("account.info", json!({}));
    assert_eq!(info["handles"], json!([]), "{info}");
}

#[test]
fn a_blocked_contacts_envelopes_are_dropped_at_the_relay_and_strangers_can_be_refused() {
    let relays: Vec<RelayProcess> = (0..2).map(|_| RelayProcess::start()).collect();
    let (mut alice, alice_address) = account_on(&relays[0], "alice");
    let (bob, _) = account_on(&relays[1], "bob");
    let invite = alice.call("invites.create", json!({}));
    bob.call(
        "invites.accept",
        json!({ "code": invite["code"], "alias": "alice" }),
    );
    wait_contact(&alice, "bob");
    talk(&bob, "alice", &alice, "bob", "before the block");

    // Blocked: Bob's envelopes are taken by Alice's relay (he cannot tell) and never stored.
    let blocked = alice.call("contacts.block", json!({ "contact": "bob" }));
    assert_eq!(blocked["blocked"], true, "{blocked}");
    let refused = alice.try_call("messages.send", json!({ "to": "bob", "text": "hi" }));
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("blocked")),
        "{refused:?}"
    );
    // The block reaches the relay after the round that made it: wait for the metric.
    let dropped_before = dropped(&relays[0]);
    let mut sent = 0;
    wait_for("the relay to drop a blocked contact's envelope", || {
        sent += 1;
        let id = bob.send("alice", &format!("while blocked {sent}"));
        bob.wait_status("alice", &id, "sent");
        (dropped(&relays[0]) > dropped_before).then_some(())
    });
    alice.restart_unlocked();
    let texts: Vec<String> = alice
        .messages_in("bob", "incoming")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        texts.iter().all(|t| !t.starts_with("while blocked")),
        "nothing sent while blocked is shown: {texts:?}"
    );

    // Unblocked: his messages arrive again.
    alice.call("contacts.unblock", json!({ "contact": "bob" }));
    wait_for("bob's messages to arrive again", || {
        let id = bob.send("alice", "after the unblock");
        bob.wait_status("alice", &id, "sent");
        alice
            .messages_in("bob", "incoming")
            .iter()
            .any(|m| m["text"] == "after the unblock")
            .then_some(())
    });

    // Strangers refused: a stranger's message waits, saying the relay wants a token.
    alice.call("account.set_strangers", json!({ "accept": false }));
    let (carol, _) = account_on(&relays[1], "carol");
    carol.add_contact("alice", &format!("{alice_address}@{}", host_of(&relays[0])));
    let id = carol.send("alice", "a stranger writes");
    let waiting = wait_for("the stranger's message to say why it waits", || {
        let messages = carol.messages_in("alice", "outgoing");
        let message = messages.iter().find(|m| m["message_id"] == id)?.clone();
        message["failure"]
            .as_str()
            .filter(|why| why.contains("token_required"))
            .map(str::to_owned)
    });
    assert!(waiting.contains(&relays[0].url()), "{waiting}");
    // Bob, a contact with a token, still gets through.
    talk(&bob, "alice", &alice, "bob", "still a contact");
}

/// Envelopes a relay dropped because their token was revoked (its `/metrics`).
fn dropped(relay: &RelayProcess) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(relay.addr()) else {
        return 0;
    };
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        relay.addr()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("chat_relay_envelopes_dropped_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_relay_cannot_redirect_a_contact_and_an_old_record_does_not_replace_a_newer_one() {
    use protocol::codec::Encode;
    use protocol::identity::IdentityKeyPair;
    use protocol::reachability::{ReachabilityRecord, RelayEndpoint};
    let (mut alice_relay, proxy) = WsProxy::relay();
    let bob_relay = RelayProcess::start();
    let mallory_relay = RelayProcess::start();
    let alice = DaemonProcess::start(&proxy.url());
    let alice_address = alice.create("alice").address;
    let (bob, _) = account_on(&bob_relay, "bob");

    // Alice's relay lies: asked where Alice is, it answers with a record naming Mallory's
    // relay under Alice's identity, signed by someone else.
    let alice_key = protocol::identity::IdentityKey::from_bytes(
        protocol::address::Address::parse(&alice_address)
            .unwrap_or_else(|e| panic!("{e}"))
            .public_key()
            .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mallory = IdentityKeyPair::from_seed(&[0x66; 32]);
    let endpoint = RelayEndpoint::new(&mallory_relay.url(), None).unwrap_or_else(|e| panic!("{e}"));
    let mut forged = ReachabilityRecord::sign(&mallory, u64::MAX / 2, vec![endpoint])
        .unwrap_or_else(|e| panic!("{e}"));
    forged.identity = alice_key;
    proxy.fake_reachability(forged.to_bytes());

    let proxy_host = proxy
        .url()
        .trim_start_matches("ws://")
        .trim_end_matches("/v1")
        .to_owned();
    bob.add_contact("alice", &format!("{alice_address}@{proxy_host}"));
    assert!(proxy.faked_reachability() > 0, "the lie was told");
    talk(&bob, "alice", &alice, "bob", "you are where I found you");
    // Bob is a message request to Alice until she accepts him: only contacts hear of her move.
    wait_contact(&alice, "bob");
    let status = bob.call("daemon.status", json!({}));
    let others = status["other_relays"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        others
            .iter()
            .all(|o| o["url"] != mallory_relay.url().as_str()),
        "the forged record sent nothing to Mallory's relay: {status}"
    );

    // An old record does not replace a newer one: Alice moves (a newer record reaches Bob in
    // her introduction), then Bob accepts an invite she made before the move.
    let old_invite = alice.call("invites.create", json!({}));
    let new_home = RelayProcess::start();
    alice.call("account.move_relay", json!({ "relay": new_home.url() }));
    alice.wait_connected();
    wait_for("bob to deliver to alice's new relay", || {
        let id = bob.send("alice", "where are you now?");
        bob.wait_status("alice", &id, "sent");
        let status = bob.call("daemon.status", json!({}));
        status["other_relays"]
            .as_array()?
            .iter()
            .any(|o| o["url"] == new_home.url().as_str())
            .then_some(())
    });
    bob.call(
        "invites.accept",
        json!({ "code": old_invite["code"], "alias": "alice" }),
    );
    // Were Bob back on the old record, this would wait for a relay that is gone.
    alice_relay.kill();
    talk(&bob, "alice", &alice, "bob", "still at your new home");
}
