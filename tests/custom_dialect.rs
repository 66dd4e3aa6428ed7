//! The `custom_dialect` example's dialect, unit-tested through `tower_lro::dialect::testing`: the
//! example's own tests, run here because examples are not part of the test suite.

// The example's `main` and its toy server are not used here.
#[allow(dead_code)]
#[path = "../examples/custom_dialect.rs"]
mod example;
