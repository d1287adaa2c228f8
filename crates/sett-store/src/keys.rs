//! Every Redis key name Sett uses, and nothing else. The instance name is wrapped in literal
//! braces (`sett:{<instance>}:`) so it is the Redis Cluster hash tag: all keys of one instance
//! share a slot (Lua and MULTI work on a cluster), while instances spread across shards.
//!
//! Instance keys (all under the prefix). Destroy enumerates them instead of scanning the
//! keyspace: every key is a fixed name ([`Keys::fixed`]), an artifact, thread, claim or bids key
//! of an id in `index:artifacts` / `index:claims`, or named in the key registry `index:keys`
//! (kept by the script that writes such a key, in the same atomic step). A new key family must
//! join one of the three (the test `every_key_family_is_enumerated` in sett-store checks).
//!
//! | key | type | content |
//! |---|---|---|
//! | `artifact:<id>` | hash | artifact fields |
//! | `claim:<id>` | hash | claim fields (`codec.rs`: empty lists and maps left out, a grant and a received output one field per agent, `grant:<agent>` and `received:<agent>`, so the hash stays a listpack) |
//! | `claim:<id>:bids` | hash | agent → bid |
//! | `thread:<logical_id>` | zset | artifact id scored by version; made by a thread's second version, with the first in it (a first version alone has none: it is its thread's only version) |
//! | `lock` | string (TTL) | JSON lock holder |
//! | `events` | stream | the audit ledger; consumer groups `orchestrator`, `cub:<agent>` and `notifier`; entries carry `kind`, `ts`, `data`, `claim` (empty when none), `seq`, `hash` (the chain) |
//! | `ledger` | hash | the chain head: `seq`, `hash`, `id` of the newest chained event (written by the Lua that appends); `keys` = `indexed:threads-registered` when the first event created the stream, i.e. every key of the instance was written by writers that keep the indexes and `index:keys`, which names every thread set (`indexed`: the same, written by a Sett that gave each first version its own `thread:<id>`; without a mark, e.g. an instance written before or imported, destroy sweeps the keyspace) |
//! | `index:keys` | set | key names (relative to the prefix) not reachable from the indexes: `workers:<agent>:queue`/`running`, `notify:queue:<webhook>`, and every `thread:<logical_id>` (made by a thread's second version); a name leaves it only when archiving deletes the last of that key, in the same atomic step (`lua/archive_delete.lua`) |
//! | `ledger:regressions` | hash | lost head `<seq>:<hash>` → JSON record of a ledger regression (who noticed, what was found, acknowledgement) |
//! | `index:artifacts` | zset | artifact id scored by creation time |
//! | `index:claims` | zset | claim id scored by creation time |
//! | `index:claim_by_artifact` | hash | artifact id → its (first) claim id |
//! | `index:deadlines` | zset | claim id scored by its next deadline |
//! | `questions:open` | zset | open question id scored by the time it was asked |
//! | `questions:answers` | hash | question id → JSON answer record (closes it for good; an approval's also binds its decision and the hashes shown) |
//! | `executions` | hash | `<claim>:<seq>` → JSON record of the cub run that took a grant |
//! | `components` | hash | component name → JSON health record (pid, address, heartbeat) |
//! | `workers:<agent>:queue` | list | FIFO of grants waiting for a worker slot |
//! | `workers:<agent>:running` | hash | grant → JSON worker record |
//! | `outbox` | hash | `<claim>:<revision>` → JSON follow-up effects of a transition, removed once carried out |
//! | `notify:deliveries` | hash | `<event id>:<webhook>` → JSON notification delivery record |
//! | `notify:queue:<webhook>` | zset | undelivered delivery id scored by its next attempt time |
//! | `notify:webhooks` | hash | webhook name → JSON endpoint state (last success, last error) |
//! | `notify:workflows` | hash | goal artifact id → the outcome artifact already notified |
//! | `workflows:cancelled` | hash | goal artifact id → JSON cancellation record (operator, reason, time) |
//! | `index:cancelled` | hash | artifact or claim id of a cancelled workflow → `member:<goal>` (known at the cancellation), `expected:<goal>` (an output a cancelled grant may still write) or `late:<goal>` (such an output, written after) |
//! | `archive:segments` | hash | archive segment name → JSON manifest (seq range, hashes, size, the workflow count and goal range — the goals themselves are in the segment), written once the segment was read back |
//! | `archive:head` | hash | the last archived event: `seq`, `hash`, `id` (the stream is trimmed up to it, never past it) |
//! | `archive:state` | hash | where the archive is (`location`), the next segment number, last run, last success, last error |
//! | `archive:pending` | string | JSON plan of the archiving pass in progress (written before its segment; removed when its records are deleted and the stream trimmed) |
//! | `archive:lock` | string (TTL) | JSON holder of the archiving pass (one at a time: the orchestrator's or `sett archive`) |
//! | `archive:restored` | hash | goal id → JSON record of a workflow brought back by `sett restore` (never archived again) |
//! | `paused` | hash | `instance` or a goal artifact id → JSON pause record (operator, reason, time, action id): nothing of it is granted until it is resumed |
//! | `index:paused` | hash | artifact or claim id of a paused workflow (and each output its running grants may still write) → its goal id |
//! | `held` | zset | claim id whose granting transition a pause refused, scored by when: the orchestrator applies it again on resume |
//! | `actions` | hash | action id → JSON record of an operator's steering action (kind, target, operator, reason, time), checked by `sett verify` against its event |
//! | `retries` | hash | claim id of a failed step an operator retried → the claim id of its new attempt (a failed claim is retried once; the new attempt can fail and be retried in turn) |
//!
//! Global keys: `sett:instances`, `sett:instance_counter`, `sett:audit`.

