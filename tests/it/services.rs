//! Service integration (`contrib/systemd`, `contrib/launchd`, docs/SERVICES.md): the units pass
//! `systemd-analyze verify` and agree with the daemon's defaults, the launchd plists parse with
//! the keys launchd needs, a real chatd tells a service manager it is ready only once its
//! socket answers (and that it is stopping on SIGTERM), and chatd started by
//! `systemd-socket-activate` serves the socket it is given without touching it, with its
//! peer-uid check and single-instance lock intact.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use api::client::Client;
use serde_json::{Value, json};
use tests::{
    PATIENCE, bin, bin_dir, free_addr, private_dir, system_tool_available, wait_for, workspace_root,
};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn create_private_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    chmod(path, 0o700);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Fails with everything the tool said unless it succeeded and said nothing: `systemd-analyze
/// verify` exits 0 even for unknown keys and unparsable values, and only warns.
fn assert_clean(what: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty() && stdout.trim().is_empty(),
        "{what} failed ({}):\n{stdout}{stderr}",
        output.status
    );
}

/// A unit file's `Key=Value` lines as (section, key, value), in order.
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            found.push((section.clone(), key.to_owned(), value.to_owned()));
        }
    }
    found
}

/// Every value of `section`'s `key` in `unit` (contrib/systemd/<unit>).
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let text = read(&workspace_root().join("contrib/systemd").join(unit));
    directives(&text)
        .into_iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
        .collect()
}

fn value(unit: &str, section: &str, key: &str) -> String {
    let mut found = values(unit, section, key);
    assert_eq!(found.len(), 1, "{unit}: [{section}] {key}= once: {found:?}");
    found.remove(0)
}

