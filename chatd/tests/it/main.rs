//! Tests of the `chatd` binary itself (the whole-system tests are in the `tests` crate; this
//! file also makes cargo build the binary for them).

use std::process::Command;

#[test]
fn help_and_version_work() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running chatd: {e}"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--socket",
        "--relay",
        "--passphrase-file",
        "--ephemeral",
        "--host-relay",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "relays = \"ws://x\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("--config")
        .arg(&config)
        .arg("--ephemeral")
        .output()
        .unwrap_or_else(|e| panic!("running chatd: {e}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml") && err.contains("relays"),
        "{err}"
    );
}
