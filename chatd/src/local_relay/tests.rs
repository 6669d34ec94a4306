//! The local relay's owner check over `/proc/net/tcp` samples and real listeners, and its
//! directory: the recorded address, the pid file and the move of an old embedded relay store.
#![cfg_attr(not(target_os = "linux"), allow(unused_imports))]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use super::dir::{ADDRESS_FILE, OLD_EMBEDDED_DIR, PID_FILE, STORE_DIR};
use super::owner::{self, Listener, classify, listening_uids};
use super::*;

/// `/proc/net/tcp` as a little-endian Linux prints it: 127.0.0.1:7420 listened on by uid
/// 1001 and connected to by uid 1000 (not a listener), 0.0.0.0:7421 by uid 1000, and a line
/// that does not parse.
const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1CFC 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:1CFC 01 00000000:00000000 00:00000000 00000000  1000        0 41240 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1CFD 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41250 1 0000000000000000 100 0 0 10 0
   3: garbage
";

/// `/proc/net/tcp6`: `::` on port 7422 by uid 1002, `::ffff:127.0.0.1` on 7423 by uid 1003,
/// `::1` on 7424 by uid 1004.
const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1CFE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1002        0 51234 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1CFF 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 51235 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000001000000:1D00 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1004        0 51236 1 0000000000000000 100 0 0 10 0
";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[cfg(target_endian = "little")]
#[test]
fn the_listeners_owner_is_read_from_proc_net_tcp() {
    assert_eq!(listening_uids(TCP, addr("127.0.0.1:7420")), vec![1001]);
    // A wildcard listener takes loopback connections too.
    assert_eq!(listening_uids(TCP, addr("127.0.0.1:7421")), vec![1000]);
    assert_eq!(
        listening_uids(TCP, addr("127.0.0.2:7420")),
        Vec::<u32>::new()
    );
    assert_eq!(
        listening_uids(TCP, addr("127.0.0.1:7430")),
        Vec::<u32>::new()
    );
    assert_eq!(listening_uids(TCP6, addr("127.0.0.1:7422")), vec![1002]);
    assert_eq!(listening_uids(TCP6, addr("[::1]:7422")), vec![1002]);
    assert_eq!(listening_uids(TCP6, addr("127.0.0.1:7423")), vec![1003]);
    assert_eq!(listening_uids(TCP6, addr("[::1]:7424")), vec![1004]);
    assert_eq!(
        listening_uids(TCP6, addr("127.0.0.1:7424")),
        Vec::<u32>::new()
    );
    assert_eq!(
        listening_uids("", addr("127.0.0.1:7420")),
        Vec::<u32>::new()
    );
}

#[test]
fn any_foreign_owner_makes_the_address_foreign() {
    assert_eq!(classify(&[], 1000), Listener::None);
    assert_eq!(classify(&[1000], 1000), Listener::Ours);
    assert_eq!(classify(&[1000, 1001], 1000), Listener::Foreign(1001));
    assert_eq!(classify(&[0], 1000), Listener::Foreign(0));
}

