//! `cargo xtask bench`: measures what users care about against baselines measured in the same run
//! on the same machine, and writes `bench-results/latest.json` (machine-readable) plus a summary
//! table. Medians of several runs and ratios, never a single time. See `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::redis::TempRedis;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Only run scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Keys destroyed in the large destroy scenario.
    #[arg(long, default_value_t = 1_000_000)]
    destroy_keys: u64,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub(crate) struct Bench {
    pub bin: PathBuf,
    pub redis: TempRedis,
    pub runs: usize,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `cmd`, returning (wall seconds, peak resident memory in KiB from /proc VmHWM).
pub(crate) fn timed(cmd: &mut Command) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().context("spawn")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()) {
                peak = peak.max(kb);
            }
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{:?} failed: {status}: {err}", cmd);
    }
    Ok((secs, peak))
}

impl Bench {
    pub fn sett(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin.join("sett"));
        c.args(args).args(["--redis-url", &self.redis.url()]);
        c
    }

    pub fn redis_cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("redis-cli").args(["-p", &self.redis.port.to_string()]).args(args).output()?;
        if !out.status.success() {
            bail!("redis-cli {args:?} failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn bench_bin(&self, instance: &str, args: &[&str]) -> Result<Value> {
        let out = Command::new(self.bin.join("sett-bench"))
            .args(["--redis-url", &self.redis.url(), "--instance", instance])
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("sett-bench {args:?} failed");
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let root = crate::project_root();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "-p", "sett", "-p", "sett-orchestrator-bin", "-p", "sett-cub-bin", "-p", "sett-bench"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let dir = std::env::temp_dir().join(format!("sett-bench-redis-{}", std::process::id()));
    let redis = TempRedis::start(&dir, &["--enable-debug-command", "yes"])?;
    let b = Bench { bin: root.join("target").join("release"), redis, runs: args.runs.max(1) };
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));

    let mut results = serde_json::Map::new();
    results.insert("machine".into(), machine(&b)?);
    let baseline = redis_baseline(&b)?;
    results.insert("redis_baseline".into(), baseline);
    if wanted("destroy") {
        results.insert("destroy".into(), destroy(&b, args.destroy_keys)?);
    }
    if wanted("questions") {
        results.insert("questions".into(), questions(&b)?);
    }
    let out_dir = root.join("bench-results");
    std::fs::create_dir_all(&out_dir)?;
    let text = serde_json::to_string_pretty(&Value::Object(results))?;
    std::fs::write(out_dir.join("latest.json"), &text)?;
    println!("{text}");
    println!("\nwritten: {}", out_dir.join("latest.json").display());
    Ok(())
}

fn machine(b: &Bench) -> Result<Value> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let info = b.redis_cli(&["INFO", "server"])?;
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_owned();
    Ok(json!({"cores": cores, "redis_version": version, "profile": "release", "redis": "loopback TCP"}))
}

/// Redis's own ceiling on this machine: `redis-benchmark` for SET and HSET, 50 clients, no pipelining.
fn redis_baseline(b: &Bench) -> Result<Value> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &b.redis.port.to_string(), "-q", "-n", "100000", "-c", "50", "-t", "set,hset"])
        .output()
        .context("redis-benchmark (package redis-tools) is required")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rates = serde_json::Map::new();
    for line in text.split(['\n', '\r']) {
        // "SET: 123456.79 requests per second, p50=0.191 msec"
        if let Some((name, rest)) = line.split_once(": ") {
            if let Some(rps) = rest.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()) {
                if rest.contains("requests per second") {
                    rates.insert(name.trim().to_lowercase(), json!(rps));
                }
            }
        }
    }
    let _ = b.redis_cli(&["FLUSHALL"]);
    Ok(Value::Object(rates))
}

fn populate(b: &Bench, instance: &str, keys: u64) -> Result<()> {
    // Realistic key shapes are not needed for SCAN+UNLINK cost; DEBUG POPULATE is fastest.
    b.redis_cli(&["DEBUG", "POPULATE", &keys.to_string(), &format!("sett:{{{instance}}}:artifact"), "32"])?;
    Ok(())
}

fn destroy(b: &Bench, keys: u64) -> Result<Value> {
    let mut ours = Vec::new();
    let mut ours_mem = Vec::new();
    let mut base = Vec::new();
    for i in 0..b.runs {
        let inst = format!("bench-destroy-{i}");
        populate(b, &inst, keys)?;
        let (secs, kib) = timed(b.sett(&["destroy", "--name", &inst, "--force"]).env("SETT_OPERATOR", "bench"))?;
        ours.push(secs);
        ours_mem.push(kib as f64);
        // `sett:audit` (global, kept by design) gains a record; the instance must be empty.
        let left = b.redis_cli(&["--scan", "--pattern", &format!("sett:{{{inst}}}:*")])?;
        if !left.is_empty() {
            bail!("destroy left {} keys of {inst}", left.lines().count());
        }
        populate(b, &inst, keys)?;
        let script = format!(
            "redis-cli -p {p} --scan --pattern 'sett:{{{inst}}}:*' | xargs -n 1000 redis-cli -p {p} unlink > /dev/null",
            p = b.redis.port
        );
        let (secs, _) = timed(Command::new("sh").args(["-c", &script]))?;
        base.push(secs);
        let _ = b.redis_cli(&["FLUSHALL"]);
    }
    // Memory must not grow with the number of keys: destroy a tenth as many keys once more.
    let small = (keys / 10).max(1000);
    populate(b, "bench-destroy-small", small)?;
    let (_, small_kib) = timed(b.sett(&["destroy", "--name", "bench-destroy-small", "--force"]).env("SETT_OPERATOR", "bench"))?;
    let ours_s = median(ours);
    let base_s = median(base);
    Ok(json!({
        "keys": keys,
        "sett_destroy_seconds": ours_s,
        "baseline_scan_xargs_unlink_seconds": base_s,
        "speedup_vs_baseline": base_s / ours_s.max(1e-9),
        "sett_peak_rss_kib": median(ours_mem),
        "sett_peak_rss_kib_at_tenth_keys": small_kib,
        "small_keys": small,
        "command": "cargo xtask bench --only destroy",
    }))
}

fn questions(b: &Bench) -> Result<Value> {
    let big = "bench-questions-big";
    let small = "bench-questions-small";
    b.bench_bin(big, &["seed-artifacts", "--artifacts", "100000", "--questions", "10"])?;
    b.bench_bin(small, &["seed-artifacts", "--artifacts", "0", "--questions", "10"])?;
    let time_list = |inst: &str| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..(b.runs.max(5)) {
            let (secs, _) = timed(&mut b.sett(&["questions", "--name", inst, "-o", "json"]))?;
            v.push(secs * 1000.0);
        }
        Ok(median(v))
    };
    let big_ms = time_list(big)?;
    let small_ms = time_list(small)?;
    let _ = b.redis_cli(&["FLUSHALL"]);
    Ok(json!({
        "open_questions": 10,
        "list_ms_with_100k_artifacts": big_ms,
        "list_ms_with_0_artifacts": small_ms,
        "ratio": big_ms / small_ms.max(1e-9),
        "command": "cargo xtask bench --only questions",
    }))
}
