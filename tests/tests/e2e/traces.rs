//! OpenTelemetry traces end to end: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real OTLP
//! receiver (tests/otlp/receiver.py, which decodes the protobuf with the OpenTelemetry project's
//! own definitions), two workflows — a question answered by a person, a review that asks for
//! rework, a publisher — become exactly two traces, one per goal, whose span trees are the
//! ledger's: the workflow root, a span per claim (the rework linked to the claim it reworks),
//! bidding, grants, the cubs' tool runs, the wait for the answer, and the agent's own span sent
//! with the `TRACEPARENT` its tool run was given.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use sett_core::ArtifactId;
use sett_core::event::{Event, EventData};
use sett_core::trace::workflow_trace;
use sett_e2e::Env;
use sett_e2e::otlp::{Span, receiver, spans};
use sett_ops::workflow::Workflow;

const MINUTE: Duration = Duration::from_secs(60);

/// Asks which tone to write in, then drafts in it (and reworks when asked); each run that
/// "calls a model" sends its own span to the collector under the `TRACEPARENT` it was given.
const WRITER: &str = r#"#!/usr/bin/env python3
import os
import secrets
import time
import urllib.request

import sett_agent as sett
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def model_call(name):
    tp = sett.traceparent()
    if tp is None:
        raise RuntimeError("no TRACEPARENT although traces are on")
    end = time.time_ns()
    span = Span(
        trace_id=bytes.fromhex(tp.trace_id),
        span_id=secrets.token_bytes(8),
        parent_span_id=bytes.fromhex(tp.span_id),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=end - 1_000_000,
        end_time_unix_nano=end,
        attributes=[KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="test-model"))],
    )
    service = KeyValue(key="service.name", value=AnyValue(string_value="writer-agent"))
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(attributes=[service]), scope_spans=[ScopeSpans(spans=[span])])]
    )
    url = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    post = urllib.request.Request(
        url, data=request.SerializeToString(), headers={"content-type": "application/x-protobuf"}, method="POST"
    )
    urllib.request.urlopen(post, timeout=10).read()


def handle(task):
    if task.claim_type is sett.ClaimType.REWORK:
        model_call("model_call")
        return sett.artifact("Draft", "draft v2", summary="reworked")
    if task.latest_answer is None:
        return sett.question("Which tone?")
    model_call("model_call")
    return sett.artifact("Draft", f"a draft in a {task.latest_answer.text} tone", summary="drafted")


sett.run(handle)
"#;

const REVIEWER: &str = r#"#!/usr/bin/env python3
import sett_agent as sett


def handle(task):
    if task.target.version < 2:
        return sett.request_changes({"issue": "shorter"}, summary="too long")
    return sett.approve()


sett.run(handle)
"#;

const PUBLISHER: &str = r#"#!/usr/bin/env python3
import sett_agent as sett

sett.run(lambda task: sett.terminal("Published", task.target.payload, summary="published"))
"#;

const YML: &str = r#"
version: "1.0"
orchestrator: {bid_timeout: 10s, max_review_iterations: 3}
agents:
  Writer:
    command: ["./writer.py"]
    bidding_strategy: {type: exclusive, target_types: ["GoalDefined"]}
    environment: ["PYTHONPATH", "OTEL_EXPORTER_OTLP_ENDPOINT"]
  Reviewer:
    command: ["./reviewer.py"]
    bidding_strategy: {type: review, target_types: ["Draft"]}
    environment: ["PYTHONPATH"]
  Publisher:
    command: ["./publisher.py"]
    bidding_strategy: {type: exclusive, target_types: ["Draft"]}
    environment: ["PYTHONPATH"]
"#;

