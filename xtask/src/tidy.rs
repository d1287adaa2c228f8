//! Tidy checks run as tests: every Rust module opens with a `//!` doc line, no test is hidden
//! with the `ignore` attribute, no trailing whitespace, libraries do not print, only sett-store
//! spells key names, every crate has a row in the code map of docs/architecture.md, the event
//! table there names exactly the event kinds of `sett_core::event`, no public sett-store or
//! sett-ops function takes or returns an untyped `serde_json::Value` (nor has a public field of
//! it), no source file outside the tests grows past 800 lines unless listed with why, sett-core
//! reads no clock and no randomness, ids are derived in one module (`sett_core::derive`), and
//! every dependency of a workspace member is named by its sources. Each check fails when it
//! finds nothing to check (no files, no members, no table), never passes vacuously.
//! Times are formatted in one place (sett_store::time). The Python demo team is a twin of the
//! shell one (same agents in `examples/`), and the Python SDK declares no dependency. No HTML is
//! escaped or built by hand outside the console's maud templates (`sett-console/src/html/`).
//! Daemon code does not log `instance` or `component` again (`tidy/log_fields.rs`).

use std::path::{Path, PathBuf};

mod derive;
mod log_fields;

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
    // Every check below reads these files: finding none (a moved directory, a wrong root) must
    // fail the checks, not pass them vacuously.
    assert!(files.len() > 100, "the tidy checks found only {} Rust files under {}", files.len(), root.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// The Rust files under `dir`, which must hold some: a check over an empty list passes vacuously.
fn rust_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    assert!(!files.is_empty(), "the tidy checks found no Rust file under {}", dir.display());
    files
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
    let mut checked = 0;
    for (p, t) in sources() {
        if !p.starts_with(&root) || p.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        checked += 1;
        for m in macros {
            if t.contains(m) {
                bad.push(format!("{} uses {m}", p.display()));
            }
        }
    }
    assert!(checked >= 50, "found only {checked} library source files under {}", root.display());
    assert!(bad.is_empty(), "library crates must log through tracing, not print: {bad:#?}");
}

/// The code of a library or binary (not its tests): the files under `crates/*/src` and
/// `bins/*/src`, comment lines removed (comments may name keys to explain them).
fn product_code() -> Vec<(PathBuf, String)> {
    let root = crate::project_root();
    let files = sources()
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
        .collect::<Vec<_>>();
    assert!(files.len() > 50, "the tidy checks found only {} product source files", files.len());
    files
}

