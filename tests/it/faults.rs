//! Faults of the disk under a running conversation: the recipient's data directory on a real
//! 20 MiB tmpfs that fills up while messages arrive (with and without restarts, and a start
//! while it is full), and a store damaged after SIGKILL (bytes flipped in sled's files), which
//! chatd must refuse rather than start on with acknowledged messages gone.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use api::client::{Client, ClientError};
use api::methods as m;
use serde_json::json;
use tests::{DaemonProcess, Pair, RelayProcess, bin, wait_for};

/// A tmpfs mounted over a directory, unmounted when dropped (even if the test panics).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` over `path`, keeping what `path` held (copied in).
    fn mount_over(path: &Path, size: &str) -> Self {
        let saved = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("cp").arg("-a").arg(path).arg(saved.path()));
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path));
        let mount = Tmpfs {
            path: path.to_path_buf(),
        };
        let name = path.file_name().unwrap_or_default();
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", saved.path().join(name).display()))
            .arg(path));
        mount
    }

    /// Fills the file system up with a file until it refuses to write more.
    fn fill(&self) -> u64 {
        let mut file = std::fs::File::create(self.filler()).unwrap_or_else(|e| panic!("{e}"));
        let block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap_or_else(|e| panic!("{e}"));
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(status.success(), "{command:?}: {status}");
}

/// Whether this test can mount a file system: as root it can. Not root: skipped, unless
/// `CHATD_REQUIRE_SYSTEM_TOOLS` is set, when it fails.
fn can_mount(test: &str) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if root {
        return true;
    }
    assert!(
        std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_none(),
        "{test}: needs root to mount a tmpfs, and CHATD_REQUIRE_SYSTEM_TOOLS is set"
    );
    eprintln!("{test}: SKIPPED: needs root to mount a tmpfs");
    false
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i}")).collect()
}

/// Every incoming text of `conversation`, in order.
fn incoming_texts(daemon: &DaemonProcess, conversation: &str) -> Vec<String> {
    tests::message_texts(&daemon.messages_in(conversation, "incoming"))
}

/// Waits until `daemon` shows exactly `expected` from `conversation` (each once, in order).
fn wait_exactly(daemon: &DaemonProcess, conversation: &str, expected: &[String]) {
    wait_for(
        &format!("{} messages in {conversation}", expected.len()),
        || {
            let got = incoming_texts(daemon, conversation);
            assert!(
                got.len() <= expected.len(),
                "more messages than sent (a repeat?): {got:?}"
            );
            (got == expected).then_some(())
        },
    );
}

fn wait_store_error(daemon: &DaemonProcess) -> String {
    wait_for("daemon.status to report the store's failure", || {
        let status = daemon.call(m::DAEMON_STATUS, json!({}));
        status["store_error"].as_str().map(str::to_owned)
    })
}

/// A write refused while the disk is full is answered with a truthful `store_error`.
fn assert_send_refused(daemon: &DaemonProcess, to: &str) {
    match daemon.try_call(m::MESSAGES_SEND, json!({ "to": to, "text": "while full" })) {
        Err(ClientError::Rpc(error)) => {
            assert_eq!(error.code, 1030, "{error:?}");
            assert!(
                error.message.starts_with("the store could not write")
                    && error.message.contains("nothing of this request was kept"),
                "{}",
                error.message
            );
        }
        other => panic!("a send while the disk is full: {other:?}"),
    }
}

