//! Noticing a ledger that went back (docs/operations.md, "The ledger went back"): every
//! component that talks to an instance (the orchestrator daemon and its notifier, each cub,
//! `sett console`, `sett status`) remembers the highest head `(seq, hash)` it has seen and, after
//! a reconnection and every [`CHECK_EVERY`], judges the head it finds against it
//! ([`sett_core::regression::judge`]). A regression is logged at ERROR with both heads and the
//! events lost, counted in `sett_ledger_regressions_total`, and recorded in
//! `ledger:regressions` (one record per lost head, shown by `sett status` until
//! `sett ledger ack`). The orchestrator also keeps its highest head outside Redis, in
//! `.sett/ledger/<instance>.json`, so a loss that happened while it was down is noticed when
//! it starts, and by `sett status` in that workspace.
//!
//! Deliberate replacements raise nothing: a destroy or an import writes an audit record
//! (`sett:audit`) after the last event of the ledger it replaces, so a lower head preceded by
//! such a record is a new ledger, not a lost one. Neither do entries the archive took out of the
//! stream (`retention:`): an entry seen before that is missing below the archive head was
//! archived, not lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sett_core::ledger::Head;
use sett_core::metrics as m;
use sett_core::regression::{RegressionRecord, SeenHead, Verdict, judge};
use sett_store::{Store, StoreError, now_ms, parse_stream_id};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often a running component looks at the head (besides after every reconnection): one
/// HMGET, plus one XRANGE of one entry when the head moved.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long a check waits for a replica to hold the head it is about to remember (`durability:
/// replicated`; replicas acknowledge at least every second).
const CONFIRM_WITHIN: Duration = Duration::from_millis(1_500);

/// The `event` of the audit record `sett import` writes after restoring an instance.
pub const IMPORT_AUDIT_EVENT: &str = "instance_import";
/// The `event` of a destroy's audit records (`sett_ops::destroy::AuditRecord`).
const DESTROY_AUDIT_EVENT: &str = "instance_destroy";

/// What a workspace keeps about an instance's ledger outside Redis: the highest head the
/// orchestrator saw, and the regressions it noticed that no operator acknowledged yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchState {
    pub seen: Option<SeenHead>,
    #[serde(default)]
    pub unacknowledged: Vec<RegressionRecord>,
}

/// `<workspace>/.sett/ledger/<instance>.json`.
pub fn state_path(workspace: &Path, instance: &str) -> PathBuf {
    workspace.join(".sett").join("ledger").join(format!("{instance}.json"))
}

/// Reads a state file; a missing file is an empty state.
pub fn load_state(path: &Path) -> std::io::Result<WatchState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a ledger state file ({e}); remove it to start over", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WatchState::default()),
        Err(e) => Err(e),
    }
}

/// Writes a state file atomically (a temporary file renamed over it).
pub fn save_state(path: &Path, state: &WatchState) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).expect("serializable"))?;
    std::fs::rename(&tmp, path)
}

/// Forgets what a workspace knew about an instance's ledger (`sett destroy`, `sett import`).
pub fn forget_state(workspace: &Path, instance: &str) -> std::io::Result<()> {
    match std::fs::remove_file(state_path(workspace, instance)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Records in `sett:audit` that `store`'s ledger was just replaced by an import (`{"event":
/// "instance_import", "instance", "head", "operator", "ts"}`), after its last event: watches
/// then follow the imported ledger instead of reporting a regression.
pub async fn record_import(store: &Store, operator: &str) -> Result<(), StoreError> {
    let head = store.ledger_head().await?;
    let record = serde_json::json!({
        "event": IMPORT_AUDIT_EVENT,
        "instance": store.instance().as_str(),
        "head": head.map(|h| h.to_string()),
        "operator": operator,
        "ts": now_ms(),
    });
    store.redis().append_audit(&record).await?;
    Ok(())
}

/// The operator a pause made by `ledger.on_regression: pause` is recorded under.
pub const REGRESSION_OPERATOR: &str = "sett:ledger-watch";

/// Pauses the instance because of `record` (`ledger.on_regression: pause`): nothing new is
/// granted until an operator has looked at the loss and runs `sett resume`. An instance that
/// is already paused stays paused as it was. A failed pause is logged at ERROR (the regression
/// itself is already reported); the next regression tries again.
pub async fn pause_for(store: &Store, record: &RegressionRecord) {
    let reason = format!(
        "the ledger went back from {} to {} (at least {} event(s) lost); look at docs/operations.md \"The ledger went back\", then 'sett resume'",
        record.seen,
        record.found.as_deref().unwrap_or("nothing"),
        record.lost_at_least
    );
    match crate::pause::pause(store, None, REGRESSION_OPERATOR, Some(&reason)).await {
        Ok(done) => tracing::error!(
            watched_instance = %store.instance(),
            action = %done.action_id,
            "the instance is paused because its ledger went back (ledger.on_regression: pause); nothing new is granted until 'sett resume -n {}'",
            store.instance()
        ),
        Err(crate::pause::PauseError::AlreadyPaused { .. }) => {
            tracing::warn!(watched_instance = %store.instance(), "the ledger went back; the instance was already paused and stays so")
        }
        Err(e) => tracing::error!(
            watched_instance = %store.instance(),
            error = %e,
            "the ledger went back and ledger.on_regression is pause, but the instance could not be paused"
        ),
    }
}

/// Called with each regression a watch notices (the orchestrator daemon sends the
/// `ledger_regressed` notification from here).
pub type OnRegression = Arc<dyn Fn(&RegressionRecord) + Send + Sync>;

/// One component's memory of the highest head it saw, and the check against it.
pub struct LedgerWatch {
    store: Store,
    component: String,
    state: WatchState,
    /// Where `state` is kept outside Redis, if anywhere.
    file: Option<PathBuf>,
    /// Whether the last save failed (warned once, not at every check).
    save_failed: bool,
}

impl std::fmt::Debug for LedgerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerWatch").field("component", &self.component).field("seen", &self.state.seen).finish()
    }
}

