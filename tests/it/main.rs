//! Whole-system and tidy tests for the workspace.

mod corrupt_relay;
mod delivery;
mod messaging;
mod smoke;
mod tidy;
