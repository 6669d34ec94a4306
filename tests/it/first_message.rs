//! `contrib/first-message.sh`, README's one command from a fresh clone to a first message: run
//! with the binaries this build made (instead of building release ones), in a private
//! directory, with the embedded relay on a free port. Bob's message must show in Alice's
//! history, a second run must reuse the accounts, and `--stop` must stop both daemons.

use std::process::Command;

use tests::{Finished, bin_dir, free_addr, private_dir, wait_for, workspace_root};

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

    let first = Finished::run(&mut script(&demo, &relay, &[]), b"").expect_code(0);
    assert!(
        first.stdout.contains("created Alice's account"),
        "{first:?}"
    );
    assert!(first.stdout.contains("created Bob's account"), "{first:?}");
    assert!(first.stdout.contains("delivered"), "{first:?}");
    // Alice's history prints the whole text (her conversation list shortens it).
    assert!(
        first.stdout.lines().any(
            |line| line.ends_with("Bob: Hello Alice, this is Bob. It is end-to-end encrypted.")
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
}
