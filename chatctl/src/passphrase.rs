//! Where a passphrase comes from: the first line of a file, a prompt without echo on the
//! terminal, or one line of stdin when stdin is not a terminal. chatctl never prints one.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, IsTerminal};
use std::path::Path;

use anyhow::Context;

use crate::exit::Failure;

/// A passphrase on its way to chatd. Its `Debug` prints no secret, and dropping it overwrites
/// this copy (best effort: the serialized request holds another one until chatctl exits).
pub struct Passphrase(String);

impl Passphrase {
    /// Refuses an empty passphrase: an unprotected account is chosen with `--no-passphrase`.
    fn new(text: String) -> anyhow::Result<Self> {
        let passphrase = Passphrase(text);
        if passphrase.0.is_empty() {
            return Err(Failure::usage(
                "the passphrase is empty (to store the keys unprotected, use `init --no-passphrase`)",
            )
            .into());
        }
        Ok(passphrase)
    }

    /// The passphrase, to put in a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        // Keeps the writes above from being optimised away as dead stores.
        std::hint::black_box(&bytes);
    }
}

/// The passphrase for a new account: from `file`, else asked twice on the terminal, else one
/// line of stdin.
pub fn for_new_account(file: Option<&Path>) -> anyhow::Result<Passphrase> {
    if let Some(file) = file {
        return from_file(file);
    }
    if io::stdin().is_terminal() {
        let first = prompt("New passphrase: ")?;
        let second = prompt("Repeat the passphrase: ")?;
        if first.expose() != second.expose() {
            return Err(Failure::usage("the passphrases do not match").into());
        }
        return Ok(first);
    }
    from_reader(io::stdin().lock())
}

/// The passphrase of the existing account (to unlock, or to check before a change): from `file`,
/// else asked once on the terminal with `question`, else one line of stdin.
pub fn current(file: Option<&Path>, question: &str) -> anyhow::Result<Passphrase> {
    if let Some(file) = file {
        return from_file(file);
    }
    if io::stdin().is_terminal() {
        return prompt(question);
    }
    from_reader(io::stdin().lock())
}

/// The empty stand-in for the passphrase of an account that has none (never sent: the
/// request then carries no passphrase).
pub fn none() -> anyhow::Result<Passphrase> {
    Ok(Passphrase(String::new()))
}

/// Whether passphrases are asked for on a terminal (and so may be asked again).
pub fn interactive(file: Option<&Path>) -> bool {
    file.is_none() && io::stdin().is_terminal()
}

/// How many times a passphrase typed on a terminal is asked for before chatctl gives up.
pub const TRIES: u32 = 3;

/// Runs `attempt` with passphrases from `ask`, asking again after a wrong one (as `is_wrong`
/// says) up to `tries` times in all, and telling the user through `say` each time; any other
/// error, or the last wrong one, is returned.
pub fn with_retries<T>(
    tries: u32,
    mut ask: impl FnMut() -> anyhow::Result<Passphrase>,
    mut attempt: impl FnMut(Passphrase) -> anyhow::Result<T>,
    is_wrong: impl Fn(&anyhow::Error) -> bool,
    mut say: impl FnMut(&str),
) -> anyhow::Result<T> {
    let mut tried = 0;
    loop {
        tried += 1;
        match attempt(ask()?) {
            Err(e) if tried < tries && is_wrong(&e) => {
                let left = tries - tried;
                say(&format!(
                    "wrong passphrase; try again ({left} {} left)",
                    if left == 1 { "try" } else { "tries" }
                ));
            }
            result => return result,
        }
    }
}

fn prompt(text: &str) -> anyhow::Result<Passphrase> {
    let answer = rpassword::prompt_password(text).context("cannot read the passphrase")?;
    Passphrase::new(answer)
}

/// The first line of the file at `path` (a systemd credential works), without its line ending.
pub fn from_file(path: &Path) -> anyhow::Result<Passphrase> {
    // The error names the file, never its contents.
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    let line = first_line(&text).to_owned();
    Passphrase::new(line)
}

/// One line from `reader`, without its line ending.
pub fn from_reader(mut reader: impl BufRead) -> anyhow::Result<Passphrase> {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .context("cannot read the passphrase from stdin")?;
    if read == 0 {
        return Err(Failure::usage(
            "no passphrase: stdin is empty and not a terminal (use --passphrase-file)",
        )
        .into());
    }
    let trimmed = first_line(&line).to_owned();
    // Wipes the buffer that still holds the line ending.
    drop(Passphrase(line));
    Passphrase::new(trimmed)
}

/// Up to the first line break, without `\n` or `\r\n`.
fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

#[cfg(test)]
mod tests;
