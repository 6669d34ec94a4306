//! Whole-system and tidy tests for the workspace.

mod bench_tool;
mod contacts;
mod hosting;
mod lifecycle;
mod smoke;
mod tidy;
