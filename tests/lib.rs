//! Shared helpers for the whole-system tests in `it/` (real processes, real sockets, temp dirs).
