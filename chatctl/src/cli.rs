//! The command line: global flags and every command, as clap derive types. Parsing only;
//! `commands` runs what is parsed here.

use std::path::PathBuf;
use std::time::Duration;

use api::types::MessageStatus;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;

/// Control chatd, the end-to-end encrypted messenger daemon.
#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    long_about = LONG_ABOUT,
    after_long_help = exit::help()
)]
pub struct Cli {
    /// chatd's socket [default: $CHATD_SOCKET, else $XDG_RUNTIME_DIR/chatd/chatd.sock; on
    /// Windows the pipe \\.\pipe\chatd-%USERNAME%]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Machine output: one JSON document per result on stdout (`watch`: one event per line)
    #[arg(long, global = true)]
    pub json: bool,

    /// Fail with exit code 3 instead of starting chatd when its socket is absent
    #[arg(long, global = true)]
    pub no_autostart: bool,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// What `chatctl --help` (and the man page's DESCRIPTION) says about chatctl.
const LONG_ABOUT: &str = "Control chatd, the end-to-end encrypted messenger daemon.\n\n\
    chatctl is a client of chatd's local JSON-RPC socket: chatd holds every key, chatctl none. \
    When the socket is absent, chatctl starts chatd (found next to chatctl, else on PATH; \
    CHATD_BIN overrides it) unless --no-autostart is given. Times are shown in UTC.";

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the account (identity and device keys) and print its address
    Init(InitArgs),
    /// Unlock the account with its passphrase
    Unlock(UnlockArgs),
    /// Lock the account: chatd forgets every secret and drops the relay connection
    Lock,
    /// Show chatd's state: version, lock state, relay connection, outbox
    Status,
    /// Show this account: name, address, device, relay, handles
    Whoami,
    /// Claim a handle on the relay, so others can add you as @HANDLE
    Register {
        /// The handle, with or without a leading `@`
        handle: String,
    },
    /// Manage contacts
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Manage this account's home relay
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Block a contact: its messages are dropped, at your relay and here
    Block {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
    },
    /// Unblock a contact
    Unblock {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
    },
    /// List blocked contacts and blocked message requests
    Blocked,
    /// List message requests (strangers who wrote first); accept, decline or block one
    #[command(long_about = REQUESTS_ABOUT)]
    Requests(RequestsArgs),
    /// Whether accounts that are not your contacts may write to you
    Strangers {
        /// accept: strangers may write, at a low rate; refuse: only contacts and invites
        #[arg(value_enum)]
        choice: StrangerChoice,
    },
    /// Create a one-time invite code to give someone
    Invite,
    /// Accept an invite code: adds the inviter as a contact
    Accept {
        /// The invite code (`chatinvite1...`)
        code: String,
        /// The alias to give the inviter [default: the name in the invite, made typeable]
        #[arg(long = "as", value_name = "ALIAS", value_parser = parse_alias)]
        alias: Option<String>,
    },
    /// Send a text message
    Send(SendArgs),
    /// Show a conversation, oldest message first
    History(HistoryArgs),
    /// List conversations with unread counts, most recent first
    Conversations,
    /// Mark received messages read (sends read receipts)
    Read {
        /// The conversation: its contact's alias (any case), @alias, @handle or address
        target: String,
        /// Mark up to and including this message id [default: everything received]
        #[arg(long, value_name = "ID", value_parser = parse_message_id)]
        up_to: Option<String>,
    },
    /// Print every event as it happens, until interrupted
    Watch {
        /// First replay the retained events after this cursor
        #[arg(long, value_name = "CURSOR")]
        since: Option<u64>,
    },
    /// Print a shell completion script to stdout (bash, zsh or fish)
    #[command(long_about = COMPLETIONS_ABOUT)]
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Change the passphrase that protects your keys (or add or remove one)
    Passphrase(PassphraseArgs),
    /// Give up a handle on the relay, so that another account may claim it
    Unregister {
        /// The handle, with or without a leading `@` (`handle@relay` for one left on a relay
        /// you moved away from)
        handle: String,
    },
    /// Manage the account itself
    #[command(subcommand)]
    Account(AccountCommand),
    /// Export every conversation's history as JSON lines, one message per line
    #[command(long_about = EXPORT_ABOUT)]
    Export {
        /// The file to write (replaced whole, readable by you only), or `-` for stdout
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the messages not sent yet with why each waits; cancel them or try them again now
    Outbox(OutboxArgs),
    /// Send a failed message's text again, as a new message to the same conversation
    Resend {
        /// The failed message's id (32 hex digits, as `send` and `history --json` print it)
        #[arg(value_name = "ID", value_parser = parse_message_id)]
        message_id: String,
    },
    /// Control the chatd process
    #[command(subcommand)]
    Daemon(DaemonCommand),
}

/// What `chatctl export --help` says about the format.
const EXPORT_ABOUT: &str = "Export every conversation's history as JSON lines, one message \
    per line.\n\n\
    Each line is one message as `messages.history` returns it (message_id, conversation, \
    direction, text, timestamp_ms, stored_at_ms, status, failure, read), plus `address`, the \
    contact's address. Conversations follow one another, each oldest message first. The file \
    is written to a temporary file beside it (mode 0600) and renamed over FILE only once \
    complete, so an interrupted export leaves FILE as it was. The export is not encrypted: \
    keep it as safe as your messages.";

/// Arguments of `passphrase`.
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the current passphrase from the first line of this file
    #[arg(long, value_name = "FILE")]
    pub old_file: Option<PathBuf>,
    /// Read the new passphrase from the first line of this file
    #[arg(long, value_name = "FILE", conflicts_with = "no_passphrase")]
    pub new_file: Option<PathBuf>,
    /// Remove the passphrase: anyone who can read chatd's data directory can then read your
    /// messages
    #[arg(long)]
    pub no_passphrase: bool,
}