/// The committed user units verify as they are, with `%h` pointing at a home whose
/// `.cargo/bin` holds this build's binaries, and the system unit verifies with its
/// `/usr/local/bin` replaced by this build's directory. `verify` checks that every
/// `ExecStart*=` binary exists, so the paths must lead somewhere.
#[test]
fn the_units_verify() {
    if !system_tool_available("services", &["systemd-analyze", "--version"]) {
        return;
    }
    let units = workspace_root().join("contrib/systemd");
    let dir = private_dir();
    let home = dir.path().join("home");
    let cargo_bin = home.join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for name in ["chatd", "chat-tray"] {
        let built = bin_dir().join(name);
        let link = cargo_bin.join(name);
        if built.exists() {
            std::os::unix::fs::symlink(&built, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
        } else {
            // `cargo test` builds a binary only for a crate with integration tests, which the
            // tray does not have yet; its unit is still checked, against a stand-in.
            eprintln!(
                "services: {} was not built; chat-tray.service is verified against a stand-in",
                built.display()
            );
            std::fs::write(&link, "#!/bin/sh\nexit 1\n").unwrap_or_else(|e| panic!("{e}"));
            chmod(&link, 0o755);
        }
    }
    // A user manager needs a runtime directory even to load units.
    let runtime = dir.path().join("runtime");
    create_private_dir(&runtime);
    let mut user = Command::new("systemd-analyze");
    user.args(["--user", "--man=no", "verify"]);
    for unit in ["chatd.service", "chatd.socket", "chat-tray.service"] {
        user.arg(units.join(unit));
    }
    user.env("HOME", &home).env("XDG_RUNTIME_DIR", &runtime);
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_HOME",
        "XDG_DATA_DIRS",
        "SYSTEMD_UNIT_PATH",
    ] {
        user.env_remove(var);
    }
    let output = user
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running systemd-analyze: {e}"));
    assert_clean("systemd-analyze --user verify", &output);

    let installed = "/usr/local/bin/chat-relay";
    let text = read(&units.join("chat-relay.service"));
    assert_eq!(
        text.matches(installed).count(),
        1,
        "ExecStart names {installed}"
    );
    let system = dir.path().join("system");
    create_private_dir(&system);
    let rendered = system.join("chat-relay.service");
    let built = bin("chat-relay");
    std::fs::write(
        &rendered,
        text.replace(installed, &built.display().to_string()),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", rendered.display()));
    let output = Command::new("systemd-analyze")
        .args(["--man=no", "verify"])
        .arg(&rendered)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running systemd-analyze: {e}"));
    assert_clean("systemd-analyze verify chat-relay.service", &output);
}

/// The units name the paths the daemon, its clients and the relay's example configuration use,
/// and keep the settings the rest of this file relies on.
#[test]
fn the_units_agree_with_the_defaults() {
    // chatd's socket: $XDG_RUNTIME_DIR/chatd/chatd.sock (api::paths), private.
    assert_eq!(
        value("chatd.socket", "Socket", "ListenStream"),
        format!("%t/chatd/{}", api::paths::SOCKET_FILE)
    );
    assert_eq!(value("chatd.socket", "Socket", "SocketMode"), "0600");
    assert_eq!(value("chatd.socket", "Socket", "DirectoryMode"), "0700");
    assert_eq!(
        value("chatd.service", "Service", "RuntimeDirectory"),
        "chatd"
    );
    assert_eq!(
        value("chatd.service", "Service", "RuntimeDirectoryMode"),
        "0700"
    );
    // Not removed when chatd stops: with socket activation the socket in it outlives chatd.
    assert_eq!(
        value("chatd.service", "Service", "RuntimeDirectoryPreserve"),
        "yes"
    );
    // The data directory (default $XDG_DATA_HOME/chatd) is created, then writable.
    let data_dir = "%h/.local/share/chatd";
    assert_eq!(
        value("chatd.service", "Service", "ReadWritePaths"),
        data_dir
    );
    assert!(
        value("chatd.service", "Service", "ExecStartPre").ends_with(data_dir),
        "ExecStartPre creates the data directory"
    );
    assert_eq!(value("chatd.service", "Service", "Type"), "notify");
    assert_eq!(value("chatd.service", "Service", "NotifyAccess"), "main");
    assert_eq!(value("chatd.service", "Service", "Restart"), "on-failure");
    assert_eq!(value("chatd.service", "Service", "UMask"), "0077");
    assert_eq!(
        value("chatd.service", "Service", "RestrictAddressFamilies"),
        "AF_UNIX AF_INET AF_INET6"
    );

    // The tray lives and dies with the graphical session.
    for key in ["PartOf", "After"] {
        assert_eq!(
            value("chat-tray.service", "Unit", key),
            "graphical-session.target"
        );
    }
    assert_eq!(
        value("chat-tray.service", "Install", "WantedBy"),
        "graphical-session.target"
    );

    // The relay: its state directory is the storage of contrib/chat-relay.toml, and its
    // configuration directory holds that file.
    assert_eq!(value("chat-relay.service", "Service", "DynamicUser"), "yes");
    assert_eq!(
        value("chat-relay.service", "Service", "StateDirectory"),
        "chat-relay"
    );
    let example = read(&workspace_root().join("contrib/chat-relay.toml"));
    assert!(
        example
            .lines()
            .any(|l| l.trim() == r#"storage = { disk = "/var/lib/chat-relay" }"#),
        "contrib/chat-relay.toml stores in /var/lib/chat-relay (StateDirectory=chat-relay)"
    );
    assert_eq!(
        value("chat-relay.service", "Service", "ConfigurationDirectory"),
        "chat-relay"
    );
    assert!(
        value("chat-relay.service", "Service", "ExecStart")
            .contains(" --config %E/chat-relay/chat-relay.toml "),
        "the relay reads /etc/chat-relay/chat-relay.toml"
    );
    assert_eq!(
        value("chat-relay.service", "Service", "CapabilityBoundingSet"),
        ""
    );
    assert_eq!(
        values("chat-relay.service", "Service", "SystemCallFilter"),
        ["@system-service", "~@privileged @resources"]
    );
}

/// A launchd plist parsed by Python's `plistlib` (a real XML property-list parser), as JSON.
fn parse_plist(path: &Path) -> Value {
    let output = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, plistlib, sys\n\
             with open(sys.argv[1], 'rb') as f:\n    \
                 print(json.dumps(plistlib.load(f)))",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    assert!(
        output.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("plistlib's JSON: {e}"))
}

#[test]
fn the_launchd_plists_parse_with_the_keys_launchd_needs() {
    if !system_tool_available("services", &["/usr/bin/python3", "--version"]) {
        return;
    }
    let dir = workspace_root().join("contrib/launchd");
    for (label, binary) in [
        ("org.chatd.chatd", "chatd"),
        ("org.chatd.chat-tray", "chat-tray"),
    ] {
        let path = dir.join(format!("{label}.plist"));
        let plist = parse_plist(&path);
        assert_eq!(plist["Label"], label, "{}: Label", path.display());
        let args: Vec<&str> = plist["ProgramArguments"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: ProgramArguments is an array", path.display()))
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap_or_else(|| panic!("arguments are strings"))
            })
            .collect();
        // A shell expands $HOME (launchd does not) and sets TMPDIR, then execs the binary.
        assert_eq!(args.len(), 3, "{}: {args:?}", path.display());
        assert_eq!(&args[..2], ["/bin/sh", "-c"]);
        assert!(
            args[2].contains("DARWIN_USER_TEMP_DIR")
                && args[2].contains(&format!("exec \"$HOME/.cargo/bin/{binary}\"")),
            "{}: {}",
            path.display(),
            args[2]
        );
        assert_eq!(plist["RunAtLoad"], true, "{}: RunAtLoad", path.display());
        assert_eq!(
            plist["KeepAlive"],
            json!({ "SuccessfulExit": false, "Crashed": true }),
            "{}: KeepAlive restarts on failure only",
            path.display()
        );
        assert_eq!(plist["Umask"], 0o077, "{}: Umask", path.display());
    }
    let chatd = parse_plist(&dir.join("org.chatd.chatd.plist"));
    assert_eq!(chatd["SoftResourceLimits"]["Core"], 0);
    assert_eq!(chatd["HardResourceLimits"]["Core"], 0);
    let tray = parse_plist(&dir.join("org.chatd.chat-tray.plist"));
    assert_eq!(tray["LimitLoadToSessionType"], "Aqua");
}

