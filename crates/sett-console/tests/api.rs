//! The console's HTTP API against a real Redis: access control (401 without or with a wrong
//! token, 403 for a cookie POST without the CSRF proof), answering (one winner among
//! concurrent answers, the loser told who answered; 400/404/413), escaping of agent text, the
//! workflow graph, and live events resumed from the last event id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sett_console::{Config, Users};
use sett_core::claim::OpenQuestion;
use sett_core::event::{EventData, InstanceStarted};
use sett_core::machine::new_claim;
use sett_core::policy::Policy;
use sett_core::{AgentName, Artifact, ArtifactId, ClaimStatus, StructuralType};
use sett_store::{QuestionOp, Store, new_artifact_id, new_claim_id, now_ms};
use sett_testkit::promtool::check_metrics as promtool_check;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const ADA: &str = "ada-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";
/// A `viewer`: reads only.
const VIC: &str = "vic-token-0123456789abcdef";
/// An `operator`: reads, answers and acts on workflows.
const OPS: &str = "ops-token-0123456789abcdef";
/// An answerer in group `legal` by the users file.
const ERIN: &str = "erin-token-0123456789abcdef";
const XSS: &str = r#"Port? <script>alert(1)</script> "><img src=x onerror=alert(1)>"#;

struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection.
async fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp { status, headers, body: body.to_owned() }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// A goal, its claim waiting for an answer, and the open question (as the orchestrator
/// writes them).
async fn ask(store: &Store, text: &str) -> (Artifact, Artifact) {
    ask_due(store, text, Some(now_ms() + 600_000)).await
}

/// [`ask`] with a given deadline (`None`: never times out).
async fn ask_due(store: &Store, text: &str, deadline_ms: Option<i64>) -> (Artifact, Artifact) {
    ask_to(store, text, deadline_ms, &[]).await
}

/// [`ask_due`] addressed to `to` (people and `group:<name>`).
async fn ask_to(store: &Store, text: &str, deadline_ms: Option<i64>, to: &[&str]) -> (Artifact, Artifact) {
    let now = now_ms();
    let goal =
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "GoalDefined", "Build a service", "user", now);
    store.create_artifact(&goal).await.unwrap();
    let policy = Policy {
        agents: Default::default(),
        max_review_iterations: 3,
        bid_timeout_ms: 1_000,
        on_question_timeout: Default::default(),
        routing: Default::default(),
    };
    let mut claim = new_claim(new_claim_id(), &goal, &policy, now);
    let mut q = Artifact::new_root(new_artifact_id(), StructuralType::Question, "Clarification", text, "Asker", now);
    q.source_artifacts = vec![goal.id];
    q.claim_id = Some(claim.id);
    store.create_artifact(&q).await.unwrap();
    claim.status = ClaimStatus::PendingAnswer;
    claim.question_id = Some(q.id);
    let to: Vec<String> = to.iter().map(|a| (*a).to_owned()).collect();
    let open = OpenQuestion {
        people: to.iter().filter(|a| !a.starts_with("group:")).cloned().collect(),
        to,
        ..OpenQuestion::new(AgentName::parse("Asker").unwrap(), now, deadline_ms)
    };
    claim.open_questions.insert(q.id, open);
    let ops = [QuestionOp::Open { question: q.id, asked_at_ms: now }];
    store.write_claim(&claim, None, true, &ops, &[], now).await.unwrap();
    (goal, q)
}

