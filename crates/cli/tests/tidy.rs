//! Tidy: keeps the tree honest. Fails on source files over 1,500 lines, functions over 70 lines
//! outside tests, leftover debugging or placeholder macros outside tests, and an OpenAPI
//! operation that lists one status twice (the document keeps only the last).

use std::path::{Path, PathBuf};

/// Past this a file holds more than one concept (STYLE.md, Layout).
const FILE_LINES_MAX: usize = 1_500;
/// Past this a function does more than one thing (STYLE.md, Layout).
const FUNCTION_LINES_MAX: usize = 70;

#[test]
fn tree_is_tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    collect_rust_files(&root.join("crates"), &mut files);
    assert!(
        files.len() > 10,
        "tidy found too few files to check: {files:?}"
    );
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        check_file(path, &text, &mut problems);
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

#[test]
fn tidy_catches_what_it_bans() {
    let banned = format!("fn f() {{\n    {}(1);\n}}\n", ["db", "g!"].concat());
    let mut problems = Vec::new();
    check_file(Path::new("crates/x/src/lib.rs"), &banned, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");

    let long = format!("fn f() {{\n{}}}\n", "    x();\n".repeat(FUNCTION_LINES_MAX));
    problems.clear();
    check_file(Path::new("crates/x/src/lib.rs"), &long, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");

    // Declarations without a body, however their signatures wrap, are not functions to measure.
    let declarations = format!(
        "trait T {{\n{}}}\nimpl T for X {{\n    fn f(&self) -> u8 {{\n        1\n    }}\n}}\n",
        "    fn f(\n        &self,\n    ) -> u8;\n".repeat(FUNCTION_LINES_MAX)
    );
    problems.clear();
    check_file(
        Path::new("crates/x/src/lib.rs"),
        &declarations,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");

    let twice = concat!(
        "#[utoipa::path(\n    get,\n    responses(\n",
        "        (status = 200, description = \"A\"),\n",
        "        (status = 404, description = \"B\"),\n",
        "        (status = 404, description = \"C\"),\n",
        "    )\n)]\npub async fn f() {}\n",
    );
    problems.clear();
    check_file(Path::new("crates/x/src/lib.rs"), twice, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("status 404"), "{problems:?}");

    problems.clear();
    check_file(Path::new("crates/x/tests/t.rs"), &banned, &mut problems);
    assert!(problems.is_empty(), "tests may use anything: {problems:?}");
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                collect_rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check_file(path: &Path, text: &str, problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let shown = path.display();
    if lines.len() > FILE_LINES_MAX {
        problems.push(format!(
            "{shown}: {} lines (max {FILE_LINES_MAX})",
            lines.len()
        ));
    }
    // Integration tests, `tests/` module folders and `tests.rs` test modules (`#[cfg(test)] mod
    // tests;`) may be long and use anything.
    let is_test = path.components().any(|c| c.as_os_str() == "tests")
        || path.file_stem().is_some_and(|stem| stem == "tests");
    if is_test {
        return;
    }
    // Test modules sit at the bottom of a file, after `#[cfg(test)]`.
    let code_end = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    let banned = [
        ["db", "g!("].concat(),
        ["to", "do!("].concat(),
        ["unimpl", "emented!("].concat(),
        ["FIX", "ME"].concat(),
    ];
    for (number, line) in lines[..code_end].iter().enumerate() {
        for word in &banned {
            if line.contains(word.as_str()) {
                problems.push(format!("{shown}:{}: `{word}` outside tests", number + 1));
            }
        }
    }
    check_function_lengths(path, &lines[..code_end], problems);
    check_openapi_statuses(path, &lines[..code_end], problems);
}

/// In each `#[utoipa::path(...)]` attribute, every `(status = N, ...)` once: the responses of
/// an operation are a map by status, so a second entry silently replaces the first.
fn check_openapi_statuses(path: &Path, lines: &[&str], problems: &mut Vec<String>) {
    let mut statuses: Option<Vec<&str>> = None;
    for (number, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.starts_with("#[utoipa::path(") {
            statuses = Some(Vec::new());
        } else if line == ")]" {
            statuses = None;
        }
        let (Some(seen), Some(rest)) = (statuses.as_mut(), line.strip_prefix("(status = ")) else {
            continue;
        };
        let status = rest.split([',', ')']).next().unwrap_or(rest).trim();
        if seen.contains(&status) {
            let shown = path.display();
            problems.push(format!(
                "{shown}:{}: status {status} listed twice in one operation",
                number + 1
            ));
        }
        seen.push(status);
    }
}

/// True when the signature starting at `lines[0]` opens a body on its own line. rustfmt breaks
/// a long signature over lines, so a trait method without a body may end in `;` lines below its
/// `fn`; a one-line function (`fn f() {}`) has nothing to measure.
fn has_body(lines: &[&str]) -> bool {
    lines
        .iter()
        .map(|l| l.trim_end())
        .find(|l| l.ends_with('{') || l.ends_with(';') || l.ends_with('}'))
        .is_some_and(|l| l.ends_with('{'))
}

/// rustfmt puts a function's closing brace at the indentation of its `fn` line.
fn check_function_lengths(path: &Path, lines: &[&str], problems: &mut Vec<String>) {
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || !has_body(&lines[start..]) {
            continue;
        }
        let indent = &line[..line.len() - trimmed.len()];
        let closing = format!("{indent}}}");
        if let Some(length) = lines[start..].iter().position(|l| *l == closing) {
            if length + 1 > FUNCTION_LINES_MAX {
                problems.push(format!(
                    "{}:{}: function of {} lines (max {FUNCTION_LINES_MAX})",
                    path.display(),
                    start + 1,
                    length + 1
                ));
            }
        }
    }
}
