//! The account's own commands through chatctl against real daemons and a real relay (issue
//! #16, item 7): changing the passphrase, releasing a handle, deleting the account, exporting
//! the history, the weak passphrase warning, `--json` for command lines clap refuses, and the
//! "locked" hint printed once.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};
use tests::{
    DaemonProcess, Finished, Pair, chatctl, files_under, private_dir, run_chatctl, shared_relay,
};

/// chatctl's documented exit codes (chatctl --help).
const OTHER: i32 = 1;
const USAGE: i32 = 2;
const LOCKED: i32 = 4;
const NOT_FOUND: i32 = 5;
const WRONG_PASSPHRASE: i32 = 9;

/// Writes `text` to a 0600 file `name` in `dir` and returns its path.
fn secret_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {name}: {e}"));
    path.display().to_string()
}

/// A handle no other test (or earlier run against the shared relay) holds.
fn unique_handle(prefix: &str) -> String {
    format!("{prefix}{}", rand::random::<u32>())
}

#[test]
fn a_changed_passphrase_unlocks_and_the_old_one_no_longer_does_even_after_a_restart() {
    let relay = shared_relay();
    let mut daemon = DaemonProcess::start(&relay.url());
    let socket = daemon.socket();
    let secrets = private_dir();
    let old = secret_file(secrets.path(), "old", "correct horse battery staple\n");
    let new = secret_file(secrets.path(), "new", "a new and longer passphrase\n");
    let wrong = secret_file(secrets.path(), "wrong", "not the passphrase at all\n");

    run_chatctl(
        &socket,
        &["init", "--name", "Dana", "--passphrase-file", &old],
    )
    .expect_code(0);
    // A wrong current passphrase changes nothing.
    let refused = run_chatctl(
        &socket,
        &[
            "--json",
            "passphrase",
            "--old-file",
            &wrong,
            "--new-file",
            &new,
        ],
    )
    .expect_code(WRONG_PASSPHRASE)
    .json();
    assert_eq!(refused["error"]["kind"], "wrong_passphrase", "{refused}");
    let changed = run_chatctl(
        &socket,
        &[
            "--json",
            "passphrase",
            "--old-file",
            &old,
            "--new-file",
            &new,
        ],
    )
    .expect_code(0)
    .json();
    assert_eq!(
        changed,
        json!({ "unprotected": false }),
        "no warning for a good one"
    );
    // The account stayed unlocked through the change.
    run_chatctl(&socket, &["whoami"]).expect_code(0);

    run_chatctl(&socket, &["lock"]).expect_code(0);
    run_chatctl(&socket, &["unlock", "--passphrase-file", &old]).expect_code(WRONG_PASSPHRASE);
    run_chatctl(&socket, &["unlock", "--passphrase-file", &new]).expect_code(0);

    // SIGKILL right after the answer: the answer came after the flush, so the new record is
    // what the disk holds.
    daemon.restart();
    run_chatctl(&socket, &["unlock", "--passphrase-file", &old]).expect_code(WRONG_PASSPHRASE);
    let unlocked = run_chatctl(&socket, &["--json", "unlock", "--passphrase-file", &new])
        .expect_code(0)
        .json();
    assert_eq!(unlocked["name"], "Dana", "{unlocked}");

    // Scripts may pipe the current and the new passphrase, one per line. A weak new one is
    // taken, with a warning on stderr and in the result.
    let weak = Finished::run(
        chatctl(&socket).args(["--json", "passphrase"]),
        b"a new and longer passphrase\nshort\n",
    )
    .expect_code(0);
    assert!(
        weak.json()["passphrase_warning"]
            .as_str()
            .is_some_and(|w| w.contains("short")),
        "{}",
        weak.stdout
    );
    assert!(
        weak.stderr.contains("warning: the passphrase is short"),
        "{}",
        weak.stderr
    );
    run_chatctl(&socket, &["lock"]).expect_code(0);
    let short = secret_file(secrets.path(), "short", "short\n");
    run_chatctl(&socket, &["unlock", "--passphrase-file", &short]).expect_code(0);

    // Removing the passphrase: the daemon then unlocks by itself at start.
    run_chatctl(
        &socket,
        &["passphrase", "--old-file", &short, "--no-passphrase"],
    )
    .expect_code(0);
    let status = run_chatctl(&socket, &["--json", "status"])
        .expect_code(0)
        .json();
    assert_eq!(status["passphrase_protected"], false, "{status}");
    assert_eq!(
        run_chatctl(&socket, &["--json", "whoami"])
            .expect_code(0)
            .json()["unprotected"],
        true
    );
    daemon.restart_unlocked();
    // An account without a passphrase takes no old one, and gets a new one without it.
    let error = daemon
        .try_call(
            "account.change_passphrase",
            json!({ "old_passphrase": "guess", "new_passphrase": "correct horse battery staple" }),
        )
        .err()
        .and_then(|e| match e {
            api::client::ClientError::Rpc(rpc) => Some(rpc.code),
            _ => None,
        });
    assert_eq!(error, Some(1004), "wrong_passphrase");
    run_chatctl(&socket, &["passphrase", "--new-file", &old]).expect_code(0);
    daemon.restart();
    run_chatctl(&socket, &["whoami"]).expect_code(LOCKED);
    run_chatctl(&socket, &["unlock", "--passphrase-file", &old]).expect_code(0);
}

