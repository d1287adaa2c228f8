//! The tamper-evident ledger's canonical encodings (docs/architecture.md, "Ledger"): the
//! SHA-256 hash of an artifact (over its immutable fields and its sources' hashes, so a
//! workflow's provenance is a Merkle DAG), the content digest of an event, and the chain link
//! that binds each event to the one before it. Pure functions over the exact strings stored in
//! Redis, so a verifier needs nothing but the stored records.

use sha2::{Digest, Sha256};

/// The `prev` the first chained event links to (40 zeros: the width of a link hash).
pub const GENESIS: &str = "0000000000000000000000000000000000000000";

/// The `prev` of the first event of a chain written by the first ledger version (links were
/// SHA-256, 64 hex digits); still accepted by verify for instances chained then.
pub const GENESIS_V1: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain tag of a chain link (version 2: SHA-1 computed by the appending Lua script).
const LINK_TAG: &str = "sett-link-v2";

/// Domain tags: a hash of one kind of record can never be replayed as another's.
const ARTIFACT_TAG: &[u8] = b"sett-artifact-v1\n";
const EVENT_TAG: &[u8] = b"sett-event-v1\n";
const CLAIM_TAG: &[u8] = b"sett-claim-v1\n";

/// The claim hash field naming the id of the event its last write appended (set by the Lua
/// that writes the claim, after the event; not covered by the claim's hash).
pub const CLAIM_EVENT_FIELD: &str = "event";

/// The artifact hash fields covered by its hash, in encoding order. Every stored field of an
/// artifact is covered except `hash` itself.
pub const ARTIFACT_HASHED_FIELDS: &[&str] = &[
    "id",
    "logical_id",
    "version",
    "structural_type",
    "type",
    "payload",
    "source_artifacts",
    "produced_by_role",
    "claim_id",
    "created_at_ms",
    "summary",
    "answered_by",
    "timed_out",
    "usage",
    "forked_from",
];

/// The value a source without a hash (written before the ledger existed) contributes.
pub const UNHASHED_SOURCE: &str = "-";

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The 32 bytes of a 64-digit lowercase hex hash; `None` for anything else.
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let d = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = (d(pair[0])? << 4) | d(pair[1])?;
    }
    Some(out)
}

/// Whether `s` is a 64-digit lowercase hex hash.
pub fn is_hash(s: &str) -> bool {
    unhex(s).is_some()
}

fn item(h: &mut Sha256, name: &[u8], value: &[u8]) {
    h.update((name.len() as u64).to_be_bytes());
    h.update(name);
    h.update((value.len() as u64).to_be_bytes());
    h.update(value);
}

/// An artifact's hash: SHA-256 over the tag `sett-artifact-v1\n`, then, for each field of
/// [`ARTIFACT_HASHED_FIELDS`] present in the stored record (absent optional fields are left
/// out), `len(name) name len(value) value` with 8-byte big-endian lengths, then the item
/// `source_hashes` whose value is the sources' hashes (in `source_artifacts` order, `-` for a
/// source without one) joined by `,`. `fields` are the stored (name, value) strings; fields
/// not listed are ignored.
pub fn artifact_hash<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>, source_hashes: &[&str]) -> String {
    let fields: std::collections::HashMap<&str, &str> = fields.into_iter().collect();
    let mut h = Sha256::new();
    h.update(ARTIFACT_TAG);
    for name in ARTIFACT_HASHED_FIELDS {
        if let Some(v) = fields.get(name) {
            item(&mut h, name.as_bytes(), v.as_bytes());
        }
    }
    item(&mut h, b"source_hashes", source_hashes.join(",").as_bytes());
    hex(&h.finalize())
}

/// A claim record's hash: SHA-256 over the tag `sett-claim-v1\n` then every stored field but
/// [`CLAIM_EVENT_FIELD`], sorted by name (bytewise), encoded as in [`artifact_hash`].
pub fn claim_hash<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = fields.into_iter().filter(|(k, _)| *k != CLAIM_EVENT_FIELD).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    h.update(CLAIM_TAG);
    for (k, v) in sorted {
        item(&mut h, k.as_bytes(), v.as_bytes());
    }
    hex(&h.finalize())
}

/// An event's content digest: SHA-256 over the tag `sett-event-v1\n` then the items `kind`,
/// `ts`, `data` and, when the entry has one, `claim` (stored strings, encoded as in
/// [`artifact_hash`]). `claim` is `<claim id>:<revision>:<claim hash>`: the claim record this
/// event's write left behind. An empty `claim` is none: entries are written with an empty one
/// rather than without the field (every entry of the stream has the same fields, so Redis
/// stores their names once per node), and digest as the entries written without it did.
pub fn event_digest(kind: &str, ts: &str, data: &str, claim: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(EVENT_TAG);
    item(&mut h, b"kind", kind.as_bytes());
    item(&mut h, b"ts", ts.as_bytes());
    item(&mut h, b"data", data.as_bytes());
    if let Some(c) = claim.filter(|c| !c.is_empty()) {
        item(&mut h, b"claim", c.as_bytes());
    }
    hex(&h.finalize())
}

