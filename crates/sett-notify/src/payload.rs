//! What a webhook receives: one [`Notification`] rendered as Sett's JSON document or as a Slack
//! message (`{"text": ...}`). Pure functions of the gathered facts; the body is rendered once,
//! when the notification is queued, so every retry sends the same bytes.

use serde_json::{Value, json};
use sett_core::answer_spec::{AnswerSpec, StructuredQuestion};
use sett_core::config::{NotifyEvent, WebhookFormat};
use sett_core::regression::RegressionRecord;
use sett_core::usage::UsageTotals;
use sett_core::witness::WitnessRecord;

/// Longest question text or goal excerpt put in a notification (characters); longer text is cut
/// with an ellipsis and `text_truncated: true` (the full text is one `sett questions` away).
pub const MAX_TEXT_CHARS: usize = 4_000;

/// An open question, as a notification tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionFacts {
    pub id: String,
    /// Unique among the open questions when it was asked (what `sett questions` shows).
    pub short_id: String,
    pub text: String,
    pub agent: String,
    pub claim_id: Option<String>,
    pub asked_at_ms: i64,
    pub deadline_ms: Option<i64>,
    /// Who it is addressed to (people and `group:<name>`); empty: anyone may answer.
    pub to: Vec<String>,
}

/// A workflow that ended with a Terminal or a Failure artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowFacts {
    pub goal_id: String,
    pub goal_type: String,
    pub goal_text: String,
    pub outcome_id: String,
    pub outcome_type: String,
    /// For failures: the Failure's reason.
    pub reason: Option<String>,
    /// What its agents reported they spent (docs/agents.md, "Usage").
    pub usage: UsageTotals,
}

/// A workflow an operator cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelFacts {
    pub goal_id: String,
    pub goal_type: String,
    pub goal_text: String,
    pub operator: String,
    pub reason: Option<String>,
}

/// One notification about one ledger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    QuestionAsked(QuestionFacts),
    QuestionTimedOut {
        question: QuestionFacts,
        policy: String,
    },
    /// The question is still open after another `humans.remind_every` (`reminder` counts from 1).
    QuestionReminder {
        question: QuestionFacts,
        reminder: u32,
    },
    /// The question waited `humans.escalate_after`: `added` joined its addressees.
    QuestionEscalated {
        question: QuestionFacts,
        added: Vec<String>,
    },
    WorkflowCompleted(WorkflowFacts),
    WorkflowFailed(WorkflowFacts),
    WorkflowCancelled(CancelFacts),
    /// The ledger went back: what was recorded about it.
    LedgerRegressed(RegressionRecord),
    /// A ledger head was anchored (opt-in): the receiver keeps it as a witness.
    LedgerAnchor(WitnessRecord),
}

/// Where a notification comes from and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub instance: &'a str,
    pub event_id: &'a str,
    pub event_ts_ms: i64,
    pub delivery_id: &'a str,
    pub console_url: Option<&'a str>,
}

use sett_store::time::rfc3339_ms as rfc3339;

/// The question's answer spec, when it is a structured question.
fn structured(q: &QuestionFacts) -> Option<StructuredQuestion> {
    StructuredQuestion::from_payload(&q.text).ok().flatten()
}

/// What a structured question accepts, on one line: its numbered options, or its fields.
fn accepts(q: &StructuredQuestion) -> String {
    match &q.spec {
        AnswerSpec::Choice(c) => {
            let options: Vec<String> = c.options.iter().enumerate().map(|(n, o)| format!("{} {o}", n + 1)).collect();
            format!("{}: {}", if c.multiple { "Pick any" } else { "Pick one" }, options.join(" · "))
        }
        AnswerSpec::Form(f) => {
            let fields: Vec<String> =
                f.fields.iter().map(|f| format!("{}{}", f.name, if f.required { "*" } else { "" })).collect();
            format!("Fields: {}", fields.join(", "))
        }
    }
}

fn cut(text: &str) -> (String, bool) {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => (format!("{}…", &text[..at]), true),
        None => (text.to_owned(), false),
    }
}

/// The command that acknowledges a ledger regression.
pub fn ack_command(instance: &str) -> String {
    format!("sett ledger ack -n {instance}")
}

/// The exact command that answers `question_id` (the instance name and id need no quoting).
pub fn answer_command(instance: &str, question_id: &str) -> String {
    format!("sett answer --name {instance} {question_id} \"<your answer>\"")
}

