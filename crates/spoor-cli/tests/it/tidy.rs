//! Tidy: checks on the code base itself, run by `cargo test`.
//!
//! - every `.rs` file starts with a `//!` module doc;
//! - no ignored or should-panic tests, and no leftover debugging or unfinished-code macros,
//!   anywhere (the needles are built with `concat!` so this file does not match itself);
//! - the Spec crate depends on no async runtime, HTTP crate or database.

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/spoor-cli has a workspace root")
        .to_path_buf()
}

/// Every `.rs` file of the repository, skipping build output, dependencies and VCS data.
fn rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![workspace_root()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry.file_type().expect("file type");
            if file_type.is_dir() {
                if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                    stack.push(path);
                }
            } else if file_type.is_file() && name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let files = rust_files();
    assert!(files.len() > 10, "found only {} .rs files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            !text.trim_start_matches('\u{feff}').starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_ignored_tests_and_no_leftover_macros() {
    let needles = [
        concat!("#[", "ignore"),
        concat!("#[", "should_panic"),
        concat!("to", "do!("),
        concat!("d", "bg!("),
        concat!("unimple", "mented!("),
    ];
    let mut found = Vec::new();
    for path in rust_files() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            for needle in needles {
                if line.contains(needle) {
                    found.push(format!(
                        "{}:{}: {}",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "forbidden in the code base:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_spec_crate_has_no_io_dependencies() {
    let manifest_path = workspace_root().join("crates/spoor-spec/Cargo.toml");
    let text = fs::read_to_string(&manifest_path).expect("spoor-spec manifest");
    let manifest: toml::Table = text.parse().expect("valid TOML");
    let forbidden = [
        "tokio",
        "axum",
        "hyper",
        "hyper-util",
        "reqwest",
        "rusqlite",
        "tokio-postgres",
        "tower",
    ];
    let mut tables: Vec<(&str, &toml::Table)> = Vec::new();
    if let Some(deps) = manifest.get("dependencies").and_then(toml::Value::as_table) {
        tables.push(("dependencies", deps));
    }
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for target in targets.values().filter_map(toml::Value::as_table) {
            if let Some(deps) = target.get("dependencies").and_then(toml::Value::as_table) {
                tables.push(("target dependencies", deps));
            }
        }
    }
    assert!(!tables.is_empty(), "spoor-spec has no [dependencies] table");
    for (section, deps) in tables {
        for name in deps.keys() {
            assert!(
                !forbidden.contains(&name.as_str()),
                "spoor-spec [{section}] must not depend on {name}: the Spec crate does no IO"
            );
        }
    }
}

#[test]
fn the_spec_crate_has_no_io_dependencies_even_transitively() {
    let lock_path = workspace_root().join("Cargo.lock");
    let text = fs::read_to_string(&lock_path).expect("Cargo.lock");
    let lock: toml::Table = text.parse().expect("valid TOML");
    let packages = lock
        .get("package")
        .and_then(toml::Value::as_array)
        .expect("[[package]] entries");
    // A dependency is written "name" or "name version" in Cargo.lock; names suffice here.
    let deps_of = |name: &str| -> Vec<String> {
        packages
            .iter()
            .filter_map(toml::Value::as_table)
            .filter(|p| p.get("name").and_then(toml::Value::as_str) == Some(name))
            .flat_map(|p| {
                p.get("dependencies")
                    .and_then(toml::Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|d| {
                d.as_str()
                    .map(|s| s.split(' ').next().unwrap_or(s).to_owned())
            })
            .collect()
    };
    let forbidden = [
        "tokio",
        "axum",
        "hyper",
        "reqwest",
        "rusqlite",
        "tokio-postgres",
        "mio",
    ];
    let mut seen: Vec<String> = Vec::new();
    // Start from the normal dependencies: dev-dependencies (proptest, criterion) are not
    // part of the library.
    let manifest: toml::Table =
        fs::read_to_string(workspace_root().join("crates/spoor-spec/Cargo.toml"))
            .expect("spoor-spec manifest")
            .parse()
            .expect("valid TOML");
    let mut stack: Vec<(String, String)> = manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|deps| {
            deps.keys()
                .map(|name| (name.clone(), format!("spoor-spec -> {name}")))
                .collect()
        })
        .unwrap_or_default();
    while let Some((name, chain)) = stack.pop() {
        if seen.contains(&name) {
            continue;
        }
        assert!(
            !forbidden.contains(&name.as_str()),
            "spoor-spec depends on {name} through {chain}: the Spec crate does no IO"
        );
        for dep in deps_of(&name) {
            let next_chain = format!("{chain} -> {dep}");
            stack.push((dep, next_chain));
        }
        seen.push(name);
    }
    assert!(
        seen.iter().any(|n| n == "serde_json"),
        "the walk found serde_json: {seen:?}"
    );
}