/// The `account` commands.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Delete this account: keys, contacts, messages and the store's files (handles are
    /// released first when the relay is reachable). chatd keeps running, and `init` works again
    Delete(DeleteArgs),
}

/// Arguments of `account delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Do not ask for confirmation (for scripts; without a terminal it is required)
    #[arg(long)]
    pub yes: bool,
    /// Read the passphrase from the first line of this file
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// What `chatctl completions --help` says: where each shell looks for the script.
const COMPLETIONS_ABOUT: &str = "Print a shell completion script to stdout (bash, zsh or fish).\n\n\
    The script completes commands, flags and fixed values; it needs no running chatd. Install \
    it where your shell loads completions from, for example:\n\n\
    bash: chatctl completions bash > ~/.local/share/bash-completion/completions/chatctl\n\
    (loaded on demand by the bash-completion package; system-wide: \
    /usr/share/bash-completion/completions/chatctl. Without that package, put \
    `source <(chatctl completions bash)` in ~/.bashrc)\n\n\
    zsh: chatctl completions zsh > ~/.zfunc/_chatctl\n\
    with `fpath=(~/.zfunc $fpath); autoload -Uz compinit && compinit` in ~/.zshrc \
    (system-wide: /usr/local/share/zsh/site-functions/_chatctl)\n\n\
    fish: chatctl completions fish > ~/.config/fish/completions/chatctl.fish\n\
    (system-wide: /usr/share/fish/vendor_completions.d/chatctl.fish)\n\n\
    Then start a new shell.";

/// A shell `chatctl completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU Bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

impl Shell {
    /// clap_complete's generator for this shell.
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Your display name, as peers see it in invites
    #[arg(long)]
    pub name: String,
    /// The relay (ws:// or wss://) [default: chatd's]
    #[arg(long, value_name = "URL")]
    pub relay: Option<String>,
    /// Read the passphrase from the first line of this file
    #[arg(long, value_name = "FILE", conflicts_with = "no_passphrase")]
    pub passphrase_file: Option<PathBuf>,
    /// Store the keys unprotected: anyone who can read chatd's data directory can read your
    /// messages
    #[arg(long)]
    pub no_passphrase: bool,
}

/// Arguments of `unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Read the passphrase from the first line of this file
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// What `chatctl strangers` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrangerChoice {
    /// Strangers may write (at the relay's low stranger rate)
    Accept,
    /// Only contacts (and invites you hand out) may write
    Refuse,
}

/// The `relay` commands.
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Move this account to another home relay: register there and tell every contact; the old
    /// relay is drained until quiet, and handles stay there until released
    Move {
        /// The new relay's URL (wss://relay.example.org/v1)
        url: String,
    },
}

