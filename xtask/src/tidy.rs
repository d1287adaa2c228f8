//! Tidy checks run as tests: every Rust module opens with a `//!` doc line, no test is hidden
//! with the `ignore` attribute, no trailing whitespace, libraries do not print, only sett-store
//! spells key names, and every crate has a row in the code map of docs/architecture.md.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !matches!(name, "target" | ".git" | ".sett" | "fuzz") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let root = crate::project_root();
    let mut files = Vec::new();
    for d in ["crates", "bins", "xtask", "tests"] {
        rust_files(&root.join(d), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect()
}

#[test]
fn every_module_has_a_doc_line() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, t)| !t.trim_start().starts_with("//!"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a leading `//!` line: {missing:#?}");
}

#[test]
fn no_ignored_tests() {
    let marker = ["#[", "ignore"].concat();
    let bad: Vec<String> =
        sources().into_iter().filter(|(_, t)| t.contains(&marker)).map(|(p, _)| p.display().to_string()).collect();
    assert!(bad.is_empty(), "tests must not be ignored: {bad:#?}");
}

#[test]
fn no_trailing_whitespace() {
    let mut bad = Vec::new();
    for (p, t) in sources() {
        for (i, line) in t.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                bad.push(format!("{}:{}", p.display(), i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "trailing whitespace: {bad:#?}");
}

#[test]
fn libraries_do_not_print() {
    let root = crate::project_root().join("crates");
    let macros = ["println!", "eprintln!", "print!(", "eprint!(", "dbg!("];
    let mut bad = Vec::new();
    for (p, t) in sources() {
        if !p.starts_with(&root) || p.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        for m in macros {
            if t.contains(m) {
                bad.push(format!("{} uses {m}", p.display()));
            }
        }
    }
    assert!(bad.is_empty(), "library crates must log through tracing, not print: {bad:#?}");
}

/// The code of a library or binary (not its tests): the files under `crates/*/src` and
/// `bins/*/src`, comment lines removed (comments may name keys to explain them).
fn product_code() -> Vec<(PathBuf, String)> {
    let root = crate::project_root();
    sources()
        .into_iter()
        .filter(|(p, _)| {
            let rel = p.strip_prefix(&root).unwrap_or(p);
            let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
            let top = parts.next().unwrap_or_default();
            let _crate = parts.next();
            matches!(top.as_str(), "crates" | "bins") && parts.next().as_deref() == Some("src")
        })
        .map(|(p, t)| {
            let code: Vec<&str> = t.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            (p, code.join("\n"))
        })
        .collect()
}

#[test]
fn only_sett_store_knows_key_names() {
    let store = crate::project_root().join("crates").join("sett-store");
    let keys = ["\"sett:{", "sett:instances", "sett:audit", "sett:instance_counter", "{{{instance}}}"];
    let mut bad = Vec::new();
    for (p, code) in product_code() {
        if p.starts_with(&store) {
            continue;
        }
        for k in keys {
            if code.contains(k) {
                bad.push(format!("{} spells the key {k}: call sett-store's typed API (keys.rs) instead", p.display()));
            }
        }
    }
    assert!(bad.is_empty(), "key names outside sett-store: {bad:#?}");
}

#[test]
fn every_crate_is_in_the_code_map() {
    let root = crate::project_root();
    let map = std::fs::read_to_string(root.join("docs").join("architecture.md")).unwrap_or_default();
    let mut missing = Vec::new();
    for dir in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            if e.path().join("Cargo.toml").is_file() {
                let name = format!("`{dir}/{}`", e.file_name().to_string_lossy());
                if !map.contains(&name) {
                    missing.push(name);
                }
            }
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "add a row to the code map of docs/architecture.md for: {missing:?}");
}
