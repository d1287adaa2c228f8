//! Property-based fuzzing of the operator-input parsers in sett-ops: `import` files
//! (`transfer::read_dumps`), typed ids and short ids (`resolve::IdQuery::parse`) and `--since`
//! points (`resolve::Since::parse`). Nothing may panic; a rejection says what is accepted.

use proptest::prelude::*;
use sett_ops::resolve::{IdQuery, Since};
use sett_ops::transfer::{TransferError, read_dumps};

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("{\"key\":\"a\",\"type\":\"hash\",\"ttl_ms\":null,\"value\":{}}".to_owned()),
        Just("{\"key\":1}".to_owned()),
        Just("[".repeat(10_000)),
        ("[a-z:{}*]{0,10}", "[a-z]{0,6}", prop::option::of(any::<i64>()))
            .prop_map(|(k, t, ttl)| serde_json::json!({"key": k, "type": t, "ttl_ms": ttl, "value": "v"}).to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn import_files(lines in prop::collection::vec(line(), 0..8)) {
        let text = lines.join("\n");
        match read_dumps(text.as_bytes()) {
            Ok(d) => prop_assert!(d.len() <= lines.len()),
            Err(TransferError::Parse { line, reason }) => {
                prop_assert!(line >= 1 && line <= lines.len().max(1) && !reason.is_empty());
            }
            Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
        }
    }

    #[test]
    fn import_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Invalid UTF-8 is an I/O error from `lines()`, reported, not a panic.
        if let Err(e) = read_dumps(bytes.as_slice()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn id_queries(raw in prop_oneof![any::<String>(), "[0-9a-fA-F -]{0,40}", "[0-9a-f*?\\[\\]{}]{6,12}"]) {
        match IdQuery::parse(&raw) {
            Ok(IdQuery::Short(s)) => prop_assert!(s.as_str().bytes().all(|b| b.is_ascii_hexdigit())),
            Ok(IdQuery::Full(_)) => {}
            Err(e) => prop_assert!(e.contains("short id"), "{}", e),
        }
    }

    #[test]
    fn since_points(raw in prop_oneof![any::<String>(), "[0-9]{1,25}(ms|s|m|h|d|y|years)", "[0-9]{1,20}-[0-9]{1,20}", "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z"], now in 0i64..4_000_000_000_000) {
        if let Err(e) = Since::parse(&raw, now) {
            prop_assert!(!e.is_empty());
        }
    }
}
