//! `sett verify --file`: an export file (`sett export` JSON lines, sorted by key) as a
//! [`LedgerSource`], streamed with flat memory whatever the file's size.
//!
//! A first sequential pass checks that every line is an export record and that the keys come in
//! order, keeps the small hashes the walk needs whole (answers, cancellations, actions, the head),
//! and notes where each run of records starts: one entry per [`BLOCK`] artifact or claim records,
//! one per chunk of the event stream. A lookup then reads only the block holding its key, and
//! the last [`CACHED_BLOCKS`] blocks read stay decoded: artifact, claim and stream ids are all
//! time-ordered (UUID v7, stream ids), so the chain walk asks for them nearly in file order and
//! reads the file about twice in all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;

use sett_core::ledger::Head;
use sett_store::{Dump, DumpValue, RelativeKey, SourceState};

use crate::verify::{LedgerSource, VerifyError};

type Fields = HashMap<String, String>;
/// A decoded block: (key without its prefix, or stream id; the record's fields), in file order.
type Records = Arc<Vec<(String, Fields)>>;

/// Artifact or claim records per block of the sparse index.
const BLOCK: usize = 256;
/// Decoded blocks kept per section.
const CACHED_BLOCKS: usize = 8;

/// Where a block starts and the first key (record key without its prefix, or stream id) in it.
#[derive(Debug)]
struct Block {
    offset: u64,
    line: usize,
    lines: usize,
    first: String,
}

/// A run of consecutive records: the artifacts, the claims, or the event stream's chunks.
#[derive(Debug, Default)]
struct Section {
    blocks: Vec<Block>,
    records: u64,
    cache: VecDeque<(usize, Records)>,
}

impl Section {
    /// Adds a record line; `per_block` lines share one index entry.
    fn note(&mut self, offset: u64, line: usize, first: impl FnOnce() -> String, per_block: usize) {
        match self.blocks.last_mut() {
            Some(b) if b.lines < per_block => b.lines += 1,
            _ => self.blocks.push(Block { offset, line, lines: 1, first: first() }),
        }
        self.records += 1;
    }

    /// The block that would hold `key` (`before(a, b)`: whether key `a` sorts before `b`).
    fn locate(&self, key: &str, before: impl Fn(&str, &str) -> bool) -> Option<usize> {
        self.blocks.partition_point(|b| !before(key, &b.first)).checked_sub(1)
    }

    /// Block `i` decoded, from the cache or the file.
    fn block<R: Read + Seek>(
        &mut self,
        file: &mut BufReader<R>,
        i: usize,
        hashes: bool,
    ) -> Result<Records, VerifyError> {
        if let Some(pos) = self.cache.iter().position(|(j, _)| *j == i) {
            let hit = self.cache.remove(pos).expect("present");
            let block = hit.1.clone();
            self.cache.push_front(hit);
            return Ok(block);
        }
        let b = &self.blocks[i];
        file.seek(SeekFrom::Start(b.offset))?;
        let mut out = Vec::new();
        let mut line = String::new();
        for n in b.line..b.line + b.lines {
            line.clear();
            file.read_line(&mut line)?;
            let d = parse(&line, n)?;
            if hashes {
                let key = RelativeKey::within_family(&d.key).to_owned();
                out.push((key, hash_fields(&d.value).unwrap_or_default()));
            } else {
                out.extend(stream_entries(&d, n)?);
            }
        }
        let block = Arc::new(out);
        self.cache.push_front((i, block.clone()));
        self.cache.truncate(CACHED_BLOCKS);
        Ok(block)
    }

    /// The hash record `key` (its name within its family: the id), if the file has it.
    fn find<R: Read + Seek>(&mut self, file: &mut BufReader<R>, key: &str) -> Result<Option<Fields>, VerifyError> {
        let Some(i) = self.locate(key, |a, b| a < b) else { return Ok(None) };
        let block = self.block(file, i, true)?;
        Ok(block.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|j| block[j].1.clone()))
    }
}

fn parse(line: &str, n: usize) -> Result<Dump, VerifyError> {
    serde_json::from_str(line).map_err(|e| {
        VerifyError::File(format!("line {}: not an export record ({e}); is this the output of 'sett export'?", n + 1))
    })
}

