//! README.md's walk for a newcomer: every command in the ```sh blocks of its first section,
//! "From a fresh clone to a first message", run in order as written, by bash, in a fresh HOME,
//! from a stand-in for a fresh clone. A step that fails fails the test with the step named, so
//! the README and the programs cannot drift apart unnoticed.
//!
//! What the walk replaces, and nothing else: the clone's `target/release` is the directory of
//! the binaries this build made (so `cargo build --release ...` is not run, and a `cargo` on
//! `PATH` that fails stands in for cargo, so no step can build); the demo's first run gets
//! `CHATD_BIN_DIR` for the same reason; chatd reads a config file (`CHATD_CONFIG`) that puts
//! the local relay on a free port, never `127.0.0.1:7420`, and makes Argon2id cheap; a
//! passphrase comes on stdin, as chatctl reads it without a terminal. The people the README
//! writes to are the test's own daemons on that local relay: Bob, who holds the handle `bob`,
//! and Carol, who accepts the invite and writes to the `watch`. Unix only, as the README's
//! commands are.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{
    DaemonOptions, DaemonProcess, Finished, PATIENCE, bin, bin_dir, free_addr, private_dir,
    run_chatctl, system_tool_available, wait_for, workspace_root,
};

/// The README section a newcomer follows first.
const SECTION: &str = "From a fresh clone to a first message";

/// Steps the walk must find in that section, by their first words (the demo's exactly):
/// without them it would not walk what a newcomer is told to do.
const EXPECTED: [&[&str]; 6] = [
    &["contrib/first-message.sh"],
    &["contrib/first-message.sh", "--stop"],
    &["chatctl", "init"],
    &["chatctl", "send", "@bob"],
    &["chatctl", "invite"],
    &["chatctl", "watch"],
];

/// Programs the walk's `PATH` must not find before the README puts them there.
const OURS: [&str; 5] = ["chatctl", "chatd", "chat-relay", "chat-tray", "xtask"];

/// One line of a ```sh block, with its place for messages.
struct Step {
    number: usize,
    line: String,
    /// The words before a `#` comment.
    words: Vec<String>,
}

impl Step {
    /// Whether the step begins with `words`, where `chatctl` also matches a path to it
    /// (`target/release/chatctl`).
    fn starts_with(&self, words: &[&str]) -> bool {
        self.words.len() >= words.len()
            && self.words.iter().zip(words).all(|(have, want)| {
                have == want || (*want == "chatctl" && have.ends_with("/chatctl"))
            })
    }

    /// The chatctl subcommand the step runs (`init`), if it runs chatctl.
    fn chatctl(&self) -> Option<&str> {
        let program = self.words.first()?;
        (program == "chatctl" || program.ends_with("/chatctl"))
            .then(|| self.words.get(1).map(String::as_str))
            .flatten()
    }
}

/// The lines of the ```sh blocks of README's [`SECTION`], in order.
fn readme_steps() -> Vec<Step> {
    let path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let heading = format!("## {SECTION}");
    let mut lines = readme.lines().skip_while(|line| *line != heading);
    assert!(
        lines.next().is_some(),
        "README.md has no section \"{SECTION}\" (contrib/first-message.sh and this test cite it)"
    );
    let mut steps = Vec::new();
    let mut in_sh = false;
    for line in lines.take_while(|line| !line.starts_with("## ")) {
        let trimmed = line.trim();
        if in_sh {
            if trimmed.starts_with("```") {
                in_sh = false;
            } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
                let words = trimmed
                    .split_whitespace()
                    .take_while(|word| !word.starts_with('#'))
                    .map(str::to_owned)
                    .collect();
                steps.push(Step {
                    number: steps.len() + 1,
                    line: trimmed.to_owned(),
                    words,
                });
            }
        } else if trimmed == "```sh" {
            in_sh = true;
        }
    }
    steps
}

/// Where the walk runs and with which environment.
struct Walk {
    /// The stand-in for a fresh clone: the working directory of every step.
    clone: PathBuf,
    env: BTreeMap<OsString, OsString>,
}

impl Walk {
    /// `bash -c LINE` in the clone, with the walk's environment and nothing else.
    fn bash(&self, line: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(line)
            .current_dir(&self.clone)
            .env_clear()
            .envs(&self.env);
        command
    }

    /// Runs a step to its end with `input` on stdin; it must exit 0.
    fn run(&self, step: &Step, command: &mut Command, input: &[u8]) -> Finished {
        let done = Finished::run(command, input);
        assert_eq!(
            done.code,
            Some(0),
            "README step {} failed: `{}`\nstdout:\n{}\nstderr:\n{}",
            step.number,
            step.line,
            done.stdout,
            done.stderr
        );
        done
    }

