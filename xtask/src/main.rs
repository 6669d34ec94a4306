//! `cargo xtask`: generate the man pages or the shell completion scripts of every binary into a
//! directory (see the crate's library for what is generated, and CONTRIBUTING.md for how to
//! install it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Workspace chores for chatd's maintainers and packagers.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    /// The chore.
    #[command(subcommand)]
    task: Task,
}

/// Every chore.
#[derive(Debug, Subcommand)]
enum Task {
    /// Write the man pages (section 1) of every binary and subcommand into OUT_DIR
    Man {
        /// Where to write the pages (created if missing)
        out_dir: PathBuf,
    },
    /// Write bash, zsh and fish completion scripts for every binary into OUT_DIR/bash,
    /// OUT_DIR/zsh and OUT_DIR/fish
    Completions {
        /// Where to write the scripts (created if missing)
        out_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chore and prints each file it wrote.
fn run(cli: Cli) -> anyhow::Result<()> {
    let written = match &cli.task {
        Task::Man { out_dir } => xtask::man::generate(out_dir)?,
        Task::Completions { out_dir } => xtask::completions::generate(out_dir)?,
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
