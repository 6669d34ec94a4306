//! `contrib/first-message.sh`, README's one command from a fresh clone to a first message: run
//! with the binaries this build made (instead of building release ones), in a private
//! directory, with the demo's own local relay on a free port. Bob's message must show in
//! Alice's history, a second run must reuse the accounts, and `--stop` must stop both daemons
//! and nothing else: an account of the user's own, on their default local relay, goes on.

use std::process::Command;

use serde_json::json;
use tests::{
    DaemonOptions, DaemonProcess, Finished, bin_dir, free_addr, private_dir, wait_for,
    workspace_root,
};

fn script(demo: &std::path::Path, relay: &str, args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("contrib").join("first-message.sh"))
        .args(args)
        .env("CHATD_BIN_DIR", bin_dir())
        .env("CHATD_DEMO_DIR", demo)
        .env("CHATD_DEMO_RELAY_ADDR", relay)
        .env_remove("CHATD_SOCKET")
        .env_remove("CHATCTL_CHATD_ARGS")
        .env_remove("CHATD_BIN");
    command
}

/// Stops the demo daemons even when an assertion fails first.
struct StopDemo<'a> {
    demo: &'a std::path::Path,
    relay: &'a str,
}

impl Drop for StopDemo<'_> {
    fn drop(&mut self) {
        let _ = script(self.demo, self.relay, &["--stop"]).output();
    }
}

#[test]
fn the_script_gets_a_first_message_to_alice_and_stops_the_daemons() {
    let dir = private_dir();
    let demo = dir.path().join("demo");
    let relay = free_addr().to_string();
    let _stop = StopDemo {
        demo: &demo,
        relay: &relay,
    };

    // The user's own account, on the local relay in its default place
    // ($XDG_DATA_HOME/chatd/local-relay), made before the demo runs.
    let xdg = dir.path().join("xdg");
    let own_relay = free_addr().to_string();
    let own = || {
        DaemonProcess::start_options(
            "",
            DaemonOptions {
                args: vec!["--embedded-relay-addr".into(), own_relay.clone()],
                env: vec![("XDG_DATA_HOME".into(), xdg.clone().into_os_string())],
                ..DaemonOptions::default()
            },
        )
    };
    let me = own();
    let my_account = me.create("me");
    me.call("account.register_handle", json!({ "handle": "myself" }));
    let mine = me.call("daemon.status", json!({}));
    assert_eq!(mine["local_relay"]["hosted_here"], true, "{mine}");
    assert_eq!(
        mine["local_relay"]["dir"],
        xdg.join("chatd").join("local-relay").display().to_string()
    );

    let first = Finished::run(&mut script(&demo, &relay, &[]), b"").expect_code(0);
    assert!(
        first.stdout.contains(&format!(
            "the demo uses its own relay on {relay} (state in {}); your own account is not touched",
            demo.join("local-relay").display()
        )),
        "{first:?}"
    );
    assert!(
        first.stdout.contains("created Alice's account"),
        "{first:?}"
    );
    assert!(first.stdout.contains("created Bob's account"), "{first:?}");
    assert!(first.stdout.contains("delivered"), "{first:?}");
    // Alice's history prints the whole text (her conversation list shortens it).
    assert!(
        first.stdout.lines().any(
            |line| line.ends_with("bob: Hello Alice, this is Bob. It is end-to-end encrypted.")
        ),
        "no history line with Bob's message: {first:?}"
    );

    let again = Finished::run(&mut script(&demo, &relay, &[]), b"").expect_code(0);
    assert!(again.stdout.contains("Alice's account exists"), "{again:?}");
    assert!(!again.stdout.contains("invite"), "{again:?}");

    let stopped = Finished::run(&mut script(&demo, &relay, &["--stop"]), b"").expect_code(0);
    assert_eq!(stopped.stdout.matches("stopped").count(), 2, "{stopped:?}");
    for who in ["alice", "bob"] {
        let socket = demo.join(who).join("chatd.sock");
        wait_for(&format!("{who}'s chatd to remove its socket"), || {
            (!socket.exists()).then_some(())
        });
    }

    // The user's account never depended on the demo: its relay still runs, its handle still
    // resolves, and mail reaches it.
    let mine = me.call("daemon.status", json!({}));
    assert_eq!(mine["connection"], "connected", "{mine}");
    assert_eq!(mine["local_relay"]["hosted_here"], true, "{mine}");
    assert_eq!(mine["relay_url"], format!("ws://{own_relay}/v1"), "{mine}");
    let friend = own();
    friend.create("friend");
    let found = friend.add_contact("me", "@myself");
    assert_eq!(found["address"], my_account.address.as_str(), "{found}");
    let hello = friend.send("me", "the demo is gone, I am not");
    friend.wait_status("me", &hello, "delivered");
}
