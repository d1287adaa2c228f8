//! `cargo xtask bench --only archive`: what retention buys and costs (issue 28). Redis
//! `used_memory` per completed lifecycle without retention; the same while lifecycles run with a
//! short `archive_after` (it must stop growing); archiving throughput (workflows/s of
//! `sett archive --now`); the engine's lifecycles/s with and without the orchestrator's passes,
//! alternating run by run on one Redis; and `sett verify`'s peak memory (VmHWM) live and from an
//! export file at several sizes (it must stay flat).

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, ENGINE_YML, median, sett_in, timed, workspace};

/// Retention that never runs by itself (`sett archive --now` archives every ended workflow).
const MANUAL: &str = "retention: {archive_after: 0, every: 24h, archive: {dir: .sett/archive}}\n";
/// The orchestrator archives every workflow ended a second ago, every second.
const AUTO: &str = "retention: {archive_after: 1s, every: 1s, archive: {dir: .sett/archive}}\n";
/// [`AUTO`] with passes held to a tenth of the orchestrator's time (`max_share`).
const AUTO_TENTH: &str = "retention: {archive_after: 1s, every: 1s, max_share: 0.1, archive: {dir: .sett/archive}}\n";

/// Redis `used_memory` in bytes.
pub(crate) fn used_memory(b: &Bench) -> Result<u64> {
    let info = b.redis_cli(&["INFO", "memory"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO memory has no used_memory"))
}

fn xlen(b: &Bench, name: &str) -> Result<u64> {
    Ok(b.redis_cli(&["XLEN", &format!("sett:{{{name}}}:events")])?.parse().unwrap_or(0))
}

/// One run of `count` lifecycles (the engine scenario): lifecycles/s.
fn lifecycles(b: &Bench, name: &str, count: u64) -> Result<f64> {
    let r = b.bench_bin(name, &["throughput", "--count", &count.to_string()])?;
    if r["not_completed"].as_u64() != Some(0) {
        bail!("archive bench: claims did not complete: {r}");
    }
    Ok(r["lifecycles_per_second"].as_f64().unwrap_or(0.0))
}

fn up(b: &Bench, ws: &Path, name: &str) -> Result<()> {
    let (code, err) = sett_in(b, ws, name, &["up"])?;
    if code != 0 {
        bail!("sett up ({name}) failed: {err}");
    }
    Ok(())
}

/// `sett <args> -o json --name <name>` in `ws`, parsed.
fn sett_json(b: &Bench, ws: &Path, name: &str, args: &[&str]) -> Result<Value> {
    let out = b
        .sett(args)
        .args(["-o", "json", "--name", name])
        .current_dir(ws)
        .env("SETT_BIN_DIR", &b.bin)
        .env("SETT_OPERATOR", "bench")
        .output()?;
    if !out.status.success() {
        bail!("sett {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The plateau's target and time budget, and the verify scenario's sizes (`cargo xtask bench
/// --plateau-lifecycles N --plateau-seconds S --verify-artifacts A,B`).
pub(crate) struct Sizes {
    pub plateau_lifecycles: u64,
    pub plateau_seconds: u64,
    /// Empty: the defaults.
    pub verify_artifacts: Vec<u64>,
}

/// The archive scenarios `wanted` selects (`--only archive` runs them all, `--only
/// archive-verify` one of them).
pub(crate) fn archive(
    b: &Bench,
    root: &Path,
    quick: bool,
    sizes: &Sizes,
    wanted: impl Fn(&str) -> bool,
) -> Result<Value> {
    let mut out = serde_json::Map::new();
    let manual = workspace(root, "archive-manual", &format!("{ENGINE_YML}{MANUAL}"))?;
    let auto = workspace(root, "archive-auto", &format!("{ENGINE_YML}{AUTO}"))?;
    if wanted("archive-memory") {
        out.insert("memory_and_archiving".into(), memory_and_archiving(b, &manual, if quick { 1000 } else { 3000 })?);
    }
    if wanted("archive-plateau") {
        // A workspace of its own: this scenario can run next to the timed ones (its figure is memory).
        let ws = workspace(root, "archive-plateau", &format!("{ENGINE_YML}{AUTO}"))?;
        out.insert("plateau".into(), plateau(b, &ws, quick, sizes)?);
    }
    if wanted("archive-cost") {
        let tenth = workspace(root, "archive-auto-tenth", &format!("{ENGINE_YML}{AUTO_TENTH}"))?;
        out.insert("engine_cost".into(), engine_cost(b, &manual, &auto, &tenth, if quick { 1000 } else { 3000 })?);
    }
    if wanted("archive-verify") {
        let defaults: &[u64] = if quick { &[10_000, 30_000, 100_000] } else { &[100_000, 300_000, 1_000_000] };
        let counts = if sizes.verify_artifacts.is_empty() { defaults } else { &sizes.verify_artifacts };
        // A workspace of its own: this scenario can run next to the others (its figures are memory).
        let ws = workspace(root, "archive-verify", &format!("{ENGINE_YML}{MANUAL}"))?;
        out.insert("verify_memory".into(), verify_memory(b, &ws, counts)?);
    }
    out.insert("command".into(), json!("cargo xtask bench --only archive"));
    Ok(Value::Object(out))
}

/// `count` lifecycles on an instance whose retention never runs by itself: `used_memory` per
/// lifecycle; then `sett archive --now` until nothing is left: workflows/s and what it freed.
fn memory_and_archiving(b: &Bench, ws: &Path, count: u64) -> Result<Value> {
    let name = "bench-archive-manual";
    up(b, ws, name)?;
    let measured = (|| -> Result<Value> {
        let before = used_memory(b)?;
        let lps = lifecycles(b, name, count)?;
        let after = used_memory(b)?;
        let per = after.saturating_sub(before) as f64 / count as f64;
        // The orchestrator's follow-ups finish within the pass's own checks (a workflow with an
        // open claim or follow-up is kept); passes run until one archives nothing.
        let started = Instant::now();
        let (mut workflows, mut passes, mut bytes) = (0u64, 0u64, 0u64);
        let deadline = Instant::now() + std::time::Duration::from_secs(600);
        while Instant::now() < deadline {
            let r = sett_json(b, ws, name, &["archive", "--now"])?;
            passes += 1;
            let n = r["workflows"].as_u64().unwrap_or(0);
            workflows += n;
            bytes += r["bytes"].as_u64().unwrap_or(0);
            if r["segment"].is_null() {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let archived = used_memory(b)?;
        Ok(json!({
            "lifecycles": count,
            "lifecycles_per_second": lps,
            "used_memory_before_bytes": before,
            "used_memory_after_bytes": after,
            "used_memory_per_lifecycle_bytes": per,
            "archived_workflows": workflows,
            "archive_passes": passes,
            "archive_seconds": secs,
            "archived_workflows_per_second": workflows as f64 / secs.max(1e-9),
            "segment_bytes": bytes,
            "segment_bytes_per_workflow": bytes as f64 / workflows.max(1) as f64,
            "used_memory_after_archiving_bytes": archived,
            "stream_entries_after_archiving": xlen(b, name)?,
        }))
    })();
    let _ = sett_in(b, ws, name, &["down"]);
    measured
}

/// Rounds of lifecycles with `archive_after: 1s` (a pass every second) until the target count or
/// the time budget: `used_memory` after each round. Without retention it would grow by the
/// per-lifecycle figure each round; with it, it must stop growing.
fn plateau(b: &Bench, ws: &Path, quick: bool, sizes: &Sizes) -> Result<Value> {
    let name = "bench-archive-auto";
    let (target, round, budget) = if quick {
        (sizes.plateau_lifecycles.min(10_000), 1_000u64, sizes.plateau_seconds.min(60))
    } else {
        (sizes.plateau_lifecycles, 2_000, sizes.plateau_seconds)
    };
    up(b, ws, name)?;
    let measured = (|| -> Result<Value> {
        let base = used_memory(b)?;
        let started = Instant::now();
        let mut done = 0u64;
        let mut samples = Vec::new();
        let mut rates = Vec::new();
        while done < target && started.elapsed().as_secs() < budget {
            rates.push(lifecycles(b, name, round)?);
            done += round;
            samples.push(json!({
                "lifecycles": done,
                "seconds": started.elapsed().as_secs_f64(),
                "used_memory_bytes": used_memory(b)?,
                "stream_entries": xlen(b, name)?,
            }));
        }
        let mem: Vec<u64> = samples.iter().map(|s| s["used_memory_bytes"].as_u64().unwrap_or(0)).collect();
        let half = mem.len() / 2;
        let first_half_max = mem[..half.max(1)].iter().copied().max().unwrap_or(0);
        let second_half_max = mem[half..].iter().copied().max().unwrap_or(0);
        let summary = sett_json(b, ws, name, &["archive"])?;
        // What is left in Redis: the key count and the largest key of each type (what a
        // remaining growth would come from).
        let keys = b.redis_cli(&["DBSIZE"])?.trim().parse::<u64>().unwrap_or(0);
        let largest: Vec<String> =
            b.redis_cli(&["--memkeys"])?.lines().filter(|l| l.starts_with("Biggest")).map(str::to_owned).collect();
        Ok(json!({
            "keys_at_end": keys,
            "largest_keys_at_end": largest,
            "target_lifecycles": target,
            "lifecycles_run": done,
            "round": round,
            "seconds": started.elapsed().as_secs_f64(),
            "stopped_by": if done >= target { "target" } else { "time budget" },
            "used_memory_at_start_bytes": base,
            "used_memory_first_half_max_bytes": first_half_max,
            "used_memory_second_half_max_bytes": second_half_max,
            "growth_second_half_over_first": second_half_max as f64 / first_half_max.max(1) as f64,
            "lifecycles_per_second_median": median(rates),
            "archive": summary,
            "samples": samples,
        }))
    })();
    let _ = sett_in(b, ws, name, &["down"]);
    measured
}

/// The pids whose CPU the engine spends: the instance's components (orchestrator, cubs) and
/// the Redis server.
fn engine_pids(b: &Bench, name: &str) -> Result<Vec<u64>> {
    let comps = b.bench_bin(name, &["components"])?;
    let mut pids: Vec<u64> =
        comps.as_object().map(|m| m.values().filter_map(|v| v.get("pid")?.as_u64()).collect()).unwrap_or_default();
    if pids.is_empty() {
        bail!("no component pids for {name}: {comps}");
    }
    let info = b.redis_cli(&["INFO", "server"])?;
    pids.extend(info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse::<u64>().ok()));
    Ok(pids)
}

fn cpu_ticks(pids: &[u64]) -> Result<u64> {
    pids.iter().map(|p| crate::bench::proc_cpu_ticks(*p)).sum()
}

/// Lifecycles/s with the orchestrator archiving (every 1s, `archive_after: 1s`; passes back to
/// back, and held to a tenth of the time by `max_share: 0.1`) and without,
/// alternating on fresh instances so a drift of the machine hits every side alike; and the CPU
/// time the engine spent per lifecycle on each side (orchestrator, cubs and Redis, utime +
/// stime, from the rounds' start until 4 s after their end, so the passes that archive the
/// last round are counted): on a machine others share, CPU time per lifecycle moves far less
/// than wall-clock throughput, and it counts every pass, including those after the rounds.
fn engine_cost(b: &Bench, manual: &Path, auto: &Path, tenth: &Path, count: u64) -> Result<Value> {
    let sides: [(&str, &Path); 3] = [("off", manual), ("on", auto), ("tenth", tenth)];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut archived: [Vec<Value>; 3] = Default::default();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    for run in 0..b.runs {
        for (i, (label, ws)) in sides.iter().enumerate() {
            let name = format!("bench-archive-cost-{label}-{run}");
            up(b, ws, &name)?;
            let measured = (|| -> Result<(f64, f64)> {
                let pids = engine_pids(b, &name)?;
                let t0 = cpu_ticks(&pids)?;
                // Two rounds: the second runs while the first one's workflows are being archived.
                let r = lifecycles(b, &name, count).and_then(|_| lifecycles(b, &name, count))?;
                std::thread::sleep(std::time::Duration::from_secs(4));
                let t1 = cpu_ticks(&pids)?;
                Ok((r, (t1 - t0) as f64 / hz / (2 * count) as f64 * 1e3))
            })();
            if *label != "off" {
                archived[i]
                    .push(sett_json(b, ws, &name, &["archive"]).map(|s| s["workflows"].clone()).unwrap_or(Value::Null));
            }
            let _ = sett_in(b, ws, &name, &["down"]);
            let (r, ms) = measured?;
            rates[i].push(r);
            cpu[i].push(ms);
            eprintln!("xtask: archive cost run {run} {label}: {r:.0} lifecycles/s, {ms:.3} CPU ms per lifecycle");
        }
    }
    let off = median(rates[0].clone());
    let cpu_off = median(cpu[0].clone());
    let side = |i: usize| {
        let on = median(rates[i].clone());
        let cpu_on = median(cpu[i].clone());
        json!({
            "lifecycles_per_second": on,
            "runs": rates[i],
            "cost_fraction": 1.0 - on / off.max(1e-9),
            "cpu_ms_per_lifecycle": cpu_on,
            "cpu_runs": cpu[i],
            "cpu_cost_fraction": cpu_on / cpu_off.max(1e-9) - 1.0,
            "workflows_archived_per_run": archived[i],
        })
    };
    Ok(json!({
        "claims_per_round": count,
        "rounds_per_run": 2,
        "workflows_per_run": 2 * count,
        "without_archiving_lifecycles_per_second": off,
        "without_archiving_runs": rates[0],
        "without_archiving_cpu_ms_per_lifecycle": cpu_off,
        "without_archiving_cpu_runs": cpu[0],
        "with_archiving": side(1),
        "with_archiving_max_share_0_1": side(2),
        "target_max_cost_fraction": 0.10,
    }))
}

/// `sett verify` (live, from Redis) and `sett verify --file` (an export) on instances seeded
/// with `n` chained artifacts: seconds and peak resident memory.
fn verify_memory(b: &Bench, ws: &Path, sizes: &[u64]) -> Result<Value> {
    let mut rows = Vec::new();
    for &n in sizes {
        b.redis_cli(&["FLUSHALL"])?;
        let name = format!("bench-verify-{n}");
        let seeded = b.bench_bin(&name, &["seed-artifacts", "--artifacts", &n.to_string(), "--questions", "0"])?;
        let (live_secs, live_kib) = timed(b.sett(&["verify", "--name", &name]).current_dir(ws))?;
        let file = ws.join(format!("export-{n}.jsonl"));
        timed(b.sett(&["export", "--file", &file.display().to_string(), "--name", &name]).current_dir(ws))?;
        let file_bytes = std::fs::metadata(&file)?.len();
        let (file_secs, file_kib) =
            timed(b.sett(&["verify", "--file", &file.display().to_string(), "--name", &name]).current_dir(ws))?;
        let _ = std::fs::remove_file(&file);
        rows.push(json!({
            "artifacts": n,
            "seed_seconds": seeded["seconds"],
            "live_seconds": live_secs,
            "live_peak_rss_kib": live_kib,
            "export_bytes": file_bytes,
            "file_seconds": file_secs,
            "file_peak_rss_kib": file_kib,
        }));
        eprintln!("xtask: verify at {n} artifacts: {}", rows.last().expect("pushed"));
    }
    b.redis_cli(&["FLUSHALL"])?;
    Ok(json!({"sizes": rows, "command": "cargo xtask bench --only archive"}))
}
