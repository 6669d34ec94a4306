//! Fuzz target `session_message`: runs `fuzz_targets::protocol_targets::session_message` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::session_message(data));
