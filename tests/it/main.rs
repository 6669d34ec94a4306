//! Whole-system and tidy tests for the workspace.

mod tidy;
