//! Turning what an operator types into store positions: artifact ids or short ids (validated by
//! `ShortId` before anything reaches a SCAN pattern), and `--since` points (a duration ago, an
//! RFC 3339 time, or an event id).

use std::time::Duration;

use sett_core::{ArtifactId, ShortId};
use sett_store::Store;

/// What an operator typed for an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdQuery {
    Full(ArtifactId),
    Short(ShortId),
}

impl IdQuery {
    /// A canonical UUID, else a short id (≥ 6 hex characters). The error says what is accepted.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(id) = ArtifactId::parse(raw) {
            return Ok(Self::Full(id));
        }
        ShortId::parse(raw).map(Self::Short).map_err(|e| e.to_string())
    }

    pub fn matches(&self, id: &ArtifactId) -> bool {
        match self {
            Self::Full(f) => f == id,
            Self::Short(s) => s.matches(id),
        }
    }
}

/// The result of resolving an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    One(ArtifactId),
    None,
    /// Several ids share the prefix (sorted; at most the lookup limit).
    Ambiguous(Vec<ArtifactId>),
}

/// How many candidates an ambiguous lookup reports.
pub const CANDIDATE_LIMIT: usize = 10;

/// Picks `query`'s match among `ids` (e.g. the open questions).
pub fn resolve_among(query: &IdQuery, ids: &[ArtifactId]) -> Resolution {
    let mut found: Vec<ArtifactId> = ids.iter().filter(|id| query.matches(id)).copied().collect();
    found.sort();
    found.dedup();
    from_candidates(found)
}

fn from_candidates(mut found: Vec<ArtifactId>) -> Resolution {
    match found.len() {
        0 => Resolution::None,
        1 => Resolution::One(found[0]),
        _ => {
            found.truncate(CANDIDATE_LIMIT);
            Resolution::Ambiguous(found)
        }
    }
}

/// Resolves `query` against every artifact of the instance (a key lookup for a full id, a
/// bounded SCAN on the validated prefix for a short id).
pub async fn resolve_artifact(store: &Store, query: &IdQuery) -> sett_store::Result<Resolution> {
    match query {
        IdQuery::Full(id) => Ok(if store.artifact_exists(id).await? { Resolution::One(*id) } else { Resolution::None }),
        IdQuery::Short(s) => Ok(from_candidates(store.artifacts_by_prefix(s, CANDIDATE_LIMIT + 1).await?)),
    }
}

/// A `--since` point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Events strictly after this stream id.
    EventId(String),
    /// Events at or after this time (ms since the epoch).
    TimeMs(i64),
}

impl Since {
    /// Parses `10m` (ago), `2026-01-02T03:04:05Z` (RFC 3339) or `1700000000000-0` (an event id).
    pub fn parse(raw: &str, now_ms: i64) -> Result<Self, String> {
        let raw = raw.trim();
        if is_event_id(raw) {
            return Ok(Self::EventId(raw.to_owned()));
        }
        if let Ok(d) = humantime::parse_duration(raw) {
            return Ok(Self::TimeMs(now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)));
        }
        if let Ok(t) = humantime::parse_rfc3339_weak(raw) {
            let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
            return Ok(Self::TimeMs(i64::try_from(ms).unwrap_or(i64::MAX)));
        }
        Err(format!(
            "cannot read --since '{raw}': use a duration ago (10m, 2h), an RFC 3339 time (2026-01-02T03:04:05Z) or an event id (1700000000000-0)"
        ))
    }

    /// The stream position to read strictly after. A time becomes the last possible id of the
    /// millisecond before it, so events at exactly that millisecond are included.
    pub fn after_id(&self) -> String {
        match self {
            Self::EventId(id) => id.clone(),
            Self::TimeMs(ms) if *ms <= 0 => "0-0".to_owned(),
            Self::TimeMs(ms) => format!("{}-{}", ms - 1, u64::MAX),
        }
    }

    /// For artifacts: the earliest creation time included.
    pub fn min_time_ms(&self) -> i64 {
        match self {
            Self::EventId(id) => id.split('-').next().and_then(|m| m.parse().ok()).unwrap_or(0),
            Self::TimeMs(ms) => *ms,
        }
    }
}

fn is_event_id(s: &str) -> bool {
    let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
    // A bare number is ambiguous with a duration in seconds only when tiny; require the dash.
    s.contains('-')
        && !ms.is_empty()
        && !seq.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sett_core::text::unique_prefixes;

    #[test]
    fn id_queries() {
        let id = ArtifactId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        assert_eq!(IdQuery::parse(&id.to_string()).unwrap(), IdQuery::Full(id));
        assert!(IdQuery::parse("0190C2").unwrap().matches(&id));
        assert!(!IdQuery::parse("0190c3").unwrap().matches(&id));
        for bad in ["0190c", "0190c*", "abc?de", "", "zzzzzz"] {
            assert!(IdQuery::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolution_among_a_list() {
        let a = ArtifactId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let b = ArtifactId::parse("0190c2b4-0000-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let q = |s: &str| IdQuery::parse(s).unwrap();
        assert_eq!(resolve_among(&q("0190c2b47d"), &[a, b]), Resolution::One(a));
        assert_eq!(resolve_among(&q("0190c2"), &[a, b, a]), Resolution::Ambiguous(vec![b, a]));
        assert_eq!(resolve_among(&q("ffffff"), &[a, b]), Resolution::None);
    }

    #[test]
    fn unique_prefixes_tell_ids_apart() {
        let a = ArtifactId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let b = ArtifactId::parse("0190c2b4-7d3f-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let c = ArtifactId::parse("ffffffff-7d3f-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let p = unique_prefixes(&[a, b, c, a], 8);
        assert_eq!(p[&a], "0190c2b4-7d3e");
        assert_eq!(p[&b], "0190c2b4-7d3f");
        assert_eq!(p[&c], "ffffffff");
        for (id, prefix) in &p {
            let q = IdQuery::parse(prefix).unwrap();
            assert_eq!(resolve_among(&q, &[a, b, c]), Resolution::One(*id));
        }
    }

    #[test]
    fn since_points() {
        let now = 1_700_000_000_000;
        assert_eq!(Since::parse("10m", now).unwrap(), Since::TimeMs(now - 600_000));
        assert_eq!(Since::parse("1700000000000-3", now).unwrap(), Since::EventId("1700000000000-3".into()));
        assert_eq!(Since::parse("2023-11-14T22:13:20Z", now).unwrap(), Since::TimeMs(1_700_000_000_000));
        assert!(Since::parse("yesterday-ish", now).is_err());
        assert_eq!(Since::TimeMs(5).after_id(), format!("4-{}", u64::MAX));
        assert_eq!(Since::EventId("7-1".into()).min_time_ms(), 7);
    }
}
