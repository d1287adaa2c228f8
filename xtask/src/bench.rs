//! `cargo xtask bench`: measures what users care about against baselines measured in the same run
//! on the same machine (release binaries, a dedicated loopback `redis-server`, no-op agents), and
//! writes `target/bench/results.json` (machine-readable; `--record` also writes
//! `docs/benchmarks.json`). Medians of several runs, p50/p99 and ratios, never a single time.
//! See `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::redis::TempRedis;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Only run scenarios whose name contains one of these (comma-separated, e.g.
    /// `--only latency,throughput`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Keys destroyed in the large destroy scenario.
    #[arg(long, default_value_t = 1_000_000)]
    destroy_keys: u64,
    /// Repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// A shorter local run (idle sampled for 10 s instead of 60 s, fewer claims). Committed
    /// figures come from the full run.
    #[arg(long)]
    quick: bool,
    /// Also write the results to `docs/benchmarks.json` (the committed copy).
    #[arg(long)]
    record: bool,
    /// Lifecycles the `archive-plateau` scenario aims at (issue 28 asks 100,000).
    #[arg(long, default_value_t = 100_000)]
    plateau_lifecycles: u64,
    /// The `archive-plateau` scenario's time budget in seconds (it stops there, saying so).
    #[arg(long, default_value_t = 900)]
    plateau_seconds: u64,
    /// Artifact counts of the `archive-verify` scenario (comma-separated; default 100k, 300k, 1M;
    /// with `--quick` 10k, 30k, 100k).
    #[arg(long, value_delimiter = ',')]
    verify_artifacts: Vec<u64>,
    /// Do not build: use the binaries already in target/release (or target/debug with `--dev`),
    /// e.g. built once for several bench runs while the sources moved on.
    #[arg(long)]
    no_build: bool,
    /// Use the dev-profile binaries (a smoke test of the scenarios; the figures mean nothing).
    #[arg(long, conflicts_with = "record")]
    dev: bool,
    /// The `hotpath` scenario's old side: a directory holding release `sett`,
    /// `sett-orchestrator`, `sett-cub` and `sett-bench` built from the baseline commit.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
}

pub(crate) struct Bench {
    pub bin: PathBuf,
    /// Shared so a scenario can run a second set of binaries against the same server.
    pub redis: std::rc::Rc<TempRedis>,
    pub runs: usize,
    /// The binaries connect by the server's Unix socket instead of loopback TCP.
    pub unix: bool,
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
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        {
            peak = peak.max(kb);
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
        c.args(args).args(["--redis-url", &self.url()]);
        c
    }

