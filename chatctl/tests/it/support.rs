//! Running chatctl, and a fake chatd: a thread serving a few methods on a Unix socket in a
//! temporary directory, one JSON message per line, as the real daemon does.
//!
//! The fake stands in only until the `tests/` crate runs the real daemon. It answers
//! `daemon.status`, `events.subscribe`, `messages.send`, `messages.history` and `contacts.get`, records every
//! request, and pushes `events.event` notifications as described on [`FakeDaemon`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use api::events::{Event, EventKind, NOTIFICATION};
use api::types::{
    ConnectionState, Contact, ContactDetails, DaemonStatus, Direction, HistoryPage, LockState,
    Message, MessageStatus, SentMessage, Trust,
};
use serde_json::{Value, json};

/// The id the fake gives every sent message.
pub const MESSAGE_ID: &str = "5e11d0000000000000000000000000aa";
/// The id of a message that is not the one sent.
pub const OTHER_ID: &str = "0ther000000000000000000000000000";
/// The `since` cursor that makes `events.subscribe` wait for [`FakeDaemon::open_gate`].
pub const GATED_SINCE: u64 = 7;
/// A time in the fake's results: 2026-03-14 15:09:26 UTC.
pub const T: u64 = 1_773_500_966_535;

/// A fake chatd.
///
/// - `messages.send` to `nobody` fails with `not_found`. To anyone else it returns a pending
///   message [`MESSAGE_ID`]; when the connection subscribed, it first pushes `sent` for it
///   (before the response, as a real daemon may), then, after the response, `delivered` for
///   another message, `delivered` for this one on another subscription, and `delivered` for
///   this one. To `doomed` it pushes `failed` instead. It never reaches `read`.
/// - `events.subscribe` with a `since` pushes three events (one of a kind chatctl does not
///   know) and closes the connection, as a daemon that goes away; with `since` =
///   [`GATED_SINCE`] it first waits for [`FakeDaemon::open_gate`] and then keeps the
///   connection open until the client leaves.
#[derive(Debug)]
pub struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Value>>>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl FakeDaemon {
    /// Starts serving on a socket in a new temporary directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // chatctl talks only to a socket in a directory closed to other users.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap_or_else(|e| panic!("chmod: {e}"));
        let socket = dir.path().join("chatd.sock");
        let listener = UnixListener::bind(&socket).unwrap_or_else(|e| panic!("bind: {e}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (shared_requests, shared_gate) = (requests.clone(), gate.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (requests, gate) = (shared_requests.clone(), shared_gate.clone());
                thread::spawn(move || serve(stream, &requests, &gate));
            }
        });
        Self {
            _dir: dir,
            socket,
            requests,
            gate,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap_or_else(|e| panic!("poisoned: {e}"))
            .clone()
    }

    /// Lets a gated subscription push its events.
    pub fn open_gate(&self) {
        let (open, changed) = &*self.gate;
        *open.lock().unwrap_or_else(|e| panic!("poisoned: {e}")) = true;
        changed.notify_all();
    }

    /// chatctl with `--no-autostart --socket` this fake and `args`.
    pub fn chatctl(&self, args: &[&str]) -> Command {
        let mut command = chatctl(&["--no-autostart", "--socket"]);
        command.arg(&self.socket).args(args);
        command
    }
}

