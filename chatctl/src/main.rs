//! Entry point of `chatctl`. Not built yet: the command-line client is tracked by issue #4.
//!
//! Until then the binary says so and exits with a failure status, so nothing mistakes it for
//! a working program.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("chatctl: not implemented yet (the command-line client is tracked by issue #4)");
    ExitCode::FAILURE
}