    /// The URL the benchmarked binaries connect with: loopback TCP, or the Unix socket.
    pub fn url(&self) -> String {
        match self.redis.unix_url().filter(|_| self.unix) {
            Some(url) => url,
            None => self.redis.url(),
        }
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
            .args(["--redis-url", &self.url(), "--instance", instance])
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("sett-bench {args:?} failed");
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

pub fn run(mut args: BenchArgs) -> Result<()> {
    let root = crate::project_root();
    if let Some(dir) = &args.baseline_bin {
        args.baseline_bin = Some(baseline_dir(dir)?);
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| name.contains(o.as_str()));
    // The ledger scenario's baseline binaries are built first, so the normal build below leaves
    // target/release as users get it.
    let unchained = if wanted("ledger") { Some(crate::bench_ledger::build_unchained(&root)?) } else { None };
    let profile: &[&str] = if args.dev { &[] } else { &["--release"] };
    let status = if args.no_build {
        std::process::ExitStatus::default()
    } else {
        Command::new(env!("CARGO"))
            .arg("build")
            .args(profile)
            .args(["--locked", "-p", "sett", "-p", "sett-orchestrator-bin", "-p", "sett-cub-bin", "-p", "sett-bench"])
            .current_dir(&root)
            .status()?
    };
    if !status.success() {
        bail!("the build of the benchmarked binaries failed");
    }
    let dir = std::env::temp_dir().join(format!("sett-bench-redis-{}", std::process::id()));
    let redis = TempRedis::start(&dir, &["--enable-debug-command", "yes"])?;
    let b = Bench {
        bin: root.join("target").join(if args.dev { "debug" } else { "release" }),
        redis: std::rc::Rc::new(redis),
        runs: args.runs.max(1),
        unix: false,
    };

    let mut results = serde_json::Map::new();
    results.insert("machine".into(), machine(&b, args.dev)?);
    let baseline = redis_baseline(&b)?;
    results.insert("redis_baseline".into(), baseline);
    if wanted("destroy") {
        results.insert("destroy".into(), destroy(&b, args.destroy_keys)?);
    }
    if wanted("stream") {
        let sizes: Vec<u64> = if args.quick { vec![10_000, 100_000] } else { vec![100_000, 1_000_000] };
        results.insert("stream".into(), crate::bench_stream::stream(&b, &sizes)?);
    }
    if wanted("peers") {
        results.insert("peers".into(), crate::bench_peers::peers(&b, args.quick)?);
    }
    if wanted("questions") {
        let mut q = questions(&b)?;
        q["wait_wakeup"] = question_wakeup(&b, if args.quick { 10 } else { 30 })?;
        results.insert("questions".into(), q);
    }
    if wanted("console") {
        results.insert("console".into(), console(&b, args.quick)?);
    }
    if wanted("cluster") {
        results.insert("cluster".into(), crate::bench_cluster::cluster(&b, &root, args.quick)?);
    }
    let quick = args.quick;
    let engine_ws = workspace(&root, "engine", ENGINE_YML)?;
    if wanted("up") {
        results.insert("up".into(), up_to_ready(&b, &engine_ws)?);
    }
    if wanted("latency") || wanted("throughput") || wanted("idle") {
        let name = "bench-engine";
        let (code, err) = sett_in(&b, &engine_ws, name, &["up"])?;
        if code != 0 {
            bail!("sett up failed: {err}");
        }
        let mut run = || -> Result<()> {
            if wanted("latency") {
                let count = if quick { "100" } else { "500" };
                results.insert("claim_latency".into(), b.bench_bin(name, &["latency", "--count", count])?);
            }
            if wanted("throughput") {
                results.insert("throughput".into(), throughput(&b, name, if quick { 1000 } else { 3000 })?);
            }
            if wanted("idle") {
                results.insert("idle".into(), idle(&b, name, if quick { 10 } else { 60 })?);
            }
            Ok(())
        };
        let r = run();
        let _ = sett_in(&b, &engine_ws, name, &["down"]);
        r?;
    }
    if let Some(unchained) = unchained {
        let engine_ws = workspace(&root, "ledger", ENGINE_YML)?;
        results.insert("ledger".into(), crate::bench_ledger::chain_cost(&b, &unchained, &engine_ws, quick)?);
    }
    if wanted("hotpath") {
        match &args.baseline_bin {
            Some(base) => {
                let ws = workspace(&root, "hotpath", ENGINE_YML)?;
                results.insert("hotpath".into(), crate::bench_hotpath::ab(&b, base, &ws, quick)?);
            }
            None if args.only.iter().any(|o| o == "hotpath") => {
                bail!("--only hotpath needs --baseline-bin DIR (the old release binaries)")
            }
            None => {}
        }
    }
    if wanted("approval") {
        let ws = workspace(&root, "approval", APPROVAL_YML)?;
        let name = "bench-approval";
        let (code, err) = sett_in(&b, &ws, name, &["up"])?;
        if code != 0 {
            bail!("sett up failed: {err}");
        }
        let r = b.bench_bin(name, &["approval", "--count", if quick { "50" } else { "200" }]);
        let _ = sett_in(&b, &ws, name, &["down"]);
        results.insert("approval".into(), r?);
    }
    if wanted("traces") {
        let ws = workspace(&root, "traces", ENGINE_YML)?;
        results.insert("traces".into(), crate::bench_traces::tracing_cost(&b, &root, &ws, quick)?);
    }
    if wanted("usage") {
        results.insert("usage".into(), crate::bench_usage::usage_cost(&b, &root, quick)?);
    }
    if wanted("notify") {
        let samples = if quick { 10 } else { 30 };
        results.insert("notify".into(), crate::bench_notify::notify_latency(&b, &root, samples)?);
    }
    if wanted("workflow") {
        let ws = workspace(&root, "pipeline", PIPELINE_YML)?;
        let name = "bench-pipeline";
        let (code, err) = sett_in(&b, &ws, name, &["up"])?;
        if code != 0 {
            bail!("sett up failed: {err}");
        }
        let r = b.bench_bin(name, &["workflow", "--count", if quick { "10" } else { "30" }]);
        let _ = sett_in(&b, &ws, name, &["down"]);
        results.insert("workflow".into(), r?);
    }
    if ["archive-memory", "archive-plateau", "archive-cost", "archive-verify"].iter().any(|n| wanted(n)) {
        let sizes = crate::bench_archive::Sizes {
            plateau_lifecycles: args.plateau_lifecycles,
            plateau_seconds: args.plateau_seconds,
            verify_artifacts: args.verify_artifacts.clone(),
        };
        results.insert("archive".into(), crate::bench_archive::archive(&b, &root, quick, &sizes, wanted)?);
    }
    results
        .insert("command".into(), json!(std::env::args().skip(1).fold("cargo xtask".to_owned(), |a, s| a + " " + &s)));
    let out_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let text = serde_json::to_string_pretty(&Value::Object(results))?;
    std::fs::write(out_dir.join("results.json"), &text)?;
    println!("{text}");
    println!("\nwritten: {}", out_dir.join("results.json").display());
    if args.record {
        std::fs::write(root.join("docs").join("benchmarks.json"), format!("{text}\n"))?;
        println!("written: docs/benchmarks.json");
    }
    Ok(())
}

/// No-op agents: `sett-noop` (bench/noop/noop.rs: no libc, only `write` and `exit`) prints the
/// output JSON given as its argument, so a lifecycle costs one exec and nothing else on the
/// agent's side. `NOOPBIN` is replaced by the program (see [`noop_agent`]).
const NOOP_TERMINAL: &str =
    r#"[NOOPBIN, '{"artifact_type":"Done","artifact_payload":"ok","summary":"done","structural_type":"Terminal"}']"#;

/// Compiles the no-op agent into `target/bench/sett-noop` and returns the argv prefix to run it;
/// where it cannot be built (not x86-64 Linux), `/usr/bin/printf %s` does the same job at the
/// cost of a libc start-up.
fn noop_agent(root: &std::path::Path) -> Result<String> {
    Ok(noop_argv(root)?.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "))
}

/// The no-op agent's argv (see [`noop_agent`]).
pub(crate) fn noop_argv(root: &std::path::Path) -> Result<Vec<String>> {
    let out = root.join("target").join("bench").join("sett-noop");
    std::fs::create_dir_all(root.join("target").join("bench"))?;
    let src = root.join("bench").join("noop").join("noop.rs");
    // Built already (and not older than its source): rebuilding it could hit a copy that a bench
    // running next to this one is executing.
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&out).is_some_and(|o| modified(&src).is_some_and(|s| o >= s)) {
        return Ok(vec![out.display().to_string()]);
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let built = Command::new(rustc)
        .args(["--edition", "2024", "-C", "opt-level=3", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static", "-C", "link-arg=-nostartfiles", "-C", "link-arg=-static", "-o"])
        .arg(&out)
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if built {
        Ok(vec![out.display().to_string()])
    } else {
        eprintln!("xtask: cannot build bench/noop/noop.rs here; the no-op agent is /usr/bin/printf");
        Ok(vec!["/usr/bin/printf".to_owned(), "%s".to_owned()])
    }
}

/// Three agents bid on every `BenchTask` claim (consensus), all `exclusive`: the smallest name
/// wins and completes the claim with a Terminal output.
pub(crate) const ENGINE_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 10s
agents:
  A:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchTask"]}
    timeout: 1m
  B:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchTask"]}
    timeout: 1m
  C:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchTask"]}
    timeout: 1m
"#;

/// The approval gate (docs/human-in-the-loop.md, "Approvals"): `A` takes `BenchTask` ungated,
/// `G` takes `BenchGated` only once a person (the bench, the moment it is asked) approves. Both
/// bid on everything, so both kinds of claim cost the same consensus.
const APPROVAL_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 10s
agents:
  A:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchTask"]}
    timeout: 1m
  G:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["BenchGated"]}
    timeout: 1m
    approval: {timeout: 1h}
"#;

/// The three-step pipeline on a goal: review (approves) → parallel (a check report) →
/// exclusive (the Terminal).
const PIPELINE_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 10s
agents:
  Checker:
    command: [NOOPBIN, '{"artifact_type":"CheckReport","artifact_payload":"ok","summary":"checked"}']
    bidding_strategy: {type: claim, target_types: ["GoalDefined"]}
    timeout: 1m
  Publisher:
    command: NOOP
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    timeout: 1m
  Reviewer:
    command: [NOOPBIN, '{"artifact_type":"Review","artifact_payload":{},"summary":"approved"}']
    bidding_strategy: {type: review, target_types: ["GoalDefined"]}
    timeout: 1m
"#;

/// The `--baseline-bin` directory as an absolute path (the old binaries run from the bench's
/// workspace, so a relative one would name nothing there), checked to hold every binary the
/// hotpath scenario runs.
fn baseline_dir(dir: &std::path::Path) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(dir)
        .with_context(|| format!("--baseline-bin {}: give the old side's release directory", dir.display()))?;
    for bin in ["sett", "sett-orchestrator", "sett-cub", "sett-bench"] {
        if !abs.join(bin).is_file() {
            bail!(
                "--baseline-bin {}: no `{bin}` there; build the old side with `cargo build --release --locked -p sett \
                 -p sett-orchestrator-bin -p sett-cub-bin -p sett-bench` and pass its target/release",
                abs.display()
            );
        }
    }
    Ok(abs)
}

/// A git repository under `target/bench/` holding `sett.yml`.
pub(crate) fn workspace(root: &std::path::Path, name: &str, yml: &str) -> Result<PathBuf> {
    let dir = root.join("target").join("bench").join(format!("ws-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let noop = noop_agent(root)?;
    let yml = yml.replace("command: NOOP", &format!("command: {NOOP_TERMINAL}"));
    std::fs::write(dir.join("sett.yml"), yml.replace("NOOPBIN", &noop))?;
    std::fs::write(dir.join(".gitignore"), ".sett/\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["-c", "user.name=Sett Bench", "-c", "user.email=bench@sett.invalid", "add", "."],
        &["-c", "user.name=Sett Bench", "-c", "user.email=bench@sett.invalid", "commit", "-q", "-m", "bench"],
    ] {
        if !Command::new("git").args(args).current_dir(&dir).stdout(Stdio::null()).status()?.success() {
            bail!("git {args:?} failed in {}", dir.display());
        }
    }
    Ok(dir)
}

/// Runs `sett <args> --name <name>` in `ws`; returns the exit code and stderr.
pub(crate) fn sett_in(b: &Bench, ws: &std::path::Path, name: &str, args: &[&str]) -> Result<(i32, String)> {
    sett_with(b, ws, name, args, &[])
}

/// [`sett_in`] with `env` added to the command's (and so the daemons') environment.
pub(crate) fn sett_with(
    b: &Bench,
    ws: &std::path::Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> Result<(i32, String)> {
    let out = b
        .sett(args)
        .args(["--name", name])
        .current_dir(ws)
        .env("SETT_BIN_DIR", &b.bin)
        .env("SETT_OPERATOR", "bench")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()?;
    Ok((out.status.code().unwrap_or(1), String::from_utf8_lossy(&out.stderr).into_owned()))
}

pub(crate) fn wall_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// `sett up` (local runtime: an orchestrator and three cubs as processes) until every component
/// reports ready, on a fresh instance each time; `sett down` in between.
fn up_to_ready(b: &Bench, ws: &std::path::Path) -> Result<Value> {
    let mut v = Vec::new();
    for i in 0..b.runs.max(7) {
        let name = format!("bench-up-{i}");
        let started = Instant::now();
        let (code, err) = sett_in(b, ws, &name, &["up"])?;
        let secs = started.elapsed().as_secs_f64();
        let _ = sett_in(b, ws, &name, &["down"]);
        if code != 0 {
            bail!("sett up failed: {err}");
        }
        v.push(secs * 1000.0);
    }
    let all = v.clone();
    Ok(json!({"components": 4, "median_ms": median(v), "runs_ms": all}))
}

/// Sum of `calls=` over `INFO commandstats`, and the per-command counts.
pub(crate) fn command_stats(b: &Bench) -> Result<(u64, serde_json::Map<String, Value>)> {
    let text = b.redis_cli(&["INFO", "commandstats"])?;
    let mut total = 0;
    let mut by = serde_json::Map::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
        let calls: u64 =
            rest.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        total += calls;
        by.insert(name.to_owned(), json!(calls));
    }
    Ok((total, by))
}

/// One throughput run of `count` claims on the running instance `name`: lifecycles/s and Redis
/// commands per lifecycle (the server's statistics, reset first). `what` names the run in errors.
pub(crate) fn lifecycles(b: &Bench, name: &str, count: u64, what: &str) -> Result<(f64, f64)> {
    b.redis_cli(&["CONFIG", "RESETSTAT"])?;
    let r = b.bench_bin(name, &["throughput", "--count", &count.to_string()])?;
    let (total, _) = command_stats(b)?;
    if r["not_completed"].as_u64() != Some(0) {
        bail!("{what} run: claims did not complete: {r}");
    }
    let reads = r["bench_reads"].as_u64().unwrap_or(0);
    Ok((r["lifecycles_per_second"].as_f64().unwrap_or(0.0), total.saturating_sub(reads + 1) as f64 / count as f64))
}

/// Lifecycles/s with `count` claims written at once, and Redis commands per lifecycle from the
/// server's own statistics (reset before each run). The ceiling is redis-benchmark's SET rate
/// divided by the commands one lifecycle costs.
pub(crate) fn throughput(b: &Bench, name: &str, count: u64) -> Result<Value> {
    let mut rates = Vec::new();
    let mut per = Vec::new();
    let mut last_by = serde_json::Map::new();
    let mut runs = Vec::new();
    for _ in 0..b.runs {
        b.redis_cli(&["CONFIG", "RESETSTAT"])?;
        let r = b.bench_bin(name, &["throughput", "--count", &count.to_string()])?;
        let (total, by) = command_stats(b)?;
        // The load generator's own stream reads and this INFO are not part of a lifecycle; its
        // artifact writes are (a user writes the artifact).
        let reads = r["bench_reads"].as_u64().unwrap_or(0);
        let cmds = total.saturating_sub(reads + 1) as f64 / count as f64;
        if r["not_completed"].as_u64() != Some(0) {
            bail!("throughput run: claims did not complete: {r}");
        }
        rates.push(r["lifecycles_per_second"].as_f64().unwrap_or(0.0));
        per.push(cmds);
        last_by = by.into_iter().map(|(k, v)| (k, json!(v.as_u64().unwrap_or(0) as f64 / count as f64))).collect();
        runs.push(r);
    }
    let (round_trips, in_scripts) = command_split(b, name, count.min(1000))?;
    let baseline = redis_baseline(b)?;
    let set_rate = baseline["set"].as_f64().unwrap_or(0.0);
    let lps = median(rates.clone());
    let cmds = median(per.clone());
    let ceiling = set_rate / cmds.max(1e-9);
    let ceiling_rt = set_rate / round_trips.max(1e-9);
    Ok(json!({
        "claims_per_run": count,
        "agents_bidding": 3,
        "no_op_agent": "target/bench/sett-noop '<Terminal output JSON>' (no libc: write + exit)",
        "lifecycles_per_second": lps,
        "lifecycles_per_second_runs": rates,
        "redis_commands_per_lifecycle": cmds,
        "redis_commands_per_lifecycle_runs": per,
        "commands_per_lifecycle_by_command": last_by,
        "redis_set_ops_per_second": set_rate,
        "redis_bound_ceiling_lifecycles_per_second": ceiling,
        "fraction_of_ceiling": lps / ceiling.max(1e-9),
        "client_round_trips_per_lifecycle": round_trips,
        "in_script_commands_per_lifecycle": in_scripts,
        "redis_bound_ceiling_by_round_trips": ceiling_rt,
        "fraction_of_ceiling_by_round_trips": lps / ceiling_rt.max(1e-9),
    }))
}

/// Splits a lifecycle's commands into client round trips and commands run inside Lua scripts
/// (which `INFO commandstats` counts alike), from `MONITOR` over one more run of `count` claims.
fn command_split(b: &Bench, name: &str, count: u64) -> Result<(f64, f64)> {
    let log = std::env::temp_dir().join(format!("sett-bench-monitor-{}.txt", std::process::id()));
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &b.redis.port.to_string(), "monitor"])
        .stdout(std::fs::File::create(&log)?)
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while !b.redis_cli(&["CLIENT", "LIST"])?.contains("cmd=monitor") {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = monitor.kill();
            bail!("redis-cli monitor did not attach");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = b.bench_bin(name, &["throughput", "--count", &count.to_string()]);
    // Let the monitor drain what the server already sent.
    std::thread::sleep(Duration::from_millis(500));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let r = r?;
    let text = std::fs::read_to_string(&log)?;
    let _ = std::fs::remove_file(&log);
    let (mut client, mut script) = (0u64, 0u64);
    for line in text.lines() {
        // `<time> [<db> lua] "CMD" ...` inside a script, `<time> [<db> <addr>] "CMD" ...` otherwise.
        match line.split_once(" [").and_then(|(_, rest)| rest.split_once(']')) {
            Some((origin, _)) if origin.ends_with(" lua") => script += 1,
            Some(_) => client += 1,
            None => {}
        }
    }
    // The load generator's stream reads and the CLIENT LIST probes are not part of a lifecycle.
    let client = client.saturating_sub(r["bench_reads"].as_u64().unwrap_or(0) + 1);
    Ok((client as f64 / count as f64, script as f64 / count as f64))
}

pub(crate) fn proc_cpu_ticks(pid: u64) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces): utime is the 14th field.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|n| n.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|n| n.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

fn proc_rss_kib(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU (utime + stime from /proc/<pid>/stat over `secs`) and resident memory of every component
/// of a running instance with nothing to do.
fn idle(b: &Bench, name: &str, secs: u64) -> Result<Value> {
    let comps = b.bench_bin(name, &["components"])?;
    let pids: Vec<(String, u64)> = comps
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.get("pid")?.as_u64()?))).collect())
        .unwrap_or_default();
    if pids.is_empty() {
        bail!("no component pids for {name}: {comps}");
    }
    // Let the last work settle before sampling.
    std::thread::sleep(Duration::from_secs(2));
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let before: Vec<u64> = pids.iter().map(|(_, p)| proc_cpu_ticks(*p)).collect::<Result<_>>()?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = started.elapsed().as_secs_f64();
    let mut out = serde_json::Map::new();
    for ((comp, pid), t0) in pids.iter().zip(before) {
        let t1 = proc_cpu_ticks(*pid)?;
        out.insert(
            comp.clone(),
            json!({
                "pid": pid,
                "cpu_percent": (t1 - t0) as f64 / hz / wall * 100.0,
                "rss_mib": proc_rss_kib(*pid) as f64 / 1024.0,
            }),
        );
    }
    Ok(json!({"seconds": secs, "clock_ticks_per_second": hz, "components": out}))
}

