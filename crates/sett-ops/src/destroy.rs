//! The instance destroyer (`sett destroy`, design.md §9): refuses while the instance runs, holds the
//! instance lock with the `destroy` purpose while it works (so `sett up` cannot start mid-way),
//! writes an optional full export, appends an audit "intent" record to `sett:audit` *before*
//! deleting, deletes every `sett:{<instance>}:*` key — enumerated from the instance's own indexes
//! and key registry, in pipelined batches, then swept where the enumeration cannot vouch for
//! them (`Store::purge_instance_keys`), counting them per family from UNLINK's replies —
//! appends the completion record with those counts,
//! removes the registry entry and releases the lock last. An interrupted destroy can simply be
//! run again (its intent record without a completion record shows where it stopped).
//!
//! The lock key is the one instance key the purge skips: deleting it mid-way would let `sett up`
//! start on a half-deleted instance. It goes when the lock is released, after the registry entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use sett_store::{FamilyCounts, LockHolder, LockPurpose, RelativeKey, Store, StoreError, now_ms};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lock TTL while destroying; renewed every [`RENEW_EVERY`], so a destroy that dies leaves a
/// lock that lapses within this long.
pub const DESTROY_LOCK_TTL: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Why a destroy cannot proceed, or what failed while it ran.
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    /// The orchestrator holds the lock.
    #[error(
        "Cannot destroy instance '{instance}' - instance is still running\nRun 'sett down --name {instance}' first"
    )]
    Running { instance: String, holder: LockHolder },
    /// No registry entry and no keys.
    #[error("Instance '{instance}' not found\nRun 'sett list' to see the registered instances")]
    NotFound { instance: String },
    /// Another destroy holds the lock and looks alive.
    #[error(
        "Another destroy of instance '{instance}' is in progress (pid {} on {}, run {})\nWait for it to finish; if it died, its lock lapses within {}s and 'sett destroy --name {instance}' can be run again",
        holder.pid, holder.host, holder.run_id, ttl_ms.div_ceil(1000)
    )]
    InProgress { instance: String, holder: LockHolder, ttl_ms: u64 },
    /// The lock was lost while deleting (e.g. Redis was unreachable longer than the TTL).
    #[error(
        "lost the destroy lock of instance '{instance}' mid-way; nothing else was started on it by this command — run 'sett destroy --name {instance}' again to finish"
    )]
    LockLost { instance: String },
    #[error("cannot write the backup to {path}: {source} (choose a writable path with --backup)")]
    Backup { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = DestroyError> = std::result::Result<T, E>;

/// What a destroy would delete: keys per family (the lock excluded) and whether the instance has
/// a registry entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub counts: FamilyCounts,
    pub registered: bool,
    /// Whether `counts` were counted before the destroy (a confirmation shows them; `--force`
    /// skips that pass and counts while deleting).
    #[serde(skip)]
    pub counted: bool,
}

impl Plan {
    pub fn total_keys(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn count(&self, family: &str) -> u64 {
        self.counts.get(family).copied().unwrap_or(0)
    }

    /// Keys that are neither artifacts, claims nor threads ("metadata" in the seed's wording).
    pub fn metadata_keys(&self) -> u64 {
        self.total_keys() - self.count("artifact") - self.count("claim") - self.count("thread")
    }

    fn exists(&self) -> bool {
        self.registered || self.total_keys() > 0
    }

    /// The counts when they were taken before the destroy.
    fn counts_before(&self) -> Option<&FamilyCounts> {
        self.counted.then_some(&self.counts)
    }
}

/// Counts what a destroy would delete, without taking the lock or changing anything
/// (`--dry-run`). Refuses the same way a destroy would (running, not found).
pub async fn plan(store: &Store) -> Result<Plan> {
    if let Some(holder) = store.lock_holder().await?
        && holder.purpose == LockPurpose::Run
    {
        return Err(DestroyError::Running { instance: store.instance().to_string(), holder });
    }
    let plan = survey(store).await?;
    if !plan.exists() {
        return Err(DestroyError::NotFound { instance: store.instance().to_string() });
    }
    Ok(plan)
}

async fn survey(store: &Store) -> Result<Plan> {
    let registered = store.redis().instance_record(store.instance()).await?.is_some();
    let counts = store.count_instance_keys().await?;
    Ok(Plan { counts, registered, counted: true })
}

/// What a destroy that counts while it deletes knows beforehand: the registry entry, and
/// whether there is anything at all (the registry entry, else the first key a scan finds).
async fn glance(store: &Store) -> Result<(Plan, bool)> {
    let registered = store.redis().instance_record(store.instance()).await?.is_some();
    let exists = registered || store.has_instance_keys().await?;
    Ok((Plan { counts: FamilyCounts::new(), registered, counted: false }, exists))
}

/// Who is destroying, for the lock and the audit record.
#[derive(Debug, Clone)]
pub struct Operator {
    /// From [`crate::operator::current`]: `$SETT_OPERATOR`, the OS account, or `uid:<n>`.
    pub name: String,
    pub host: String,
    pub pid: u32,
}

impl Operator {
    /// This process on this host, acting for `name`.
    pub fn current(name: impl Into<String>) -> Self {
        Self { name: name.into(), host: this_host(), pid: std::process::id() }
    }
}

/// This machine's host name (`unknown` if it cannot be read).
pub fn this_host() -> String {
    hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".to_owned())
}

/// Whether `pid` names a live process on this host. Without /proc (non-Linux) we cannot tell,
/// and answer "alive" so a lock is never taken over on a guess.
fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// How a destroy got its lock: fresh, or by taking over from a destroy that died on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Fresh,
    /// The previous holder was a destroy on this host whose process no longer exists.
    TookOver(LockHolder),
}

