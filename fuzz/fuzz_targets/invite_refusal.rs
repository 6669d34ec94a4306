//! Fuzz target `invite_refusal`: runs `fuzz_targets::protocol_targets::invite_refusal` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::invite_refusal(data));
