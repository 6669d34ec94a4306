//! Unit tests of the pid file.

use super::*;

#[test]
fn written_read_and_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(dir.path()), None);
    let file = PidFile::create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(dir.path()), Some(std::process::id()));
    drop(file);
    assert_eq!(read(dir.path()), None);
    assert!(!dir.path().join(PID_FILE).exists());
}

#[test]
fn a_file_naming_another_process_is_left_alone_and_junk_is_no_pid() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = PidFile::create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join(PID_FILE), "4242\n").unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    assert_eq!(read(dir.path()), Some(4242));
    std::fs::write(dir.path().join(PID_FILE), "chatd\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(dir.path()), None);
    std::fs::write(dir.path().join(PID_FILE), "0\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(dir.path()), None);
}
