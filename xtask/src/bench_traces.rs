//! `cargo xtask bench --only traces`: what OpenTelemetry tracing costs the engine, as
//! lifecycles/s of the engine scenario with traces off and on (every daemon exporting to an
//! OTLP/HTTP receiver on loopback, tests/otlp/receiver.py, running throughout), alternating run by
//! run on one Redis (the budget: at most 10 % fewer lifecycles/s).
//!
//! The receiver stands in for a collector, which runs on another machine: while a run is measured
//! it only stores the request bodies (`--raw`); after the run (`sett down` has flushed every
//! exporter) it decodes them with the OpenTelemetry project's definitions and the spans are
//! counted. Decoding in Python during the run would put the collector's CPU on the engine's cores.
//! Besides the rates, each run records the CPU time the daemons, Redis and the receiver spent per
//! lifecycle (from /proc and `INFO cpu`), which tells where a cost goes even on a loaded machine.
//!
//! With `SETT_BENCH_TRACES_BASELINE=<dir>` (release binaries built from another commit, e.g.
//! `main`), the same rounds also run those binaries off and on, alternating with these: a
//! same-run A/B of a change to tracing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, lifecycles, median, sett_with};

/// The receiver, killed when dropped.
struct Receiver(std::process::Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the OTLP receiver storing request bodies in `raw`; returns it and its port.
fn receiver(root: &Path, raw: &Path, out: &Path) -> Result<(Receiver, u16)> {
    let mut child = Command::new("python3")
        .arg(root.join("tests/otlp/receiver.py"))
        .arg("--raw")
        .arg(raw)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .context("python3 tests/otlp/receiver.py")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("the receiver's stdout")?).read_line(&mut line)?;
    let receiver = Receiver(child);
    let port = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).with_context(|| {
        format!("the OTLP receiver did not start (pip install opentelemetry-proto==1.45.2): {line:?}")
    })?;
    Ok((receiver, port))
}

/// Decodes what the receiver stored since the last call into `out` (every body must decode) and
/// empties `raw`; returns how many spans that added.
fn decode_received(root: &Path, raw: &Path, out: &Path) -> Result<usize> {
    let before = line_count(out);
    let status = Command::new("python3")
        .arg(root.join("tests/otlp/receiver.py"))
        .arg("--decode-raw")
        .arg(raw)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .context("python3 tests/otlp/receiver.py --decode-raw")?;
    if !status.success() {
        bail!("the spans the receiver got do not decode as OTLP ({})", raw.display());
    }
    let _ = std::fs::remove_file(raw);
    Ok(line_count(out) - before)
}

/// CPU seconds spent so far by the daemons of instance `name` (orchestrator, cubs), Redis and
/// the receiver.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    orchestrator: f64,
    cubs: f64,
    redis: f64,
    receiver: f64,
}

impl Cpu {
    fn sample(b: &Bench, name: &str, receiver: u32, tick: f64) -> Result<Self> {
        let mut cpu = Cpu { receiver: proc_cpu(receiver, tick).unwrap_or(0.0), ..Cpu::default() };
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|c| *c == 0).collect();
            if !args.windows(2).any(|w| w[0] == b"--instance" && w[1] == name.as_bytes()) {
                continue;
            }
            let exe = args.first().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
            let Some(secs) = proc_cpu(pid, tick) else { continue };
            if exe.ends_with("sett-orchestrator") {
                cpu.orchestrator += secs;
            } else if exe.ends_with("sett-cub") {
                cpu.cubs += secs;
            }
        }
        let info = b.redis_cli(&["INFO", "cpu"])?;
        cpu.redis = ["used_cpu_sys:", "used_cpu_user:"]
            .iter()
            .filter_map(|k| info.lines().find_map(|l| l.trim().strip_prefix(k)).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        Ok(cpu)
    }

    /// Milliseconds per lifecycle between `self` (before) and `after`.
    fn per_lifecycle(&self, after: &Cpu, count: u64) -> Value {
        let ms = |a: f64, b: f64| ((b - a) * 1000.0 / count as f64 * 1000.0).round() / 1000.0;
        let total = ms(
            self.orchestrator + self.cubs + self.redis + self.receiver,
            after.orchestrator + after.cubs + after.redis + after.receiver,
        );
        json!({
            "orchestrator": ms(self.orchestrator, after.orchestrator),
            "cubs": ms(self.cubs, after.cubs),
            "redis": ms(self.redis, after.redis),
            "receiver": ms(self.receiver, after.receiver),
            "total": total,
        })
    }
}

