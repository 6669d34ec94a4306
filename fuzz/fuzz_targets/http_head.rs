//! Fuzz target `http_head`: runs `fuzz_targets::services::http_head` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::services::http_head(data));
