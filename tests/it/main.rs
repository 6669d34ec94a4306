//! Whole-system and tidy tests for the workspace.

mod at_rest;
mod chatctl;
mod corrupt_relay;
mod delivery;
mod ephemeral;
mod messaging;
mod python_client;
mod rpc_abuse;
mod smoke;
mod tidy;
