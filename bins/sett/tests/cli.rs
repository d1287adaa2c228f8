//! The operator commands end to end: the real `sett` binary against a real Redis, with data
//! seeded through `sett_store` (artifacts, claims via the state machine's `new_claim`, open
//! questions, events). Covers forage (and --watch), hoard, questions (and --wait), answer
//! (races, --file, stdin), export/import, watch, list, status, claims and logs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use sett_core::event::{ClaimCreated, ClaimEnded, EventData, QuestionAsked};
use sett_core::machine::new_claim;
use sett_core::policy::{AgentPolicy, Policy};
use sett_core::record::ComponentRecord;
use sett_core::{AgentName, Artifact, ArtifactId, Claim, ClaimId, ClaimStatus, StructuralType};
use sett_store::{InstanceRecord, InstanceStatus, LockHolder, LockPurpose, QuestionOp, Store, WriteOutcome, now_ms};
use sett_store::{new_artifact_id, new_claim_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A generous bound for anything that should be prompt.
const PROMPT: Duration = Duration::from_secs(10);

fn sett_at(url: &str, store: Option<&Store>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sett"));
    c.args(["--redis-url", url]);
    if let Some(s) = store {
        c.args(["--name", s.instance().as_str()]);
    }
    c.env("SETT_OPERATOR", "test-operator")
        .env("NO_COLOR", "1")
        .env_remove("SETT_INSTANCE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

fn sett(store: &Store) -> Command {
    sett_at(&sett_testkit::redis_url(), Some(store))
}

async fn run(store: &Store, args: &[&str]) -> Output {
    sett(store).args(args).output().await.expect("run sett")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out(o), err(o)))
}

/// The `id` of every object of a JSON array on stdout.
fn ids_of(o: &Output) -> Vec<String> {
    let v = json(o);
    v.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

fn policy() -> Policy {
    Policy {
        agents: [(
            agent("Coder"),
            AgentPolicy { timeout_ms: 60_000, question_timeout_ms: None, via_worker: false, approval: None },
        )]
        .into(),
        max_review_iterations: 3,
        bid_timeout_ms: 30_000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    }
}

fn agent(n: &str) -> AgentName {
    AgentName::parse(n).unwrap()
}

async fn put(store: &Store, a: &Artifact) {
    assert!(matches!(store.create_artifact(a).await.unwrap(), sett_store::CreateOutcome::Created { .. }));
}

fn derived(st: StructuralType, ty: &str, by: &str, source: &Artifact, claim: Option<ClaimId>) -> Artifact {
    let mut a = Artifact::new_root(new_artifact_id(), st, ty, format!("{ty} payload"), by, now_ms());
    a.source_artifacts = vec![source.id];
    a.claim_id = claim;
    a
}

/// A root Standard artifact by `user`, stored.
async fn new_goal(store: &Store, ty: &str, payload: &str) -> Artifact {
    let a = Artifact::new_root(new_artifact_id(), StructuralType::Standard, ty, payload, "user", now_ms());
    put(store, &a).await;
    a
}

/// A claim on `on`, created like the orchestrator does (with its `claim_created` event).
async fn claim_on(store: &Store, on: &Artifact) -> Claim {
    let c = new_claim(new_claim_id(), on, &policy(), now_ms());
    let ev = EventData::ClaimCreated(ClaimCreated::new(&c));
    let w = store.write_claim(&c, None, true, &[], &[ev], now_ms()).await.unwrap();
    assert_eq!(w, WriteOutcome::Written);
    c
}

/// Asks a question on `claim` the way the orchestrator records it: the Question artifact, then
/// the claim moves to pending_answer with the question in its open set, the index entry and the
/// `question_asked` event in one write.
async fn ask(store: &Store, claim: &Claim, text: &str, deadline_ms: Option<i64>) -> Artifact {
    let target = store.get_artifact(&claim.artifact_id).await.unwrap().unwrap();
    let mut q = derived(StructuralType::Question, "Question", "Coder", &target, Some(claim.id));
    q.payload = text.to_owned();
    put(store, &q).await;
    let current = store.get_claim(&claim.id).await.unwrap().unwrap();
    let mut next = current.clone();
    next.revision += 1;
    next.resume_status = Some(current.status);
    next.status = ClaimStatus::PendingAnswer;
    next.question_id = Some(q.id);
    next.open_questions.insert(q.id, sett_core::claim::OpenQuestion::new(agent("Coder"), now_ms(), deadline_ms));
    let ev = EventData::QuestionAsked(QuestionAsked {
        agent: agent("Coder"),
        artifact_id: q.id,
        claim_id: claim.id,
        deadline_ms,
        question_id: q.id,
        to: Vec::new(),
    });
    let w = store
        .write_claim(
            &next,
            Some(current.revision),
            false,
            &[QuestionOp::Open { question: q.id, asked_at_ms: now_ms() }],
            &[ev],
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(w, WriteOutcome::Written);
    q
}

/// A goal with a claim and an open question on it.
async fn seed_question(store: &Store, text: &str) -> (Artifact, Claim, Artifact) {
    let goal = new_goal(store, "GoalDefined", "the goal").await;
    let claim = claim_on(store, &goal).await;
    let q = ask(store, &claim, text, Some(now_ms() + 3_600_000)).await;
    (goal, claim, q)
}

/// Reads stdout lines of a running `sett` until `pred` holds for one; returns the lines read.
/// Reads byte by byte: a buffered reader would swallow lines the caller reads afterwards.
async fn read_until(child: &mut Child, lines: &mut Vec<String>, pred: impl Fn(&str) -> bool) {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let found = tokio::time::timeout(PROMPT, async {
        let mut l = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if stdout.read(&mut b).await.unwrap() == 0 {
                return false;
            }
            if b[0] != b'\n' {
                l.push(b[0]);
                continue;
            }
            let line = String::from_utf8_lossy(&l).trim_end().to_owned();
            l.clear();
            let hit = pred(&line);
            lines.push(line);
            if hit {
                return true;
            }
        }
    })
    .await;
    assert_eq!(found, Ok(true), "never saw the expected line; got {lines:?}");
}

// ---------------------------------------------------------------- forage

#[tokio::test]
async fn forage_prints_the_id_of_a_stored_goal() {
    let store = sett_testkit::store().await;
    let o = run(&store, &["forage", "--goal", "write a haiku", "-q"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let id = ArtifactId::parse(out(&o).trim()).expect("forage -q prints only the id");
    let a = store.get_artifact(&id).await.unwrap().expect("the goal exists");
    assert_eq!((a.structural_type, a.artifact_type.as_str()), (StructuralType::Standard, "GoalDefined"));
    assert_eq!((a.produced_by_role.as_str(), a.payload.as_str()), ("user", "write a haiku"));
    assert!(a.source_artifacts.is_empty());

    let o = run(&store, &["forage", "--goal", "another", "-o", "json"]).await;
    assert_eq!(code(&o), 0);
    let v = json(&o);
    assert!(store.artifact_exists(&ArtifactId::parse(v["id"].as_str().unwrap()).unwrap()).await.unwrap());

    let o = run(&store, &["forage", "--goal", "  "]).await;
    assert_eq!(code(&o), 2, "an empty goal is a usage error");
    assert!(err(&o).contains("--goal"));
}

/// Starts `forage --watch` and returns the child and the goal it wrote.
async fn start_forage_watch(store: &Store, timeout: &str) -> (Child, Vec<String>, Artifact) {
    let mut child =
        sett(store).args(["forage", "--goal", "g", "--watch", "--timeout", timeout, "-o", "jsonl"]).spawn().unwrap();
    let mut lines = Vec::new();
    read_until(&mut child, &mut lines, |l| l.contains("\"event_id\"")).await;
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let goal = store.get_artifact(&ArtifactId::parse(v["id"].as_str().unwrap()).unwrap()).await.unwrap().unwrap();
    (child, lines, goal)
}

#[tokio::test]
async fn forage_watch_ends_with_the_workflow() {
    let store = sett_testkit::store().await;
    // Terminal: exit 0, and only this workflow's events are streamed.
    let (child, _, goal) = start_forage_watch(&store, "30s").await;
    let claim = claim_on(&store, &goal).await;
    let unrelated = new_goal(&store, "Noise", "n").await;
    let code_art = derived(StructuralType::Standard, "Code", "Coder", &goal, Some(claim.id));
    put(&store, &code_art).await;
    put(&store, &derived(StructuralType::Terminal, "Done", "Coder", &code_art, None)).await;
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    assert!(text.contains(&claim.id.to_string()) && text.contains(&code_art.id.to_string()), "{text}");
    assert!(!text.contains(&unrelated.id.to_string()), "events of another workflow leaked: {text}");

    // Failure: exit 1 with its reason.
    let (child, _, goal) = start_forage_watch(&store, "30s").await;
    let mut f = derived(StructuralType::Failure, "ToolExecutionFailure", "Coder", &goal, None);
    f.payload = r#"{"reason":"the tool exited with 3","exit_code":3}"#.into();
    put(&store, &f).await;
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("the tool exited with 3"), "{}", err(&o));

    // Nobody bids on the goal: its claim goes dormant and nothing can follow.
    let (child, _, goal) = start_forage_watch(&store, "30s").await;
    let claim = claim_on(&store, &goal).await;
    let data = EventData::ClaimDormant(ClaimEnded::new(&claim));
    store.append_event(&data, now_ms()).await.unwrap();
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("dormant") && err(&o).contains("no agent bid"), "{}", err(&o));

    // Nothing happens: the timeout exits 2.
    let o = run(&store, &["forage", "--goal", "g", "--watch", "--timeout", "1s"]).await;
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(err(&o).contains("Timed out"));
}

// ---------------------------------------------------------------- hoard

fn with_id(mut a: Artifact, id: &str) -> Artifact {
    a.id = ArtifactId::parse(id).unwrap();
    a.logical_id = a.id;
    a
}

#[tokio::test]
async fn hoard_lists_filters_and_resolves_short_ids() {
    let store = sett_testkit::store().await;
    let t = now_ms() - 60_000;
    let goal = with_id(
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "GoalDefined", "goal", "user", t),
        "0190c2b4-7d3e-7a1b-9c2d-000000000001",
    );
    let mut code_a = with_id(
        derived(StructuralType::Standard, "Code", "Coder", &goal, None),
        "0190c2b4-7d3e-7a1b-9c2d-000000000002",
    );
    code_a.created_at_ms = t + 1;
    let mut review = derived(StructuralType::Review, "Review", "Reviewer", &code_a, None);
    review.created_at_ms = t + 2;
    for a in [&goal, &code_a, &review] {
        put(&store, a).await;
    }
    let ids = ids_of;

    let o = run(&store, &["hoard", "-o", "json"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(ids(&o), [goal.id, code_a.id, review.id].map(|i| i.to_string()), "oldest first");
    assert_eq!(ids(&run(&store, &["hoard", "-o", "json", "--type", "Code"]).await), [code_a.id.to_string()]);
    assert_eq!(ids(&run(&store, &["hoard", "-o", "json", "--agent", "Reviewer"]).await), [review.id.to_string()]);
    assert_eq!(
        ids(&run(&store, &["hoard", "-o", "json", "--structural-type", "Review"]).await),
        [review.id.to_string()]
    );
    let o = run(&store, &["hoard", "-o", "jsonl"]).await;
    assert_eq!(out(&o).lines().count(), 3);
    let o = run(&store, &["hoard"]).await;
    assert!(out(&o).contains("GoalDefined") && out(&o).contains("Reviewer"), "{}", out(&o));
    assert_eq!(code(&run(&store, &["hoard", "--structural-type", "standard"]).await), 2);

    // One artifact by short id, full id.
    let short = review.id.short();
    let o = run(&store, &["hoard", &short, "-o", "json"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(json(&o)["id"], review.id.to_string());
    let o = run(&store, &["hoard", &goal.id.to_string()]).await;
    assert!(out(&o).contains("payload:") && out(&o).contains("goal"), "{}", out(&o));

    // Ambiguous: both seeded ids start with 0190c2b47d3e.
    let o = run(&store, &["hoard", "0190c2b4-7d3e"]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains(&goal.id.to_string()) && err(&o).contains(&code_a.id.to_string()), "{}", err(&o));
    // Unknown.
    let o = run(&store, &["hoard", "ffffffff"]).await;
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains(&format!("Error: no artifact matches 'ffffffff' in instance '{}'", store.instance())),
        "{}",
        err(&o)
    );
    // Not an id at all: refused before any lookup.
    for bad in ["abc", "0190c*", "zzzzzzzz"] {
        let o = run(&store, &["hoard", bad]).await;
        assert_eq!(code(&o), 2, "{bad}: {}", err(&o));
        assert!(err(&o).contains("at least 6 hexadecimal"), "{}", err(&o));
    }
}

#[tokio::test]
async fn large_hoards_stream_in_fixed_columns_with_full_ids() {
    let store = sett_testkit::store().await;
    // More than the largest sized table (2,000): rows are streamed as they are read.
    let t = now_ms() - 60_000;
    let mut ids = Vec::new();
    for chunk in (0..2_100).collect::<Vec<i64>>().chunks(100) {
        let batch: Vec<Artifact> = chunk
            .iter()
            .map(|i| {
                let ty = if i % 2 == 0 { "Even" } else { "Odd" };
                Artifact::new_root(
                    new_artifact_id(),
                    StructuralType::Standard,
                    ty,
                    format!("payload {i}"),
                    "user",
                    t + i,
                )
            })
            .collect();
        futures::future::join_all(batch.iter().map(|a| put(&store, a))).await;
        ids.extend(batch.iter().map(|a| a.id.to_string()));
    }
    let o = run(&store, &["hoard"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID ") && lines[0].ends_with("SUMMARY"), "{}", lines[0]);
    let shown: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(shown, ids, "every artifact, oldest first, by full id");
    assert!(lines[1].contains("Even") && lines[1].contains("payload 0"), "{}", lines[1]);
    // Filters apply while streaming; JSON is one array, exactly as a whole-array print.
    let o = run(&store, &["hoard", "--type", "Odd", "-o", "json"]).await;
    let v = json(&o);
    let odd: Vec<String> = ids.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(ids_of(&o), odd);
    assert_eq!(out(&o), format!("{}\n", serde_json::to_string_pretty(&v).unwrap()));
    let o = run(&store, &["hoard", "-o", "jsonl"]).await;
    assert_eq!(out(&o).lines().count(), 2_100);
}

// ---------------------------------------------------------------- questions

#[tokio::test]
async fn questions_lists_open_questions_oldest_first() {
    let store = sett_testkit::store().await;
    let o = run(&store, &["questions", "-o", "json"]).await;
    assert_eq!((code(&o), json(&o)), (0, serde_json::json!([])));
    let (_, claim, q1) = seed_question(&store, "Which database?").await;
    let (_, _, q2) = seed_question(&store, "Which port?").await;
    let o = run(&store, &["questions", "-o", "json"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v = json(&o);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], q1.id.to_string());
    assert_eq!(rows[1]["id"], q2.id.to_string());
    // The short id is a prefix of this question's id and of no other open question's.
    let short = rows[0]["short_id"].as_str().unwrap();
    let short_hex = short.replace('-', "");
    let hex = |id: &ArtifactId| id.as_uuid().simple().to_string();
    assert!(short.len() >= 8 && hex(&q1.id).starts_with(&short_hex) && !hex(&q2.id).starts_with(&short_hex), "{short}");
    assert_eq!(rows[0]["agent"], "Coder");
    assert_eq!(rows[0]["claim_id"], claim.id.to_string());
    assert_eq!(rows[0]["text"], "Which database?");
    let left = rows[0]["time_left_ms"].as_i64().unwrap();
    assert!(left > 3_500_000 && left <= 3_600_000, "{left}");
    let o = run(&store, &["questions"]).await;
    assert!(out(&o).contains("Which database?") && out(&o).contains(short), "{}", out(&o));
    assert_eq!(out(&run(&store, &["questions", "-o", "jsonl"]).await).lines().count(), 2);
}

/// True when some client of the Redis at `url` is blocked in XREAD.
async fn someone_blocks_in_xread(url: &str) -> bool {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-u", url, "CLIENT", "LIST"])
        .output()
        .await
        .expect("redis-cli (package redis-tools)");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains("cmd=xread") && l.contains("flags=b"))
}

#[tokio::test]
async fn questions_wait_is_woken_by_a_new_question() {
    // A Redis of its own, so "a client is blocked in XREAD" can only be this `sett`.
    let dir = tempfile::tempdir().unwrap();
    let server = sett_testkit::RedisServer::start(dir.path(), &[]);
    let redis = sett_testkit::redis_at(&server.url()).await;
    let store = redis.instance(&sett_testkit::instance_name());
    put(&store, &Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Noise", "n", "user", now_ms())).await;

    let child = sett_at(&server.url(), Some(&store))
        .args(["questions", "--wait", "--timeout", "60s", "-o", "json"])
        .spawn()
        .unwrap();
    // Wait until it is blocked on the stream (not polling): then the question arrives.
    let blocked = tokio::time::timeout(PROMPT, async {
        while !someone_blocks_in_xread(&server.url()).await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(blocked.is_ok(), "sett questions --wait never blocked on the event stream");
    let (_, _, q) = seed_question(&store, "Proceed?").await;
    // Woken within PROMPT, well under the 60 s --timeout: by the question, not by the timeout.
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.expect("woken promptly").unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(json(&o)[0]["id"], q.id.to_string());

    // Already open: returns at once.
    let o = sett_at(&server.url(), Some(&store)).args(["questions", "--wait", "-q"]).output().await.unwrap();
    assert_eq!((code(&o), out(&o).trim().to_owned()), (0, q.id.to_string()));
}

#[tokio::test]
async fn questions_wait_times_out_with_exit_code_2() {
    let store = sett_testkit::store().await;
    let started = Instant::now();
    let o = run(&store, &["questions", "--wait", "--timeout", "1s"]).await;
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(err(&o).contains("Timed out"), "{}", err(&o));
    assert!(out(&o).is_empty());
    assert!(started.elapsed() < PROMPT);
    assert_eq!(code(&run(&store, &["questions", "--timeout", "1s"]).await), 2, "--timeout needs --wait");
}

// ---------------------------------------------------------------- answer

#[tokio::test]
async fn concurrent_answers_one_wins_the_other_is_told_who() {
    let store = sett_testkit::store().await;
    let (_, claim, q) = seed_question(&store, "Ship it?").await;
    let short = q.id.short();
    let spawn = |who: &str| {
        sett(&store).env("SETT_OPERATOR", who).args(["answer", &short, &format!("yes from {who}")]).spawn().unwrap()
    };
    let (alice, bob) = (spawn("alice"), spawn("bob"));
    let (a, b) = tokio::join!(alice.wait_with_output(), bob.wait_with_output());
    let (a, b) = (a.unwrap(), b.unwrap());
    let (winner, loser, who) = match (code(&a), code(&b)) {
        (0, 1) => (a, b, "alice"),
        (1, 0) => (b, a, "bob"),
        other => panic!("expected exactly one success, got {other:?}: {} / {}", err(&a), err(&b)),
    };
    let answer_id = ArtifactId::parse(out(&winner).trim()).unwrap();
    let shown = &q.id.to_string()[..13];
    assert!(
        err(&loser).contains(&format!("Error: question {shown} was already answered by {who} at ")),
        "{}",
        err(&loser)
    );
    let rec = store.answer_record(&q.id).await.unwrap().unwrap();
    assert_eq!((rec.answer_id, rec.answered_by.as_str()), (answer_id, who));
    let answer = store.get_artifact(&answer_id).await.unwrap().unwrap();
    assert_eq!(answer.structural_type, StructuralType::Answer);
    assert_eq!(answer.artifact_type, "Answer");
    assert_eq!(answer.payload, format!("yes from {who}"));
    assert_eq!(answer.source_artifacts, vec![q.id]);
    assert_eq!(answer.claim_id, Some(claim.id));
    assert_eq!(answer.produced_by_role, format!("human:{who}"));
    assert_eq!(answer.answered_by.as_deref(), Some(who));
    assert!(store.open_questions().await.unwrap().is_empty(), "the answer closed the question");
    let answered: Vec<_> = store
        .events_after(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::QuestionAnswered(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].answered_by, who);
}

#[tokio::test]
async fn answers_from_a_file_and_stdin_and_refusals() {
    let store = sett_testkit::store().await;
    let (_, _, q1) = seed_question(&store, "One?").await;
    let (goal, _, q2) = seed_question(&store, "Two?").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answer.txt");
    std::fs::write(&file, "from a file\nsecond line\n").unwrap();
    let o = run(&store, &["answer", &q1.id.to_string(), "--file", file.to_str().unwrap()]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let a1 = store.get_artifact(&ArtifactId::parse(out(&o).trim()).unwrap()).await.unwrap().unwrap();
    assert_eq!(a1.payload, "from a file\nsecond line");
    assert_eq!(a1.answered_by.as_deref(), Some("test-operator"));

    // Empty text is refused, and nothing is written.
    let o = run(&store, &["answer", &q2.id.to_string(), ""]).await;
    assert_eq!(code(&o), 2);
    assert!(err(&o).contains("empty"));
    assert!(store.answer_record(&q2.id).await.unwrap().is_none());

    // Both questions were asked within the same second: 8 characters name both of them.
    let (_, _, q3) = seed_question(&store, "Three?").await;
    let o = run(&store, &["answer", &q2.id.short(), "x"]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains(&q2.id.to_string()) && err(&o).contains(&q3.id.to_string()), "{}", err(&o));
    // The short ids `sett questions` shows are unambiguous.
    let shown = json(&run(&store, &["questions", "-o", "json"]).await);
    let q2_short = shown.as_array().unwrap().iter().find(|r| r["id"] == q2.id.to_string()).unwrap()["short_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(q2_short.len() >= 8);
    let mut child = sett(&store).args(["answer", &q2_short, "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"from stdin\n").await.unwrap();
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let a2 = store.get_artifact(&ArtifactId::parse(out(&o).trim()).unwrap()).await.unwrap().unwrap();
    assert_eq!(a2.payload, "from stdin");

    // A question whose claim ended unanswered (e.g. timed out) cannot be answered any more.
    let (_, dead_claim, dead_q) = seed_question(&store, "Too late?").await;
    let mut ended = store.get_claim(&dead_claim.id).await.unwrap().unwrap();
    let rev = ended.revision;
    ended.revision += 1;
    ended.status = ClaimStatus::Terminated;
    ended.termination_reason = Some("question timed out".into());
    ended.open_questions.clear();
    let close = [QuestionOp::Close { question: dead_q.id }];
    let w = store.write_claim(&ended, Some(rev), false, &close, &[], now_ms()).await;
    assert_eq!(w.unwrap(), WriteOutcome::Written);
    let o = run(&store, &["answer", &dead_q.id.to_string(), "late"]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("can no longer be answered") && err(&o).contains("question timed out"), "{}", err(&o));
    assert!(store.answer_record(&dead_q.id).await.unwrap().is_none());

    // Not a question; unknown id; no text at all.
    let o = run(&store, &["answer", &goal.id.to_string(), "x"]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("not a Question"), "{}", err(&o));
    let o = run(&store, &["answer", "abcdef12", "x"]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("no question matches 'abcdef12'"), "{}", err(&o));
    assert_eq!(code(&run(&store, &["answer", &q1.id.short()]).await), 2);
}

// ---------------------------------------------------------------- export / import

#[tokio::test]
async fn export_import_round_trip_is_exact() {
    let store = sett_testkit::store().await;
    let (goal, claim, q) = seed_question(&store, "Backup?").await;
    put(&store, &derived(StructuralType::Standard, "Code", "Coder", &goal, Some(claim.id))).await;
    store.submit_bid(&claim.id, &agent("Coder"), sett_core::BidType::Exclusive, now_ms()).await.unwrap();
    let group = store.group_consumer("orchestrator", "orchestrator", sett_store::GroupStart::Beginning).await.unwrap();
    group.ensure_group().await.unwrap();
    assert_eq!(code(&run(&store, &["answer", &q.id.short(), "yes"]).await), 0);

    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    let o = run(&store, &["export", "--file", first.to_str().unwrap()]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let hoard_before = out(&run(&store, &["hoard", "-o", "json"]).await);
    let stdout_export = out(&run(&store, &["export"]).await);
    assert_eq!(stdout_export, std::fs::read_to_string(&first).unwrap(), "stdout and --file exports agree");

    // Importing over existing data needs --force.
    let o = run(&store, &["import", first.to_str().unwrap()]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("already has") && err(&o).contains("--force"), "{}", err(&o));

    store.scan_instance(true, |_| {}).await.unwrap();
    assert_eq!(store.artifact_count().await.unwrap(), 0);
    let mut child = sett(&store).args(["import", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(std::fs::read(&first).unwrap().as_slice()).await.unwrap();
    let o = child.wait_with_output().await.unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));

    assert_eq!(code(&run(&store, &["export", "--file", second.to_str().unwrap()]).await), 0);
    let a = std::fs::read_to_string(&first).unwrap();
    let b = std::fs::read_to_string(&second).unwrap();
    assert!(a.lines().count() >= 10, "the export covers every family: {a}");
    assert_eq!(a, b, "export → delete → import → export is identical");
    assert_eq!(out(&run(&store, &["hoard", "-o", "json"]).await), hoard_before);

    // --force replaces over existing data; a bad file names its line.
    assert_eq!(code(&run(&store, &["import", "--force", first.to_str().unwrap()]).await), 0);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"key\":\"x\"}\n").unwrap();
    let o = run(&store, &["import", "--force", bad.to_str().unwrap()]).await;
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("line 1"), "{}", err(&o));
}

// ---------------------------------------------------------------- watch

#[tokio::test(flavor = "multi_thread")]
async fn watch_replays_a_history_of_several_pages_in_order_exactly_once() {
    // More than two replay pages (2,000 entries each; the next page is read while one prints).
    let store = sett_testkit::store().await;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..4_500 {
        let s = store.clone();
        pending.push(async move { new_goal(&s, "GoalDefined", &format!("g{i}")).await });
        if pending.len() >= 64 {
            futures::StreamExt::next(&mut pending).await;
        }
    }
    while futures::StreamExt::next(&mut pending).await.is_some() {}
    let all: Vec<String> = store.events_after(None, 10_000).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(all.len(), 4_500);
    let o = run(&store, &["watch", "-o", "jsonl", "--timeout", "2s"]).await;
    assert_eq!(code(&o), 2, "ends by timeout: {}", err(&o));
    let seen: Vec<String> = out(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all, "every event exactly once, in ledger order");
}

#[tokio::test]
async fn watch_replays_then_follows_without_gap_or_duplicate() {
    let store = sett_testkit::store().await;
    let goal = new_goal(&store, "GoalDefined", "g").await;
    let mut last = goal.clone();
    for _ in 0..20 {
        let a = derived(StructuralType::Standard, "Code", "Coder", &last, None);
        put(&store, &a).await;
        last = a;
    }
    let mut child =
        sett(&store).args(["watch", "-o", "jsonl", "--exit-on-completion", "--timeout", "60s"]).spawn().unwrap();
    // Write while it replays and while it switches to following, then end the workflow.
    let mut lines = Vec::new();
    read_until(&mut child, &mut lines, |_| true).await;
    for _ in 0..200 {
        let a = derived(StructuralType::Standard, "Code", "Coder", &last, None);
        put(&store, &a).await;
        last = a;
    }
    put(&store, &derived(StructuralType::Terminal, "Done", "Coder", &last, None)).await;
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.expect("watch exits on completion").unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    lines.extend(out(&o).lines().map(str::to_owned));
    let seen: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    let all: Vec<String> = store.events_after(None, 10_000).await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(all.len(), 222);
    assert_eq!(seen, all, "every event exactly once, in ledger order");

    // Every workflow in the history has ended: --exit-on-completion returns after the replay.
    let o = run(&store, &["watch", "--exit-on-completion", "--timeout", "30s", "-q"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));

    // --since an event id replays strictly after it; --type filters; human lines are readable.
    let o = run(&store, &["watch", "--since", &all[219], "-o", "jsonl", "--timeout", "1s"]).await;
    assert_eq!(code(&o), 2, "ends by timeout");
    let since: Vec<String> = out(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(since, all[220..].to_vec());
    let o = run(&store, &["watch", "--type", "Done", "-o", "jsonl", "--timeout", "1s"]).await;
    assert_eq!(out(&o).lines().count(), 1, "{}", out(&o));
    let o = run(&store, &["watch", "--since", "1h", "--timeout", "1s"]).await;
    assert!(
        out(&o).contains("artifact_created") && out(&o).contains("GoalDefined (Standard) v1 by user"),
        "{}",
        out(&o)
    );
    assert_eq!(code(&run(&store, &["watch", "--since", "last tuesday", "--timeout", "1s"]).await), 2);
}

/// Writes a raw entry that is not a valid event (as anyone with `XADD` on the stream could).
fn xadd_raw(store: &Store, fields: &[&str]) {
    let o = std::process::Command::new("redis-cli")
        .args(["-u", &sett_testkit::redis_url(), "XADD", &store.keys().events(), "*"])
        .args(fields)
        .output()
        .expect("redis-cli (package redis-tools)");
    assert!(o.status.success(), "{o:?}");
}

/// Security finding 14: a malformed ledger entry — in the replay and live — is reported on
/// stderr and skipped; `sett watch` goes on and still ends with the workflow.
#[tokio::test]
async fn watch_skips_a_malformed_entry_with_a_warning() {
    let store = sett_testkit::store().await;
    let goal = new_goal(&store, "GoalDefined", "g").await;
    xadd_raw(&store, &["kind", "bogus_kind"]);
    let a = derived(StructuralType::Standard, "Code", "Coder", &goal, None);
    put(&store, &a).await;
    let mut child =
        sett(&store).args(["watch", "-o", "jsonl", "--exit-on-completion", "--timeout", "60s"]).spawn().unwrap();
    let mut lines = Vec::new();
    // Both replayed events arrive: the bad entry between them did not stop the replay.
    read_until(&mut child, &mut lines, |l| l.contains(&a.id.to_string())).await;
    xadd_raw(&store, &["kind", "artifact_created", "data", "{not json"]);
    put(&store, &derived(StructuralType::Terminal, "Done", "Coder", &a, None)).await;
    let o = tokio::time::timeout(PROMPT, child.wait_with_output()).await.expect("watch exits on completion").unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    lines.extend(out(&o).lines().map(str::to_owned));
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["artifact_created"; 3], "{lines:?}");
    let stderr = err(&o);
    let warnings: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with("Warning: skipping malformed ledger entry")).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(warnings[0].contains("bogus_kind"), "{}", warnings[0]);
}

// ---------------------------------------------------------------- list / status / claims / logs

fn record(workspace: &str) -> InstanceRecord {
    InstanceRecord {
        run_id: "r".into(),
        workspace: workspace.into(),
        runtime: sett_core::config::RuntimeKind::Local.into(),
        redis: "redis://127.0.0.1".into(),
        created_at: now_ms() - 3_600_000,
        started_at: None,
        stopped_at: None,
        status: InstanceStatus::Stopped,
    }
}

fn holder() -> LockHolder {
    LockHolder {
        run_id: "run-1".into(),
        host: "testhost".into(),
        pid: 4242,
        started_at: now_ms() - 5_000,
        purpose: LockPurpose::Run,
    }
}

#[tokio::test]
async fn list_reports_states_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let server = sett_testkit::RedisServer::start(dir.path(), &[]);
    let redis = sett_testkit::redis_at(&server.url()).await;
    let names: Vec<_> = (0..3).map(|_| sett_testkit::instance_name()).collect();
    for n in &names {
        redis.put_instance_record(n, &record("/work/ws")).await.unwrap();
    }
    // names[1] runs; names[2] runs with a dead orchestrator.
    for n in &names[1..] {
        let lock = redis.instance(n).acquire_lock(&holder(), 60_000).await;
        lock.unwrap().unwrap();
    }
    let degraded = redis.instance(&names[2]);
    degraded
        .put_component(
            "orchestrator",
            &ComponentRecord { pid: Some(1), heartbeat_ms: Some(now_ms() - 60_000), ..ComponentRecord::default() },
        )
        .await
        .unwrap();
    let o = sett_at(&server.url(), None).args(["list", "-o", "json"]).output().await.unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v = json(&o);
    let status_of = |n: &sett_core::InstanceName| {
        v.as_array().unwrap().iter().find(|r| r["name"] == n.as_str()).map(|r| r["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of(&names[0]).as_deref(), Some("stopped"));
    assert_eq!(status_of(&names[1]).as_deref(), Some("running"));
    assert_eq!(status_of(&names[2]).as_deref(), Some("degraded"));

    // Enough rows that the output overflows the pipe after `head` has gone.
    for _ in 0..1500 {
        redis
            .put_instance_record(&sett_testkit::instance_name(), &record("/a/rather/long/workspace/path/for/width"))
            .await
            .unwrap();
    }
    let script = format!(
        "'{}' --redis-url '{}' list | head -1; exit ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_sett"),
        server.url()
    );
    let o = tokio::process::Command::new("bash").args(["-c", &script]).output().await.unwrap();
    assert_eq!(code(&o), 0, "sett list | head must succeed: {}", err(&o));
    assert!(!err(&o).contains("panicked") && !err(&o).contains("Error"), "{}", err(&o));
    assert_eq!(out(&o).lines().count(), 1);
}

#[tokio::test]
async fn status_exit_codes_follow_health() {
    let store = sett_testkit::store().await;
    let o = run(&store, &["status"]).await;
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("stopped") && err(&o).contains("sett up --name"), "{} / {}", out(&o), err(&o));

    store.acquire_lock(&holder(), 60_000).await.unwrap().unwrap();
    store
        .put_component(
            "orchestrator",
            &ComponentRecord {
                pid: Some(7),
                started_at_ms: Some(now_ms()),
                heartbeat_ms: Some(now_ms()),
                ..ComponentRecord::default()
            },
        )
        .await
        .unwrap();
    let (_, _, _) = seed_question(&store, "?").await;
    let o = run(&store, &["status", "-o", "json"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v = json(&o);
    assert_eq!(v["health"], "running");
    assert_eq!(v["lock"]["host"], "testhost");
    assert_eq!(v["open_questions"], 1);
    assert_eq!(v["claims_by_status"]["pending_answer"], 1);

    // A cub whose /healthz does not answer: degraded, and the next step names its logs.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    store
        .put_component(
            "cub:Coder",
            &ComponentRecord {
                pid: Some(8),
                addr: Some(dead),
                heartbeat_ms: Some(now_ms()),
                ..ComponentRecord::default()
            },
        )
        .await
        .unwrap();
    let o = run(&store, &["status"]).await;
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("degraded"), "{}", out(&o));
    assert!(err(&o).contains("sett logs Coder"), "{}", err(&o));
}

#[tokio::test]
async fn claims_filter_by_status_and_stuck() {
    let store = sett_testkit::store().await;
    let goal = new_goal(&store, "GoalDefined", "g").await;
    let fresh = claim_on(&store, &goal).await;
    // A claim whose bid deadline passed long ago.
    let old_goal = new_goal(&store, "GoalDefined", "old").await;
    let old = new_claim(new_claim_id(), &old_goal, &policy(), now_ms() - 3_600_000);
    store.write_claim(&old, None, true, &[], &[], now_ms()).await.unwrap();
    let ids = |o: &Output| ids_of(o).into_iter().collect::<BTreeSet<String>>();
    let o = run(&store, &["claims", "-o", "json"]).await;
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(ids(&o), BTreeSet::from([fresh.id.to_string(), old.id.to_string()]));
    assert_eq!(ids(&run(&store, &["claims", "--stuck", "-o", "json"]).await), BTreeSet::from([old.id.to_string()]));
    assert!(ids(&run(&store, &["claims", "--status", "complete", "-o", "json"]).await).is_empty());
    assert_eq!(code(&run(&store, &["claims", "--status", "nonsense"]).await), 2);
    let o = run(&store, &["claims"]).await;
    assert!(out(&o).contains("pending_consensus") && out(&o).contains("overdue"), "{}", out(&o));
}

#[tokio::test]
async fn logs_render_bunyan_lines_and_name_the_available_components() {
    let store = sett_testkit::store().await;
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("sett.yml"), "version: \"1.0\"\n").unwrap();
    let dir = ws.path().join(".sett/logs").join(store.instance().as_str());
    std::fs::create_dir_all(&dir).unwrap();
    let line = |msg: &str| {
        format!(
            r#"{{"v":0,"name":"sett","msg":"{msg}","level":30,"hostname":"h","pid":1,"time":"2026-01-01T00:00:00Z","claim_id":"c1"}}"#
        )
    };
    std::fs::write(dir.join("orchestrator.log"), format!("{}\n{}\n{}\n", line("one"), line("two"), line("three")))
        .unwrap();
    std::fs::write(dir.join("Coder.log"), "plain line\n").unwrap();
    let logs = |args: &[&str]| {
        let mut c = sett(&store);
        c.current_dir(ws.path()).arg("logs").args(args);
        c
    };
    let o = logs(&["orchestrator"]).output().await.unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(out(&o).lines().next(), Some("2026-01-01T00:00:00Z INFO  one claim_id=c1"));
    let o = logs(&["orchestrator", "--lines", "1", "-o", "jsonl"]).output().await.unwrap();
    assert_eq!(out(&o).trim(), line("three"));
    let o = logs(&["cub:Coder"]).output().await.unwrap();
    assert_eq!(out(&o).trim(), "plain line");
    let o = logs(&["Nobody"]).output().await.unwrap();
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("Available: Coder, orchestrator"), "{}", err(&o));

    // -f prints lines appended later.
    let mut child = logs(&["Coder", "-f"]).spawn().unwrap();
    let mut seen = Vec::new();
    read_until(&mut child, &mut seen, |l| l == "plain line").await;
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("Coder.log")).unwrap();
    std::io::Write::write_all(&mut f, b"appended\n").unwrap();
    read_until(&mut child, &mut seen, |l| l == "appended").await;
    child.kill().await.unwrap();
}

/// Without `SETT_OPERATOR` the answer records the effective uid's account from the password
/// database — not `$USER` (here set to a decoy, as a container or `sudo -E` may leave it), and
/// never `unknown` when `USER`/`LOGNAME` are unset (cron, systemd).
#[tokio::test]
async fn answer_records_the_password_database_account_without_sett_operator() {
    let store = sett_testkit::store().await;
    let expected = sett_ops::operator::resolve(None);
    assert_ne!(expected, "unknown");
    for (i, user) in [Some("decoy-user"), None].into_iter().enumerate() {
        let (_, _, q) = seed_question(&store, &format!("Who {i}?")).await;
        let mut c = sett(&store);
        c.env_remove("SETT_OPERATOR").env_remove("LOGNAME");
        match user {
            Some(u) => c.env("USER", u),
            None => c.env_remove("USER"),
        };
        let o = c.args(["answer", &q.id.to_string(), "yes"]).output().await.unwrap();
        assert_eq!(code(&o), 0, "{}", err(&o));
        let rec = store.answer_record(&q.id).await.unwrap().unwrap();
        assert_eq!(rec.answered_by, expected, "USER={user:?}");
        let answer = store.get_artifact(&rec.answer_id).await.unwrap().unwrap();
        assert_eq!(answer.produced_by_role, format!("human:{expected}"));
    }
}
