//! The pure protocol core of chatd: keys and addresses, PQXDH session setup, the Double Ratchet,
//! session records and pickles, padding, sealed envelopes, introductions, invite codes and
//! invite refusals, safety numbers, the relay wire codec and the group delivery.
//!
//! This crate does no I/O: no sockets, no files, no clocks and no global RNG. Every function
//! that needs randomness takes an `&mut impl Rng`, every function that needs the time takes it
//! as an argument. `protocol/SPEC.md` is the normative description of every byte this crate
//! produces; `protocol/testdata/` holds vectors that pin it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

pub mod address;
pub mod codec;
pub mod crypto;
pub mod envelope;
pub mod frames;
pub mod group_delivery;
pub mod group_meta;
pub mod identity;
pub mod introduction;
pub mod invite;
pub mod invite_refusal;
pub mod padding;
pub mod pickle;
pub mod pqxdh;
pub mod prekeys;
pub mod ratchet;
pub mod reachability;
pub mod safety;
pub mod session;

/// Renders the first bytes of a public value as hex for `Debug` output (never used on secrets).
pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(19);
    for b in bytes.iter().take(8) {
        let _ = write!(out, "{b:02x}");
    }
    if bytes.len() > 8 {
        out.push_str("..");
    }
    out
}
