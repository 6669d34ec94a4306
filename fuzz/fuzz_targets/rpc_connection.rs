//! Fuzz target `rpc_connection`: runs `fuzz_targets::services::rpc_connection` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::services::rpc_connection(data));