#[test]
fn a_full_disk_loses_nothing_and_the_conversation_goes_on() {
    if !can_mount("a_full_disk_loses_nothing_and_the_conversation_goes_on") {
        return;
    }
    let relay = RelayProcess::start();
    let mut pair = Pair::start(&relay.url());
    pair.bob.stop();
    let disk = Tmpfs::mount_over(&pair.bob.data_dir(), "20m");
    pair.bob.restart_unlocked();
    let mut expected = texts("before", 3);
    pair.alice.send_one_by_one("bob", &expected);
    wait_exactly(&pair.bob, "alice", &expected);

    // Full without a restart: nothing is stored, nothing is acknowledged, the failure is
    // reported; once there is room again, everything arrives, once.
    assert!(disk.fill() > 0);
    let while_full = texts("while full", 5);
    for text in &while_full {
        pair.alice.send("bob", text);
    }
    let error = wait_store_error(&pair.bob);
    assert!(error.contains("full"), "{error}");
    assert_send_refused(&pair.bob, "alice");
    disk.free();
    expected.extend(while_full);
    wait_exactly(&pair.bob, "alice", &expected);
    let reply = pair.bob.send("alice", "reply after the disk was full");
    pair.bob.wait_status("alice", &reply, "delivered");
    assert_eq!(
        pair.bob.call(m::DAEMON_STATUS, json!({}))["store_error"],
        serde_json::Value::Null
    );

    // Full again, killed, started while full, killed again, then started with room.
    assert!(disk.fill() > 0);
    let while_full = texts("full again", 5);
    for text in &while_full {
        pair.alice.send("bob", text);
    }
    wait_store_error(&pair.bob);
    pair.bob.kill();
    start_and_kill(&pair.bob);
    disk.free();
    pair.bob.restart_unlocked();
    expected.extend(while_full);
    wait_exactly(&pair.bob, "alice", &expected);
    let after = texts("after", 3);
    pair.alice.send_one_by_one("bob", &after);
    expected.extend(after);
    wait_exactly(&pair.bob, "alice", &expected);
    let replies = texts("bob again", 3);
    pair.bob.send_one_by_one("alice", &replies);
    wait_for("alice to get bob's replies", || {
        let got = incoming_texts(&pair.alice, "bob");
        got.ends_with(&replies).then_some(())
    });
    let outgoing = pair.bob.messages_in("alice", "outgoing");
    assert_eq!(
        tests::message_texts(&outgoing),
        [vec!["reply after the disk was full".to_owned()], replies].concat(),
        "no refused send was kept"
    );
    drop(disk);
}

