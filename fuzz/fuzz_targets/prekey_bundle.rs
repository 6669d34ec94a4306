//! Fuzz target `prekey_bundle`: runs `fuzz_targets::protocol_targets::prekey_bundle` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::protocol_targets::prekey_bundle(data));