/// A service manager's end of `NOTIFY_SOCKET`.
struct NotifySocket {
    socket: UnixDatagram,
    address: String,
}

impl NotifySocket {
    /// Bound at `path`.
    fn at_path(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind: {e}"));
        Self::with(socket, path.display().to_string())
    }

    /// Bound in the abstract namespace, as systemd's own is (`@/org/freedesktop/...`).
    #[cfg(target_os = "linux")]
    fn abstract_name() -> Self {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!(
            "chatd-services-test-{}-{}",
            std::process::id(),
            rand_suffix()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .unwrap_or_else(|e| panic!("address: {e}"));
        let socket = UnixDatagram::bind_addr(&addr).unwrap_or_else(|e| panic!("bind: {e}"));
        Self::with(socket, format!("@{name}"))
    }

    fn with(socket: UnixDatagram, address: String) -> Self {
        socket
            .set_read_timeout(Some(PATIENCE))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        Self { socket, address }
    }

    /// The next notice, as its lines.
    fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_owned)
                .collect(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no notice from chatd within {PATIENCE:?}")
            }
            Err(e) => panic!("recv: {e}"),
        }
    }

    /// A notice that is waiting right now, if any.
    fn pending(&self) -> Option<String> {
        self.socket
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let mut buf = vec![0u8; 4096];
        let pending = self
            .socket
            .recv(&mut buf)
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
        self.socket
            .set_nonblocking(false)
            .unwrap_or_else(|e| panic!("blocking: {e}"));
        pending
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A child process killed (and reaped) on drop unless it has exited.
struct Running(Child);

impl Running {
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit after [`Self::terminate`], and asserts it exited 0.
    fn assert_exits_cleanly(&mut self) {
        let status = wait_for("chatd to exit", || self.0.try_wait().ok().flatten());
        assert!(status.success(), "chatd exited with {status}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chatd's arguments for these tests: in memory, at `socket`, with a relay that is never
/// dialled (no account is created), so no embedded relay is hosted either.
fn chatd_args(socket: &Path) -> Vec<String> {
    vec![
        "--ephemeral".into(),
        "--socket".into(),
        socket.display().to_string(),
        "--relay".into(),
        format!("ws://{}/v1", free_addr()),
    ]
}

/// `daemon.status` on a fresh connection, once: no retry, so it fails if the socket does not
/// answer right now.
fn status_now(socket: &Path) -> Value {
    let mut client = Client::connect(socket)
        .unwrap_or_else(|e| panic!("connecting to {} failed: {e}", socket.display()));
    client
        .set_read_timeout(Some(PATIENCE))
        .unwrap_or_else(|e| panic!("timeout: {e}"));
    client
        .call_value(api::methods::DAEMON_STATUS, json!({}))
        .unwrap_or_else(|e| panic!("daemon.status failed: {e}"))
}

/// Runs chatd with `NOTIFY_SOCKET` at `notify` and checks the protocol: `READY=1` first and
/// only when the socket answers, nothing more while it runs, `STOPPING=1` on SIGTERM.
fn readiness_round(notify: &NotifySocket) {
    let dir = private_dir();
    let socket = dir.path().join("run").join("chatd.sock");
    let mut chatd = Running(
        Command::new(bin("chatd"))
            .args(chatd_args(&socket))
            .env("NOTIFY_SOCKET", &notify.address)
            .env("RUST_LOG", "warn")
            .env_remove("CHATD_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chatd: {e}")),
    );
    let ready = notify.next();
    assert_eq!(ready[0], "READY=1", "the first notice: {ready:?}");
    assert_eq!(
        ready.get(1).map(String::as_str),
        Some(format!("STATUS=Serving {}", socket.display()).as_str())
    );
    // At this moment, not after a retry, the socket answers.
    let status = status_now(&socket);
    assert_eq!(status["state"], "no_account", "{status}");
    assert_eq!(status["pid"], chatd.0.id(), "{status}");
    assert_eq!(notify.pending(), None, "one READY=1 and nothing else");

    chatd.terminate();
    let stopping = notify.next();
    assert_eq!(stopping[0], "STOPPING=1", "{stopping:?}");
    chatd.assert_exits_cleanly();
    assert!(
        !socket.exists(),
        "a socket chatd bound is removed when it stops"
    );
}

#[test]
fn readiness_is_notified_when_the_socket_answers_and_stopping_on_sigterm() {
    let dir = private_dir();
    readiness_round(&NotifySocket::at_path(&dir.path().join("notify")));
}

#[cfg(target_os = "linux")]
#[test]
fn readiness_reaches_an_abstract_notify_socket() {
    readiness_round(&NotifySocket::abstract_name());
}

/// The socket file's inode and mode bits.
fn inode_and_mode(path: &Path) -> (u64, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (meta.ino(), meta.mode() & 0o7777)
}

/// `systemd-socket-activate` binds the socket and starts chatd (in its own place, by exec) on
/// the first connection, as chatd.socket does. chatd serves that very socket: it answers the
/// connection that woke it, says READY=1, leaves the file's inode and modes alone, refuses
/// another uid, keeps a second daemon off the path with its lock, and leaves the socket in
/// place when it stops.
#[test]
fn socket_activation_serves_the_inherited_socket_as_it_is() {
    if !system_tool_available("services", &["systemd-socket-activate", "--version"]) {
        return;
    }
    let dir = private_dir();
    let run = dir.path().join("run");
    create_private_dir(&run);
    let socket = run.join("chatd.sock");
    let notify = NotifySocket::at_path(&dir.path().join("notify"));
    // systemd-socket-activate passes on only the variables named with -E. Its log (and
    // chatd's) goes to a file: "Listening on" there means it has called listen(2), whereas the
    // socket file appears already at bind(2), when a connection would still be refused.
    let log_path = dir.path().join("activate.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
    let mut activate = Command::new("systemd-socket-activate");
    activate
        .arg("--listen")
        .arg(&socket)
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.address))
        .arg("--setenv=RUST_LOG=warn")
        .arg(bin("chatd"))
        .args(chatd_args(&socket))
        .env("SYSTEMD_LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut chatd = Running(
        activate
            .spawn()
            .unwrap_or_else(|e| panic!("spawning systemd-socket-activate: {e}")),
    );
    wait_for("systemd-socket-activate to listen", || {
        read(&log_path).contains("Listening on").then_some(())
    });
    // The manager's choice of modes (SocketMode=0600 in chatd.socket), made before chatd runs.
    chmod(&socket, 0o600);
    let before = inode_and_mode(&socket);
    assert_eq!(
        notify.pending(),
        None,
        "nothing runs before the first connection"
    );

    // The first connection starts chatd, which answers it.
    let status = status_now(&socket);
    assert_eq!(status["state"], "no_account", "{status}");
    assert_eq!(
        status["pid"],
        chatd.0.id(),
        "the activated process is chatd itself"
    );
    let ready = notify.next();
    assert_eq!(ready[0], "READY=1", "{ready:?}");
    assert_eq!(
        inode_and_mode(&socket),
        before,
        "the socket is not re-created or chmod'ed"
    );
    assert!(
        run.join(format!("{}.lock", api::paths::SOCKET_FILE))
            .exists(),
        "chatd took the path's lock"
    );

    // A second daemon for the same path is refused by the lock, and changes nothing.
    let second = Command::new(bin("chatd"))
        .args(chatd_args(&socket))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running a second chatd: {e}"));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && stderr.contains("another chatd is already using"),
        "a second chatd: {} {stderr}",
        second.status
    );
    assert_eq!(inode_and_mode(&socket), before);
    status_now(&socket);

    if api::paths::current_uid() == 0 {
        // Open the way for uid 65534, so that the peer check itself is what refuses it.
        chmod(dir.path(), 0o711);
        chmod(&run, 0o711);
        chmod(&socket, 0o666);
        assert_eq!(
            tests::connect_as_peer(&socket, false),
            "answered",
            "a control: our uid is served"
        );
        assert_eq!(
            tests::connect_as_peer(&socket, true),
            "refused",
            "another uid is refused"
        );
        chmod(&socket, before.1);
        chmod(&run, 0o700);
        chmod(dir.path(), 0o700);
    } else {
        println!("services: the peer-uid part needs root, to connect as another uid");
    }

    chatd.terminate();
    let stopping = notify.next();
    assert_eq!(stopping[0], "STOPPING=1", "{stopping:?}");
    chatd.assert_exits_cleanly();
    assert_eq!(
        inode_and_mode(&socket),
        before,
        "the inherited socket is left in place for the manager"
    );
}

/// Without a service manager, chatd sends nothing and still starts: an unusable
/// `NOTIFY_SOCKET` is logged, not fatal.
#[test]
fn an_unusable_notify_socket_does_not_stop_chatd() {
    let dir = private_dir();
    let socket = dir.path().join("run").join("chatd.sock");
    let _chatd = Running(
        Command::new(bin("chatd"))
            .args(chatd_args(&socket))
            .env("NOTIFY_SOCKET", dir.path().join("nobody-listens-here"))
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chatd: {e}")),
    );
    wait_for("chatd to answer", || {
        Client::connect(&socket).ok()?;
        Some(())
    });
    assert_eq!(status_now(&socket)["state"], "no_account");
}