/// The console's questions inbox: the page holding the question (`?q=`, the inbox is paged),
/// scrolled to it and its answer form (the inbox spans every instance, so the instance is not
/// part of the link).
pub fn question_link(console: &str, _instance: &str, question_id: &str) -> String {
    format!("{console}/questions?q={question_id}#q-{question_id}")
}

/// The console page of a workflow (identified by its goal).
pub fn workflow_link(console: &str, instance: &str, goal_id: &str) -> String {
    format!("{console}/instances/{instance}/workflows/{goal_id}")
}

impl Notification {
    pub fn event(&self) -> NotifyEvent {
        match self {
            Self::QuestionAsked(_) => NotifyEvent::QuestionAsked,
            Self::QuestionTimedOut { .. } => NotifyEvent::QuestionTimedOut,
            Self::QuestionReminder { .. } => NotifyEvent::QuestionReminder,
            Self::QuestionEscalated { .. } => NotifyEvent::QuestionEscalated,
            Self::WorkflowCompleted(_) => NotifyEvent::WorkflowCompleted,
            Self::WorkflowFailed(_) => NotifyEvent::WorkflowFailed,
            Self::WorkflowCancelled(_) => NotifyEvent::WorkflowCancelled,
            Self::LedgerRegressed(_) => NotifyEvent::LedgerRegressed,
            Self::LedgerAnchor(_) => NotifyEvent::LedgerAnchor,
        }
    }

    /// The body for `format`.
    pub fn render(&self, env: &Envelope<'_>, format: WebhookFormat) -> String {
        match format {
            WebhookFormat::Json => self.json(env).to_string(),
            WebhookFormat::Slack => json!({ "text": self.slack_text(env) }).to_string(),
        }
    }

    fn question_json(q: &QuestionFacts, env: &Envelope<'_>) -> Value {
        let spec = structured(q);
        let (text, truncated) = cut(spec.as_ref().map_or(&q.text, |s| &s.question));
        let answer_command = match spec.as_ref().map(|s| &s.spec) {
            Some(AnswerSpec::Choice(_)) => {
                format!("sett answer --name {} {} \"<option text or number>\"", env.instance, q.id)
            }
            Some(AnswerSpec::Form(_)) => format!("sett answer --name {} {} --json '{{…}}'", env.instance, q.id),
            None => answer_command(env.instance, &q.id),
        };
        json!({
            "answer_spec": spec.as_ref().and_then(|s| serde_json::to_value(s).ok()),
            "id": q.id,
            "short_id": q.short_id,
            "text": text,
            "text_truncated": truncated,
            "agent": q.agent,
            "claim_id": q.claim_id,
            "asked_at": rfc3339(q.asked_at_ms),
            "asked_at_ms": q.asked_at_ms,
            "deadline": q.deadline_ms.map(rfc3339),
            "deadline_ms": q.deadline_ms,
            "to": q.to,
            "console_url": env.console_url.map(|c| question_link(c, env.instance, &q.id)),
            "answer_command": answer_command,
        })
    }

    fn workflow_json(w: &WorkflowFacts, env: &Envelope<'_>) -> Value {
        let (goal, truncated) = cut(&w.goal_text);
        json!({
            "goal_id": w.goal_id,
            "goal_type": w.goal_type,
            "goal": goal,
            "goal_truncated": truncated,
            "outcome_artifact_id": w.outcome_id,
            "outcome_type": w.outcome_type,
            "reason": w.reason,
            "usage": w.usage,
            "console_url": env.console_url.map(|c| workflow_link(c, env.instance, &w.goal_id)),
        })
    }

