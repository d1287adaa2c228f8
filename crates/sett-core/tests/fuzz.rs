//! Property-based fuzzing of every sett-core parser that takes outside input: `sett.yml`
//! (`SettConfig::parse`), tool stdout (`parse_tool_output`), bid-script stdout (`parse_bid`),
//! ids, short ids, instance and agent names, event kinds and structural types. Each gets
//! arbitrary strings plus structured near-valid inputs; none may panic, every rejection must be
//! a non-empty message, and whatever is accepted must be safe to use downstream (key-safe names,
//! canonical ids, durations that fit in milliseconds). CI runs these with the default case count.

use proptest::prelude::*;
use sett_core::config::SettConfig;
use sett_core::event::EventKind;
use sett_core::tool::{parse_bid, parse_tool_output};
use sett_core::{AgentName, ArtifactId, ClaimId, InstanceName, ShortId, StructuralType};

/// Characters that must never reach a Redis key or SCAN pattern through a validated name.
const GLOB: &[char] = &['*', '?', '[', ']', '{', '}', '\\', ':', ' ', '\n', '\0'];

fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("30s".to_owned()),
        Just("0".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("-1".to_owned()),
        Just("~".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\"".to_owned()),
        Just("99999999999999y".to_owned()),
        Just("&a [*a]".to_owned()),
        "[a-z0-9 ]{0,12}",
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

/// A sett.yml that is valid or one mutation away from valid.
fn near_valid_yaml() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("1.0"), Just("2.0"), Just("")],
        "[A-Za-z][A-Za-z0-9_-]{0,8}|user|[^\n:]{0,10}",
        prop_oneof![
            Just("review"),
            Just("claim"),
            Just("exclusive"),
            Just("ignore"),
            Just("bogus"),
            Just("{type: claim, target_types: [\"Goal*\"]}"),
            Just("{type: claim, target_types: [\"[\"]}"),
        ],
        yaml_scalar(),
        yaml_scalar(),
        yaml_scalar(),
        prop_oneof![Just(""), Just("    mode: controller\n"), Just("    worker: {max_concurrent: 0}\n"),],
        prop_oneof![Just("[\"./run.sh\"]"), Just("[]"), Just("[\"\"]"), Just("./run.sh")],
        prop_oneof![Just(""), Just("    environment: [\"A=1\", \"B\"]\n"), Just("    environment: [\"1X\", \"=\"]\n")],
    )
        .prop_map(|(version, agent, bid, timeout, bid_timeout, qt, mode, command, env)| {
            format!(
                "version: \"{version}\"\norchestrator:\n  bid_timeout: {bid_timeout}\n  question_timeout: {qt}\nagents:\n  {agent}:\n    command: {command}\n    bidding_strategy: {bid}\n    timeout: {timeout}\n{mode}{env}"
            )
        })
}