    /// `chatctl --json status` of the walk's own account (it does not start chatd), with the
    /// test's chatctl whatever the README put on `PATH`.
    fn status(&self) -> Value {
        let chatctl = bin("chatctl").display().to_string();
        let line = format!("'{chatctl}' --no-autostart --json status");
        Finished::run(&mut self.bash(&line), b"")
            .expect_code(0)
            .json()
    }
}

/// Stops the walk's daemons (the account's, autostarted, and the demo's) however the test
/// ends, with the walk's first environment and the binaries named by their paths; both
/// commands do nothing when there is nothing to stop.
struct StopAll {
    walk: Walk,
}

impl Drop for StopAll {
    fn drop(&mut self) {
        let chatctl = bin("chatctl").display().to_string();
        let _ = self
            .walk
            .bash(&format!("'{chatctl}' --no-autostart daemon stop"))
            .stdin(Stdio::null())
            .output();
        let _ = self
            .walk
            .bash("contrib/first-message.sh --stop")
            .env("CHATD_BIN_DIR", bin_dir())
            .stdin(Stdio::null())
            .output();
    }
}

/// The `PATH` entries of this process that hold none of [`OURS`], after a directory whose
/// `cargo` fails.
fn walk_path(fake_bin: &Path) -> OsString {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let kept = std::env::split_paths(&inherited).filter(|dir| {
        !OURS
            .iter()
            .any(|program| dir.join(program).exists() || dir.as_os_str().is_empty())
    });
    std::env::join_paths(std::iter::once(fake_bin.to_path_buf()).chain(kept))
        .unwrap_or_else(|e| panic!("PATH: {e}"))
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn make_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

/// The test's own people on the walk's local relay.
struct Peers {
    bob: DaemonProcess,
    carol: DaemonProcess,
}

impl Peers {
    /// Bob (handle `bob`) and Carol, on the local relay in `dir` that the account's daemon
    /// hosts.
    fn start(dir: &str) -> Self {
        let on_local_relay = || {
            DaemonProcess::start_options(
                "",
                DaemonOptions {
                    args: vec!["--local-relay-dir".into(), dir.into()],
                    ..DaemonOptions::default()
                },
            )
        };
        let bob = on_local_relay();
        bob.create("Bob");
        bob.call("account.register_handle", json!({ "handle": "bob" }));
        let carol = on_local_relay();
        carol.create("Carol");
        Self { bob, carol }
    }
}

#[test]
fn a_newcomer_can_follow_the_readme_from_a_fresh_clone() {
    let dir = private_dir();
    let home = dir.path().join("home");
    let clone = dir.path().join("clone");
    let fake_bin = dir.path().join("fake-bin");
    for path in [&home, &clone.join("target"), &fake_bin, &home.join("run")] {
        make_dir(path);
    }
    symlink(&workspace_root().join("contrib"), &clone.join("contrib"));
    symlink(&bin_dir(), &clone.join("target").join("release"));
    write_executable(
        &fake_bin.join("cargo"),
        "#!/bin/sh\necho \"the README walk builds nothing, yet a step ran: cargo $*\" >&2\nexit 101\n",
    );
    let relay = free_addr();
    let config = dir.path().join("chatd.toml");
    std::fs::write(
        &config,
        format!(
            "embedded_relay_addr = \"{relay}\"\n\n[kdf]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n"
        ),
    )
    .unwrap_or_else(|e| panic!("writing the config: {e}"));

    let mut env = BTreeMap::new();
    env.insert("HOME".into(), home.clone().into_os_string());
    env.insert("PATH".into(), walk_path(&fake_bin));
    env.insert("XDG_RUNTIME_DIR".into(), home.join("run").into_os_string());
    env.insert("CHATD_CONFIG".into(), config.into_os_string());
    env.insert("TMPDIR".into(), dir.path().as_os_str().to_owned());
    for name in ["USER", "LOGNAME", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            env.insert(name.into(), value);
        }
    }
    let mut walk = Walk { clone, env };
    let demo_relay = free_addr().to_string();
    walk.env
        .insert("CHATD_DEMO_RELAY_ADDR".into(), demo_relay.into());

    let steps = readme_steps();
    for expected in EXPECTED {
        let demo = expected[0].starts_with("contrib/");
        assert!(
            steps.iter().any(|step| if demo {
                step.words == expected
            } else {
                step.starts_with(expected)
            }),
            "README's \"{SECTION}\" has no step `{}` any more; walk what replaced it",
            expected.join(" ")
        );
    }

    let mut peers: Option<Peers> = None;
    let stop_all = StopAll {
        walk: Walk {
            clone: walk.clone.clone(),
            env: walk.env.clone(),
        },
    };
    for step in &steps {
        let words: Vec<&str> = step.words.iter().map(String::as_str).collect();
        match (words.as_slice(), step.chatctl()) {
            (["cargo", "build", rest @ ..], _) => {
                // Replaced by the binaries behind the clone's target/release.
                assert!(
                    rest.contains(&"--release"),
                    "README step {} builds something other than target/release: `{}`",
                    step.number,
                    step.line
                );
            }
            (["export", assignment, ..], _) => {
                let name = assignment.split('=').next().unwrap_or_default();
                let done = walk.run(
                    step,
                    &mut walk.bash(&format!("{}\nprintf '%s' \"${{{name}}}\"", step.line)),
                    b"",
                );
                walk.env.insert(name.into(), done.stdout.into());
            }
            (["contrib/first-message.sh"], _) => {
                let done = walk.run(
                    step,
                    walk.bash(&step.line).env("CHATD_BIN_DIR", bin_dir()),
                    b"",
                );
                assert!(
                    done.stdout.lines().any(|line| line
                        .ends_with("bob: Hello Alice, this is Bob. It is end-to-end encrypted.")),
                    "the demo showed no message from Bob: {done:?}"
                );
                assert!(
                    done.stdout.contains(&format!("(README.md, \"{SECTION}\")")),
                    "the demo does not send the reader to this section: {done:?}"
                );
            }
            (["contrib/first-message.sh", "--stop"], _) => {
                // No CHATD_BIN_DIR: it must find the demo's chatctl without building.
                let done = walk.run(step, &mut walk.bash(&step.line), b"");
                assert_eq!(done.stdout.matches("stopped").count(), 2, "{done:?}");
                let demo = home.join(".local").join("share").join("chatd-demo");
                for who in ["alice", "bob"] {
                    let socket = demo.join(who).join("chatd.sock");
                    wait_for(&format!("the demo's {who} to remove its socket"), || {
                        (!socket.exists()).then_some(())
                    });
                }
            }
            (_, Some("init")) => {
                walk.run(
                    step,
                    &mut walk.bash(&step.line),
                    b"a passphrase for the README walk\n",
                );
                let status = walk.status();
                assert_eq!(status["state"], "unlocked", "{status}");
                assert_eq!(
                    status["local_relay"]["url"],
                    format!("ws://{relay}/v1"),
                    "the walk's account must use the test's local relay: {status}"
                );
                let local_relay = status["local_relay"]["dir"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no local relay directory: {status}"));
                peers = Some(Peers::start(local_relay));
            }
            (_, Some("invite")) => {
                let done = walk.run(step, &mut walk.bash(&step.line), b"");
                let code = done.stdout.trim();
                let people = peers_of(&peers, step);
                // "they run `chatctl accept CODE`": Carol does.
                run_chatctl(&people.carol.socket(), &["accept", code]).expect_code(0);
            }
            (_, Some("watch")) => {
                watch_sees_carol(&walk, step, peers_of(&peers, step));
            }
            (["man", ..], _) if !system_tool_available("readme_walk", &["man", "--version"]) => {}
            _ => {
                walk.run(step, &mut walk.bash(&step.line), b"");
            }
        }
        if step.starts_with(&["chatctl", "send", "@bob"]) {
            let incoming = peers_of(&peers, step).bob.wait_incoming("alice", 1);
            assert_eq!(incoming.len(), 1, "{incoming:?}");
        }
    }
    drop(stop_all);
    let socket = home.join("run").join("chatd").join("chatd.sock");
    wait_for("the walk's chatd to remove its socket", || {
        (!socket.exists()).then_some(())
    });
}

fn peers_of<'a>(peers: &'a Option<Peers>, step: &Step) -> &'a Peers {
    peers.as_ref().unwrap_or_else(|| {
        panic!(
            "README step {} (`{}`) writes to someone before `chatctl init` made the account",
            step.number, step.line
        )
    })
}

/// Runs the `watch` step until it prints a message Carol sends. It prints only what happens
/// after it subscribed, which the test cannot see, so Carol writes again until one shows
/// (bounded by [`PATIENCE`] as a whole).
fn watch_sees_carol(walk: &Walk, step: &Step, peers: &Peers) {
    use std::io::BufRead;
    let mut child = walk
        .bash(&format!("exec {}", step.line))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("README step {}: spawning `{}`: {e}", step.number, step.line));
    let stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| panic!("README step {}: no stdout", step.number));
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut shown = false;
    let deadline = Instant::now() + PATIENCE;
    let mut attempt = 0;
    while !shown && Instant::now() < deadline {
        attempt += 1;
        peers
            .carol
            .send("alice", &format!("are you watching? {attempt}"));
        while let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            shown = line.contains("are you watching?");
            seen.push(line);
            if shown {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        shown,
        "README step {} (`{}`) printed no message from Carol; it printed: {seen:#?}",
        step.number, step.line
    );
}
