//! `cargo xtask bench --only hotpath --baseline-bin DIR`: the Redis work of one claim lifecycle
//! (issue 29, items 3 and 4) as an A/B of two sets of release binaries over one Redis, in rounds
//! that alternate (old, new, old, new, …) so a drift of the machine hits both sides alike. Per
//! round, on a fresh instance of the engine scenario (3 agents bidding `exclusive`, no-op agent
//! writing a Terminal): lifecycles/s and Redis commands per lifecycle (`INFO commandstats`,
//! commands inside Lua included), Redis `used_memory` per completed lifecycle, and the claim
//! latency artifact written → grant taken.

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, command_stats, lifecycles, median, redis_baseline, sett_in};
use crate::bench_archive::used_memory;

/// One side's figures of one round.
struct Round {
    lifecycles_per_second: f64,
    commands: f64,
    by_command: serde_json::Map<String, Value>,
    bytes: f64,
    grant_taken_p50_ms: f64,
}

fn round(b: &Bench, ws: &Path, name: &str, count: u64, latency_claims: u64) -> Result<Round> {
    let (code, err) = sett_in(b, ws, name, &["up"])?;
    if code != 0 {
        bail!("sett up ({name}) failed: {err}");
    }
    let measured = (|| -> Result<Round> {
        let before = used_memory(b)?;
        let (rate, commands) = lifecycles(b, name, count, name)?;
        let (_, by) = command_stats(b)?;
        let after = used_memory(b)?;
        let latency = b.bench_bin(name, &["latency", "--count", &latency_claims.to_string()])?;
        let by_command =
            by.into_iter().map(|(k, v)| (k, json!(v.as_u64().unwrap_or(0) as f64 / count as f64))).collect();
        Ok(Round {
            lifecycles_per_second: rate,
            commands,
            by_command,
            bytes: after.saturating_sub(before) as f64 / count as f64,
            grant_taken_p50_ms: latency["artifact_to_grant_taken"]["p50_ms"].as_f64().unwrap_or(0.0),
        })
    })();
    let _ = sett_in(b, ws, name, &["down"]);
    // Every round starts from the same Redis: the instance goes, memory and all.
    let _ = sett_in(b, ws, name, &["destroy", "--force"]);
    measured
}

/// The A/B of `baseline` (the old binaries) against `b`'s.
pub(crate) fn ab(b: &Bench, baseline: &Path, ws: &Path, quick: bool) -> Result<Value> {
    let count = if quick { 1000 } else { 3000 };
    let latency_claims = if quick { 100 } else { 300 };
    let old = Bench { bin: baseline.to_path_buf(), redis: b.redis.clone(), runs: b.runs };
    let sides: [(&str, &Bench); 2] = [("old", &old), ("new", b)];
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for run in 0..b.runs {
        for (i, (label, bench)) in sides.iter().enumerate() {
            let r = round(bench, ws, &format!("bench-hotpath-{label}-{run}"), count, latency_claims)?;
            eprintln!(
                "hotpath round {run} {label}: {:.0} lifecycles/s, {:.1} commands, {:.0} bytes, p50 {:.2} ms",
                r.lifecycles_per_second, r.commands, r.bytes, r.grant_taken_p50_ms
            );
            rounds[i].push(r);
        }
    }
    let side = |rs: &[Round]| {
        let col = |f: fn(&Round) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
        json!({
            "lifecycles_per_second": median(col(|r| r.lifecycles_per_second)),
            "lifecycles_per_second_runs": col(|r| r.lifecycles_per_second),
            "redis_commands_per_lifecycle": median(col(|r| r.commands)),
            "redis_commands_per_lifecycle_runs": col(|r| r.commands),
            "used_memory_bytes_per_lifecycle": median(col(|r| r.bytes)),
            "used_memory_bytes_per_lifecycle_runs": col(|r| r.bytes),
            "artifact_to_grant_taken_p50_ms": median(col(|r| r.grant_taken_p50_ms)),
            "artifact_to_grant_taken_p50_ms_runs": col(|r| r.grant_taken_p50_ms),
            "commands_per_lifecycle_by_command_last_run": rs.last().map(|r| r.by_command.clone()).unwrap_or_default(),
        })
    };
    let (o, n) = (side(&rounds[0]), side(&rounds[1]));
    let ratio = |k: &str| n[k].as_f64().unwrap_or(0.0) / o[k].as_f64().unwrap_or(0.0).max(1e-9);
    Ok(json!({
        "claims_per_run": count,
        "latency_claims_per_run": latency_claims,
        "agents_bidding": 3,
        "baseline_bin": baseline.display().to_string(),
        "old": o,
        "new": n,
        "new_over_old": {
            "lifecycles_per_second": ratio("lifecycles_per_second"),
            "redis_commands_per_lifecycle": ratio("redis_commands_per_lifecycle"),
            "used_memory_bytes_per_lifecycle": ratio("used_memory_bytes_per_lifecycle"),
            "artifact_to_grant_taken_p50_ms": ratio("artifact_to_grant_taken_p50_ms"),
        },
        "redis_baseline": redis_baseline(b)?,
        "command": "cargo xtask bench --only hotpath --baseline-bin DIR",
    }))
}
