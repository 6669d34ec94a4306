//! Whole-system and tidy tests for the workspace.

mod smoke;
mod tidy;
