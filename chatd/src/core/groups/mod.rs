//! Group conversations on MLS (RFC 9420) through openmls (SPEC.md section 13; ARCHITECTURE.md,
//! `core`, `groups`): the ciphersuite and group rules ([`session`]), members' credentials as chatd
//! device certificates ([`credential`]), and openmls' records in the encrypted store
//! ([`storage`], [`provider`]).

pub mod credential;
pub mod provider;
pub mod session;
pub mod storage;

#[cfg(test)]
mod tests;
