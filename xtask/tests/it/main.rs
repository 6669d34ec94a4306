//! xtask's integration tests: the built `xtask` binary generates into a temporary directory,
//! and the tests read what it wrote against the programs' clap commands.

mod completions;
mod man;

use std::path::Path;
use std::process::Command;

/// Runs `xtask ARGS... OUT_DIR` to success and returns the files it says it wrote.
pub fn xtask(args: &[&str], out_dir: &Path) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg(out_dir)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap_or_else(|e| panic!("running xtask: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xtask {args:?} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temporary directory: {e}"))
}

/// Reads a generated file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
