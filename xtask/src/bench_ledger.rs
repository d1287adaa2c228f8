//! `cargo xtask bench --only ledger`: what the ledger's hash chain costs, as lifecycles/s of the
//! same engine scenario with and without the chain, alternating run by run on one Redis (the
//! issue's budget: at most 10 % fewer lifecycles/s).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, lifecycles, median, redis_baseline, sett_in};

/// The binaries that spawn or write: the same packages as the normal bench build.
const BINS: &[&str] = &["sett", "sett-orchestrator", "sett-cub", "sett-bench"];

/// Builds the release binaries with sett-store's `bench-unchained-ledger` feature (events
/// appended without seq/hash, no head) and copies them to `target/bench/unchained/`.
pub(crate) fn build_unchained(root: &Path) -> Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--features", "sett-store/bench-unchained-ledger"])
        .args(["-p", "sett", "-p", "sett-orchestrator-bin", "-p", "sett-cub-bin", "-p", "sett-bench"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("release build of the unchained baseline failed");
    }
    let dir = root.join("target").join("bench").join("unchained");
    std::fs::create_dir_all(&dir)?;
    for bin in BINS {
        std::fs::copy(root.join("target").join("release").join(bin), dir.join(bin))?;
    }
    Ok(dir)
}

/// Lifecycles/s (3 agents bidding, no-op agent) with and without the chain, `runs` pairs
/// alternating so a drift of the machine hits both sides alike; medians and their ratio, and
/// Redis commands per lifecycle for each side.
pub(crate) fn chain_cost(b: &Bench, unchained: &Path, ws: &Path, quick: bool) -> Result<Value> {
    let count = if quick { 1000 } else { 3000 };
    let base = Bench { bin: unchained.to_path_buf(), redis: b.redis.clone(), runs: b.runs, unix: false };
    let sides: [(&str, &Bench); 2] = [("unchained", &base), ("chained", b)];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut cmds: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for run in 0..b.runs {
        for (i, (label, bench)) in sides.iter().enumerate() {
            // A fresh instance per run: the stream length is the same for both sides.
            let name = format!("bench-ledger-{label}-{run}");
            let (code, err) = sett_in(bench, ws, &name, &["up"])?;
            if code != 0 {
                bail!("sett up ({label}) failed: {err}");
            }
            let measured = lifecycles(bench, &name, count, &format!("ledger ({label})"));
            let _ = sett_in(bench, ws, &name, &["down"]);
            let (rate, per) = measured?;
            rates[i].push(rate);
            cmds[i].push(per);
        }
    }
    let unchained_lps = median(rates[0].clone());
    let chained_lps = median(rates[1].clone());
    let cost = 1.0 - chained_lps / unchained_lps.max(1e-9);
    Ok(json!({
        "claims_per_run": count,
        "agents_bidding": 3,
        "unchained_lifecycles_per_second": unchained_lps,
        "unchained_runs": rates[0],
        "chained_lifecycles_per_second": chained_lps,
        "chained_runs": rates[1],
        "chain_cost_fraction": cost,
        "target_max_cost_fraction": 0.10,
        "unchained_redis_commands_per_lifecycle": median(cmds[0].clone()),
        "chained_redis_commands_per_lifecycle": median(cmds[1].clone()),
        "redis_baseline": redis_baseline(b)?,
        "command": "cargo xtask bench --only ledger",
    }))
}