/// An event's `hash` (its chain link): SHA-1 over the ASCII text
/// `sett-link-v2\n<prev>\n<digest>\n<seq>` — `prev` (the previous event's `hash`, or
/// [`GENESIS`] for the first; stored in the entry only by versions before issue 29's) and the
/// content digest as lowercase hex, `seq` in decimal — computed by the Lua that appends the
/// event with Redis's native `redis.sha1hex`, so the link costs about a microsecond of the
/// single-threaded server (a SHA-256 written in Lua cost ~130 µs per event; docs/security.md
/// weighs the choice).
/// Links of the first ledger version (64 hex digits) are recomputed with [`chain_link_v1`]; a
/// v2 link may follow a v1 one. `None` when `prev` or `digest` is not a hash of either width.
pub fn chain_link(prev: &str, digest: &str, seq: u64) -> Option<String> {
    if !is_link_hash(prev) || !is_hash(digest) {
        return None;
    }
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("{LINK_TAG}\n{prev}\n{digest}\n{seq}").as_bytes());
    Some(h.digest().to_string())
}

/// A chain link of the first ledger version: SHA-256 over `prev` (32 bytes) ‖ content digest
/// (32 bytes) ‖ `seq` (8 bytes, big-endian).
pub fn chain_link_v1(prev: &str, digest: &str, seq: u64) -> Option<String> {
    let mut h = Sha256::new();
    h.update(unhex(prev)?);
    h.update(unhex(digest)?);
    h.update(seq.to_be_bytes());
    Some(hex(&h.finalize()))
}

/// Whether `s` is a chain link hash: 40 lowercase hex digits (v2) or 64 (v1).
pub fn is_link_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Recomputes the stored link `hash` of an event by the rule of its version (its width).
pub fn recompute_link(prev: &str, digest: &str, seq: u64, stored_hash: &str) -> Option<String> {
    if stored_hash.len() == 64 { chain_link_v1(prev, digest, seq) } else { chain_link(prev, digest, seq) }
}

/// A point of the chain: the `seq` of an event and its `hash`. Printed and parsed as
/// `<seq>:<hash>`; this is what an operator records elsewhere to detect a wholesale rewrite.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a ledger head: expected <seq>:<40 hex digits>, as printed by 'sett verify'");
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq = seq.parse().map_err(|_| bad())?;
        let hash = hash.to_ascii_lowercase();
        if !is_link_hash(&hash) {
            return Err(bad());
        }
        Ok(Self { seq, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 "abc" vector, through the same hex helper the ledger uses.
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(unhex(&hex(&[7u8; 32])), Some([7u8; 32]));
        assert_eq!(unhex("AB"), None);
    }

    #[test]
    fn artifact_hash_covers_every_field_and_the_sources() {
        const FIELDS: &[(&str, &str)] = &[("id", "a"), ("version", "1"), ("payload", "x")];
        fn get(m: &'static [(&'static str, &'static str)]) -> impl Iterator<Item = (&'static str, &'static str)> {
            m.iter().copied()
        }
        let base = artifact_hash(get(FIELDS), &[]);
        assert_ne!(base, artifact_hash(get(&[("id", "a"), ("version", "1"), ("payload", "y")]), &[]));
        assert_ne!(base, artifact_hash(get(&[("id", "a"), ("version", "1")]), &[]));
        assert_ne!(base, artifact_hash(get(FIELDS), &[GENESIS]));
        // Length prefixes: moving a byte from one field to the next changes the hash.
        assert_ne!(
            artifact_hash(get(&[("id", "ab"), ("logical_id", "c")]), &[]),
            artifact_hash(get(&[("id", "a"), ("logical_id", "bc")]), &[])
        );
    }

    #[test]
    fn an_empty_claim_digests_as_none() {
        assert_eq!(event_digest("k", "1", "{}", Some("")), event_digest("k", "1", "{}", None));
        assert_ne!(event_digest("k", "1", "{}", Some("c:1:h")), event_digest("k", "1", "{}", None));
    }

    #[test]
    fn heads_parse_and_print() {
        let h: Head = format!("42:{GENESIS}").parse().unwrap();
        assert_eq!(h.seq, 42);
        assert_eq!(h.to_string(), format!("42:{GENESIS}"));
        assert!("42".parse::<Head>().is_err());
        assert!("x:00".parse::<Head>().is_err());
        assert!(chain_link(GENESIS, "zz", 1).is_none());
        assert!(format!("7:{GENESIS_V1}").parse::<Head>().is_ok());
    }

    #[test]
    fn link_is_sha1_of_the_documented_text() {
        // The same value as `printf 'sett-link-v2\n<prev>\n<digest>\n1' | sha1sum`.
        let digest = hex(&Sha256::digest(b"x"));
        let link = chain_link(GENESIS, &digest, 1).unwrap();
        let mut h = sha1_smol::Sha1::new();
        h.update(format!("sett-link-v2\n{GENESIS}\n{digest}\n1").as_bytes());
        assert_eq!(link, h.digest().to_string());
        assert_eq!(link.len(), 40);
        // A v2 link may follow a v1 one; the rule is chosen by the stored hash's width.
        let v1 = chain_link_v1(GENESIS_V1, &digest, 1).unwrap();
        assert_eq!(recompute_link(GENESIS_V1, &digest, 1, &v1), Some(v1.clone()));
        assert!(chain_link(&v1, &digest, 2).is_some());
        assert_ne!(chain_link(GENESIS, &digest, 2), Some(link));
    }
}
