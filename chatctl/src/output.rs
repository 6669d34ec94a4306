//! Writing results: human text or one JSON document per result on stdout, notes on stderr.
//! A reader that closes stdout early (`chatctl watch | head`) ends chatctl quietly.

use std::io::{self, Write};

use serde::Serialize;

use crate::exit::StdoutClosed;

/// Where results go, and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Output in JSON (`--json`) or for humans.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether results are JSON.
    pub fn is_json(self) -> bool {
        self.json
    }

    /// Writes `text` to stdout, ending it with a newline if it has none.
    pub fn text(self, text: &str) -> anyhow::Result<()> {
        let mut stdout = io::stdout().lock();
        let result = stdout.write_all(text.as_bytes()).and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        });
        result.and_then(|()| stdout.flush()).map_err(stdout_error)
    }

    /// Writes `value` as one line of JSON to stdout, and flushes it.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(stdout_error)
    }

    /// Writes a note for the human at the terminal to stderr (in both modes: it is not a
    /// result). A note that cannot be written is dropped.
    pub fn note(self, text: &str) {
        let _ = writeln!(io::stderr().lock(), "{text}");
    }
}

fn stdout_error(err: io::Error) -> anyhow::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(err).context("cannot write to stdout")
    }
}
