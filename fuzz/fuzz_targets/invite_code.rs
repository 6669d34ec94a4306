//! Fuzz target `invite_code`: runs `fuzz_targets::services::invite_code` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::services::invite_code(data));
