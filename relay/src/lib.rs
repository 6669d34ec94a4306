//! `chat-relay`: a blind store-and-forward relay for chatd (SPEC.md section 10).
//!
//! The relay authenticates devices by a signed challenge, keeps a directory of device
//! certificates, prekeys and handles, and stores sealed envelopes in per-device mailboxes until
//! the device acknowledges them. It never sees plaintext or who sent an envelope.
//!
//! It is a library as well as a binary: [`run`] serves on a listener until a shutdown future
//! completes, so `chatd` can host a relay in-process and tests can start one on `127.0.0.1:0`.

pub mod store;
