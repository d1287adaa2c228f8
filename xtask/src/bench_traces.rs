//! `cargo xtask bench --only traces`: what OpenTelemetry tracing costs the engine, as
//! lifecycles/s of the engine scenario with traces off and on (every daemon exporting to a real
//! OTLP receiver, tests/otlp/receiver.py, running throughout), alternating run by run on one
//! Redis (the budget: at most 10 % fewer lifecycles/s).

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

/// Starts the OTLP receiver writing decoded spans to `out`; returns it and its port.
fn receiver(root: &Path, out: &Path) -> Result<(Receiver, u16)> {
    let mut child = Command::new("python3")
        .arg(root.join("tests/otlp/receiver.py"))
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

/// Lifecycles/s (3 agents bidding, no-op agent) with traces off and on, `runs` pairs
/// alternating; medians, their ratio, and how many spans the receiver decoded per lifecycle.
pub(crate) fn tracing_cost(b: &Bench, root: &Path, ws: &Path, quick: bool) -> Result<Value> {
    let count = if quick { 1000 } else { 3000 };
    let spans_file = root.join("target").join("bench").join("traces-spans.jsonl");
    let _ = std::fs::remove_file(&spans_file);
    let (_receiver, port) = receiver(root, &spans_file)?;
    let on = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))];
    let sides: [(&str, Vec<(&str, String)>); 2] = [("off", Vec::new()), ("on", on)];
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut spans_per_lifecycle = Vec::new();
    for run in 0..b.runs {
        for (i, (label, env)) in sides.iter().enumerate() {
            let name = format!("bench-traces-{label}-{run}");
            let (code, err) = sett_with(b, ws, &name, &["up"], env)?;
            if code != 0 {
                bail!("sett up (traces {label}) failed: {err}");
            }
            let before = line_count(&spans_file);
            let measured = lifecycles(b, &name, count, &format!("traces ({label})"));
            // `down` flushes the daemons' exporters: every span of the run is received after it.
            let _ = sett_with(b, ws, &name, &["down"], env);
            let (rate, _) = measured?;
            rates[i].push(rate);
            if *label == "on" {
                spans_per_lifecycle.push((line_count(&spans_file) - before) as f64 / count as f64);
            }
        }
    }
    let off = median(rates[0].clone());
    let on = median(rates[1].clone());
    Ok(json!({
        "claims_per_run": count,
        "agents_bidding": 3,
        "receiver": "tests/otlp/receiver.py (OTLP/HTTP protobuf, decoded with opentelemetry-proto), on loopback",
        "off_lifecycles_per_second": off,
        "off_runs": rates[0],
        "on_lifecycles_per_second": on,
        "on_runs": rates[1],
        "tracing_cost_fraction": 1.0 - on / off.max(1e-9),
        "target_max_cost_fraction": 0.10,
        "spans_received_per_lifecycle": median(spans_per_lifecycle.clone()),
        "spans_received_per_lifecycle_runs": spans_per_lifecycle,
        "command": "cargo xtask bench --only traces",
    }))
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}