    /// Sett's JSON document.
    pub fn json(&self, env: &Envelope<'_>) -> Value {
        let mut doc = json!({
            "event": self.event().as_str(),
            "delivery_id": env.delivery_id,
            "event_id": env.event_id,
            "instance": env.instance,
            "occurred_at": rfc3339(env.event_ts_ms),
        });
        let obj = doc.as_object_mut().expect("an object");
        match self {
            Self::QuestionAsked(q) => {
                obj.insert("question".into(), Self::question_json(q, env));
            }
            Self::QuestionTimedOut { question, policy } => {
                obj.insert("question".into(), Self::question_json(question, env));
                obj.insert("policy".into(), json!(policy));
            }
            Self::QuestionReminder { question, reminder } => {
                obj.insert("question".into(), Self::question_json(question, env));
                obj.insert("reminder".into(), json!(reminder));
            }
            Self::QuestionEscalated { question, added } => {
                obj.insert("question".into(), Self::question_json(question, env));
                obj.insert("added".into(), json!(added));
            }
            Self::WorkflowCompleted(w) | Self::WorkflowFailed(w) => {
                obj.insert("workflow".into(), Self::workflow_json(w, env));
            }
            Self::WorkflowCancelled(c) => {
                let (goal, truncated) = cut(&c.goal_text);
                obj.insert(
                    "workflow".into(),
                    json!({
                        "goal_id": c.goal_id,
                        "goal_type": c.goal_type,
                        "goal": goal,
                        "goal_truncated": truncated,
                        "cancelled_by": c.operator,
                        "reason": c.reason,
                        "console_url": env.console_url.map(|u| workflow_link(u, env.instance, &c.goal_id)),
                    }),
                );
            }
            Self::LedgerRegressed(r) => {
                obj.insert(
                    "ledger".into(),
                    json!({
                        "seen": r.seen,
                        "found": r.found,
                        "lost_at_least": r.lost_at_least,
                        "detected_by": r.detected_by,
                        "acknowledge": ack_command(env.instance),
                    }),
                );
            }
            Self::LedgerAnchor(w) => {
                let head = format!("{}:{}", w.seq, w.hash);
                obj.insert(
                    "ledger".into(),
                    json!({
                        "head": head,
                        "seq": w.seq,
                        "hash": w.hash,
                        "reason": w.reason,
                        "witnessed_at": w.at,
                        "witness_line": serde_json::to_string(w).expect("serializable"),
                        "verify": format!("sett verify -n {} --head {head}", env.instance),
                    }),
                );
            }
        }
        doc
    }

    /// The Slack message text (mrkdwn). Agent-written text is escaped, so it cannot ping
    /// channels or forge links.
    pub fn slack_text(&self, env: &Envelope<'_>) -> String {
        let i = slack_escape(env.instance);
        let mut lines = Vec::new();
        match self {
            Self::QuestionAsked(q) => {
                lines.push(format!(
                    "*{}* asks a question in instance `{i}` ({}){}:",
                    slack_escape(&q.agent),
                    q.short_id,
                    addressed(&q.to)
                ));
                let spec = structured(q);
                lines.push(quote(&cut(spec.as_ref().map_or(&q.text, |s| &s.question)).0));
                if let Some(s) = &spec {
                    lines.push(slack_escape(&accepts(s)));
                }
                if let Some(d) = q.deadline_ms {
                    lines.push(format!("Deadline: {}", rfc3339(d)));
                }
                lines.push(format!("Answer: `{}`", answer_command(env.instance, &q.id)));
                if let Some(c) = env.console_url {
                    lines.push(format!("<{}|Open in the console>", question_link(c, env.instance, &q.id)));
                }
            }
            Self::QuestionTimedOut { question: q, policy } => {
                lines.push(format!(
                    "Question {} of *{}* in instance `{i}` timed out unanswered (policy: {}):",
                    q.short_id,
                    slack_escape(&q.agent),
                    slack_escape(policy)
                ));
                lines.push(quote(&cut(&q.text).0));
            }
            Self::QuestionReminder { question: q, reminder } => {
                lines.push(format!(
                    "Reminder {reminder}: question {} of *{}* in instance `{i}` is still unanswered{}:",
                    q.short_id,
                    slack_escape(&q.agent),
                    addressed(&q.to)
                ));
                lines.push(quote(&cut(structured(q).as_ref().map_or(&q.text, |s| &s.question)).0));
                lines.push(format!("Answer: `{}`", answer_command(env.instance, &q.id)));
            }
            Self::QuestionEscalated { question: q, added } => {
                lines.push(format!(
                    "ESCALATED: question {} of *{}* in instance `{i}` is still unanswered; now also for {}:",
                    q.short_id,
                    slack_escape(&q.agent),
                    slack_escape(&added.join(", "))
                ));
                lines.push(quote(&cut(structured(q).as_ref().map_or(&q.text, |s| &s.question)).0));
                lines.push(format!("Answer: `{}`", answer_command(env.instance, &q.id)));
            }
            Self::WorkflowCompleted(w) => {
                lines.push(format!("Workflow completed in instance `{i}` ({}):", slack_escape(&w.outcome_type)));
                lines.push(quote(&cut(&w.goal_text).0));
                lines.extend(usage_line(&w.usage));
            }
            Self::WorkflowFailed(w) => {
                lines.push(format!("Workflow FAILED in instance `{i}` ({}):", slack_escape(&w.outcome_type)));
                lines.push(quote(&cut(&w.goal_text).0));
                if let Some(r) = &w.reason {
                    lines.push(format!("Reason: {}", slack_escape(r)));
                }
                lines.extend(usage_line(&w.usage));
            }
            Self::WorkflowCancelled(c) => {
                lines.push(format!("Workflow cancelled in instance `{i}` by {}:", slack_escape(&c.operator)));
                lines.push(quote(&cut(&c.goal_text).0));
                if let Some(r) = &c.reason {
                    lines.push(format!("Reason: {}", slack_escape(r)));
                }
                if let Some(u) = env.console_url {
                    lines.push(format!("<{}|Open in the console>", workflow_link(u, env.instance, &c.goal_id)));
                }
            }
            Self::LedgerRegressed(r) => {
                lines.push(format!(
                    "LEDGER REGRESSION in instance `{i}`: the ledger went back from `{}` to `{}`; at least {} event(s) are gone (noticed by {}).",
                    r.seen,
                    r.found.as_deref().unwrap_or("nothing"),
                    r.lost_at_least,
                    slack_escape(&r.detected_by)
                ));
                lines.push(format!("See the runbook \"The ledger went back\", then: `{}`", ack_command(env.instance)));
            }
            Self::LedgerAnchor(w) => {
                lines.push(format!(
                    "Ledger head of instance `{i}` anchored ({}): `{}:{}`",
                    slack_escape(&w.reason),
                    w.seq,
                    w.hash
                ));
                lines.push(format!("Check it later: `sett verify -n {} --head {}:{}`", env.instance, w.seq, w.hash));
            }
        }
        if let (Self::WorkflowCompleted(w) | Self::WorkflowFailed(w), Some(c)) = (self, env.console_url) {
            lines.push(format!("<{}|Open in the console>", workflow_link(c, env.instance, &w.goal_id)));
        }
        lines.join("\n")
    }
}