/// Starts `daemon`'s chatd on its data while it is stopped (the disk full), waits until it
/// serves or exits, and kills it.
fn start_and_kill(daemon: &DaemonProcess) {
    let mut child = spawn_chatd(&daemon.args());
    let socket = daemon.socket();
    wait_for("chatd to serve or to give up on a full disk", || {
        if Client::connect(&socket).is_ok() {
            return Some(());
        }
        child.try_wait().ok().flatten().map(|_| ())
    });
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn_chatd(args: &[String]) -> Child {
    Command::new(bin("chatd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CHATD_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning chatd: {e}"))
}

/// What a chatd started on a damaged copy of a store did.
enum Outcome {
    /// It refused to start: its exit status and what it printed.
    Refused(Option<i32>, String),
    /// It started: its lock state and how many incoming messages it shows.
    Started(String, usize),
}

fn start_on_copy(data_dir: &Path, run_dir: &Path, relay_url: &str) -> Outcome {
    let socket = run_dir.join("chatd.sock");
    let args: Vec<String> = [
        "--data-dir",
        &data_dir.display().to_string(),
        "--socket",
        &socket.display().to_string(),
        "--relay",
        relay_url,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut child = spawn_chatd(&args);
    let started = wait_for("chatd to serve or to refuse", || {
        if let Ok(client) = Client::connect(&socket) {
            return Some(Some(client));
        }
        child.try_wait().ok().flatten().map(|_| None)
    });
    let outcome = match started {
        None => {
            let status = child.wait().ok().and_then(|s| s.code());
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            Outcome::Refused(status, stderr)
        }
        Some(mut client) => {
            // An account without a passphrase unlocks at start: wait for that to settle.
            let state = wait_for("the lock state to settle", || {
                let status = client.call_value(m::DAEMON_STATUS, json!({})).ok()?;
                let state = status["state"].as_str()?.to_owned();
                (state != "locked").then_some(state)
            });
            let count = client
                .call_value(
                    m::MESSAGES_HISTORY,
                    json!({ "conversation": "alice", "limit": 500 }),
                )
                .ok()
                .and_then(|page| page["messages"].as_array().map(Vec::len))
                .unwrap_or(0);
            Outcome::Started(state, count)
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

#[test]
fn a_store_that_lost_acknowledged_commits_is_refused() {
    let relay = RelayProcess::start();
    let mut pair = Pair::start(&relay.url());
    let sent = texts("acknowledged", 40);
    pair.alice.send_one_by_one("bob", &sent);
    for id in pair
        .alice
        .messages_in("bob", "outgoing")
        .iter()
        .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
    {
        pair.alice.wait_status("bob", &id, "delivered");
    }
    pair.bob.kill();
    let store = pair.bob.data_dir().join("store");
    let db = std::fs::read(store.join("db")).unwrap_or_else(|e| panic!("{e}"));
    let (mut refused, mut intact) = (0, 0);
    let trials = 24;
    for trial in 0..trials {
        let copy = tests::private_dir();
        run(Command::new("cp")
            .arg("-a")
            .arg(pair.bob.data_dir())
            .arg(copy.path()));
        let data_dir = copy.path().join("data");
        let offset = 4096 + (db.len() - 4096) * trial / trials;
        let mut damaged = db.clone();
        damaged[offset] ^= 0x5a;
        std::fs::write(data_dir.join("store").join("db"), &damaged)
            .unwrap_or_else(|e| panic!("{e}"));
        let run_dir = copy.path().join("run");
        match start_on_copy(&data_dir, &run_dir, &relay.url()) {
            Outcome::Refused(status, stderr) => {
                assert_ne!(status, Some(0), "{stderr}");
                assert!(
                    stderr.contains("lost commits") || stderr.contains("corrupt"),
                    "byte {offset}: refused without saying why: {stderr}"
                );
                if stderr.contains("lost commits") {
                    assert_eq!(status, Some(65), "{stderr}");
                    assert!(stderr.contains("--accept-store-loss"), "{stderr}");
                }
                refused += 1;
            }
            Outcome::Started(state, count) => {
                assert_eq!(
                    (state.as_str(), count),
                    ("unlocked", sent.len()),
                    "byte {offset}: started with acknowledged messages missing"
                );
                intact += 1;
            }
        }
    }
    eprintln!("{trials} flipped bytes: {refused} refused, {intact} started intact");
    assert_eq!(refused + intact, trials);
}

#[test]
fn a_store_that_lost_commits_opens_with_accept_store_loss() {
    let relay = RelayProcess::start();
    let mut pair = Pair::start(&relay.url());
    pair.alice.send_one_by_one("bob", &texts("kept", 3));
    pair.bob.stop();
    // The record says the store had more commits than it has: as after a loss.
    let record = pair.bob.data_dir().join("store").join("chatd-commits");
    let mut slot = [0u8; 24];
    slot[..8].copy_from_slice(b"chatdcr1");
    slot[8..16].copy_from_slice(&1_000_000u64.to_be_bytes());
    let crc = crc32(&slot[..16]);
    slot[16..20].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&record, [slot, slot].concat()).unwrap_or_else(|e| panic!("{e}"));
    let run_dir = tests::private_dir();
    match start_on_copy(&pair.bob.data_dir(), run_dir.path(), &relay.url()) {
        Outcome::Refused(status, stderr) => {
            assert_eq!(status, Some(65), "{stderr}");
            assert!(stderr.contains("lost commits"), "{stderr}");
        }
        Outcome::Started(state, count) => panic!("started: {state}, {count} messages"),
    }
    // Accepted once, the store then opens as usual.
    let mut child =
        spawn_chatd(&[pair.bob.args(), vec!["--accept-store-loss".to_owned()]].concat());
    wait_for("chatd to serve after accepting the loss", || {
        Client::connect(&pair.bob.socket()).ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    pair.bob.restart_unlocked();
    assert_eq!(incoming_texts(&pair.bob, "alice"), texts("kept", 3));
}

/// CRC-32 (IEEE), bit by bit: the commit record's checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
