//! Fuzz target `group_delivery`: runs `fuzz_targets::protocol_targets::group_delivery` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::group_delivery(data));
