//! Criterion benchmarks for the protocol core, side by side with vodozemac's Olm.

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(_c: &mut Criterion) {}

criterion_group!(protocol, benches);
criterion_main!(protocol);
