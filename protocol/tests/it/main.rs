//! Integration tests of the `protocol` crate: vectors, properties and limits.

mod frames;
mod identity_vectors;
mod limit_vectors;
mod properties;
mod protocol_vectors;
mod published;
mod reachability_vectors;
mod secret_debug;
