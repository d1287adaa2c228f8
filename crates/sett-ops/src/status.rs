//! Status aggregation for `sett status`, `sett list` and `sett claims --stuck`: the lock holder,
//! each registered component's heartbeat and `/healthz`, claims by status, open questions and
//! stuck claims. Returns data; the CLI prints it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sett_core::answer_spec::QuestionKind;
use sett_core::record::{ComponentRecord, cub_agent};
use sett_core::{Claim, ClaimStatus};
use sett_store::{LockHolder, LockPurpose, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A component whose last heartbeat is older than this is considered dead.
pub const HEARTBEAT_STALE_MS: i64 = 15_000;
/// A pending claim with no deadline counts as stuck after this long (`sett status`).
pub const STUCK_AFTER: Duration = Duration::from_secs(600);
/// How long `/healthz` may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1_500);

/// An instance's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The lock is held and every registered component is alive.
    Running,
    /// The lock is held but a component is stale or unhealthy.
    Degraded,
    /// Nobody holds the lock.
    Stopped,
    /// `sett destroy` holds the lock.
    Destroying,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Degraded => "degraded",
            Self::Stopped => "stopped",
            Self::Destroying => "destroying",
        }
    }
}

/// One registered component (`orchestrator`, `cub:<agent>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    pub name: String,
    pub pid: Option<u64>,
    pub addr: Option<String>,
    pub started_at_ms: Option<i64>,
    pub heartbeat_age_ms: Option<i64>,
    /// The HTTP status of `/healthz`, when it answered.
    pub healthz_status: Option<u16>,
    pub healthy: bool,
    /// What is wrong, when not healthy.
    pub problem: Option<String>,
    /// A cub that offers a standing bid, or an orchestrator that records them (design.md §5).
    pub standing_bids: bool,
}

/// The lock holder and how long it has held the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockInfo {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub started_at_ms: i64,
    pub age_ms: i64,
    pub ttl_ms: Option<i64>,
    pub purpose: LockPurpose,
}

impl LockInfo {
    fn new(h: LockHolder, ttl_ms: Option<i64>, now_ms: i64) -> Self {
        Self {
            age_ms: now_ms - h.started_at,
            run_id: h.run_id,
            host: h.host,
            pid: h.pid,
            started_at_ms: h.started_at,
            ttl_ms,
            purpose: h.purpose,
        }
    }
}

/// A claim that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StuckClaim {
    pub claim_id: String,
    pub artifact_id: String,
    pub status: ClaimStatus,
    pub age_ms: i64,
    pub overdue_ms: Option<i64>,
}

/// Everything `sett status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub instance: String,
    pub health: Health,
    pub lock: Option<LockInfo>,
    pub components: Vec<ComponentHealth>,
    pub claims_by_status: BTreeMap<String, u64>,
    pub open_questions: u64,
    /// How long the oldest open question has waited for a person (ms); `None` when none is open.
    pub oldest_question_age_ms: Option<i64>,
    /// The open questions by kind (agents' questions, approvals, human reviews), each with the
    /// wait of its oldest: the SLA view. Only kinds with an open question are listed.
    pub questions_by_kind: Vec<OpenByKind>,
    pub stuck_claims: u64,
    pub oldest_stuck_claim: Option<StuckClaim>,
    /// The ledger head (`<seq>:<hash>`), `None` before the first chained event.
    pub ledger_head: Option<String>,
    /// Webhook endpoints that were attempted at least once, by name.
    pub webhooks: Vec<WebhookHealth>,
    /// Ledger regressions no operator acknowledged yet (`sett ledger ack`), oldest first.
    pub ledger_regressions: Vec<sett_core::regression::RegressionRecord>,
    /// The durability of writes and the replication of the primary holding the instance.
    pub replication: Replication,
    /// The archive (`retention:`), once a pass ran: size, last run, last error, what holds
    /// trimming back.
    pub archive: Option<crate::archive::Summary>,
    /// Pauses in force (`sett pause`): the instance's first, then workflows'.
    pub pauses: Vec<PauseInfo>,
    /// Claims whose grant waits for a pause to be lifted.
    pub held_claims: u64,
}

