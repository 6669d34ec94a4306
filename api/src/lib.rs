//! chatd's local JSON-RPC API, shared by the daemon and every Rust client.
//!
//! This crate is the contract between `chatd` and its frontends: the method names
//! ([`methods`]), the request and response types ([`types`]), the events a subscriber receives
//! ([`events`]), the application error codes ([`error`]), the OpenRPC document `rpc.discover`
//! returns ([`openrpc`]), the default socket path ([`paths`]), the checks a client makes of
//! who serves it ([`trust`]) and a small blocking client ([`client`]) for `chatctl`,
//! `chat-tray` and tests.
//!
//! It links no cryptography and no storage on purpose: frontends depend on it, and they must
//! never be able to reach a key (ARCHITECTURE.md, invariants). These are the only types in the
//! workspace shaped for JSON.
//!
//! Wire rules (docs/API.md has the whole reference): JSON-RPC 2.0, one JSON message per line
//! (UTF-8, `\n`-terminated, at most [`MAX_LINE_LEN`] bytes), params by name.

pub mod client;
pub mod error;
pub mod events;
pub mod input;
pub mod methods;
pub mod openrpc;
pub mod paths;
pub mod reference;
pub mod trust;
pub mod types;

pub use error::ErrorCode;

/// The longest request line the daemon reads; a longer one is answered with an
/// "invalid request" error and skipped.
pub const MAX_LINE_LEN: usize = 1024 * 1024;

/// The API's version, reported by `daemon.status` and in the OpenRPC document. Bumped on any
/// incompatible change.
pub const API_VERSION: &str = "1.0.0";