/// Waits (driven by the event stream) until every claim created so far has ended and `n`
/// workflows have a Terminal: then every span the orchestrator records is final.
async fn wait_all_claims_ended(env: &Env, n: usize) -> Vec<Event> {
    let reader = env.store.event_reader().await.expect("reader");
    let mut events: Vec<Event> = Vec::new();
    let mut last = "0".to_owned();
    let until = Instant::now() + 2 * MINUTE;
    loop {
        let (mut open, mut terminals) = (HashSet::new(), 0);
        for e in &events {
            match &e.data {
                EventData::ClaimCreated(c) => {
                    open.insert(c.claim_id);
                }
                EventData::ClaimCompleted(x) | EventData::ClaimTerminated(x) | EventData::ClaimDormant(x) => {
                    open.remove(&x.claim_id);
                }
                EventData::ArtifactCreated(a) if a.structural_type == sett_core::StructuralType::Terminal => {
                    terminals += 1;
                }
                _ => {}
            }
        }
        if terminals >= n && open.is_empty() {
            reader.quit().await;
            return events;
        }
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "claims still open: {open:?}\n{}", env.logs());
        let more = reader.read_after(&last, 1000, left.min(Duration::from_secs(1))).await.expect("read");
        if let Some(e) = more.last() {
            last = e.id.clone();
        }
        events.extend(more);
    }
}

/// Answers the one open question.
fn answer_the_question(env: &Env, answer: &str) {
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let q = &listed.as_array().expect("a list")[0];
    env.ok(&["answer", q["id"].as_str().unwrap(), answer]);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_workflow_is_one_trace_with_the_ledgers_span_tree_and_the_agents_own_spans() {
    let spans_file = tempfile::NamedTempFile::new().unwrap();
    let (_receiver, port) = receiver(spans_file.path(), "127.0.0.1");
    let mut env = Env::new(YML, &[("writer.py", WRITER), ("reviewer.py", REVIEWER), ("publisher.py", PUBLISHER)]).await;
    env.use_python_sdk();
    env.env_vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), format!("http://127.0.0.1:{port}")));
    env.up();

    let mut goals = Vec::new();
    for (n, (goal, tone)) in [("a post about bees", "calm"), ("a post about wasps", "brisk")].into_iter().enumerate() {
        goals.push(env.forage(goal));
        answer_the_question(&env, tone);
        env.wait_terminals(n + 1, 2 * MINUTE).await;
    }
    let events = wait_all_claims_ended(&env, goals.len()).await;
    env.ok(&["verify"]);
    // Stopping flushes every daemon's exporter: after `down` the receiver has every span.
    env.down();

    let spans = spans(spans_file.path());
    let traces: BTreeSet<String> = goals.iter().map(|g| workflow_trace(g).to_string()).collect();
    let stray: Vec<&Span> = spans.iter().filter(|s| !traces.contains(&s.trace_id)).collect();
    assert!(stray.is_empty(), "every span belongs to one of the two workflows' traces: {stray:#?}");

    for goal in &goals {
        check_workflow_trace(goal, &spans, &events);
    }
}

