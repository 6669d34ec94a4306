//! Entry point of `chat-relay`. Not built yet: the relay is tracked by issue #3.
//!
//! Until then the binary says so and exits with a failure status, so nothing mistakes it for
//! a working program.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("chat-relay: not implemented yet (the relay is tracked by issue #3)");
    ExitCode::FAILURE
}
