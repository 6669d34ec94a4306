//! Whole-system and tidy tests for the workspace.

mod contacts;
mod hosting;
mod lifecycle;
mod smoke;
mod tidy;
