//! The `chatctl` binary: everything is in the library ([`chatctl::run`]), so that xtask can
//! reach the clap command for man pages and completions.

use std::process::ExitCode;

fn main() -> ExitCode {
    chatctl::run()
}
