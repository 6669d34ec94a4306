//! Fuzz target `server_frame`: runs `fuzz_targets::frames::server_frame` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::frames::server_frame(data));
