//! Integration tests of the `protocol` crate: vectors, properties and limits.

mod frames;
