//! Whole-system and tidy tests for the workspace.

mod bench_tool;
mod smoke;
mod tidy;
