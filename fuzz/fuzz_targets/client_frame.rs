//! Fuzz target `client_frame`: runs `fuzz_targets::frames::client_frame` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::frames::client_frame(data));
