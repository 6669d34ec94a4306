//! `chatctl completions SHELL`: the shell's completion script, generated from the clap
//! command by clap_complete, on stdout. It needs no daemon.

use clap::CommandFactory;

use super::Ctx;
use crate::cli::{Cli, Shell};

/// Prints the completion script for `shell`.
pub fn completions(ctx: &Ctx, shell: Shell) -> anyhow::Result<()> {
    ctx.out.text(&script(shell))
}

/// The completion script for `shell`.
fn script(shell: Shell) -> String {
    let mut script = Vec::new();
    // Generated into memory first: clap_complete panics when its writer fails, and stdout may
    // be a closed pipe, which chatctl reports as success (see `output`).
    clap_complete::generate(
        shell.generator(),
        &mut Cli::command(),
        "chatctl",
        &mut script,
    );
    String::from_utf8_lossy(&script).into_owned()
}
