//! The archive segment format: zstd-compressed JSON lines. The first line is a
//! [`SegmentHeader`] (what the segment holds, so the file explains itself to a data tool); each
//! further line is one [`SegmentLine`]: a record of an archived workflow, tagged with the
//! workflow's goal, or one event of the stream, exactly as stored. The segment's SHA-256 (over
//! the compressed bytes) is its [`Manifest`]'s, recorded in Redis once the segment was read back.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use sett_store::ArchivedRecord;

/// The header's `format`.
pub const FORMAT: &str = "sett-archive-v1";
/// zstd level: 1, zstd's fastest regular level. Compressing was a sixth of an archiving pass's
/// CPU at level 3 (zstd's default), and a pass runs beside the engine; the segments come out a
/// little larger (docs/benchmarks.md). Readers decode any level.
const LEVEL: i32 = 1;

/// The first line of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub format: String,
    pub instance: String,
    pub segment: String,
    pub created_ms: i64,
    /// The goals of the workflows whose records it holds.
    pub workflows: Vec<String>,
    /// The events it holds (`seq` range); `None` when it holds none.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// One record line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentLine {
    /// The goal of the workflow the record belongs to (absent for events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(flatten)]
    pub record: ArchivedRecord,
}

/// What Redis records about a segment once it was written and read back (`archive:segments`).
///
/// Redis keeps the number of workflows and the range of their goals, not the goals themselves:
/// the list is in the segment's header, and one list per segment in Redis would grow with every
/// workflow ever archived (about 38 bytes each), which is what archiving is there to stop. Goal
/// ids are UUID v7, ordered by creation, so a segment's range is narrow and a lookup by goal
/// reads few segments. Manifests recorded with the list (before this change) still read: the
/// count and range are derived from it ([`Manifest::recorded`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub segment: String,
    /// SHA-256 of the stored (compressed) bytes, lowercase hex.
    pub sha256: String,
    pub bytes: u64,
    pub created_ms: i64,
    /// The goals, while a pass has the segment in hand (in the pending plan); empty in what
    /// `archive:segments` records from now on (see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
    /// How many workflows the segment holds.
    #[serde(default)]
    pub workflow_count: u64,
    /// The smallest and the largest goal id (as strings) of those workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_goal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_goal: Option<String>,
    pub records: u64,
    pub events: u64,
    /// The events' range and chain links: the hash the first links to (`prev`), the last's `hash`.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub prev: Option<String>,
    pub last_hash: Option<String>,
}

impl Manifest {
    /// Sets the count and goal range from `workflows` (a pass's plan has the list in hand).
    #[must_use]
    pub fn with_goal_range(mut self) -> Self {
        self.workflow_count = self.workflows.len() as u64;
        self.first_goal = self.workflows.iter().min().cloned();
        self.last_goal = self.workflows.iter().max().cloned();
        self
    }

    /// The form `archive:segments` records: without the goal list.
    #[must_use]
    pub fn recorded(&self) -> Self {
        let mut m = self.clone();
        if !m.workflows.is_empty() {
            m = m.with_goal_range();
        }
        m.workflows = Vec::new();
        m
    }

    /// Whether the segment may hold the workflow of `goal`: it names it (a manifest with its
    /// list), or the goal is within its range (then the header says for sure).
    pub fn may_hold(&self, goal: &str) -> bool {
        if !self.workflows.is_empty() {
            return self.workflows.iter().any(|g| g == goal);
        }
        match (&self.first_goal, &self.last_goal) {
            (Some(first), Some(last)) => first.as_str() <= goal && goal <= last.as_str(),
            _ => false,
        }
    }

    /// Whether the segment holds any workflow's records (not only events).
    pub fn holds_workflows(&self) -> bool {
        self.workflow_count > 0 || !self.workflows.is_empty()
    }
}

/// A decoded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub header: SegmentHeader,
    pub lines: Vec<SegmentLine>,
}

impl Segment {
    /// Every workflow's records by goal, each in the order they were archived, in one walk
    /// over the lines (events, which belong to no workflow, are left out).
    pub fn into_workflow_records(self) -> std::collections::HashMap<String, Vec<ArchivedRecord>> {
        let mut by: std::collections::HashMap<String, Vec<ArchivedRecord>> = std::collections::HashMap::new();
        for l in self.lines {
            if let Some(w) = l.workflow {
                by.entry(w).or_default().push(l.record);
            }
        }
        by
    }

    /// The records of one workflow, in the order they were archived.
    pub fn workflow_records(&self, goal: &str) -> Vec<ArchivedRecord> {
        self.lines.iter().filter(|l| l.workflow.as_deref() == Some(goal)).map(|l| l.record.clone()).collect()
    }
}

