//! Tidy check: daemon code does not name the fields every daemon log line carries already
//! (`instance`, `component`), so no line is a JSON object with a repeated key.

use super::product_code;

/// The tracing fields a line of `code` names `instance` or `component` (`instance = %x`, at the
/// start of a line or after `(` or `,`): the lines, trimmed.
fn default_field_names(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in code.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("let ") {
            continue;
        }
        for name in ["instance", "component"] {
            let field = format!("{name} = ");
            let named = trimmed.match_indices(&field).any(|(at, _)| {
                let before = trimmed[..at].trim_end();
                before.is_empty() || before.ends_with('(') || before.ends_with(',')
            });
            if named {
                found.push(trimmed.to_owned());
            }
        }
    }
    found
}

/// Every line a daemon logs carries `instance` and `component` already (sett-daemon's
/// telemetry adds them); a span or event naming them again writes a JSON object with a repeated
/// key, which log tools read differently (serde_json keeps the last value, others the first).
/// Only the operator's CLI and the console, which log text about many instances, name them.
#[test]
fn daemon_code_does_not_log_the_default_fields_again() {
    let root = crate::project_root();
    let mut bad = Vec::new();
    for (p, code) in product_code() {
        let rel = p.strip_prefix(&root).unwrap_or(&p);
        if rel.starts_with("bins/sett/") || rel.starts_with("crates/sett-console/") {
            continue;
        }
        bad.extend(default_field_names(&code).into_iter().map(|l| format!("{}: {l}", rel.display())));
    }
    assert!(bad.is_empty(), "name the field after what it is (watched_instance, consumer…): {bad:#?}");
}

#[test]
fn the_default_field_matcher_finds_fields_not_variables() {
    let code = "tracing::info!(instance = %x, \"a\");\nlet instance = 3;\n    component = self.c,\nx(a, component = 1);\nwatched_instance = %y,\n";
    let found = default_field_names(code);
    assert_eq!(found, ["tracing::info!(instance = %x, \"a\");", "component = self.c,", "x(a, component = 1);"]);
}
