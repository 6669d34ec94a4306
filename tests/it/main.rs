//! Whole-system and tidy tests for the workspace.

mod contacts;
mod lifecycle;
mod smoke;
mod tidy;
