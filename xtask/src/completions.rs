//! Shell completion scripts for every program, one directory per shell, each file named as
//! that shell's completion directory expects it, so that installing is a copy:
//! `OUT_DIR/bash/chatctl`, `OUT_DIR/zsh/_chatctl`, `OUT_DIR/fish/chatctl.fish`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap_complete::Shell;

use crate::PROGRAMS;

/// The shells, with the directory under OUT_DIR and the prefix and suffix of a script's file
/// name around the program's name (bash-completion looks for `NAME`, zsh's `fpath` for
/// `_NAME`, fish for `NAME.fish`).
pub const SHELLS: [(Shell, &str, &str, &str); 3] = [
    (Shell::Bash, "bash", "", ""),
    (Shell::Zsh, "zsh", "_", ""),
    (Shell::Fish, "fish", "", ".fish"),
];

/// The completion script of `command` (named `name`) for `shell`, as `chatctl completions`
/// prints it.
pub fn script(shell: Shell, name: &str, command: clap::Command) -> Vec<u8> {
    let mut command = command;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    script
}

/// Writes every program's script for every shell under `out_dir` and returns the files written.
pub fn generate(out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (shell, dir, prefix, suffix) in SHELLS {
        let dir = out_dir.join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for &(name, command) in PROGRAMS {
            let path = dir.join(format!("{prefix}{name}{suffix}"));
            fs::write(&path, script(shell, name, command()))
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}
