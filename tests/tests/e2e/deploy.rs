//! The monitoring kit under deploy/: the alert rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`: input series → expected alerts); the Grafana dashboard is valid
//! JSON, every query parses (promtool, through a generated rule file) and names only metrics
//! documented in docs/metrics.md — as do the alert rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package `prometheus`; .ci/run installs it)");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// The metric names docs/metrics.md documents (its table rows).
fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    doc.lines().filter_map(|l| l.strip_prefix("| `sett_")?.split('`').next().map(|n| format!("sett_{n}"))).collect()
}

/// Every `sett_…` name a PromQL expression uses, with histogram suffixes taken off.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sett_") {
        let word: String =
            rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        rest = &rest[i + word.len()..];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| word.strip_suffix(s)).unwrap_or(&word);
        out.push(base.to_owned());
    }
    out
}

#[test]
fn deploy_promtool_rules() {
    let dir = root().join("deploy/prometheus");
    let (ok, said) = promtool(&["check", "rules", "sett-alerts.yml"], &dir);
    assert!(ok, "promtool check rules deploy/prometheus/sett-alerts.yml:\n{said}");
    let (ok, said) = promtool(&["test", "rules", "sett-alerts.test.yml"], &dir);
    assert!(ok, "promtool test rules deploy/prometheus/sett-alerts.test.yml:\n{said}");
    // Each alert the issue asks for exists and is unit-tested.
    let rules = std::fs::read_to_string(dir.join("sett-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("sett-alerts.test.yml")).unwrap();
    let docs = documented();
    for alert in [
        "SettOrchestratorDown",
        "SettOrchestratorNotReady",
        "SettCubDown",
        "SettClaimsStuckPastDeadline",
        "SettQuestionOpenTooLong",
        "SettToolFailureRate",
        "SettRedisReconnectStorm",
        "SettLockLost",
    ] {
        assert!(rules.contains(&format!("alert: {alert}\n")), "no rule {alert}");
        assert!(tests.contains(&format!("alertname: {alert}\n")), "rule {alert} has no unit test");
    }
    for name in metric_names(&rules) {
        assert!(
            docs.contains(&name),
            "deploy/prometheus/sett-alerts.yml uses {name}, which docs/metrics.md does not document"
        );
    }
}

#[test]
fn deploy_grafana_dashboard_queries_name_real_metrics() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/sett-dashboard.json")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).expect("deploy/grafana/sett-dashboard.json is not JSON");
    let docs = documented();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let targets = panel["targets"].as_array().unwrap_or_else(|| panel_err(panel, "no targets"));
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_else(|| panel_err(panel, "a target without expr"));
            let names = metric_names(expr);
            assert!(!names.is_empty(), "panel {}: {expr} names no Sett metric", panel["title"]);
            for n in names {
                assert!(docs.contains(&n), "panel {}: {n} is not documented in docs/metrics.md", panel["title"]);
            }
            exprs.push(expr.to_owned());
        }
    }
    assert!(exprs.len() >= 15, "{exprs:?}");
    // Every query parses: promtool checks them as recording rules (Grafana's $__rate_interval
    // becomes a fixed range).
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$__rate_interval", "5m");
        rules.push_str(&format!(
            "      - record: sett:dashboard_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    let (ok, said) = promtool(&["check", "rules", "dashboard.yml"], dir.path());
    assert!(ok, "a dashboard query does not parse:\n{said}");
}

fn panel_err(panel: &serde_json::Value, what: &str) -> ! {
    panic!("panel {}: {what}", panel["title"])
}