#[test]
fn unregister_frees_a_handle_for_another_account() {
    let relay = shared_relay();
    let alice = DaemonProcess::start(&relay.url());
    let bob = DaemonProcess::start(&relay.url());
    let (a, b) = (alice.socket(), bob.socket());
    run_chatctl(&a, &["init", "--name", "Alice", "--no-passphrase"]).expect_code(0);
    run_chatctl(&b, &["init", "--name", "Bob", "--no-passphrase"]).expect_code(0);
    alice.wait_connected();
    bob.wait_connected();
    let handle = unique_handle("free");
    let at = format!("@{handle}");

    run_chatctl(&a, &["register", &at]).expect_code(0);
    let taken = run_chatctl(&b, &["--json", "register", &handle])
        .expect_code(OTHER)
        .json();
    assert_eq!(taken["error"]["kind"], "handle_taken", "{taken}");

    let released = run_chatctl(&a, &["unregister", &at]).expect_code(0);
    assert!(released.stdout.contains(&at), "{}", released.stdout);
    let info = run_chatctl(&a, &["--json", "whoami"]).expect_code(0).json();
    assert_eq!(info["handles"], json!([]), "{info}");
    // Not (or no longer) ours: not found.
    run_chatctl(&a, &["unregister", &at]).expect_code(NOT_FOUND);

    run_chatctl(&b, &["register", &at]).expect_code(0);
    let info = run_chatctl(&b, &["--json", "whoami"]).expect_code(0).json();
    assert_eq!(info["handles"], json!([handle]), "{info}");
}

