//! `chat-relay`'s command line: the clap definition of its flags, kept in the library so that
//! man pages and completion scripts can be generated from it ([`command`]). The binary turns
//! the parsed [`Args`] into a [`crate::Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// `chat-relay`'s command line, as clap builds it from [`Args`].
pub fn command() -> clap::Command {
    Args::command()
}

/// A blind store-and-forward relay for chatd.
#[derive(Debug, Parser)]
#[command(name = "chat-relay", version, about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
    /// TOML configuration file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded database (created if missing).
    #[arg(long, value_name = "DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory and write nothing to disk.
    #[arg(long)]
    pub ephemeral: bool,
    /// The relay binding devices sign: the public URL of this relay's `/v1` endpoint as
    /// clients dial it, e.g. `wss://relay.example.org/v1`. Default: `ws://<listen>/v1`.
    #[arg(long, value_name = "URL")]
    pub relay_id: Option<String>,
    /// TLS certificate chain (PEM) for native `wss://`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most simultaneous connections.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most simultaneous connections from one IP address.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Envelopes a mailbox may hold.
    #[arg(long, value_name = "N")]
    pub mailbox_quota: Option<usize>,
    /// Days an unacknowledged envelope is kept.
    #[arg(long, value_name = "DAYS")]
    pub ttl_days: Option<u64>,
}
