//! Exit codes, and how an error becomes one (plus its message on stderr and, with `--json`, a
//! JSON error document on stdout).
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success (also when stdout is closed early, as by `chatctl watch \| head`) |
//! | 1 | any other error |
//! | 2 | usage: a bad command line, or an argument chatd refused as invalid (address, handle, alias, invite, message text, relay URL) |
//! | 3 | chatd unavailable: unreachable (and autostart failed or was disabled), busy (too many connections), its socket failed the safety checks (another user's?), or chatd went away |
//! | 4 | the account is locked, or there is no account yet |
//! | 5 | not found: no such contact, conversation, message or handle, or no device to send to |
//! | 6 | the contact's identity key changed and has not been trusted again |
//! | 7 | timed out waiting (`send --wait`) |
//! | 8 | the relay is unreachable or refused the request |
//! | 9 | wrong passphrase |
//!
//! Every [`ErrorCode`] is mapped by a `match` without a wildcard, so a new code in the API does
//! not compile here until someone decides its exit code. [`CODES`] repeats the table for
//! `chatctl --help` and the man page; a unit test keeps it in step with the constants.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use api::ErrorCode;
use api::client::ClientError;
use serde_json::json;

/// Success.
pub const OK: u8 = 0;
/// Any error without a more specific code.
pub const OTHER: u8 = 1;
/// A bad command line (clap's own code), or an argument chatd refused as invalid.
pub const USAGE: u8 = 2;
/// chatd is unavailable: it cannot be reached (and autostart failed or was disabled), it is
/// busy, its socket failed the checks of `api::trust` (nothing was sent), or it went away.
pub const UNREACHABLE: u8 = 3;
/// The account is locked, or there is no account.
pub const LOCKED: u8 = 4;
/// No such contact, conversation, message or handle, or no device to send to.
pub const NOT_FOUND: u8 = 5;
/// The contact's identity key changed and was not trusted again.
pub const UNTRUSTED_KEY_CHANGE: u8 = 6;
/// `send --wait` did not see the wanted status in time.
pub const TIMEOUT: u8 = 7;
/// The relay is unreachable or refused the request.
pub const RELAY: u8 = 8;
/// The passphrase does not unlock the account.
pub const WRONG_PASSPHRASE: u8 = 9;

/// Every exit code with its meaning, in order: what `chatctl --help` lists ([`help`]) and the
/// man page's EXIT STATUS section shows.
pub const CODES: &[(u8, &str)] = &[
    (OK, "success"),
    (OTHER, "any other error"),
    (
        USAGE,
        "usage: bad command line, or an argument chatd refused as invalid",
    ),
    (
        UNREACHABLE,
        "chatd unavailable: unreachable (autostart failed or disabled), busy, its socket \
         failed the safety checks, or chatd went away",
    ),
    (LOCKED, "the account is locked, or there is no account yet"),
    (
        NOT_FOUND,
        "not found (contact, conversation, message, handle, or a device to send to)",
    ),
    (
        UNTRUSTED_KEY_CHANGE,
        "the contact's identity key changed and was not trusted again",
    ),
    (TIMEOUT, "timed out waiting (send --wait)"),
    (RELAY, "the relay is unreachable or refused the request"),
    (WRONG_PASSPHRASE, "wrong passphrase"),
];

/// The exit codes as `chatctl --help` shows them, from [`CODES`].
pub fn help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in CODES {
        text.push_str(&format!("\n  {code}  {meaning}"));
    }
    text
}