/// utime + stime of `pid` in seconds.
fn proc_cpu(pid: u32, tick: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / tick)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Lifecycles/s (3 agents bidding, no-op agent) with traces off and on, `runs` rounds
/// alternating; medians, their ratio, Redis commands and CPU milliseconds per lifecycle, and how
/// many spans the receiver got per lifecycle (and the same for the baseline binaries, if given).
pub(crate) fn tracing_cost(b: &Bench, root: &Path, ws: &Path, quick: bool) -> Result<Value> {
    let base = std::env::var_os("SETT_BENCH_TRACES_BASELINE").map(|dir| Bench {
        bin: dir.into(),
        redis: b.redis.clone(),
        runs: b.runs,
        unix: false,
    });
    let mut result = sides_cost(b, base.as_ref(), root, ws, quick)?;
    result["command"] = json!("cargo xtask bench --only traces");
    Ok(result)
}

/// One side of the comparison: which binaries, with traces on or off.
struct Side<'a> {
    label: &'static str,
    bench: &'a Bench,
    traced: bool,
}

fn sides_cost(b: &Bench, base: Option<&Bench>, root: &Path, ws: &Path, quick: bool) -> Result<Value> {
    let count = if quick { 1000 } else { 3000 };
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let spans_file = dir.join("traces-spans.jsonl");
    let raw_file = dir.join("traces-requests.bin");
    let _ = std::fs::remove_file(&spans_file);
    let _ = std::fs::remove_file(&raw_file);
    let (receiver, port) = receiver(root, &raw_file, &spans_file)?;
    let tick = clock_ticks();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut sides = vec![Side { label: "off", bench: b, traced: false }, Side { label: "on", bench: b, traced: true }];
    if let Some(base) = base {
        sides.push(Side { label: "baseline_off", bench: base, traced: false });
        sides.push(Side { label: "baseline_on", bench: base, traced: true });
    }
    let mut rates = vec![Vec::new(); sides.len()];
    let mut commands = vec![Vec::new(); sides.len()];
    let mut cpu: Vec<Vec<Value>> = vec![Vec::new(); sides.len()];
    let mut spans = vec![Vec::new(); sides.len()];
    for run in 0..b.runs {
        for (i, side) in sides.iter().enumerate() {
            let name = format!("bench-traces-{}-{run}", side.label.replace('_', "-"));
            let env = if side.traced { vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())] } else { Vec::new() };
            let (code, err) = sett_with(side.bench, ws, &name, &["up"], &env)?;
            if code != 0 {
                bail!("sett up (traces {}) failed: {err}", side.label);
            }
            let cpu_before = Cpu::sample(b, &name, receiver.0.id(), tick)?;
            let measured = lifecycles(side.bench, &name, count, &format!("traces ({})", side.label));
            let cpu_after = Cpu::sample(b, &name, receiver.0.id(), tick)?;
            // `down` flushes the daemons' exporters: every span of the run is received after it.
            let _ = sett_with(side.bench, ws, &name, &["down"], &env);
            let (rate, cmds) = measured?;
            rates[i].push(rate);
            commands[i].push(cmds);
            cpu[i].push(cpu_before.per_lifecycle(&cpu_after, count));
            if side.traced {
                let received = decode_received(root, &raw_file, &spans_file)?;
                spans[i].push(received as f64 / count as f64);
            }
        }
    }
    let cpu_median = |runs: &[Value]| -> Value {
        let keys = ["orchestrator", "cubs", "redis", "receiver", "total"];
        let m: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!(median(runs.iter().filter_map(|r| r[*k].as_f64()).collect()))))
            .collect();
        Value::Object(m)
    };
    let mut out = json!({
        "claims_per_run": count,
        "agents_bidding": 3,
        "receiver": "tests/otlp/receiver.py --raw on loopback: stores each OTLP/HTTP request body while the run is measured, decodes them with opentelemetry-proto after it (a collector runs on another machine)",
        "target_max_cost_fraction": 0.10,
    });
    for (i, side) in sides.iter().enumerate() {
        let l = side.label;
        out[format!("{l}_lifecycles_per_second")] = json!(median(rates[i].clone()));
        out[format!("{l}_runs")] = json!(rates[i]);
        out[format!("{l}_redis_commands_per_lifecycle")] = json!(median(commands[i].clone()));
        out[format!("{l}_cpu_ms_per_lifecycle")] = cpu_median(&cpu[i]);
        out[format!("{l}_cpu_ms_per_lifecycle_runs")] = json!(cpu[i]);
        if side.traced {
            out[format!("{l}_spans_received_per_lifecycle")] = json!(median(spans[i].clone()));
            out[format!("{l}_spans_received_per_lifecycle_runs")] = json!(spans[i]);
        }
    }
    let cost = |off: usize, on: usize| 1.0 - median(rates[on].clone()) / median(rates[off].clone()).max(1e-9);
    out["tracing_cost_fraction"] = json!(cost(0, 1));
    if sides.len() == 4 {
        out["baseline_tracing_cost_fraction"] = json!(cost(2, 3));
    }
    Ok(out)
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}
