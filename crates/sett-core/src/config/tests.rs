//! `sett.yml` parsing and checking, against examples of every section.

use std::path::Path;

use super::*;
use crate::BidType;

const GOOD: &str = r#"
version: "1.0"
orchestrator:
  max_review_iterations: 2
  bid_timeout: 5s
  question_timeout: 0
agents:
  Coder:
    command: ["./run.sh"]
    bidding_strategy: {type: exclusive, target_types: ["Goal*"]}
    workspace: {mode: rw}
    environment: ["HOME", "MODE=fast"]
    timeout: 1m
    question_timeout: 10s
  Reviewer:
    command: ["./review.sh"]
    bidding_strategy: review
  Builder:
    command: ["./build.sh"]
    bidding_strategy: exclusive
    mode: controller
    worker: {max_concurrent: 2}
"#;

#[test]
fn parses_a_full_config() {
    let c = SettConfig::parse("sett.yml", GOOD).unwrap();
    assert_eq!(c.orchestrator.max_review_iterations, 2);
    assert_eq!(c.orchestrator.bid_timeout, Duration::from_secs(5));
    assert_eq!(c.orchestrator.question_timeout, None);
    let coder = &c.agents[&AgentName::parse("Coder").unwrap()];
    assert_eq!(coder.workspace_mode, WorkspaceMode::Rw);
    assert_eq!(coder.environment[1], EnvEntry::Set("MODE".into(), "fast".into()));
    let s = coder.bidding_strategy.as_ref().unwrap();
    assert_eq!(s.bid_for("GoalDefined"), BidType::Exclusive);
    assert_eq!(s.bid_for("CodeCommit"), BidType::Ignore);
    assert_eq!(c.question_timeout_for(&coder.name), Some(Duration::from_secs(10)));
    let builder = &c.agents[&AgentName::parse("Builder").unwrap()];
    assert_eq!(builder.worker.as_ref().unwrap().max_concurrent, 2);
    assert_eq!(builder.worker.as_ref().unwrap().command, vec!["./build.sh".to_owned()]);
}

#[test]
fn retention_is_off_by_default_and_names_one_archive() {
    assert_eq!(SettConfig::parse("sett.yml", GOOD).unwrap().retention, None);
    let with =
        |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("retention: {v}\nagents:\n")));
    let r = with("{archive_after: 7d}").unwrap().retention.unwrap();
    assert_eq!(r.archive_after, Duration::from_secs(7 * 86400));
    assert_eq!(r.every, DEFAULT_ARCHIVE_EVERY);
    assert_eq!(r.archive, ArchiveTarget::Dir(DEFAULT_ARCHIVE_DIR.to_owned()));
    let r = with("{archive_after: 0, every: 5s, archive: {s3: {bucket: b, endpoint: 'http://x:1', allow_http: true}}}")
        .unwrap()
        .retention
        .unwrap();
    assert!(matches!(r.archive, ArchiveTarget::S3(ref s) if s.bucket == "b" && s.prefix.is_empty()));
    assert_eq!(
        with("{archive_after: 1h, archive: {dir: a, s3: {bucket: b}}}").unwrap_err().key_path,
        "retention.archive"
    );
    assert_eq!(
        with("{archive_after: 1h, archive: {s3: {bucket: b, endpoint: 'http://x'}}}").unwrap_err().key_path,
        "retention.archive.s3.endpoint"
    );
    assert_eq!(with("{archive_after: 1h, every: 10ms}").unwrap_err().key_path, "retention.every");
    assert_eq!(with("{every: 1m}").unwrap_err().key_path, "retention");
}

#[test]
fn retention_max_share_is_a_share_of_time() {
    let with =
        |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("retention: {v}\nagents:\n")));
    let share =
        |v: &str| with(&format!("{{archive_after: 1h, max_share: {v}}}")).map(|c| c.retention.unwrap().max_share);
    assert_eq!(with("{archive_after: 1h}").unwrap().retention.unwrap().max_share, ArchiveShare::WHOLE);
    assert_eq!(share("1").unwrap(), ArchiveShare::WHOLE);
    let tenth = share("0.1").unwrap();
    assert_eq!(tenth.as_f64(), 0.1);
    // A pass of 1s at a tenth of the time: 9s of rest, so passes are 1s in every 10s.
    assert_eq!(tenth.rest_after(Duration::from_secs(1)), Duration::from_secs(9));
    assert_eq!(ArchiveShare::WHOLE.rest_after(Duration::from_secs(5)), Duration::ZERO);
    for bad in ["0", "-0.5", "1.5", "0.0001", "'a tenth'"] {
        let e = share(bad).unwrap_err();
        assert_eq!(e.key_path, "retention.max_share", "{bad}: {e}");
    }
}

