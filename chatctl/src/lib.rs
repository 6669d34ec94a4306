//! `chatctl`, the command-line client of chatd's local JSON-RPC API (ARCHITECTURE.md, `chatctl`).
//!
//! It holds no keys and links no cryptography or storage: every command is one or two RPC
//! calls on chatd's socket, made with the blocking client from the `api` crate (no async
//! runtime, so a `send` costs little more than process start). The exit codes are in
//! [`exit`]; `chatctl --help` lists them too.
//!
//! The crate is a library with a thin binary (`main.rs`) so that other tools can reach the
//! command line's definition: [`command`] is what xtask renders man pages and completion
//! scripts from, and what `chatctl completions` uses.

pub mod cli;
mod commands;
mod connect;
pub mod exit;
mod output;
mod passphrase;
mod qr;
mod render;

use std::process::ExitCode;

use clap::CommandFactory;
use clap::Parser;

pub use connect::{ARGS_ENV, BIN_ENV};

/// chatctl's command line, as clap builds it from [`cli::Cli`].
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// Runs chatctl: parses the command line (a usage error exits with code 2, and with `--json`
/// anywhere on the command line also prints the JSON error document; `--help` and
/// `--version` exit 0), runs the command and turns its error, if any, into a message and an
/// exit code.
pub fn run() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return exit::usage(&err, wants_json(&args)),
    };
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err, cli.json),
    }
}

/// Whether `--json` is among the options (before a `--` that ends them), so that a command
/// line clap refuses still gets its error as JSON.
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json")
}
