//! The user's local relay belongs to the user, not to a daemon: its state lives in a directory
//! of its own, whichever daemon runs hosts it, and when the host stops (SIGTERM or SIGKILL)
//! another daemon takes it over with every handle, mailbox and queued envelope. A listener of
//! another user on its address is never taken for it, and an old embedded relay store in a
//! data directory moves in.

use std::path::{Path, PathBuf};

use api::ErrorCode;
use serde_json::{Value, json};
use tests::{DaemonProcess, EventStream, free_addr, private_dir, run_chatctl, wait_for};

/// A daemon with no relay configured, on the local relay in `dir` (`--embedded-relay-addr`
/// when `addr` is given, else the address recorded there).
fn on_local_relay(dir: &Path, addr: Option<&str>) -> DaemonProcess {
    let dir = dir.display().to_string();
    let mut args = vec!["--local-relay-dir", dir.as_str()];
    if let Some(addr) = addr {
        args.extend(["--embedded-relay-addr", addr]);
    }
    DaemonProcess::start_without_relay(&args)
}

fn status(daemon: &DaemonProcess) -> Value {
    daemon.call("daemon.status", json!({}))
}

/// Waits until `daemon` hosts the local relay.
fn wait_hosting(daemon: &DaemonProcess) {
    wait_for("the daemon to host the local relay", || {
        (status(daemon)["local_relay"]["hosted_here"] == true).then_some(())
    });
}

/// The local relay's directory in a private temporary directory.
fn relay_dir(temp: &tempfile::TempDir) -> PathBuf {
    temp.path().join("local-relay")
}

#[derive(Clone, Copy)]
enum Stop {
    Term,
    Kill,
}

fn the_host_stops_and_another_daemon_takes_over_with_everything(how: Stop) {
    let temp = private_dir();
    let dir = relay_dir(&temp);
    let addr = free_addr().to_string();
    let url = format!("ws://{addr}/v1");
    let mut a = on_local_relay(&dir, Some(&addr));
    wait_hosting(&a);
    // B and C find the address A recorded in the directory.
    let b = on_local_relay(&dir, None);
    let mut c = on_local_relay(&dir, None);
    let seen = status(&b);
    assert_eq!(seen["relay_url"], url.as_str(), "{seen}");
    assert_eq!(seen["relay_kind"], "local", "{seen}");
    assert_eq!(seen["local_relay"]["hosted_here"], false, "{seen}");
    assert_eq!(seen["local_relay"]["host_pid"], json!(a.pid()), "{seen}");
    assert_eq!(seen["hosted_relay"], Value::Null, "{seen}");
    let line = run_chatctl(&b.socket(), &["status"]).expect_code(0).stdout;
    let a_pid = a.pid().unwrap_or_default();
    assert!(
        line.contains(&format!("local relay, hosted by chatd pid {a_pid}")),
        "{line}"
    );

    let bob = b.create("bob");
    let carol = c.create("carol");
    b.call("account.register_handle", json!({ "handle": "bob" }));
    c.call("account.register_handle", json!({ "handle": "carol" }));
    b.add_contact("carol", "@carol");
    let hello = b.send("carol", "hello carol");
    c.wait_incoming("bob", 1);
    b.wait_status("carol", &hello, "delivered");
    // Bob is a stranger to Carol: she accepts his request, so what he sends next carries the
    // token she gives him (a stranger is admitted only a few envelopes at a time).
    c.call("requests.accept", json!({ "contact": "bob" }));

    // Carol is away; Bob's messages wait for her at the relay A hosts.
    c.stop();
    let texts: Vec<String> = (1..=5)
        .map(|i| format!("while you were away {i}"))
        .collect();
    b.send_one_by_one("carol", &texts);

    match how {
        Stop::Term => a.stop(),
        Stop::Kill => a.kill(),
    }
    wait_hosting(&b);
    b.wait_connected();
    let seen = status(&b);
    assert_eq!(seen["hosted_relay"], url.as_str(), "{seen}");
    assert_eq!(seen["local_relay"]["host_pid"], json!(b.pid()), "{seen}");
    let line = run_chatctl(&b.socket(), &["status"]).expect_code(0).stdout;
    assert!(
        line.contains(&format!(
            "{url} (connected; local relay, hosted by this daemon)"
        )),
        "{line}"
    );

    // Carol comes back to the relay B hosts now and gets every queued message once.
    c.restart_unlocked();
    let received = c.wait_incoming("bob", 1 + texts.len());
    let got: Vec<&str> = received.iter().filter_map(|m| m["text"].as_str()).collect();
    let mut wanted = vec!["hello carol"];
    wanted.extend(texts.iter().map(String::as_str));
    assert_eq!(got, wanted);
    assert_eq!(status(&c)["local_relay"]["host_pid"], json!(b.pid()));

    // The handles survived the take-over: a newcomer finds them and cannot claim them.
    let d = on_local_relay(&dir, None);
    d.create("dave");
    let found = d.add_contact("b", "@bob");
    assert_eq!(found["address"], bob.address.as_str(), "{found}");
    for (handle, owner) in [("bob", &bob), ("carol", &carol)] {
        let refused = d
            .try_call("account.register_handle", json!({ "handle": handle }))
            .err()
            .unwrap_or_else(|| panic!("dave claimed @{handle}, {}'s handle", owner.name));
        assert_eq!(
            refused.app_code(),
            Some(ErrorCode::HandleTaken),
            "{refused}"
        );
    }
    // And Carol, back, writes to Bob through the new host; by then nothing came twice.
    let reply = c.send("bob", "back again");
    c.wait_status("bob", &reply, "delivered");
    let all = c.messages_in("bob", "incoming");
    let all: Vec<&str> = all.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(all, wanted);
}