#[test]
fn account_delete_wipes_the_store_releases_handles_and_init_works_again() {
    let relay = shared_relay();
    let mut daemon = DaemonProcess::start(&relay.url());
    let other = DaemonProcess::start(&relay.url());
    let socket = daemon.socket();
    let secrets = private_dir();
    let good = secret_file(secrets.path(), "good", "correct horse battery staple\n");
    let bad = secret_file(secrets.path(), "bad", "wrong horse battery staple\n");

    let first = run_chatctl(
        &socket,
        &[
            "--json",
            "init",
            "--name",
            "Erin",
            "--passphrase-file",
            &good,
        ],
    )
    .expect_code(0)
    .json();
    other.create("Other");
    daemon.wait_connected();
    let handle = unique_handle("gone");
    run_chatctl(&socket, &["register", &handle]).expect_code(0);
    let other_address = other.call("account.info", json!({}))["address"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    run_chatctl(&socket, &["contact", "add", "other", &other_address]).expect_code(0);
    run_chatctl(&socket, &["send", "other", "before the deletion"]).expect_code(0);

    // Without a terminal, only --yes confirms; a wrong passphrase deletes nothing.
    let unconfirmed =
        run_chatctl(&socket, &["account", "delete", "--passphrase-file", &good]).expect_code(USAGE);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    run_chatctl(
        &socket,
        &["account", "delete", "--yes", "--passphrase-file", &bad],
    )
    .expect_code(WRONG_PASSPHRASE);
    run_chatctl(&socket, &["whoami"]).expect_code(0);

    // Hard links to the store's files show whether their names are removed.
    let store = daemon.data_dir().join("store");
    let links = private_dir();
    let before = files_under(&store);
    assert!(!before.is_empty());
    for (i, file) in before.iter().enumerate() {
        std::fs::hard_link(file, links.path().join(i.to_string()))
            .unwrap_or_else(|e| panic!("linking {}: {e}", file.display()));
    }

    let deleted = run_chatctl(
        &socket,
        &[
            "--json",
            "account",
            "delete",
            "--yes",
            "--passphrase-file",
            &good,
        ],
    )
    .expect_code(0)
    .json();
    assert_eq!(
        deleted,
        json!({ "released_handles": [handle], "kept_handles": [] }),
        "{deleted}"
    );
    for link in files_under(links.path()) {
        let meta = std::fs::metadata(&link).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            meta.nlink(),
            1,
            "a file of the deleted store is still in it"
        );
    }
    let status = run_chatctl(&socket, &["--json", "status"])
        .expect_code(0)
        .json();
    assert_eq!(status["state"], "no_account", "{status}");
    run_chatctl(&socket, &["whoami"]).expect_code(LOCKED);
    // The handle is free for anyone.
    other.call("account.register_handle", json!({ "handle": handle }));

    // The deletion is durable, and a new account starts from nothing.
    daemon.restart();
    let status = run_chatctl(&socket, &["--json", "status"])
        .expect_code(0)
        .json();
    assert_eq!(status["state"], "no_account", "{status}");
    let second = run_chatctl(
        &socket,
        &["--json", "init", "--name", "Erin", "--no-passphrase"],
    )
    .expect_code(0)
    .json();
    assert_ne!(second["address"], first["address"], "new keys");
    let conversations = run_chatctl(&socket, &["--json", "conversations"])
        .expect_code(0)
        .json();
    assert_eq!(conversations["conversations"], json!([]), "{conversations}");

    // An account without a passphrase needs an explicit confirmation over the RPC.
    let unconfirmed = daemon
        .try_call("account.delete", json!({}))
        .err()
        .and_then(|e| match e {
            api::client::ClientError::Rpc(rpc) => Some(rpc.code),
            _ => None,
        });
    assert_eq!(unconfirmed, Some(1006), "passphrase_required");
    daemon.call("account.delete", json!({ "confirm": true }));
    assert_eq!(
        daemon.call("daemon.status", json!({}))["state"],
        "no_account"
    );
}

