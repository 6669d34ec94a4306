//! The chatd daemon as a library: the binary (`main.rs`) parses flags and calls
//! [`daemon::run`], and tests drive it directly.
//!
//! - `config`: flags, environment and the TOML file, merged.
//! - `daemon`: wiring: store, hosted or local relay, core, RPC server.
//! - `hosted_tls`: the self-signed certificate of a hosted relay on a `wss://` public URL.
//! - `local_relay`: the user's local relay (no relay configured): its own directory, hosted by
//!   one of the user's daemons and taken over by another when that one stops.
//! - `store`: the encrypted sled store (and its in-memory twin for `--ephemeral`), the vault
//!   that derives the store key from a passphrase.
//! - `core`: the one task that owns the secrets: account, contacts, sessions, outbox, incoming
//!   messages, receipts.
//! - `relay_link`: the relay connection (reconnect, heartbeat).
//! - `events`: the event bus and cursors.
//! - `methods`: the JSON-RPC methods; `rpc`: the local socket and the connection loop.
//! - `error`: `ApiError`, a domain error with its documented code.
//! - `memory`: keeping glibc's malloc from holding on to freed memory.
//! - `logfile`: the rotated, size-capped log file of `--log-file`; `pidfile`: the pid file in
//!   the data directory.
//! - `fuzzing`: hidden entry points for the fuzz targets (`fuzz/README.md`); not an API.
//!
//! Only what the binary, `xtask` and the fuzz targets use is public (`config`, `daemon`,
//! `store`, `memory`, `logfile`, `fuzzing`); every other module is `pub(crate)`, so code nothing uses
//! shows up as dead.

pub(crate) mod clock;
pub mod config;
pub(crate) mod core;
pub mod daemon;
pub(crate) mod error;
pub(crate) mod events;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod hosted_tls;
pub(crate) mod local_relay;
pub mod logfile;
pub mod memory;
pub(crate) mod methods;
pub(crate) mod pidfile;
pub(crate) mod relay_link;
pub(crate) mod relay_pool;
pub(crate) mod rpc;
pub mod store;
