//! Workspace chores behind `cargo xtask` (the alias in `.cargo/config.toml`): the man pages and
//! the shell completion scripts of the workspace's binaries, generated from their clap commands
//! so that they cannot drift from `--help`. Generated files are build output, never committed.
//!
//! [`PROGRAMS`] is the one list of binaries; [`man`] and [`completions`] render each of them.
//! The man-page sections clap knows nothing of (EXIT STATUS, ENVIRONMENT, FILES) are in
//! `sections`.

pub mod completions;
pub mod man;
mod sections;

/// A binary of the workspace: its name and a function returning its clap command.
pub type Program = (&'static str, fn() -> clap::Command);

/// Every binary that gets man pages and completion scripts, in the order SEE ALSO lists them.
/// A new binary joins with one line here (its crate exposes its clap command); `sections`
/// may then give its man page the sections clap cannot derive.
pub const PROGRAMS: &[Program] = &[
    ("chatctl", chatctl::command),
    ("chatd", chatd_command),
    ("chat-relay", chat_relay::cli::command),
    ("chat-tray", chat_tray::command),
];

/// chatd's command line (`chatd::config::Args`).
fn chatd_command() -> clap::Command {
    <chatd::config::Args as clap::CommandFactory>::command()
}
