//! Integration tests of `chat-relay`: real WebSocket clients over loopback against a relay
//! started in-process (or as a real process where a test kills it).

mod abuse;
mod auth;
mod common;
mod groups;
mod handles;
#[cfg(feature = "load-tool")]
mod load_tool;
mod ops;
mod prekeys;
mod proxy;
mod quotas;
mod reachability;
mod shutdown;
mod smoke;
mod store_forward;
mod tls;
