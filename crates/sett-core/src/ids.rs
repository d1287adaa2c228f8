//! Validated identifier newtypes. Every value that reaches a Redis key or a SCAN pattern passes
//! through one of these parsers first, so no glob character can ever reach a pattern.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier was refused. Every message names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "invalid instance name '{0}': use 1-63 lower-case letters, digits and '-', starting with a letter and not ending with '-'"
    )]
    InstanceName(String),
    #[error(
        "invalid agent name '{0}': use 1-63 letters, digits, '_' or '-', starting with a letter ('user' and 'orchestrator' are reserved)"
    )]
    AgentName(String),
    #[error("invalid id '{0}': expected a canonical lower-case UUID such as 0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d")]
    Uuid(String),
    #[error("invalid short id '{0}': use at least 6 hexadecimal characters (a prefix of an id)")]
    ShortId(String),
}

/// One named Sett deployment: a DNS label (RFC 1123) of at most 63 characters that starts with
/// a letter. The name doubles as the Redis Cluster hash tag, so it can never contain braces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bytes = raw.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok { Ok(Self(raw.to_owned())) } else { Err(IdError::InstanceName(raw.to_owned())) }
    }

    /// The name given to the `n`-th unnamed instance.
    pub fn numbered_default(n: u64) -> Self {
        Self(format!("default-{n}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An agent's name, which is also its role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentName(String);

impl AgentName {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bytes = raw.as_bytes();
        let reserved = raw.eq_ignore_ascii_case("user") || raw.eq_ignore_ascii_case("orchestrator");
        let ok = !reserved
            && !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_alphabetic()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
        if ok { Ok(Self(raw.to_owned())) } else { Err(IdError::AgentName(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_canonical_uuid(raw: &str) -> Result<Uuid, IdError> {
    // Only the canonical hyphenated lower-case form is accepted, so one id has one spelling and
    // string comparison, sorting and key names agree.
    let canonical =
        raw.len() == 36 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    let uuid = if canonical { Uuid::parse_str(raw).ok() } else { None };
    match uuid {
        Some(u) if u.hyphenated().to_string() == raw => Ok(u),
        _ => Err(IdError::Uuid(raw.to_owned())),
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                parse_canonical_uuid(raw).map(Self)
            }

            /// The id with this UUID. sett-core mints no ids (it reads no clock and no randomness):
            /// new ids come from the caller (`sett_store::new_artifact_id`/`new_claim_id`).
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A deterministic id derived from `parent` and `label` (UUID v5, see
            /// [`crate::derive`]). The ids Sett writes are derived by name in that module (the
            /// tidy test keeps them there); this is for tests' fixed ids.
            pub fn derived(parent: &impl fmt::Display, label: &str) -> Self {
                Self(crate::derive::uuid(parent, label))
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The first 8 hex characters, for display.
            pub fn short(&self) -> String {
                self.0.simple().to_string()[..8].to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// The id of an artifact (and of a logical thread: a thread's id is its first artifact's id).
    ArtifactId
);
uuid_id!(
    /// The id of a claim.
    ClaimId
);

/// A hex prefix of at least 6 characters typed by an operator for an id. Hyphens are dropped and
/// letters lower-cased, so `0190C2-B4` and `0190c2b4` name the same prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortId(String);

impl ShortId {
    pub const MIN_LEN: usize = 6;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let cleaned: String = raw.chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
        let ok =
            cleaned.len() >= Self::MIN_LEN && cleaned.len() <= 32 && cleaned.bytes().all(|b| b.is_ascii_hexdigit());
        if ok { Ok(Self(cleaned)) } else { Err(IdError::ShortId(raw.to_owned())) }
    }

    /// The prefix in simple (hyphen-less) hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, id: &ArtifactId) -> bool {
        id.as_uuid().simple().to_string().starts_with(&self.0)
    }

    /// The prefix in hyphenated form, as it appears at the start of a canonical UUID (used to
    /// build a SCAN pattern; the characters are hex digits and hyphens only).
    pub fn hyphenated_prefix(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 4);
        for (i, c) in self.0.chars().enumerate() {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push('-');
            }
            out.push(c);
        }
        out
    }
}

macro_rules! string_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_impls!(InstanceName);
string_impls!(AgentName);
string_impls!(ShortId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn instance_names() {
        for ok in ["a", "myproject", "default-1", "a-b", "a1"] {
            assert!(InstanceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "1a", "a-", "a_b", "a*", "a?", "a[b]", "a{b}", "a:b", &"a".repeat(64)] {
            assert!(InstanceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_names() {
        assert!(AgentName::parse("Coder").is_ok());
        assert!(AgentName::parse("code_reviewer-2").is_ok());
        for bad in ["", "user", "User", "orchestrator", "1x", "a b", "a:b", "a*"] {
            assert!(AgentName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uuids_must_be_canonical() {
        let id = ArtifactId::from_uuid(Uuid::parse_str("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap());
        assert_eq!(ArtifactId::parse(&id.to_string()).unwrap(), id);
        assert!(ArtifactId::parse(&id.to_string().to_uppercase()).is_err());
        assert!(ArtifactId::parse(&id.as_uuid().simple().to_string()).is_err());
        assert!(ArtifactId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn derived_ids_are_stable() {
        let c = ClaimId::from_uuid(Uuid::from_u128(7));
        assert_eq!(ClaimId::derived(&c, "rework"), ClaimId::derived(&c, "rework"));
        assert_ne!(ClaimId::derived(&c, "rework"), ClaimId::derived(&c, "other"));
    }

    #[test]
    fn short_ids() {
        let id = ArtifactId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let s = ShortId::parse("0190C2B4-7d").unwrap();
        assert!(s.matches(&id));
        assert_eq!(s.hyphenated_prefix(), "0190c2b4-7d");
        assert!(ShortId::parse("0190c").is_err());
        assert!(ShortId::parse("0190c*").is_err());
        assert!(ShortId::parse("zzzzzz").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = InstanceName::parse(&s);
            let _ = AgentName::parse(&s);
            let _ = ArtifactId::parse(&s);
            let _ = ClaimId::parse(&s);
            let _ = ShortId::parse(&s);
        }

        #[test]
        fn accepted_names_are_pattern_safe(s in "[a-z0-9*?\\[\\]{}:-]{0,70}") {
            if let Ok(n) = InstanceName::parse(&s) {
                let bad = n.as_str().contains(['*', '?', '[', ']', '{', '}', ':']);
                prop_assert!(!bad, "unsafe name accepted");
            }
            if let Ok(p) = ShortId::parse(&s) {
                prop_assert!(p.hyphenated_prefix().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
            }
        }
    }
}
