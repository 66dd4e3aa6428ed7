//! The crate's modules form layers whose imports only point down (ARCHITECTURE.md): each
//! top-level module of `src/` may name, in code outside its `#[cfg(test)]` modules, only modules
//! of lower layers and its own submodules. A path through a re-export at the crate root
//! (`crate::Error`) is refused too: it would hide which layer it reaches into.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first; a module may use those before it. The adapters and the hidden
/// fuzzing entry points are on top; the middleware adapts the reqwest adapter.
const LAYERS: &[&[&str]] = &[
    &["protocol"],
    &["info"],
    &["dialect"],
    &["token"],
    &["error"],
    &["options", "progress"],
    &["config", "body"],
    &["telemetry"],
    &["future"],
    &["service"],
    &["layer"],
    &["reqwest", "fuzzing"],
    &["middleware"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/future/core.rs` → `future`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.trim_end_matches(".rs").to_owned()
}

/// The code of `text` that is compiled outside tests: comments and `#[cfg(test)]` modules left
/// out (such a module runs to the end of its file in this crate).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The crate modules a piece of code names: `crate::x` and `crate::{x, y}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each top-level item of the group (`crate::{a::{b, c}, d}`).
            let mut depth = 0;
            let mut item = String::new();
            let mut in_name = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        named.insert(std::mem::take(&mut item));
                        in_name = true;
                        continue;
                    }
                    _ => {}
                }
                if in_name && depth == 0 && (c.is_alphanumeric() || c == '_') {
                    item.push(c);
                } else if !item.is_empty() || !c.is_whitespace() {
                    in_name = false;
                }
            }
            named.insert(item);
            named.remove("");
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            named.insert(name);
        }
    }
    named
}

#[test]
fn imports_only_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no layer",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        for named in named_modules(&code(&text)) {
            if named == module {
                continue;
            }
            match layer_of(&named) {
                Some(theirs) if theirs < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` uses `{named}`, which is not below it",
                    file.display()
                )),
                None => violations.push(format!(
                    "{}: `{module}` names `crate::{named}`, not a module of a layer",
                    file.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_reads_paths_groups_and_skips_tests_and_comments() {
    let text = "use crate::a::b;\n// crate::comment\nlet x = crate::c::d(); // crate::tail\nuse crate::{e, f::g};\nuse crate::{h::{i, j}, k};\n#[cfg(test)]\nmod tests {\n    use crate::t;\n}\n";
    let named: Vec<String> = named_modules(&code(text)).into_iter().collect();
    assert_eq!(named, ["a", "c", "e", "f", "h", "k"]);
}
