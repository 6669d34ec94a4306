//! Whole-system and tidy tests for the workspace.

mod at_rest;
mod bench_tool;
mod chatctl;
mod completions;
mod contacts;
mod corrupt_relay;
mod delivery;
mod ephemeral;
mod examples;
mod faults;
mod first_message;
mod hosting;
mod lifecycle;
mod local_relay;
mod messaging;
mod peer_to_peer;
mod prekeys;
mod python_client;
mod reachability;
mod regressions;
mod rpc_abuse;
mod services;
mod smoke;
mod tidy;
mod tray;
