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
import json, sys, dbus
# Asking a name nobody owns yet would start the installed notification server (xfce4-notifyd,
# by D-Bus activation) in the mock's place.
if not dbus.SessionBus().name_has_owner("org.freedesktop.Notifications"):
    sys.exit(1)
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
pub(crate) struct Tray {
    child: Option<Child>,
    log: PathBuf,
}

impl Tray {
    fn start(bus: &SessionBus, daemon: &DaemonProcess, state_file: &Path, extra: &[&str]) -> Self {
        Self::start_on(&bus.address, daemon, state_file, extra, &[])
    }

    /// As [`Tray::start`], on the bus at `address`, with `env` set on top.
    pub(crate) fn start_on(
        address: &str,
        daemon: &DaemonProcess,
        state_file: &Path,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
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
            .env("DBUS_SESSION_BUS_ADDRESS", address)
            .envs(env.iter().copied())
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

    /// Sends `signal` (`-TERM`, ...) and returns how chat-tray exited.
    pub(crate) fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("chat-tray is not running");
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill {signal} failed");
        let exited = wait_for("chat-tray to exit", || child.try_wait().ok().flatten());
        self.child = Some(child);
        exited
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything it logged so far.
    pub(crate) fn log(&self) -> String {
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

/// Reads chat-tray's StatusNotifierItem (the first `org.kde.StatusNotifierItem-*` name on the
/// bus) and prints its properties as JSON, pixmaps as `[width, height, hex ARGB]`; with the
/// argument `activate`, calls its `Activate` (a left click) instead and prints `null`.
const SNI: &str = r#"
import json, sys, dbus
bus = dbus.SessionBus()
names = [n for n in bus.list_names() if str(n).startswith("org.kde.StatusNotifierItem-")]
if not names:
    sys.exit(3)
item = bus.get_object(names[0], "/StatusNotifierItem")
interface = "org.kde.StatusNotifierItem"
if sys.argv[1:] == ["activate"]:
    dbus.Interface(item, interface).Activate(0, 0)
    print("null")
    sys.exit(0)
props = dbus.Interface(item, "org.freedesktop.DBus.Properties").GetAll(interface)
def pixmaps(value):
    return [[int(w), int(h), bytes(bytearray(data)).hex()] for w, h, data in value]
print(json.dumps({
    "IconName": str(props["IconName"]),
    "Status": str(props["Status"]),
    "Title": str(props["Title"]),
    "IconPixmap": pixmaps(props["IconPixmap"]),
    "AttentionIconName": str(props["AttentionIconName"]),
    "AttentionIconPixmap": pixmaps(props["AttentionIconPixmap"]),
    "OverlayIconPixmap": pixmaps(props["OverlayIconPixmap"]),
}))
"#;

/// Runs [`SNI`] on the bus at `address`; `None` while there is no item (or it does not answer).
fn sni(address: &str, args: &[&str]) -> Option<Value> {
    let output = Command::new("/usr/bin/python3")
        .args(["-c", SNI])
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// One of the item's pixmaps, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pixmap {
    size: usize,
    argb: Vec<u8>,
}

impl Pixmap {
    fn from_json(value: &Value) -> Self {
        let width = value[0].as_u64().unwrap_or(0) as usize;
        let height = value[1].as_u64().unwrap_or(0) as usize;
        assert_eq!(width, height, "a pixmap that is not square: {value}");
        let hex = value[2].as_str().unwrap_or_default();
        let argb: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        assert_eq!(
            argb.len(),
            width * height * 4,
            "a pixmap of the wrong length"
        );
        Self { size: width, argb }
    }

    /// The pixel at `(x, y)` as RGB, with its alpha.
    fn rgba(&self, x: usize, y: usize) -> ([u8; 3], u8) {
        let at = (y * self.size + x) * 4;
        let p = &self.argb[at..at + 4];
        ([p[1], p[2], p[3]], p[0])
    }
}

/// The badge's red and the digits' white in chat-tray's icon (tray/src/pixmap.rs): what a
/// screen must show for the count to be seen.
pub(crate) const BADGE_RGB: [u8; 3] = [0xd0, 0x20, 0x20];
pub(crate) const DIGIT_RGB: [u8; 3] = [0xff, 0xff, 0xff];

/// The 3x5 font of the count, as the test reads it back (independent of tray/src/pixmap.rs:
/// this is what a person would recognise), `+` last.
const FONT: [(char, [&str; 5]); 11] = [
    ('0', ["###", "#.#", "#.#", "#.#", "###"]),
    ('1', [".#.", "##.", ".#.", ".#.", "###"]),
    ('2', ["###", "..#", "###", "#..", "###"]),
    ('3', ["###", "..#", "###", "..#", "###"]),
    ('4', ["#.#", "#.#", "###", "..#", "..#"]),
    ('5', ["###", "#..", "###", "..#", "###"]),
    ('6', ["###", "#..", "###", "#.#", "###"]),
    ('7', ["###", "..#", ".#.", ".#.", ".#."]),
    ('8', ["###", "#.#", "###", "#.#", "###"]),
    ('9', ["###", "#.#", "###", "..#", "###"]),
    ('+', ["...", ".#.", "###", ".#.", "..."]),
];

/// Reads the count drawn in a region of an image: `pixel(x, y)` gives RGB for `x < width`,
/// `y < height`. The digits are the white pixels within the rectangle the badge's red spans
/// (there is one badge in the region); their height gives the scale (5 rows of the font), the
/// columns without white split them into glyphs, 3 scaled pixels wide, and each 3x5 cell is
/// matched against [`FONT`]. The count must be sharp: every pixel of the digits' rectangle and
/// of a one-pixel frame around it is exactly the badge's red or the digits' white (the frame:
/// the red), and every scaled pixel is one colour; a badge scaled with smoothing has colours in
/// between and does not read. `None` when there are no digits, or they do not read as the font.
pub(crate) fn read_count(
    width: usize,
    height: usize,
    pixel: impl Fn(usize, usize) -> [u8; 3],
) -> Option<String> {
    let red: Vec<(usize, usize)> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| pixel(x, y) == BADGE_RGB)
        .collect();
    let (red_left, red_right) = (
        red.iter().map(|p| p.0).min()?,
        red.iter().map(|p| p.0).max()?,
    );
    let (red_top, red_bottom) = (
        red.iter().map(|p| p.1).min()?,
        red.iter().map(|p| p.1).max()?,
    );
    let lit = |x: usize, y: usize| pixel(x, y) == DIGIT_RGB;
    let white: Vec<(usize, usize)> = (red_top..=red_bottom)
        .flat_map(|y| (red_left..=red_right).map(move |x| (x, y)))
        .filter(|&(x, y)| lit(x, y))
        .collect();
    let x0 = white.iter().map(|p| p.0).min()?;
    let x1 = white.iter().map(|p| p.0).max()?;
    let y0 = white.iter().map(|p| p.1).min()?;
    let y1 = white.iter().map(|p| p.1).max()?;
    // The frame must be inside the image and the badge.
    if x0 <= red_left || y0 <= red_top || x1 >= red_right || y1 >= red_bottom {
        return None;
    }
    for y in y0 - 1..=y1 + 1 {
        for x in x0 - 1..=x1 + 1 {
            let frame = x < x0 || x > x1 || y < y0 || y > y1;
            let p = pixel(x, y);
            if p != BADGE_RGB && (frame || p != DIGIT_RGB) {
                return None;
            }
        }
    }
    let rows = y1 - y0 + 1;
    if rows % 5 != 0 {
        return None;
    }
    let scale = rows / 5;
    let inked = |x: usize| (y0..=y1).any(|y| lit(x, y));
    let mut text = String::new();
    let mut x = x0;
    while x <= x1 {
        if !inked(x) {
            x += 1;
            continue;
        }
        let left = x;
        while x <= x1 && inked(x) {
            x += 1;
        }
        if x - left != 3 * scale {
            return None;
        }
        let mut shape = Vec::new();
        for row in 0..5 {
            let mut line = String::new();
            for column in 0..3 {
                let (bx, by) = (left + column * scale, y0 + row * scale);
                let on = lit(bx, by);
                let solid = (0..scale).all(|dy| (0..scale).all(|dx| lit(bx + dx, by + dy) == on));
                if !solid {
                    return None;
                }
                line.push(if on { '#' } else { '.' });
            }
            shape.push(line);
        }
        let (c, _) = FONT.iter().find(|(_, rows)| rows.iter().eq(shape.iter()))?;
        text.push(*c);
    }
    Some(text)
}

/// A badge as [`read_count`] expects it, drawn with [`FONT`] at `scale` on a black square of
/// `size` pixels: `text` in white on red, `gap` columns between glyphs, a margin of `margin`,
/// at the bottom-right.
fn draw_badge(
    size: usize,
    text: &str,
    (scale, gap, margin): (usize, usize, usize),
) -> Vec<[u8; 3]> {
    let mut image = vec![[0, 0, 0]; size * size];
    let chars = text.chars().count();
    let (w, h) = (
        chars * (3 * scale + gap) - gap + 2 * margin,
        5 * scale + 2 * margin,
    );
    let (left, top) = (size - w, size - h);
    for y in top..size {
        for x in left..size {
            image[y * size + x] = BADGE_RGB;
        }
    }
    for (i, c) in text.chars().enumerate() {
        let (_, rows) = FONT
            .iter()
            .find(|(f, _)| *f == c)
            .unwrap_or_else(|| panic!("{c}"));
        for (row, line) in rows.iter().enumerate() {
            for (column, dot) in line.chars().enumerate() {
                if dot != '#' {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let x = left + margin + i * (3 * scale + gap) + column * scale + dx;
                        let y = top + margin + row * scale + dy;
                        image[y * size + x] = DIGIT_RGB;
                    }
                }
            }
        }
    }
    image
}

/// `image` (a square of `from` pixels) shrunk to `to` pixels by averaging the area each new
/// pixel covers, as GdkPixbuf's bilinear filter shrinks (xfce4-panel's systray uses it).
fn shrink(image: &[[u8; 3]], from: usize, to: usize) -> Vec<[u8; 3]> {
    let ratio = from as f64 / to as f64;
    let span = |i: usize| (i as f64 * ratio, (i + 1) as f64 * ratio);
    let mut out = Vec::with_capacity(to * to);
    for y in 0..to {
        for x in 0..to {
            let ((ya, yb), (xa, xb)) = (span(y), span(x));
            let mut sum = [0.0f64; 3];
            for sy in ya.floor() as usize..(yb.ceil() as usize).min(from) {
                let wy = (yb.min(sy as f64 + 1.0) - ya.max(sy as f64)).max(0.0);
                for sx in xa.floor() as usize..(xb.ceil() as usize).min(from) {
                    let wx = (xb.min(sx as f64 + 1.0) - xa.max(sx as f64)).max(0.0);
                    for (s, v) in sum.iter_mut().zip(image[sy * from + sx]) {
                        *s += wx * wy * f64::from(v);
                    }
                }
            }
            out.push(sum.map(|s| (s / (ratio * ratio)).round() as u8));
        }
    }
    out
}

#[test]
fn read_count_reads_sharp_badges_and_refuses_blurred_ones() {
    let read = |image: &[[u8; 3]], size: usize| read_count(size, size, |x, y| image[y * size + x]);
    // Sharp, at every scale chat-tray draws: the count reads, and a wrong digit reads as itself.
    for (text, layout, size) in [
        ("3", (2, 2, 2), 22),
        ("8", (2, 2, 2), 22),
        ("42", (2, 2, 2), 22),
        ("99+", (2, 1, 1), 22),
        ("3", (4, 4, 4), 44),
        ("99+", (1, 1, 1), 16),
    ] {
        assert_eq!(
            read(&draw_badge(size, text, layout), size).as_deref(),
            Some(text)
        );
    }
    // Halved in step with its pixels (xfce4-panel at 22 with chat-tray's 44-pixel icon), a
    // badge is still sharp.
    let halved = shrink(&draw_badge(44, "3", (4, 4, 4)), 44, 22);
    assert_eq!(read(&halved, 22).as_deref(), Some("3"));
    // Shrunk by other factors (48 or 32 pixels to 22, as xfce4-panel did with chat-tray's
    // former 48-pixel icon), the digits blur: neither the right count nor a wrong digit reads
    // as the count, nor as anything.
    for (from, scale) in [(48, 4), (32, 2), (44, 3)] {
        for text in ["3", "8", "9"] {
            let blurred = shrink(&draw_badge(from, text, (scale, scale, scale)), from, 22);
            assert_eq!(read(&blurred, 22), None, "{text} from {from} pixels");
        }
    }
    // One pixel of another colour inside the digits' rectangle: no reading.
    let mut smudged = draw_badge(22, "8", (2, 2, 2));
    let at = smudged.iter().position(|p| *p == DIGIT_RGB).unwrap_or(0);
    smudged[at + 22] = [0xe8, 0x90, 0x90];
    assert_eq!(read(&smudged, 22), None);
}

fn read_pixmap(pixmap: &Pixmap) -> Option<String> {
    read_count(pixmap.size, pixmap.size, |x, y| {
        let (rgb, alpha) = pixmap.rgba(x, y);
        if alpha == 0xff { rgb } else { [0, 0, 0] }
    })
}

fn has_badge(pixmap: &Pixmap) -> bool {
    (0..pixmap.size).any(|y| (0..pixmap.size).any(|x| pixmap.rgba(x, y) == (BADGE_RGB, 0xff)))
}

#[test]
fn tray_icon_draws_the_unread_count_into_its_pixmaps() {
    if !tools_available("tray_icon_draws_the_unread_count_into_its_pixmaps") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let bus = SessionBus::start();
    let dir = private_dir();
    let _tray = Tray::start(&bus, bob, &dir.path().join("state.toml"), &[]);
    let item = |what: &str, ok: &dyn Fn(&Value) -> bool| {
        wait_for(what, || sni(&bus.address, &[]).filter(|item| ok(item)))
    };
    let pixmaps = |item: &Value, key: &str| -> Vec<Pixmap> {
        item[key]
            .as_array()
            .map(|list| list.iter().map(Pixmap::from_json).collect())
            .unwrap_or_default()
    };

    // Nothing unread: the themed icon, and an envelope without a badge as its pixmaps.
    let idle = item("the item with nothing unread", &|i| {
        i["IconName"] == "mail-read"
    });
    assert_eq!(idle["Status"], "Active");
    let plain = pixmaps(&idle, "IconPixmap");
    let sizes: Vec<usize> = plain.iter().map(|p| p.size).collect();
    assert_eq!(sizes, [16, 22, 24, 32, 44]);
    assert!(
        plain
            .iter()
            .all(|p| !has_badge(p) && read_pixmap(p).is_none())
    );

    alice.send("bob", "one");
    alice.send("bob", "two");
    bob.wait_incoming("alice", 2);
    let unread = item("the count in the icon", &|i| {
        pixmaps(i, "IconPixmap")
            .first()
            .is_some_and(|p| read_pixmap(p).as_deref() == Some("2"))
    });
    // No themed name while something is unread (hosts prefer a name to pixmaps), the count
    // at every size, the same as the attention icon, and no overlay to draw it twice.
    assert_eq!(unread["IconName"], "");
    assert_eq!(unread["AttentionIconName"], "");
    assert_eq!(unread["Status"], "NeedsAttention");
    assert_eq!(unread["Title"], "chat: 2 unread messages");
    let counted = pixmaps(&unread, "IconPixmap");
    for pixmap in &counted {
        assert_eq!(
            read_pixmap(pixmap).as_deref(),
            Some("2"),
            "at {}",
            pixmap.size
        );
    }
    assert_eq!(pixmaps(&unread, "AttentionIconPixmap"), counted);
    assert!(pixmaps(&unread, "OverlayIconPixmap").is_empty());

    bob.call("messages.mark_read", json!({ "conversation": "alice" }));
    let read = item("the badge to go once read", &|i| {
        i["IconName"] == "mail-read"
    });
    assert_eq!(pixmaps(&read, "IconPixmap"), plain);
    bob.call("account.lock", json!({}));
    let locked = item("the locked icon", &|i| i["IconName"] == "changes-prevent");
    assert!(pixmaps(&locked, "IconPixmap").iter().all(|p| !has_badge(p)));
    assert_ne!(
        pixmaps(&locked, "IconPixmap"),
        plain,
        "locked looks like unlocked"
    );
}

#[test]
fn tray_open_chatctl_without_a_terminal_says_so_in_a_notification() {
    if !tools_available("tray_open_chatctl_without_a_terminal_says_so_in_a_notification") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let bus = SessionBus::start();
    let dir = private_dir();
    // A PATH with no terminal emulator on it (and nothing else).
    let empty = private_dir();
    let _tray = Tray::start_on(
        &bus.address,
        &pair.bob,
        &dir.path().join("state.toml"),
        &[],
        &[("PATH", empty.path().as_os_str())],
    );
    wait_for("the tray item", || sni(&bus.address, &["activate"]));
    let notice = bus.wait_notifies(1).remove(0);
    assert_eq!(notice.app_name, "chat-tray");
    assert_eq!(notice.summary, "No terminal to open chatctl in");
    assert!(notice.body.contains("no terminal emulator"), "{notice:?}");
    let run = format!(
        "In a terminal, run: CHATD_SOCKET={} chatctl conversations",
        pair.bob.socket().display()
    );
    assert!(notice.body.contains(&run), "{notice:?}");
    assert_eq!(notice.urgency(), Some(1));

    // Asked again: the same notification is replaced, not stacked.
    sni(&bus.address, &["activate"]).unwrap_or_else(|| panic!("cannot activate the item"));
    let again = bus.wait_notifies(2).remove(1);
    assert_eq!(again.replaces_id, 1);
    assert_eq!(again.summary, notice.summary);

    // A terminal command of the user's own that cannot start says which and why.
    let bus = SessionBus::start();
    let _tray = Tray::start(
        &bus,
        &pair.bob,
        &dir.path().join("state2.toml"),
        &["--terminal", "/nonexistent/my-term -e chatctl"],
    );
    wait_for("the tray item", || sni(&bus.address, &["activate"]));
    let notice = bus.wait_notifies(1).remove(0);
    assert_eq!(notice.summary, "Cannot open a terminal");
    assert!(
        notice.body.starts_with("/nonexistent/my-term: "),
        "{notice:?}"
    );
    assert!(notice.body.contains("tray.toml"), "{notice:?}");
}

#[test]
fn tray_closes_its_notifications_and_exits_0_on_sigterm_sigint_and_sighup() {
    if !tools_available("tray_closes_its_notifications_and_exits_0_on_sigterm_sigint_and_sighup") {
        return;
    }
    let relay = shared_relay();
    let pair = Pair::start(&relay.url());
    let (alice, bob) = (&pair.alice, &pair.bob);
    let bus = SessionBus::start();
    let dir = private_dir();
    let state = dir.path().join("state.toml");
    let empty = private_dir();
    let path = [("PATH", empty.path().as_os_str())];

    // Two notifications open: a conversation's, and the menu's "no terminal".
    let mut tray = Tray::start_on(&bus.address, bob, &state, &[], &path);
    alice.send("bob", "first");
    bus.wait_notifies(1);
    wait_for("the tray item", || sni(&bus.address, &["activate"]));
    bus.wait_notifies(2);
    assert!(bus.closes().is_empty());
    let status = tray.stop_with("-TERM");
    assert!(
        status.success(),
        "chat-tray exited with {status} on SIGTERM"
    );
    let mut closed = bus.closes();
    closed.sort_unstable();
    assert_eq!(closed, [1, 2], "{:#?}", bus.calls());
    assert!(tray.log().contains("SIGTERM"), "{}", tray.log());
    // Its item left the bus with it.
    assert!(sni(&bus.address, &[]).is_none());

    for (n, signal) in [(3u64, "-INT"), (4, "-HUP")] {
        let mut tray = Tray::start_on(&bus.address, bob, &state, &[], &path);
        alice.send("bob", &format!("message {n}"));
        let shown = bus.wait_notifies(n as usize);
        assert!(
            shown
                .last()
                .is_some_and(|s| s.body.starts_with(&format!("message {n}")))
        );
        let status = tray.stop_with(signal);
        assert!(
            status.success(),
            "chat-tray exited with {status} on {signal}"
        );
        assert!(bus.closes().contains(&n), "{signal}: {:#?}", bus.calls());
    }
}
