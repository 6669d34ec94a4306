//! Names through real daemons and chatctl (issue #16, item 6): every command that names a
//! contact takes every form of name (alias in any case, `@alias`, `@handle`, address,
//! `ADDRESS@HOST:PORT`), a name that fits two contacts is refused with both, aliases made from
//! hostile display names can be typed and are unique regardless of case, and renames and
//! removals keep history and are announced.

use api::ErrorCode;
use serde_json::{Value, json};
use tests::{DaemonProcess, EventStream, RelayProcess, run_chatctl};

/// The history of `name` through chatctl, as JSON, expecting exit 0.
fn history(daemon: &DaemonProcess, name: &str) -> Vec<String> {
    let out = run_chatctl(&daemon.socket(), &["--json", "history", name]).expect_code(0);
    out.json()["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {}", out.stdout))
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

fn contact_aliases(daemon: &DaemonProcess) -> Vec<String> {
    let list = daemon.call("contacts.list", json!({}));
    list["contacts"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|c| c["alias"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_command_takes_an_alias_in_any_case_a_handle_or_an_address() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let a = alice.create("alice");
    let b = bob.create("bob");
    bob.call("account.register_handle", json!({ "handle": "bob_h" }));
    // Alice names Bob "Bobby"; he is found by his handle. She is a message request to him,
    // which he accepts.
    let added = alice.add_contact("Bobby", "@bob_h");
    assert_eq!(added["alias"], "Bobby", "the alias is kept as typed");
    bob.accept_request("alice", &a.address);
    let hello = bob.send("alice", "hello alice");
    bob.wait_status("alice", &hello, "delivered");

    let socket = alice.socket();
    let with_relay = format!("{}@{}", b.address, relay.addr());
    for (sent_before, name) in [
        "Bobby",
        "bobby",
        "BOBBY",
        "@bobby",
        "@bob_h",
        "@BOB_H",
        b.address.as_str(),
        with_relay.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let texts = history(&alice, name);
        assert_eq!(texts.len(), 1 + sent_before, "history {name}: {texts:?}");
        assert_eq!(texts[0], "hello alice", "history {name}");
        let shown = run_chatctl(&socket, &["--json", "contact", "show", name]).expect_code(0);
        assert_eq!(shown.json()["alias"], "Bobby", "contact show {name}");
        let sent =
            run_chatctl(&socket, &["--json", "send", name, &format!("to {name}")]).expect_code(0);
        assert_eq!(sent.json()["conversation"], "Bobby", "send {name}");
    }
    // `read` with another spelling marks Bob's message read, and Bob sees it.
    let read = run_chatctl(&socket, &["--json", "read", "BOBBY"]).expect_code(0);
    assert_eq!(read.json()["marked"], 1, "{}", read.stdout);
    bob.wait_status("alice", &hello, "read");
    // Verification, blocking and the key commands take the handle and the address too.
    let number = alice.call("contacts.get", json!({ "contact": "@bob_h" }))["safety_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let verified = run_chatctl(
        &socket,
        &[
            "--json",
            "contact",
            "verify",
            &with_relay,
            "--safety-number",
            &number,
        ],
    )
    .expect_code(0);
    assert_eq!(verified.json()["trust"], "verified");
    let blocked = run_chatctl(&socket, &["--json", "block", "@bob_h"]).expect_code(0);
    assert_eq!(blocked.json()["blocked"], true);
    let unblocked = run_chatctl(&socket, &["--json", "unblock", "bObBy"]).expect_code(0);
    assert_eq!(unblocked.json()["blocked"], false);
    run_chatctl(&socket, &["contact", "trust", "@Bobby"]).expect_code(0);

    // Nobody by that name: not found, for every command.
    for args in [
        &["history", "nobody"][..],
        &["read", "@nobody"],
        &["contact", "show", "nobody"],
        &["block", "nobody"],
    ] {
        let out = run_chatctl(&socket, args).expect_code(5);
        assert!(out.stderr.contains("nobody"), "{args:?}: {}", out.stderr);
    }

    // Aliases are unique regardless of case.
    let carol = DaemonProcess::start(&relay.url());
    let c = carol.create("carol");
    let taken = alice
        .try_call(
            "contacts.add",
            json!({ "alias": "BOBBY", "target": c.address }),
        )
        .err()
        .unwrap_or_else(|| panic!("a second Bobby was added"));
    assert_eq!(taken.app_code(), Some(ErrorCode::AliasTaken), "{taken}");
    // Adding someone who already is the contact, under the alias they already have, says so
    // (not that the alias is taken).
    let again = alice
        .try_call(
            "contacts.add",
            json!({ "alias": "bobby", "target": b.address }),
        )
        .err()
        .unwrap_or_else(|| panic!("Bobby was added twice"));
    assert!(
        again.to_string().contains("already the contact \"Bobby\""),
        "{again}"
    );
    // A contact whose alias is another's handle makes `@bob_h` ambiguous: refused, listing
    // both; the alias alone and the address still name one.
    alice.add_contact("bob_h", &c.address);
    let out = run_chatctl(&socket, &["history", "@bob_h"]).expect_code(2);
    assert!(
        out.stderr.contains("\"bob_h\" (by alias") && out.stderr.contains("\"Bobby\" (by handle"),
        "{}",
        out.stderr
    );
    let error = alice
        .try_call("messages.send", json!({ "to": "@bob_h", "text": "which?" }))
        .err()
        .unwrap_or_else(|| panic!("an ambiguous send went out"));
    assert_eq!(
        error.app_code(),
        Some(ErrorCode::AmbiguousContact),
        "{error}"
    );
    assert!(history(&alice, "bob_h").is_empty());
    assert_eq!(history(&alice, &b.address).len(), 9);
}

#[test]
fn aliases_from_hostile_display_names_are_typeable_and_unique() {
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let mallory = DaemonProcess::start(&relay.url());
    let party = DaemonProcess::start(&relay.url());
    alice.create("alice");
    let b = bob.create("bob");
    mallory.create("\u{202E}Bob\u{200B} 🎉\u{2066}");
    let p = party.create("🎉✨");
    alice.add_contact("Bob", &b.address);

    // Accepting invites without choosing an alias: the inviter's name, made typeable and
    // unique ("Bob" is taken, whatever the case), or the address when no letter is left.
    let accept = |inviter: &DaemonProcess| -> String {
        let code = inviter.call("invites.create", json!({}))["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let out = run_chatctl(&alice.socket(), &["--json", "accept", &code]).expect_code(0);
        out.json()["alias"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(accept(&mallory), "bob-2");
    let fallback = accept(&party);
    assert_eq!(fallback, p.address.chars().take(13).collect::<String>());
    for alias in contact_aliases(&alice) {
        assert!(
            alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{alias:?} cannot be typed"
        );
    }
    // The display name the peer gave is kept as it is, for display.
    let shown = alice.call("contacts.get", json!({ "contact": "bob-2" }));
    assert_eq!(shown["display_name"], "\u{202E}Bob\u{200B} 🎉\u{2066}");

    // Aliases a person types are refused with invisible characters or a leading @: by
    // chatctl itself (usage) and by chatd.
    for bad in ["bo\u{200B}b", "\u{202E}evil", "@bob", "two words"] {
        let out = run_chatctl(&alice.socket(), &["contact", "rename", "bob-2", bad]).expect_code(2);
        assert!(
            out.stderr.contains("invalid alias"),
            "{bad:?}: {}",
            out.stderr
        );
        let error = alice
            .try_call(
                "contacts.rename",
                json!({ "contact": "bob-2", "alias": bad }),
            )
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(error.app_code(), Some(ErrorCode::InvalidAlias), "{error}");
    }
    // And by `contacts.add` and `accept --as`.
    let error = alice
        .try_call(
            "contacts.add",
            json!({ "alias": "x\u{2067}", "target": p.address }),
        )
        .err()
        .unwrap_or_else(|| panic!("a bidi alias was accepted"));
    assert_eq!(error.app_code(), Some(ErrorCode::InvalidAlias));
}

#[test]
fn renaming_keeps_history_and_renames_and_removals_are_announced() {
    let relay = RelayProcess::start();
    let pair = tests::Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let hi = alice.send("bob", "before the rename");
    alice.wait_status("bob", &hi, "delivered");
    let reply = bob.send("alice", "reply");
    alice.wait_incoming("bob", 1);
    bob.wait_status("alice", &reply, "delivered");

    let mut events = EventStream::subscribe(alice, None);
    let out = run_chatctl(
        &alice.socket(),
        &["--json", "contact", "rename", "BOB", "Robert"],
    )
    .expect_code(0);
    assert_eq!(out.json()["alias"], "Robert");
    let renamed = events.until(|e| e["kind"] == "contact.renamed");
    let renamed = renamed.last().cloned().unwrap_or(Value::Null);
    assert_eq!(renamed["old_alias"], "bob", "{renamed}");
    assert_eq!(renamed["contact"]["alias"], "Robert", "{renamed}");

    // The history is the contact's, under its new name (any case); the old name is gone.
    assert_eq!(history(alice, "robert"), ["before the rename", "reply"]);
    run_chatctl(&alice.socket(), &["history", "bob"]).expect_code(5);
    // New messages both ways land in the same conversation.
    let later = bob.send("alice", "after the rename");
    let incoming = alice.wait_incoming("Robert", 2);
    assert_eq!(incoming[1]["text"], "after the rename");
    assert_eq!(incoming[1]["conversation"], "Robert");
    bob.wait_status("alice", &later, "delivered");
    alice.wait_status("ROBERT", &alice.send("Robert", "still you"), "delivered");

    // Changing only the case is a rename too; another contact's alias (any case) is taken.
    let recased = alice.call(
        "contacts.rename",
        json!({ "contact": "Robert", "alias": "robert" }),
    );
    assert_eq!(recased["alias"], "robert");
    let carol = DaemonProcess::start(&relay.url());
    let c = carol.create("carol");
    alice.add_contact("carol", &c.address);
    let taken = run_chatctl(&alice.socket(), &["contact", "rename", "carol", "ROBERT"]);
    let taken = taken.expect_code(1);
    assert!(taken.stderr.contains("already used"), "{}", taken.stderr);

    // Removal: announced with the alias and address the contact had.
    run_chatctl(&alice.socket(), &["contact", "remove", "Carol"]).expect_code(0);
    let removed = events.until(|e| e["kind"] == "contact.removed");
    let removed = removed.last().cloned().unwrap_or(Value::Null);
    assert_eq!(removed["alias"], "carol", "{removed}");
    assert_eq!(removed["address"], c.address.as_str(), "{removed}");
    run_chatctl(&alice.socket(), &["contact", "show", "carol"]).expect_code(5);
}