/// The `contact` commands.
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Add a contact by address or @handle, on your relay or another one
    Add {
        /// The local name to give the contact: 1 to 64 visible characters without spaces, not
        /// starting with @
        #[arg(value_parser = parse_alias)]
        alias: String,
        /// A chat1... address or a @handle on your relay; ADDRESS@HOST[:PORT] or
        /// @HANDLE@HOST[:PORT] for one on another relay
        #[arg(value_name = "ADDRESS|@HANDLE")]
        target: String,
    },
    /// List contacts
    List,
    /// Show a contact with the safety number to compare (after a key change: both keys and
    /// the new key's number)
    Show {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
    },
    /// Mark a contact verified after comparing safety numbers (after a key change, the new
    /// key's number: a match accepts the new key)
    Verify {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
        /// The safety number the contact sees (60 digits; spaces allowed). Without it,
        /// chatctl shows the number and asks (on a terminal only)
        #[arg(long, value_name = "DIGITS", value_parser = parse_safety_number)]
        safety_number: Option<String>,
    },
    /// Accept a contact's changed identity key (the contact becomes unverified)
    Trust {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
    },
    /// Remove a contact, its sessions and its conversation
    Remove {
        /// The contact: its alias (any case), @alias, @handle or address
        alias: String,
    },
    /// Give a contact another alias; its conversation and history stay
    Rename {
        /// The contact: its alias (any case), @alias, @handle or address
        old: String,
        /// The new alias: 1 to 64 visible characters without spaces, not starting with @
        /// (unique regardless of case)
        #[arg(value_parser = parse_alias)]
        new: String,
    },
}

/// Arguments of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Who to send to: a contact's alias (any case), @alias, @handle or address; or someone
    /// new by @handle or chat1... address (HANDLE@HOST[:PORT] or ADDRESS@HOST[:PORT] on
    /// another relay)
    pub target: String,
    /// The text; `-` reads all of stdin (one trailing newline is dropped)
    pub text: String,
    /// Wait until the message reaches this status (a later one also counts)
    #[arg(long, value_enum, value_name = "STATUS")]
    pub wait: Option<WaitFor>,
    /// How long --wait waits, in seconds
    #[arg(
        long,
        value_name = "SECS",
        default_value = "30",
        value_parser = parse_timeout,
        requires = "wait"
    )]
    pub timeout: Duration,
}

/// The status `send --wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The relay stored it for the recipient
    Sent,
    /// The recipient's daemon stored it
    Delivered,
    /// The recipient read it
    Read,
}

impl WaitFor {
    /// The message status this stands for.
    pub fn status(self) -> MessageStatus {
        match self {
            WaitFor::Sent => MessageStatus::Sent,
            WaitFor::Delivered => MessageStatus::Delivered,
            WaitFor::Read => MessageStatus::Read,
        }
    }
}

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The conversation: its contact's alias (any case), @alias, @handle or address
    pub target: String,
    /// How many messages (1 to 500) [default: chatd's, 50]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: Option<u32>,
    /// Show messages older than this cursor (printed with the previous page)
    #[arg(long, value_name = "CURSOR")]
    pub before: Option<String>,
}

/// Parses `--timeout`: a positive number of seconds, fractions allowed.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err("the timeout must be more than 0 seconds".to_owned());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Checks a message id (32 hex digits) and keeps it as given.
fn parse_message_id(text: &str) -> Result<String, String> {
    match api::types::parse_message_id(text) {
        Some(_) => Ok(text.to_owned()),
        None => Err("a message id is 32 hex digits".to_owned()),
    }
}

/// Checks an alias as chatd would (`api::input::alias_problem`) and keeps it as given.
fn parse_alias(text: &str) -> Result<String, String> {
    match api::input::alias_problem(text) {
        Some(problem) => Err(problem),
        None => Ok(text.to_owned()),
    }
}

/// Checks a safety number (digits, optionally grouped by spaces) and keeps it as given.
fn parse_safety_number(text: &str) -> Result<String, String> {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || !text.chars().all(|c| c.is_ascii_digit() || c == ' ') {
        return Err("a safety number is digits, optionally grouped by spaces".to_owned());
    }
    Ok(text.to_owned())
}

/// What `chatctl requests --help` (and its man page) says.
const REQUESTS_ABOUT: &str = "List message requests: strangers who wrote to you first.\n\n\
    A first message from someone who is not your contact lands here, not in your contacts or \
    conversations. Until you accept it, the sender gets delivery receipts but no read receipts \
    and learns nothing about you; `chatctl history NAME` shows what it wrote. `accept` makes it \
    a contact (it gets your introduction and the read receipts held back), `decline` forgets it \
    (it may write again), `block` drops everything it sends, also after a restart (`chatctl \
    unblock NAME` makes it a request again). People you add yourself, and invites, never \
    land here.";

mod ops;
pub use ops::{DaemonCommand, OutboxArgs, OutboxCommand, RequestsArgs, RequestsCommand};

#[cfg(test)]
mod tests;
