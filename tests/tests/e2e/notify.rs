//! Webhook notifications end to end, against a real HTTP receiver started by the test: a
//! question's webhook arrives signed as it is asked; Slack format; a receiver that is down for
//! 5 s gets the notification once it is back, exactly once; a notification queued before the
//! orchestrator is SIGKILLed is delivered after `sett up`; `sett status` shows a failing endpoint.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sett_core::event::EventKind;
use sett_e2e::receiver::{Received, Receiver};
use sett_e2e::{Env, asker_script};
use sett_store::DeliveryStatus;
use sha2::Sha256;

const LIMIT: Duration = Duration::from_secs(30);
const SECRET: &str = "test-webhook-secret";
const QUESTION: &str = "Which port should the service listen on?";

fn yml(webhooks: &str) -> String {
    format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s, question_timeout: 1h}}
agents:
  Asker:
    command: ["./asker.sh"]
    bidding_strategy: exclusive
notifications:
  console_url: http://console.test:7878
  webhooks:
{webhooks}"#
    )
}

/// What a receiver does to check `X-Sett-Signature` (docs/notifications.md), written here
/// independently of Sett's own code.
fn signature_is_valid(r: &Received) -> bool {
    let (Some(ts), Some(sig)) = (r.header("x-sett-timestamp"), r.header("x-sett-signature")) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    sig == format!("sha256={expected}")
}

async fn question_asked_ts(env: &Env) -> (String, i64) {
    let e = env.wait_events(LIMIT, "question_asked", 1, |e| e.kind() == EventKind::QuestionAsked).await.remove(0);
    (e.data.artifact_id().unwrap().to_string(), e.ts_ms)
}

