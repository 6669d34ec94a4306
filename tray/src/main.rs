//! Entry point of `chat-tray`. Not built yet: the desktop notifier is tracked by issue #5.
//!
//! Until then the binary says so and exits with a failure status, so nothing mistakes it for
//! a working program.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("chat-tray: not implemented yet (the desktop notifier is tracked by issue #5)");
    ExitCode::FAILURE
}
