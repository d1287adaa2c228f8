//! One record of an export (`sett export` JSON lines): a key's name, TTL and typed content,
//! one variant per Redis type the export carries. The line format is fixed (exports written by
//! earlier versions import and verify); it is read and written here, once, and nowhere else
//! decodes a record by its shape.
//!
//! A line is `{"key": …, "type": …, "ttl_ms": …, "value": …}` with the value by type:
//! - `string`: the string; `hash`: an object of fields; `set`: the sorted members;
//! - `list`: the items; `zset`: `[member, score]` pairs in rank order;
//! - `stream`: `{"entries": [[id, {fields}], …], "groups": [{"last_delivered_id", "name"}, …]}`.
//!
//! A large list, sorted set or stream is cut into several consecutive records of the same key;
//! the later ones carry `"continues": true` (a list's or sorted set's items then under
//! `"items"`: `{"continues": true, "items": […]}`), and a stream's groups come with its last
//! record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

/// One key of an export: its name relative to the instance prefix, its TTL and its content.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawDump")]
pub struct Dump {
    pub key: String,
    pub ttl_ms: Option<i64>,
    pub value: DumpValue,
}

/// The content of an exported key, by Redis type.
#[derive(Debug, Clone, PartialEq)]
pub enum DumpValue {
    String(String),
    Hash(BTreeMap<String, String>),
    /// The members, sorted.
    Set(Vec<String>),
    /// Items in order; `continues`: a later record of the same list, appended to the earlier.
    List {
        items: Vec<String>,
        continues: bool,
    },
    /// `(member, score)` in rank order; `continues` as for a list.
    Zset {
        members: Vec<(String, f64)>,
        continues: bool,
    },
    Stream(StreamChunk),
}

/// Entries of a stream (all of a small one, or one record's worth of a large one).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChunk {
    /// `(entry id, fields)` in stream order.
    pub entries: Vec<(String, BTreeMap<String, String>)>,
    /// The consumer groups, sorted by name; only in the stream's last record.
    pub groups: Vec<StreamGroup>,
    /// A later record of the same stream, appended to the earlier.
    pub continues: bool,
}

/// A consumer group of an exported stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamGroup {
    // Declared in the order of the format (the fields sorted by name).
    pub last_delivered_id: String,
    pub name: String,
}

impl Dump {
    /// The Redis type's name, as the line's `type` says it.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            DumpValue::String(_) => "string",
            DumpValue::Hash(_) => "hash",
            DumpValue::Set(_) => "set",
            DumpValue::List { .. } => "list",
            DumpValue::Zset { .. } => "zset",
            DumpValue::Stream(_) => "stream",
        }
    }
}

impl DumpValue {
    /// How many items the record writes (stream entries, list or sorted-set items, set members,
    /// hash fields; 1 for a string): what an import batch is bounded by.
    pub fn items(&self) -> usize {
        match self {
            Self::String(_) => 1,
            Self::Hash(m) => m.len(),
            Self::Set(v) | Self::List { items: v, .. } => v.len(),
            Self::Zset { members, .. } => members.len(),
            Self::Stream(s) => s.entries.len(),
        }
    }

    /// Whether the record appends to the records of the same key before it.
    pub fn continues(&self) -> bool {
        match self {
            Self::List { continues, .. } | Self::Zset { continues, .. } => *continues,
            Self::Stream(s) => s.continues,
            Self::String(_) | Self::Hash(_) | Self::Set(_) => false,
        }
    }
}

/// A line as it is read, before its value is checked against its type.
#[derive(Deserialize)]
struct RawDump {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    ttl_ms: Option<i64>,
    value: serde_json::Value,
}

/// A stream record's value as it is read.
#[derive(Deserialize)]
struct RawStream {
    entries: Vec<(String, BTreeMap<String, String>)>,
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawGroup {
    name: String,
    last_delivered_id: Option<String>,
}

impl TryFrom<RawDump> for Dump {
    type Error = String;

    fn try_from(raw: RawDump) -> Result<Self, String> {
        let RawDump { key, kind, ttl_ms, value } = raw;
        let bad = |what: &str| format!("key {key}: malformed {what}");
        // A later record of a large key says so; a list's or sorted set's items are then under
        // "items".
        let continues = value.get("continues").and_then(serde_json::Value::as_bool) == Some(true);
        let items = |v: serde_json::Value| if continues { v.get("items").cloned().unwrap_or_default() } else { v };
        let value = match kind.as_str() {
            "string" => match value {
                serde_json::Value::String(s) => DumpValue::String(s),
                _ => return Err(bad("string")),
            },
            "hash" => DumpValue::Hash(serde_json::from_value(value).map_err(|_| bad("hash"))?),
            "set" => DumpValue::Set(serde_json::from_value(value).map_err(|_| bad("set"))?),
            "list" => {
                DumpValue::List { items: serde_json::from_value(items(value)).map_err(|_| bad("list"))?, continues }
            }
            "zset" => {
                DumpValue::Zset { members: serde_json::from_value(items(value)).map_err(|_| bad("zset"))?, continues }
            }
            "stream" => {
                let s: RawStream = serde_json::from_value(value).map_err(|_| bad("stream"))?;
                DumpValue::Stream(StreamChunk {
                    entries: s.entries,
                    groups: s
                        .groups
                        .into_iter()
                        .map(|g| StreamGroup {
                            name: g.name,
                            last_delivered_id: g.last_delivered_id.unwrap_or_else(|| "0".to_owned()),
                        })
                        .collect(),
                    continues,
                })
            }
            other => return Err(format!("key {key}: unsupported type {other}")),
        };
        Ok(Dump { key, ttl_ms, value })
    }
}

/// A line as it is written: the fields in the format's order, the value borrowed.
#[derive(Serialize)]
struct LineOut<'a> {
    key: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    ttl_ms: Option<i64>,
    value: ValueOut<'a>,
}

