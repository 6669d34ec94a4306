//! Fuzz target `pickle`: runs `fuzz_targets::protocol_targets::pickle` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::pickle(data));
