//! The chatd daemon as a library: the binary (`main.rs`) parses flags and calls into it, and
//! tests drive it directly.
//!
//! - `store`: the encrypted sled store (and its in-memory twin for `--ephemeral`), the vault
//!   that derives the store key from a passphrase.
//! - `rpc`: the local socket and the JSON-RPC connection loop over jsonrpsee's `Methods`.

pub mod rpc;
pub mod store;