use sett_core::{AgentName, ArtifactId, ClaimId, InstanceName};

pub const INSTANCES: &str = "sett:instances";
pub const INSTANCE_COUNTER: &str = "sett:instance_counter";
pub const AUDIT: &str = "sett:audit";

/// Key builder for one instance.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(instance: &InstanceName) -> Self {
        Self { prefix: format!("sett:{{{}}}:", instance.as_str()) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The SCAN pattern matching every key of this instance and nothing else. The instance name
    /// is validated (no glob characters), and escaped anyway as defence in depth.
    pub fn scan_pattern(&self) -> String {
        format!("{}*", escape_glob(&self.prefix))
    }

    pub fn artifact(&self, id: &ArtifactId) -> String {
        format!("{}artifact:{id}", self.prefix)
    }
    /// SCAN pattern for artifacts whose id starts with `hyphenated_prefix` (hex and '-' only).
    pub fn artifact_prefix_pattern(&self, hyphenated_prefix: &str) -> String {
        format!("{}artifact:{}*", escape_glob(&self.prefix), escape_glob(hyphenated_prefix))
    }
    /// An artifact key from an id as stored (verify reads ids out of possibly tampered records).
    pub fn artifact_raw(&self, id: &str) -> String {
        format!("{}artifact:{id}", self.prefix)
    }
    /// A claim key from an id as stored.
    pub fn claim_raw(&self, id: &str) -> String {
        format!("{}claim:{id}", self.prefix)
    }
    pub fn claim(&self, id: &ClaimId) -> String {
        format!("{}claim:{id}", self.prefix)
    }
    pub fn bids(&self, id: &ClaimId) -> String {
        format!("{}claim:{id}:bids", self.prefix)
    }
    pub fn thread(&self, logical_id: &ArtifactId) -> String {
        format!("{}thread:{logical_id}", self.prefix)
    }
    pub fn lock(&self) -> String {
        format!("{}lock", self.prefix)
    }
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
    pub fn ledger(&self) -> String {
        format!("{}ledger", self.prefix)
    }
    pub fn artifacts_index(&self) -> String {
        format!("{}index:artifacts", self.prefix)
    }
    pub fn claims_index(&self) -> String {
        format!("{}index:claims", self.prefix)
    }
    pub fn claim_by_artifact(&self) -> String {
        format!("{}index:claim_by_artifact", self.prefix)
    }
    pub fn deadlines(&self) -> String {
        format!("{}index:deadlines", self.prefix)
    }
    pub fn open_questions(&self) -> String {
        format!("{}questions:open", self.prefix)
    }
    pub fn question_answers(&self) -> String {
        format!("{}questions:answers", self.prefix)
    }
    pub fn executions(&self) -> String {
        format!("{}executions", self.prefix)
    }
    pub fn components(&self) -> String {
        format!("{}components", self.prefix)
    }
    /// Not a key: the sharded Pub/Sub channel a running cub of `agent` stays subscribed to
    /// (presence.rs). Its hash tag puts it in the instance's slot, so a script on the node that
    /// holds the instance counts its subscribers.
    pub fn presence_channel(&self, agent: &AgentName) -> String {
        format!("{}cub:{agent}:presence", self.prefix)
    }
    /// Not a key: the sharded Pub/Sub channel every cub's presence connection also listens on,
    /// rung after an event any cub may have to act on (a claim waiting for bids, a cancelled
    /// workflow, an orchestrator started; presence.rs, bells). In the instance's slot, like the
    /// presence channels, so a script on that node may publish to it.
    pub fn cubs_bell_channel(&self) -> String {
        format!("{}cubs:bell", self.prefix)
    }
    pub fn worker_queue(&self, agent: &AgentName) -> String {
        format!("{}workers:{agent}:queue", self.prefix)
    }
    pub fn workers_running(&self, agent: &AgentName) -> String {
        format!("{}workers:{agent}:running", self.prefix)
    }

    pub fn outbox(&self) -> String {
        format!("{}outbox", self.prefix)
    }

    pub fn notify_deliveries(&self) -> String {
        format!("{}notify:deliveries", self.prefix)
    }
    /// `webhook` is a validated webhook name (letters, digits, `-`, `_`).
    pub fn notify_queue(&self, webhook: &str) -> String {
        format!("{}notify:queue:{webhook}", self.prefix)
    }
    pub fn notify_webhooks(&self) -> String {
        format!("{}notify:webhooks", self.prefix)
    }
    pub fn ledger_regressions(&self) -> String {
        format!("{}ledger:regressions", self.prefix)
    }
    pub fn notify_workflows(&self) -> String {
        format!("{}notify:workflows", self.prefix)
    }

    pub fn cancelled_workflows(&self) -> String {
        format!("{}workflows:cancelled", self.prefix)
    }
    /// The fence of cancelled workflows: no claim is created for an artifact in it.
    pub fn cancel_fence(&self) -> String {
        format!("{}index:cancelled", self.prefix)
    }

    pub fn archive_segments(&self) -> String {
        format!("{}archive:segments", self.prefix)
    }
    pub fn archive_head(&self) -> String {
        format!("{}archive:head", self.prefix)
    }
    pub fn archive_state(&self) -> String {
        format!("{}archive:state", self.prefix)
    }
    pub fn archive_pending(&self) -> String {
        format!("{}archive:pending", self.prefix)
    }
    pub fn archive_lock(&self) -> String {
        format!("{}archive:lock", self.prefix)
    }
    pub fn archive_restored(&self) -> String {
        format!("{}archive:restored", self.prefix)
    }
    /// An instance key from a name relative to the prefix (an archived record's `key`).
    pub fn relative(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }
    /// Pauses in force: `instance` or a goal id → pause record.
    pub fn paused(&self) -> String {
        format!("{}paused", self.prefix)
    }
    /// The fence of paused workflows: member id → goal id.
    pub fn pause_fence(&self) -> String {
        format!("{}index:paused", self.prefix)
    }
    /// Claims whose granting transition a pause refused.
    pub fn held(&self) -> String {
        format!("{}held", self.prefix)
    }
    /// Operators' steering actions by action id.
    pub fn actions(&self) -> String {
        format!("{}actions", self.prefix)
    }
    /// Retried failed claims: failed claim id → its new attempt's claim id.
    pub fn retries(&self) -> String {
        format!("{}retries", self.prefix)
    }
    /// The key registry: names (relative to the prefix) of keys no index reaches.
    pub fn key_registry(&self) -> String {
        format!("{}index:keys", self.prefix)
    }

    /// Every fixed-name key of the instance, lock included. The ledger head, the indexes and
    /// the key registry come last: a destroy deletes in this order, so one that stops part way
    /// still finds what is left through them.
    pub fn fixed(&self) -> Vec<String> {
        vec![
            self.lock(),
            self.events(),
            self.ledger_regressions(),
            self.open_questions(),
            self.question_answers(),
            self.executions(),
            self.components(),
            self.outbox(),
            self.notify_deliveries(),
            self.notify_webhooks(),
            self.notify_workflows(),
            self.cancelled_workflows(),
            self.cancel_fence(),
            self.archive_segments(),
            self.archive_head(),
            self.archive_state(),
            self.archive_pending(),
            self.archive_lock(),
            self.archive_restored(),
            self.paused(),
            self.pause_fence(),
            self.held(),
            self.actions(),
            self.retries(),
            self.deadlines(),
            self.claim_by_artifact(),
            self.artifacts_index(),
            self.claims_index(),
            self.key_registry(),
            self.ledger(),
        ]
    }

    /// The family of an instance key (`artifact`, `claim`, `bids`, …), for destroy's counts.
    pub fn family_of<'k>(&self, key: &'k str) -> &'k str {
        let rest = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
        let head = rest.split(':').next().unwrap_or(rest);
        if head == "claim" && rest.ends_with(":bids") { "bids" } else { head }
    }
}

