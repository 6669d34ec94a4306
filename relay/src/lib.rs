//! `chat-relay`: a blind store-and-forward relay for chatd (SPEC.md section 10).
//!
//! The relay authenticates devices by a signed challenge, keeps a directory of device
//! certificates, prekeys, handles and reachability records, and stores sealed envelopes in
//! per-device mailboxes until the device acknowledges them, admitting them by the recipient's
//! delivery tokens. Senders on other relays deposit over anonymous connections. It never sees
//! plaintext, nor who sent an envelope beyond the connection it came on.
//!
//! It is a library as well as a binary: [`run`] serves on a listener until a shutdown future
//! completes, and [`Relay`] is the same relay as a handle, so `chatd` can host one in-process
//! and tests can start one on `127.0.0.1:0`.
//!
//! Map: `cli` (the binary's flags), `server` (accept loop, caps, lifecycle), `connection` (one
//! client, authenticated or anonymous), `http` (the request that opens a connection,
//! `/healthz`, `/metrics`), `admission` (delivery tokens: which envelopes are stored, dropped
//! or refused, SPEC.md 10.9), `commit` (group commit, the only mailbox writer), `router`
//! (device -> live connection), `store` (sled or memory), `envelope_ids`,
//! `ratelimit`, `proxy` (the client address a trusted reverse proxy passes on), `metrics`,
//! `clock`, `config`, `tls`, `client` (a minimal client for tests, the load tool and chatd),
//! `fuzzing` (hidden entry points for the fuzz targets, `fuzz/README.md`).

mod admission;
pub mod cli;
pub mod client;
pub mod clock;
mod commit;
pub mod config;
mod connection;
mod envelope_ids;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod metrics;
pub mod proxy;
mod ratelimit;
mod router;
mod server;
pub mod store;
mod tls;

pub use config::{
    Config, Limits, ProxyConfig, ProxyProtocol, RateLimit, SledSettings, Storage, TlsConfig,
    TlsIdentity,
};
pub use connection::HANDLE_CLOCK_WINDOW_SECS;
pub use server::{Relay, run};