/// Compresses a segment.
pub fn encode(header: &SegmentHeader, lines: &[SegmentLine]) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), LEVEL)?;
    serde_json::to_writer(&mut enc, header)?;
    enc.write_all(b"\n")?;
    for l in lines {
        serde_json::to_writer(&mut enc, l)?;
        enc.write_all(b"\n")?;
    }
    enc.finish()
}

/// Decompresses and parses a segment; an error says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<Segment, String> {
    let dec = zstd::stream::read::Decoder::new(bytes).map_err(|e| format!("not zstd: {e}"))?;
    let mut lines = std::io::BufReader::new(dec).lines();
    let first = lines.next().ok_or("empty")?.map_err(|e| format!("cannot decompress: {e}"))?;
    let header: SegmentHeader = serde_json::from_str(&first).map_err(|e| format!("line 1 is not a header: {e}"))?;
    if header.format != FORMAT {
        return Err(format!("format {:?}, expected {FORMAT:?}", header.format));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| format!("cannot decompress: {e}"))?;
        let l: SegmentLine = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 2))?;
        out.push(l);
    }
    Ok(Segment { header, lines: out })
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_round_trips_and_a_changed_byte_shows() {
        let header = SegmentHeader {
            format: FORMAT.into(),
            instance: "i".into(),
            segment: "seg-00000001".into(),
            created_ms: 5,
            workflows: vec!["g".into()],
            first_seq: Some(1),
            last_seq: Some(1),
        };
        let lines = vec![
            SegmentLine {
                workflow: Some("g".into()),
                record: ArchivedRecord::Field { key: "k".into(), field: "f".into(), value: "v".into() },
            },
            SegmentLine {
                workflow: None,
                record: ArchivedRecord::Event { id: "1-0".into(), fields: [("seq".into(), "1".into())].into() },
            },
        ];
        let bytes = encode(&header, &lines).unwrap();
        let seg = decode(&bytes).unwrap();
        assert_eq!(seg.header, header);
        assert_eq!(seg.lines, lines);
        assert_eq!(seg.workflow_records("g").len(), 1);
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert_ne!(sha256_hex(&bad), sha256_hex(&bytes));
    }

    fn manifest(workflows: &[&str]) -> Manifest {
        Manifest {
            segment: "seg-00000001".into(),
            sha256: "ab".into(),
            bytes: 10,
            created_ms: 5,
            workflows: workflows.iter().map(|w| (*w).to_owned()).collect(),
            workflow_count: 0,
            first_goal: None,
            last_goal: None,
            records: 3,
            events: 2,
            first_seq: Some(1),
            last_seq: Some(2),
            first_id: Some("1-0".into()),
            last_id: Some("2-0".into()),
            prev: None,
            last_hash: Some("h".into()),
        }
    }

    #[test]
    fn the_recorded_manifest_keeps_the_count_and_goal_range_not_the_goals() {
        let goals = ["0193a5b0-0000-7000-8000-000000000002", "0193a5b0-0000-7000-8000-000000000001"];
        let recorded = manifest(&goals).with_goal_range().recorded();
        let json = serde_json::to_string(&recorded).unwrap();
        assert!(!json.contains("\"workflows\""), "{json}");
        assert_eq!(recorded.workflow_count, 2);
        assert_eq!(recorded.first_goal.as_deref(), Some(goals[1]));
        assert_eq!(recorded.last_goal.as_deref(), Some(goals[0]));
        assert!(recorded.holds_workflows());
        assert!(recorded.may_hold(goals[0]) && recorded.may_hold(goals[1]));
        // Within the range: a candidate (the header decides); outside it: never.
        assert!(recorded.may_hold("0193a5b0-0000-7000-8000-000000000001x"));
        assert!(!recorded.may_hold("0193a5b0-0000-7000-8000-000000000000"));
        assert!(!recorded.may_hold("0193a5b0-0000-7000-8000-000000000003"));
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, recorded);
    }

    #[test]
    fn a_manifest_recorded_with_its_goal_list_still_reads() {
        // As `archive:segments` recorded manifests before the count and range.
        let old = r#"{"segment":"seg-00000001","sha256":"ab","bytes":10,"created_ms":5,"workflows":["g1","g2"],"records":3,"events":2,"first_seq":1,"last_seq":2,"first_id":"1-0","last_id":"2-0","prev":null,"last_hash":"h"}"#;
        let m: Manifest = serde_json::from_str(old).unwrap();
        assert!(m.holds_workflows());
        assert!(m.may_hold("g1") && !m.may_hold("g15"));
        let m = m.with_goal_range();
        assert_eq!((m.workflow_count, m.first_goal.as_deref(), m.last_goal.as_deref()), (2, Some("g1"), Some("g2")));
        let events_only = manifest(&[]).recorded();
        assert!(!events_only.holds_workflows() && !events_only.may_hold("g1"));
    }
}