/// A value as it is written (object fields in the format's order: sorted by name).
#[derive(Serialize)]
#[serde(untagged)]
enum ValueOut<'a> {
    String(&'a str),
    Hash(&'a BTreeMap<String, String>),
    Items(&'a [String]),
    Members(&'a [(String, f64)]),
    MoreItems {
        continues: bool,
        items: &'a [String],
    },
    MoreMembers {
        continues: bool,
        items: &'a [(String, f64)],
    },
    Stream {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        continues: bool,
        entries: &'a [(String, BTreeMap<String, String>)],
        groups: &'a [StreamGroup],
    },
}

impl Serialize for Dump {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = match &self.value {
            DumpValue::String(v) => ValueOut::String(v),
            DumpValue::Hash(m) => ValueOut::Hash(m),
            DumpValue::Set(v) => ValueOut::Items(v),
            DumpValue::List { items, continues: false } => ValueOut::Items(items),
            DumpValue::List { items, continues: true } => ValueOut::MoreItems { continues: true, items },
            DumpValue::Zset { members, continues: false } => ValueOut::Members(members),
            DumpValue::Zset { members, continues: true } => ValueOut::MoreMembers { continues: true, items: members },
            DumpValue::Stream(c) => ValueOut::Stream { continues: c.continues, entries: &c.entries, groups: &c.groups },
        };
        LineOut { key: &self.key, kind: self.kind(), ttl_ms: self.ttl_ms, value }.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the export wrote them before records were typed (sett 1b64abf): each reads into
    /// its variant and writes back byte for byte.
    #[test]
    fn every_record_layout_round_trips_byte_for_byte() {
        let lines = [
            r#"{"key":"s","type":"string","ttl_ms":null,"value":"a \"b\" é 😀"}"#,
            r#"{"key":"e","type":"string","ttl_ms":5000,"value":"x"}"#,
            r#"{"key":"h","type":"hash","ttl_ms":null,"value":{"a":"1","z":"2"}}"#,
            r#"{"key":"h0","type":"hash","ttl_ms":null,"value":{}}"#,
            r#"{"key":"set","type":"set","ttl_ms":null,"value":["a","b"]}"#,
            r#"{"key":"l","type":"list","ttl_ms":null,"value":["x","y"]}"#,
            r#"{"key":"l","type":"list","ttl_ms":null,"value":{"continues":true,"items":["z"]}}"#,
            r#"{"key":"z","type":"zset","ttl_ms":null,"value":[["a",1.0],["b",2.5],["c",-3e-7]]}"#,
            r#"{"key":"z","type":"zset","ttl_ms":null,"value":{"continues":true,"items":[["d",1e+21]]}}"#,
            r#"{"key":"st","type":"stream","ttl_ms":null,"value":{"entries":[["1-0",{"a":"1","b":"2"}]],"groups":[]}}"#,
            r#"{"key":"st","type":"stream","ttl_ms":null,"value":{"continues":true,"entries":[["2-0",{"k":"v"}]],"groups":[{"last_delivered_id":"1-0","name":"g"}]}}"#,
            r#"{"key":"st","type":"stream","ttl_ms":null,"value":{"continues":true,"entries":[],"groups":[{"last_delivered_id":"0-0","name":"a"},{"last_delivered_id":"2-0","name":"b"}]}}"#,
        ];
        for line in lines {
            let d: Dump = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(serde_json::to_string(&d).unwrap(), line);
        }
        let d: Dump = serde_json::from_str(lines[6]).unwrap();
        assert_eq!(d.value, DumpValue::List { items: vec!["z".into()], continues: true });
        assert_eq!((d.kind(), d.value.items(), d.value.continues()), ("list", 1, true));
    }

    /// What the import checked before writing anything, the reading now refuses: a value that
    /// does not fit its type, an unknown type.
    #[test]
    fn a_value_that_does_not_fit_its_type_is_refused() {
        for (kind, value) in [
            ("string", "1"),
            ("hash", "[1]"),
            ("hash", r#"{"a":1}"#),
            ("zset", r#"{"a":1}"#),
            ("zset", r#"{"continues":false,"items":[["a",1.0]]}"#),
            ("list", r#"{"a":1}"#),
            ("set", "null"),
            ("stream", r#"{"entries":[],"groups":[{"name":3}]}"#),
            ("stream", r#"{"groups":[]}"#),
            ("module", r#""x""#),
        ] {
            let line = format!(r#"{{"key":"k","type":"{kind}","ttl_ms":null,"value":{value}}}"#);
            let err = serde_json::from_str::<Dump>(&line).expect_err(&line).to_string();
            assert!(err.contains("key k: "), "{line}: {err}");
        }
    }

    /// A group without its last delivered id starts at the beginning, as the import always did;
    /// a record without a TTL field has none.
    #[test]
    fn missing_optional_parts_take_their_defaults() {
        let d: Dump =
            serde_json::from_str(r#"{"key":"st","type":"stream","value":{"entries":[],"groups":[{"name":"g"}]}}"#)
                .unwrap();
        assert_eq!(d.ttl_ms, None);
        let DumpValue::Stream(s) = d.value else { panic!("a stream") };
        assert_eq!(s.groups, vec![StreamGroup { name: "g".into(), last_delivered_id: "0".into() }]);
    }
}