#[test]
fn export_writes_every_message_as_json_lines_atomically_and_privately() {
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let mut texts: Vec<String> = (0..520).map(|i| format!("message {i}")).collect();
    texts.push("line one\nline two \"quoted\" ünïcödé".to_owned());
    let ids = pair.alice.send_all("bob", &texts);
    let reply = pair.bob.send("alice", "a reply");
    pair.alice.wait_incoming("bob", 1);
    pair.alice
        .wait_status("bob", &ids[ids.len() - 1], "delivered");
    let socket = pair.alice.socket();
    let out = private_dir();
    let file = out.path().join("history.jsonl");
    // An older file, readable by others, is replaced whole.
    std::fs::write(&file, "old contents\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));

    let done = run_chatctl(&socket, &["export", &file.display().to_string()]).expect_code(0);
    assert!(
        done.stderr
            .contains("exported 522 messages from 1 conversation"),
        "{}",
        done.stderr
    );
    let mode = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let written = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 522, "every message once");
    let bob_address = pair.bob.call("account.info", json!({}))["address"].clone();
    for line in &lines {
        assert_eq!(line["address"], bob_address, "{line}");
        assert_eq!(line["conversation"], "bob", "{line}");
        assert!(
            line["timestamp_ms"].is_u64() && line["stored_at_ms"].is_u64(),
            "{line}"
        );
    }
    let outgoing: Vec<&str> = lines
        .iter()
        .filter(|l| l["direction"] == "outgoing")
        .map(|l| l["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        outgoing,
        texts.iter().map(String::as_str).collect::<Vec<_>>(),
        "in order"
    );
    let incoming: Vec<&Value> = lines
        .iter()
        .filter(|l| l["direction"] == "incoming")
        .collect();
    assert_eq!(incoming.len(), 1);
    assert_eq!(incoming[0]["text"], "a reply");
    assert_eq!(
        incoming[0]["message_id"],
        json!(reply),
        "the sender's message id"
    );
    assert!(
        lines.iter().any(|l| l["status"] == "delivered"),
        "statuses kept"
    );
    let leftovers: Vec<_> = files_under(out.path())
        .into_iter()
        .filter(|p| p != &file)
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // `-` streams the same lines to stdout, and nothing else.
    let streamed = run_chatctl(&socket, &["export", "-"]).expect_code(0);
    assert_eq!(streamed.stdout, written);

    // A directory that cannot be written: an error, and nothing is left behind.
    let missing = out.path().join("no such dir").join("history.jsonl");
    let failed = run_chatctl(&socket, &["export", &missing.display().to_string()]);
    assert_eq!(failed.code, Some(OTHER), "{}", failed.stderr);
    assert!(failed.stderr.contains("cannot create"), "{}", failed.stderr);
}

#[test]
fn init_warns_about_a_weak_passphrase_but_creates_the_account() {
    let relay = shared_relay();
    let secrets = private_dir();
    for (text, warning) in [
        ("hunter2", Some("short")),
        ("123456789012345", Some("only digits")),
        ("correct horse battery staple", None),
    ] {
        let daemon = DaemonProcess::start(&relay.url());
        let file = secret_file(secrets.path(), "pass", &format!("{text}\n"));
        let init = run_chatctl(
            &daemon.socket(),
            &[
                "--json",
                "init",
                "--name",
                "Weak",
                "--passphrase-file",
                &file,
            ],
        )
        .expect_code(0);
        let info = init.json();
        match warning {
            Some(word) => {
                let field = info["passphrase_warning"].as_str().unwrap_or_default();
                assert!(field.contains(word), "{text}: {info}");
                assert!(
                    init.stderr.contains("warning: ") && init.stderr.contains(word),
                    "{text}: {}",
                    init.stderr
                );
            }
            None => {
                assert!(info.get("passphrase_warning").is_none(), "{info}");
                assert!(!init.stderr.contains("warning"), "{}", init.stderr);
            }
        }
        run_chatctl(&daemon.socket(), &["lock"]).expect_code(0);
        run_chatctl(&daemon.socket(), &["unlock", "--passphrase-file", &file]).expect_code(0);
    }
}

#[test]
fn usage_errors_are_json_documents_with_json_anywhere_on_the_command_line() {
    let nowhere = private_dir();
    let socket = nowhere.path().join("chatd.sock");
    for args in [
        &["--json", "frobnicate"][..],
        &["send", "--json"],
        &["history", "bob", "--limit", "0", "--json"],
        &["--json"],
    ] {
        let refused = run_chatctl(&socket, args).expect_code(USAGE);
        let document = refused.json();
        assert_eq!(document["error"]["kind"], "usage", "{args:?}: {document}");
        assert_eq!(document["error"]["exit_code"], USAGE);
        assert_eq!(document["error"]["code"], Value::Null);
        let message = document["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{document}"
        );
        assert!(refused.stderr.contains("error:"), "clap's own text too");
    }
    // Without --json, stdout stays empty; after `--`, `--json` is a value, not the option.
    let plain = run_chatctl(&socket, &["frobnicate"]).expect_code(USAGE);
    assert!(plain.stdout.is_empty(), "{}", plain.stdout);
    let text = run_chatctl(&socket, &["send", "bob", "--", "--json", "extra"]).expect_code(USAGE);
    assert!(text.stdout.is_empty(), "{}", text.stdout);
    // Help is no error.
    let help = run_chatctl(&socket, &["--json", "--help"]).expect_code(0);
    assert!(help.stdout.contains("Usage"), "{}", help.stdout);
}

#[test]
fn the_locked_hint_is_printed_once() {
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    let socket = daemon.socket();
    let none = run_chatctl(&socket, &["whoami"]).expect_code(LOCKED);
    assert_eq!(
        none.stderr.matches("chatctl init").count(),
        1,
        "{}",
        none.stderr
    );
    run_chatctl(&socket, &["init", "--name", "Hint", "--no-passphrase"]).expect_code(0);
    run_chatctl(&socket, &["lock"]).expect_code(0);
    let locked = run_chatctl(&socket, &["whoami"]).expect_code(LOCKED);
    assert_eq!(
        locked.stderr.matches("chatctl unlock").count(),
        1,
        "{}",
        locked.stderr
    );
    assert!(locked.stderr.contains("locked"), "{}", locked.stderr);
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), `unlock` asks again after a
/// wrong passphrase, three tries in all, and says how many are left.
#[test]
fn unlock_on_a_terminal_gives_three_tries() {
    if !tests::system_tool_available(
        "unlock_on_a_terminal_gives_three_tries",
        &["script", "--version"],
    ) {
        return;
    }
    let relay = shared_relay();
    let daemon = DaemonProcess::start(&relay.url());
    let socket = daemon.socket();
    let secrets = private_dir();
    let good = secret_file(secrets.path(), "good", "correct horse battery staple\n");
    run_chatctl(
        &socket,
        &["init", "--name", "Tty", "--passphrase-file", &good],
    )
    .expect_code(0);
    let on_a_terminal = |typed: &[u8]| {
        run_chatctl(&socket, &["lock"]).expect_code(0);
        let command = format!(
            "'{}' --socket '{}' --no-autostart unlock",
            tests::bin("chatctl").display(),
            socket.display()
        );
        Finished::run(
            std::process::Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .env_remove("CHATD_SOCKET"),
            typed,
        )
    };
    let third =
        on_a_terminal(b"first wrong\nsecond wrong\ncorrect horse battery staple\n").expect_code(0);
    assert_eq!(
        third.stdout.matches("Passphrase:").count(),
        3,
        "{}",
        third.stdout
    );
    assert!(
        third.stdout.contains("try again (2 tries left)"),
        "{}",
        third.stdout
    );
    assert!(
        third.stdout.contains("try again (1 try left)"),
        "{}",
        third.stdout
    );
    assert!(third.stdout.contains("unlocked: chat1"), "{}", third.stdout);
    run_chatctl(&socket, &["whoami"]).expect_code(0);

    let none = on_a_terminal(b"one\ntwo\nthree\ncorrect horse battery staple\n")
        .expect_code(WRONG_PASSPHRASE);
    assert_eq!(
        none.stdout.matches("Passphrase:").count(),
        3,
        "{}",
        none.stdout
    );
    assert!(none.stdout.contains("wrong passphrase"), "{}", none.stdout);
    run_chatctl(&socket, &["whoami"]).expect_code(LOCKED);
}