/// A destroy in progress: it holds the instance lock (renewed in the background) until
/// [`Destroyer::execute`] finishes or [`Destroyer::abort`] releases it.
#[derive(Debug)]
pub struct Destroyer {
    store: Store,
    operator: Operator,
    run_id: String,
    plan: Plan,
    acquired: Acquired,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
    removes_redis: Option<String>,
}

/// The audit records a destroy appends to `sett:audit`: `phase: "intent"` before anything is
/// deleted, `phase: "complete"` after the keys and the registry entry are gone. Both carry the
/// same `run_id`; an intent without a completion is a destroy that stopped part way.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub event: &'static str,
    pub phase: &'static str,
    pub ts: i64,
    pub operator: String,
    pub host: String,
    pub instance: String,
    /// Intent: the counts taken before the destroy, when it counted first (a confirmed
    /// destroy, which showed them), else null. Completion: the keys deleted, per family.
    pub counts: Option<FamilyCounts>,
    pub total_keys: Option<u64>,
    pub registered: bool,
    /// The backup file (absolute path), if one was written.
    pub backup: Option<String>,
    pub run_id: String,
    /// The ledger head (`<seq>:<hash>`) of the data being destroyed (an anchor: an export
    /// taken before can still be verified against it with `sett verify --file --head`).
    pub ledger_head: Option<String>,
    /// The workspace's own Redis that goes with this instance (`runtime: docker`: "container
    /// sett-redis-… and volume …", with every key in it — this audit stream included, so the
    /// intent record logged on stderr is what remains of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removes_redis: Option<String>,
    /// Completion only: the intent record's id in `sett:audit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_id: Option<String>,
    /// Completion only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_entry_removed: Option<bool>,
}

/// What was deleted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub instance: String,
    /// Keys deleted per family (the lock excluded).
    pub counts: FamilyCounts,
    pub registry_entry_removed: bool,
    pub audit_id: String,
    pub backup: Option<String>,
    /// See [`AuditRecord::removes_redis`]; the caller removes it after the destroy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removes_redis: Option<String>,
}

impl Report {
    pub fn count(&self, family: &str) -> u64 {
        self.counts.get(family).copied().unwrap_or(0)
    }
    pub fn metadata_keys(&self) -> u64 {
        self.counts.values().sum::<u64>() - self.count("artifact") - self.count("claim") - self.count("thread")
    }
}

impl Destroyer {
    /// Takes the instance lock for a destroy and surveys what will be deleted.
    ///
    /// Refuses with [`DestroyError::Running`] while the orchestrator holds the lock,
    /// [`DestroyError::InProgress`] while another live destroy holds it, and
    /// [`DestroyError::NotFound`] when there is nothing to destroy (the lock is released again).
    /// A destroy lock left by a dead process on this host is taken over at once; one from
    /// another host is taken over when its TTL lapses (the key expires and the acquisition
    /// succeeds), so an interrupted destroy can always be run again.
    pub async fn begin(store: &Store, operator: Operator) -> Result<Self> {
        Self::start(store, operator, true).await
    }