/// An instance key by its name relative to the instance prefix, as export and archive records
/// carry it (`artifact:<id>`, `events`, …): the records their readers tell apart, typed, so no
/// reader outside sett-store spells a key name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeKey<'a> {
    /// `artifact:<id>`, with the id as written.
    Artifact(&'a str),
    /// `claim:<id>`.
    Claim(&'a str),
    /// `claim:<id>:bids`.
    Bids(&'a str),
    /// `events`: the stream.
    Events,
    /// `ledger`: the chain head.
    Ledger,
    /// `questions:answers`.
    QuestionAnswers,
    /// `workflows:cancelled`.
    CancelledWorkflows,
    /// `actions`.
    Actions,
    /// `index:claims`.
    ClaimsIndex,
    /// `archive:segments`.
    ArchiveSegments,
    /// `archive:head`.
    ArchiveHead,
    /// `archive:state`.
    ArchiveState,
    /// `lock`: the instance lock (never exported into another instance).
    Lock,
    /// Any other key.
    Other(&'a str),
}

impl<'a> RelativeKey<'a> {
    pub fn parse(rel: &'a str) -> Self {
        if let Some(id) = rel.strip_prefix("artifact:") {
            return Self::Artifact(id);
        }
        if let Some(rest) = rel.strip_prefix("claim:") {
            return rest.strip_suffix(":bids").map_or(Self::Claim(rest), Self::Bids);
        }
        match rel {
            "events" => Self::Events,
            "ledger" => Self::Ledger,
            "questions:answers" => Self::QuestionAnswers,
            "workflows:cancelled" => Self::CancelledWorkflows,
            "actions" => Self::Actions,
            "index:claims" => Self::ClaimsIndex,
            "archive:segments" => Self::ArchiveSegments,
            "archive:head" => Self::ArchiveHead,
            "archive:state" => Self::ArchiveState,
            "lock" => Self::Lock,
            other => Self::Other(other),
        }
    }

    /// The relative name of artifact `id`'s key.
    pub fn artifact(id: &ArtifactId) -> String {
        format!("artifact:{id}")
    }

    /// What follows the family in a relative name (`<id>` of `artifact:<id>`, `<id>:bids` of
    /// `claim:<id>:bids`; a name without a family whole): within one family these sort as the
    /// keys do, so a sorted export can be searched by id.
    pub fn within_family(rel: &'a str) -> &'a str {
        rel.split_once(':').map_or(rel, |(_, rest)| rest)
    }
}

/// Escapes the characters SCAN MATCH treats specially.
pub fn escape_glob(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_the_hash_tag() {
        let k = Keys::new(&InstanceName::parse("myproject").unwrap());
        assert_eq!(k.lock(), "sett:{myproject}:lock");
        assert_eq!(k.scan_pattern(), "sett:{myproject}:*");
        let c = ClaimId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        assert_eq!(k.family_of(&k.bids(&c)), "bids");
        assert_eq!(k.family_of(&k.claim(&c)), "claim");
        assert_eq!(k.family_of(&k.open_questions()), "questions");
        assert_eq!(k.notify_queue("ops"), "sett:{myproject}:notify:queue:ops");
        assert_eq!(k.family_of(&k.notify_queue("ops")), "notify");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn relative_names_read_back_as_the_keys_they_name() {
        let k = Keys::new(&InstanceName::parse("myproject").unwrap());
        let c = ClaimId::parse("0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d").unwrap();
        let rel = |key: String| key.strip_prefix(k.prefix()).unwrap().to_owned();
        let claim = c.to_string();
        let a = ArtifactId::derived(&"t", "a");
        let artifact = a.to_string();
        for (key, expected) in [
            (k.artifact(&a), RelativeKey::Artifact(&artifact)),
            (k.claim(&c), RelativeKey::Claim(&claim)),
            (k.bids(&c), RelativeKey::Bids(&claim)),
            (k.events(), RelativeKey::Events),
            (k.ledger(), RelativeKey::Ledger),
            (k.question_answers(), RelativeKey::QuestionAnswers),
            (k.cancelled_workflows(), RelativeKey::CancelledWorkflows),
            (k.actions(), RelativeKey::Actions),
            (k.claims_index(), RelativeKey::ClaimsIndex),
            (k.archive_segments(), RelativeKey::ArchiveSegments),
            (k.archive_head(), RelativeKey::ArchiveHead),
            (k.archive_state(), RelativeKey::ArchiveState),
            (k.lock(), RelativeKey::Lock),
        ] {
            assert_eq!(RelativeKey::parse(&rel(key)), expected);
        }
        assert_eq!(RelativeKey::parse(&rel(k.outbox())), RelativeKey::Other("outbox"));
        assert_eq!(k.relative(&RelativeKey::artifact(&a)), k.artifact(&a));
        assert_eq!(RelativeKey::within_family(&rel(k.bids(&c))), format!("{c}:bids"));
    }

    /// Every builder of a fixed name (`pub fn x(&self) -> String`) is in [`Keys::fixed`], so a
    /// new singleton key cannot be left out of what destroy enumerates.
    #[test]
    fn every_fixed_key_is_listed() {
        let k = Keys::new(&InstanceName::parse("myproject").unwrap());
        let fixed = k.fixed();
        let src = include_str!("keys.rs");
        let not_keys = ["prefix", "scan_pattern", "cubs_bell_channel"];
        let mut builders = 0;
        for line in src.lines() {
            let Some(rest) = line.trim().strip_prefix("pub fn ") else { continue };
            let Some((name, sig)) = rest.split_once('(') else { continue };
            if !sig.starts_with("&self) -> String") || not_keys.contains(&name) {
                continue;
            }
            builders += 1;
            assert!(src.contains(&format!("self.{name}(),")), "Keys::{name} is not in Keys::fixed");
        }
        assert_eq!(builders, fixed.len(), "Keys::fixed lists each fixed key once");
        let unique: std::collections::BTreeSet<_> = fixed.iter().collect();
        assert_eq!(unique.len(), fixed.len());
        assert_eq!(fixed.last().unwrap(), &k.ledger(), "the ledger head (the registry marker) goes last");
    }
}
