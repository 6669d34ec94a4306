//! `chat-relay` in an environment with neither `HOME` nor `XDG_DATA_HOME` (a service account,
//! `env -i`, Windows): `--ephemeral` and `--data-dir` serve without them, and only a relay told
//! nowhere to store refuses, saying which flag to pass. Found running chat-relay.exe under wine
//! (issue #16, item 10); the Linux binary failed the same way.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tests::{Finished, bin, free_addr, private_dir, wait_for};

/// `chat-relay --listen ADDR` with `args`, without HOME or XDG_DATA_HOME.
fn relay_without_home(addr: SocketAddr, args: &[&std::ffi::OsStr], cwd: &Path) -> Command {
    let mut command = Command::new(bin("chat-relay"));
    command
        .arg("--listen")
        .arg(addr.to_string())
        .args(args)
        .current_dir(cwd)
        .env_remove("HOME")
        .env_remove("XDG_DATA_HOME")
        .env("RUST_LOG", "warn");
    command
}

/// Kills the relay when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn spawn(command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self(child)
    }

    /// Waits until `GET /healthz` answers 200, failing at once (with its stderr) if the relay
    /// exits instead.
    fn wait_healthy(&mut self, addr: SocketAddr) {
        let child = &mut self.0;
        wait_for("the relay to answer /healthz", || {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("chat-relay exited ({status}) instead of serving:\n{stderr}");
            }
            health(addr).filter(|answer| answer.starts_with("HTTP/1.1 200"))
        });
    }
}

/// The relay's answer to `GET /healthz`, if it answers.
fn health(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn ephemeral_relay_serves_without_home() {
    let dir = private_dir();
    let addr = free_addr();
    let mut relay = Running::spawn(&mut relay_without_home(
        addr,
        &["--ephemeral".as_ref()],
        dir.path(),
    ));
    relay.wait_healthy(addr);
    assert!(
        tests::entries_under(dir.path()).is_empty(),
        "an ephemeral relay wrote nothing, not even into its working directory"
    );
}

#[test]
fn relay_with_a_data_dir_serves_without_home_and_stores_there() {
    let dir = private_dir();
    let data = dir.path().join("relay-data");
    let addr = free_addr();
    let mut relay = Running::spawn(&mut relay_without_home(
        addr,
        &["--data-dir".as_ref(), data.as_os_str()],
        dir.path(),
    ));
    relay.wait_healthy(addr);
    assert!(
        !tests::files_under(&data).is_empty(),
        "the relay keeps its database in --data-dir"
    );
}

#[test]
fn relay_told_nowhere_to_store_without_home_names_the_flags() {
    let dir = private_dir();
    let finished = Finished::run(&mut relay_without_home(free_addr(), &[], dir.path()), b"");
    assert_eq!(finished.code, Some(1), "stderr: {}", finished.stderr);
    for flag in ["--data-dir", "--ephemeral", "HOME"] {
        assert!(
            finished.stderr.contains(flag),
            "the refusal names {flag}: {}",
            finished.stderr
        );
    }
    assert!(
        tests::entries_under(dir.path()).is_empty(),
        "nothing was created in the working directory"
    );
}
