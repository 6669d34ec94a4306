//! Fuzz target `address`: runs `fuzz_targets::protocol_targets::address` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::address(data));