#[test]
fn budgets_are_off_by_default_and_each_limits_something_for_a_known_agent() {
    assert!(SettConfig::parse("sett.yml", GOOD).unwrap().budgets.is_empty());
    let with = |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("budgets: {v}\nagents:\n")));
    let b = with(r#"{workflow: {cost: "5.00 USD", tokens: 200000}, agents: {Coder: {cost: "1 EUR", per: 1d}}, on_exhausted: stop, ask_timeout: 1h, on_timeout: pause}"#)
            .unwrap()
            .budgets;
    let w = b.workflow.unwrap();
    assert_eq!((w.limit.text(), w.per), ("200000 tokens, 5 USD".to_owned(), None));
    let coder = &b.agents[&AgentName::parse("Coder").unwrap()];
    assert_eq!((coder.limit.text(), coder.per), ("1 EUR".to_owned(), Some(Duration::from_secs(86_400))));
    assert_eq!(
        (b.on_exhausted, b.on_timeout),
        (crate::budget::OnExhausted::Stop, crate::budget::OnBudgetTimeout::Pause)
    );
    assert_eq!(b.ask_timeout, Some(Duration::from_secs(3600)));
    let defaults = with("{workflow: {tokens: 5}}").unwrap().budgets;
    assert_eq!(defaults.ask_timeout, Some(DEFAULT_QUESTION_TIMEOUT));
    assert_eq!(with("{workflow: {tokens: 5}, ask_timeout: 0}").unwrap().budgets.ask_timeout, None);
    for (bad, key) in [
        ("{workflow: {}}", "budgets.workflow"),
        ("{workflow: {tokens: 0}}", "budgets.workflow.tokens"),
        ("{workflow: {cost: 5}}", "budgets.workflow.cost"),
        ("{workflow: {cost: \"5 dollars\"}}", "budgets.workflow.cost"),
        ("{workflow: {tokens: 5, per: 0}}", "budgets.workflow.per"),
        ("{agents: {Nobody: {tokens: 5}}}", "budgets.agents.Nobody"),
        ("{workflow: {tokens: 5}, on_exhausted: wait}", "budgets.on_exhausted"),
    ] {
        assert_eq!(with(bad).unwrap_err().key_path, key, "{bad}");
    }
}

#[test]
fn ledger_anchor_every_is_off_by_default_and_at_least_a_second() {
    assert_eq!(SettConfig::parse("sett.yml", GOOD).unwrap().ledger.anchor_every, None);
    let with = |v: &str| {
        SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("ledger: {{anchor_every: {v}}}\nagents:\n")))
    };
    assert_eq!(with("1h").unwrap().ledger.anchor_every, Some(Duration::from_secs(3600)));
    assert_eq!(with("0").unwrap().ledger.anchor_every, None);
    assert_eq!(with("500ms").unwrap_err().key_path, "ledger.anchor_every");
    assert_eq!(with("soon").unwrap_err().key_path, "ledger.anchor_every");
}

#[test]
fn the_witness_file_is_in_the_workspace_by_default() {
    let ledger =
        |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("ledger: {v}\nagents:\n")));
    let d = SettConfig::parse("sett.yml", GOOD).unwrap().ledger;
    assert_eq!(d.witness_path(Path::new("/ws")), Path::new("/ws/.sett/ledger/witness.jsonl"));
    let c = ledger("{witness_file: /var/lib/sett/w.jsonl}").unwrap().ledger;
    assert_eq!(c.witness_path(Path::new("/ws")), Path::new("/var/lib/sett/w.jsonl"));
    assert_eq!(ledger("{witness_file: ''}").unwrap_err().key_path, "ledger.witness_file");
    assert_eq!(d.on_regression, RegressionReaction::Continue, "reporting alone is the default");
    assert_eq!(ledger("{on_regression: pause}").unwrap().ledger.on_regression, RegressionReaction::Pause);
    let bad = ledger("{on_regression: stop}").unwrap_err();
    assert!(bad.key_path.starts_with("ledger.on_regression"), "{bad}");
}