/// Returns once a delivery record counts `n` attempts (polling Redis, bounded by [`LIMIT`]).
async fn wait_for_attempts(env: &Env, n: u32) {
    let until = std::time::Instant::now() + LIMIT;
    loop {
        let d = env.store.notify_deliveries().await.unwrap();
        if d.values().any(|r| r.attempts >= n) {
            return;
        }
        assert!(std::time::Instant::now() < until, "no delivery recorded {n} attempt(s): {d:?}\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The delivery records once every one of them is final (the notifier records a delivery right
/// after the receiver answered, so the test may see the request a moment before the record).
async fn final_deliveries(env: &Env) -> Vec<sett_store::DeliveryRecord> {
    let until = std::time::Instant::now() + LIMIT;
    loop {
        let d = env.store.notify_deliveries().await.unwrap();
        if !d.is_empty() && d.values().all(|r| r.status != DeliveryStatus::Pending) {
            return d.into_values().collect();
        }
        assert!(std::time::Instant::now() < until, "deliveries still pending: {d:?}\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_json(env: &Env) -> serde_json::Value {
    let out = env.run(&["status", "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status -o json: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_webhook_arrives_signed_at_once_and_slack_gets_text() {
    let mut hook = Receiver::start().await;
    let mut slack = Receiver::start().await;
    let webhooks = format!(
        "    - name: ops\n      url: {}\n      secret: {SECRET}\n    - name: chat\n      url: {}\n      format: slack\n      events: [question_asked]\n",
        hook.url("/sett"),
        slack.url("/slack")
    );
    let mut env = Env::new(&yml(&webhooks), &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    let goal = env.forage("Build a service");
    let (qid, asked_ts) = question_asked_ts(&env).await;

    let mut others = Vec::new();
    let r = hook.next_event("question_asked", LIMIT, &mut others).await;
    assert!(others.is_empty(), "unexpected requests: {others:?}");
    assert!(signature_is_valid(&r), "invalid signature: {:?}", r.headers);
    // How soon it arrives (pushed as the event arrives) is measured by `cargo xtask bench --only
    // notify`; here only that it arrives, after the question was written.
    assert!(r.at_ms >= asked_ts, "the webhook arrived before the question was written");
    assert_eq!(r.path, "/sett");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["event"], "question_asked");
    assert_eq!(doc["instance"], env.name.as_str());
    assert_eq!(r.header("x-sett-delivery"), doc["delivery_id"].as_str());
    let q = &doc["question"];
    assert_eq!(q["id"], qid.as_str());
    assert!(qid.replace('-', "").starts_with(q["short_id"].as_str().unwrap()), "{q}");
    assert_eq!(q["text"], "Which port should the service listen on?");
    assert_eq!(q["agent"], "Asker");
    assert!(q["deadline_ms"].as_i64().unwrap() > asked_ts + 3_500_000, "{q}");
    assert_eq!(q["console_url"], format!("http://console.test:7878/questions?q={qid}#q-{qid}").as_str());
    let command = q["answer_command"].as_str().unwrap();
    assert_eq!(command, format!("sett answer --name {} {qid} \"<your answer>\"", env.name));

    let s = slack.next(LIMIT).await;
    let body = s.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "Slack gets only text: {body}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("Which port should the service listen on?") && text.contains(&qid), "{text}");
    assert!(s.header("x-sett-signature").is_none(), "no secret, no signature");

    // The command in the notification answers the question; the workflow then completes.
    env.ok(&["answer", &qid, "8080"]);
    let done = hook.next_event("workflow_completed", LIMIT, &mut others).await;
    assert!(signature_is_valid(&done));
    let w = &done.json()["workflow"];
    assert_eq!(w["goal_id"], goal.to_string().as_str());
    assert_eq!(w["goal"], "Build a service");
    assert_eq!(w["outcome_type"], "Done");
    assert!(others.is_empty(), "unexpected requests: {others:?}");

    final_deliveries(&env).await;
    let status = status_json(&env);
    let hooks = status["webhooks"].as_array().unwrap();
    let ops = hooks.iter().find(|h| h["name"] == "ops").unwrap();
    assert_eq!(ops["failing"], false, "{status}");
    assert_eq!(ops["delivered"], 2, "{status}");
    env.down();
    assert!(slack.drain().is_empty(), "chat only asked for question_asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_five_seconds_gets_the_notification_once_it_is_back() {
    let mut hook = Receiver::down().await;
    let webhooks = format!("    - name: ops\n      url: {}\n", hook.url("/"));
    let mut env = Env::new(&yml(&webhooks), &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    env.forage("Build a service");
    let (qid, _) = question_asked_ts(&env).await;

    // Down (for about 5 s, however loaded the machine): wait, driven by the delivery record in
    // Redis, until three attempts failed; `sett status` then names the failing endpoint.
    wait_for_attempts(&env, 3).await;
    let status = status_json(&env);
    let ops = status["webhooks"].as_array().unwrap().iter().find(|h| h["name"] == "ops").cloned().unwrap();
    assert_eq!(ops["failing"], true, "{status}");
    assert_eq!(ops["pending"], 1, "{status}");
    assert!(ops["last_error"].as_str().unwrap().contains("cannot reach"), "{status}");
    let table = env.run(&["status"]);
    let stderr = sett_e2e::text(&table.stderr);
    assert!(sett_e2e::text(&table.stdout).contains("FAILING"), "{}", sett_e2e::text(&table.stdout));
    assert!(stderr.contains("Webhook ops is failing"), "{stderr}");

    hook.resume();
    let mut others = Vec::new();
    let r = hook.next_event("question_asked", LIMIT, &mut others).await;
    assert_eq!(r.json()["question"]["id"], qid.as_str());
    let deliveries = final_deliveries(&env).await;
    let rec = deliveries.iter().find(|d| d.event == "question_asked").unwrap();
    assert_eq!(rec.status, DeliveryStatus::Delivered);
    assert!(rec.attempts >= 3, "attempts while down then one success: {rec:?}");

    // Exactly once: the next notification (queued later on the same webhook) arrives and the
    // question's was not sent again before it.
    env.ok(&["answer", &qid, "8080"]);
    hook.next_event("workflow_completed", LIMIT, &mut others).await;
    assert!(others.is_empty(), "sent again: {others:?}");
    final_deliveries(&env).await;
    let status = status_json(&env);
    let ops = status["webhooks"].as_array().unwrap().iter().find(|h| h["name"] == "ops").cloned().unwrap();
    assert_eq!((ops["failing"].clone(), ops["pending"].clone()), (false.into(), 0.into()), "{status}");
    env.down();
    assert!(hook.drain().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notification_queued_before_a_sigkill_is_delivered_after_up() {
    let mut hook = Receiver::down().await;
    let webhooks = format!("    - name: ops\n      url: {}\n      events: [question_asked]\n", hook.url("/"));
    let mut env = Env::new(&yml(&webhooks), &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    env.forage("Build a service");
    let (qid, _) = question_asked_ts(&env).await;
    // Wait until the notifier has queued the notification and tried (and failed) once, driven
    // by the delivery record in Redis.
    wait_for_attempts(&env, 1).await;
    let orchestrator = env.pid_of("orchestrator").await.unwrap();
    let _ = std::process::Command::new("kill").args(["-9", &orchestrator.to_string()]).status();
    assert!(sett_runtime::wait_gone(orchestrator, Duration::from_secs(5)));

    hook.resume();
    env.up();
    let r = hook.next(LIMIT).await;
    assert_eq!(r.header("x-sett-event"), Some("question_asked"));
    assert_eq!(r.json()["question"]["id"], qid.as_str());
    // The record says delivered; nothing else was sent.
    let d = final_deliveries(&env).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    env.down();
    assert!(hook.drain().is_empty(), "sent twice");
}
