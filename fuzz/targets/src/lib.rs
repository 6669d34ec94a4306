//! The bodies of chatd's fuzz targets: one function per decoder that reads what another party
//! wrote, each taking the fuzzer's bytes (`fuzz/README.md`).
//!
//! The cargo-fuzz crate in `fuzz/` (nightly, libFuzzer) calls these functions, one target each;
//! the test in `tests/replay.rs` replays every committed corpus and regression input through the
//! same functions on stable, as part of the workspace tests. A function panics only when it
//! finds a bug: a decoder that panics, or an invariant the target checks (a value that decodes
//! re-encodes to the same bytes, a failed decryption leaves the session unchanged, ...).
//!
//! Targets that need keys (opening envelopes, decrypting session messages, opening pickles) use
//! one deterministic setup ([`fixture`]) built from fixed seeds, so that the fuzzer can reach
//! past the authentication checks: part of each such target seals or encrypts the fuzzer's bytes
//! with those keys first.

pub mod fixture;
pub mod frames;
pub mod protocol_targets;
pub mod services;

/// One fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file, the `fuzz/corpus/<name>`
/// directory) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "client_frame",
        run: frames::client_frame,
    },
    Target {
        name: "server_frame",
        run: frames::server_frame,
    },
    Target {
        name: "envelope",
        run: protocol_targets::envelope,
    },
    Target {
        name: "session_message",
        run: protocol_targets::session_message,
    },
    Target {
        name: "pickle",
        run: protocol_targets::pickle,
    },
    Target {
        name: "prekey_bundle",
        run: protocol_targets::prekey_bundle,
    },
    Target {
        name: "address",
        run: protocol_targets::address,
    },
    Target {
        name: "reachability",
        run: protocol_targets::reachability,
    },
    Target {
        name: "invite_refusal",
        run: protocol_targets::invite_refusal,
    },
    Target {
        name: "group_delivery",
        run: protocol_targets::group_delivery,
    },
    Target {
        name: "group_meta",
        run: protocol_targets::group_meta,
    },
    Target {
        name: "invite_code",
        run: services::invite_code,
    },
    Target {
        name: "http_head",
        run: services::http_head,
    },
    Target {
        name: "rpc_params",
        run: services::rpc_params,
    },
    Target {
        name: "rpc_connection",
        run: services::rpc_connection,
    },
];