/// How safe a write is where the instance lives: the durability in force and what the primary
/// says of its replicas (`sett up`, `sett status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replication {
    /// `fast` or `replicated` (configured, or the deployment's default).
    pub durability: String,
    /// Whether the Redis URL names a deployment with replicas (Sentinel, Cluster).
    pub deployment_has_replicas: bool,
    /// `INFO replication` of the node holding the instance; `None` when it could not be read.
    pub state: Option<sett_store::ReplicationState>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Set when work would run on a primary no synced replica copies.
    pub warning: Option<String>,
}

impl Replication {
    /// Reads the replication state of the primary holding `store`'s instance.
    pub async fn of(store: &Store) -> Self {
        let durability = store.redis().durability();
        let deployment_has_replicas = store.redis().has_replicas();
        let (state, error) = match store.replication_state().await {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let warning = state.as_ref().and_then(|s| replication_warning(durability, deployment_has_replicas, s));
        Self { durability: durability.as_str().to_owned(), deployment_has_replicas, state, error, warning }
    }

    /// One line: the durability, the replicas with their link state and lag.
    pub fn summary(&self) -> String {
        let Some(s) = &self.state else {
            return format!(
                "durability {}; replication state unknown ({})",
                self.durability,
                self.error.as_deref().unwrap_or("?")
            );
        };
        let replicas: Vec<String> = s
            .replicas
            .iter()
            .map(|r| {
                if r.is_synced() {
                    format!(
                        "{} {} (link up, lag {} s, {} bytes behind)",
                        r.addr,
                        r.state,
                        r.lag_s,
                        (s.offset - r.offset).max(0)
                    )
                } else {
                    format!("{} {} (NOT SYNCED)", r.addr, r.state)
                }
            })
            .collect();
        let of = match (s.role.as_str(), replicas.is_empty()) {
            ("slave", _) => {
                format!("connected to a replica (link {})", if s.link_up == Some(true) { "up" } else { "down" })
            }
            (_, true) => "no replica connected".to_owned(),
            (_, false) => format!("{} replica(s): {}", s.replicas.len(), replicas.join("; ")),
        };
        format!("durability {}; {of}", self.durability)
    }
}

/// What to warn about before work runs: a deployment that should have a synced replica (a
/// Sentinel or Cluster URL, or `durability: replicated`) whose primary has none. Under
/// `replicated` writes wait for one (and fail after a minute); under `fast` they are held by the
/// primary alone and lost whole if it dies.
pub fn replication_warning(
    durability: sett_core::config::Durability,
    deployment_has_replicas: bool,
    s: &sett_store::ReplicationState,
) -> Option<String> {
    use sett_core::config::Durability;
    let replicated = durability == Durability::Replicated;
    if !(replicated || deployment_has_replicas) || s.role == "slave" || s.synced() > 0 {
        return None;
    }
    let what = if s.replicas.is_empty() {
        "no replica is connected to the primary".to_owned()
    } else {
        let states: Vec<&str> = s.replicas.iter().map(|r| r.state.as_str()).collect();
        format!("the primary's replica has not synced yet (state {})", states.join(", "))
    };
    Some(if replicated {
        format!(
            "{what}: with durability replicated every write waits for a replica (and fails after a minute); check the replica's log and 'INFO replication' on the primary"
        )
    } else {
        format!(
            "{what}: with durability fast the work run now is held by the primary alone and is lost whole if it dies (set redis.durability: replicated, or wait for the replica to sync)"
        )
    })
}

/// One pause in force, as `sett status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PauseInfo {
    /// The workflow's goal; `None` when the whole instance is paused.
    pub goal_id: Option<String>,
    pub operator: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    pub age_ms: i64,
}

/// One notification webhook as `sett status` shows it (from the notifier's records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookHealth {
    pub name: String,
    /// True when its last attempt failed.
    pub failing: bool,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub last_success_ms: Option<i64>,
    pub last_attempt_ms: Option<i64>,
    /// Notifications waiting for a (next) attempt.
    pub pending: u64,
    pub delivered: u64,
    pub given_up: u64,
}

