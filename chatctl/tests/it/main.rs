//! chatctl's integration tests: the built binary, run as a user runs it.
//!
//! No daemon exists yet, so these run chatctl against nothing (`offline`) and against a tiny
//! fake JSON-RPC server (`fake`). The fake stands in only until the `tests/` crate runs the real
//! chatd end to end; it checks chatctl's side of the wire, not chatd's behaviour.
//!
//! Unix only: the fake serves a Unix socket and the scripts are shell scripts. On Windows this
//! test binary is empty (nothing here runs Windows binaries anyway).
#![cfg(unix)]

mod fake;
mod offline;
mod planted;
mod support;
