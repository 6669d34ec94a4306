//! chat-tray against a real D-Bus session bus (`dbus-run-session`) with python3-dbusmock's
//! `notification_daemon` template standing in for the desktop's notification server, and real
//! daemons: the Notify calls an incoming message, a privacy-mode message and a key change
//! produce; replacement and closing per conversation; closing on lock and notifying again
//! after unlock; and resumption (chat-tray stopped, a message received, chat-tray started
//! again: that message once, nothing earlier again; and chatd restarted under a running
//! chat-tray).
//!
//! The calls are read back through dbusmock's `org.freedesktop.DBus.Mock.GetCalls`, by a
//! small Python script that prints them as JSON.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tests::{DaemonProcess, Pair, RelayProcess, private_dir, shared_relay, wait_for};

/// Prints every call the mock recorded as JSON: `[{"method": ..., "args": [...]}, ...]`.
const GET_CALLS: &str = r#"
import json, dbus
def plain(v):
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        return str(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return str(v)
mock = dbus.Interface(
    dbus.SessionBus().get_object("org.freedesktop.Notifications", "/org/freedesktop/Notifications"),
    "org.freedesktop.DBus.Mock",
)
print(json.dumps([{"method": str(m), "args": plain(a)} for _, m, a in mock.GetCalls()]))
"#;

/// Whether this machine can run these tests (skipped locally without them, failed in CI).
fn tools_available(test: &str) -> bool {
    tests::system_tool_available(test, &["dbus-run-session", "--version"])
        && tests::system_tool_available(test, &["/usr/bin/python3", "-c", "import dbusmock"])
}

/// A private session bus with the mock notification server on it; the whole process group
/// (dbus-run-session, dbus-daemon, dbusmock) is killed on drop.
struct SessionBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl SessionBus {
    fn start() -> Self {
        use std::os::unix::process::CommandExt as _;
        let dir = private_dir();
        let address_file = dir.path().join("address");
        let child = Command::new("dbus-run-session")
            .args([
                "--",
                "sh",
                "-c",
                "printf %s \"$DBUS_SESSION_BUS_ADDRESS\" > \"$1.tmp\" && mv \"$1.tmp\" \"$1\" && \
                 exec /usr/bin/python3 -m dbusmock --template notification_daemon",
                "sh",
            ])
            .arg(&address_file)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning dbus-run-session: {e}"));
        let mut bus = Self {
            child,
            address: String::new(),
            _dir: dir,
        };
        bus.address = wait_for("the session bus address", || {
            std::fs::read_to_string(&address_file)
                .ok()
                .filter(|a| !a.is_empty())
        });
        wait_for("the mock notification server", || bus.try_calls());
        bus
    }

    fn try_calls(&self) -> Option<Vec<Value>> {
        let output = Command::new("/usr/bin/python3")
            .args(["-c", GET_CALLS])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice::<Vec<Value>>(&output.stdout).ok()
    }

    /// Every call the notification server received, in order.
    fn calls(&self) -> Vec<Value> {
        self.try_calls()
            .unwrap_or_else(|| panic!("cannot read the mock's calls"))
    }

    /// The Notify calls, as objects with named fields.
    fn notifies(&self) -> Vec<Notify> {
        self.calls()
            .iter()
            .filter(|c| c["method"] == "Notify")
            .map(|c| Notify::from_args(&c["args"]))
            .collect()
    }

    /// The ids of the CloseNotification calls.
    fn closes(&self) -> Vec<u64> {
        self.calls()
            .iter()
            .filter(|c| c["method"] == "CloseNotification")
            .map(|c| c["args"][0].as_u64().unwrap_or(u64::MAX))
            .collect()
    }

    /// Waits until there are at least `n` Notify calls and returns them.
    fn wait_notifies(&self, n: usize) -> Vec<Notify> {
        wait_for(&format!("{n} Notify calls"), || {
            let notifies = self.notifies();
            (notifies.len() >= n).then_some(notifies)
        })
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// One `org.freedesktop.Notifications.Notify` call (`susssasa{sv}i`).
#[derive(Debug, Clone)]
struct Notify {
    app_name: String,
    replaces_id: u64,
    summary: String,
    body: String,
    hints: Value,
}

impl Notify {
    fn from_args(args: &Value) -> Self {
        let text = |i: usize| args[i].as_str().unwrap_or_default().to_owned();
        Self {
            app_name: text(0),
            replaces_id: args[1].as_u64().unwrap_or(u64::MAX),
            summary: text(3),
            body: text(4),
            hints: args[6].clone(),
        }
    }

    fn urgency(&self) -> Option<u64> {
        self.hints["urgency"].as_u64()
    }

    fn mentions(&self, text: &str) -> bool {
        self.summary.contains(text) || self.body.contains(text)
    }
}

/// A chat-tray process on `bus` for the daemon `daemon`, logging at trace level to a file;
/// killed on drop (and its log printed if the test failed).
struct Tray {
    child: Option<Child>,
    log: PathBuf,
}

impl Tray {
    fn start(bus: &SessionBus, daemon: &DaemonProcess, state_file: &Path, extra: &[&str]) -> Self {
        let log = state_file.with_extension(format!("log{}", std::process::id()));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
        let child = Command::new(tests::bin("chat-tray"))
            .arg("--socket")
            .arg(daemon.socket())
            .arg("--state-file")
            .arg(state_file)
            .args(extra)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            // Everything, dependencies included (zbus logs each D-Bus message at trace level),
            // so the check that no message text is logged covers them too.
            .env("RUST_LOG", "trace")
            .env_remove("CHATD_SOCKET")
            .env_remove("CHAT_TRAY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chat-tray: {e}"));
        // On a first run, chat-tray starts from the time it stores in its state file before it
        // connects: a message that arrives before that is history, not to be notified.
        wait_for("chat-tray's state file", || {
            state_file.exists().then_some(())
        });
        Self {
            child: Some(child),
            log,
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that none of `secrets` appears in its log.
    fn assert_log_omits(&self, secrets: &[&str]) {
        let log = self.log();
        assert!(!log.is_empty(), "chat-tray logged nothing at trace level");
        for secret in secrets {
            assert!(
                !log.contains(secret),
                "chat-tray logged message text {secret:?}:\n{log}"
            );
        }
    }
}

impl Drop for Tray {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("chat-tray's log:\n{}", self.log());
        }
    }
}

#[test]
fn tray_notifies_per_conversation_replaces_and_closes_when_read() {
    if !tools_available("tray_notifies_per_conversation_replaces_and_closes_when_read") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let bus = SessionBus::start();
    let dir = private_dir();

    // Before chat-tray's first run: not notified (it starts from now, not from the history).
    alice.send("bob", "before the tray numbat");
    bob.wait_incoming("alice", 1);
    // With the tray icon on (the default build): no StatusNotifierWatcher on this bus, which
    // must not get in the way of notifications.
    let tray = Tray::start(&bus, bob, &dir.path().join("state.toml"), &[]);

    alice.send("bob", "hello <b>bob</b> & quokka");
    bob.wait_incoming("alice", 2);
    let first = bus.wait_notifies(1).remove(0);
    assert_eq!(first.app_name, "chat-tray");
    assert_eq!(first.replaces_id, 0);
    assert_eq!(first.summary, "alice");
    // The mock announces body-markup, so the text is escaped. The count is chatd's unread
    // count, which includes the message from before the first run.
    assert_eq!(
        first.body,
        "hello &lt;b&gt;bob&lt;/b&gt; &amp; quokka\n2 new messages"
    );
    assert_eq!(
        first.urgency(),
        Some(1),
        "normal urgency: {:?}",
        first.hints
    );
    assert_eq!(first.hints["category"], "im.received");

    alice.send("bob", "wombat\nline");
    let notifies = bus.wait_notifies(2);
    let second = &notifies[1];
    assert_eq!(
        second.replaces_id, 1,
        "the conversation's notification is replaced"
    );
    assert_eq!(second.summary, "alice");
    assert_eq!(second.body, "wombat line\n3 new messages");

    bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    wait_for("the notification to close once read", || {
        bus.closes().contains(&1).then_some(())
    });
    assert!(
        bus.notifies()
            .iter()
            .all(|n| !n.mentions("before the tray numbat")),
        "the history before the first run was notified"
    );
    assert_eq!(bus.notifies().len(), 2, "{:#?}", bus.notifies());
    tray.assert_log_omits(&["numbat", "quokka", "wombat"]);
}

#[test]
fn tray_privacy_mode_shows_no_sender_and_no_text() {
    if !tools_available("tray_privacy_mode_shows_no_sender_and_no_text") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let bus = SessionBus::start();
    let dir = private_dir();
    let tray = Tray::start(
        &bus,
        bob,
        &dir.path().join("state.toml"),
        &["--privacy", "--no-tray-icon"],
    );

    alice.send("bob", "top secret kiwi");
    bob.wait_incoming("alice", 1);
    let first = bus.wait_notifies(1).remove(0);
    assert_eq!(first.app_name, "chat-tray");
    assert_eq!(first.replaces_id, 0);
    assert_eq!(first.summary, "New message");
    assert_eq!(first.body, "");
    assert_eq!(first.urgency(), Some(1));

    alice.send("bob", "more secrets kakapo");
    let second = bus.wait_notifies(2).remove(1);
    assert_eq!(second.replaces_id, 1);
    assert_eq!(second.summary, "2 new messages");
    assert_eq!(second.body, "");
    for notify in bus.notifies() {
        for secret in ["alice", "secret"] {
            assert!(!notify.mentions(secret), "{secret:?} shown in {notify:?}");
        }
    }
    tray.assert_log_omits(&["kiwi", "kakapo"]);
}

#[test]
fn tray_warns_of_a_key_change_with_critical_urgency() {
    if !tools_available("tray_warns_of_a_key_change_with_critical_urgency") {
        return;
    }
    // As tests/it/regressions.rs: Bob's handle is claimed by a new key.
    let relay = RelayProcess::start();
    let alice = DaemonProcess::start_with(&relay.url(), &["--handle-recheck-secs", "0"]);
    let mut bob = DaemonProcess::start(&relay.url());
    alice.create("alice");
    bob.create("bob");
    bob.call("account.register_handle", json!({ "handle": "bob" }));
    alice.add_contact("bob", "@bob");
    let hello = alice.send("bob", "hello bob");
    alice.wait_status("bob", &hello, "delivered");

    let bus = SessionBus::start();
    let dir = private_dir();
    let _tray = Tray::start(
        &bus,
        &alice,
        &dir.path().join("state.toml"),
        &["--no-tray-icon"],
    );

    tests::wait_for_next_second();
    bob.call("account.release_handle", json!({ "handle": "bob" }));
    bob.stop();
    std::fs::remove_dir_all(bob.data_dir()).unwrap_or_else(|e| panic!("wiping bob's data: {e}"));
    bob.restart();
    bob.create("bob");
    tests::wait_for_next_second();
    bob.call("account.register_handle", json!({ "handle": "bob" }));
    let refused = alice.try_call(
        "messages.send",
        json!({ "to": "bob", "text": "are you still bob?" }),
    );
    assert!(refused.is_err(), "a send to a changed key was accepted");

    let warning = wait_for("a key change notification", || {
        bus.notifies().into_iter().find(|n| n.urgency() == Some(2))
    });
    assert_eq!(warning.app_name, "chat-tray");
    assert_eq!(warning.replaces_id, 0);
    assert_eq!(warning.summary, "Safety number changed: bob");
    assert!(
        warning.body.contains("chatctl contact trust bob"),
        "{warning:?}"
    );
    assert_eq!(warning.hints["category"], "im.error");
    let notifies = bus.notifies();
    let warning_id = notifies
        .iter()
        .filter(|n| n.replaces_id == 0)
        .position(|n| n.urgency() == Some(2))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("{notifies:?}"));

    alice.call("contacts.trust", json!({ "contact": "bob" }));
    wait_for("the warning to close once the key is trusted", || {
        bus.closes().contains(&warning_id).then_some(())
    });
}

#[test]
fn tray_resumes_after_either_side_restarts_without_loss_or_repeat() {
    if !tools_available("tray_resumes_after_either_side_restarts_without_loss_or_repeat") {
        return;
    }
    let relay = shared_relay();
    let mut pair = Pair::start(&relay.url());
    let bus = SessionBus::start();
    let dir = private_dir();
    let state = dir.path().join("state.toml");
    let count = |bus: &SessionBus, text: &str| {
        bus.notifies()
            .iter()
            .filter(|n| n.body.starts_with(text))
            .count()
    };

    let mut tray = Tray::start(&bus, &pair.bob, &state, &["--no-tray-icon"]);
    pair.alice.send("bob", "one");
    bus.wait_notifies(1);
    // The cursor is stored once the notification is shown.
    wait_for("the cursor to be stored", || {
        let text = std::fs::read_to_string(&state).ok()?;
        text.contains("cursor = ").then_some(())
    });
    tray.kill();

    pair.alice.send("bob", "two");
    pair.bob.wait_incoming("alice", 2);
    let mut tray = Tray::start(&bus, &pair.bob, &state, &["--no-tray-icon"]);
    wait_for("the message received while chat-tray was away", || {
        (count(&bus, "two") > 0).then_some(())
    });

    // chatd restarts under a running chat-tray, which reconnects and resumes.
    pair.bob.restart_unlocked();
    pair.alice.send("bob", "three");
    wait_for("a message after chatd restarted", || {
        (count(&bus, "three") > 0).then_some(())
    });
    tray.kill();
    // And once more from a restart, with nothing new: nothing is shown again.
    let _tray = Tray::start(&bus, &pair.bob, &state, &["--no-tray-icon"]);
    pair.alice.send("bob", "four");
    wait_for("the sentinel", || (count(&bus, "four") > 0).then_some(()));

    for text in ["one", "two", "three", "four"] {
        assert_eq!(
            count(&bus, text),
            1,
            "{text:?} notified other than once: {:#?}",
            bus.notifies()
        );
    }
    assert_eq!(bus.notifies().len(), 4, "{:#?}", bus.notifies());
}

#[test]
fn tray_hides_messages_when_locked_and_notifies_again_after_unlock() {
    if !tools_available("tray_hides_messages_when_locked_and_notifies_again_after_unlock") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let bus = SessionBus::start();
    let dir = private_dir();
    let tray = Tray::start(
        &bus,
        bob,
        &dir.path().join("state.toml"),
        &["--no-tray-icon"],
    );

    alice.send("bob", "visible platypus");
    bus.wait_notifies(1);
    bob.call("account.lock", json!({}));
    wait_for("the message notification to close on lock", || {
        bus.closes().contains(&1).then_some(())
    });

    // Locked: no relay connection; the message waits on the relay until the unlock.
    alice.send("bob", "while locked echidna");
    bob.unlock();
    let after = wait_for("a notification after the unlock", || {
        bus.notifies()
            .into_iter()
            .find(|n| n.mentions("while locked echidna"))
    });
    assert_eq!(
        after.replaces_id, 0,
        "the closed notification is not reused"
    );
    assert_eq!(after.summary, "alice");
    assert_eq!(after.body, "while locked echidna\n2 new messages");
    assert_eq!(bus.notifies().len(), 2, "{:#?}", bus.notifies());
    tray.assert_log_omits(&["platypus", "echidna"]);
}
