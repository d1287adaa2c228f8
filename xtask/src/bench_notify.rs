//! `cargo xtask bench --only notify`: question written → webhook received. An instance whose one
//! agent asks a question on every goal (the no-op agent printing a Question), with a webhook
//! pointing at a receiver in this process (plain std TCP, one thread); goals are written one at
//! a time and each question's notification is timed from the Question artifact's creation time
//! (`question.asked_at_ms` in the body, wall clock ms) to its arrival (wall clock µs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{Bench, median, sett_in, workspace};

const ASKER_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 10s
agents:
  Asker:
    command: [NOOPBIN, '{"artifact_type":"Clarification","artifact_payload":"Which port?","structural_type":"Question"}']
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    timeout: 1m
notifications:
  webhooks:
    - name: bench
      url: RECEIVER
      events: [question_asked]
      secret: bench-secret
"#;

/// One received request: arrival (µs since the epoch) and body.
type Arrival = (u64, Vec<u8>);

/// Accepts connections and answers 200 to every request (keep-alive), sending each body out.
fn receiver(listener: TcpListener, tx: mpsc::Sender<Arrival>) {
    for stream in listener.incoming().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut write = match stream.try_clone() {
                Ok(w) => w,
                Err(_) => return,
            };
            let mut read = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if read.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if read.read_line(&mut h).unwrap_or(0) == 0 {
                        return;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if read.read_exact(&mut body).is_err() {
                    return;
                }
                let at = crate::bench::wall_us();
                let _ = write.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                if tx.send((at, body)).is_err() {
                    return;
                }
            }
        });
    }
}

pub(crate) fn notify_latency(b: &Bench, root: &std::path::Path, samples: usize) -> Result<Value> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, tx));
    let ws = workspace(root, "notify", &ASKER_YML.replace("RECEIVER", &url))?;
    let name = "bench-notify";
    let (code, err) = sett_in(b, &ws, name, &["up"])?;
    if code != 0 {
        bail!("sett up failed: {err}");
    }
    let run = || -> Result<Value> {
        let mut v = Vec::new();
        // Three warm-up questions (connection pool, page cache), then the samples.
        for i in 0..samples + 3 {
            let (code, err) = sett_in(b, &ws, name, &["forage", "--goal", &format!("goal {i}"), "-q"])?;
            if code != 0 {
                bail!("sett forage failed: {err}");
            }
            let (at_us, body) = rx.recv_timeout(Duration::from_secs(30)).context("no webhook within 30 s")?;
            let doc: Value = serde_json::from_slice(&body)?;
            let asked_ms = doc["question"]["asked_at_ms"].as_f64().context("question.asked_at_ms")?;
            if i >= 3 {
                v.push(at_us as f64 / 1000.0 - asked_ms);
            }
        }
        let mut sorted = v.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let p99 = sorted[((sorted.len() as f64 - 1.0) * 0.99).round() as usize];
        Ok(json!({"samples": samples, "p50_ms": median(v), "p99_ms": p99, "signed": true}))
    };
    let r = run();
    let _ = sett_in(b, &ws, name, &["down"]);
    r
}
