//! `cargo xtask bench --only peers`: Sett next to its peers, in the same run on the same Redis.
//! Celery (Redis broker and result backend) runs a task that executes the same no-op program as
//! Sett's agent: tasks/s and dispatch latency (sent → task started) against Sett with a single
//! agent (lifecycles/s and artifact → grant taken). LangGraph's interrupt/resume with its own
//! SQLite checkpointer against Sett's answer → agent resumed. The peers are installed from PyPI
//! (`bench/peers/requirements.txt`, pinned) into `target/bench/peers-venv`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, median};

/// The venv's `bin/` with the pinned peers installed (created on first use).
fn venv(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target").join("bench").join("peers-venv");
    let bin = dir.join("bin");
    let reqs = root.join("bench").join("peers").join("requirements.txt");
    let stamp = dir.join(".installed");
    let wanted = std::fs::read_to_string(&reqs)?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(bin);
    }
    if !bin.join("python").exists() {
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&dir).status()?.success();
        if !ok {
            bail!("python3 -m venv failed: install python3-venv (apt-get install -y python3-venv)");
        }
    }
    let ok = Command::new(bin.join("pip")).args(["install", "-q", "-r"]).arg(&reqs).status()?.success();
    if !ok {
        bail!("pip install -r {} failed: PyPI must be reachable for the peers benchmark", reqs.display());
    }
    std::fs::write(&stamp, wanted)?;
    Ok(bin)
}

fn py_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{cmd:?} printed {text}"))
}

/// One agent, `exclusive` on `BenchTask` (no competing bids: the Celery comparison is one task,
/// one worker), and `Asker` on `BenchAsk`, which asks a question on its first run and ends the
/// workflow when resumed with the answer.
const SINGLE_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 10s
agents:
  A:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchTask"]}
    timeout: 1m
  Asker:
    command: ["/bin/sh", "ASKER"]
    bidding_strategy: {type: exclusive, target_types: ["BenchAsk"]}
    timeout: 1m
"#;

const ASKER_SH: &str = r#"#!/bin/sh
# Asks on its first run; resumed with the answer (claim_type "resume"), it ends the workflow.
if grep -q '"resume"'; then
  printf '%s' '{"artifact_type":"Done","artifact_payload":"ok","summary":"done","structural_type":"Terminal"}'
else
  printf '%s' '{"structural_type":"Question","artifact_type":"Clarification","artifact_payload":"Which database?"}'
fi
"#;

