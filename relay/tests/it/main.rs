//! Integration tests of `chat-relay`: real WebSocket clients over loopback against a relay
//! started in-process (or as a real process where a test kills it).

mod common;
mod smoke;
mod tls;