/// The fields of a hash record; `None` for a key of another type.
fn hash_fields(v: &DumpValue) -> Option<Fields> {
    match v {
        DumpValue::Hash(m) => Some(m.iter().map(|(f, v)| (f.clone(), v.clone())).collect()),
        _ => None,
    }
}

fn stream_entries(d: &Dump, n: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
    let DumpValue::Stream(chunk) = &d.value else {
        return Err(VerifyError::File(format!("line {}: key '{}' is not a valid stream", n + 1, d.key)));
    };
    Ok(chunk
        .entries
        .iter()
        .map(|(id, f)| (id.clone(), f.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .collect())
}

/// Whether stream id `a` comes before `b` (ids that do not parse sort first).
fn stream_before(a: &str, b: &str) -> bool {
    sett_store::parse_stream_id(a) < sett_store::parse_stream_id(b)
}

/// One line of the claims index: where it is and how many claim ids it holds.
#[derive(Debug)]
struct IndexLine {
    offset: u64,
    line: usize,
    items: u64,
}

/// An export file opened for offline verification (see the module doc).
#[derive(Debug)]
pub struct ExportLedger<R: Read + Seek> {
    file: BufReader<R>,
    artifacts: Section,
    claims: Section,
    events: Section,
    claim_index: Vec<IndexLine>,
    /// The claims index line read last (its number and ids).
    claim_page: Option<(usize, Arc<Vec<String>>)>,
    /// Where the chain walk is: the last entry returned (its id, block and position).
    walk: Option<(String, usize, usize)>,
    answers: HashMap<String, String>,
    cancellations: HashMap<String, String>,
    actions: HashMap<String, String>,
    head: Option<Head>,
    archive: ExportedArchive,
}

/// What an export says of the instance's archive (its `archive:*` keys): the part of the chain
/// that is not in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportedArchive {
    /// `archive:segments`: segment name → JSON manifest.
    pub segments: BTreeMap<String, String>,
    /// The last archived event's stream id (`archive:head`).
    pub head_id: Option<String>,
    /// Where the archive is (`archive:state` `location`, JSON).
    pub location: Option<String>,
}

impl<R: Read + Seek> ExportLedger<R> {
    /// Reads through an export once. A line that is not an export record, or out of key order
    /// (the file was edited or concatenated), names its number.
    pub fn read(input: R) -> Result<Self, VerifyError> {
        let mut me = Self {
            file: BufReader::with_capacity(64 * 1024, input),
            artifacts: Section::default(),
            claims: Section::default(),
            events: Section::default(),
            claim_index: Vec::new(),
            claim_page: None,
            walk: None,
            answers: HashMap::new(),
            cancellations: HashMap::new(),
            actions: HashMap::new(),
            head: None,
            archive: ExportedArchive::default(),
        };
        me.file.rewind()?;
        let mut offset = 0u64;
        let mut line = String::new();
        let mut previous: Option<String> = None;
        for n in 0.. {
            line.clear();
            let len = me.file.read_line(&mut line)? as u64;
            if len == 0 {
                break;
            }
            let at = offset;
            offset += len;
            if line.trim().is_empty() {
                continue;
            }
            let d = parse(&line, n)?;
            if let Some(p) = &previous {
                // Chunks of one large key repeat it; anything else out of order was edited in.
                if d.key < *p || (d.key == *p && matches!(d.value, DumpValue::Hash(_))) {
                    return Err(VerifyError::File(format!(
                        "line {}: key '{}' comes after '{p}': 'sett export' writes every key once, in sorted order (the file was edited or is not an export)",
                        n + 1,
                        d.key
                    )));
                }
            }
            me.add(&d, at, n)?;
            previous = Some(d.key);
        }
        Ok(me)
    }

    fn add(&mut self, d: &Dump, offset: u64, n: usize) -> Result<(), VerifyError> {
        let bad = |what: &str| VerifyError::File(format!("line {}: key '{}' is not a valid {what}", n + 1, d.key));
        let hash = || hash_fields(&d.value).ok_or_else(|| bad("hash"));
        match RelativeKey::parse(&d.key) {
            RelativeKey::Artifact(id) => {
                hash()?;
                self.artifacts.note(offset, n, || id.to_owned(), BLOCK);
            }
            RelativeKey::Claim(id) => {
                hash()?;
                self.claims.note(offset, n, || id.to_owned(), BLOCK);
            }
            RelativeKey::Bids(_) => {
                let rest = RelativeKey::within_family(&d.key);
                self.claims.note(offset, n, || rest.to_owned(), BLOCK);
            }
            RelativeKey::Events => {
                let entries = stream_entries(d, n)?;
                // A line without entries (the groups alone) holds nothing to look up.
                if let Some((first, _)) = entries.first() {
                    self.events.note(offset, n, || first.clone(), 1);
                }
            }
            RelativeKey::QuestionAnswers => self.answers = hash()?,
            RelativeKey::CancelledWorkflows => self.cancellations = hash()?,
            RelativeKey::Actions => self.actions = hash()?,
            RelativeKey::ClaimsIndex => {
                let items = claim_index_ids(d).ok_or_else(|| bad("zset"))?.len() as u64;
                self.claim_index.push(IndexLine { offset, line: n, items });
            }
            RelativeKey::ArchiveSegments => self.archive.segments = hash()?.into_iter().collect(),
            RelativeKey::ArchiveHead => self.archive.head_id = hash()?.remove("id"),
            RelativeKey::ArchiveState => self.archive.location = hash()?.remove("location"),
            RelativeKey::Ledger => {
                let f = hash()?;
                // A non-canonical seq ("05") is kept unparseable so it shows as an edited head.
                let seq = f.get("seq").and_then(|s| s.parse::<u64>().ok().filter(|n| n.to_string() == *s));
                self.head = match (seq, f.get("hash")) {
                    (Some(seq), Some(h)) => Some(Head { seq, hash: h.clone() }),
                    (_, Some(h)) => Some(Head { seq: u64::MAX, hash: h.clone() }),
                    _ => None,
                };
            }
            RelativeKey::Lock | RelativeKey::Other(_) => {}
        }
        Ok(())
    }

    /// The instance's archive, when the export says it has one (its chain starts there).
    pub fn archive(&self) -> Option<&ExportedArchive> {
        (!self.archive.segments.is_empty()).then_some(&self.archive)
    }

    /// The ids of claims index line `i`.
    fn claim_index_line(&mut self, i: usize) -> Result<Arc<Vec<String>>, VerifyError> {
        if let Some((j, ids)) = &self.claim_page
            && *j == i
        {
            return Ok(ids.clone());
        }
        let l = &self.claim_index[i];
        let n = l.line;
        self.file.seek(SeekFrom::Start(l.offset))?;
        let mut line = String::new();
        self.file.read_line(&mut line)?;
        let d = parse(&line, n)?;
        let ids = Arc::new(
            claim_index_ids(&d)
                .ok_or_else(|| VerifyError::File(format!("line {}: key 'index:claims' is not a valid zset", n + 1)))?,
        );
        self.claim_page = Some((i, ids.clone()));
        Ok(ids)
    }

    /// The entry with stream id `id` and where it is (block, position).
    fn event(&mut self, id: &str) -> Result<Option<(usize, usize, Records)>, VerifyError> {
        let Some(b) = self.events.locate(id, stream_before) else { return Ok(None) };
        let block = self.events.block(&mut self.file, b, false)?;
        Ok(block.iter().position(|(e, _)| e == id).map(|p| (b, p, block)))
    }
}

impl<R: Read + Seek> ExportLedger<R> {
    /// Where the first entry with a stream id after `id` is (block, position), like `XRANGE (id`.
    fn first_after(&mut self, id: &str) -> Result<(usize, usize), VerifyError> {
        let Some(b) = self.events.locate(id, stream_before) else { return Ok((0, 0)) };
        let block = self.events.block(&mut self.file, b, false)?;
        let at = sett_store::parse_stream_id(id);
        Ok((b, block.iter().position(|(e, _)| sett_store::parse_stream_id(e) > at).unwrap_or(block.len())))
    }
}

/// The claim ids of an `index:claims` record, in the file's (index) order; `None` when the
/// record is not a sorted set.
fn claim_index_ids(d: &Dump) -> Option<Vec<String>> {
    match &d.value {
        DumpValue::Zset { members, .. } => Some(members.iter().map(|(m, _)| m.clone()).collect()),
        _ => None,
    }
}

impl<R: Read + Seek> LedgerSource for ExportLedger<R> {
    async fn events_after(&mut self, after: Option<&str>, count: usize) -> Result<Vec<(String, Fields)>, VerifyError> {
        // The walk goes on from where it was; any other start is looked up.
        let (mut b, mut p) = match (after, &self.walk) {
            (None, _) => (0, 0),
            (Some(a), Some((last, b, p))) if a == last => (*b, p + 1),
            (Some(a), _) => match self.event(a)? {
                Some((b, p, _)) => (b, p + 1),
                // Not in the file (e.g. trimmed behind the archive): the first entry after it.
                None => self.first_after(a)?,
            },
        };
        let mut out = Vec::with_capacity(count);
        while out.len() < count && b < self.events.blocks.len() {
            let block = self.events.block(&mut self.file, b, false)?;
            if p >= block.len() {
                b += 1;
                p = 0;
                continue;
            }
            let take = (count - out.len()).min(block.len() - p);
            out.extend(block[p..p + take].iter().cloned());
            p += take;
            self.walk = out.last().map(|(id, _)| (id.clone(), b, p - 1));
        }
        Ok(out)
    }
    async fn artifacts(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        ids.iter().map(|id| self.artifacts.find(&mut self.file, id)).collect()
    }
    async fn source_states(&mut self, ids: &[String]) -> Result<Vec<SourceState>, VerifyError> {
        Ok(self
            .artifacts(ids)
            .await?
            .into_iter()
            .map(|f| match f {
                None => SourceState::Missing,
                Some(f) => f.get("hash").map_or(SourceState::Unhashed, |h| SourceState::Hash(h.clone())),
            })
            .collect())
    }
    async fn answer_records(&mut self, question_ids: &[String]) -> Result<Vec<Option<String>>, VerifyError> {
        Ok(question_ids.iter().map(|q| self.answers.get(q).cloned()).collect())
    }
    async fn head(&mut self) -> Result<Option<Head>, VerifyError> {
        Ok(self.head.clone())
    }
    async fn claim_ids(&mut self, start: usize, count: usize) -> Result<Vec<String>, VerifyError> {
        let mut out = Vec::with_capacity(count);
        let mut skip = start as u64;
        for i in 0..self.claim_index.len() {
            let items = self.claim_index[i].items;
            if skip >= items {
                skip -= items;
                continue;
            }
            let ids = self.claim_index_line(i)?;
            out.extend(ids.iter().skip(skip as usize).take(count - out.len()).cloned());
            skip = 0;
            if out.len() == count {
                break;
            }
        }
        Ok(out)
    }
    async fn claims(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        ids.iter().map(|id| self.claims.find(&mut self.file, id)).collect()
    }
    async fn events_by_id(&mut self, ids: &[String]) -> Result<Vec<Option<Fields>>, VerifyError> {
        ids.iter().map(|id| Ok(self.event(id)?.map(|(_, p, block)| block[p].1.clone()))).collect()
    }
    async fn artifact_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.artifacts.records)
    }
    /// Only asked for when a count says an artifact was inserted: every id, block by block.
    async fn artifact_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        let mut out = Vec::new();
        for i in 0..self.artifacts.blocks.len() {
            out.extend(self.artifacts.block(&mut self.file, i, true)?.iter().map(|(k, _)| k.clone()));
        }
        Ok(out)
    }
    async fn answer_count(&mut self) -> Result<u64, VerifyError> {
        Ok(self.answers.len() as u64)
    }
    async fn answered_question_ids(&mut self) -> Result<Vec<String>, VerifyError> {
        Ok(self.answers.keys().cloned().collect())
    }
    async fn cancellation_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.cancellations.clone())
    }
    async fn action_records(&mut self) -> Result<HashMap<String, String>, VerifyError> {
        Ok(self.actions.clone())
    }
}