/// ` (for alice, group:legal)`, or nothing for a question addressed to nobody in particular.
fn addressed(to: &[String]) -> String {
    if to.is_empty() { String::new() } else { format!(" (for {})", slack_escape(&to.join(", "))) }
}

/// Slack's three control characters.
/// "Usage: 1500 tokens (1200 in, 300 out), 0.0042 USD", when any run reported usage.
fn usage_line(u: &UsageTotals) -> Option<String> {
    (u.runs > 0).then(|| {
        format!(
            "Usage: {} tokens ({} in, {} out), {}",
            u.tokens(),
            u.input_tokens,
            u.output_tokens,
            slack_escape(&u.cost_text())
        )
    })
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn quote(s: &str) -> String {
    slack_escape(s).lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> QuestionFacts {
        QuestionFacts {
            id: "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d".into(),
            short_id: "0190c2b4".into(),
            text: "Which port? <!channel>".into(),
            agent: "Writer".into(),
            claim_id: Some("c".into()),
            asked_at_ms: 1_700_000_000_000,
            deadline_ms: Some(1_700_003_600_000),
            to: Vec::new(),
        }
    }

    #[test]
    fn reminders_and_escalations_name_the_addressees() {
        let q = QuestionFacts { to: vec!["alice".into(), "group:leads".into()], ..question() };
        let doc = Notification::QuestionReminder { question: q.clone(), reminder: 2 }.json(&env(None));
        assert_eq!(doc["event"], "question_reminder");
        assert_eq!(doc["reminder"], 2);
        assert_eq!(doc["question"]["to"], serde_json::json!(["alice", "group:leads"]));
        let doc =
            Notification::QuestionEscalated { question: q.clone(), added: vec!["group:leads".into()] }.json(&env(None));
        assert_eq!(doc["event"], "question_escalated");
        assert_eq!(doc["added"], serde_json::json!(["group:leads"]));
        let slack =
            Notification::QuestionEscalated { question: q, added: vec!["group:leads".into()] }.slack_text(&env(None));
        assert!(slack.contains("now also for group:leads"), "{slack}");
    }

    fn env(console: Option<&str>) -> Envelope<'_> {
        Envelope {
            instance: "demo",
            event_id: "1-0",
            event_ts_ms: 1_700_000_000_000,
            delivery_id: "1-0:ops",
            console_url: console,
        }
    }

    #[test]
    fn a_question_carries_everything_needed_to_answer_it() {
        let doc = Notification::QuestionAsked(question()).json(&env(Some("https://c.example")));
        assert_eq!(doc["event"], "question_asked");
        assert_eq!(doc["instance"], "demo");
        assert_eq!(doc["question"]["short_id"], "0190c2b4");
        assert_eq!(doc["question"]["agent"], "Writer");
        assert_eq!(doc["question"]["deadline"], "2023-11-14T23:13:20.000Z");
        assert_eq!(
            doc["question"]["answer_command"],
            "sett answer --name demo 0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d \"<your answer>\""
        );
        assert_eq!(
            doc["question"]["console_url"],
            "https://c.example/questions?q=0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d#q-0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d"
        );
        let plain = Notification::QuestionAsked(question()).json(&env(None));
        assert!(plain["question"]["console_url"].is_null());
    }

    #[test]
    fn a_structured_question_carries_its_options() {
        let mut q = question();
        q.text =
            r#"{"question":"Which DB?","options":["SQLite","Postgres"],"multiple":false,"default":"SQLite"}"#.into();
        let doc = Notification::QuestionAsked(q.clone()).json(&env(None));
        assert_eq!(doc["question"]["text"], "Which DB?");
        assert_eq!(doc["question"]["answer_spec"]["options"], json!(["SQLite", "Postgres"]));
        assert_eq!(doc["question"]["answer_spec"]["default"], "SQLite");
        assert!(doc["question"]["answer_command"].as_str().unwrap().ends_with("\"<option text or number>\""));
        let slack = Notification::QuestionAsked(q).slack_text(&env(None));
        assert!(slack.contains("Pick one: 1 SQLite · 2 Postgres"), "{slack}");
        assert!(Notification::QuestionAsked(question()).json(&env(None))["question"]["answer_spec"].is_null());
    }

    #[test]
    fn slack_gets_text_with_agent_text_escaped() {
        let body = Notification::QuestionAsked(question()).render(&env(None), WebhookFormat::Slack);
        let v: Value = serde_json::from_str(&body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{body}");
        assert!(text.contains("> Which port? &lt;!channel&gt;"), "{text}");
        assert!(text.contains("sett answer --name demo 0190c2b4-"), "{text}");
    }

    #[test]
    fn long_text_is_cut() {
        let mut q = question();
        q.text = "x".repeat(MAX_TEXT_CHARS + 10);
        let doc = Notification::QuestionAsked(q).json(&env(None));
        assert_eq!(doc["question"]["text_truncated"], true);
        assert_eq!(doc["question"]["text"].as_str().unwrap().chars().count(), MAX_TEXT_CHARS + 1);
    }

    #[test]
    fn a_ledger_regression_names_both_heads_and_how_to_acknowledge() {
        let r = RegressionRecord {
            seen: "812:aa".into(),
            seen_id: "1-0".into(),
            found: Some("9:bb".into()),
            lost_at_least: 803,
            detected_by: "orchestrator".into(),
            detected_at_ms: 1_700_000_000_000,
            acknowledged_by: None,
            acknowledged_at_ms: None,
        };
        let n = Notification::LedgerRegressed(r);
        let doc = n.json(&env(None));
        assert_eq!(doc["event"], "ledger_regressed");
        assert_eq!(doc["ledger"]["seen"], "812:aa");
        assert_eq!(doc["ledger"]["found"], "9:bb");
        assert_eq!(doc["ledger"]["lost_at_least"], 803);
        assert_eq!(doc["ledger"]["acknowledge"], format!("sett ledger ack -n {}", doc["instance"].as_str().unwrap()));
        let text = n.slack_text(&env(None));
        assert!(text.contains("went back from `812:aa` to `9:bb`") && text.contains("sett ledger ack"), "{text}");
    }

    #[test]
    fn a_ledger_anchor_carries_the_witness_line_and_how_to_check_it() {
        let w = WitnessRecord {
            instance: "demo".into(),
            seq: 42,
            hash: "cc".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            reason: "periodic".into(),
        };
        let n = Notification::LedgerAnchor(w.clone());
        let doc = n.json(&env(None));
        assert_eq!(doc["event"], "ledger_anchor");
        assert_eq!(
            (doc["ledger"]["head"].as_str(), doc["ledger"]["reason"].as_str()),
            (Some("42:cc"), Some("periodic"))
        );
        let line: WitnessRecord = serde_json::from_str(doc["ledger"]["witness_line"].as_str().unwrap()).unwrap();
        assert_eq!(line, w, "a receiver can append the line to a witness file as it is");
        assert!(doc["ledger"]["verify"].as_str().unwrap().ends_with("--head 42:cc"));
        assert!(n.slack_text(&env(None)).contains("`42:cc`"));
    }
}