#[test]
fn human_reviewers_are_parsed_and_checked() {
    let with = |v: &str| SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", &format!("humans: {v}\nagents:\n")));
    let c = with(
        "{groups: {legal: [carol]}, reviewers: [{artifact_types: [Draft, Contract], reviewers: [group:legal, alice]}]}",
    )
    .unwrap();
    assert_eq!(c.routing.reviewers_of("Contract"), vec!["alice".to_owned(), "group:legal".to_owned()]);
    assert!(c.routing.reviewers_of("Code").is_empty());
    assert_eq!(
        with("{reviewers: [{artifact_types: [], reviewers: [a]}]}").unwrap_err().key_path,
        "humans.reviewers[0].artifact_types"
    );
    assert_eq!(
        with("{reviewers: [{artifact_types: [D], reviewers: []}]}").unwrap_err().key_path,
        "humans.reviewers[0].reviewers"
    );
    assert_eq!(
        with("{reviewers: [{artifact_types: [D], reviewers: ['group:']}]}").unwrap_err().key_path,
        "humans.reviewers[0].reviewers[0]"
    );
    let reserved = GOOD.replace("  Reviewer:\n", "  human-review:\n");
    assert_eq!(SettConfig::parse("sett.yml", &reserved).unwrap_err().key_path, "agents.human-review");
}

#[test]
fn unknown_keys_name_their_path() {
    let text = GOOD.replace("timeout: 1m", "timeout: 1m\n    role: coder");
    let e = SettConfig::parse("sett.yml", &text).unwrap_err();
    assert_eq!(e.key_path, "agents.Coder.role");
    assert!(e.message.contains("unknown field `role`"), "{e}");
    assert!(e.to_string().starts_with("sett.yml: at 'agents.Coder.role'"), "{e}");
}

#[test]
fn redis_durability_defaults_by_deployment_and_rejects_unknown_values() {
    let default = SettConfig::parse("sett.yml", GOOD).unwrap().redis;
    assert_eq!(default.durability, None);
    assert_eq!(default.durability_for(false), Durability::Fast, "a single Redis");
    assert_eq!(default.durability_for(true), Durability::Replicated, "Sentinel or Cluster");
    let text = GOOD.replace("agents:\n", "redis: {durability: replicated}\nagents:\n");
    assert_eq!(SettConfig::parse("sett.yml", &text).unwrap().redis.durability_for(false), Durability::Replicated);
    let text = GOOD.replace("agents:\n", "redis: {durability: fast}\nagents:\n");
    assert_eq!(SettConfig::parse("sett.yml", &text).unwrap().redis.durability_for(true), Durability::Fast);
    let e =
        SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", "redis: {durability: safe}\nagents:\n")).unwrap_err();
    assert!(e.key_path.starts_with("redis.durability"), "{e}");
    let e = SettConfig::parse("sett.yml", &GOOD.replace("agents:\n", "redis: {url: x}\nagents:\n")).unwrap_err();
    assert_eq!(e.key_path, "redis.url", "{e}");
}

proptest::proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = SettConfig::parse("fuzz.yml", &s);
    }

    #[test]
    fn parser_never_panics_on_yaml_shaped_text(
        keys in proptest::collection::vec("[a-z_]{1,12}", 0..6),
        vals in proptest::collection::vec("[A-Za-z0-9 :\\[\\]{}\"*-]{0,16}", 0..6),
    ) {
        let mut text = String::from("version: \"1.0\"\nagents:\n  A:\n    command: [x]\n");
        for (k, v) in keys.iter().zip(vals.iter()) {
            text.push_str(&format!("    {k}: {v}\n"));
        }
        if let Err(e) = SettConfig::parse("fuzz.yml", &text) {
            proptest::prop_assert!(!e.message.is_empty() && !e.fix.is_empty());
        }
    }
}