/// Every webhook the notifier has attempted, sorted by name.
pub async fn webhooks_health(store: &Store) -> sett_store::Result<Vec<WebhookHealth>> {
    let mut out = Vec::new();
    for (name, st) in store.notify_endpoints().await? {
        out.push(WebhookHealth {
            pending: store.notify_pending(&name).await?,
            failing: st.consecutive_failures > 0,
            last_error: st.last_error,
            consecutive_failures: st.consecutive_failures,
            last_success_ms: st.last_success_ms,
            last_attempt_ms: st.last_attempt_ms,
            delivered: st.delivered,
            given_up: st.given_up,
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// GETs `http://<addr>/healthz` with a bound; returns the HTTP status code.
pub async fn probe_healthz(addr: &str, timeout: Duration) -> Result<u16, String> {
    probe(addr, "/healthz", timeout).await
}

/// GETs `http://<addr><path>` with a bound; returns the HTTP status code.
pub async fn probe(addr: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let mut head = [0u8; 64];
        let mut n = 0;
        // The status line is all that matters; read until it is complete.
        while n < head.len() && !head[..n].contains(&b'\n') {
            let got = s.read(&mut head[n..]).await.map_err(|e| format!("cannot read from {addr}: {e}"))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        parse_status_line(&head[..n]).ok_or_else(|| format!("{addr} did not answer HTTP"))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("{addr} did not answer {path} within {timeout:?}")),
    }
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// Judges one component record `{pid, addr, started_at_ms, heartbeat_ms}`: stale heartbeat or a
/// failing `/healthz` make it unhealthy. Probes only when the heartbeat is fresh.
pub async fn component_health(name: &str, record: &ComponentRecord, now_ms: i64, timeout: Duration) -> ComponentHealth {
    let addr = record.addr.clone().filter(|a| !a.is_empty());
    let heartbeat_age_ms = record.heartbeat_ms.map(|h| now_ms - h);
    let mut c = ComponentHealth {
        name: name.to_owned(),
        pid: record.pid.map(u64::from),
        addr: addr.clone(),
        started_at_ms: record.started_at_ms,
        heartbeat_age_ms,
        healthz_status: None,
        healthy: false,
        problem: None,
        standing_bids: record.standing_bid.is_some() || record.records_standing_bids,
    };
    match heartbeat_age_ms {
        None => c.problem = Some("no heartbeat recorded".into()),
        Some(age) if age > HEARTBEAT_STALE_MS => c.problem = Some(format!("last heartbeat {}s ago", age / 1000)),
        Some(_) => match addr {
            None => c.healthy = true,
            Some(a) => match probe_healthz(&a, timeout).await {
                Ok(200) => {
                    c.healthz_status = Some(200);
                    c.healthy = true;
                }
                Ok(code) => {
                    c.healthz_status = Some(code);
                    c.problem = Some(format!("/healthz answered {code}"));
                }
                Err(e) => c.problem = Some(e),
            },
        },
    }
    c
}

/// Every registered component's health, probed concurrently, sorted by name.
pub async fn components_health(
    store: &Store,
    now_ms: i64,
    timeout: Duration,
) -> sett_store::Result<Vec<ComponentHealth>> {
    let records = store.components().await?;
    let probes = records.iter().map(|(name, rec)| component_health(name, rec, now_ms, timeout));
    Ok(futures::future::join_all(probes).await)
}

/// The overall state from the lock and the components.
pub fn overall(lock: Option<&LockInfo>, components: &[ComponentHealth]) -> Health {
    match lock {
        None => Health::Stopped,
        Some(l) if l.purpose == LockPurpose::Destroy => Health::Destroying,
        Some(_) if components.iter().any(|c| !c.healthy) => Health::Degraded,
        Some(_) => Health::Running,
    }
}

/// The lock holder (with age and TTL), if any.
pub async fn lock_info(store: &Store, now_ms: i64) -> sett_store::Result<Option<LockInfo>> {
    let Some(holder) = store.lock_holder().await? else {
        return Ok(None);
    };
    let ttl = store.lock_ttl_ms().await?;
    Ok(Some(LockInfo::new(holder, ttl, now_ms)))
}

/// The instance's state: lock, then components only when running.
pub async fn instance_health(
    store: &Store,
    now_ms: i64,
    timeout: Duration,
) -> sett_store::Result<(Health, Option<LockInfo>, Vec<ComponentHealth>)> {
    let lock = lock_info(store, now_ms).await?;
    let components = if lock.is_some() { components_health(store, now_ms, timeout).await? } else { Vec::new() };
    Ok((overall(lock.as_ref(), &components), lock, components))
}

/// A non-final claim is stuck when a deadline has passed, or, having no deadline, when it has
/// not changed for longer than `stuck_after_ms`. Returns how long it is overdue.
pub fn stuck_for(claim: &Claim, now_ms: i64, stuck_after_ms: i64) -> Option<i64> {
    if claim.status.is_final() {
        return None;
    }
    match claim.next_deadline_ms() {
        Some(d) if d < now_ms => Some(now_ms - d),
        Some(_) => None,
        None => {
            let idle = now_ms - claim.updated_at_ms.max(claim.created_at_ms);
            (idle > stuck_after_ms).then_some(idle - stuck_after_ms)
        }
    }
}

/// The open questions of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenByKind {
    pub kind: QuestionKind,
    pub open: u64,
    /// How long the oldest of them has waited (ms).
    pub oldest_age_ms: i64,
}

/// The open questions by kind, in [`QuestionKind::ALL`] order, from the open-question index.
pub fn questions_by_kind(open: &[sett_store::OpenQuestionRef], now_ms: i64) -> Vec<OpenByKind> {
    QuestionKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let of_kind: Vec<i64> = open.iter().filter(|q| q.kind == kind).map(|q| q.asked_at_ms).collect();
            let oldest = *of_kind.iter().min()?;
            Some(OpenByKind { kind, open: of_kind.len() as u64, oldest_age_ms: (now_ms - oldest).max(0) })
        })
        .collect()
}

/// Builds the full report.
pub async fn instance_status(
    store: &Store,
    now_ms: i64,
    stuck_after: Duration,
    timeout: Duration,
) -> sett_store::Result<StatusReport> {
    let (health, lock, components) = instance_health(store, now_ms, timeout).await?;
    let claims = store.all_claims().await?;
    let mut claims_by_status = BTreeMap::new();
    for c in &claims {
        *claims_by_status.entry(c.status.as_str().to_owned()).or_default() += 1;
    }
    let stuck_after_ms = i64::try_from(stuck_after.as_millis()).unwrap_or(i64::MAX);
    let stuck: Vec<(&Claim, i64)> =
        claims.iter().filter_map(|c| stuck_for(c, now_ms, stuck_after_ms).map(|o| (c, o))).collect();
    let oldest_stuck_claim = stuck.iter().min_by_key(|(c, _)| (c.created_at_ms, c.id)).map(|(c, overdue)| StuckClaim {
        claim_id: c.id.to_string(),
        artifact_id: c.artifact_id.to_string(),
        status: c.status,
        age_ms: now_ms - c.created_at_ms,
        overdue_ms: Some(*overdue),
    });
    Ok(StatusReport {
        instance: store.instance().to_string(),
        health,
        lock,
        components,
        claims_by_status,
        open_questions: store.open_question_count().await?,
        oldest_question_age_ms: store.oldest_open_question_ms().await?.map(|asked| (now_ms - asked).max(0)),
        questions_by_kind: questions_by_kind(&store.open_question_deadlines().await?, now_ms),
        ledger_head: store.ledger_head().await?.map(|h| h.to_string()),
        stuck_claims: stuck.len() as u64,
        oldest_stuck_claim,
        webhooks: webhooks_health(store).await?,
        ledger_regressions: store.regressions().await?.into_iter().filter(|r| !r.is_acknowledged()).collect(),
        replication: Replication::of(store).await,
        archive: archive_summary(store).await?,
        pauses: store
            .pauses()
            .await?
            .into_iter()
            .map(|(scope, p)| PauseInfo {
                goal_id: scope.goal().map(|g| g.to_string()),
                operator: p.operator,
                reason: p.reason,
                at_ms: p.at_ms,
                age_ms: (now_ms - p.at_ms).max(0),
            })
            .collect(),
        held_claims: store.held_claims().await?.len() as u64,
    })
}

async fn archive_summary(store: &Store) -> sett_store::Result<Option<crate::archive::Summary>> {
    match crate::archive::summary(store).await {
        Ok(s) if s.last_run_ms.is_some() || s.segments > 0 => Ok(Some(s)),
        Ok(_) => Ok(None),
        Err(crate::archive::ArchiveError::Store(e)) => Err(e),
        // A manifest that does not decode: status still answers; `sett archive` names it.
        Err(_) => Ok(None),
    }
}

/// The `sett logs` argument for a registered component name (`cub:<agent>` → `<agent>`).
fn logs_arg(component: &str) -> &str {
    cub_agent(component).unwrap_or(component)
}

/// What to do next, for an instance that is not healthy or has a failing webhook.
pub fn advice(r: &StatusReport) -> Vec<String> {
    let i = &r.instance;
    let hooks = r.webhooks.iter().filter(|w| w.failing).map(|w| {
        format!(
            "Webhook {} is failing ({} notification(s) waiting, retried with backoff for 24 h): check the receiver and its URL in sett.yml; 'sett logs orchestrator -n {i}' shows each attempt",
            w.name, w.pending
        )
    });
    let mut out: Vec<String> = hooks.collect();
    if !r.ledger_regressions.is_empty() {
        out.push(format!(
            "The ledger of '{i}' went back: acknowledged work is gone. Follow docs/operations.md \"The ledger went back\", then run 'sett ledger ack -n {i}'"
        ));
    }
    if let Some(w) = &r.replication.warning {
        out.push(format!("WARNING: {w}"));
    }
    out.extend(health_advice(r));
    out
}

fn health_advice(r: &StatusReport) -> Vec<String> {
    let i = &r.instance;
    match r.health {
        Health::Running => Vec::new(),
        Health::Stopped => vec![format!("Instance '{i}' is stopped: start it with 'sett up --name {i}'")],
        Health::Destroying => vec![format!(
            "Instance '{i}' is being destroyed; if that destroy was interrupted, finish it with 'sett destroy --name {i}'"
        )],
        Health::Degraded => r
            .components
            .iter()
            .filter(|c| !c.healthy)
            .map(|c| {
                format!(
                    "Component {} is unhealthy ({}): see 'sett logs {} -n {i}', then restart with 'sett down -n {i}' and 'sett up -n {i}'",
                    c.name,
                    c.problem.as_deref().unwrap_or("unknown problem"),
                    logs_arg(&c.name)
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sett_core::machine::new_claim;
    use sett_core::policy::Policy;
    use sett_core::{Artifact, StructuralType};

    #[test]
    fn open_questions_are_counted_by_kind_with_their_oldest_wait() {
        let q = |kind, asked_at_ms| sett_store::OpenQuestionRef {
            id: sett_store::new_artifact_id(),
            asked_at_ms,
            claim_id: None,
            deadline_ms: None,
            kind,
        };
        let open = [q(QuestionKind::Review, 400), q(QuestionKind::Question, 900), q(QuestionKind::Review, 100)];
        assert_eq!(
            questions_by_kind(&open, 1_000),
            vec![
                OpenByKind { kind: QuestionKind::Question, open: 1, oldest_age_ms: 100 },
                OpenByKind { kind: QuestionKind::Review, open: 2, oldest_age_ms: 900 },
            ]
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\ncontent-type: x"), Some(200));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[tokio::test]
    async fn stale_and_missing_heartbeats_are_unhealthy() {
        let now = 100_000;
        let fresh = ComponentRecord {
            pid: Some(7),
            started_at_ms: Some(1),
            heartbeat_ms: Some(now - 1000),
            ..ComponentRecord::default()
        };
        let c = component_health("orchestrator", &fresh, now, PROBE_TIMEOUT).await;
        assert!(c.healthy, "{c:?}");
        let stale = ComponentRecord { pid: Some(7), heartbeat_ms: Some(now - 20_000), ..ComponentRecord::default() };
        let c = component_health("orchestrator", &stale, now, PROBE_TIMEOUT).await;
        assert!(!c.healthy);
        assert_eq!(c.problem.as_deref(), Some("last heartbeat 20s ago"));
        assert!(!component_health("x", &ComponentRecord::default(), now, PROBE_TIMEOUT).await.healthy);
    }

    #[tokio::test]
    async fn a_dead_healthz_address_is_unhealthy() {
        // Bind then drop: nothing listens on that port any more.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let rec = ComponentRecord {
            pid: Some(7),
            addr: Some(addr),
            heartbeat_ms: Some(99_000),
            ..ComponentRecord::default()
        };
        let c = component_health("cub:A", &rec, 100_000, PROBE_TIMEOUT).await;
        assert!(!c.healthy);
        assert!(c.problem.unwrap().contains("cannot connect"));
    }

    #[tokio::test]
    async fn a_live_healthz_is_probed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        assert_eq!(probe_healthz(&addr, PROBE_TIMEOUT).await, Ok(503));
    }

    #[test]
    fn overall_health() {
        let lock = LockInfo::new(
            LockHolder { run_id: "r".into(), host: "h".into(), pid: 1, started_at: 0, purpose: LockPurpose::Run },
            Some(10),
            5,
        );
        let ok = ComponentHealth {
            name: "o".into(),
            pid: None,
            addr: None,
            started_at_ms: None,
            heartbeat_age_ms: Some(1),
            healthz_status: None,
            healthy: true,
            problem: None,
            standing_bids: false,
        };
        let bad = ComponentHealth { healthy: false, ..ok.clone() };
        assert_eq!(overall(None, &[]), Health::Stopped);
        assert_eq!(overall(Some(&lock), std::slice::from_ref(&ok)), Health::Running);
        assert_eq!(overall(Some(&lock), &[ok, bad]), Health::Degraded);
        let destroying = LockInfo { purpose: LockPurpose::Destroy, ..lock };
        assert_eq!(overall(Some(&destroying), &[]), Health::Destroying);
    }

    #[test]
    fn stuck_claims() {
        let p = Policy {
            agents: Default::default(),
            max_review_iterations: 3,
            bid_timeout_ms: 1_000,
            on_question_timeout: Default::default(),
            routing: Default::default(),
        };
        let a = Artifact::new_root(sett_store::new_artifact_id(), StructuralType::Standard, "T", "x", "user", 0);
        let c = new_claim(sett_store::new_claim_id(), &a, &p, 0);
        // Pending consensus with its bid deadline at 1000.
        assert_eq!(stuck_for(&c, 500, 60_000), None);
        assert_eq!(stuck_for(&c, 1_500, 60_000), Some(500));
        let mut no_deadline = c.clone();
        no_deadline.bid_deadline_ms = None;
        assert_eq!(stuck_for(&no_deadline, 30_000, 60_000), None);
        assert_eq!(stuck_for(&no_deadline, 61_000, 60_000), Some(1_000));
        let mut done = c;
        done.status = ClaimStatus::Complete;
        assert_eq!(stuck_for(&done, 1_000_000, 1), None);
    }

    #[test]
    fn a_primary_without_a_synced_replica_is_warned_of_where_replicas_are_expected() {
        use sett_core::config::Durability::{Fast, Replicated};
        let unsynced = sett_store::ReplicationState::parse(
            "role:master\r\nslave0:ip=10.0.0.2,port=6380,state=wait_bgsave,offset=0,lag=1\r\nmaster_repl_offset:99\r\n",
        );
        let synced = sett_store::ReplicationState::parse(
            "role:master\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=99,lag=0\r\nmaster_repl_offset:99\r\n",
        );
        let alone = sett_store::ReplicationState::parse("role:master\r\nmaster_repl_offset:99\r\n");
        let w = replication_warning(Fast, true, &unsynced).unwrap();
        assert!(w.contains("not synced yet (state wait_bgsave)") && w.contains("lost whole"), "{w}");
        assert!(replication_warning(Replicated, true, &alone).unwrap().contains("waits for a replica"));
        assert_eq!(replication_warning(Replicated, true, &synced), None);
        assert_eq!(replication_warning(Fast, false, &alone), None, "a single Redis by choice");
    }
}
