//! The CLI's fit with the operator's tools, each exercised for real: the sett.yml JSON Schema
//! (`sett config schema`, committed as docs/sett.schema.json, documented key by key in
//! docs/configuration.md), `sett config check` on a file with errors, the schema modeline
//! `sett init` writes, and the bash completion script loaded into a real bash.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sett() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sett"));
    c.env("NO_COLOR", "1").env_remove("SETT_REDIS_URL").env_remove("SETT_INSTANCE").stdin(Stdio::null());
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", o.status, text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

const REGENERATE: &str = "cargo run -q -p sett -- config schema > docs/sett.schema.json";

fn schema() -> serde_json::Value {
    serde_json::from_str(&ok(&sett().args(["config", "schema"]).output().unwrap())).unwrap()
}

#[test]
fn the_committed_schema_is_current() {
    let out = ok(&sett().args(["config", "schema"]).output().unwrap());
    let committed = std::fs::read_to_string(root().join("docs/sett.schema.json"))
        .unwrap_or_else(|e| panic!("docs/sett.schema.json: {e}; create it with `{REGENERATE}`"));
    assert!(
        committed.trim_end() == out.trim_end(),
        "docs/sett.schema.json is stale (the config types in crates/sett-core/src/config.rs changed): \
         regenerate it with `{REGENERATE}` and document new keys in docs/configuration.md"
    );
}

/// Follows `$ref`, `anyOf`/`oneOf` and map values to every key path of the schema, with its
/// default where the schema gives one (`agents.<name>.timeout` → `"10m"`).
fn key_paths(schema: &serde_json::Value) -> BTreeMap<String, Option<serde_json::Value>> {
    fn resolve<'a>(root: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
        match node.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                resolve(root, &root["$defs"][name])
            }
            None => node,
        }
    }
    fn walk(
        root: &serde_json::Value,
        node: &serde_json::Value,
        prefix: &str,
        out: &mut BTreeMap<String, Option<serde_json::Value>>,
        depth: usize,
    ) {
        assert!(depth < 20, "schema too deep at {prefix}");
        let node = resolve(root, node);
        for alt in ["anyOf", "oneOf", "allOf"] {
            for a in node.get(alt).and_then(|v| v.as_array()).into_iter().flatten() {
                walk(root, a, prefix, out, depth + 1);
            }
        }
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                let default = v.get("default").cloned().or_else(|| resolve(root, v).get("default").cloned());
                out.entry(path.clone()).or_insert(default);
                walk(root, v, &path, out, depth + 1);
            }
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            walk(root, values, &format!("{prefix}.<name>"), out, depth + 1);
        }
        // List items (`notifications.webhooks[].url`).
        if let Some(items) = node.get("items").filter(|v| v.is_object()) {
            walk(root, items, &format!("{prefix}[]"), out, depth + 1);
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, schema, "", &mut out, 0);
    out
}

/// How docs/configuration.md writes a default: `30s`, `3`, `false`, `[]`.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

#[test]
fn configuration_md_documents_every_key_its_default_and_valid_examples() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let keys = key_paths(&schema());
    assert!(keys.contains_key("agents.<name>.worker.max_concurrent"), "{keys:#?}");
    let rows: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| {
            let key = l.strip_prefix("| `")?.split('`').next()?;
            Some((key.to_owned(), l.to_owned()))
        })
        .collect();
    for (key, default) in &keys {
        let row = rows.get(key).unwrap_or_else(|| {
            panic!("docs/configuration.md has no row `| `{key}` | …` for the schema key {key}: document it (type, default, meaning)")
        });
        if let Some(d) = default {
            let cells: Vec<&str> = row.split(" | ").collect();
            assert!(
                cells.get(2).is_some_and(|c| c.contains(&shown(d))),
                "docs/configuration.md: the Default column of {key} must show {} (from the schema)",
                shown(d)
            );
        }
    }
    for key in rows.keys().filter(|k| k.starts_with("version") || k.starts_with("runtime") || k.contains('.')) {
        assert!(keys.contains_key(key), "docs/configuration.md documents {key}, which the schema does not have");
    }
    // Every complete example (a YAML block with `version:`) passes `sett config check`.
    let dir = tempfile::tempdir().unwrap();
    let mut examples = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        if !yaml.contains("version:") {
            continue;
        }
        examples += 1;
        let file = dir.path().join(format!("example-{examples}.yml"));
        std::fs::write(&file, yaml).unwrap();
        let o = sett().args(["config", "check"]).arg(&file).output().unwrap();
        assert!(
            o.status.success(),
            "docs/configuration.md example {examples} is invalid:\n{yaml}\n{}",
            text(&o.stderr)
        );
    }
    assert!(examples >= 2, "docs/configuration.md has no complete example");
}