pub(crate) fn peers(b: &Bench, quick: bool) -> Result<Value> {
    let root = crate::project_root();
    let bin = venv(&root)?;
    let peers_dir = root.join("bench").join("peers");
    let noop = crate::bench::noop_argv(&root)?;
    let url = b.redis.url();
    let (lat_n, tp_n) = if quick { (50, 500) } else { (300, 3000) };

    // Celery: a worker with two processes (the machine's cores), then the load generator.
    let mut worker = Command::new(bin.join("celery"))
        .args(["-A", "celery_bench", "worker", "--pool", "prefork", "--concurrency", "2", "--loglevel", "warning"])
        .args(["--without-gossip", "--without-mingle", "--without-heartbeat"])
        .current_dir(&peers_dir)
        .env("BENCH_REDIS_URL", &url)
        .env("BENCH_NOOP_ARGV", serde_json::to_string(&noop)?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("celery worker")?;
    let client = |args: &[&str]| {
        let mut c = Command::new(bin.join("python"));
        c.arg("celery_bench.py").args(args).current_dir(&peers_dir).env("BENCH_REDIS_URL", &url);
        c.env("BENCH_NOOP_ARGV", serde_json::to_string(&noop).unwrap_or_default());
        c
    };
    let celery = (|| -> Result<Value> {
        let lat = py_json(&mut client(&["latency", &lat_n.to_string()]))?;
        let mut runs = Vec::new();
        for _ in 0..b.runs {
            let r = py_json(&mut client(&["throughput", &tp_n.to_string()]))?;
            runs.push(r["tasks_per_second"].as_f64().unwrap_or(0.0));
        }
        Ok(json!({"worker": "prefork, concurrency 2, acks_late", "tasks_per_second": median(runs.clone()),
            "tasks_per_second_runs": runs, "tasks_per_run": tp_n, "dispatch": lat}))
    })();
    // A warm shutdown of the main process stops its pool; whatever is left of the process group
    // after 10 s is killed.
    let _ = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while worker.try_wait()?.is_none() && std::time::Instant::now() < give_up {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", worker.id())]).status();
    let _ = worker.wait();
    let celery = celery?;

    // LangGraph: interrupt / resume with its SQLite checkpointer.
    let db = root.join("target").join("bench").join("langgraph-checkpoints.sqlite");
    let _ = std::fs::remove_file(&db);
    let langgraph = py_json(
        Command::new(bin.join("python"))
            .arg("langgraph_bench.py")
            .arg(lat_n.min(200).to_string())
            .arg(&db)
            .current_dir(&peers_dir),
    )?;

    // Sett with one agent, on the same Redis.
    let ws = crate::bench::workspace(&root, "single", SINGLE_YML)?;
    std::fs::write(ws.join("asker.sh"), ASKER_SH)?;
    let yml =
        std::fs::read_to_string(ws.join("sett.yml"))?.replace("ASKER", &ws.join("asker.sh").display().to_string());
    std::fs::write(ws.join("sett.yml"), yml)?;
    let name = "bench-single";
    let (code, err) = crate::bench::sett_in(b, &ws, name, &["up"])?;
    if code != 0 {
        bail!("sett up failed: {err}");
    }
    let sett = (|| -> Result<Value> {
        let lat = b.bench_bin(name, &["latency", "--count", &lat_n.to_string()])?;
        let mut runs = Vec::new();
        for _ in 0..b.runs {
            let r = b.bench_bin(name, &["throughput", "--count", &tp_n.to_string()])?;
            if r["not_completed"].as_u64() != Some(0) {
                bail!("single-agent throughput: claims did not complete: {r}");
            }
            runs.push(r["lifecycles_per_second"].as_f64().unwrap_or(0.0));
        }
        let resume = b.bench_bin(name, &["resume", "--count", &lat_n.min(200).to_string()])?;
        Ok(json!({"agents": 1, "lifecycles_per_second": median(runs.clone()), "lifecycles_per_second_runs": runs,
            "lifecycles_per_run": tp_n, "latency": lat, "resume": resume}))
    })();
    let _ = crate::bench::sett_in(b, &ws, name, &["down"]);
    let sett = sett?;

    let sett_rate = sett["lifecycles_per_second"].as_f64().unwrap_or(0.0);
    let celery_rate = celery["tasks_per_second"].as_f64().unwrap_or(0.0);
    let p50 = |v: &Value, path: &[&str]| path.iter().fold(v, |v, k| &v[*k])["p50_ms"].as_f64().unwrap_or(0.0);
    let freeze = Command::new(bin.join("pip")).arg("freeze").output()?;
    let versions: Vec<String> = String::from_utf8_lossy(&freeze.stdout)
        .lines()
        .filter(|l| ["celery==", "kombu==", "redis==", "langgraph=="].iter().any(|p| l.starts_with(p)))
        .map(str::to_owned)
        .collect();
    Ok(json!({
        "celery": celery,
        "langgraph": langgraph,
        "sett_single_agent": sett,
        "sett_over_celery_throughput": sett_rate / celery_rate.max(1e-9),
        "dispatch_p50_ms": {"sett_artifact_to_grant_taken": p50(&sett, &["latency", "artifact_to_grant_taken"]),
            "celery_sent_to_started": p50(&celery, &["dispatch", "sent_to_started"])},
        "resume_p50_ms": {"sett_answer_to_agent_resumed": p50(&sett, &["resume", "answer_to_agent_resumed"]),
            "langgraph_answer_to_resumed": p50(&langgraph, &["answer_to_resumed"])},
        "peer_versions": versions,
        "command": "cargo xtask bench --only peers",
    }))
}
