//! Nothing readable at rest: after two accounts talked, no file a daemon wrote contains a
//! message text, a contact alias, a handle or a display name, and the relay's files hold no
//! message text either.

use std::path::Path;

use serde_json::json;
use tests::{DaemonProcess, RelayProcess, files_under};

const CANARY: &str = "canary-5be1f0c2-nothing-at-rest";
const ALIAS: &str = "wombat-alias-77";
const HANDLE: &str = "quokkahandle77";
const ALICE_NAME: &str = "Zephyrine Alicewright";
const BOB_NAME: &str = "Quillonius Bobbington";

/// The files under `dir` that contain any of `secrets`, with the secret found.
fn leaks(dir: &Path, secrets: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files_under(dir) {
        let bytes =
            std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for secret in secrets {
            if bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
            {
                found.push(format!("{}: {secret:?}", file.display()));
            }
        }
    }
    found
}

#[test]
fn stored_files_contain_no_message_text_alias_handle_or_name() {
    let mut relay = RelayProcess::start();
    let mut alice = DaemonProcess::start(&relay.url());
    let mut bob = DaemonProcess::start(&relay.url());
    alice.create(ALICE_NAME);
    bob.create(BOB_NAME);
    bob.call("account.register_handle", json!({ "handle": HANDLE }));
    alice.add_contact(ALIAS, &format!("@{HANDLE}"));

    let first = alice.send(ALIAS, &format!("{CANARY} from alice"));
    alice.wait_status(ALIAS, &first, "delivered");
    // Bob knows Alice from her introduction, under an alias made from her name: a message
    // request, which he accepts.
    let requests = bob.call("requests.list", json!({}));
    let request = requests["requests"][0]["contact"]["alias"].clone();
    bob.call("requests.accept", json!({ "contact": request }));
    let contacts = bob.call("contacts.list", json!({}));
    let alice_alias = contacts["contacts"][0]["alias"]
        .as_str()
        .unwrap_or_else(|| panic!("bob has no contact for alice: {contacts}"))
        .to_owned();
    assert_eq!(contacts["contacts"][0]["display_name"], ALICE_NAME);
    bob.call("messages.mark_read", json!({ "conversation": alice_alias }));
    alice.wait_status(ALIAS, &first, "read");
    let answer = bob.send(&alice_alias, &format!("{CANARY} from bob"));
    bob.wait_status(&alice_alias, &answer, "delivered");
    alice.call("messages.mark_read", json!({ "conversation": ALIAS }));
    bob.wait_status(&alice_alias, &answer, "read");

    alice.stop();
    bob.stop();
    relay.kill();
    let secrets = [CANARY, ALIAS, HANDLE, ALICE_NAME, BOB_NAME, &alice_alias];
    for daemon in [&alice, &bob] {
        assert!(
            !files_under(daemon.dir()).is_empty(),
            "the daemon stored something"
        );
        let found = leaks(daemon.dir(), &secrets);
        assert!(found.is_empty(), "readable at rest:\n{}", found.join("\n"));
    }
    // A control that the scan finds what is there: the relay keeps handle claims in the clear
    // (it must answer lookups), so its files do contain the handle.
    assert!(
        !leaks(&relay.data_dir(), &[HANDLE]).is_empty(),
        "the scan finds the handle in the relay's files"
    );
    let found = leaks(&relay.data_dir(), &[CANARY, ALIAS, ALICE_NAME, BOB_NAME]);
    assert!(
        found.is_empty(),
        "the relay stored plaintext:\n{}",
        found.join("\n")
    );
}
