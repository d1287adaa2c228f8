//! Observability end to end (design.md §8, issue 5): `/healthz` follows Redis and the daemons
//! reconnect on their own, `/readyz` follows attachment and the lock, `/metrics` counts a known
//! workflow exactly and is valid Prometheus text, daemon logs are JSON lines with ids, and the
//! debugging commands (`status`, `claims --stuck`, `logs -f`, `export`/`import`) work against
//! real daemons. `docs/metrics.md` is checked against `sett_core::metrics`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sett_core::ClaimId;
use sett_core::event::{EventData, EventKind};
use sett_core::metrics as m;
use sett_e2e::{Env, bin_dir, http_get, summary, text};
use sett_store::{LockHolder, LockPurpose};
use sett_testkit::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

/// One agent that turns a goal into a Terminal artifact; a short bid timeout so a claim whose
/// bids never come reaches its deadline quickly.
const SCRIBE_YML: &str = r#"version: "1.0"
runtime: local
orchestrator:
  bid_timeout: 3s
agents:
  Scribe:
    command: ["./agents/scribe/run.sh"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    timeout: 1m
"#;

const SCRIBE: &str = r#"#!/usr/bin/env bash
set -euo pipefail
input=$(cat)
goal=$(jq -r .target_artifact.payload <<<"$input")
jq -n --arg g "$goal" '{structural_type: "Terminal", artifact_type: "Recorded", artifact_payload: $g}'
"#;

async fn scribe_env(redis_url: Option<&str>) -> Env {
    let scripts = [("agents/scribe/run.sh", SCRIBE)];
    match redis_url {
        Some(url) => Env::with_redis_url(url, SCRIBE_YML, &scripts).await,
        None => Env::new(SCRIBE_YML, &scripts).await,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP and Prometheus helpers.

fn status_of(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path).ok().map(|(c, _)| c)
}

/// Polls `GET addr path` until it answers `want` (None: does not answer at all) or `limit`.
/// Returns when it did, or None on timeout.
fn wait_status(addr: &str, path: &str, want: Option<u16>, limit: Duration) -> Option<Instant> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if status_of(addr, path) == want {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn metrics_text(addr: &str) -> String {
    let (code, body) = http_get(addr, "/metrics").unwrap_or_else(|e| panic!("/metrics: {e}"));
    assert_eq!(code, 200, "{body}");
    body
}

/// Lints a live `/metrics` with Prometheus' own `promtool check metrics` (Debian package
/// `prometheus`): it must exit 0 and report nothing (no missing HELP, no unit or suffix
/// warnings). Also checks that every family has a HELP line from `sett_core::metrics::ALL`.
fn promtool_check_metrics(addr: &str, who: &str) {
    let body = metrics_text(addr);
    let (code, said) = sett_testkit::promtool::check_metrics(&body);
    assert!(code == 0 && said.trim().is_empty(), "promtool check metrics on {who}'s /metrics: {said}\n{body}");
    let families: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert!(!families.is_empty(), "{who}: {body}");
    for f in families {
        let help = m::ALL
            .iter()
            .find(|x| x.name == f)
            .unwrap_or_else(|| panic!("{who} exposes {f}, not in sett_core::metrics::ALL"))
            .help;
        assert!(body.contains(&format!("# HELP {f} {help}\n")), "{who}: no HELP for {f}");
    }
}

type Labels = BTreeMap<String, String>;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|e| format!("bad value {v:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"}` (the braces included); returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    let mut rest = &s[1..];
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the Prometheus text exposition format (0.0.4): every sample belongs to a
/// family declared by `# TYPE` before it, names and labels are well-formed, no series repeats,
/// counters are non-negative, and every histogram series has increasing `le` buckets with
/// cumulative counts ending in `+Inf` equal to its `_count`, plus a `_sum`.
fn parse_prometheus(body: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in body.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(t)) => {
                    if !valid_metric_name(name) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(at(format!("unknown type {t}")));
                    }
                    if samples.iter().any(|s| family(&s.name, &types) == name) {
                        return Err(at("TYPE after samples of its family".into()));
                    }
                    if types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(at("TYPE repeated".into()));
                    }
                }
                (Some("HELP"), Some(name), _) if !valid_metric_name(name) => {
                    return Err(at("bad metric name in HELP".into()));
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Labels::new(), &line[name_end..])
        };
        let rest = rest.strip_prefix(' ').ok_or_else(|| at("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|e| at(format!("bad timestamp: {e}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let fam = family(name, &types);
        let Some(t) = types.get(fam) else {
            return Err(at("sample without a TYPE".into()));
        };
        match t.as_str() {
            "counter" if value < 0.0 || value.is_nan() => {
                return Err(at("negative counter".into()));
            }
            "histogram" => {
                let suffix = &name[fam.len()..];
                if !["_bucket", "_sum", "_count"].contains(&suffix) {
                    return Err(at("histogram sample without _bucket/_sum/_count".into()));
                }
                if (suffix == "_bucket") != labels.contains_key("le") {
                    return Err(at("'le' belongs to _bucket samples only".into()));
                }
            }
            _ => {}
        }
        let key = format!("{name}{labels:?}");
        if !seen.insert(key) {
            return Err(at("series repeated".into()));
        }
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    for (fam, t) in types.iter().filter(|(_, t)| t.as_str() == "histogram") {
        let bucket = format!("{fam}_bucket");
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == bucket) {
            let mut l = s.labels.clone();
            let le = parse_value(&l.remove("le").unwrap_or_default())?;
            series.entry(l).or_default().push((le, s.value));
        }
        for (labels, buckets) in &series {
            let what = format!("{fam} ({t}) {labels:?}");
            if !buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
                return Err(format!("{what}: buckets not increasing/cumulative: {buckets:?}"));
            }
            let inf = buckets.last().filter(|b| b.0.is_infinite()).map(|b| b.1);
            let count = value(&samples, &format!("{fam}_count"), labels);
            if inf.is_none() || inf != count {
                return Err(format!("{what}: +Inf bucket {inf:?} != _count {count:?}"));
            }
            if value(&samples, &format!("{fam}_sum"), labels).is_none() {
                return Err(format!("{what}: no _sum"));
            }
        }
    }
    Ok(samples)
}

