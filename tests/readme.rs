//! The README's complete programs are the ones CI builds and runs: its Quick start is
//! `examples/quick_start.rs` and its simulator test is `tests/testing_with_the_simulator.rs`,
//! each without the file's leading `//!` lines, and the Cargo.toml lines it lists are the ones
//! the example's header names.

const README: &str = include_str!("../README.md");

/// `source` without its leading inner doc comment.
fn program(source: &str) -> String {
    source
        .lines()
        .skip_while(|line| line.starts_with("//!"))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn assert_in_readme(block: &str, file: &str) {
    assert!(
        README.contains(block),
        "the README has no block equal to {file}; copy it there:\n{block}"
    );
}

#[test]
fn the_quick_start_is_the_example() {
    let example = include_str!("../examples/quick_start.rs");
    assert_in_readme(
        &format!("```rust\n{}```", program(example)),
        "examples/quick_start.rs",
    );
    // The dependencies the example's header names are the README's, line for line.
    let toml: String = example
        .lines()
        .filter_map(|line| line.strip_prefix("//! "))
        .filter(|line| line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_in_readme(
        &format!("```toml\n[dependencies]\n{toml}```"),
        "the dependencies of examples/quick_start.rs",
    );
}

#[test]
fn the_simulator_test_is_the_test_file() {
    assert_in_readme(
        &format!(
            "```rust\n{}```",
            program(include_str!("testing_with_the_simulator.rs"))
        ),
        "tests/testing_with_the_simulator.rs",
    );
}
