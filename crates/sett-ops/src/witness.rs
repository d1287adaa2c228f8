//! The witness file (`ledger.witness_file`, default `.sett/ledger/witness.jsonl`): every ledger
//! anchor — periodic, `sett down`, `sett export` — and every deliberate replacement of a ledger
//! — `sett destroy`, `sett import` — is also appended there as a JSON line
//! (`sett_core::witness::WitnessRecord`), outside Redis, so a Redis that lost its newest events
//! cannot take the proof with them (`sett verify --witness`, docs/security.md "What a witness
//! proves"). Append-only: a line is written whole with one `write` on a file opened for
//! appending, then synced; a torn last line (a crash mid-write) is skipped when read.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use sett_core::ledger::Head;
use sett_core::witness::{WitnessRecord, Witnesses};
use sett_store::{Store, StoreError, now_ms};

/// How long an anchor waits for a replica to hold the head it witnesses (`durability:
/// replicated`); a replica acknowledges at least every second.
const CONFIRM_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error(
        "cannot write the witness file {path}: {source} (check that the directory is writable, or set ledger.witness_file)"
    )]
    Write { path: String, source: std::io::Error },
    #[error("cannot read the witness file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} line {line}: not a witness record ({problem}); is this a witness file (ledger.witness_file)?")]
    Format { path: String, line: usize, problem: String },
    #[error(
        "head {0} not witnessed: no synced replica confirmed it within {CONFIRM_WITHIN:?} (durability: replicated; check 'sett status' for the replication state)"
    )]
    Unconfirmed(Head),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The record of `head` of `instance`, witnessed now for `reason`.
pub fn record(instance: &str, head: &Head, reason: &str) -> WitnessRecord {
    WitnessRecord {
        instance: instance.to_owned(),
        seq: head.seq,
        hash: head.hash.clone(),
        at: sett_store::time::rfc3339_ms(now_ms()),
        reason: reason.to_owned(),
    }
}

/// Appends `record` to the witness file at `path` (made with its directory if missing) and
/// syncs it to disk.
pub fn append(path: &Path, record: &WitnessRecord) -> Result<(), WitnessError> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(record).expect("serializable");
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(&line)?;
        f.sync_data()
    };
    write().map_err(|source| WitnessError::Write { path: path.display().to_string(), source })
}

/// Called with each anchor witnessed (the orchestrator daemon sends the `ledger_anchor`
/// notification from here).
pub type OnAnchor = std::sync::Arc<dyn Fn(&WitnessRecord) + Send + Sync>;

/// Witnesses `head` of `store`'s instance (read by the caller just before) for `reason`: appends
/// it to the witness file at `path` and tells `on_anchor` (a webhook: a second witness, told even
/// when the file cannot be written). Under `durability: replicated` only once a synced replica
/// holds the head: one the primary alone held may be lost by a normal failover, and its witness
/// would then be a false alarm.
pub async fn witness_head(
    store: &Store,
    head: &Head,
    reason: &str,
    path: &Path,
    on_anchor: Option<&OnAnchor>,
) -> Result<WitnessRecord, WitnessError> {
    if !store.replica_caught_up(CONFIRM_WITHIN).await? {
        return Err(WitnessError::Unconfirmed(head.clone()));
    }
    let r = record(store.instance().as_str(), head, reason);
    let written = append(path, &r);
    if let Some(f) = on_anchor {
        f(&r);
    }
    written.map(|()| r)
}

/// Every record of the witness file at `path`, with its line number. A last line without its
/// newline that does not parse is a write a crash cut short: skipped. Any other bad line is an
/// error naming it.
pub fn read(path: &Path) -> Result<Vec<(usize, WitnessRecord)>, WitnessError> {
    let name = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| WitnessError::Read { path: name(), source })?;
    let mut reader = std::io::BufReader::new(file);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut n = 0;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|source| WitnessError::Read { path: name(), source })?;
        if read == 0 {
            return Ok(out);
        }
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<WitnessRecord>(line.trim_end()) {
            Ok(r) => out.push((n, r)),
            Err(_) if !line.ends_with('\n') => return Ok(out),
            Err(e) => return Err(WitnessError::Format { path: name(), line: n, problem: e.to_string() }),
        }
    }
}

/// The heads the witness file at `path` saw of `instance`'s current ledger.
pub fn witnesses_of(path: &Path, instance: &str) -> Result<Witnesses, WitnessError> {
    Ok(Witnesses::of_instance(instance, read(path)?))
}

/// The one instance a witness file names, `None` when it names none or several.
pub fn only_instance(path: &Path) -> Result<Option<String>, WitnessError> {
    let mut names: Vec<String> = read(path)?.into_iter().map(|(_, r)| r.instance).collect();
    names.sort();
    names.dedup();
    Ok(if names.len() == 1 { names.pop() } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_and_read_back_a_torn_last_line_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/witness.jsonl");
        let h = Head { seq: 3, hash: "ab".into() };
        append(&path, &record("one", &h, "down")).unwrap();
        append(&path, &record("two", &h, "periodic")).unwrap();
        let all = read(&path).unwrap();
        assert_eq!(all.iter().map(|(n, r)| (*n, r.instance.as_str())).collect::<Vec<_>>(), [(1, "one"), (2, "two")]);
        assert_eq!(only_instance(&path).unwrap(), None);
        // A crash in the middle of a write leaves a partial last line.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"instance":"one","se"#).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        assert_eq!(witnesses_of(&path, "one").unwrap().count(), 1);
        // A bad line anywhere else is named.
        std::fs::write(&path, "{\"instance\":\"one\"}\nnot json\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("not a witness record"), "{e}");
    }
}
