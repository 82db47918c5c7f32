//! Benchmark skeleton.
fn main() {}