/// The declared family a sample name belongs to (histogram samples carry a suffix).
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.contains_key(base)
        {
            return base;
        }
    }
    name
}

fn value(samples: &[Sample], name: &str, labels: &Labels) -> Option<f64> {
    samples.iter().find(|s| s.name == name && &s.labels == labels).map(|s| s.value)
}

/// Every series of `name`, by the value of its one label `key` (other labels must not exist).
fn by_label(samples: &[Sample], name: &str, key: &str) -> BTreeMap<String, u64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            assert_eq!(s.labels.keys().collect::<Vec<_>>(), [key], "{name} has unexpected labels: {s:?}");
            (s.labels[key].clone(), s.value as u64)
        })
        .collect()
}

fn counts<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for i in items {
        *out.entry(i.to_owned()).or_insert(0) += 1;
    }
    out
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn no_labels() -> Labels {
    Labels::new()
}

// ---------------------------------------------------------------------------------------------
// Processes.

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill").success();
    assert!(ok, "kill {sig} {pid}");
}

/// A daemon this test started itself: SIGTERM and reaped on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal(self.0.id(), "-TERM");
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn_daemon(env: &Env, bin: &str, args: &[&str], log: &str) -> Daemon {
    let log = std::fs::File::create(env.path().join(log)).expect("log file");
    let child = Command::new(bin_dir().join(bin))
        .args(args)
        .env("SETT_LOG", "info")
        .current_dir(env.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    Daemon(child)
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &server.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread")]
async fn observability_healthz_follows_redis_and_the_daemons_reconnect() {
    let data = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start(data.path(), &["--appendonly", "yes"]);
    let mut env = scribe_env(Some(&server.url())).await;
    env.up();
    // The addresses are in the registry; read them while Redis is up.
    let mut addrs = Vec::new();
    for c in ["orchestrator", "cub:Scribe"] {
        let addr = env.addr_of(c).await.unwrap_or_else(|| panic!("{c} registered no addr"));
        let (code, body) = http_get(&addr, "/healthz").unwrap();
        assert_eq!(code, 200, "{c}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["redis"]["status"], "ok", "{body}");
        assert_eq!(body["component"], c);
        assert_eq!(body["instance"], env.name.as_str());
        // The first connection is not a reconnection.
        let samples = parse_prometheus(&metrics_text(&addr)).unwrap();
        assert!(samples.iter().all(|x| x.name != m::REDIS_RECONNECTS), "{c}");
        addrs.push((c, addr));
    }

    server.stop();
    let stopped = Instant::now();
    // Both daemons are probed at the same time (each answer may take up to the PING bound,
    // 1.5 s). The minute is a safety net for a hung test, not a measure of promptness.
    let probes: Vec<_> = addrs
        .iter()
        .map(|(c, addr)| {
            let (c, addr) = (c.to_string(), addr.clone());
            std::thread::spawn(move || {
                let until = stopped + Duration::from_secs(60);
                loop {
                    let got = http_get(&addr, "/healthz");
                    if let Ok((503, body)) = &got {
                        let body: serde_json::Value = serde_json::from_str(body).unwrap();
                        assert_eq!(body["redis"]["status"], "unreachable", "{body}");
                        return;
                    }
                    assert!(Instant::now() < until, "{c} /healthz never answered 503 after Redis stopped: {got:?}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    for ((c, _), probe) in addrs.iter().zip(probes) {
        probe.join().unwrap_or_else(|_| panic!("{c}: see the panic above"));
    }

    server.restart();
    for (c, addr) in &addrs {
        assert!(
            wait_status(addr, "/healthz", Some(200), Duration::from_secs(15)).is_some(),
            "{c} /healthz did not recover after Redis returned\n{}",
            env.logs()
        );
    }
    // Both reconnected on their own: the cub is attached again and a new workflow completes.
    for (c, addr) in &addrs {
        assert!(
            wait_status(addr, "/readyz", Some(200), Duration::from_secs(15)).is_some(),
            "{c} /readyz did not recover\n{}",
            env.logs()
        );
    }
    env.forage("After the outage");
    env.wait_terminals(1, MINUTE).await;
    // The reconnections were counted.
    for (c, addr) in &addrs {
        let samples = parse_prometheus(&metrics_text(addr)).unwrap();
        let component = if *c == "orchestrator" { "orchestrator" } else { "cub" };
        let labels: Labels = [("component".to_owned(), component.to_owned())].into();
        let n = value(&samples, m::REDIS_RECONNECTS, &labels).unwrap_or(0.0);
        assert!(n >= 1.0, "{c}: {} = {n}", m::REDIS_RECONNECTS);
    }
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn observability_readyz_follows_attachment_and_the_lock() {
    let data = tempfile::tempdir().unwrap();
    let server = RedisServer::start(data.path(), &[]);
    let url = server.url();
    let env = scribe_env(Some(&url)).await;
    let config = env.path().join("sett.yml");
    let config = config.to_str().unwrap();
    let cub_addr = format!("127.0.0.1:{}", sett_testkit::free_port());
    let orch_addr = format!("127.0.0.1:{}", sett_testkit::free_port());

    // Writes are paused until the test lifts the pause (at most 8 s: a paused write must not
    // outlast the daemons' 10 s command timeout): neither daemon can create its consumer group,
    // nor take the lock.
    redis_cli(&server, &["CLIENT", "PAUSE", "8000", "WRITE"]);
    let common = ["--instance", env.name.as_str(), "--redis-url", &url, "--config", config];
    let cub = spawn_daemon(
        &env,
        "sett-cub",
        &[&common[..], &["--agent", "Scribe", "--health-addr", &cub_addr]].concat(),
        "cub.out",
    );
    let orchestrator = spawn_daemon(
        &env,
        "sett-orchestrator",
        &[&common[..], &["--health-addr", &orch_addr, "--lock-ttl", "3s"]].concat(),
        "orchestrator.out",
    );
    let out = |name: &str| std::fs::read_to_string(env.path().join(name)).unwrap_or_default();
    for (what, addr) in [("cub", &cub_addr), ("orchestrator", &orch_addr)] {
        let answered = wait_status(addr, "/readyz", Some(503), Duration::from_secs(7));
        assert!(
            answered.is_some(),
            "{what} /readyz was not 503 while Redis refused writes\n{}",
            out(&format!("{what}.out"))
        );
    }
    for (what, addr) in [("cub", &cub_addr), ("orchestrator", &orch_addr)] {
        assert_eq!(status_of(addr, "/readyz"), Some(503), "{what} was ready before Redis accepted writes");
    }
    redis_cli(&server, &["CLIENT", "UNPAUSE"]);
    for (what, addr) in [("cub", &cub_addr), ("orchestrator", &orch_addr)] {
        let ready = wait_status(addr, "/readyz", Some(200), Duration::from_secs(30));
        assert!(ready.is_some(), "{what} /readyz never became 200\n{}", out(&format!("{what}.out")));
    }
    // The components registered the addresses they listen on.
    assert_eq!(env.addr_of("cub:Scribe").await.as_deref(), Some(&*cub_addr));
    assert_eq!(env.addr_of("orchestrator").await.as_deref(), Some(&*orch_addr));

    // Someone else takes the lock: the orchestrator stops being ready and exits with an error.
    let thief = LockHolder {
        run_id: "thief".into(),
        host: "elsewhere.invalid".into(),
        pid: 1,
        started_at: sett_store::now_ms(),
        purpose: LockPurpose::Run,
    };
    let lock_key = env.store.keys().lock();
    redis_cli(&server, &["SET", &lock_key, &serde_json::to_string(&thief).unwrap(), "PX", "60000"]);
    assert!(
        wait_for(Duration::from_secs(10), || { status_of(&orch_addr, "/readyz") != Some(200) }),
        "the orchestrator stayed ready without the lock\n{}",
        out("orchestrator.out")
    );
    let mut orchestrator = orchestrator;
    let code = wait_exit(&mut orchestrator.0, Duration::from_secs(20));
    assert!(
        matches!(code, Some(c) if c != 0),
        "the orchestrator should exit with an error once the lock is lost: {code:?}\n{}",
        out("orchestrator.out")
    );
    assert!(out("orchestrator.out").contains("lost the instance lock"));
    // The cub stays ready: it does not depend on the lock.
    assert_eq!(status_of(&cub_addr, "/readyz"), Some(200));
    drop(cub);
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn observability_metrics_logs_and_export_after_the_demo_workflow() {
    let mut env = Env::examples(false).await;
    env.up();
    let out = env.run(&["forage", "--goal", "Build a to-do service", "--watch", "--timeout", "90s"]);
    assert!(out.status.success(), "{}\n{}\n{}", text(&out.stdout), text(&out.stderr), env.logs());
    let orch = env.addr_of("orchestrator").await.expect("orchestrator addr");

    // The workflow is over once every claim is final; the orchestrator counts a claim's end
    // after writing it, so wait (bounded) until it has counted them all.
    let until = Instant::now() + Duration::from_secs(20);
    let claims = loop {
        let claims = env.claims().await;
        if claims.iter().all(|c| c.status.is_final()) {
            break claims;
        }
        assert!(Instant::now() < until, "claims not final: {claims:#?}\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let artifacts = env.artifacts().await;
    let settled = wait_for(Duration::from_secs(15), || {
        let s = parse_prometheus(&metrics_text(&orch)).unwrap();
        let finished: u64 = by_label(&s, m::CLAIMS_FINISHED, "status").values().sum();
        let created: u64 = by_label(&s, m::ARTIFACTS_CREATED, "structural_type").values().sum();
        finished == claims.len() as u64 && created == artifacts.len() as u64
    });
    assert!(settled, "{}", metrics_text(&orch));
    promtool_check_metrics(&orch, "the orchestrator");
    let s = parse_prometheus(&metrics_text(&orch)).unwrap();

    // Artifacts by structural type: the goal, two commits and the check report; two reviews;
    // the Terminal — and the same as the blackboard holds.
    let artifacts_metric = by_label(&s, m::ARTIFACTS_CREATED, "structural_type");
    assert_eq!(artifacts_metric, map(&[("Standard", 4), ("Review", 2), ("Terminal", 1)]), "{:#?}", summary(&artifacts));
    assert_eq!(artifacts_metric, counts(artifacts.iter().map(|a| a.structural_type.as_str())));
    // Claims by final status: goal, approved commit and rework complete; the rejected commit
    // terminated; the check report's claim dormant (nobody bids on it).
    let finished = by_label(&s, m::CLAIMS_FINISHED, "status");
    assert_eq!(finished, map(&[("complete", 3), ("terminated", 1), ("dormant", 1)]));
    assert_eq!(finished, counts(claims.iter().map(|c| c.status.as_str())));
    assert_eq!(by_label(&s, m::CLAIMS_CREATED, "kind"), map(&[("initial", 4), ("rework", 1)]));
    assert_eq!(value(&s, &format!("{}_count", m::CLAIM_SECONDS), &no_labels()), Some(5.0));
    // Bids by type: four agents on four claims (the rework claim is assigned, not bid on).
    let bids = by_label(&s, m::BIDS, "bid");
    assert_eq!(bids, map(&[("exclusive", 3), ("review", 2), ("claim", 2), ("ignore", 9)]));
    // Each counted bid is in the ledger: a cub's own `bid_submitted`, or a standing bid listed
    // by its claim's `claim_created`.
    let mut recorded: Vec<&'static str> = env
        .events_of(EventKind::BidSubmitted)
        .await
        .iter()
        .filter_map(|e| match &e.data {
            EventData::BidSubmitted(b) => Some(b.bid.as_str()),
            _ => None,
        })
        .collect();
    for e in env.events_of(EventKind::ClaimCreated).await {
        if let EventData::ClaimCreated(c) = &e.data {
            recorded.extend(c.standing_bids.values().map(|b| b.as_str()));
        }
    }
    assert_eq!(bids, counts(recorded.into_iter()));
    assert_eq!(value(&s, m::BIDS_MISSING, &no_labels()), None);
    assert_eq!(value(&s, m::OPEN_QUESTIONS, &no_labels()), Some(0.0));
    // Grants by claim type, one per claim_granted event.
    let grant_events = env.events_of(EventKind::ClaimGranted).await;
    let grants = by_label(&s, m::GRANTS, "claim_type");
    assert_eq!(grants, map(&[("exclusive", 2), ("review", 2), ("claim", 1), ("rework", 1)]));
    let claim_type_of = |e: &sett_core::event::Event| match &e.data {
        EventData::ClaimGranted(g) => g.claim_type.as_str(),
        _ => "?",
    };
    assert_eq!(grants, counts(grant_events.iter().map(claim_type_of)));
    assert_eq!(by_label(&s, m::WORKER_LAUNCHES, "agent"), map(&[("Publisher", 1)]));
    assert!(by_label(&s, m::WORKER_FAILURES, "agent").is_empty());
    // Each phase a claim went through was timed.
    let phases: Vec<String> = s
        .iter()
        .filter(|x| x.name == format!("{}_count", m::CLAIM_PHASE_SECONDS))
        .map(|x| x.labels["phase"].clone())
        .collect();
    for p in ["review", "parallel", "exclusive"] {
        assert!(phases.iter().any(|x| x == p), "phase {p} not timed: {phases:?}");
    }

    // Tool executions by outcome, on each agent's cub (the Publisher runs its tool in a worker
    // process; the orchestrator counts that as a worker launch).
    for (agent, runs) in [("Writer", 2), ("Reviewer", 2), ("Checker", 1), ("Publisher", 0)] {
        let addr = env.addr_of(&format!("cub:{agent}")).await.expect("cub addr");
        promtool_check_metrics(&addr, &format!("cub:{agent}"));
        let s = parse_prometheus(&metrics_text(&addr)).unwrap();
        let runs_metric: BTreeMap<(String, String), u64> = s
            .iter()
            .filter(|x| x.name == m::TOOL_EXECUTIONS)
            .map(|x| ((x.labels["agent"].clone(), x.labels["outcome"].clone()), x.value as u64))
            .collect();
        let expected: BTreeMap<(String, String), u64> =
            if runs == 0 { BTreeMap::new() } else { [((agent.to_owned(), "success".to_owned()), runs)].into() };
        assert_eq!(runs_metric, expected, "{agent}");
        let timed = value(&s, &format!("{}_count", m::TOOL_SECONDS), &[("agent".to_owned(), agent.to_owned())].into());
        assert_eq!(timed.unwrap_or(0.0) as u64, runs, "{agent} tool durations");
        // Programs started (tools, bid scripts, git), all by clone3 here: no seccomp refuses it.
        let starts = by_label(&s, m::PROGRAM_STARTS, "method");
        assert!(starts.keys().all(|k| k == "clone3"), "{agent}: {starts:?}");
        assert!(starts.get("clone3").copied().unwrap_or(0) >= runs, "{agent}: {starts:?}");
        // The events a cub acted on (bids, grants, cancellations) were timed for lag, and no
        // other (one waiting on its bell reads the rest up to a second late, by design): at
        // least each run's grant, whose event is read just after the ring that may start it
        // (hence polled), at most what it handled.
        let handled: f64 = s.iter().filter(|x| x.name == m::EVENTS_HANDLED).map(|x| x.value).sum();
        assert!(handled > 0.0);
        sett_testkit::eventually(MINUTE, &format!("{agent}'s grant events timed for lag"), async || {
            let s = parse_prometheus(&metrics_text(&addr)).unwrap();
            let cub = [("component".to_owned(), "cub".to_owned())].into();
            let lag = value(&s, &format!("{}_count", m::EVENT_LAG_SECONDS), &cub).unwrap_or(0.0);
            let handled: f64 = s.iter().filter(|x| x.name == m::EVENTS_HANDLED).map(|x| x.value).sum();
            lag >= runs as f64 && lag <= handled
        })
        .await;
    }

    // Export, remove every key, import: the hoard is byte-identical.
    let hoard = env.ok(&["hoard", "-o", "json"]);
    let dump = env.path().join("export.jsonl");
    env.down();
    env.ok(&["export", "--file", dump.to_str().unwrap()]);
    let removed = env.store.scan_instance(true, |_| {}).await.unwrap();
    assert!(!removed.is_empty(), "nothing was removed");
    assert_eq!(env.store.artifact_count().await.unwrap(), 0);
    env.ok(&["import", dump.to_str().unwrap()]);
    assert_eq!(env.ok(&["hoard", "-o", "json"]), hoard);

    // Every line the daemons wrote (stdout and stderr, workers included) is a JSON record
    // naming its instance and component; lines about a claim carry its id.
    check_daemon_logs(&env.log_dir(), env.name.as_str(), &claims.iter().map(|c| c.id).collect::<Vec<_>>());
}

/// The keys a JSON object line repeats: serde_json keeps the last of two values under one name
/// without a word, other log tools the first, so a daemon's line must have one of each.
fn repeated_keys(line: &str) -> Vec<String> {
    struct Repeated;
    impl<'de> serde::de::Visitor<'de> for Repeated {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let (mut seen, mut repeated) = (std::collections::HashSet::new(), Vec::new());
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    repeated.push(key);
                }
            }
            Ok(repeated)
        }
    }
    serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::from_str(line), Repeated)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"))
}

fn check_daemon_logs(dir: &Path, instance: &str, claims: &[ClaimId]) {
    let mut files = 0;
    let mut claim_ids_logged = std::collections::HashSet::new();
    for entry in std::fs::read_dir(dir).expect("log dir").flatten() {
        let path = entry.path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".log") else {
            continue;
        };
        files += 1;
        let expected_component = match stem {
            "orchestrator" => "orchestrator".to_owned(),
            s => match s.strip_suffix("-workers") {
                Some(agent) => format!("worker:{agent}"),
                None => format!("cub:{s}"),
            },
        };
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(!body.trim().is_empty(), "{file} is empty");
        for line in body.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}: not JSON ({e}): {line}"));
            assert!(v.is_object(), "{file}: {line}");
            let repeated = repeated_keys(line);
            assert!(repeated.is_empty(), "{file}: a line repeats {repeated:?}: {line}");
            assert_eq!(v["instance"], instance, "{file}: {line}");
            assert_eq!(v["component"], expected_component.as_str(), "{file}: {line}");
            assert!(v["msg"].is_string() && v["level"].is_number() && v["time"].is_string(), "{file}: {line}");
            let msg = v["msg"].as_str().unwrap_or("").to_lowercase();
            let about_a_claim =
                ["claim", "grant", "bid", "consensus", "tool", "worker launched"].iter().any(|w| msg.contains(w))
                    && !msg.contains("[sett-cub")
                    && !msg.contains("[cub -");
            if let Some(c) = v["claim_id"].as_str() {
                claim_ids_logged.insert(c.to_owned());
            } else {
                assert!(!about_a_claim, "{file}: a line about a claim without claim_id: {line}");
            }
        }
    }
    assert!(files >= 6, "expected the orchestrator, four cubs and the workers' log");
    for c in claims {
        assert!(claim_ids_logged.contains(&c.to_string()), "claim {c} appears in no log line");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn observability_status_claims_stuck_and_logs_follow_on_a_real_instance() {
    let mut env = scribe_env(None).await;
    env.up();

    // Healthy.
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("running"), "{report}");
    for c in ["orchestrator", "cub:Scribe"] {
        let addr = env.addr_of(c).await.unwrap();
        assert!(report.contains(&addr), "status shows {c}'s address {addr}:\n{report}");
    }

    // `logs -f` follows: lines for a claim created after it started arrive.
    let mut follow = env
        .sett(&["logs", "Scribe", "-f", "-o", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let goal = env.forage("Follow me");
    let claim = ClaimId::derived(&goal, "claim");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    let want = claim.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(&want) && tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = follow.kill();
    let _ = follow.wait();
    let line = line.unwrap_or_else(|_| panic!("logs -f showed nothing about {claim}\n{}", env.logs()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["claim_id"], claim.to_string());
    env.wait_terminals(1, MINUTE).await;

    // Degraded: the cub is killed.
    let cub = env.pid_of("cub:Scribe").await.unwrap();
    signal(cub, "-KILL");
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("degraded"), "{}", text(&out.stdout));
    let advice = text(&out.stderr);
    assert!(advice.contains("cub:Scribe") && advice.contains("sett logs Scribe"), "{advice}");

    // Stuck: a goal's claim waits for bids, the orchestrator is frozen past the bid deadline.
    let goal = env.forage("Nobody bids");
    let claim = ClaimId::derived(&goal, "claim");
    let want = claim.to_string();
    env.wait_events(MINUTE, "the claim", 1, |e| {
        e.kind() == EventKind::ClaimCreated && e.data.claim_id() == Some(claim)
    })
    .await;
    let orchestrator = env.pid_of("orchestrator").await.unwrap();
    signal(orchestrator, "-STOP");
    let stuck = wait_for(Duration::from_secs(20), || {
        let out = env.run(&["claims", "--stuck", "-o", "json"]);
        out.status.success() && text(&out.stdout).contains(&want)
    });
    let listed = env.run(&["claims", "--stuck"]);
    signal(orchestrator, "-CONT");
    assert!(stuck, "claims --stuck never listed {claim}");
    assert!(text(&listed.stdout).contains(&claim.short().to_string()), "{}", text(&listed.stdout));
    // Once the orchestrator runs again the claim is no longer stuck (no bid: dormant).
    assert!(
        wait_for(Duration::from_secs(20), || {
            !text(&env.run(&["claims", "--stuck", "-o", "json"]).stdout).contains(&want)
        }),
        "the claim stayed stuck after the orchestrator resumed"
    );

    // Stopped.
    env.down();
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("stopped"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("sett up"), "{}", text(&out.stderr));
}

/// Every metric of `sett_core::metrics` is in `ALL` (read from the source, so a new constant
/// cannot be added without its HELP text) and documented in docs/metrics.md, whose meaning
/// column is the HELP text (markdown backticks aside).
#[test]
fn observability_every_metric_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let source = std::fs::read_to_string(root.join("crates/sett-core/src/metrics.rs")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    let names: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter(|l| l.contains(": &str ="))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(names.len() >= 19, "{names:?}");
    assert!(names.contains(&m::OPEN_QUESTIONS));
    for n in &names {
        assert!(
            m::ALL.iter().any(|x| x.name == *n),
            "{n} is not in sett_core::metrics::ALL: add it there with its kind and HELP text (the meaning from docs/metrics.md)"
        );
    }
    for x in m::ALL {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", x.name)))
            .unwrap_or_else(|| panic!("docs/metrics.md has no table row for `{}`", x.name));
        let meaning = row.trim_end_matches('|').rsplit(" | ").next().unwrap().trim().replace('`', "");
        assert_eq!(
            meaning, x.help,
            "the Meaning of `{}` in docs/metrics.md and its HELP text in sett_core::metrics::ALL differ: make them the same",
            x.name
        );
    }
}