impl LedgerWatch {
    /// A watch that remembers in memory only, starting from the head it first finds.
    pub fn new(store: Store, component: impl Into<String>) -> Self {
        Self { store, component: component.into(), state: WatchState::default(), file: None, save_failed: false }
    }

    /// A watch that starts from (and keeps) the state in `file`. An unreadable file is an error
    /// naming it; a missing one starts afresh.
    pub fn persisted(store: Store, component: impl Into<String>, file: PathBuf) -> std::io::Result<Self> {
        let state = load_state(&file)?;
        Ok(Self { store, component: component.into(), state, file: Some(file), save_failed: false })
    }

    /// The highest head seen so far.
    pub fn seen(&self) -> Option<&SeenHead> {
        self.state.seen.as_ref()
    }

    /// Regressions this watch noticed (or found in its file) that were not acknowledged.
    pub fn unacknowledged(&self) -> &[RegressionRecord] {
        &self.state.unacknowledged
    }

    /// Looks at the head once. Returns the regression it noticed, if any (already logged,
    /// counted and recorded); from then on the head found is the one to compare with, so one
    /// loss is reported once.
    pub async fn check(&mut self) -> Result<Option<RegressionRecord>, StoreError> {
        let found = self.store.ledger_seen_head().await?;
        let Some(seen) = self.state.seen.clone() else {
            if found.is_some() {
                self.adopt_confirmed(found).await?;
            }
            return Ok(None);
        };
        let at_seen = match &found {
            Some(f) if f.seq > seen.seq => match self.store.ledger_link_at(&seen.id).await? {
                Some(link) => Some(link),
                None => self.archived_link(&seen).await?,
            },
            _ => None,
        };
        let regression = match judge(&seen, found.as_ref(), at_seen.as_ref()) {
            Verdict::Same => return Ok(None),
            Verdict::Advanced => {
                self.adopt_confirmed(found).await?;
                return Ok(None);
            }
            Verdict::Regressed(r) => r,
        };
        if let Some(reason) = self.replaced_on_purpose(&seen).await? {
            tracing::info!(
                watcher = %self.component,
                seen = %seen,
                found = ?found.as_ref().map(ToString::to_string),
                "the ledger was replaced on purpose ({reason}); following the new one"
            );
            self.adopt(found);
            return Ok(None);
        }
        let record = RegressionRecord::new(&regression, &self.component, now_ms());
        tracing::error!(
            watcher = %self.component,
            watched_instance = %self.store.instance(),
            seen = %seen,
            found = ?found.as_ref().map(ToString::to_string),
            lost_at_least = regression.lost_at_least,
            "LEDGER REGRESSION: the ledger went back from {seen} to {} — at least {} acknowledged event(s) are gone \
             (Redis restarted on an older copy, a failover to a replica that had not synced, or a flush); \
             see docs/operations.md \"The ledger went back\", then acknowledge with 'sett ledger ack -n {}'",
            found.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string),
            regression.lost_at_least,
            self.store.instance(),
        );
        metrics::counter!(m::LEDGER_REGRESSIONS, "component" => self.component.clone()).increment(1);
        // Kept outside Redis before anything else: the write to Redis may fail (or be lost too).
        self.state.unacknowledged.push(record.clone());
        self.state.seen = found;
        self.save();
        self.store.record_regression(&record).await?;
        Ok(Some(record))
    }

    /// Forgets the regressions kept in the file and starts again from the current head
    /// (`sett ledger ack`).
    pub async fn acknowledge(&mut self) -> Result<(), StoreError> {
        self.state.unacknowledged.clear();
        self.state.seen = self.store.ledger_seen_head().await?;
        self.save();
        Ok(())
    }

    /// The link at `seen` when the archive took its entry out of the stream. The archive trims
    /// only what it wrote and read back, up to its head, so an entry at or below the archive
    /// head (in chain position and stream id) was archived, not lost; at the head itself the hash
    /// must match too. Below the head the segments hold the proof, checked by `sett verify`. A
    /// Redis put back on an older copy puts back the older archive head with it, so a loss is
    /// still told apart. `None`: the archive does not cover `seen`.
    async fn archived_link(&self, seen: &SeenHead) -> Result<Option<Head>, StoreError> {
        let Some((seq, hash, id)) = self.store.archive_head().await? else { return Ok(None) };
        let id_covered = matches!(
            (parse_stream_id(&seen.id), parse_stream_id(&id)),
            (Some(seen_id), Some(head_id)) if seen_id <= head_id
        );
        let covered = id_covered && (seq > seen.seq || (seq == seen.seq && hash == seen.hash));
        Ok(covered.then(|| seen.head()))
    }

    /// Whether a destroy or an import of this instance was recorded after `seen` was written:
    /// the ledger was then replaced on purpose. Returns what was recorded.
    async fn replaced_on_purpose(&self, seen: &SeenHead) -> Result<Option<String>, StoreError> {
        let instance = self.store.instance().as_str();
        for (_, entry) in self.store.audit_records_after(&seen.id).await? {
            let event = entry.0.get("event").and_then(|v| v.as_str()).unwrap_or_default();
            let of_this = entry.0.get("instance").and_then(|v| v.as_str()) == Some(instance);
            if of_this && (event == DESTROY_AUDIT_EVENT || event == IMPORT_AUDIT_EVENT) {
                return Ok(Some(event.to_owned()));
            }
        }
        Ok(None)
    }

    /// Adopts `found` (read just before) once a replica holds it, under `durability:
    /// replicated`: a head the primary alone held may be lost by a normal failover (its writer
    /// makes the write again on the new primary), and remembering it would then raise a false
    /// alarm. Not adopted yet: the next check tries again with the head it reads.
    async fn adopt_confirmed(&mut self, found: Option<SeenHead>) -> Result<(), StoreError> {
        if self.store.replica_caught_up(CONFIRM_WITHIN).await? {
            self.adopt(found);
        }
        Ok(())
    }

    fn adopt(&mut self, found: Option<SeenHead>) {
        if let Some(f) = &found {
            metrics::gauge!(m::LEDGER_SEEN_SEQ, "component" => self.component.clone()).set(f.seq as f64);
        }
        self.state.seen = found;
        self.save();
    }

    fn save(&mut self) {
        let Some(file) = &self.file else { return };
        match save_state(file, &self.state) {
            Ok(()) => self.save_failed = false,
            Err(e) if !self.save_failed => {
                self.save_failed = true;
                tracing::warn!(file = %file.display(), error = %e, "cannot keep the ledger head outside Redis; a loss while this component is down will go unnoticed");
            }
            Err(_) => {}
        }
    }

    /// Checks after every reconnection and every [`CHECK_EVERY`] until `stop`, calling
    /// `on_regression` with each regression noticed. A failed check (Redis away) is retried at
    /// the next tick.
    pub async fn run(mut self, stop: CancellationToken, on_regression: Option<OnRegression>) {
        let reconnected = Arc::new(Notify::new());
        {
            let reconnected = reconnected.clone();
            self.store.redis().on_reconnect(move || reconnected.notify_one());
        }
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(watcher = %self.component, seen = ?self.seen().map(ToString::to_string), every = ?CHECK_EVERY, "watching the ledger head for regressions");
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
                () = reconnected.notified() => {}
            }
            match self.check().await {
                Ok(Some(record)) => {
                    if let Some(f) = &on_regression {
                        f(&record);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(watcher = %self.component, error = %e, "ledger check failed; retrying at the next tick")
                }
            }
        }
    }
}
