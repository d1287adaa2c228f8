//! `cargo xtask bench --only hotpath --baseline-bin DIR`: the Redis work of one claim lifecycle
//! (issue 29, items 3 and 4) as an A/B of two sets of release binaries over one Redis, in rounds
//! that alternate (old, new, old, new, …) so a drift of the machine hits both sides alike. Per
//! round, on a fresh instance of the engine scenario (3 agents bidding `exclusive`, no-op agent
//! writing a Terminal): lifecycles/s and Redis commands per lifecycle (`INFO commandstats`,
//! commands inside Lua included), Redis `used_memory` per completed lifecycle, the claim
//! latency artifact written → grant taken, and each process's CPU per lifecycle, also as a share
//! of Redis's (Redis does the same work on both sides, so the share holds when the machine's
//! speed drifts between rounds, which lifecycles/s does not), and the share of the machine's CPU
//! left idle meanwhile (whether the run was bound by CPU or by one process's loop). A third side
//! runs the new binaries by the same server's Unix socket (the old ones cannot use one).

use std::collections::BTreeMap;
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
    /// CPU µs per lifecycle of each process (Linux `/proc`; empty elsewhere).
    cpu_us: BTreeMap<String, f64>,
    /// The share of the machine's CPU time left idle during the throughput run (Linux
    /// `/proc/stat`): near 0 when the run is bound by CPU, higher when one process's loop is.
    idle_share: Option<f64>,
}

/// The processes of instance `name`: its daemons (found by `--instance <name>` on their
/// command line) and the Redis server (`INFO server`), each labelled.
fn processes(b: &Bench, name: &str) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return found };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = raw.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if !args.windows(2).any(|w| w[0] == "--instance" && w[1] == name) {
            continue;
        }
        let flag = |f: &str| args.windows(2).find(|w| w[0] == f).map(|w| w[1].clone()).unwrap_or_default();
        let program = args.first().and_then(|p| Path::new(p).file_name()).map(|f| f.to_string_lossy().into_owned());
        match program.as_deref() {
            Some("sett-orchestrator") => found.push(("orchestrator".to_owned(), pid)),
            Some("sett-cub") => found.push((format!("cub {}", flag("--agent")), pid)),
            // The load generator (sett-bench) is not part of the system measured.
            _ => {}
        }
    }
    let redis = b
        .redis_cli(&["INFO", "server"])
        .ok()
        .and_then(|info| info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|p| p.trim().parse().ok()));
    if let Some(pid) = redis {
        found.push(("redis".to_owned(), pid));
    }
    found
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds `pid` and its reaped children (a cub's tools) used so far: utime, stime, cutime
/// and cstime of `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces; the first
    // of them is field 3 (state), so utime..cstime (fields 14–17) are 11..=14.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let sum: f64 = fields.get(11..=14)?.iter().filter_map(|f| f.parse::<f64>().ok()).sum();
    Some(sum / ticks)
}

/// The machine's CPU time so far, idle (idle and iowait) and in all: the first line of
/// `/proc/stat`, in clock ticks.
fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    // guest and guest_nice (the 9th and 10th) are already counted in user and nice.
    Some((idle, ticks.iter().take(8).sum()))
}

