//! The arguments of the commands that look after chatd itself, its outbox and what waits for
//! the user: `outbox` (list, `cancel`, `retry`), `requests` (list, `accept`, `decline`,
//! `block`) and `daemon stop`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{parse_alias, parse_message_id, parse_timeout};

/// Arguments of `outbox`: without a subcommand, the list.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// What to do [default: list]
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
}

/// The `outbox` commands.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List every message not sent yet: recipient, age, attempts and why it waits
    List,
    /// Take a message out of the outbox: it is never sent, and shows as failed (cancelled)
    Cancel {
        /// The message's id (32 hex digits)
        #[arg(value_name = "ID", value_parser = parse_message_id)]
        message_id: String,
    },
    /// Try now instead of after the retry delay: one message (and what its conversation
    /// queued before it), or every queued message
    Retry {
        /// The message's id [default: every queued message]
        #[arg(value_name = "ID", value_parser = parse_message_id)]
        message_id: Option<String>,
    },
}

/// Arguments of `requests`: without a subcommand, the list.
#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// What to do [default: list]
    #[command(subcommand)]
    pub command: Option<RequestsCommand>,
}

/// The `requests` commands.
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List the open requests: who, how many messages, the newest one
    List,
    /// Accept a request: it becomes a contact and gets your introduction
    Accept {
        /// The request: its alias (any case), @alias or address
        name: String,
        /// A new alias for the contact it becomes
        #[arg(long = "as", value_name = "ALIAS", value_parser = parse_alias)]
        alias: Option<String>,
    },
    /// Decline a request: it and its messages are forgotten (it may write again)
    Decline {
        /// The request: its alias (any case), @alias or address
        name: String,
    },
    /// Block a request: everything it sends is dropped, also after a restart
    Block {
        /// The request: its alias (any case), @alias or address
        name: String,
    },
}

/// The `daemon` commands.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Stop chatd and wait until it is gone: through its socket, or, when the socket is gone,
    /// through the pid file in its data directory (SIGTERM; Windows: the socket only)
    Stop {
        /// chatd's data directory, where its pid file is [default: $CHATD_DATA_DIR, else
        /// $XDG_DATA_HOME/chatd]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// How long to wait for chatd to exit, in seconds
        #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_timeout)]
        timeout: Duration,
    },
}
