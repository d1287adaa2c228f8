//! `cargo xtask bench --only stream`: `sett watch` replay, `sett hoard`, `sett export` and
//! `sett import` (and `sett verify`, live and of the export) on instances of 100,000 and 1,000,000 artifacts (seeded by `sett-bench
//! seed-artifacts`), so linearity shows as a ratio between the two sizes in one run: events/s of
//! the replay, time to the first line of `hoard`, and wall time and peak RSS of each command.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, timed};

/// Peak resident memory (`VmHWM`, KiB) of a running process.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `cmd` with stdout piped until it has printed `lines` lines (then stops it): seconds to
/// the first line, seconds to the last, and its peak RSS then.
fn until_lines(cmd: &mut Command, lines: u64) -> Result<(f64, f64, u64)> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("spawn")?;
    let pid = child.id();
    let out = child.stdout.take().context("stdout")?;
    let mut reader = BufReader::with_capacity(1 << 20, out);
    let mut buf = Vec::new();
    let (mut seen, mut first) = (0u64, None);
    while seen < lines {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            let _ = child.kill();
            bail!("{cmd:?} ended after {seen} of {lines} lines");
        }
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        seen += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let kib = peak_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    Ok((first.unwrap_or(secs), secs, kib))
}

/// Seconds from the start of `cmd` to its first line on stdout (the rest is discarded: the
/// reader goes away like `head -1` does).
fn first_line(cmd: &mut Command) -> Result<f64> {
    let (first, _, _) = until_lines(cmd, 1)?;
    Ok(first)
}

pub(crate) fn stream(b: &Bench, sizes: &[u64]) -> Result<Value> {
    let dir = crate::project_root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let mut by_size = serde_json::Map::new();
    for &n in sizes {
        let _ = b.redis_cli(&["FLUSHALL"]);
        let inst = format!("bench-stream-{n}");
        let seeded = b.bench_bin(&inst, &["seed-artifacts", "--artifacts", &n.to_string(), "--questions", "0"])?;
        let events: u64 = b.redis_cli(&["XLEN", &format!("sett:{{{inst}}}:events")])?.parse()?;
        let keys: u64 = b.redis_cli(&["DBSIZE"])?.parse()?;

        // Replay: the whole ledger as JSON lines, timed to its last line.
        let (replay_first, replay_s, replay_kib) =
            until_lines(&mut b.sett(&["watch", "--name", &inst, "--since", "24h", "-o", "jsonl"]), events)?;
        let (tbl_first, _, _) = until_lines(&mut b.sett(&["watch", "--name", &inst, "--since", "24h"]), events.min(1))?;

        // `hoard | head`: the first line; then the whole listing (table and JSON) to /dev/null.
        let mut heads = Vec::new();
        for _ in 0..b.runs {
            heads.push(first_line(&mut b.sett(&["hoard", "--name", &inst]))? * 1000.0);
        }
        let (hoard_s, hoard_kib) = timed(&mut b.sett(&["hoard", "--name", &inst]))?;
        let (hoard_json_s, hoard_json_kib) = timed(&mut b.sett(&["hoard", "--name", &inst, "-o", "json"]))?;

        // Export to a file, import into a fresh instance, and check the copy.
        let file = dir.join(format!("export-{n}.jsonl"));
        let (export_s, export_kib) =
            timed(&mut b.sett(&["export", "--name", &inst, "--file", &file.display().to_string()]))?;
        let bytes = std::fs::metadata(&file)?.len();
        // `sett verify` of everything (every artifact hash and the whole chain): against Redis,
        // then the export offline. Both must exit 0 (`timed` fails otherwise).
        let (verify_s, verify_kib) = timed(&mut b.sett(&["verify", "--name", &inst]))?;
        let (verify_file_s, verify_file_kib) = timed(&mut b.sett(&["verify", "--file", &file.display().to_string()]))?;
        let copy = format!("{inst}-copy");
        let (import_s, import_kib) = timed(&mut b.sett(&["import", "--name", &copy, &file.display().to_string()]))?;
        let copied: u64 = b.redis_cli(&["XLEN", &format!("sett:{{{copy}}}:events")])?.parse()?;
        let copied_artifacts: u64 = b.redis_cli(&["ZCARD", &format!("sett:{{{copy}}}:index:artifacts")])?.parse()?;
        if copied != events || copied_artifacts != n {
            bail!(
                "import of {n} artifacts: {copied} events / {copied_artifacts} artifacts in the copy, expected {events} / {n}"
            );
        }
        let _ = std::fs::remove_file(&file);
        let _ = b.redis_cli(&["FLUSHALL"]);
        by_size.insert(
            n.to_string(),
            json!({
                "artifacts": n,
                "events": events,
                "keys": keys,
                "seed": seeded,
                "watch_replay_seconds": replay_s,
                "watch_replay_events_per_second": events as f64 / replay_s.max(1e-9),
                "watch_replay_first_line_ms": replay_first * 1000.0,
                "watch_table_first_line_ms": tbl_first * 1000.0,
                "watch_replay_peak_rss_kib": replay_kib,
                "hoard_first_line_ms": crate::bench::median(heads.clone()),
                "hoard_first_line_ms_runs": heads,
                "hoard_table_seconds": hoard_s,
                "hoard_table_peak_rss_kib": hoard_kib,
                "hoard_json_seconds": hoard_json_s,
                "hoard_json_peak_rss_kib": hoard_json_kib,
                "export_seconds": export_s,
                "export_keys_per_second": keys as f64 / export_s.max(1e-9),
                "export_peak_rss_kib": export_kib,
                "export_bytes": bytes,
                "verify_seconds": verify_s,
                "verify_peak_rss_kib": verify_kib,
                "verify_file_seconds": verify_file_s,
                "verify_file_peak_rss_kib": verify_file_kib,
                "import_seconds": import_s,
                "import_keys_per_second": keys as f64 / import_s.max(1e-9),
                "import_peak_rss_kib": import_kib,
            }),
        );
    }
    // Linearity: per-item rates at the largest size over the smallest (1.0 = linear).
    let mut ratios = serde_json::Map::new();
    if let (Some(lo), Some(hi)) = (sizes.first(), sizes.last())
        && lo != hi
    {
        let (a, z) = (&by_size[&lo.to_string()], &by_size[&hi.to_string()]);
        let f = |k: &str| z[k].as_f64().unwrap_or(0.0) / a[k].as_f64().unwrap_or(1.0).max(1e-9);
        let scale = *hi as f64 / *lo as f64;
        ratios.insert("size_ratio".into(), json!(scale));
        for k in ["watch_replay_seconds", "hoard_table_seconds", "export_seconds", "import_seconds", "verify_seconds"] {
            ratios.insert(format!("{k}_ratio"), json!(f(k)));
        }
        for k in [
            "hoard_table_peak_rss_kib",
            "export_peak_rss_kib",
            "import_peak_rss_kib",
            "watch_replay_peak_rss_kib",
            "verify_peak_rss_kib",
            "verify_file_peak_rss_kib",
        ] {
            ratios.insert(format!("{k}_ratio"), json!(f(k)));
        }
        ratios.insert("hoard_first_line_ms_ratio".into(), json!(f("hoard_first_line_ms")));
    }
    Ok(json!({
        "sizes": by_size,
        "largest_over_smallest": ratios,
        "command": "cargo xtask bench --only stream",
    }))
}