/// `sett questions --wait` started on an instance with no question; a question is then opened
/// (one atomic write with its `question_asked` event); wake-up = the command's exit minus the
/// write, both on the wall clock.
fn question_wakeup(b: &Bench, n: usize) -> Result<Value> {
    let xreads = |b: &Bench| -> Result<usize> { Ok(b.redis_cli(&["CLIENT", "LIST"])?.matches("cmd=xread ").count()) };
    let mut v = Vec::new();
    for i in 0..n {
        let inst = format!("bench-qwait-{i}");
        let blocked_before = xreads(b)?;
        let mut child = b
            .sett(&["questions", "--name", &inst, "--wait", "--timeout", "30s", "-o", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // The waiter is ready once its blocking stream read is parked on the server.
        let started = Instant::now();
        while xreads(b)? <= blocked_before {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("sett questions --wait never blocked");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let waiter = std::thread::spawn(move || {
            let st = child.wait();
            (wall_us(), st)
        });
        let asked = b.bench_bin(&inst, &["ask-question"])?;
        let t0 = asked["written_at_us"].as_u64().unwrap_or(0);
        let (t1, st) = waiter.join().map_err(|_| anyhow::anyhow!("waiter panicked"))?;
        if !st?.success() {
            bail!("sett questions --wait did not exit 0");
        }
        v.push(t1.saturating_sub(t0) as f64 / 1000.0);
    }
    let _ = b.redis_cli(&["FLUSHALL"]);
    let mut sorted = v.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let p99 = sorted[((sorted.len() as f64 - 1.0) * 0.99).round() as usize];
    Ok(json!({"samples": n, "median_ms": median(v), "p99_ms": p99}))
}

/// The machine and the build the figures come from (`--dev` runs are dev-profile smoke tests).
fn machine(b: &Bench, dev: bool) -> Result<Value> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let info = b.redis_cli(&["INFO", "server"])?;
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_owned();
    let profile = if dev { "dev" } else { "release" };
    Ok(json!({"cores": cores, "redis_version": version, "profile": profile, "redis": "loopback TCP"}))
}

/// Redis's own ceiling on this machine: `redis-benchmark` for SET and HSET, 50 clients, no
/// pipelining; the median of `runs` runs per command. Only its own keys are removed afterwards,
/// so it can run next to a live instance.
pub(crate) fn redis_baseline(b: &Bench) -> Result<Value> {
    let mut all: std::collections::BTreeMap<String, Vec<f64>> = std::collections::BTreeMap::new();
    for _ in 0..b.runs {
        let out = Command::new("redis-benchmark")
            .args(["-p", &b.redis.port.to_string(), "-q", "-n", "100000", "-c", "50", "-t", "set,hset"])
            .output()
            .context("redis-benchmark (package redis-tools) is required")?;
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.split(['\n', '\r']) {
            // "SET: 123456.79 requests per second, p50=0.191 msec"
            if let Some((name, rest)) = line.split_once(": ")
                && rest.contains("requests per second")
                && let Some(rps) = rest.split_whitespace().next().and_then(|n| n.parse::<f64>().ok())
            {
                all.entry(name.trim().to_lowercase()).or_default().push(rps);
            }
        }
    }
    let _ = b.redis_cli(&["DEL", "key:__rand_int__", "myhash"]);
    let mut rates = serde_json::Map::new();
    for (name, v) in all {
        rates.insert(format!("{name}_runs"), json!(v.clone()));
        rates.insert(name, json!(median(v)));
    }
    rates.insert("command".into(), json!("redis-benchmark -q -n 100000 -c 50 -t set,hset"));
    Ok(Value::Object(rates))
}

/// Copies every key of instance `from` in Redis database `from_db` to instance `to` in database
/// `to_db` (`COPY … DB`, pipelined through `redis-cli --pipe`): a fresh copy of a seeded
/// instance in a few seconds instead of seeding it again.
fn copy_instance(b: &Bench, from_db: u32, from: &str, to_db: u32, to: &str) -> Result<()> {
    let script = format!(
        "redis-cli -p {p} -n {from_db} --scan --pattern 'sett:{{{from}}}:*' \
         | awk -v n={n} '{{ print \"COPY\", $0, \"sett:{{{to}}}:\" substr($0, n), \"DB\", {to_db} }}' \
         | redis-cli -p {p} -n {from_db} --pipe",
        p = b.redis.port,
        n = format!("sett:{{{from}}}:").len() + 1,
    );
    let out = Command::new("sh").args(["-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("errors: 0") {
        bail!("copying instance {from} to {to} failed: {text}");
    }
    Ok(())
}

/// Keys per UNLINK in the limit's pipeline, each measured: the limit is the faster of the two
/// (of 100, 500, 1,000 and 5,000 tried by hand on seeded data, 500 and 1,000 were the fastest;
/// the medians of every size are in the results).
const LIMIT_UNLINK_BATCHES: [usize; 2] = [500, 1_000];

/// Writes `keys` to `path` as UNLINK commands of `batch_size` keys each, RESP-encoded: an
/// inline command (`UNLINK k1 k2 …` on one line) is limited to 64 KiB by Redis ("too big inline
/// request"), which 1,000 instance keys can exceed.
fn write_unlinks<'a>(path: &std::path::Path, batch_size: usize, keys: impl Iterator<Item = &'a str>) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut batch: Vec<&[u8]> = Vec::with_capacity(batch_size + 1);
    for key in keys {
        if batch.is_empty() {
            batch.push(b"UNLINK");
        }
        batch.push(key.as_bytes());
        if batch.len() > batch_size {
            out.write_all(&resp_command(&batch))?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        out.write_all(&resp_command(&batch))?;
    }
    out.flush()?;
    Ok(())
}

/// One command in the Redis protocol (an array of bulk strings).
fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends the commands in `path` through `redis-cli --pipe` (one connection, every command
/// written before the replies are read) and returns the wall seconds; fails unless every reply
/// came back without an error.
fn pipe_unlinks(b: &Bench, path: &std::path::Path) -> Result<f64> {
    let report = path.with_extension("pipe");
    let pipe = format!("redis-cli -p {} --pipe < {} > {}", b.redis.port, path.display(), report.display());
    let (secs, _) = timed(Command::new("sh").args(["-c", &pipe]))?;
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    if !text.contains("errors: 0,") {
        bail!("redis-cli --pipe of the limit's UNLINKs reported errors: {text}");
    }
    Ok(secs)
}

/// The number of keys of `instance` in database 0. (No `--count` for `--scan`: the redis-cli of
/// Redis 7.0, Debian 12's, refuses it.)
fn instance_keys(b: &Bench, instance: &str) -> Result<u64> {
    let listed = b.redis_cli(&["--scan", "--pattern", &format!("sett:{{{instance}}}:*")])?;
    Ok(listed.lines().filter(|l| !l.is_empty()).count() as u64)
}

/// `sett destroy --force` on a real-shaped instance: `sett-bench seed-artifacts` with `keys`
/// artifacts (each a first version: an artifact hash, an index entry and a stream entry; a first
/// version alone has no thread set since issue 29's third round, when each had one and `keys / 2`
/// artifacts were seeded), seeded once into database 1 and copied into database 0 for every
/// measured destroy, so each one starts from the same data alone in its database. In the same
/// run: the shell baseline (`redis-cli --scan | xargs redis-cli unlink`) and the limit (the same
/// keys, already known, RESP-encoded UNLINKs of 500 and of 1,000 keys each through
/// `redis-cli --pipe`; the faster counts). Then a small
/// instance (2,000 artifacts, about 2,000 keys) destroyed alone and beside a copy of the large
/// one (the neighbour, whose key count is checked unchanged).
fn destroy(b: &Bench, keys: u64) -> Result<Value> {
    let (big_src, small_src) = ("bench-destroy-src", "bench-destroy-small-src");
    let artifacts = keys.max(1);
    b.bench_bin(big_src, &["seed-artifacts", "--artifacts", &artifacts.to_string(), "--questions", "0"])?;
    b.bench_bin(small_src, &["seed-artifacts", "--artifacts", "2000", "--questions", "0"])?;
    let big_keys = instance_keys(b, big_src)?;
    let small_keys = instance_keys(b, small_src)?;
    copy_instance(b, 0, big_src, 1, big_src)?;
    copy_instance(b, 0, small_src, 1, small_src)?;
    b.redis_cli(&["-n", "0", "FLUSHDB"])?;
    let check_gone = |inst: &str| -> Result<()> {
        let left = instance_keys(b, inst)?;
        if left > 0 {
            bail!("{left} keys of {inst} left");
        }
        Ok(())
    };
    let sett_destroy =
        |inst: &str| timed(b.sett(&["destroy", "--name", inst, "--force"]).env("SETT_OPERATOR", "bench"));
    let (mut ours, mut ours_mem, mut base) = (Vec::new(), Vec::new(), Vec::new());
    let mut limit: Vec<Vec<f64>> = LIMIT_UNLINK_BATCHES.iter().map(|_| Vec::new()).collect();
    let unlinks = std::env::temp_dir().join(format!("sett-bench-unlinks-{}.resp", std::process::id()));
    for i in 0..b.runs {
        let inst = format!("bench-destroy-{i}");
        copy_instance(b, 1, big_src, 0, &inst)?;
        let (secs, kib) = sett_destroy(&inst)?;
        ours.push(secs);
        ours_mem.push(kib as f64);
        check_gone(&inst)?;

        copy_instance(b, 1, big_src, 0, &inst)?;
        let p = b.redis.port;
        let script = format!(
            "redis-cli -p {p} --scan --pattern 'sett:{{{inst}}}:*' | xargs -n 1000 redis-cli -p {p} unlink > /dev/null"
        );
        let (secs, _) = timed(Command::new("sh").args(["-c", &script]))?;
        base.push(secs);
        check_gone(&inst)?;

        // The limit: the keys listed beforehand (not timed), then only the UNLINKs.
        for (batch_size, secs) in LIMIT_UNLINK_BATCHES.iter().zip(limit.iter_mut()) {
            copy_instance(b, 1, big_src, 0, &inst)?;
            let listed = b.redis_cli(&["--scan", "--pattern", &format!("sett:{{{inst}}}:*")])?;
            write_unlinks(&unlinks, *batch_size, listed.lines().filter(|l| !l.is_empty()))?;
            drop(listed);
            secs.push(pipe_unlinks(b, &unlinks)?);
            check_gone(&inst)?;
        }
    }
    let _ = std::fs::remove_file(&unlinks);

    // The small instance alone, then beside a copy of the large one.
    // Milliseconds and peak RSS (KiB) of each destroy of a fresh copy of the small instance.
    let small_destroys = |label: &str| -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut ms, mut kib) = (Vec::new(), Vec::new());
        for i in 0..b.runs.max(5) {
            let inst = format!("bench-destroy-{label}-{i}");
            copy_instance(b, 1, small_src, 0, &inst)?;
            let (secs, peak) = sett_destroy(&inst)?;
            ms.push(secs * 1000.0);
            kib.push(peak as f64);
            check_gone(&inst)?;
        }
        Ok((ms, kib))
    };
    let (small_alone, small_mem) = small_destroys("small")?;
    let neighbour = "bench-destroy-neighbour";
    copy_instance(b, 1, big_src, 0, neighbour)?;
    let neighbour_keys = instance_keys(b, neighbour)?;
    let (small_beside, _) = small_destroys("beside")?;
    let after = instance_keys(b, neighbour)?;
    if after != neighbour_keys {
        bail!("the neighbour had {neighbour_keys} keys and has {after} after the small destroys");
    }
    let _ = b.redis_cli(&["FLUSHALL"]);
    let limit_by_batch: Vec<(usize, f64)> =
        LIMIT_UNLINK_BATCHES.iter().copied().zip(limit.iter().cloned().map(median)).collect();
    let limit_s = limit_by_batch.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
    let runs = json!({
        "sett_destroy_seconds": ours,
        "baseline_scan_xargs_unlink_seconds": base,
        "limit_seconds_by_keys_per_unlink": LIMIT_UNLINK_BATCHES.iter().map(|n| n.to_string()).zip(limit.iter().map(|v| json!(v))).collect::<serde_json::Map<_, _>>(),
        "small_alone_ms": small_alone,
        "small_beside_neighbour_ms": small_beside,
    });
    let (ours_s, base_s) = (median(ours.clone()), median(base.clone()));
    Ok(json!({
        "runs": runs,
        "data": format!("sett-bench seed-artifacts --artifacts {artifacts} --questions 0 (artifact hashes, the indexes, the event stream); copied per run with COPY"),
        "keys": big_keys,
        "sett_destroy_seconds": ours_s,
        "baseline_scan_xargs_unlink_seconds": base_s,
        "limit_known_keys_pipelined_unlink_seconds": limit_s,
        "limit_seconds_by_keys_per_unlink": limit_by_batch.iter().map(|(n, s)| (n.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
        "speedup_vs_baseline": base_s / ours_s.max(1e-9),
        "ratio_to_limit": ours_s / limit_s.max(1e-9),
        "sett_peak_rss_kib": median(ours_mem),
        "small_keys": small_keys,
        "small_alone_ms": median(small_alone.clone()),
        "small_beside_neighbour_ms": median(small_beside.clone()),
        "neighbour_keys": neighbour_keys,
        "sett_peak_rss_kib_small": median(small_mem),
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

/// `sett console` over one workflow of 10,000 artifacts with 1,000 open questions: the server
/// time of the inbox and of the workflow graph page, an event written → received on an SSE
/// connection, and the console's resident memory idle (before any page) and after the pages.
fn console(b: &Bench, quick: bool) -> Result<Value> {
    let name = "bench-console";
    let seed = b.bench_bin(name, &["seed-workflow", "--artifacts", "10000", "--questions", "1000"])?;
    let goal = seed["goal"].as_str().context("seed-workflow prints the goal")?.to_owned();
    let token = "bench-console-token-0123456789abcdef";
    let mut child = b
        .sett(&["console", "--addr", "127.0.0.1:0", "--instance", name])
        .env("SETT_CONSOLE_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    let addr = line.trim().trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let pid = u64::from(child.id());
    // Idle: started, nothing asked of it yet.
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss_kib = proc_rss_kib(pid);
    let runs = if quick { "3" } else { "5" };
    let events = if quick { "50" } else { "200" };
    let r = b.bench_bin(
        name,
        &["console", "--addr", &addr, "--token", token, "--goal", &goal, "--runs", runs, "--events", events],
    );
    let after_rss_kib = proc_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = b.redis_cli(&["FLUSHALL"]);
    let mut r = r?;
    r["artifacts"] = seed["artifacts"].clone();
    r["open_questions"] = seed["questions"].clone();
    r["idle_rss_mib"] = json!(idle_rss_kib as f64 / 1024.0);
    r["rss_after_pages_mib"] = json!(after_rss_kib as f64 / 1024.0);
    r["command"] = json!("cargo xtask bench --only console");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlinks_are_written_in_the_redis_protocol_in_batches() {
        assert_eq!(resp_command(&[b"UNLINK", b"sett:{a}:x"]), b"*2\r\n$6\r\nUNLINK\r\n$10\r\nsett:{a}:x\r\n");
        let dir = std::env::temp_dir().join(format!("xtask-unlinks-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("unlinks.resp");
        let keys: Vec<String> = (0..1_001).map(|i| format!("k{i}")).collect();
        write_unlinks(&path, 1_000, keys.iter().map(String::as_str)).unwrap();
        let text = std::fs::read(&path).unwrap();
        assert!(text.starts_with(b"*1001\r\n$6\r\nUNLINK\r\n$2\r\nk0\r\n"));
        assert!(text.ends_with(b"*2\r\n$6\r\nUNLINK\r\n$5\r\nk1000\r\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
