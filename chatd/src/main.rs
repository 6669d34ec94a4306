//! Entry point of `chatd`. Not built yet: the daemon is tracked by issue #4.
//!
//! Until then the binary says so and exits with a failure status, so nothing mistakes it for
//! a working program.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("chatd: not implemented yet (the daemon is tracked by issue #4)");
    ExitCode::FAILURE
}