/// The exit code for a domain error from chatd.
pub fn for_error_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NoAccount | ErrorCode::Locked => LOCKED,
        ErrorCode::WrongPassphrase => WRONG_PASSPHRASE,
        ErrorCode::NotFound => NOT_FOUND,
        // The contact exists but has not published prekeys: nothing to send to, as for an
        // unknown handle.
        ErrorCode::NoDevices => NOT_FOUND,
        ErrorCode::UntrustedKeyChange => UNTRUSTED_KEY_CHANGE,
        ErrorCode::RelayUnreachable | ErrorCode::RelayError => RELAY,
        // The user typed something chatd cannot accept: the command line was wrong.
        ErrorCode::InvalidAddress
        | ErrorCode::InvalidHandle
        | ErrorCode::InvalidAlias
        | ErrorCode::InvalidInvite
        | ErrorCode::InvalidMessage
        | ErrorCode::InvalidRelayUrl
        | ErrorCode::PassphraseRequired => USAGE,
        // Conflicts and refusals a script handles like any failure. `unlock` treats
        // AlreadyUnlocked as success before it gets here.
        ErrorCode::AccountExists
        | ErrorCode::AlreadyUnlocked
        | ErrorCode::HandleTaken
        | ErrorCode::AliasTaken
        | ErrorCode::SafetyNumberMismatch
        | ErrorCode::ContactBlocked => OTHER,
        // Faults: a bug in chatctl (a subscription it never made) or the daemon's disk.
        ErrorCode::UnknownSubscription | ErrorCode::StoreError => OTHER,
        // A name that fits several contacts: the command line must say which one.
        ErrorCode::AmbiguousContact => USAGE,
        // Resending a message that did not fail, cancelling one already on its way.
        ErrorCode::WrongMessageState => OTHER,
        // Writing to a message request, or to a contact that refused our invite: refusals.
        ErrorCode::MessageRequest | ErrorCode::InviteRefused => OTHER,
    }
}

/// An error chatctl raises itself, with the exit code and `kind` it reports.
#[derive(Debug)]
pub struct Failure {
    status: u8,
    kind: &'static str,
    message: String,
}

impl Failure {
    /// A failure that exits with `status` and reports `kind` in JSON.
    pub fn new(status: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, "usage", message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Stdout was closed by the reader (a broken pipe): not an error, chatctl just stops.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// What an error means for the caller: the exit code, and the fields of the JSON error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The process exit code.
    pub status: u8,
    /// chatd's JSON-RPC error code, when chatd answered with an error.
    pub code: Option<i32>,
    /// A stable snake_case name: chatd's `kind` for domain errors, else chatctl's own.
    pub kind: &'static str,
}

/// Classifies an error by the first [`Failure`] or [`ClientError`] in its chain.
pub fn classify(err: &anyhow::Error) -> Classified {
    for cause in err.chain() {
        if let Some(failure) = cause.downcast_ref::<Failure>() {
            return Classified {
                status: failure.status,
                code: None,
                kind: failure.kind,
            };
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return classify_client(client);
        }
        if cause.downcast_ref::<StdoutClosed>().is_some() {
            return Classified {
                status: OK,
                code: None,
                kind: "stdout_closed",
            };
        }
    }
    Classified {
        status: OTHER,
        code: None,
        kind: "error",
    }
}

fn classify_client(err: &ClientError) -> Classified {
    let local = |status, kind| Classified {
        status,
        code: None,
        kind,
    };
    match err {
        ClientError::Unreachable { .. } => local(UNREACHABLE, "unreachable"),
        ClientError::Untrusted { .. } => local(UNREACHABLE, "untrusted_socket"),
        // Too many connections: chatd is there but cannot take this one now.
        ClientError::Rpc(rpc) if rpc.code == api::error::SERVER_IS_BUSY => Classified {
            status: UNREACHABLE,
            code: Some(rpc.code),
            kind: "busy",
        },
        // The connection broke after it was made: chatd went away.
        ClientError::Io(_) => local(UNREACHABLE, "disconnected"),
        ClientError::Protocol(_) => local(OTHER, "protocol"),
        ClientError::Rpc(rpc) => {
            let (status, kind) = match rpc.app_code() {
                Some(code) => (for_error_code(code), code.name()),
                None => (OTHER, standard_kind(rpc.code)),
            };
            Classified {
                status,
                code: Some(rpc.code),
                kind,
            }
        }
    }
}

/// The name of a standard JSON-RPC error code. chatctl sends only well-formed requests, so
/// these mean a chatd of another API version (or a bug): exit code 1.
fn standard_kind(code: i32) -> &'static str {
    match code {
        api::error::PARSE_ERROR => "parse_error",
        api::error::INVALID_REQUEST => "invalid_request",
        api::error::METHOD_NOT_FOUND => "method_not_found",
        api::error::INVALID_PARAMS => "invalid_params",
        api::error::INTERNAL_ERROR => "internal_error",
        _ => "rpc_error",
    }
}

