//! Fuzz target `reachability`: runs `fuzz_targets::protocol_targets::reachability` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::reachability(data));