/// Checks one parse: an error names the file and says something; an accepted config is usable.
fn check_config(text: &str) {
    match SettConfig::parse("sett.yml", text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("sett.yml"), "error does not name the file: {msg}");
            assert!(msg.len() > "sett.yml".len() + 5, "empty error: {msg}");
        }
        Ok(c) => {
            assert!(!c.agents.is_empty());
            let p = c.policy();
            assert!(p.bid_timeout_ms > 0, "bid timeout {} ms", p.bid_timeout_ms);
            for (name, a) in &p.agents {
                // Deadlines are computed as now_ms + these: they must be positive and leave room.
                assert!(a.timeout_ms > 0 && a.timeout_ms < i64::MAX / 4, "{name}: timeout {} ms", a.timeout_ms);
                if let Some(q) = a.question_timeout_ms {
                    assert!(q > 0 && q < i64::MAX / 4, "{name}: question timeout {q} ms");
                }
                assert!(AgentName::parse(name.as_str()).is_ok());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_arbitrary_text(text in any::<String>()) {
        check_config(&text);
    }

    #[test]
    fn config_yaml_like_text(text in "[a-z:\\-\\[\\]{}\"' \n0-9&*!|>%@`]{0,200}") {
        check_config(&text);
    }

    #[test]
    fn config_near_valid(text in near_valid_yaml()) {
        check_config(&text);
    }

    #[test]
    fn tool_output_arbitrary(text in any::<String>()) {
        match parse_tool_output(&text) {
            Ok(o) => {
                prop_assert!(!o.artifact_type.trim().is_empty());
                prop_assert_ne!(o.structural_type, StructuralType::Answer);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn tool_output_structured(
        t in prop::option::of(prop_oneof![Just("Review".to_owned()), Just(" ".to_owned()), any::<String>()]),
        payload in prop::option::of(prop_oneof![
            any::<String>().prop_map(serde_json::Value::String),
            Just(serde_json::json!({})),
            Just(serde_json::json!([1, {"a": null}])),
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
        ]),
        st in prop::option::of(prop_oneof![
            Just("Standard".to_owned()), Just("Terminal".to_owned()), Just("Answer".to_owned()),
            Just("Question".to_owned()), Just("Failure".to_owned()), Just("".to_owned()), any::<String>(),
        ]),
        extra in prop::option::of("[a-z_]{1,10}"),
    ) {
        let mut o = serde_json::Map::new();
        if let Some(t) = &t { o.insert("artifact_type".into(), t.clone().into()); }
        if let Some(p) = &payload { o.insert("artifact_payload".into(), p.clone()); }
        if let Some(s) = &st { o.insert("structural_type".into(), s.clone().into()); }
        if let Some(x) = &extra { o.insert(x.clone(), true.into()); }
        let text = serde_json::Value::Object(o).to_string();
        match parse_tool_output(&text) {
            Ok(out) => {
                prop_assert!(!out.artifact_type.trim().is_empty());
                prop_assert_ne!(out.structural_type, StructuralType::Answer);
                if let Some(serde_json::Value::String(s)) = &payload { prop_assert_eq!(&out.payload, s); }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn bid_arbitrary(text in any::<String>()) {
        if let Err(e) = parse_bid(&text) {
            prop_assert!(e.contains("review, claim, exclusive, ignore"), "{}", e);
        }
    }

    #[test]
    fn bid_words(word in prop_oneof![Just("review"), Just("claim"), Just("exclusive"), Just("ignore")], pad in "[ \t\n]{0,3}") {
        let text = format!("{pad}{word}{pad}");
        prop_assert!(parse_bid(&text).is_ok());
    }

    #[test]
    fn names_are_key_safe(raw in any::<String>()) {
        if let Ok(n) = InstanceName::parse(&raw) {
            prop_assert!(!n.as_str().contains(GLOB), "instance name {:?} accepted", n.as_str());
        } else {
            prop_assert!(InstanceName::parse(&raw).unwrap_err().to_string().contains("instance name"));
        }
        if let Ok(n) = AgentName::parse(&raw) {
            prop_assert!(!n.as_str().contains(GLOB), "agent name {:?} accepted", n.as_str());
        } else {
            prop_assert!(AgentName::parse(&raw).unwrap_err().to_string().contains("agent name"));
        }
    }

    #[test]
    fn names_structured(raw in "[a-zA-Z0-9_{}*?-]{0,70}") {
        if let Ok(n) = InstanceName::parse(&raw) {
            prop_assert!(n.as_str().len() <= 63 && !n.as_str().contains(GLOB));
        }
        if let Ok(n) = AgentName::parse(&raw) {
            prop_assert!(n.as_str().len() <= 63 && !n.as_str().contains(GLOB));
        }
    }

    #[test]
    fn ids_are_canonical(raw in prop_oneof![any::<String>(), "[0-9a-fA-F-]{30,40}", any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())]) {
        match ArtifactId::parse(&raw) {
            Ok(id) => prop_assert_eq!(id.to_string(), raw.clone()),
            Err(e) => prop_assert!(e.to_string().contains("invalid id")),
        }
        prop_assert_eq!(ClaimId::parse(&raw).is_ok(), ArtifactId::parse(&raw).is_ok());
    }

    #[test]
    fn short_ids_are_hex(raw in prop_oneof![any::<String>(), "[0-9a-fA-F-]{0,40}", "[0-9a-f*?\\[\\]]{6,12}"]) {
        match ShortId::parse(&raw) {
            Ok(s) => {
                prop_assert!(s.as_str().len() >= 6 && s.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
                prop_assert!(!s.as_str().contains(GLOB));
            }
            Err(e) => prop_assert!(e.to_string().contains("short id")),
        }
    }

    #[test]
    fn short_id_of_a_real_id_matches_it(n in any::<u128>(), len in 6usize..=32) {
        let id = ArtifactId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap();
        let prefix = &id.as_uuid().simple().to_string()[..len];
        prop_assert!(ShortId::parse(prefix).unwrap().matches(&id));
    }

    #[test]
    fn kinds_and_types(raw in any::<String>()) {
        if let Ok(k) = raw.parse::<EventKind>() { prop_assert_eq!(k.as_str(), raw.as_str()); }
        let _ = raw.parse::<StructuralType>().map_err(|e| assert!(!e.to_string().is_empty()));
    }
}

/// Deep nesting must be rejected with an error, not overflow the stack.
#[test]
fn config_deep_nesting_is_an_error() {
    for depth in [1_000usize, 100_000] {
        check_config(&format!("version: \"1.0\"\nagents: {}{}", "[".repeat(depth), "]".repeat(depth)));
        check_config(&format!("{}x{}", "{a: ".repeat(depth), "}".repeat(depth)));
    }
}

/// Enormous durations are refused (they would overflow deadline arithmetic).
#[test]
fn config_huge_durations_are_errors() {
    for t in ["18446744073709551615", "9223372036854775807", "500000000y", "300years"] {
        let yml = format!(
            "version: \"1.0\"\nagents:\n  A:\n    command: [\"./a\"]\n    bidding_strategy: claim\n    timeout: {t}\n"
        );
        let e = SettConfig::parse("sett.yml", &yml).expect_err(t);
        assert!(e.to_string().contains("agents.A.timeout"), "{e}");
    }
}
