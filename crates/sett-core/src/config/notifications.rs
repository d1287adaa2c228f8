//! The `notifications:` section: webhooks, the events they are told about, their secrets.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::raw::RawNotifications;

/// What a webhook can be told about (`notifications.webhooks[].events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    QuestionAsked,
    QuestionTimedOut,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    // The ledger went back (docs/operations.md, "The ledger went back").
    LedgerRegressed,
    // A ledger head anchored (a witness outside Redis); opt-in: not in the default list.
    LedgerAnchor,
    /// A question is still unanswered after another `humans.remind_every`.
    QuestionReminder,
    /// A question waited `humans.escalate_after`; `humans.escalate_to` joined its addressees.
    QuestionEscalated,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 9] = [
        Self::QuestionAsked,
        Self::QuestionTimedOut,
        Self::WorkflowCompleted,
        Self::WorkflowFailed,
        Self::WorkflowCancelled,
        Self::LedgerRegressed,
        Self::LedgerAnchor,
        Self::QuestionReminder,
        Self::QuestionEscalated,
    ];

    /// Whether a webhook without an `events` key gets this event: all but `ledger_anchor`
    /// (one per anchor, periodic: a webhook asks for it by name).
    pub fn is_default(self) -> bool {
        !matches!(self, Self::LedgerAnchor)
    }

    /// The events of a webhook without an `events` key, in [`NotifyEvent::ALL`]'s order.
    pub fn defaults() -> Vec<NotifyEvent> {
        Self::ALL.into_iter().filter(|e| e.is_default()).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuestionAsked => "question_asked",
            Self::QuestionTimedOut => "question_timed_out",
            Self::WorkflowCompleted => "workflow_completed",
            Self::WorkflowFailed => "workflow_failed",
            Self::WorkflowCancelled => "workflow_cancelled",
            Self::LedgerRegressed => "ledger_regressed",
            Self::LedgerAnchor => "ledger_anchor",
            Self::QuestionReminder => "question_reminder",
            Self::QuestionEscalated => "question_escalated",
        }
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body a webhook receives: Sett's JSON document, or Slack's `{"text": ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// Where a webhook's HMAC secret comes from. `Debug` never shows a literal secret.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookSecret {
    /// Written in sett.yml (`secret:`).
    Literal(String),
    /// Read from this environment variable of the orchestrator when it starts (`secret_env:`).
    Env(String),
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(_) => f.write_str("Literal(***)"),
            Self::Env(name) => write!(f, "Env({name})"),
        }
    }
}

/// One webhook. `name` identifies it in Redis, metrics, logs and `sett status`: the `name:`
/// key, or `webhook-<n>` (its 1-based position) when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    pub events: Vec<NotifyEvent>,
    pub secret: Option<WebhookSecret>,
    pub format: WebhookFormat,
}

impl WebhookConfig {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }
}

/// The validated `notifications:` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationsConfig {
    /// The console's base URL (e.g. `https://sett.example.com`), so a question notification can
    /// link to the question.
    pub console_url: Option<String>,
    pub webhooks: Vec<WebhookConfig>,
}

impl NotificationsConfig {
    pub fn is_enabled(&self) -> bool {
        !self.webhooks.is_empty()
    }
}

/// `http(s)://host…` with a non-empty host and no whitespace.
fn is_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !url.chars().any(char::is_whitespace)
    })
}

pub(super) fn parse_notifications(
    raw: Option<RawNotifications>,
    err: &dyn Fn(&str, String, &str) -> ConfigError,
) -> Result<NotificationsConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(NotificationsConfig::default());
    };
    if let Some(u) = &raw.console_url
        && !is_http_url(u)
    {
        return Err(err(
            "notifications.console_url",
            format!("'{u}' is not an http(s) URL"),
            "give the console's base URL, e.g. https://sett.example.com",
        ));
    }
    let mut webhooks: Vec<WebhookConfig> = Vec::new();
    for (i, w) in raw.webhooks.into_iter().enumerate() {
        let at = |k: &str| format!("notifications.webhooks[{i}].{k}");
        let name = w.name.unwrap_or_else(|| format!("webhook-{}", i + 1));
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(err(
                &at("name"),
                format!("invalid webhook name '{name}'"),
                "use 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if webhooks.iter().any(|o| o.name == name) {
            return Err(err(
                &at("name"),
                format!("webhook name '{name}' is used twice"),
                "give each webhook its own name",
            ));
        }
        if !is_http_url(&w.url) {
            return Err(err(
                &at("url"),
                format!("'{}' is not an http(s) URL", w.url),
                "give the receiver's URL, e.g. https://hooks.example.com/sett",
            ));
        }
        let mut events = w.events.unwrap_or_else(NotifyEvent::defaults);
        events.sort();
        events.dedup();
        if events.is_empty() {
            // Named from the one list of events, so a new event is never missing from the hint.
            let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
            return Err(err(
                &at("events"),
                "no events".into(),
                &format!("list at least one of {} (or remove the key for all but ledger_anchor)", known.join(", ")),
            ));
        }
        let secret = match (w.secret, w.secret_env) {
            (Some(_), Some(_)) => {
                return Err(err(&at("secret"), "both secret and secret_env are set".into(), "keep one of them"));
            }
            (Some(s), None) if s.is_empty() => {
                return Err(err(&at("secret"), "the secret is empty".into(), "give a secret or remove the key"));
            }
            (Some(s), None) => Some(WebhookSecret::Literal(s)),
            (None, Some(e)) if e.is_empty() => {
                return Err(err(
                    &at("secret_env"),
                    "the variable name is empty".into(),
                    "name an environment variable",
                ));
            }
            (None, Some(e)) => Some(WebhookSecret::Env(e)),
            (None, None) => None,
        };
        webhooks.push(WebhookConfig { name, url: w.url, events, secret, format: w.format });
    }
    Ok(NotificationsConfig { console_url: raw.console_url.map(|u| u.trim_end_matches('/').to_owned()), webhooks })
}