    /// Like [`Destroyer::begin`], without counting first (`--force`: nobody reads the counts
    /// before the deletion, which then counts as it deletes, in the one pass). `plan()` has no
    /// counts; the [`Report`] and the completion audit record have them.
    pub async fn begin_uncounted(store: &Store, operator: Operator) -> Result<Self> {
        Self::start(store, operator, false).await
    }

    async fn start(store: &Store, operator: Operator, count: bool) -> Result<Self> {
        let run_id = format!("destroy-{}", uuid_like());
        let holder = LockHolder {
            run_id: run_id.clone(),
            host: operator.host.clone(),
            pid: operator.pid,
            started_at: now_ms(),
            purpose: LockPurpose::Destroy,
        };
        let ttl = DESTROY_LOCK_TTL.as_millis() as u64;
        let instance = store.instance().to_string();
        let mut acquired = Acquired::Fresh;
        match store.acquire_lock(&holder, ttl).await? {
            Ok(()) => {}
            Err(current) if current.purpose == LockPurpose::Run => {
                return Err(DestroyError::Running { instance, holder: current });
            }
            Err(current) => {
                let dead_here = current.host == operator.host && current.pid != operator.pid && !pid_alive(current.pid);
                if !dead_here {
                    let ttl_ms = store.lock_ttl_ms().await?.unwrap_or(0).max(0) as u64;
                    return Err(DestroyError::InProgress { instance, holder: current, ttl_ms });
                }
                // Compare-and-delete on the dead holder's run id, then acquire normally: if
                // someone else got in between, they win and we report them.
                store.release_lock(&current.run_id).await?;
                match store.acquire_lock(&holder, ttl).await? {
                    Ok(()) => {
                        tracing::warn!(destroyed_instance = %instance, previous_run_id = %current.run_id, previous_pid = current.pid,
                            "took over the destroy lock of a destroy that died on this host");
                        acquired = Acquired::TookOver(current);
                    }
                    Err(other) if other.purpose == LockPurpose::Run => {
                        return Err(DestroyError::Running { instance, holder: other });
                    }
                    Err(other) => {
                        let ttl_ms = store.lock_ttl_ms().await?.unwrap_or(0).max(0) as u64;
                        return Err(DestroyError::InProgress { instance, holder: other, ttl_ms });
                    }
                }
            }
        }
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(store.clone(), run_id.clone(), lost_tx));
        let mut d = Self {
            store: store.clone(),
            operator,
            run_id,
            plan: Plan::default(),
            acquired,
            lost,
            renewer,
            removes_redis: None,
        };
        let surveyed = if count {
            survey(store).await.map(|p| {
                let exists = p.exists();
                (p, exists)
            })
        } else {
            glance(store).await
        };
        match surveyed {
            Ok((plan, true)) => {
                d.plan = plan;
                Ok(d)
            }
            Ok(_) => {
                d.abort().await;
                Err(DestroyError::NotFound { instance: store.instance().to_string() })
            }
            Err(e) => {
                d.abort().await;
                Err(e)
            }
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Records in the audit and the report that the Redis holding the instance goes too
    /// (`what`: which container and volume); the caller removes it once the destroy succeeded.
    pub fn removes_redis(&mut self, what: impl Into<String>) {
        self.removes_redis = Some(what.into());
    }

    pub fn acquired(&self) -> &Acquired {
        &self.acquired
    }

    /// Writes a full export of the instance to `path` (one JSON `Dump` per line, the format of
    /// `sett export`; the destroy lock itself is left out). Written to a temporary file, synced,
    /// then renamed, so `path` is either complete or absent. Returns the number of keys.
    pub async fn backup(&self, path: &Path) -> Result<u64> {
        let err = |source| DestroyError::Backup { path: path.to_path_buf(), source };
        let tmp =
            path.with_extension(format!("{}.partial", path.extension().and_then(|e| e.to_str()).unwrap_or("jsonl")));
        let file = std::fs::File::create(&tmp).map_err(err)?;
        let mut out = std::io::BufWriter::new(file);
        let mut written = 0u64;
        let dumped = self
            .store
            .export(|d| {
                if RelativeKey::parse(&d.key) == RelativeKey::Lock {
                    return Ok(());
                }
                written += 1;
                crate::transfer::write_line(&mut out, &d).map_err(err)
            })
            .await;
        if let Err(e @ DestroyError::Backup { .. }) = dumped {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        dumped?;
        let file = out.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        self.check_lock()?;
        Ok(written)
    }

    /// Resolves when the background renewal finds the lock no longer ours.
    pub async fn lock_lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|l| *l).await;
    }

