//! Whole-system and tidy tests for the workspace.

mod lifecycle;
mod smoke;
mod tidy;
