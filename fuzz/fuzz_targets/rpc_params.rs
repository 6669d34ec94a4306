//! Fuzz target `rpc_params`: runs `fuzz_targets::services::rpc_params` (fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::services::rpc_params(data));
