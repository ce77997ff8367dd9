//! Evaluation corpus (stub).
fn main() {}