#[test]
fn the_host_stopped_with_sigterm_is_taken_over_with_everything() {
    the_host_stops_and_another_daemon_takes_over_with_everything(Stop::Term);
}

#[test]
fn the_host_killed_with_sigkill_is_taken_over_with_everything() {
    the_host_stops_and_another_daemon_takes_over_with_everything(Stop::Kill);
}

/// A user who ran an older chatd had the embedded relay's store in the data directory of
/// the daemon that hosted it: the first start with a local relay directory moves it there, so
/// the handles and queued mail of every account on it are kept.
#[test]
fn an_old_embedded_relay_store_is_moved_with_its_handles_and_mail() {
    let temp = private_dir();
    let before = temp.path().join("before");
    let addr = free_addr().to_string();
    let mut host = on_local_relay(&before, Some(&addr));
    wait_hosting(&host);
    let mut b = on_local_relay(&before, None);
    b.create("bob");
    b.call("account.register_handle", json!({ "handle": "bob" }));
    let mut c = on_local_relay(&before, None);
    c.create("carol");
    c.call("account.register_handle", json!({ "handle": "carol" }));
    b.add_contact("carol", "@carol");
    let hello = b.send("carol", "hello carol");
    b.wait_status("carol", &hello, "delivered");
    c.stop();
    let queued = b.send("carol", "queued in the old store");
    b.wait_status("carol", &queued, "sent");
    b.stop();
    host.stop();
    // The layout an older chatd left: the store in the host's data directory, no local
    // relay directory.
    let old = host.data_dir().join("embedded-relay");
    std::fs::rename(before.join("store"), &old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&before).unwrap_or_else(|e| panic!("{e}"));

    let after = temp.path().join("after");
    let after_arg = after.display().to_string();
    host.set_args(&[
        "--local-relay-dir",
        after_arg.as_str(),
        "--embedded-relay-addr",
        addr.as_str(),
    ]);
    host.restart();
    wait_hosting(&host);
    assert!(!old.exists(), "the old store was moved");
    assert!(after.join("store").exists());
    for daemon in [&mut b, &mut c] {
        daemon.set_args(&["--local-relay-dir", after_arg.as_str()]);
        daemon.restart_unlocked();
    }
    let received = c.wait_incoming("bob", 2);
    assert_eq!(received[1]["text"], "queued in the old store");
    host.create("dave");
    let found = host.add_contact("c", "@carol");
    assert_eq!(found["alias"], "c");
    let refused = host
        .try_call("account.register_handle", json!({ "handle": "carol" }))
        .err()
        .unwrap_or_else(|| panic!("dave claimed @carol after the move"));
    assert_eq!(
        refused.app_code(),
        Some(ErrorCode::HandleTaken),
        "{refused}"
    );
}

/// On a machine shared by several people, a listener of another user on the local relay's
/// address is never taken for the user's own relay: chatd refuses to connect and says why.
/// Needs root (to run the other user's listener as `nobody`); elsewhere it checks only what
/// a single user can.
#[cfg(target_os = "linux")]
#[test]
fn another_users_listener_is_never_the_local_relay() {
    if api::paths::current_uid() != 0 {
        eprintln!("not root: skipping the listener of another user");
        return;
    }
    use std::os::unix::process::CommandExt as _;
    const NOBODY: u32 = 65534;
    let temp = private_dir();
    let dir = relay_dir(&temp);
    let addr = free_addr().to_string();
    // Another user's relay on the address: a real chat-relay, running as nobody, from a copy
    // nobody can execute (the build's own may sit under a home directory only root enters).
    let shared = tempfile::Builder::new()
        .prefix("chatd-nobody-")
        .tempdir()
        .unwrap_or_else(|e| panic!("{e}"));
    let relay_copy = shared.path().join("chat-relay");
    std::fs::copy(tests::bin("chat-relay"), &relay_copy).unwrap_or_else(|e| panic!("{e}"));
    for path in [shared.path(), relay_copy.as_path()] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut other = std::process::Command::new(&relay_copy)
        .args(["--listen", addr.as_str(), "--ephemeral"])
        .env("RUST_LOG", "warn")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting chat-relay as nobody: {e}"));
    let _other = tests::KillOnDrop::new(other.id());
    wait_for("the other user's relay to listen", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    let daemon = on_local_relay(&dir, Some(&addr));
    let seen = wait_for("the daemon to see the other user's listener", || {
        let seen = status(&daemon);
        seen["local_relay"]["error"]
            .as_str()
            .is_some()
            .then_some(seen)
    });
    let error = seen["local_relay"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("uid {NOBODY}")) && error.contains(&addr),
        "{error}"
    );
    assert_eq!(seen["local_relay"]["hosted_here"], false);
    // An account made now is homed on the address, and its link refuses that relay before
    // it dials it, every time.
    let mut events = EventStream::subscribe(&daemon, None);
    daemon.call(
        "account.create",
        json!({ "name": "eve", "no_passphrase": true }),
    );
    let seen = events.until(|e| {
        e["kind"] == "relay.connection"
            && e["error"]
                .as_str()
                .is_some_and(|error| error.contains("held by another user"))
    });
    assert!(
        seen.iter().all(|e| e["state"] != "connected"),
        "connected to another user's relay: {seen:?}"
    );
    assert_ne!(status(&daemon)["connection"], "connected");
    let shown = run_chatctl(&daemon.socket(), &["status"])
        .expect_code(0)
        .stdout;
    assert!(shown.contains("local relay, not usable"), "{shown}");
    assert!(shown.contains("held by another user"), "{shown}");
    let _ = other.kill();
    let _ = other.wait();
}
