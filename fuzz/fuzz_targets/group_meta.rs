//! Fuzz target `group_meta`: runs `fuzz_targets::protocol_targets::group_meta` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::group_meta(data));
