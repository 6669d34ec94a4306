//! Entry point of `chat-tray`: parses flags, sets up logging to stderr, and runs the notifier
//! (the library's [`chat_tray::run`]) until Quit; errors are printed with their causes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = chat_tray::Args::parse();
    chat_tray::init_logging();
    match chat_tray::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-tray: {e:#}");
            ExitCode::FAILURE
        }
    }
}
