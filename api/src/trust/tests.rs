//! Tests of the socket checks with real directories, sockets and (as root) files of another
//! uid.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use super::{PathState, check_path, check_peer};

/// The uid that plays "another local user" (nobody).
const OTHER_UID: u32 = 65534;

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    dir
}

fn bind(path: &Path) -> UnixListener {
    UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()))
}

/// Whether the test can give files to another uid; when it cannot, it fails under
/// `CHATD_REQUIRE_SYSTEM_TOOLS` and says it was skipped otherwise.
fn can_chown(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CHATD_REQUIRE_SYSTEM_TOOLS").is_some() {
        panic!(
            "{test}: needs root to chown a file to another uid, and CHATD_REQUIRE_SYSTEM_TOOLS is set"
        );
    }
    eprintln!("{test}: SKIPPED: needs root to chown a file to another uid");
    false
}

#[test]
fn our_socket_in_our_private_directory_is_trusted() {
    let dir = private_dir();
    let path = dir.path().join("chatd.sock");
    assert_eq!(check_path(&path), Ok(PathState::Missing));
    let listener = bind(&path);
    assert_eq!(check_path(&path), Ok(PathState::Trusted));
    let stream = UnixStream::connect(&path).unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(check_peer(&stream, &path), Ok(()));
    drop(listener);
}

#[test]
fn a_missing_directory_is_missing_not_untrusted() {
    let dir = private_dir();
    let path = dir.path().join("run").join("chatd.sock");
    assert_eq!(check_path(&path), Ok(PathState::Missing));
}

#[test]
fn a_directory_open_to_others_is_refused() {
    let dir = private_dir();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let path = run.join("chatd.sock");
    let _listener = bind(&path);
    for mode in [0o755, 0o750, 0o701, 0o1777] {
        fs::set_permissions(&run, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        let err = check_path(&path).expect_err("refused");
        assert_eq!(err.path, run.display().to_string());
        assert!(err.problem.contains("open to other users"), "{err}");
        assert!(err.problem.contains("chmod 700"), "{err}");
    }
}

#[test]
fn a_symlinked_directory_or_socket_is_refused() {
    let dir = private_dir();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap_or_else(|e| panic!("mkdir: {e}"));
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let _listener = bind(&real.join("chatd.sock"));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
    let err = check_path(&link.join("chatd.sock")).expect_err("refused");
    assert_eq!(err.path, link.display().to_string());
    assert!(err.problem.contains("symbolic link"), "{err}");

    let socket_link = real.join("alias.sock");
    std::os::unix::fs::symlink(real.join("chatd.sock"), &socket_link)
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    let err = check_path(&socket_link).expect_err("refused");
    assert_eq!(err.path, socket_link.display().to_string());
    assert!(err.problem.contains("symbolic link"), "{err}");
}

#[test]
fn a_file_that_is_not_a_socket_is_refused() {
    let dir = private_dir();
    let path = dir.path().join("chatd.sock");
    fs::write(&path, b"").unwrap_or_else(|e| panic!("write: {e}"));
    let err = check_path(&path).expect_err("refused");
    assert!(err.problem.contains("not a socket"), "{err}");
}

#[test]
fn a_directory_or_socket_of_another_user_is_refused() {
    if !can_chown("a_directory_or_socket_of_another_user_is_refused") {
        return;
    }
    let dir = private_dir();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap_or_else(|e| panic!("mkdir: {e}"));
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    let path = run.join("chatd.sock");
    let _listener = bind(&path);

    std::os::unix::fs::chown(&path, Some(OTHER_UID), Some(OTHER_UID))
        .unwrap_or_else(|e| panic!("chown: {e}"));
    let err = check_path(&path).expect_err("refused");
    assert_eq!(err.path, path.display().to_string());
    assert!(err.problem.contains("belongs to uid 65534"), "{err}");

    std::os::unix::fs::chown(&path, Some(rustix::process::geteuid().as_raw()), None)
        .unwrap_or_else(|e| panic!("chown: {e}"));
    std::os::unix::fs::chown(&run, Some(OTHER_UID), Some(OTHER_UID))
        .unwrap_or_else(|e| panic!("chown: {e}"));
    let err = check_path(&path).expect_err("refused");
    assert_eq!(err.path, run.display().to_string());
    assert!(err.problem.contains("belongs to uid 65534"), "{err}");
}
