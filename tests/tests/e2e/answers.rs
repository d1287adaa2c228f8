//! Structured questions end to end: an agent asks for one of several options or for a form (a
//! JSON Schema subset); the operator answers by option number or name, with `--json`, or at a
//! terminal prompt driven through a pseudo-terminal; a wrong answer is refused with every
//! problem listed and nothing written; `on_question_timeout: default` answers with the spec's
//! default; an agent's invalid spec fails its run with the problems.

use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;
use expectrl::{Eof, Expect};
use sett_core::config::OnQuestionTimeout;
use sett_core::event::{EventData, EventKind};
use sett_core::{ArtifactId, StructuralType};
use sett_e2e::{Env, structured_asker_script, text};

const MINUTE: Duration = Duration::from_secs(60);

const CHOICE: &str =
    r#"{"question": "Which storage?", "options": ["SQLite", "Postgres", "Redis"], "default": "SQLite"}"#;

const FORM: &str = r#"{"question": "How should it be deployed?", "schema": {"type": "object",
  "properties": {
    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2, "description": "pods to run"},
    "region": {"type": "string", "enum": ["eu", "us"]},
    "dry_run": {"type": "boolean", "default": true},
    "checks": {"type": "array", "items": {"type": "string", "enum": ["lint", "test"]}, "default": ["test"]}
  },
  "required": ["replicas", "region"]}}"#;

fn yml(extra_orchestrator: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s{extra_orchestrator}}}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
"#
    )
}

async fn env_asking(spec: &str, extra_orchestrator: &str) -> Env {
    let mut env = Env::new(&yml(extra_orchestrator), &[("asker.sh", &structured_asker_script(spec))]).await;
    env.up();
    env
}