/// A hint for stderr after the error, where there is an obvious next step.
fn hint(err: &anyhow::Error, class: &Classified) -> Option<&'static str> {
    if class.code.is_none() && class.kind == "unreachable" {
        let refused = err.chain().any(|c| {
            matches!(
                c.downcast_ref::<ClientError>(),
                Some(ClientError::Unreachable { .. })
            )
        });
        if refused {
            return Some(
                "is chatd running there? chatctl starts it unless --no-autostart is given",
            );
        }
    }
    match class.kind {
        "busy" => Some(
            "chatd serves a limited number of connections at once; close some clients (or wait) \
             and try again",
        ),
        "untrusted_socket" => Some(
            "the socket or its directory is not yours alone; stop whatever serves it, remove \
             it, and start chatd again (or set XDG_RUNTIME_DIR or --socket to a private place)",
        ),
        "locked" => Some("run `chatctl unlock`"),
        "no_account" => Some("run `chatctl init --name NAME`"),
        "untrusted_key_change" => Some(
            "compare safety numbers (`chatctl contact show ALIAS`), then `chatctl contact trust ALIAS`",
        ),
        _ => None,
    }
}

/// Reports `err` (stderr, and stdout as JSON with `--json`) and returns the exit code.
pub fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let class = classify(err);
    if class.status == OK {
        return ExitCode::SUCCESS;
    }
    let message = chain_message(err);
    // Nothing useful can be done when stderr or stdout cannot be written, so those errors are
    // dropped; the exit code still says what happened.
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "chatctl: {message}");
    if let Some(hint) = hint(err, &class) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    if json {
        let document = error_document(&class, &message);
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{document}");
        let _ = stdout.flush();
    }
    ExitCode::from(class.status)
}

/// Reports a command line clap refused, and returns its exit code: `--help` and `--version`
/// print as clap prints them (exit 0); a usage error is clap's message (with colour on a
/// terminal) on stderr, plus with `json` the JSON error document (kind `usage`) on stdout,
/// and exit code 2.
pub fn usage(err: &clap::Error, json: bool) -> ExitCode {
    let printed = err.print();
    if !err.use_stderr() {
        return if printed.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(OTHER)
        };
    }
    if json {
        let class = Classified {
            status: USAGE,
            code: None,
            kind: "usage",
        };
        let message = usage_message(err);
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{}", error_document(&class, &message));
        let _ = stdout.flush();
    }
    ExitCode::from(USAGE)
}

/// clap's message, without colour, its `error: ` prefix, the usage block and the help line:
/// the lines up to the first empty one, joined.
pub fn usage_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty() && !line.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    let message = lines.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned()
}

/// The error and its causes, as `{:#}` prints them, but without a cause whose text the error
/// before it already ends with (the api client's errors repeat their source in their message).
pub fn chain_message(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

/// The JSON error document: `{"error":{"code":..,"kind":..,"message":..,"exit_code":..}}`.
/// `code` is chatd's JSON-RPC error code, or null when the error is chatctl's own.
pub fn error_document(class: &Classified, message: &str) -> serde_json::Value {
    json!({
        "error": {
            "code": class.code,
            "kind": class.kind,
            "message": message,
            "exit_code": class.status,
        }
    })
}

#[cfg(test)]
mod tests;