#[test]
fn notifications_are_parsed_and_checked() {
    let text = format!(
        "{GOOD}notifications:\n  console_url: https://sett.example.com/\n  webhooks:\n    - url: http://127.0.0.1:9/hook\n      secret_env: HOOK_SECRET\n    - name: chat\n      url: https://hooks.slack.com/services/x\n      events: [question_asked]\n      format: slack\n      secret: s3cret\n"
    );
    let c = SettConfig::parse("sett.yml", &text).unwrap();
    let n = &c.notifications;
    assert_eq!(n.console_url.as_deref(), Some("https://sett.example.com"));
    assert_eq!(n.webhooks[0].name, "webhook-1");
    assert_eq!(n.webhooks[0].events, NotifyEvent::defaults());
    assert!(!n.webhooks[0].wants(NotifyEvent::LedgerAnchor), "ledger_anchor is opt-in");
    assert_eq!(n.webhooks[0].secret, Some(WebhookSecret::Env("HOOK_SECRET".into())));
    assert_eq!(n.webhooks[1].format, WebhookFormat::Slack);
    assert!(n.webhooks[1].wants(NotifyEvent::QuestionAsked) && !n.webhooks[1].wants(NotifyEvent::WorkflowFailed));
    assert!(!format!("{:?}", n.webhooks[1]).contains("s3cret"), "Debug must not show the secret");
    assert!(!SettConfig::parse("sett.yml", GOOD).unwrap().notifications.is_enabled());

    let bad = |yml: &str| SettConfig::parse("sett.yml", &format!("{GOOD}notifications:\n{yml}")).unwrap_err();
    assert_eq!(bad("  webhooks:\n    - url: ftp://x\n").key_path, "notifications.webhooks[0].url");
    assert!(bad("  webhooks:\n    - url: http://x\n      events: [lunch]\n").key_path.starts_with("notifications"));
    assert_eq!(
        bad("  webhooks:\n    - {name: a, url: http://x}\n    - {name: a, url: http://y}\n").key_path,
        "notifications.webhooks[1].name"
    );
    assert_eq!(
        bad("  webhooks:\n    - {url: http://x, secret: a, secret_env: B}\n").key_path,
        "notifications.webhooks[0].secret"
    );
    assert_eq!(bad("  hooks: []\n").key_path, "notifications.hooks");
}

#[test]
fn bad_values_are_explained() {
    let e = SettConfig::parse("x.yml", &GOOD.replace("bid_timeout: 5s", "bid_timeout: soon")).unwrap_err();
    assert_eq!(e.key_path, "orchestrator.bid_timeout");
    let e =
        SettConfig::parse("x.yml", &GOOD.replace("bidding_strategy: review", "bidding_strategy: maybe")).unwrap_err();
    assert!(e.key_path.starts_with("agents.Reviewer"), "{e}");
    let e = SettConfig::parse("x.yml", "version: \"1.0\"\nagents: {}\n").unwrap_err();
    assert_eq!(e.key_path, "agents");
    let e = SettConfig::parse("x.yml", "version: [").unwrap_err();
    assert!(e.message.contains("invalid YAML"), "{e}");
    let e = SettConfig::parse("x.yml", &GOOD.replace("Reviewer:", "user:")).unwrap_err();
    assert_eq!(e.key_path, "agents.user");
}

#[test]
fn check_reports_every_independent_error_with_its_line() {
    let text = "version: \"1.0\"\norchestrator:\n  bid_timeout: soon\n  colour: blue\nagents:\n  Coder:\n    command: [\"./run.sh\"]\n    bidding_strategy: maybe\n    timeout: 1m\n    role: coder\n  Reviewer:\n    bidding_strategy: review\n";
    let issues = SettConfig::check("sett.yml", text);
    let got: Vec<(Option<usize>, &str)> = issues.iter().map(|i| (i.line, i.error.key_path.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(3), "orchestrator.bid_timeout"),
            (Some(4), "orchestrator.colour"),
            (Some(8), "agents.Coder.bidding_strategy"),
            (Some(10), "agents.Coder.role"),
            (Some(11), "agents.Reviewer"),
        ],
        "{issues:#?}"
    );
    assert!(issues.iter().all(|i| !i.error.fix.is_empty()));
    assert!(SettConfig::check("sett.yml", GOOD).is_empty());
    let syntax = SettConfig::check("x.yml", "version: \"1.0\"\nagents:\n  A: [\n");
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].line.is_some(), "{syntax:?}");
}

#[test]
fn the_schema_describes_every_key_and_rejects_unknown_ones() {
    let schema = json_schema();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["version", "agents"]));
    let text = schema.to_string();
    for key in
        ["bid_timeout", "on_question_timeout", "bidding_strategy", "target_types", "max_concurrent", "expose_redis"]
    {
        assert!(text.contains(&format!("\"{key}\"")), "{key} missing from the schema");
    }
}