/// The instance key names `crates/sett-store/src/keys.rs` documents (the first column of its
/// key table, e.g. `artifact:<id>`, `events`), relative to the instance prefix.
fn documented_relative_keys(keys_rs: &str) -> Vec<String> {
    keys_rs
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Where `code` spells the relative key name `name`: a string literal that starts with its
/// fixed part (`"artifact:` of `artifact:<id>`, `"questions:answers"`) and goes on as a key
/// would (not with a space: `"claim:    {}"` is a label); a one-word name (`events`, `lock`,
/// everyday words) only where code compares a string with it or matches on it.
fn key_name_spellings(code: &str, name: &str) -> Vec<String> {
    let fixed = name.split('<').next().unwrap_or(name);
    let mut found = Vec::new();
    if fixed.contains(':') {
        let literal = format!("\"{fixed}");
        for (at, _) in code.match_indices(&literal) {
            let next = code[at + literal.len()..].chars().next();
            let goes_on = if fixed.ends_with(':') {
                next.is_some_and(|c| !c.is_whitespace())
            } else {
                matches!(next, Some('"' | ':' | '{'))
            };
            if goes_on {
                found.push(literal.clone());
            }
        }
    } else {
        for pattern in [format!("== \"{fixed}\""), format!("!= \"{fixed}\""), format!("\"{fixed}\" =>")] {
            if code.contains(&pattern) {
                found.push(pattern);
            }
        }
    }
    found
}

#[test]
fn only_sett_store_knows_key_names() {
    let store = crate::project_root().join("crates").join("sett-store");
    let keys_rs = std::fs::read_to_string(store.join("src").join("keys.rs")).expect("crates/sett-store/src/keys.rs");
    let relative = documented_relative_keys(&keys_rs);
    assert!(relative.len() >= 30, "found only {relative:?} in the key table of crates/sett-store/src/keys.rs");
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
        for name in &relative {
            for spelled in key_name_spellings(&code, name) {
                bad.push(format!(
                    "{} spells the key name {name} ({spelled}): use sett_store::RelativeKey or a sett-store call",
                    p.display()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "key names outside sett-store: {bad:#?}");
}

#[test]
fn the_key_name_matcher_finds_relative_names() {
    let keys_rs = "//! | key | type |\n//! |---|---|\n//! | `artifact:<id>` | hash |\n//! | `events` | stream |\n";
    assert_eq!(documented_relative_keys(keys_rs), ["artifact:<id>", "events"]);
    assert!(!key_name_spellings(r#"d.key.strip_prefix("artifact:")"#, "artifact:<id>").is_empty());
    assert!(!key_name_spellings(r#"format!("artifact:{id}")"#, "artifact:<id>").is_empty());
    assert!(key_name_spellings(r#"format!("claim:            {}", c)"#, "claim:<id>").is_empty());
    assert!(!key_name_spellings(r#"if d.key == "questions:answers" {"#, "questions:answers").is_empty());
    assert!(key_name_spellings(r#"let q = "questions:answered by";"#, "questions:answers").is_empty());
    assert!(!key_name_spellings(r#"if d.key == "lock" {"#, "lock").is_empty());
    assert!(!key_name_spellings(r#"match k { "events" => 1, _ => 2 }"#, "events").is_empty());
    assert!(key_name_spellings(r#"["api", "v1", "events"]"#, "events").is_empty());
}

#[test]
fn every_crate_is_in_the_code_map() {
    let root = crate::project_root();
    let map = std::fs::read_to_string(root.join("docs").join("architecture.md")).expect("docs/architecture.md");
    let mut missing = Vec::new();
    let mut checked = 0;
    for dir in ["crates", "bins"] {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("reading {dir}/: {e}"));
        for e in entries.flatten() {
            if e.path().join("Cargo.toml").is_file() {
                checked += 1;
                let name = format!("`{dir}/{}`", e.file_name().to_string_lossy());
                if !map.contains(&name) {
                    missing.push(name);
                }
            }
        }
    }
    missing.sort();
    assert!(checked >= 10, "the code-map check found only {checked} crates under crates/ and bins/");
    assert!(missing.is_empty(), "add a row to the code map of docs/architecture.md for: {missing:?}");
}

/// The kinds named in the first column of the event table of docs/architecture.md.
fn documented_event_kinds(architecture: &str) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut in_table = false;
    for line in architecture.lines() {
        if line.starts_with("| kind |") {
            in_table = true;
            continue;
        }
        if in_table && !line.starts_with('|') {
            break;
        }
        let Some(first) = line.split('|').nth(1).filter(|_| in_table) else { continue };
        kinds.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    kinds
}

#[test]
fn the_event_table_names_every_event_kind() {
    let root = crate::project_root();
    let doc = std::fs::read_to_string(root.join("docs").join("architecture.md")).expect("docs/architecture.md");
    let documented = documented_event_kinds(&doc);
    assert!(!documented.is_empty(), "docs/architecture.md has no event table (a line starting `| kind |`)");
    let kinds: Vec<&str> = sett_core::event::EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let undocumented: Vec<&&str> = kinds.iter().filter(|k| !documented.iter().any(|d| d == *k)).collect();
    let unknown: Vec<&String> = documented.iter().filter(|d| !kinds.contains(&d.as_str())).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/architecture.md's event table and sett_core::event::EventKind disagree: \
         kinds without a row: {undocumented:?}; rows naming no kind: {unknown:?}"
    );
}

/// The signatures (up to the body or `;`) of the `pub fn`s of a source file, and its public
/// fields (`pub name: Type`), with their line.
fn public_fn_signatures(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let t = line.trim_start();
        if !(t.starts_with("pub fn ") || t.starts_with("pub async fn ") || t.starts_with("pub const fn ")) {
            continue;
        }
        let rest: String = code.lines().skip(i).collect::<Vec<_>>().join("\n");
        let end = rest.find(['{', ';']).unwrap_or(rest.len());
        out.push((i + 1, rest[..end].to_owned()));
    }
    // A public field is part of a type's signature too (an export record's value was one).
    for (i, line) in code.lines().enumerate() {
        let t = line.trim_start();
        let field = t.strip_prefix("pub ").and_then(|r| r.split_once(':')).filter(|(name, ty)| {
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') && !ty.starts_with(':')
        });
        if field.is_some() {
            out.push((i + 1, t.trim_end_matches(',').to_owned()));
        }
    }
    out
}

#[test]
fn the_signature_reader_finds_functions_and_public_fields() {
    let code = "pub fn f(v: Value) -> u8 {\n}\npub struct D {\n    pub value: serde_json::Value,\n    key: String,\n}\npub use a::b;";
    let sigs: Vec<String> = public_fn_signatures(code).into_iter().map(|(_, s)| s).collect();
    assert_eq!(sigs, vec!["pub fn f(v: Value) -> u8 ".to_owned(), "pub value: serde_json::Value".to_owned()]);
}

#[test]
fn store_and_ops_signatures_are_typed() {
    // (crate, the least number of public functions it has: finding fewer means the check looked
    // in the wrong place).
    for (krate, least) in [("sett-store", 100), ("sett-ops", 100)] {
        let src = crate::project_root().join("crates").join(krate).join("src");
        let mut bad = Vec::new();
        let mut checked = 0;
        for p in rust_files_in(&src) {
            let code = std::fs::read_to_string(&p).unwrap_or_default();
            // A bare `Value` is serde_json's only where the file imports it so.
            let imports_value = code.lines().any(|l| l.starts_with("use serde_json::") && l.contains("Value"));
            for (line, sig) in public_fn_signatures(&code) {
                checked += 1;
                let bare = imports_value
                    && sig.split(|c: char| !c.is_alphanumeric() && c != '_' && c != ':').any(|w| w == "Value");
                if sig.contains("serde_json::Value") || sig.contains("serde_json::Map") || bare {
                    bad.push(format!("{}:{line}", p.display()));
                }
            }
        }
        assert!(checked >= least, "found only {checked} public functions in crates/{krate}/src");
        assert!(
            bad.is_empty(),
            "public {krate} functions take or return serde_json::Value: give the data a type (sett-core's \
             events and records), or wrap JSON that is truly opaque in a named type: {bad:#?}"
        );
    }
}

/// The most lines a Rust source file may have before its inline test module: past that, split
/// it into a module directory by concern.
const MAX_MODULE_LINES: usize = 800;

/// Files allowed past [`MAX_MODULE_LINES`], each with why. A file that shrinks below the limit
/// must leave this list (the check fails), so the list stays true.
const LONG_MODULES: &[(&str, &str)] =
    &[("xtask/src/bench.rs", "the bench driver's scenarios and report; a dev tool, not shipped")];

/// The lines of `code` before its inline test module (`#[cfg(test)]` at the start of a line).
fn lines_before_tests(code: &str) -> usize {
    code.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count()
}

#[test]
fn modules_stay_small() {
    let root = crate::project_root();
    let mut long = Vec::new();
    let mut checked = 0;
    for (p, code) in sources() {
        let rel = p.strip_prefix(&root).unwrap_or(&p).to_string_lossy().replace('\\', "/");
        // Test files are lists of scenarios; their size is not a design smell.
        if rel.starts_with("tests/") || rel.contains("/tests/") {
            continue;
        }
        checked += 1;
        let n = lines_before_tests(&code);
        if n > MAX_MODULE_LINES {
            long.push((rel, n));
        }
    }
    assert!(checked > 100, "found only {checked} non-test Rust files");
    let listed: Vec<&str> = LONG_MODULES.iter().map(|(p, _)| *p).collect();
    let unlisted: Vec<_> = long.iter().filter(|(p, _)| !listed.contains(&p.as_str())).collect();
    assert!(
        unlisted.is_empty(),
        "Rust files over {MAX_MODULE_LINES} lines (before their tests): split them into a module directory by \
         concern, or list them in LONG_MODULES with why: {unlisted:#?}"
    );
    let stale: Vec<_> = listed.iter().filter(|p| !long.iter().any(|(l, _)| l == *p)).collect();
    assert!(stale.is_empty(), "LONG_MODULES lists files that are no longer over the limit (remove them): {stale:#?}");
}

#[test]
fn the_module_size_counts_lines_before_the_tests() {
    assert_eq!(lines_before_tests("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
    assert_eq!(lines_before_tests("a\n    #[cfg(test)]\nb\n"), 3);
}

#[test]
fn sett_core_reads_no_clock_and_no_randomness() {
    // The whole crate, its tests included: they take ids from a counter and times as numbers, so
    // they need no exemption. Comment lines are skipped (they may explain the rule).
    let core = crate::project_root().join("crates").join("sett-core");
    let files = rust_files_in(&core);
    let banned = [
        "SystemTime",
        "UNIX_EPOCH",
        "Instant::now",
        "now_v7",
        "new_v4",
        "Uuid::now",
        "rand::",
        "thread_rng",
        "getrandom",
        "Timestamp::now",
        "Zoned::now",
        "Utc::now",
        "Local::now",
    ];
    let mut bad = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            for b in banned.iter().filter(|b| line.contains(**b)) {
                bad.push(format!("{}:{}: {b}", p.display(), i + 1));
            }
        }
    }
    // Nor may its manifest let it: no RNG or clock crate, no uuid feature that reads a clock or
    // randomness (sett-core inherits the workspace's uuid features, so those are checked too).
    let root = crate::project_root();
    let uuid_clock_or_rng = |line: &str| ["\"v1\"", "\"v4\"", "\"v6\"", "\"v7\""].iter().any(|f| line.contains(f));
    let core_manifest = std::fs::read_to_string(core.join("Cargo.toml")).expect("crates/sett-core/Cargo.toml");
    for line in core_manifest.lines().map(str::trim) {
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if matches!(name, "rand" | "getrandom" | "fastrand" | "chrono" | "jiff" | "time")
            || (name == "uuid" && uuid_clock_or_rng(line))
        {
            bad.push(format!("crates/sett-core/Cargo.toml: {line}"));
        }
    }
    let workspace_manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    for line in workspace_manifest.lines().map(str::trim) {
        if line.starts_with("uuid ") && uuid_clock_or_rng(line) {
            bad.push(format!("Cargo.toml (inherited by sett-core): {line}"));
        }
    }
    assert!(
        bad.is_empty(),
        "sett-core reads no clock and no randomness: take times as numbers and ids from the caller \
         (sett_store::now_ms, new_artifact_id, new_claim_id): {bad:#?}"
    );
}

/// Dependencies no source names, with why they are needed anyway: `(package, dependency, why)`.
const DEPENDENCIES_USED_WITHOUT_A_PATH: &[(&str, &str, &str)] = &[];

/// The workspace members: the `members` entries of the root manifest, a trailing `/*` expanded
/// to every directory below it that has a Cargo.toml.
fn workspace_members(root: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    // The `members = [ … ]` array, on one line or several.
    let start = manifest.find("members").expect("the workspace manifest has `members`");
    let array = &manifest[start..];
    let array = &array[..array.find(']').expect("`members` closes its array")];
    let mut members = Vec::new();
    for entry in array.split('"').skip(1).step_by(2) {
        if let Some(dir) = entry.strip_suffix("/*") {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
            members.extend(entries.flatten().map(|e| e.path()).filter(|p| p.join("Cargo.toml").is_file()));
        } else {
            members.push(root.join(entry));
        }
    }
    members.sort();
    for expected in ["crates/sett-core", "crates/sett-store", "bins/sett", "xtask"] {
        assert!(
            members.contains(&root.join(expected)),
            "workspace members read from Cargo.toml lack {expected}: {members:?}"
        );
    }
    members
}

#[test]
fn only_sett_spawn_may_use_unsafe() {
    // The workspace forbids `unsafe` code; a crate keeps that by inheriting the workspace's lints.
    // sett-spawn alone opts out (raw clone3 and the child's system calls), with its own lints
    // denying undocumented unsafe blocks.
    let root = crate::project_root();
    let exempt = root.join("crates").join("sett-spawn");
    let mut opted_out = Vec::new();
    for member in workspace_members(&root) {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).expect("a member's Cargo.toml");
        let inherits = manifest.split("\n[").any(|section| {
            section.starts_with("lints]") && section.lines().skip(1).any(|l| l.replace(' ', "") == "workspace=true")
        });
        if member == exempt {
            assert!(!inherits, "sett-spawn is expected to declare its own lints");
            assert!(
                manifest.contains("undocumented_unsafe_blocks = \"deny\""),
                "sett-spawn must deny undocumented unsafe"
            );
        } else if !inherits {
            opted_out.push(member.strip_prefix(&root).unwrap_or(&member).display().to_string());
        }
    }
    assert!(
        opted_out.is_empty(),
        "these crates do not inherit the workspace's lints (which forbid unsafe code); add `[lints]\\nworkspace = true`: {opted_out:?}"
    );
}

/// The dependencies a manifest declares (in `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]`, target-specific ones included), by the name the code uses: the key
/// (a `package = …` rename keeps it), with `-` as `_`.
fn manifest_dependencies(manifest: &str) -> Vec<String> {
    let is_table = |t: &str| {
        ["dependencies", "dev-dependencies", "build-dependencies"]
            .iter()
            .any(|d| t == *d || t.ends_with(&format!(".{d}")))
    };
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_deps = is_table(header);
            // `[dependencies.name]`: a dependency written as its own table.
            if let Some((_, name)) = header.rsplit_once('.').filter(|(t, _)| is_table(t)) {
                deps.push(name.trim_matches('"').replace('-', "_"));
            }
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if in_deps && !name.is_empty() && !name.starts_with('#') {
            deps.push(name.trim_matches('"').replace('-', "_"));
        }
    }
    deps.sort();
    deps.dedup();
    deps
}

/// Whether code names the crate `ident`: a path through it (`ident::…`, `::ident::…`), or
/// `use ident` / `extern crate ident` (with `;`, `as`, or `::{…}` after).
fn names_crate(code: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(ident).any(|(at, _)| {
        let before = &code[..at];
        let after = &code[at + ident.len()..];
        if before.chars().next_back().is_some_and(is_ident) || after.chars().next().is_some_and(is_ident) {
            return false;
        }
        let absolute = before.ends_with("::") && !before[..before.len() - 2].chars().next_back().is_some_and(is_ident);
        let path = after.starts_with("::") && (absolute || !before.ends_with("::"));
        let imported = before.ends_with("use ") || before.ends_with("extern crate ");
        path || imported
    })
}

/// The code of a package: its Rust files under src/, tests/, benches/, examples/ and build.rs,
/// comment lines removed.
fn package_code(dir: &Path) -> String {
    let mut files = Vec::new();
    for sub in ["src", "tests", "benches", "examples"] {
        rust_files(&dir.join(sub), &mut files);
    }
    files.push(dir.join("build.rs"));
    let mut code = String::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

#[test]
fn every_dependency_is_used() {
    // `cargo machete` without the install: a dependency no source of its package names is
    // compiled for nothing (or is needed for a reason the allow-list above must say).
    let root = crate::project_root();
    let mut unused = Vec::new();
    let mut checked = 0;
    for dir in workspace_members(&root) {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("a member's manifest");
        let package = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let code = package_code(&dir);
        assert!(!code.trim().is_empty(), "no Rust code found for workspace member {}", dir.display());
        for dep in manifest_dependencies(&manifest) {
            checked += 1;
            let allowed =
                DEPENDENCIES_USED_WITHOUT_A_PATH.iter().any(|(p, d, _)| *p == package && d.replace('-', "_") == dep);
            if !allowed && !names_crate(&code, &dep) {
                unused.push(format!("{}: {dep}", dir.strip_prefix(&root).unwrap_or(&dir).display()));
            }
        }
    }
    assert!(checked >= 50, "found only {checked} dependencies in the workspace members' manifests");
    assert!(
        unused.is_empty(),
        "dependencies no source of their package names: remove them, or add them with the reason \
         to DEPENDENCIES_USED_WITHOUT_A_PATH in xtask/src/tidy.rs: {unused:#?}"
    );
}

#[test]
fn the_dependency_matcher_reads_paths_and_imports() {
    assert!(names_crate("use serde::Serialize;", "serde"));
    assert!(names_crate("let x = ::serde_json::json!({});", "serde_json"));
    assert!(names_crate("#[tokio::test]", "tokio"));
    assert!(names_crate("use sha1_smol;", "sha1_smol"));
    assert!(names_crate("extern crate rand as r;", "rand"));
    assert!(!names_crate("use my_serde::Serialize;", "serde"));
    assert!(!names_crate("use schemars::serde::Serialize;", "serde"));
    assert!(!names_crate("let serde = 1;", "serde"));
    let deps = manifest_dependencies(
        "[package]\nname = \"x\"\n[dependencies]\nsett-core.workspace = true\nuuid = { workspace = true }\n\
         [dev-dependencies]\n# a comment\nproptest = \"1\"\n[target.'cfg(unix)'.dependencies]\nnix = \"0.31\"\n\
         [dependencies.fred]\nversion = \"10\"\n[features]\ndefault = []\n",
    );
    assert_eq!(deps, ["fred", "nix", "proptest", "sett_core", "uuid"]);
}

#[test]
fn times_are_formatted_in_one_place() {
    // sett-store's time module is the one formatting of times for every component; a second
    // one drifts (three hand-written RFC 3339 formatters did).
    let home = crate::project_root().join("crates").join("sett-store").join("src").join("time.rs");
    assert!(home.is_file(), "the one time formatting, {}, is gone: move this check with it", home.display());
    let marks = ["format_rfc3339", "civil_from_days", "fn rfc3339", "fn human_ms"];
    let bad: Vec<String> = product_code()
        .into_iter()
        .filter(|(p, _)| *p != home)
        .flat_map(|(p, code)| {
            marks
                .iter()
                .filter(|m| code.contains(**m))
                .map(move |m| format!("{} has {m}", p.display()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(bad.is_empty(), "format times with sett_store::time (rfc3339_ms, human_ms): {bad:#?}");
}

/// The agent names a `sett.yml` declares: the two-space-indented keys under `agents:`.
fn declared_agents(yml: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_agents = false;
    for line in yml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_agents = line.trim_end() == "agents:";
            continue;
        }
        if in_agents
            && let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn the_python_demo_team_is_a_twin_of_the_shell_team() {
    let examples = crate::project_root().join("examples");
    let read = |name: &str| {
        std::fs::read_to_string(examples.join(name)).unwrap_or_else(|e| panic!("reading examples/{name}: {e}"))
    };
    let shell = declared_agents(&read("sett.yml"));
    assert!(shell.len() >= 4, "examples/sett.yml declares only {shell:?}");
    assert_eq!(
        declared_agents(&read("sett-python.yml")),
        shell,
        "examples/sett-python.yml declares the same agents as examples/sett.yml, in the same order"
    );
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(examples.join("agents")).expect("examples/agents").flatten() {
        let twin = examples.join("agents-python").join(entry.file_name()).join("agent.py");
        if !twin.exists() {
            missing.push(twin.display().to_string());
        }
    }
    assert!(missing.is_empty(), "each shell agent of examples/agents has a Python twin: {missing:#?}");
}

#[test]
fn the_python_sdk_declares_no_dependency() {
    let manifest = crate::project_root().join("sdk").join("python").join("pyproject.toml");
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    assert!(
        text.lines().any(|l| l.trim() == "dependencies = []"),
        "{} must keep `dependencies = []`: the SDK uses the standard library only",
        manifest.display()
    );
}

#[test]
fn declared_agents_reads_the_agents_section_only() {
    let yml = "version: \"1.0\"\norchestrator:\n  bid_timeout: 10s\nagents:\n  # a comment\n  Writer:\n    command: [x]\n    worker: {a: 1}\n  Reviewer:\n    env:\n      A: b\nnotifications:\n  Slack:\n";
    assert_eq!(declared_agents(yml), ["Writer", "Reviewer"]);
}

/// The tools `#[tool(...)]` declares in crates/sett-mcp/src/server.rs, by function name.
fn mcp_tools(server: &str) -> Vec<String> {
    let mut tools = Vec::new();
    let mut declared = false;
    for line in server.lines().map(str::trim) {
        if line.starts_with("#[tool(") {
            declared = true;
        } else if declared && let Some(rest) = line.strip_prefix("async fn ") {
            tools.extend(rest.split('(').next().map(str::to_owned));
            declared = false;
        }
    }
    tools
}

#[test]
fn every_mcp_tool_is_documented() {
    let root = crate::project_root();
    let server = std::fs::read_to_string(root.join("crates/sett-mcp/src/server.rs")).unwrap_or_default();
    let docs = std::fs::read_to_string(root.join("docs/mcp.md")).unwrap_or_default();
    let tools = mcp_tools(&server);
    assert!(tools.len() >= 8, "the MCP tools were not found in crates/sett-mcp/src/server.rs: {tools:?}");
    let missing: Vec<&String> = tools.iter().filter(|t| !docs.contains(&format!("| `{t}` |"))).collect();
    assert!(missing.is_empty(), "add a row to the tools table of docs/mcp.md for: {missing:?}");
}

/// The console's template layer: maud templates, which escape every spliced value by default.
fn console_templates() -> PathBuf {
    crate::project_root().join("crates").join("sett-console").join("src").join("html")
}

/// What hand-written HTML escaping looks like in `code`, one finding per line: an entity
/// replacement, an escaping helper, or a formatting macro that writes a tag.
fn hand_escaping(code: &str) -> Vec<String> {
    let entities = ["\"&lt;\"", "\"&gt;\"", "\"&amp;\"", "\"&quot;\"", "\"&#39;\"", "\"&#x27;\""];
    let builders = ["format!(", "write!(", "writeln!(", "push_str(", "concat!("];
    let tag = |l: &str| {
        let b = l.as_bytes();
        (0..b.len().saturating_sub(1)).any(|i| {
            b[i] == b'<'
                && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'/' || b[i + 1] == b'!')
                && i > 0
                && (b[i - 1] == b'"' && (i < 2 || b[i - 2] != b'\\'))
        })
    };
    code.lines()
        .enumerate()
        .filter(|(_, l)| {
            entities.iter().any(|e| l.contains(e))
                || l.contains("fn esc(")
                || l.contains("esc(&")
                || (builders.iter().any(|b| l.contains(b)) && tag(l))
        })
        .map(|(n, l)| format!("{}: {}", n + 1, l.trim()))
        .collect()
}

#[test]
fn no_hand_written_html_escaping_outside_the_templates() {
    // A forgotten `esc()` compiles; a maud template escapes unless told `PreEscaped`. So HTML is
    // written only as templates, and nothing escapes by hand.
    let templates = console_templates();
    let pages: Vec<PathBuf> = rust_files_in(&templates);
    let with_templates =
        pages.iter().filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("html! {"))).count();
    assert!(with_templates >= 5, "found only {with_templates} template files in {}", templates.display());
    // Slack's message format escapes `&`, `<` and `>` itself (not HTML): sett-notify's
    // `slack_escape` is that, and the one exception.
    let slack = crate::project_root().join("crates").join("sett-notify").join("src").join("payload.rs");
    let mut checked = 0;
    let mut bad = Vec::new();
    for (p, code) in product_code() {
        checked += 1;
        let found = hand_escaping(&code);
        let found: Vec<String> = if p == slack {
            found.into_iter().filter(|l| !l.contains("s.replace('&', \"&amp;\")")).collect()
        } else {
            found
        };
        bad.extend(found.into_iter().map(|l| format!("{}:{l}", p.display())));
    }
    assert!(checked > 50, "checked only {checked} files");
    assert!(
        bad.is_empty(),
        "write HTML as maud templates in {} (they escape by default): {bad:#?}",
        templates.display()
    );
}

#[test]
fn the_hand_escaping_matcher_finds_entities_helpers_and_tags() {
    assert_eq!(hand_escaping("let x = s.replace('<', \"&lt;\");").len(), 1);
    assert_eq!(hand_escaping("fn esc(s: &str) -> String {").len(), 1);
    assert_eq!(hand_escaping("let y = esc(&name);").len(), 1);
    assert_eq!(hand_escaping("let t = format!(r#\"<b>{x}</b>\"#);").len(), 1);
    assert_eq!(hand_escaping("out.push_str(\"</table>\");").len(), 1);
    assert!(hand_escaping("format!(\"sett answer {id} \\\"<your answer>\\\"\")").is_empty());
    assert!(hand_escaping("html! { b { (name) } }").is_empty());
    assert!(hand_escaping("let less = a < b;").is_empty());
}
