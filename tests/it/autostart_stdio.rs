//! A daemon that chatctl autostarts holds none of chatctl's standard streams: `chatctl status |
//! cat` ends as soon as chatctl does, while the daemon keeps running with /dev/null for its
//! stdin, stdout and stderr. Under wine the Windows chatctl.exe leaked its stdout into
//! chatd.exe, so the pipeline hung until the daemon died (issue #16, item 10); this is the same
//! check on Unix, and tests/wine/scenario.sh makes it on Windows.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use tests::{KillOnDrop, PATIENCE, bin, private_dir, run_chatctl, shared_relay};

/// Kills whatever daemon answers on `socket` (the one the pipeline started), so that a failed
/// test leaves no process behind.
fn kill_daemon_on(socket: &Path) {
    let status = run_chatctl(socket, &["--json", "status"]);
    if let Some(pid) = serde_json::from_str::<Value>(&status.stdout)
        .ok()
        .and_then(|s| s["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
    {
        drop(KillOnDrop::new(pid));
    }
}

#[test]
fn chatctl_status_piped_through_cat_ends_while_the_autostarted_daemon_keeps_running() {
    let relay = shared_relay();
    let dir = private_dir();
    let socket = dir.path().join("run").join("chatd.sock");
    let chatd_args = format!(
        "--data-dir {} --relay {} --kdf-memory-kib 64 --kdf-iterations 1 --kdf-parallelism 1",
        dir.path().join("data").display(),
        relay.url()
    );
    let out_path = dir.path().join("pipeline.out");
    let err_path = dir.path().join("pipeline.err");
    let create = |path: &Path| {
        File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
    };
    // chatctl's stdout is the pipe to cat, its stderr a file: if the daemon kept either, cat
    // (and so sh) would not end, or the daemon would hold the file.
    let mut pipeline = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --socket "$1" --json status | cat"#)
        .arg(bin("chatctl"))
        .arg(&socket)
        .env_remove("CHATD_SOCKET")
        .env("CHATD_BIN", bin("chatd"))
        .env("CHATCTL_CHATD_ARGS", &chatd_args)
        .stdin(Stdio::null())
        .stdout(create(&out_path))
        .stderr(create(&err_path))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning sh: {e}"));
    let started = Instant::now();
    let exit = loop {
        match pipeline.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(None) | Err(_) => {
                let _ = pipeline.kill();
                let _ = pipeline.wait();
                kill_daemon_on(&socket);
                panic!(
                    "`chatctl status | cat` did not end within {} s: the autostarted daemon \
                     holds the pipe",
                    PATIENCE.as_secs()
                );
            }
        }
    };
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let stdout = read(&out_path);
    let stderr = read(&err_path);
    if !exit.success() {
        kill_daemon_on(&socket);
        panic!("the pipeline failed ({exit}):\n{stdout}\n{stderr}");
    }
    let status: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("status --json through cat is JSON ({e}): {stdout}"));
    let pid = status["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no pid in {status}"));
    let daemon = KillOnDrop::new(pid);

    // The daemon outlived the pipeline and still answers, as the same process.
    let again = run_chatctl(&socket, &["--json", "status"])
        .expect_code(0)
        .json();
    assert_eq!(again["pid"], pid, "the autostarted daemon keeps running");
    // Its standard streams are /dev/null, not the pipe or the file.
    for fd in 0..3 {
        let link = format!("/proc/{pid}/fd/{fd}");
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("readlink {link}: {e}"));
        assert_eq!(
            target,
            Path::new("/dev/null"),
            "the daemon's fd {fd} is /dev/null"
        );
    }
    // No other descriptor of the daemon is the pipe chatctl wrote to or chatctl's stderr file.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("listing the daemon's descriptors: {e}"));
    for entry in fds.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        assert_ne!(target, err_path, "the daemon holds chatctl's stderr file");
    }

    daemon.terminate(|| !socket.exists());
}