#[test]
fn config_check_prints_every_error_with_its_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sett.yml");
    std::fs::write(
        &file,
        "version: \"1.0\"\norchestrator:\n  bid_timeout: soon\n  colour: blue\nagents:\n  Coder:\n    command: [\"./run.sh\"]\n    bidding_strategy: maybe\n    timeout: 1m\n    role: coder\n",
    )
    .unwrap();
    let o = sett().args(["config", "check"]).arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let f = file.display().to_string();
    for (line, key) in [
        (3, "orchestrator.bid_timeout"),
        (4, "orchestrator.colour"),
        (8, "agents.Coder.bidding_strategy"),
        (10, "agents.Coder.role"),
    ] {
        let at = format!("{f}:{line}: error: '{key}': ");
        let i = err.find(&at).unwrap_or_else(|| panic!("no `{at}` in:\n{err}"));
        assert!(err[i..].lines().nth(1).is_some_and(|l| l.starts_with("  fix: ")), "{err}");
    }
    assert!(err.contains("4 errors"), "{err}");
    // JSON for scripts and editors.
    let o = sett().args(["config", "check", "-o", "json"]).arg(&file).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[0]["line"], 3);
    assert_eq!(v[1]["key"], "orchestrator.colour");
    // A YAML syntax error has its line too.
    std::fs::write(&file, "version: \"1.0\"\nagents:\n  A: [\n").unwrap();
    let o = sett().args(["config", "check"]).arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(&format!("{f}:")) && text(&o.stderr).contains("invalid YAML"),
        "{}",
        text(&o.stderr)
    );
    // A missing file says what to do.
    let o = sett().args(["config", "check", "/nonexistent/sett.yml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("sett init"), "{}", text(&o.stderr));
}

#[test]
fn init_writes_the_schema_modeline_and_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Command::new("git").args(["init", "-q"]).current_dir(dir.path()).status().unwrap().success());
    ok(&sett().args(["init", "-q"]).current_dir(dir.path()).output().unwrap());
    let yml = std::fs::read_to_string(dir.path().join("sett.yml")).unwrap();
    assert_eq!(yml.lines().next(), Some("# yaml-language-server: $schema=.sett/sett.schema.json"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".sett/sett.schema.json")).unwrap()).unwrap();
    assert_eq!(written, schema());
    let out = ok(&sett().args(["config", "check"]).current_dir(dir.path()).output().unwrap());
    assert!(out.contains("sett.yml: OK"), "{out}");
}

/// The bash completion script, loaded into a real bash, completes `sett de` to `destroy` and
/// `sett config ` to its subcommands.
#[test]
fn bash_completion_completes_subcommands() {
    let script = ok(&sett().args(["completions", "bash"]).output().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sett.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {file}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
             _sett sett \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            file = file.display(),
            words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            cword = words.len() - 1,
        );
        let o = Command::new("bash").args(["--norc", "--noprofile", "-c", &program]).output().expect("bash");
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout).split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(complete("sett de"), ["destroy"]);
    let config = complete("sett config ");
    assert!(config.contains(&"check".to_owned()) && config.contains(&"schema".to_owned()), "{config:?}");
    for shell in ["zsh", "fish", "powershell"] {
        let out = ok(&sett().args(["completions", shell]).output().unwrap());
        assert!(out.contains("destroy"), "{shell}");
    }
}

/// The man pages `cargo xtask man` writes: one for sett and one per subcommand, in roff.
#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    ok(&sett().args(["man-pages", "--dir"]).arg(dir.path()).output().unwrap());
    let page = std::fs::read_to_string(dir.path().join("sett.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH sett 1"), "{page}");
    assert!(page.contains("destroy"), "{page}");
    for sub in ["sett-up.1", "sett-destroy.1", "sett-config-check.1", "sett-completions.1"] {
        let p = std::fs::read_to_string(dir.path().join(sub)).unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(p.contains(".TH"), "{sub}: {p}");
    }
    assert!(!dir.path().join("sett-man-pages.1").exists(), "the hidden command has no page");
}