fn round(b: &Bench, ws: &Path, name: &str, count: u64, latency_claims: u64) -> Result<Round> {
    let (code, err) = sett_in(b, ws, name, &["up"])?;
    if code != 0 {
        bail!("sett up ({name}) failed: {err}");
    }
    let measured = (|| -> Result<Round> {
        let before = used_memory(b)?;
        let (procs, ticks) = (processes(b, name), clock_ticks());
        let cpu_before: Vec<Option<f64>> = procs.iter().map(|(_, pid)| cpu_seconds(*pid, ticks)).collect();
        let machine_before = machine_cpu_ticks();
        let (rate, commands) = lifecycles(b, name, count, name)?;
        let idle_share = machine_before.zip(machine_cpu_ticks()).and_then(|((idle0, all0), (idle1, all1))| {
            let all = all1.checked_sub(all0).filter(|a| *a > 0)?;
            Some(idle1.saturating_sub(idle0) as f64 / all as f64)
        });
        let cpu_us = procs
            .iter()
            .zip(cpu_before)
            .filter_map(|((label, pid), before)| {
                Some((label.clone(), (cpu_seconds(*pid, ticks)? - before?) * 1e6 / count as f64))
            })
            .collect();
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
            cpu_us,
            idle_share,
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
    let old = Bench { bin: baseline.to_path_buf(), redis: b.redis.clone(), runs: b.runs, unix: false };
    // The new binaries a third time, by the server's Unix socket (the old ones cannot use it).
    let by_socket = Bench { bin: b.bin.clone(), redis: b.redis.clone(), runs: b.runs, unix: true };
    let mut sides: Vec<(&str, &Bench)> = vec![("old", &old), ("new", b)];
    if b.redis.unix_url().is_some() {
        sides.push(("new-unix-socket", &by_socket));
    }
    let mut rounds: Vec<Vec<Round>> = sides.iter().map(|_| Vec::new()).collect();
    for run in 0..b.runs {
        for (i, (label, bench)) in sides.iter().enumerate() {
            let r = round(bench, ws, &format!("bench-hotpath-{label}-{run}"), count, latency_claims)?;
            let cpu: Vec<String> = r.cpu_us.iter().map(|(p, us)| format!("{p} {us:.0}")).collect();
            let idle = r.idle_share.map_or_else(|| "?".to_owned(), |i| format!("{:.0} %", i * 100.0));
            eprintln!(
                "hotpath round {run} {label}: {:.0} lifecycles/s, {:.1} commands, {:.0} bytes, p50 {:.2} ms, machine idle {idle}, CPU µs per lifecycle: {}",
                r.lifecycles_per_second,
                r.commands,
                r.bytes,
                r.grant_taken_p50_ms,
                cpu.join(", ")
            );
            rounds[i].push(r);
        }
    }
    let side = |rs: &[Round]| {
        let col = |f: fn(&Round) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
        // Per process: CPU µs per lifecycle, and as a share of Redis's in the same round.
        let labels: std::collections::BTreeSet<&String> = rs.iter().flat_map(|r| r.cpu_us.keys()).collect();
        let (mut cpu, mut share) = (serde_json::Map::new(), serde_json::Map::new());
        for label in labels {
            let us: Vec<f64> = rs.iter().filter_map(|r| r.cpu_us.get(label).copied()).collect();
            let of_redis: Vec<f64> = rs
                .iter()
                .filter_map(|r| Some(r.cpu_us.get(label)? / r.cpu_us.get("redis").filter(|v| **v > 0.0)?))
                .collect();
            cpu.insert(label.clone(), json!({"median": median(us.clone()), "runs": us}));
            share.insert(label.clone(), json!({"median": median(of_redis.clone()), "runs": of_redis}));
        }
        json!({
            "cpu_us_per_lifecycle": cpu,
            "cpu_share_of_redis": share,
            "lifecycles_per_second": median(col(|r| r.lifecycles_per_second)),
            "lifecycles_per_second_runs": col(|r| r.lifecycles_per_second),
            "redis_commands_per_lifecycle": median(col(|r| r.commands)),
            "redis_commands_per_lifecycle_runs": col(|r| r.commands),
            "used_memory_bytes_per_lifecycle": median(col(|r| r.bytes)),
            "used_memory_bytes_per_lifecycle_runs": col(|r| r.bytes),
            "artifact_to_grant_taken_p50_ms": median(col(|r| r.grant_taken_p50_ms)),
            "artifact_to_grant_taken_p50_ms_runs": col(|r| r.grant_taken_p50_ms),
            "machine_idle_share_runs": rs.iter().map(|r| r.idle_share).collect::<Vec<Option<f64>>>(),
            "commands_per_lifecycle_by_command_last_run": rs.last().map(|r| r.by_command.clone()).unwrap_or_default(),
        })
    };
    let (o, n) = (side(&rounds[0]), side(&rounds[1]));
    let by_socket = rounds.get(2).map(|rs| side(rs));
    let ratio = |k: &str| n[k].as_f64().unwrap_or(0.0) / o[k].as_f64().unwrap_or(0.0).max(1e-9);
    let socket_ratio =
        |k: &str| by_socket.as_ref().map(|u| u[k].as_f64().unwrap_or(0.0) / o[k].as_f64().unwrap_or(0.0).max(1e-9));
    // Each process's CPU as a share of Redis's, new over old: the comparison a drifting machine
    // leaves standing.
    let share_ratios: serde_json::Map<String, Value> = n["cpu_share_of_redis"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(label, new)| {
            let old = o["cpu_share_of_redis"][label]["median"].as_f64().filter(|v| *v > 0.0)?;
            Some((label.clone(), json!(new["median"].as_f64()? / old)))
        })
        .collect();
    Ok(json!({
        "claims_per_run": count,
        "latency_claims_per_run": latency_claims,
        "agents_bidding": 3,
        "baseline_bin": baseline.display().to_string(),
        "old": o,
        "new": n,
        "new_by_unix_socket": by_socket,
        "new_by_unix_socket_over_old": {
            "lifecycles_per_second": socket_ratio("lifecycles_per_second"),
            "artifact_to_grant_taken_p50_ms": socket_ratio("artifact_to_grant_taken_p50_ms"),
        },
        "new_over_old": {
            "lifecycles_per_second": ratio("lifecycles_per_second"),
            "redis_commands_per_lifecycle": ratio("redis_commands_per_lifecycle"),
            "used_memory_bytes_per_lifecycle": ratio("used_memory_bytes_per_lifecycle"),
            "artifact_to_grant_taken_p50_ms": ratio("artifact_to_grant_taken_p50_ms"),
            "cpu_share_of_redis": share_ratios,
        },
        "redis_baseline": redis_baseline(b)?,
        "transport": "old and new by loopback TCP; new_by_unix_socket: the new binaries by the same server's Unix socket",
        "command": "cargo xtask bench --only hotpath --baseline-bin DIR",
    }))
}
