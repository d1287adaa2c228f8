//! Usage accounting end to end: agents report usage in their outputs; a hidden (random) number
//! of workflows with random token counts and costs sums exactly in `sett usage` (by workflow,
//! agent and model) and in the orchestrator's Prometheus counters; malformed usage ends the run
//! with a Failure that says what is wrong, and counts nowhere; the ledger verifies.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use sett_core::StructuralType;
use sett_e2e::{Env, http_get, summary};

const MINUTE: Duration = Duration::from_secs(60);

/// Drafts from the goal, reporting the usage the goal (a JSON object) dictates; a goal
/// `malformed` reports a float cost, which the cub refuses.
const SPENDER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
goal=$(jq -r '.target_artifact.payload')
if [ "$goal" = "malformed" ]; then
  echo '{"artifact_type":"Draft","artifact_payload":"x","usage":{"input_tokens":5,"cost":{"amount":0.5,"currency":"USD"}}}'
  exit 0
fi
jq -n --argjson g "$goal" '{artifact_type: "Draft", artifact_payload: "draft",
  usage: {model: $g.model, input_tokens: $g.tin, output_tokens: $g.tout, cost: {amount: $g.cost, currency: "USD"},
          counters: {tool_calls: 1}}}'
"#;

/// Ends every workflow, reporting the same small usage each time, without a model.
const FINISHER: &str = r#"#!/usr/bin/env bash
set -euo pipefail
cat >/dev/null
echo '{"structural_type":"Terminal","artifact_type":"Done","artifact_payload":"done","usage":{"input_tokens":7,"output_tokens":3,"cost":{"amount":"0.001","currency":"USD"}}}'
"#;

const YML: &str = sett_e2e::drafting_yml!("Spender" => "spender.sh");

/// A random number below `n` (a fresh hasher's key is random per process).
fn random_below(n: u64) -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish() % n
}