#[cfg(target_os = "linux")]
#[test]
fn a_real_listener_of_ours_is_ours_and_a_closed_port_is_nobodys() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let at = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(owner::listener_owner(at), Listener::Ours);
    drop(listener);
    assert_eq!(owner::listener_owner(at), Listener::None);
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn recorded(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(ADDRESS_FILE)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_address_is_chosen_once_and_reused() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    let first = free_port();
    let opened = LocalRelayDir::open(&path, None, None, first).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(opened.addr(), first);
    assert_eq!(opened.url(), format!("ws://{first}/v1"));
    assert_eq!(recorded(&path), format!("{first}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o700));
    }
    // Another default later (a new version, or 7420 taken meanwhile) changes nothing.
    let again =
        LocalRelayDir::open(&path, None, None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(again.addr(), first);
    // An override wins for this daemon but is not recorded over the existing address.
    let other = free_port();
    let overridden = LocalRelayDir::open(&path, None, Some(other), free_port())
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(overridden.addr(), other);
    assert_eq!(recorded(&path), format!("{first}\n"));
    let read_only =
        LocalRelayDir::read_only(&path, None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(read_only.addr(), first);
}

#[test]
fn an_override_is_recorded_when_nothing_is() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    let chosen = free_port();
    LocalRelayDir::open(&path, None, Some(chosen), free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(recorded(&path), format!("{chosen}\n"));
    let later =
        LocalRelayDir::open(&path, None, None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(later.addr(), chosen);
}

#[test]
fn a_damaged_address_file_is_a_clear_error_and_is_kept() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    crate::daemon::create_private_dir(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(path.join(ADDRESS_FILE), "not an address\n").unwrap_or_else(|e| panic!("{e}"));
    let error = LocalRelayDir::open(&path, None, None, free_port())
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        error.contains("does not hold an address") && error.contains("not an address"),
        "{error}"
    );
    assert_eq!(recorded(&path), "not an address\n");
    assert!(LocalRelayDir::read_only(&path, None, free_port()).is_err());
}

#[cfg(unix)]
#[test]
fn a_directory_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let error = LocalRelayDir::open(&path, None, None, free_port())
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(error.contains("open to other users"), "{error}");
    assert!(error.contains("chmod -R go-rwx"), "{error}");
    assert!(!path.join(ADDRESS_FILE).exists());
}

#[cfg(target_os = "linux")]
#[test]
fn the_pid_file_names_a_running_host_only() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    let opened =
        LocalRelayDir::open(&path, None, None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(opened.host_pid(), None);
    let me = std::process::id();
    opened.write_pid(me).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened.host_pid(), Some(me));
    // Another daemon's file is not removed by this one.
    opened.clear_pid(me.wrapping_add(1));
    assert_eq!(opened.host_pid(), Some(me));
    opened.clear_pid(me);
    assert!(!path.join(PID_FILE).exists());
    // A file left by a host that was killed names no running process.
    std::fs::write(path.join(PID_FILE), format!("{}\n", u32::MAX - 1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened.host_pid(), None);
}

#[test]
fn an_old_embedded_relay_store_moves_in_once() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = temp.path().join("data");
    let old = data.join(OLD_EMBEDDED_DIR);
    std::fs::create_dir_all(&old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("db"), b"old store").unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    // An empty store directory (a host that started before) does not stop the move.
    crate::daemon::create_private_dir(&path.join(STORE_DIR)).unwrap_or_else(|e| panic!("{e}"));
    LocalRelayDir::open(&path, Some(&data), None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        std::fs::read(path.join(STORE_DIR).join("db"))
            .ok()
            .as_deref(),
        Some(&b"old store"[..])
    );
    assert!(!old.exists());
    // A second old store (another account's daemon) never replaces the one in place.
    std::fs::create_dir_all(&old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("db"), b"another").unwrap_or_else(|e| panic!("{e}"));
    LocalRelayDir::open(&path, Some(&data), None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        std::fs::read(path.join(STORE_DIR).join("db"))
            .ok()
            .as_deref(),
        Some(&b"old store"[..])
    );
    assert!(old.join("db").exists());
}

#[cfg(unix)]
#[test]
fn an_old_store_in_use_is_not_moved() {
    use rustix::fs::{FlockOperation, flock};
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = temp.path().join("data");
    let old = data.join(OLD_EMBEDDED_DIR);
    std::fs::create_dir_all(&old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("db"), b"old store").unwrap_or_else(|e| panic!("{e}"));
    // The lock an old daemon's sled holds on its store.
    let held = std::fs::File::open(old.join("db")).unwrap_or_else(|e| panic!("{e}"));
    flock(&held, FlockOperation::NonBlockingLockExclusive).unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    LocalRelayDir::open(&path, Some(&data), None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(old.join("db").exists());
    assert!(!path.join(STORE_DIR).join("db").exists());
    drop(held);
    LocalRelayDir::open(&path, Some(&data), None, free_port()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(path.join(STORE_DIR).join("db").exists());
}

#[tokio::test]
async fn one_supervisor_hosts_and_another_takes_over_when_it_stops() {
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    let at = free_port();
    let open = || LocalRelayDir::open(&path, None, None, at).unwrap_or_else(|e| panic!("{e:#}"));
    let first = LocalRelay::start(open(), true);
    wait_until(|| first.status().hosted_here).await;
    let second = LocalRelay::start(open(), true);
    let seen = second.status();
    assert!(!seen.hosted_here);
    assert_eq!(seen.error, None);
    assert!(first.status().hosted_here);
    #[cfg(target_os = "linux")]
    assert_eq!(second.status().host_pid, Some(std::process::id()));
    first.shutdown().await;
    second.wake().notify_one();
    wait_until(|| second.status().hosted_here).await;
    assert_eq!(second.status().url, format!("ws://{at}/v1"));
    second.shutdown().await;
    assert!(
        !path.join(PID_FILE).exists(),
        "a host that stops removes its pid file"
    );
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting");
}

/// A listener of another user (a real socket, made by a process that runs as `nobody`) is
/// foreign, and a first start does not record its address. Needs root to run that process;
/// without root only the parts above run.
#[cfg(target_os = "linux")]
#[test]
fn a_real_listener_of_another_user_is_foreign_and_never_recorded() {
    use std::io::BufRead as _;
    use std::os::unix::process::CommandExt as _;
    if current_uid() != 0 {
        eprintln!("not root: skipping the listener of another user");
        return;
    }
    const NOBODY: u32 = 65534;
    const LISTEN: &str = "import socket, sys\n\
        s = socket.socket()\n\
        s.bind(('127.0.0.1', 0))\n\
        s.listen()\n\
        print(s.getsockname()[1], flush=True)\n\
        sys.stdin.read()\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", LISTEN])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running python3 as nobody: {e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let theirs = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(owner::listener_owner(theirs), Listener::Foreign(NOBODY));
    let chosen = super::dir::first_address(theirs).unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(chosen, theirs);
    assert_eq!(chosen.ip(), theirs.ip());
    let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = temp.path().join("local-relay");
    let opened = LocalRelayDir::open(&path, None, None, theirs).unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(opened.addr(), theirs);
    assert_eq!(recorded(&path), format!("{}\n", opened.addr()));
    let dir_at_theirs =
        LocalRelayDir::read_only(&path, Some(theirs), theirs).unwrap_or_else(|e| panic!("{e:#}"));
    let error = supervisor::foreign_listener(&dir_at_theirs).unwrap_or_default();
    assert!(error.contains("uid 65534"), "{error}");
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}