fn serve(stream: UnixStream, requests: &Mutex<Vec<Value>>, gate: &(Mutex<bool>, Condvar)) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut subscription: Option<Value> = None;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            return;
        };
        requests
            .lock()
            .unwrap_or_else(|e| panic!("poisoned: {e}"))
            .push(request.clone());
        let id = request["id"].clone();
        let params = &request["params"];
        let mut send = |message: Value| {
            let mut line = message.to_string();
            line.push('\n');
            writer.write_all(line.as_bytes()).is_ok()
        };
        let ok = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
        match request["method"].as_str().unwrap_or_default() {
            "daemon.status" => {
                let mut status = serde_json::to_value(status()).unwrap_or_default();
                status["future_field"] = json!("kept");
                send(ok(status));
            }
            "events.subscribe" => {
                let sub = json!("sub-1");
                subscription = Some(sub.clone());
                send(ok(sub.clone()));
                match params["since"].as_u64() {
                    None => {}
                    Some(GATED_SINCE) => {
                        let (open, changed) = gate;
                        let mut open = open.lock().unwrap_or_else(|e| panic!("poisoned: {e}"));
                        while !*open {
                            open = changed
                                .wait(open)
                                .unwrap_or_else(|e| panic!("poisoned: {e}"));
                        }
                        drop(open);
                        // Pushes until the client is gone.
                        while send(notification(&sub, event(relay_event()))) {
                            thread::sleep(std::time::Duration::from_millis(5));
                        }
                        return;
                    }
                    Some(_) => {
                        send(notification(&sub, event(received("hello from bob"))));
                        send(notification(&sub, event(relay_event())));
                        send(notification(
                            &sub,
                            json!({"cursor": 3, "time_ms": T, "kind": "group.created", "group": "g"}),
                        ));
                        return;
                    }
                }
            }
            "messages.send" => {
                let to = params["to"].as_str().unwrap_or_default().to_owned();
                if to == "nobody" {
                    send(json!({"jsonrpc": "2.0", "id": id, "error": {
                        "code": 1010, "message": "no contact named nobody",
                        "data": {"kind": "not_found"}}}));
                    continue;
                }
                let sent = SentMessage {
                    message_id: MESSAGE_ID.to_owned(),
                    conversation: to.clone(),
                    timestamp_ms: T,
                    status: MessageStatus::Pending,
                };
                let Some(sub) = subscription.clone() else {
                    send(ok(serde_json::to_value(sent).unwrap_or_default()));
                    continue;
                };
                if to == "doomed" {
                    send(ok(serde_json::to_value(sent).unwrap_or_default()));
                    send(notification(
                        &sub,
                        status_event(MESSAGE_ID, MessageStatus::Failed),
                    ));
                    continue;
                }
                send(notification(
                    &sub,
                    status_event(MESSAGE_ID, MessageStatus::Sent),
                ));
                send(ok(serde_json::to_value(sent).unwrap_or_default()));
                send(notification(
                    &sub,
                    status_event(OTHER_ID, MessageStatus::Delivered),
                ));
                send(notification(
                    &json!("sub-other"),
                    status_event(MESSAGE_ID, MessageStatus::Delivered),
                ));
                send(notification(
                    &sub,
                    status_event(MESSAGE_ID, MessageStatus::Delivered),
                ));
            }
            "contacts.get" => {
                let number =
                    "01234567890123456789012345678901234567890123456789012345678901234567890";
                let number = &number[..60];
                let details = ContactDetails {
                    contact: Contact {
                        alias: "bob".to_owned(),
                        address: "chat1bob".to_owned(),
                        handle: None,
                        display_name: Some("Bob".to_owned()),
                        trust: Trust::Unverified,
                        added_at_ms: T,
                        blocked: false,
                        request: false,
                        invite_refused: None,
                    },
                    safety_number: number.to_owned(),
                    safety_number_groups: (0..12)
                        .map(|i| number[i * 5..i * 5 + 5].to_owned())
                        .collect(),
                    safety_qr: "c0ffee".repeat(10),
                    devices: vec![1],
                    key_change: None,
                };
                send(ok(serde_json::to_value(details).unwrap_or_default()));
            }
            "messages.history" => {
                let mut mine = message("see you at 8", Direction::Outgoing);
                mine.status = Some(MessageStatus::Delivered);
                let page = HistoryPage {
                    messages: vec![message("dinner?", Direction::Incoming), mine],
                    next_before: Some("cursor-41".to_owned()),
                };
                send(ok(serde_json::to_value(page).unwrap_or_default()));
            }
            other => {
                send(json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": -32601, "message": format!("method not found: {other}")}}));
            }
        }
    }
}

fn status() -> DaemonStatus {
    DaemonStatus {
        version: "0.1.0".to_owned(),
        api_version: api::API_VERSION.to_owned(),
        pid: 4242,
        uptime_ms: 65_000,
        state: LockState::Unlocked,
        ephemeral: false,
        relay_url: Some("ws://127.0.0.1:9/v1".to_owned()),
        connection: ConnectionState::Connected,
        address: Some("chat1fakeaddress".to_owned()),
        outbox: Some(0),
        hosted_relay: None,
        other_relays: Vec::new(),
        passphrase_protected: Some(true),
        store_error: None,
        last_relay_error: None,
        log_file: None,
        relay_kind: None,
        local_relay: None,
    }
}

fn message(text: &str, direction: Direction) -> Message {
    Message {
        message_id: OTHER_ID.to_owned(),
        conversation: "bob".to_owned(),
        direction,
        text: text.to_owned(),
        timestamp_ms: T,
        stored_at_ms: T,
        status: None,
        failure: None,
        read: None,
    }
}

fn received(text: &str) -> EventKind {
    EventKind::MessageReceived {
        message: message(text, Direction::Incoming),
        sender_name: None,
        from_changed_key: false,
        from_request: false,
    }
}

fn relay_event() -> EventKind {
    EventKind::RelayConnection {
        state: ConnectionState::Connected,
        relay_url: "ws://127.0.0.1:9/v1".to_owned(),
        error: None,
    }
}

fn status_event(message_id: &str, status: MessageStatus) -> Value {
    event(EventKind::MessageStatus {
        message_id: message_id.to_owned(),
        conversation: "bob".to_owned(),
        status,
        failure: (status == MessageStatus::Failed).then(|| "no devices".to_owned()),
    })
}

fn event(kind: EventKind) -> Value {
    serde_json::to_value(Event {
        cursor: 1,
        time_ms: T,
        kind,
    })
    .unwrap_or_default()
}

fn notification(subscription: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": NOTIFICATION,
           "params": {"subscription": subscription, "result": result}})
}

/// The chatctl binary with `args`, with no autostart configuration from the environment.
pub fn chatctl(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatctl"));
    command
        .args(args)
        .env_remove("CHATD_SOCKET")
        .env_remove("CHATD_BIN")
        .env_remove("CHATCTL_CHATD_ARGS")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to the end, with `input` on stdin.
pub fn run(mut command: Command, input: Option<&str>) -> Output {
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child: Child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chatctl: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("stdin: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("chatctl: {e}"))
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code, with stdout and stderr in the message when it is not `expected`.
pub fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}