struct Console {
    addr: String,
    store: Store,
    stop: CancellationToken,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn console() -> Console {
    console_with(|c| c).await
}

async fn console_with(adjust: impl FnOnce(Config) -> Config) -> Console {
    let redis = sett_testkit::redis().await;
    let name = sett_testkit::instance_name();
    let store = redis.instance(&name);
    let users = Users::parse(&format!(
        "{ADA} Ada Lovelace\n{BOB} bob\n{VIC} Vic role=viewer groups=audit\n{OPS} Olga Operator role=operator\n{ERIN} erin groups=legal\n"
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    let config = adjust(Config::new(Some(vec![name]), users));
    tokio::spawn(sett_console::serve(listener, redis, config, stop.clone().cancelled_owned()));
    Console { addr, store, stop }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_data_without_a_valid_token() {
    let c = console().await;
    let i = c.store.instance().to_string();
    for path in ["/", "/questions", "/api/v1/instances", &format!("/api/v1/instances/{i}/questions")] {
        let r = http(&c.addr, "GET", path, &[], "").await;
        assert_eq!(r.status, 401, "{path} without a token");
        assert!(!r.body.contains(&i), "a 401 carries no data");
        let r = http(&c.addr, "GET", path, &[("Authorization", &bearer("wrong-token-0123456789"))], "").await;
        assert_eq!(r.status, 401, "{path} with a wrong token");
        let r = http(&c.addr, "GET", &format!("{path}?token=wrong-token-0123456789"), &[], "").await;
        assert_eq!(r.status, 401, "{path} with a wrong token in the URL");
        let r = http(&c.addr, "GET", path, &[("Cookie", "sett_session=forged")], "").await;
        assert_eq!(r.status, 401, "{path} with a forged session");
    }
    let r = http(&c.addr, "GET", "/api/v1/instances", &[("Authorization", &bearer(ADA))], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["instance"], i.as_str());
    assert!(r.headers["content-security-policy"].contains("script-src 'self'"));
}

/// How URLs are read (docs/console.md, "URLs"): HEAD is answered like GET without a body, a
/// trailing slash is another URL (404), and path segments are percent-decoded before use.
#[tokio::test(flavor = "multi_thread")]
async fn head_is_get_a_trailing_slash_is_404_and_segments_are_percent_decoded() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, q) = ask(&c.store, "Which port?").await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let get = http(&c.addr, "GET", "/questions", &h, "").await;
    let head = http(&c.addr, "HEAD", "/questions", &h, "").await;
    assert_eq!((get.status, head.status), (200, 200));
    assert_eq!(head.headers["content-type"], get.headers["content-type"]);
    assert!(head.body.is_empty() && get.body.contains("Which port?"), "HEAD has no body");
    assert_eq!(http(&c.addr, "HEAD", "/questions", &[], "").await.status, 401, "HEAD needs sign-in like GET");
    for path in ["/questions/", "/api/v1/instances/", &format!("/instances/{i}/")] {
        assert_eq!(http(&c.addr, "GET", path, &h, "").await.status, 404, "{path}");
    }
    let encoded = q.id.to_string().replace('-', "%2D");
    let art = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/artifacts/{encoded}"), &h, "").await;
    assert_eq!(art.status, 200, "{}", art.body);
    assert_eq!(art.json()["artifact"]["id"], q.id.to_string().as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_post_needs_the_csrf_proof() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, q) = ask(&c.store, "Which port?").await;
    // The token in the URL is exchanged for an HttpOnly, SameSite=Strict cookie and removed.
    let r = http(&c.addr, "GET", &format!("/questions?token={BOB}"), &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers["location"], "/questions");
    let set = &r.headers["set-cookie"];
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = http(&c.addr, "GET", "/questions", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&q.id.to_string()));
    let csrf = page.body.split(r#"<meta name="sett-csrf" content=""#).nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(csrf.len(), 64);
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let body = r#"{"answer": "8080"}"#;
    let json = ("Content-Type", "application/json");
    let r = http(&c.addr, "POST", &url, &[("Cookie", &cookie), json], body).await;
    assert_eq!(r.status, 403, "no CSRF proof: {}", r.body);
    let r = http(&c.addr, "POST", &url, &[("Cookie", &cookie), json, ("X-Sett-CSRF", &"0".repeat(64))], body).await;
    assert_eq!(r.status, 403, "a wrong CSRF proof");
    let r = http(
        &c.addr,
        "POST",
        &url,
        &[("Cookie", &cookie), json, ("X-Sett-CSRF", csrf), ("Origin", "http://evil.example")],
        body,
    )
    .await;
    assert_eq!(r.status, 403, "another site's page");
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none(), "nothing was written");
    let r = http(&c.addr, "POST", &url, &[("Cookie", &cookie), json, ("X-Sett-CSRF", csrf)], body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["answered_by"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_addressee_answers_by_name_or_by_a_users_file_group() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, q) = ask_to(&c.store, "Ship it?", None, &["Ada Lovelace", "group:legal"]).await;
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let r = http(&c.addr, "POST", &url, &[("Authorization", &bearer(BOB))], r#"{"answer": "yes"}"#).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let msg = r.json()["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("addressed to Ada Lovelace, group:legal; bob is not one of them"), "{msg}");
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none(), "nothing was written");
    let r = http(&c.addr, "POST", &url, &[("Authorization", &bearer(ERIN))], r#"{"answer": "yes"}"#).await;
    assert_eq!(r.status, 200, "erin is in group legal by the users file: {}", r.body);
    assert_eq!(c.store.answer_record(&q.id).await.unwrap().unwrap().answered_by, "erin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_reads_but_may_not_answer() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, q) = ask(&c.store, "Which port?").await;
    let vic = bearer(VIC);
    let r = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/questions"), &[("Authorization", &vic)], "").await;
    assert_eq!(r.status, 200, "a viewer reads");
    assert_eq!(r.json()[0]["id"], q.id.to_string());
    // The pages show the question, without an answer form, and say what the role is.
    for path in ["/questions".to_owned(), format!("/instances/{i}/artifacts/{}", q.id)] {
        let page = http(&c.addr, "GET", &path, &[("Authorization", &vic)], "").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Which port?") && !page.body.contains(r#"<form class="answer""#), "{path}");
        assert!(page.body.contains(r#"id="role""#) && page.body.contains("Read only: your role is viewer"), "{path}");
        let ada = http(&c.addr, "GET", &path, &[("Authorization", &bearer(ADA))], "").await;
        assert!(ada.body.contains(r#"<form class="answer""#), "an answerer gets the form on {path}");
    }
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let r = http(&c.addr, "POST", &url, &[("Authorization", &vic)], r#"{"answer": "8080"}"#).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let msg = r.json()["error"].as_str().unwrap().to_owned();
    assert!(msg.contains("needs the role 'answerer'") && msg.contains("'viewer'"), "{msg}");
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_cancels_a_workflow_and_other_roles_get_403_naming_the_role() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, q) = ask(&c.store, "Which port?").await;
    let url = format!("/api/v1/instances/{i}/workflows/{}/cancel", goal.id);
    let page = format!("/instances/{i}/workflows/{}", goal.id);
    let json = ("Content-Type", "application/json");
    let body = r#"{"reason": "wrong goal"}"#;

    // An answerer and a viewer see no action buttons and are refused, naming the role needed.
    for (token, role) in [(ADA, "answerer"), (VIC, "viewer")] {
        let auth = bearer(token);
        let p = http(&c.addr, "GET", &page, &[("Authorization", &auth)], "").await;
        assert_eq!(p.status, 200);
        assert!(!p.body.contains(r#"<section class="actions""#) && !p.body.contains("data-action="), "{role}");
        assert!(p.body.contains("need the role <b>operator</b>"), "{role}");
        let r = http(&c.addr, "POST", &url, &[("Authorization", &auth), json], body).await;
        assert_eq!(r.status, 403, "{role}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(
            msg.contains("cancelling a workflow needs the role 'operator'") && msg.contains(&format!("'{role}'")),
            "{msg}"
        );
    }
    assert!(c.store.cancellation(&goal.id).await.unwrap().is_none(), "nothing was written");

    // The operator sees the panel with Cancel enabled.
    let ops = bearer(OPS);
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(p.body.contains(r#"<section class="actions""#), "{}", p.body);
    assert!(p.body.contains(r#"<button type="button" data-action="cancel" class="danger">"#), "enabled");
    // Bad requests write nothing.
    let bad = format!("/api/v1/instances/{i}/workflows/not-an-id/cancel");
    assert_eq!(http(&c.addr, "POST", &bad, &[("Authorization", &ops)], "").await.status, 400);
    let unknown = format!("/api/v1/instances/{i}/workflows/{}/cancel", new_artifact_id());
    assert_eq!(http(&c.addr, "POST", &unknown, &[("Authorization", &ops)], "").await.status, 404);
    let nope = format!("/api/v1/instances/{i}/workflows/{}/explode", goal.id);
    let r = http(&c.addr, "POST", &nope, &[("Authorization", &ops)], "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("cancel"), "{}", r.body);
    let r = http(&c.addr, "POST", &url, &[("Authorization", &ops), json], r#"{"why": 1}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(c.store.cancellation(&goal.id).await.unwrap().is_none(), "nothing was written");

    // Cancel, by the question's id (any artifact of the workflow names it).
    let by_question = format!("/api/v1/instances/{i}/workflows/{}/cancel", q.id);
    let r = http(&c.addr, "POST", &by_question, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["goal_id"], goal.id.to_string());
    assert_eq!(doc["operator"], "Olga Operator");
    assert_eq!(doc["reason"], "wrong goal");
    let record = c.store.cancellation(&goal.id).await.unwrap().expect("the cancellation is recorded");
    assert_eq!((record.operator.as_str(), record.reason.as_deref()), ("Olga Operator", Some("wrong goal")));

    // Twice: a no-op that says so.
    let r = http(&c.addr, "POST", &url, &[("Authorization", &ops)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["already_cancelled"], true);
    assert!(r.json()["message"].as_str().unwrap().contains("already cancelled by Olga Operator"), "{}", r.body);

    // The pages show it cancelled, by whom and why, with Cancel disabled.
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(p.body.contains(r#"<span class="state cancelled">cancelled</span>"#), "{}", p.body);
    assert!(p.body.contains("Cancelled by <b>Olga Operator</b>") && p.body.contains("wrong goal"));
    assert!(p.body.contains(r#"data-action="cancel" class="danger" disabled"#));
    let rows = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/workflows"), &[("Authorization", &ops)], "").await;
    assert_eq!(rows.json()[0]["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_forks_from_an_artifact_and_an_answerer_gets_403_naming_the_role() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, q) = ask(&c.store, "Which port?").await;
    let mut draft =
        Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Draft", "draft one", "Writer", now_ms());
    draft.source_artifacts = vec![goal.id];
    c.store.create_artifact(&draft).await.unwrap();
    let url = format!("/api/v1/instances/{i}/artifacts/{}/fork", draft.id);
    let page = format!("/instances/{i}/workflows/{}", goal.id);
    let json = ("Content-Type", "application/json");
    let body = r#"{"payload": "draft two", "reason": "shorter"}"#;

    // An answerer and a viewer see no fork form and are refused, naming the role needed.
    for (token, role) in [(ADA, "answerer"), (VIC, "viewer")] {
        let auth = bearer(token);
        let p = http(&c.addr, "GET", &page, &[("Authorization", &auth)], "").await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains(r#"<section class="artifacts""#) && !p.body.contains("Fork from here"), "{role}");
        let r = http(&c.addr, "POST", &url, &[("Authorization", &auth), json], body).await;
        assert_eq!(r.status, 403, "{role}: {}", r.body);
        let msg = r.json()["error"].as_str().unwrap().to_owned();
        assert!(
            msg.contains("forking a workflow needs the role 'operator'") && msg.contains(&format!("'{role}'")),
            "{msg}"
        );
    }
    assert_eq!(c.store.latest_in_thread(&draft.logical_id).await.unwrap().unwrap().id, draft.id, "nothing written");

    // The operator sees "Fork from here" on the draft (a new payload) and the question (a
    // different answer), not on the goal.
    let ops = bearer(OPS);
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(p.body.contains(&format!(r#"data-artifact="{}" data-input="payload""#, draft.id)), "{}", p.body);
    assert!(p.body.contains(&format!(r#"data-artifact="{}" data-input="answer""#, q.id)), "{}", p.body);
    assert!(!p.body.contains(&format!(r#"data-artifact="{}""#, goal.id)), "the goal is not forked");
    // Bad requests write nothing: a bad id, an unknown artifact, the goal, a payload for a
    // Question, both inputs, an unknown field.
    let bad = format!("/api/v1/instances/{i}/artifacts/not-an-id/fork");
    assert_eq!(http(&c.addr, "POST", &bad, &[("Authorization", &ops)], "").await.status, 400);
    let unknown = format!("/api/v1/instances/{i}/artifacts/{}/fork", new_artifact_id());
    assert_eq!(http(&c.addr, "POST", &unknown, &[("Authorization", &ops)], "").await.status, 404);
    let of_goal = format!("/api/v1/instances/{i}/artifacts/{}/fork", goal.id);
    let r = http(&c.addr, "POST", &of_goal, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("the workflow's goal"), "{}", r.body);
    let of_question = format!("/api/v1/instances/{i}/artifacts/{}/fork", q.id);
    let r = http(&c.addr, "POST", &of_question, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains(r#"with "answer""#), "{}", r.body);
    let both = r#"{"payload": "a", "answer": "b"}"#;
    assert_eq!(http(&c.addr, "POST", &url, &[("Authorization", &ops), json], both).await.status, 400);
    assert_eq!(http(&c.addr, "POST", &url, &[("Authorization", &ops), json], r#"{"why": 1}"#).await.status, 400);
    let cancel = format!("/api/v1/instances/{i}/workflows/{}/cancel", goal.id);
    let r = http(&c.addr, "POST", &cancel, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 400, "a payload is only for a fork: {}", r.body);
    assert_eq!(c.store.latest_in_thread(&draft.logical_id).await.unwrap().unwrap().id, draft.id, "nothing written");

    // The fork: a new version of the draft by human:<operator>, marked forked_from.
    let r = http(&c.addr, "POST", &url, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!((doc["action"].as_str(), doc["operator"].as_str()), (Some("fork"), Some("Olga Operator")), "{doc}");
    assert_eq!((doc["forked_from"].as_str(), doc["version"].as_u64()), (Some(draft.id.to_string().as_str()), Some(2)));
    assert_eq!(doc["reason"], "shorter");
    let id = ArtifactId::parse(doc["artifact_id"].as_str().unwrap()).unwrap();
    let forked = c.store.get_artifact(&id).await.unwrap().unwrap();
    assert_eq!((forked.payload.as_str(), forked.forked_from), ("draft two", Some(draft.id)));
    assert_eq!(forked.produced_by_role, "human:Olga Operator");

    // The workflow page lists the branch, and the artifact marked as forked.
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(p.body.contains(&format!(r#"<li class="branch" data-branch-root="{id}">"#)), "{}", p.body);
    assert!(p.body.contains(r#"<span class="forked-from">forked from"#), "{}", p.body);

    // Once the workflow is cancelled, it is not forked: 409 saying so, and no forms.
    assert_eq!(http(&c.addr, "POST", &cancel, &[("Authorization", &ops)], "").await.status, 200);
    let r = http(&c.addr, "POST", &url, &[("Authorization", &ops), json], body).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("cancelled"), "{}", r.body);
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(!p.body.contains("Fork from here") && p.body.contains("A cancelled workflow is not forked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_action_needs_the_csrf_proof() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, _) = ask(&c.store, "Which port?").await;
    let r = http(&c.addr, "GET", &format!("/instances/{i}/workflows/{}?token={OPS}", goal.id), &[], "").await;
    let cookie = r.headers["set-cookie"].split(';').next().unwrap().to_owned();
    let page = http(&c.addr, "GET", &format!("/instances/{i}/workflows/{}", goal.id), &[("Cookie", &cookie)], "").await;
    let csrf = page.body.split(r#"<meta name="sett-csrf" content=""#).nth(1).unwrap().split('"').next().unwrap();
    let url = format!("/api/v1/instances/{i}/workflows/{}/cancel", goal.id);
    let r = http(&c.addr, "POST", &url, &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 403, "no CSRF proof: {}", r.body);
    let r = http(
        &c.addr,
        "POST",
        &url,
        &[("Cookie", &cookie), ("X-Sett-CSRF", csrf), ("Origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "another site's page");
    assert!(c.store.cancellation(&goal.id).await.unwrap().is_none(), "nothing was written");
    let r = http(&c.addr, "POST", &url, &[("Cookie", &cookie), ("X-Sett-CSRF", csrf)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["operator"], "Olga Operator");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_answers_one_wins_and_the_loser_learns_who() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, q) = ask(&c.store, "Which port?").await;
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let (ada, bob) = (bearer(ADA), bearer(BOB));
    let (ha, hb) = ([("Authorization", ada.as_str())], [("Authorization", bob.as_str())]);
    let (a, b) = tokio::join!(
        http(&c.addr, "POST", &url, &ha, r#"{"answer": "8080"}"#),
        http(&c.addr, "POST", &url, &hb, r#"{"answer": "9090"}"#),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
    let (won, lost) = if a.status == 200 { (&a, &b) } else { (&b, &a) };
    let winner = won.json()["answered_by"].as_str().unwrap().to_owned();
    assert_eq!(lost.json()["answered_by"], winner.as_str(), "the loser is told who answered");
    assert!(lost.json()["answered_at"].as_str().is_some());
    let answer_id = ArtifactId::parse(won.json()["answer_id"].as_str().unwrap()).unwrap();
    let answer = c.store.get_artifact(&answer_id).await.unwrap().unwrap();
    assert_eq!(answer.answered_by.as_deref(), Some(winner.as_str()));
    assert_eq!(answer.produced_by_role, format!("human:{winner}"));
    assert_eq!(answer.source_artifacts, vec![q.id]);
    assert_eq!(answer.claim_id, q.claim_id);
    // And the same for a third attempt, sequentially.
    let r = http(&c.addr, "POST", &url, &[("Authorization", &ada)], r#"{"answer": "late"}"#).await;
    assert_eq!(r.status, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_answers_are_refused_with_a_reason() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, q) = ask(&c.store, "Which port?").await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let r = http(&c.addr, "POST", &url, &h, "not json").await;
    assert_eq!(r.status, 400);
    let r = http(&c.addr, "POST", &url, &h, r#"{"answer": "   "}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("empty"));
    let big = format!(r#"{{"answer": "{}"}}"#, "x".repeat(sett_console::MAX_ANSWER_BYTES + 1));
    let r = http(&c.addr, "POST", &url, &h, &big).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("limited to 65536 bytes"), "{}", r.body);
    let r = http(
        &c.addr,
        "POST",
        &format!("/api/v1/instances/{i}/questions/{}/answer", new_artifact_id()),
        &h,
        r#"{"answer": "x"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let r =
        http(&c.addr, "POST", &format!("/api/v1/instances/{i}/questions/{}/answer", goal.id), &h, r#"{"answer": "x"}"#)
            .await;
    assert_eq!(r.status, 404, "the goal is not a question");
    let r =
        http(&c.addr, "POST", &format!("/api/v1/instances/{i}/questions/nope/answer"), &h, r#"{"answer": "x"}"#).await;
    assert_eq!(r.status, 400);
    let r = http(
        &c.addr,
        "POST",
        &format!("/api/v1/instances/zz-unknown/questions/{}/answer", q.id),
        &h,
        r#"{"answer": "x"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = http(&c.addr, "DELETE", "/api/v1/instances", &h, "").await;
    assert_eq!(r.status, 405, "read + answer only");
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_structured_answer_is_checked_on_the_server_with_per_field_problems() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let spec = r#"{"question":"Deploy how?","schema":{"type":"object","properties":{"replicas":{"type":"integer","minimum":1},"region":{"type":"string","enum":["eu","us"]}},"required":["replicas","region"]}}"#;
    let (_, q) = ask(&c.store, spec).await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    // As the console's form sends it: a number that is not one, a region left out.
    let r = http(&c.addr, "POST", &url, &h, r#"{"fields": [["replicas", "many"]]}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let problems = r.json()["problems"].clone();
    assert_eq!(problems[0]["field"], "replicas");
    assert_eq!(problems[0]["problem"], "\"many\" is not a number");
    assert_eq!(problems[1]["field"], "region");
    assert!(problems[1]["problem"].as_str().unwrap().starts_with("required"), "{problems}");
    // As JSON: every problem, and nothing written.
    let r = http(&c.addr, "POST", &url, &h, r#"{"answer": {"replicas": 0, "region": "mars"}}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["problems"].as_array().unwrap().len(), 2, "{}", r.body);
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none(), "nothing was written");
    // The inbox renders the form: a number input and a select, required marks.
    let page = http(&c.addr, "GET", "/questions", &h, "").await;
    assert!(page.body.contains(r#"<input type="number" name="replicas" step="1" min="1" required>"#), "{}", page.body);
    assert!(page.body.contains(r#"<select name="region" required>"#));
    assert!(page.body.contains(r#"<abbr class="req" title="required">*</abbr>"#));
    let r = http(&c.addr, "POST", &url, &h, r#"{"fields": [["replicas", "3"], ["region", "us"]]}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer_id = ArtifactId::parse(r.json()["answer_id"].as_str().unwrap()).unwrap();
    let answer = c.store.get_artifact(&answer_id).await.unwrap().unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer.payload).unwrap();
    assert_eq!(value, serde_json::json!({"replicas": 3, "region": "us"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_text_is_escaped_and_every_artifact_is_in_the_graph() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, q) = ask(&c.store, XSS).await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let listed = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/questions"), &h, "").await.json();
    assert_eq!(listed[0]["text"], XSS, "the API returns the text as written");
    assert_eq!(listed[0]["agent"], "Asker");
    assert_eq!(listed[0]["goal"]["id"], goal.id.to_string().as_str());
    assert!(listed[0]["time_left_ms"].as_i64().unwrap() > 0);
    for path in [
        "/questions".to_owned(),
        format!("/instances/{i}/artifacts/{}", q.id),
        format!("/instances/{i}/workflows/{}", goal.id),
    ] {
        let page = http(&c.addr, "GET", &path, &h, "").await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>alert") && !page.body.contains("<img"), "{path} escapes agent text");
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path} shows it as text");
    }
    let page = http(&c.addr, "GET", &format!("/instances/{i}/workflows/{}", goal.id), &h, "").await;
    for a in [goal.id, q.id] {
        assert!(page.body.contains(&format!(r#"data-artifact-id="{a}""#)), "node {a} in the SVG");
    }
    assert!(page.body.contains("Claim timeline") && page.body.contains("pending_answer"));
    let wf = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/workflows"), &h, "").await.json();
    assert_eq!(wf[0]["state"], "waiting_for_human");
    let art = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/artifacts/{}", q.id), &h, "").await.json();
    assert_eq!(art["artifact"]["payload"], XSS);
    assert_eq!(art["open_question"], true);
}

type Lines = tokio::io::Lines<BufReader<TcpStream>>;

/// Opens an SSE stream; returns once the console has subscribed (its `: connected` comment).
async fn sse_open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Lines {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(s).lines();
    let wait = async { while lines.next_line().await.unwrap().expect("the stream stays open") != ": connected" {} };
    tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the stream opens");
    lines
}

/// Reads SSE `id:` lines until `n` events arrived.
async fn sse_ids(lines: &mut Lines, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let read = async {
        while ids.len() < n {
            let line = lines.next_line().await.unwrap().expect("the stream stays open");
            if let Some(id) = line.strip_prefix("id: ") {
                ids.push(id.to_owned());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("events arrive");
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_live_and_resume_from_the_last_id() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let event = |n: i32| {
        let store = c.store.clone();
        let started = EventData::InstanceStarted(InstanceStarted { host: "h".into(), pid: 1, run_id: format!("r{n}") });
        async move { store.append_event(&started, now_ms()).await.unwrap() }
    };
    let first = event(1).await;
    let missed = event(2).await;
    // Connected after event 2: it is replayed from Redis, then 3 and 4 arrive live.
    let mut lines = sse_open(&c.addr, &format!("/api/v1/instances/{i}/events?after={first}"), &h).await;
    let live = vec![event(3).await, event(4).await];
    let got = sse_ids(&mut lines, 3).await;
    assert_eq!(got, [vec![missed.clone()], live.clone()].concat(), "in order, none twice");
    // A reconnecting browser sends Last-Event-ID: only what came after it is replayed.
    let resume = [("Authorization", auth.as_str()), ("Last-Event-ID", missed.as_str())];
    let mut lines = sse_open(&c.addr, &format!("/api/v1/instances/{i}/events"), &resume).await;
    assert_eq!(sse_ids(&mut lines, 2).await, live);
    let r = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/events?after=nonsense"), &h, "").await;
    assert_eq!(r.status, 400);
}

/// The ids of the questions on an inbox page, in order.
fn inbox_ids(page: &str) -> Vec<String> {
    page.split(r#"<article class="question" id="q-"#).skip(1).map(|s| s[..36].to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mine_shows_what_is_addressed_to_the_signed_in_user_by_name_or_users_file_group() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (_, to_bob) = ask_to(&c.store, "For bob?", None, &["bob"]).await;
    let (_, to_legal) = ask_to(&c.store, "For legal?", None, &["group:legal"]).await;
    let (_, to_anyone) = ask_to(&c.store, "For anyone?", None, &[]).await;
    let page = |token: &'static str, path: String| {
        let addr = c.addr.clone();
        async move { http(&addr, "GET", &path, &[("Authorization", &bearer(token))], "").await }
    };
    let all = page(ERIN, "/questions".into()).await;
    assert_eq!(inbox_ids(&all.body).len(), 3);
    assert!(all.body.contains(r#"<a href="/questions?mine=1" id="filter-mine">Mine</a>"#), "{}", all.body);
    // erin is in group legal by the users file only.
    let mine = page(ERIN, "/questions?mine=1".into()).await;
    assert_eq!(mine.status, 200);
    assert_eq!(inbox_ids(&mine.body), vec![to_legal.id.to_string()]);
    assert!(mine.body.contains(r#"<b id="filter-mine">Mine</b>"#) && mine.body.contains(r#"id="open-count">1<"#));
    assert_eq!(inbox_ids(&page(BOB, "/questions?mine=1".into()).await.body), vec![to_bob.id.to_string()]);
    let none = page(ADA, format!("/questions?instance={i}&mine=1")).await;
    assert!(inbox_ids(&none.body).is_empty() && none.body.contains("Nothing is addressed to you"), "{}", none.body);
    assert!(none.body.contains(&format!(r#"href="/questions?instance={i}&" id="filter-all""#)), "keeps the instance");
    let _ = to_anyone;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbox_is_paged_soonest_deadline_first_and_chains_load_on_demand() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let now = now_ms();
    // 120 questions: deadlines in a shuffled order, and two that never time out.
    let mut asked = Vec::new();
    for n in 0..120i64 {
        let deadline = (n % 60 != 59).then_some(now + 60_000 + ((n * 37) % 120) * 1_000);
        let (_, q) = ask_due(&c.store, &format!("question {n}"), deadline).await;
        asked.push((deadline, q.id.to_string()));
    }
    asked.sort_by_key(|(d, id)| (d.is_none(), d.unwrap_or(0), id.clone()));
    let expected: Vec<String> = asked.iter().map(|(_, id)| id.clone()).collect();
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let p1 = http(&c.addr, "GET", "/questions", &h, "").await;
    assert_eq!(p1.status, 200);
    assert!(p1.body.contains(r#"id="open-count">120<"#), "the total is shown");
    assert!(p1.body.contains("1–50 of 120 open") && p1.body.contains("page 1 of 3"));
    assert!(p1.body.contains(r#"href="/questions?page=2" rel="next""#));
    assert_eq!(inbox_ids(&p1.body), expected[..50], "soonest deadline first");
    assert!(!p1.body.contains("<li>"), "no context chain is rendered on the page");
    assert!(p1.body.contains(&format!(r#"data-context="/api/v1/instances/{i}/questions/{}/context""#, expected[0])));
    let p3 = http(&c.addr, "GET", "/questions?page=3", &h, "").await;
    assert_eq!(inbox_ids(&p3.body), expected[100..], "the last page has the rest, never-due last");
    let far = http(&c.addr, "GET", "/questions?page=99", &h, "").await;
    assert_eq!(inbox_ids(&far.body), expected[100..], "a page past the end shows the last");
    // A link to one question opens its page.
    let one = http(&c.addr, "GET", &format!("/questions?q={}", expected[77]), &h, "").await;
    assert!(one.body.contains("page 2 of 3") && inbox_ids(&one.body).contains(&expected[77]));
    let only = http(&c.addr, "GET", &format!("/questions?instance={i}&page=2"), &h, "").await;
    assert_eq!(inbox_ids(&only.body), expected[50..100]);
    let none = http(&c.addr, "GET", "/questions?instance=zz-nothing", &h, "").await;
    assert!(none.body.contains("No agent is waiting"));
    // The chain, on demand: the goal is the question's context.
    let url = format!("/api/v1/instances/{i}/questions/{}/context", expected[0]);
    let ctx = http(&c.addr, "GET", &url, &h, "").await.json();
    assert_eq!(ctx["context"].as_array().unwrap().len(), 1);
    assert_eq!(ctx["goal"]["type"], "GoalDefined");
    assert_eq!(ctx["context"][0]["id"], ctx["goal"]["id"]);
    let r =
        http(&c.addr, "GET", &format!("/api/v1/instances/{i}/questions/{}/context", new_artifact_id()), &h, "").await;
    assert_eq!(r.status, 404);
    assert_eq!(http(&c.addr, "GET", &url, &[], "").await.status, 401, "the chain needs the token too");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_workflows_table_is_paged_newest_first() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let mut goals = Vec::new();
    for n in 0..55 {
        let g = Artifact::new_root(
            new_artifact_id(),
            StructuralType::Standard,
            "GoalDefined",
            format!("goal {n}"),
            "user",
            now_ms() + n,
        );
        c.store.create_artifact(&g).await.unwrap();
        goals.push(g.id.to_string());
    }
    goals.reverse();
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let rows = |body: &str| -> Vec<String> {
        body.split(r#"<tr data-goal-id=""#).skip(1).map(|s| s[..36].to_owned()).collect()
    };
    let p1 = http(&c.addr, "GET", &format!("/instances/{i}"), &h, "").await;
    assert!(p1.body.contains("1–50 of 55 workflows"));
    assert_eq!(rows(&p1.body), goals[..50]);
    let p2 = http(&c.addr, "GET", &format!("/instances/{i}?page=2"), &h, "").await;
    assert_eq!(rows(&p2.body), goals[50..]);
    // A new goal shows at once: the cached rows follow the event stream.
    let g = Artifact::new_root(
        new_artifact_id(),
        StructuralType::Standard,
        "GoalDefined",
        "newest",
        "user",
        now_ms() + 1_000,
    );
    c.store.create_artifact(&g).await.unwrap();
    let p1 = http(&c.addr, "GET", &format!("/instances/{i}"), &h, "").await;
    assert_eq!(rows(&p1.body)[0], g.id.to_string());
    assert_eq!(
        http(&c.addr, "GET", &format!("/api/v1/instances/{i}/workflows"), &h, "")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        56
    );
    // The instances page is cached the same way: a question asked shows at once.
    let badge = |n: u32| format!(r#"<a href="/questions?instance={i}" class="badge">{n}</a>"#);
    ask(&c.store, "first?").await;
    let page = http(&c.addr, "GET", "/", &h, "").await;
    assert!(page.body.contains(&badge(1)), "{}", page.body);
    ask(&c.store, "second?").await;
    assert!(http(&c.addr, "GET", "/", &h, "").await.body.contains(&badge(2)));
    assert_eq!(http(&c.addr, "GET", "/api/v1/instances", &h, "").await.json()[0]["open_questions"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_refused_with_a_clear_message() {
    // The console's clock is the test's: an hour passes in one step.
    let now = Arc::new(AtomicI64::new(now_ms()));
    let clock = now.clone();
    let c = console_with(|cfg| Config {
        session_lifetime: Duration::from_secs(3600),
        clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        ..cfg
    })
    .await;
    let (_, q) = ask(&c.store, "Which port?").await;
    let i = c.store.instance().to_string();
    let r = http(&c.addr, "GET", &format!("/questions?token={ADA}"), &[], "").await;
    assert_eq!(r.status, 303);
    let set = &r.headers["set-cookie"];
    assert!(set.contains("Max-Age=3600") && set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = http(&c.addr, "GET", "/questions", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 200);
    now.fetch_add(3_599_000, Ordering::SeqCst);
    assert_eq!(http(&c.addr, "GET", "/questions", &[("Cookie", &cookie)], "").await.status, 200, "still valid");
    now.fetch_add(1_000, Ordering::SeqCst);
    let page = http(&c.addr, "GET", "/questions", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("session expired") && page.body.contains("?token="), "{}", page.body);
    assert!(!page.body.contains("Which port?"), "no data");
    assert!(page.headers["set-cookie"].contains("Max-Age=0"), "the dead cookie is dropped");
    // The API says so in JSON, and an answer POST with the old session is refused too.
    let api = http(&c.addr, "GET", &format!("/api/v1/instances/{i}/questions"), &[("Cookie", &cookie)], "").await;
    assert_eq!(api.status, 401);
    let page = http(&c.addr, "GET", "/questions", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 401, "still refused (now unknown)");
    let post = http(
        &c.addr,
        "POST",
        &format!("/api/v1/instances/{i}/questions/{}/answer", q.id),
        &[("Cookie", &cookie), ("content-type", "application/json")],
        r#"{"answer": "8080"}"#,
    )
    .await;
    assert_eq!(post.status, 401);
    assert!(c.store.answer_record(&q.id).await.unwrap().is_none());
    // The token opens a fresh session.
    let r = http(&c.addr, "GET", &format!("/questions?token={ADA}"), &[], "").await;
    let fresh = r.headers["set-cookie"].split(';').next().unwrap().to_owned();
    assert_eq!(http(&c.addr, "GET", "/questions", &[("Cookie", &fresh)], "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_token_and_pass_promtool() {
    // The recorder `sett console` installs (each test is its own process under nextest).
    let handle = sett_daemon::telemetry::install_metrics().unwrap();
    let c = console_with(|cfg| Config { metrics: Some(handle), ..cfg }).await;
    let i = c.store.instance().to_string();
    let (_, q) = ask(&c.store, "Which port?").await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    assert_eq!(http(&c.addr, "GET", "/metrics", &[], "").await.status, 401, "metrics need the token too");
    assert_eq!(
        http(&c.addr, "GET", "/questions", &[("Authorization", "Bearer nope-nope-nope-nope")], "").await.status,
        401
    );
    assert_eq!(http(&c.addr, "GET", "/questions", &h, "").await.status, 200);
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    let json = [("Authorization", auth.as_str()), ("content-type", "application/json")];
    assert_eq!(http(&c.addr, "POST", &url, &json, r#"{"answer": "8080"}"#).await.status, 200);
    assert_eq!(http(&c.addr, "POST", &url, &json, r#"{"answer": "9090"}"#).await.status, 409);
    let _sse = sse_open(&c.addr, &format!("/api/v1/instances/{i}/events"), &h).await;
    let r = http(&c.addr, "GET", "/metrics", &h, "").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain"));
    let text = &r.body;
    for want in [
        r#"sett_console_requests_total{route="inbox_page",status="200"} 1"#,
        r#"sett_console_auth_failures_total{reason="no_token"} 1"#,
        r#"sett_console_auth_failures_total{reason="wrong_token"} 1"#,
        r#"sett_console_answers_total{outcome="answered"} 1"#,
        r#"sett_console_answers_total{outcome="already_answered"} 1"#,
        "sett_console_event_streams 1",
        r#"sett_console_request_duration_seconds_count{route="api_answer"} 2"#,
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    assert!(!text.contains(&i) && !text.contains(&q.id.to_string()), "no instance or id in labels");
    let (code, said) = promtool_check(text);
    assert_eq!((code, said.trim()), (0, ""), "promtool check metrics on:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_pauses_resumes_and_retries_from_the_api_and_other_roles_get_403() {
    let c = console().await;
    let i = c.store.instance().to_string();
    let (goal, _) = ask(&c.store, "Which port?").await;
    let url = |verb: &str| format!("/api/v1/instances/{i}/workflows/{}/{verb}", goal.id);
    let page = format!("/instances/{i}/workflows/{}", goal.id);
    let json = ("Content-Type", "application/json");
    for (verb, doing) in [("pause", "pausing"), ("resume", "resuming"), ("retry", "retrying")] {
        for (token, role) in [(ADA, "answerer"), (VIC, "viewer")] {
            let r = http(&c.addr, "POST", &url(verb), &[("Authorization", &bearer(token)), json], "").await;
            assert_eq!(r.status, 403, "{verb} as {role}: {}", r.body);
            let msg = r.json()["error"].as_str().unwrap().to_owned();
            assert!(
                msg.contains(&format!("{doing} a workflow needs the role 'operator'"))
                    && msg.contains(&format!("'{role}'")),
                "{msg}"
            );
        }
    }
    assert!(c.store.pauses().await.unwrap().is_empty(), "nothing was written");

    let ops = bearer(OPS);
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(p.body.contains(r#"<button type="button" data-action="pause" class="">Pause</button>"#), "{}", p.body);
    assert!(p.body.contains(r#"data-action="retry" class="" disabled"#), "only a failed workflow: {}", p.body);

    let r = http(&c.addr, "POST", &url("pause"), &[("Authorization", &ops), json], r#"{"reason": "look first"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.json()["action"].as_str(), r.json()["operator"].as_str()), (Some("pause"), Some("Olga Operator")));
    let pauses = c.store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 1);
    assert_eq!((pauses[0].1.operator.as_str(), pauses[0].1.reason.as_deref()), ("Olga Operator", Some("look first")));
    let again = http(&c.addr, "POST", &url("pause"), &[("Authorization", &ops)], "").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.json()["message"].as_str().unwrap().contains("already paused by Olga Operator"), "{}", again.body);
    let p = http(&c.addr, "GET", &page, &[("Authorization", &ops)], "").await;
    assert!(
        p.body.contains("Paused by <b>Olga Operator</b>") && p.body.contains(r#"data-action="resume""#),
        "{}",
        p.body
    );

    let r = http(&c.addr, "POST", &url("resume"), &[("Authorization", &ops)], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["paused_by"], "Olga Operator");
    assert!(c.store.pauses().await.unwrap().is_empty(), "resumed");

    // Retrying a workflow that has not failed is refused, saying how it stands.
    let r = http(&c.addr, "POST", &url("retry"), &[("Authorization", &ops)], "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("has not failed: it is still running"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_from_agents_and_people_is_text_on_every_page() {
    let c = console().await;
    let i = c.store.instance().to_string();
    // A goal and a work product carrying markup, a question asking with it, an answer giving it.
    let goal = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "GoalDefined", XSS, "user", now_ms());
    c.store.create_artifact(&goal).await.unwrap();
    let mut draft = Artifact::new_root(new_artifact_id(), StructuralType::Standard, "Draft", XSS, "Writer", now_ms());
    draft.source_artifacts = vec![goal.id];
    c.store.create_artifact(&draft).await.unwrap();
    let (_, q) = ask(&c.store, XSS).await;
    let (_, open) = ask(&c.store, XSS).await;
    let auth = bearer(ADA);
    let h = [("Authorization", auth.as_str())];
    let json = [("Authorization", auth.as_str()), ("content-type", "application/json")];
    let body = serde_json::json!({ "answer": XSS }).to_string();
    let url = format!("/api/v1/instances/{i}/questions/{}/answer", q.id);
    assert_eq!(http(&c.addr, "POST", &url, &json, &body).await.status, 200);
    let pages = [
        format!("/instances/{i}"),
        format!("/instances/{i}/workflows/{}", goal.id),
        format!("/instances/{i}/artifacts/{}", goal.id),
        format!("/instances/{i}/artifacts/{}", draft.id),
        format!("/instances/{i}/artifacts/{}", open.id),
        "/questions".to_owned(),
        format!("/questions?instance={i}&mine=1"),
    ];
    for path in &pages {
        let page = http(&c.addr, "GET", path, &h, "").await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains("<script>alert") && !page.body.contains("<img"), "{path}: {}", page.body);
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{path} shows it as text");
    }
    // The answer shows, as text, among the recently answered.
    let inbox = http(&c.addr, "GET", "/questions", &h, "").await.body;
    let answered = inbox.split(r#"class="answer-text""#).nth(1).expect("a recently answered question");
    assert!(answered.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{answered}");
    // A name in the URL is text too, in the page that repeats it.
    let odd = "/questions?instance=%22%3E%3Cscript%3Ealert(1)%3C/script%3E";
    let page = http(&c.addr, "GET", odd, &h, "").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert") && page.body.contains("&quot;&gt;&lt;script&gt;"), "{}", page.body);
}
