//! `cargo xtask bench --only usage`: what usage accounting costs the engine (issue 31's budget:
//! at most 3 % fewer lifecycles/s). The engine scenario (three agents bidding, the no-op agent)
//! run by run, alternating on one Redis: `off`, the no-op agent's Terminal output as always; `on`,
//! the same output carrying a full usage record (model, tokens, a decimal cost, counters), which
//! the cub validates and stores in the artifact (under its hash) and the orchestrator counts in
//! its metrics; `budgets`, the same with a workflow budget that is never reached (the budget
//! watch sums every output). Each `on` run is checked: `sett usage` must sum exactly what the
//! agents reported.

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, ENGINE_YML, lifecycles, median, sett_in, workspace};

/// The usage each `on` output reports (docs/agents.md, "Usage": every field kind).
const USAGE: &str = r#"{"model":"gpt-4o-mini","input_tokens":1200,"output_tokens":300,"cost":{"amount":"0.0042","currency":"USD"},"counters":{"cache_read_tokens":800,"tool_calls":3}}"#;

/// A budget the bench never reaches: the watch sums every output against it.
const BUDGETS: &str = "budgets: {workflow: {tokens: 1000000000, cost: \"1000000 USD\"}}\n";

/// The engine team whose agents print the Terminal output with `usage`.
fn usage_yml() -> String {
    let output = format!(
        r#"{{"artifact_type":"Done","artifact_payload":"ok","summary":"done","structural_type":"Terminal","usage":{USAGE}}}"#
    );
    ENGINE_YML.replace("command: NOOP", &format!("command: [NOOPBIN, '{output}']"))
}

/// `sett usage -o json` of `name`: the total.
fn usage_total(b: &Bench, ws: &Path, name: &str) -> Result<Value> {
    let out = b
        .sett(&["usage", "-o", "json", "--name", name])
        .current_dir(ws)
        .env("SETT_BIN_DIR", &b.bin)
        .env("SETT_OPERATOR", "bench")
        .output()?;
    if !out.status.success() {
        bail!("sett usage failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["total"].clone())
}

/// Lifecycles/s with usage off, on, and on under a budget, `runs` rounds alternating; medians,
/// the cost fractions, Redis commands per lifecycle, and the exactness check of each `on` run.
pub(crate) fn usage_cost(b: &Bench, root: &Path, quick: bool) -> Result<Value> {
    let count: u64 = if quick { 1000 } else { 3000 };
    let off_ws = workspace(root, "usage-off", ENGINE_YML)?;
    let on_ws = workspace(root, "usage-on", &usage_yml())?;
    let budget_ws = workspace(root, "usage-budgets", &format!("{}{BUDGETS}", usage_yml()))?;
    // 0.0042 USD per output, in exact decimal.
    let cost = format!("{}.{:04}", 42 * count / 10_000, 42 * count % 10_000);
    let sides: [(&str, &Path); 3] = [("off", &off_ws), ("on", &on_ws), ("budgets", &budget_ws)];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cmds: [Vec<f64>; 3] = Default::default();
    for run in 0..b.runs {
        for (i, (label, ws)) in sides.iter().enumerate() {
            let name = format!("bench-usage-{label}-{run}");
            let (code, err) = sett_in(b, ws, &name, &["up"])?;
            if code != 0 {
                bail!("sett up (usage {label}) failed: {err}");
            }
            let measured = lifecycles(b, &name, count, &format!("usage ({label})"));
            let total = if *label == "off" { Ok(Value::Null) } else { usage_total(b, ws, &name) };
            let _ = sett_in(b, ws, &name, &["down"]);
            let (rate, per) = measured?;
            let total = total?;
            // Not faked: every run's outputs are in the ledger with their usage, summed exactly.
            if *label != "off"
                && (total["runs"].as_u64() != Some(count)
                    || total["input_tokens"].as_u64() != Some(1200 * count)
                    || total["output_tokens"].as_u64() != Some(300 * count)
                    || total["cost"]["USD"].as_str().map(decimal) != Some(decimal(&cost)))
            {
                bail!("usage ({label}) run {run}: sett usage does not sum {count} outputs: {total}");
            }
            rates[i].push(rate);
            cmds[i].push(per);
        }
        let _ = b.redis_cli(&["FLUSHALL"]);
    }
    let [off, on, budgets] = rates.clone().map(median);
    Ok(json!({
        "claims_per_run": count,
        "agents_bidding": 3,
        "usage_per_output": serde_json::from_str::<Value>(USAGE)?,
        "budgets_side": BUDGETS.trim(),
        "off_lifecycles_per_second": off,
        "off_runs": rates[0],
        "on_lifecycles_per_second": on,
        "on_runs": rates[1],
        "budgets_lifecycles_per_second": budgets,
        "budgets_runs": rates[2],
        "usage_cost_fraction": 1.0 - on / off.max(1e-9),
        "usage_and_budget_cost_fraction": 1.0 - budgets / off.max(1e-9),
        "target_max_cost_fraction": 0.03,
        "redis_commands_per_lifecycle": {
            "off": median(cmds[0].clone()),
            "on": median(cmds[1].clone()),
            "budgets": median(cmds[2].clone()),
        },
        "command": "cargo xtask bench --only usage",
    }))
}

/// A decimal without trailing fraction zeros (`"12.6000"` → `"12.6"`, `"4.0"` → `"4"`).
fn decimal(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}
