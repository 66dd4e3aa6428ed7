//! The documents stay true to the code. Every Rust block of the README is compiled by
//! `cargo test --doc` (`ReadmeDoctests` in `src/lib.rs`); this file checks what the compiler
//! cannot:
//!
//! - the README's Quick start is `examples/quick_start.rs` (without the file's leading `//!`
//!   lines), and the Cargo.toml lines it lists are the ones the example's header names;
//! - docs/TESTING.md's simulator test is `tests/testing_with_the_simulator.rs`;
//! - the README's dialect of your own is the `Dialect` trait's example;
//! - the tables kept in two places, the README and the crate documentation, are equal, and the
//!   feature table names Cargo.toml's public features and defaults.

const README: &str = include_str!("../README.md");
const TESTING: &str = include_str!("../docs/TESTING.md");
const LIB: &str = include_str!("../src/lib.rs");
const MANIFEST: &str = include_str!("../Cargo.toml");

/// `source` without its leading inner doc comment.
fn program(source: &str) -> String {
    source
        .lines()
        .skip_while(|line| line.starts_with("//!"))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn assert_in(document: &str, name: &str, block: &str, file: &str) {
    assert!(
        document.contains(block),
        "{name} has no block equal to {file}; copy it there:\n{block}"
    );
}

/// The text of a doc comment: each line of `source` that starts with `prefix`, without it (and
/// without the one space after it).
fn doc_text(source: &str, prefix: &str) -> String {
    source
        .lines()
        .map(str::trim_start)
        .filter_map(|line| line.strip_prefix(prefix))
        .map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line)))
        .collect()
}

/// Every table (a run of lines starting with `|`) of `markdown`, in order.
fn tables(markdown: &str) -> Vec<String> {
    let mut tables = Vec::new();
    let mut current = String::new();
    for line in markdown.lines() {
        if line.starts_with('|') {
            current.push_str(line);
            current.push('\n');
        } else if !current.is_empty() {
            tables.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tables.push(current);
    }
    tables
}

/// The table of `markdown` whose header row is `header`.
fn table<'a>(tables: &'a [String], header: &str, document: &str) -> &'a str {
    tables
        .iter()
        .find(|table| table.lines().next() == Some(header))
        .unwrap_or_else(|| panic!("{document} has no table headed {header}"))
}

#[test]
fn the_quick_start_is_the_example() {
    let example = include_str!("../examples/quick_start.rs");
    assert_in(
        README,
        "the README",
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
    assert_in(
        README,
        "the README",
        &format!("```toml\n[dependencies]\n{toml}```"),
        "the dependencies of examples/quick_start.rs",
    );
}

#[test]
fn the_simulator_test_is_the_test_file() {
    assert_in(
        TESTING,
        "docs/TESTING.md",
        &format!(
            "```rust\n{}```",
            program(include_str!("testing_with_the_simulator.rs"))
        ),
        "tests/testing_with_the_simulator.rs",
    );
}

#[test]
fn the_dialect_of_your_own_is_the_traits_example() {
    let docs = doc_text(include_str!("../src/dialect/mod.rs"), "///");
    let start = docs
        .find("```\n")
        .expect("the Dialect trait has an example")
        + 4;
    let end = start + docs[start..].find("```\n").unwrap();
    let example: String = docs[start..end]
        .lines()
        .filter(|line| !line.starts_with("# ") && *line != "#")
        .map(|line| format!("{line}\n"))
        .collect();
    assert_in(
        README,
        "the README",
        &format!("```rust\n{example}```"),
        "the Dialect trait's example (src/dialect/mod.rs, hidden lines left out)",
    );
}

#[test]
fn the_readme_and_the_crate_docs_have_the_same_tables() {
    let readme = tables(README);
    let crate_docs = tables(&doc_text(LIB, "//!"));
    for header in ["| feature | default | what |", "| crate | what |"] {
        assert_eq!(
            table(&readme, header, "the README"),
            table(&crate_docs, header, "src/lib.rs"),
            "the README's table headed {header} differs from the crate documentation's"
        );
    }
}

#[test]
fn the_feature_table_is_the_manifests() {
    // The `[features]` section's names, and the default ones.
    let section: Vec<&str> = MANIFEST
        .lines()
        .skip_while(|line| *line != "[features]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.starts_with('#') && line.contains(" = "))
        .collect();
    let name = |line: &&str| line.split(" = ").next().unwrap().trim().to_string();
    let mut public: Vec<String> = section
        .iter()
        .map(name)
        // `default` is no feature; a leading underscore (`_fuzzing`) is no public API.
        .filter(|name| name != "default" && !name.starts_with('_'))
        .collect();
    let defaults_line = section
        .iter()
        .find(|line| name(line) == "default")
        .expect("Cargo.toml names default features");
    let mut defaults: Vec<String> = defaults_line
        .split(['[', ']', ',', '"'])
        .map(str::trim)
        .filter(|part| !part.is_empty() && !part.contains('='))
        .map(str::to_string)
        .collect();

    let readme = tables(README);
    let rows: Vec<Vec<String>> = table(&readme, "| feature | default | what |", "the README")
        .lines()
        .skip(2)
        .map(|row| {
            row.split('|')
                .map(|cell| cell.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect();
    let mut documented: Vec<String> = rows.iter().map(|row| row[1].clone()).collect();
    let mut documented_defaults: Vec<String> = rows
        .iter()
        .filter(|row| row[2] == "on")
        .map(|row| row[1].clone())
        .collect();
    for list in [
        &mut public,
        &mut defaults,
        &mut documented,
        &mut documented_defaults,
    ] {
        list.sort();
    }
    assert_eq!(
        documented, public,
        "the feature table names other features than Cargo.toml"
    );
    assert_eq!(
        documented_defaults, defaults,
        "the feature table's defaults are not Cargo.toml's"
    );
}