fn open_questions(env: &Env) -> Vec<serde_json::Value> {
    let out = env.ok(&["questions", "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().cloned().unwrap_or_default()
}

/// Waits for the question the goal's workflow asks and returns its id.
async fn question_of(env: &Env, goal: ArtifactId) -> String {
    let artifacts = env
        .wait_for(MINUTE, "the question", |a| {
            a.iter().any(|x| x.structural_type == StructuralType::Question && x.source_artifacts.contains(&goal))
        })
        .await;
    let q = artifacts
        .iter()
        .find(|x| x.structural_type == StructuralType::Question && x.source_artifacts.contains(&goal))
        .unwrap();
    // Listed once the orchestrator has opened it.
    let id = q.id.to_string();
    let qid = q.id;
    env.wait_events(
        MINUTE,
        "the question opened",
        1,
        |e| matches!(&e.data, EventData::QuestionAsked(a) if a.question_id == qid),
    )
    .await;
    id
}

/// The Terminal payload of the goal's workflow (the answer's JSON as the agent received it).
async fn outcome(env: &Env, goal: ArtifactId) -> String {
    let artifacts = env
        .wait_for(MINUTE, "the Terminal", |a| {
            a.iter().any(|x| x.structural_type == StructuralType::Terminal && x.source_artifacts.contains(&goal))
        })
        .await;
    artifacts
        .iter()
        .find(|x| x.structural_type == StructuralType::Terminal && x.source_artifacts.contains(&goal))
        .unwrap()
        .payload
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_option_is_chosen_by_number_and_by_name() {
    let mut env = env_asking(CHOICE, "").await;
    let by_number = env.forage("First service");
    let by_name = env.forage("Second service");
    let q1 = question_of(&env, by_number).await;
    let q2 = question_of(&env, by_name).await;

    // `sett questions` shows the options, numbered, with the default; JSON carries the spec.
    let listed = open_questions(&env);
    let q = listed.iter().find(|q| q["id"] == q1.as_str()).unwrap();
    assert_eq!(q["question"], "Which storage?");
    assert_eq!(q["answer_spec"]["options"], serde_json::json!(["SQLite", "Postgres", "Redis"]));
    let table = env.sett(&["questions"]).env("COLUMNS", "200").output().unwrap();
    let table = text(&table.stdout);
    assert!(table.contains("pick one: 1 SQLite (default) | 2 Postgres | 3 Redis"), "{table}");

    // `sett status` says how long the oldest question has waited (the SLA view).
    let status: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(status["open_questions"], 2);
    assert!(status["oldest_question_age_ms"].as_i64().is_some_and(|ms| ms >= 0), "{status}");
    assert!(env.ok(&["status"]).contains("Questions:  2 open; the oldest has waited"));

    env.ok(&["answer", &q1, "2"]);
    env.ok(&["answer", &q2, "redis"]);
    assert_eq!(outcome(&env, by_number).await, r#""Postgres""#);
    assert_eq!(outcome(&env, by_name).await, r#""Redis""#);

    // A number out of range is refused with the options.
    let third = env.forage("Third service");
    let q3 = question_of(&env, third).await;
    let out = env.run(&["answer", &q3, "7"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("\"7\" is not an option") && err.contains("1 \"SQLite\", 2 \"Postgres\", 3 \"Redis\""),
        "{err}"
    );
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_form_answer_is_refused_whole_then_a_valid_one_resumes_the_agent() {
    let mut env = env_asking(FORM, "").await;
    let goal = env.forage("Deploy it");
    let qid = question_of(&env, goal).await;

    let out = env.run(&["answer", &qid, "--json", r#"{"replicas": 0, "region": "mars", "colour": "red"}"#]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for expected in [
        "nothing was written",
        "colour: unknown field",
        "replicas: must be at least 1, got 0",
        "region: expected one of 1 \"eu\", 2 \"us\", got \"mars\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(env.artifacts_of(StructuralType::Answer).await.is_empty(), "nothing was written");
    assert_eq!(open_questions(&env).len(), 1, "the question is still open");
    // Free text for a form is refused too, naming the fields.
    let out = env.run(&["answer", &qid, "three please"]);
    assert!(text(&out.stderr).contains("this question wants a form (replicas, region, dry_run, checks)"));

    env.ok(&["answer", &qid, "--json", r#"{"replicas": 3, "region": "eu"}"#]);
    let got: serde_json::Value = serde_json::from_str(&outcome(&env, goal).await).unwrap();
    assert_eq!(got, serde_json::json!({"replicas": 3, "region": "eu", "dry_run": true, "checks": ["test"]}));
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("stdin-resume.json")).unwrap()).unwrap();
    assert_eq!(resumed["answers"][0]["value"]["replicas"], 3, "the agent receives the answer as JSON");
    assert_eq!(resumed["answers"][0]["question"]["id"], qid.as_str());
    env.ok(&["verify"]);
    env.down();
}

/// Reads the pty to the end and returns (its output, the exit code).
fn finish(mut s: Session) -> (String, i32) {
    let rest = s.expect(Eof).expect("eof");
    let mut bytes = rest.before().to_vec();
    for m in rest.matches() {
        bytes.extend_from_slice(m);
    }
    let code = match s.get_process().wait().expect("wait") {
        WaitStatus::Exited(_, c) => c,
        other => panic!("sett did not exit normally: {other:?}"),
    };
    (String::from_utf8_lossy(&bytes).into_owned(), code)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_prompts_field_by_field() {
    let mut env = env_asking(FORM, "").await;
    let goal = env.forage("Deploy it interactively");
    let qid = question_of(&env, goal).await;
    let mut cmd = env.sett(&["answer", &qid]);
    // Inherit: the pty becomes its stdin (a null stdin would make the command non-interactive).
    cmd.env("TERM", "xterm").stdin(std::process::Stdio::inherit());
    let (out, code) = tokio::task::spawn_blocking(move || {
        let mut s = Session::spawn(cmd).expect("spawn in a pty");
        s.set_expect_timeout(Some(MINUTE));
        s.expect("How should it be deployed?").expect("the question");
        // replicas: a Text prompt with the default 2; a value out of range is refused in place.
        s.expect("replicas *").expect("the replicas prompt");
        // The default is shown, not typed: what is typed replaces it.
        s.send("11\r").unwrap();
        s.expect("must be at most 10, got 11").expect("the range is checked as typed");
        s.send("\x7f\x7f4\r").unwrap(); // two backspaces, then 4
        // region: a Select; one down arrow picks "us".
        s.expect("region *").expect("the region prompt");
        s.send("\x1b[B").unwrap();
        s.send("\r").unwrap();
        // dry_run: a Confirm, default yes.
        s.expect("dry_run").expect("the dry_run prompt");
        s.send("n\r").unwrap();
        // checks: a MultiSelect with "test" checked; space toggles "lint" (the first).
        s.expect("checks").expect("the checks prompt");
        s.send(" ").unwrap();
        s.send("\r").unwrap();
        finish(s)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    let got: serde_json::Value = serde_json::from_str(&outcome(&env, goal).await).unwrap();
    assert_eq!(got, serde_json::json!({"replicas": 4, "region": "us", "dry_run": false, "checks": ["lint", "test"]}));
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn on_question_timeout_default_answers_with_the_default() {
    let mut env = env_asking(CHOICE, ", question_timeout: 2s, on_question_timeout: default").await;
    let goal = env.forage("Nobody answers; take the default");
    assert_eq!(outcome(&env, goal).await, r#""SQLite""#);
    let answer = env.artifacts_of(StructuralType::Answer).await.pop().unwrap();
    assert!(answer.timed_out, "recorded as timed out");
    assert_eq!(answer.answered_by.as_deref(), Some("orchestrator"));
    assert_eq!(answer.payload, r#""SQLite""#);
    let timed_out = env.events_of(EventKind::QuestionTimedOut).await;
    assert!(matches!(&timed_out[0].data, EventData::QuestionTimedOut(t) if t.policy == OnQuestionTimeout::Default));
    env.ok(&["verify"]);
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agents_invalid_spec_fails_its_run_with_every_problem() {
    let mut env = env_asking(r#"{"question": "?", "options": [], "multiple": "yes"}"#, "").await;
    env.forage("Ask badly");
    let artifacts =
        env.wait_for(MINUTE, "the failure", |a| a.iter().any(|x| x.structural_type == StructuralType::Failure)).await;
    let failure = artifacts.iter().find(|x| x.artifact_type == "ToolExecutionFailure").unwrap();
    assert!(failure.payload.contains("answer spec is invalid"), "{}", failure.payload);
    assert!(failure.payload.contains("options: must list at least one option"), "{}", failure.payload);
    assert!(failure.payload.contains("multiple: must be true or false"), "{}", failure.payload);
    assert!(env.artifacts_of(StructuralType::Question).await.is_empty());
    env.down();
}