/// `sum` of the sample values of `family` whose labels include every `want` pair.
fn metric_sum(text: &str, family: &str, want: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .filter(|l| want.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_sums_exactly_in_sett_usage_and_the_metrics_and_malformed_usage_fails_clearly() {
    let mut env = Env::new(YML, &[("spender.sh", SPENDER), ("finisher.sh", FINISHER)]).await;
    env.up();
    // A hidden number of workflows, each with its own token counts and cost (in thousandths).
    let n = 2 + random_below(4) as usize;
    let mut spent: Vec<(u64, u64, u64, &str)> = Vec::new();
    for i in 0..n {
        let (input, output, mills) = (100 + random_below(900), 1 + random_below(99), 1 + random_below(999));
        let model = if i % 2 == 0 { "model-a" } else { "model-b" };
        spent.push((input, output, mills, model));
        env.forage(&format!(r#"{{"tin": {input}, "tout": {output}, "cost": "0.{mills:03}", "model": "{model}"}}"#));
    }
    let malformed = env.forage("malformed");
    let artifacts = env
        .wait_for(MINUTE, "every workflow ended", |a| {
            a.iter().filter(|x| x.structural_type == StructuralType::Terminal).count() >= n
                && a.iter().any(|x| x.structural_type == StructuralType::Failure)
        })
        .await;

    // Malformed usage: a Failure that names the problem and the fix; nothing of it is counted.
    let failure = artifacts.iter().find(|a| a.structural_type == StructuralType::Failure).unwrap();
    assert_eq!(failure.source_artifacts, vec![malformed], "{:#?}", summary(&artifacts));
    assert_eq!(failure.artifact_type, "ToolExecutionFailure");
    let reason =
        serde_json::from_str::<serde_json::Value>(&failure.payload).unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("\"usage\" is invalid"), "{reason}");
    assert!(reason.contains("cost.amount: must be a decimal string (\"0.5\"), not a number"), "{reason}");
    assert!(failure.usage.is_none());

    // What the agents reported, summed here.
    let spender_in: u64 = spent.iter().map(|s| s.0).sum();
    let spender_out: u64 = spent.iter().map(|s| s.1).sum();
    let spender_mills: u64 = spent.iter().map(|s| s.2).sum();
    let (total_in, total_out) = (spender_in + 7 * n as u64, spender_out + 3 * n as u64);
    let total_mills = spender_mills + n as u64;
    let as_cost = |mills: u64| {
        let text = format!("{}.{:03}", mills / 1000, mills % 1000);
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        trimmed.to_owned()
    };

    let usage = |by: &str| -> serde_json::Value {
        serde_json::from_str(&env.ok(&["usage", "--by", by, "-o", "json"])).unwrap()
    };
    let v = usage("workflow");
    assert_eq!(v["total"]["runs"], 2 * n as u64, "{v:#}");
    assert_eq!(v["total"]["input_tokens"], total_in, "{v:#}");
    assert_eq!(v["total"]["output_tokens"], total_out, "{v:#}");
    assert_eq!(v["total"]["cost"]["USD"], as_cost(total_mills), "{v:#}");
    assert_eq!(v["total"]["counters"]["tool_calls"], n as u64, "{v:#}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), n, "one row per workflow that reported usage: {v:#}");
    for (input, output, mills, _) in &spent {
        let row = rows
            .iter()
            .find(|r| r["input_tokens"] == input + 7 && r["output_tokens"] == output + 3)
            .unwrap_or_else(|| panic!("no workflow row with {input}+7 input tokens: {v:#}"));
        assert_eq!(row["cost"]["USD"], as_cost(mills + 1), "{row:#}");
        assert_eq!(row["runs"], 2);
    }
    let v = usage("agent");
    let by_agent: BTreeMap<String, (u64, u64)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["key"].as_str().unwrap().to_owned(), (r["input_tokens"].as_u64().unwrap(), r["runs"].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(
        by_agent,
        BTreeMap::from([("Finisher".into(), (7 * n as u64, n as u64)), ("Spender".into(), (spender_in, n as u64))])
    );
    let v = usage("model");
    let models: BTreeMap<String, u64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r["output_tokens"].as_u64().unwrap()))
        .collect();
    let of_model = |m: &str| spent.iter().filter(|s| s.3 == m).map(|s| s.1).sum::<u64>();
    let want = BTreeMap::from([
        ("-".to_owned(), 3 * n as u64),
        ("model-a".to_owned(), of_model("model-a")),
        ("model-b".to_owned(), of_model("model-b")),
    ]);
    assert_eq!(models, want, "{v:#}");
    // The table names the total.
    let table = env.ok(&["usage", "--by", "agent"]);
    assert!(table.contains("TOTAL") && table.contains(&format!("{} USD", as_cost(total_mills))), "{table}");
    // Nothing reported since a moment ago.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["usage", "--since", "2099-01-01T00:00:00Z", "-o", "json"])).unwrap();
    assert_eq!(v["total"]["runs"], 0, "{v:#}");

    // The orchestrator's counters say the same (it counts an output when it handles it).
    let addr = env.addr_of("orchestrator").await.expect("the orchestrator registered its address");
    let scrape = || http_get(&addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let counted = |text: &str| {
        (
            metric_sum(text, "sett_usage_tokens_total", &[("direction", "input")]),
            metric_sum(text, "sett_usage_tokens_total", &[("direction", "output")]),
            metric_sum(text, "sett_usage_cost_nanos_total", &[("currency", "USD")]),
            metric_sum(text, "sett_usage_runs_total", &[]),
        )
    };
    let want = (total_in, total_out, total_mills * 1_000_000, 2 * n as u64);
    let mut last = String::new();
    let agreed = sett_testkit::poll_until(MINUTE, || {
        last = scrape();
        counted(&last) == want
    });
    assert!(agreed, "the metrics count {:?}, expected {want:?}:\n{last}", counted(&last));
    assert_eq!(
        metric_sum(&last, "sett_usage_tokens_total", &[("agent", "Spender"), ("direction", "input")]),
        spender_in
    );
    assert_eq!(
        metric_sum(
            &last,
            "sett_usage_tokens_total",
            &[("agent", "Finisher"), ("model", "none"), ("direction", "output")]
        ),
        3 * n as u64
    );
    env.ok(&["verify"]);
    env.down();
}