    fn check_lock(&self) -> Result<()> {
        if *self.lost.borrow() {
            return Err(DestroyError::LockLost { instance: self.store.instance().to_string() });
        }
        Ok(())
    }

    /// Appends the audit record (and logs it as a JSON line), deletes every key of the instance,
    /// removes its registry entry and releases the lock. `backup` is the file written by
    /// [`Destroyer::backup`], recorded in the audit. `progress` gets the running number of keys
    /// deleted (out of `plan().total_keys()`).
    pub async fn execute(self, backup: Option<&Path>, progress: impl FnMut(u64)) -> Result<Report> {
        let result = self.execute_inner(backup, progress).await;
        self.finish().await;
        result
    }

    async fn execute_inner(&self, backup: Option<&Path>, progress: impl FnMut(u64)) -> Result<Report> {
        self.check_lock()?;
        let instance = self.store.instance().to_string();
        let backup = backup.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string());
        let before = self.plan.counts_before();
        let record = AuditRecord {
            event: "instance_destroy",
            phase: "intent",
            ts: now_ms(),
            operator: self.operator.name.clone(),
            host: self.operator.host.clone(),
            instance: instance.clone(),
            counts: before.cloned(),
            total_keys: before.map(|c| c.values().sum()),
            registered: self.plan.registered,
            backup: backup.clone(),
            run_id: self.run_id.clone(),
            ledger_head: self.store.ledger_head().await?.map(|h| h.to_string()),
            removes_redis: self.removes_redis.clone(),
            intent_id: None,
            registry_entry_removed: None,
        };
        let json = serde_json::to_value(&record).expect("serializable");
        let audit_id = self.store.redis().append_audit(&json).await?;
        tracing::info!(target: "sett::audit", audit_id = %audit_id, audit = %json, "destroying instance {instance}");

        let counts = {
            let purge = self.store.purge_instance_keys(progress);
            tokio::pin!(purge);
            let mut lost = self.lost.clone();
            tokio::select! {
                r = &mut purge => r?,
                Ok(_) = lost.wait_for(|l| *l) => return Err(DestroyError::LockLost { instance }),
            }
        };
        self.check_lock()?;
        let registry_entry_removed = self.store.redis().remove_instance_record(self.store.instance()).await?;
        let done = AuditRecord {
            phase: "complete",
            ts: now_ms(),
            total_keys: Some(counts.values().sum()),
            counts: Some(counts.clone()),
            intent_id: Some(audit_id.clone()),
            registry_entry_removed: Some(registry_entry_removed),
            ..record
        };
        let json = serde_json::to_value(&done).expect("serializable");
        let completion_id = self.store.redis().append_audit(&json).await?;
        // Debug only: the intent record logged above is the one that matters, and on a terminal
        // an info line here would land in the middle of the progress bar.
        tracing::debug!(target: "sett::audit", audit_id = %completion_id, audit = %json, "instance {instance} destroyed");
        Ok(Report {
            instance,
            counts,
            registry_entry_removed,
            audit_id,
            backup,
            removes_redis: self.removes_redis.clone(),
        })
    }

    /// Releases the lock without deleting anything (confirmation refused, backup failed, …).
    pub async fn abort(self) {
        self.finish().await;
    }

    async fn finish(&self) {
        self.renewer.abort();
        if let Err(e) = self.store.release_lock(&self.run_id).await {
            // The lock lapses by itself within DESTROY_LOCK_TTL.
            tracing::warn!(destroyed_instance = %self.store.instance(), error = %e, "could not release the destroy lock; it expires on its own");
        }
    }
}

async fn renew(store: Store, run_id: String, lost: watch::Sender<bool>) {
    let ttl = DESTROY_LOCK_TTL.as_millis() as u64;
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.renew_lock(&run_id, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = lost.send(true);
                return;
            }
            // A transient error: try again next tick; the TTL leaves two more attempts.
            Err(e) => tracing::warn!(error = %e, "destroy lock renewal failed; retrying"),
        }
    }
}

/// A unique enough id for one destroy run (time + pid + a counter), without a uuid dependency.
fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{:x}-{:x}-{:x}", now_ms(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
