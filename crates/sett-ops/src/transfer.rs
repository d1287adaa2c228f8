//! `sett export` / `sett import`: an instance as JSON lines, one `sett_store::Dump` per key in
//! sorted key order, and back. The round trip is exact (same keys, same values).

use std::io::{BufRead, Write};

use sett_store::{Dump, RelativeKey, Store, StoreError};

/// What can go wrong moving an instance in or out.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: not an export record ({reason}); is this the output of 'sett export'?")]
    Parse { line: usize, reason: String },
    #[error(
        "instance '{instance}' already has {keys} keys: import into an empty instance (pick another --name, or 'sett destroy --name {instance}' first), or pass --force to replace the keys the export contains"
    )]
    NotEmpty { instance: String, keys: u64 },
    #[error("instance '{instance}' is running (its lock is held): run 'sett down --name {instance}' first")]
    Running { instance: String },
}

/// Writes every key of `store` to `out` as JSON lines; returns the number of keys.
pub async fn export_jsonl(store: &Store, out: &mut impl Write) -> Result<u64, TransferError> {
    let n = store.export(|d| write_line(&mut *out, &d).map_err(TransferError::Io)).await?;
    out.flush()?;
    Ok(n)
}

/// Writes `d` as one JSON line (the format of `sett export`).
pub(crate) fn write_line(out: &mut impl Write, d: &Dump) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, d)?;
    out.write_all(b"\n")
}

/// Calls `each` with every record of an export, one line at a time (blank lines are skipped);
/// a malformed line names its number. Memory holds one line whatever the size of the export.
pub fn for_each_dump(
    input: impl BufRead,
    mut each: impl FnMut(Dump) -> Result<(), TransferError>,
) -> Result<u64, TransferError> {
    let mut n = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let d: Dump =
            serde_json::from_str(&line).map_err(|e| TransferError::Parse { line: i + 1, reason: e.to_string() })?;
        each(d)?;
        n += 1;
    }
    Ok(n)
}

/// Reads export lines (blank lines are skipped); a malformed line names its number.
pub fn read_dumps(input: impl BufRead) -> Result<Vec<Dump>, TransferError> {
    let mut out = Vec::new();
    for_each_dump(input, |d| {
        out.push(d);
        Ok(())
    })?;
    Ok(out)
}

/// Checks that every line of an export is a record, without keeping any: the pass before an
/// import writes anything, so a bad line never leaves half an instance.
pub fn check_dumps(input: impl BufRead) -> Result<u64, TransferError> {
    for_each_dump(input, |_| Ok(()))
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub restored: u64,
    /// Keys deliberately not restored (the lock: it belongs to the run that was exported).
    pub skipped: Vec<String>,
}

/// Records restored per pipelined round trip.
const IMPORT_BATCH: usize = 500;
/// Items (stream entries, members, fields) restored per pipelined round trip.
const IMPORT_ITEMS: usize = 2_000;

/// Restores the export read from `input` into `store`, [`IMPORT_BATCH`] records per round trip,
/// holding one batch in memory at a time. Refused while the instance runs, and when it already
/// has keys unless `force`. Check the input with [`check_dumps`] first: a malformed line found
/// here stops the import part way.
pub async fn import_stream(store: &Store, input: impl BufRead, force: bool) -> Result<ImportReport, TransferError> {
    let instance = store.instance().to_string();
    if store.lock_holder().await?.is_some() {
        return Err(TransferError::Running { instance });
    }
    if !force {
        let keys: u64 = store.count_instance_keys().await?.values().sum();
        if keys > 0 {
            return Err(TransferError::NotEmpty { instance, keys });
        }
    }
    let mut report = ImportReport { restored: 0, skipped: Vec::new() };
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut last_key: Option<String> = None;
    let mut weight = 0usize;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let d: Dump =
            serde_json::from_str(&line).map_err(|e| TransferError::Parse { line: i + 1, reason: e.to_string() })?;
        if RelativeKey::parse(&d.key) == RelativeKey::Lock {
            report.skipped.push(d.key.clone());
            continue;
        }
        // A key exported in several records (a large sorted set, list or stream) counts once.
        if last_key.as_deref() != Some(d.key.as_str()) {
            report.restored += 1;
            last_key = Some(d.key.clone());
        }
        // A chunk of a large stream or sorted set is up to 1,000 commands on its own: the batch
        // is bounded by the items it writes, not only by records, so one pipelined round trip
        // stays well inside the command timeout.
        weight += 1 + d.value.items();
        batch.push(d);
        if batch.len() >= IMPORT_BATCH || weight >= IMPORT_ITEMS {
            store.restore_batch(&batch).await?;
            batch.clear();
            weight = 0;
        }
    }
    store.restore_batch(&batch).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_names_bad_ones() {
        let text = "{\"key\":\"lock\",\"type\":\"string\",\"ttl_ms\":5,\"value\":\"x\"}\n\n{\"key\":\"a\",\"type\":\"hash\",\"ttl_ms\":null,\"value\":{}}\n";
        let d = read_dumps(text.as_bytes()).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].ttl_ms, Some(5));
        let err = read_dumps("{\"key\":1}\nnope\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