/// The trace of `goal`: its spans, checked against the ledger's `events`.
fn check_workflow_trace(goal: &ArtifactId, all: &[Span], events: &[Event]) {
    let trace = workflow_trace(goal).to_string();
    let spans: Vec<&Span> = all.iter().filter(|s| s.trace_id == trace).collect();
    let by_id: BTreeMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    assert_eq!(by_id.len(), spans.len(), "no span is sent twice: {spans:#?}");
    let parent = |s: &Span| by_id.get(s.parent_span_id.as_str()).copied();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).copied().collect::<Vec<_>>();

    // One root: the workflow, from the orchestrator; every other span hangs in its tree.
    let roots: Vec<&&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root per trace: {roots:#?}");
    let root = roots[0];
    assert_eq!((root.name.as_str(), root.service.as_str()), ("workflow", "sett-orchestrator"));
    assert_eq!(root.attr("sett.goal_id"), goal.to_string());
    assert_eq!(root.attr("sett.outcome"), "completed");
    for s in &spans {
        if !s.parent_span_id.is_empty() {
            assert!(parent(s).is_some(), "the parent of {} is in the trace: {spans:#?}", s.name);
        }
    }

    // A span per claim of the workflow (as the ledger has them), under the root, with its ids.
    let mut workflow = Workflow::new(*goal);
    let mut rework_of = BTreeMap::new();
    let mut grants = 0;
    for e in events {
        if workflow.observe(e) {
            match &e.data {
                EventData::ClaimCreated(c) => {
                    rework_of.insert(c.claim_id.to_string(), c.rework_of.map(|r| r.to_string()));
                }
                EventData::ClaimGranted(_) => grants += 1,
                _ => {}
            }
        }
    }
    let claim_spans: Vec<&Span> = spans.iter().filter(|s| s.name == "claim" || s.name == "rework").copied().collect();
    let traced: BTreeSet<&str> = claim_spans.iter().map(|s| s.attr("sett.claim_id")).collect();
    let ledger: BTreeSet<&str> = rework_of.keys().map(String::as_str).collect();
    assert_eq!(traced, ledger, "a span for each claim of the workflow");
    for c in &claim_spans {
        assert_eq!(c.parent_span_id, root.span_id, "{} is a child of the workflow", c.name);
        assert!(!c.attr("sett.artifact_id").is_empty(), "{c:#?}");
    }
    // The first draft's claim ended when its review asked for rework; every other completed.
    let terminated: Vec<&&Span> = claim_spans.iter().filter(|c| c.attr("sett.status") != "complete").collect();
    assert_eq!(terminated.len(), 1, "{claim_spans:#?}");
    assert_eq!(terminated[0].attr("sett.status"), "terminated");
    assert!(terminated[0].attr("sett.reason").starts_with("rejected by review"), "{terminated:#?}");

    // The rework loop: one rework claim, linked to the claim whose output it reworks.
    let reworks = named("rework");
    assert_eq!(reworks.len(), 1, "{claim_spans:#?}");
    let reworked = rework_of[reworks[0].attr("sett.claim_id")].clone().expect("a rework names what it reworks");
    assert_eq!(reworks[0].attr("sett.rework_of"), reworked);
    let reworked_span = claim_spans.iter().find(|s| s.attr("sett.claim_id") == reworked).unwrap();
    assert_eq!(reworks[0].links, vec![reworked_span.span_id.clone()]);
    assert_eq!(reworked_span.span_id, terminated[0].span_id, "the rework is of the rejected draft");

    // Bidding under each claim; a grant span per grant, each with the cub's tool run inside.
    for b in named("bidding") {
        assert!(matches!(parent(b).map(|p| p.name.as_str()), Some("claim" | "rework")), "{b:#?}");
    }
    assert_eq!(named("bidding").len(), claim_spans.len());
    let grant_spans = named("grant");
    assert_eq!(grant_spans.len(), grants, "a span per grant: {grant_spans:#?}");
    let runs = named("tool_run");
    assert_eq!(runs.len(), grants, "a tool run per grant: {runs:#?}");
    for run in &runs {
        let g = parent(run).expect("the tool run's grant");
        assert_eq!((g.name.as_str(), run.service.as_str()), ("grant", "sett-cub"));
        assert_eq!((run.attr("sett.claim_id"), run.attr("sett.seq")), (g.attr("sett.claim_id"), g.attr("sett.seq")));
        assert_eq!(run.attr("sett.agent"), g.attr("sett.agent"));
        assert_eq!(run.attr("sett.goal_id"), goal.to_string());
    }

    // The wait for the person who answered the Writer's question, under the Writer's claim.
    let waits = named("wait_for_human");
    assert_eq!(waits.len(), 1, "{spans:#?}");
    assert_eq!(waits[0].attr("sett.answered_by"), "test-operator");
    assert_eq!(waits[0].attr("sett.agent"), "Writer");
    assert_eq!(parent(waits[0]).map(|p| p.attr("sett.claim_id")), Some(waits[0].attr("sett.claim_id")));

    // The agent's own spans (first draft and rework), children of the Writer's tool runs.
    let own = named("model_call");
    assert_eq!(own.len(), 2, "{spans:#?}");
    for s in own {
        assert_eq!((s.service.as_str(), s.attr("gen_ai.request.model")), ("writer-agent", "test-model"));
        let run = parent(s).expect("the tool run the agent's span is under");
        assert_eq!((run.name.as_str(), run.attr("sett.agent")), ("tool_run", "Writer"));
        assert_eq!(run.status, "unset", "{run:#?}");
    }
}
