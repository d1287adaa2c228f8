//! Routing of human decisions: who a question is addressed to (people and `group:<name>`), who
//! may answer it, and when it is reminded and escalated. Built from `sett.yml` (`humans:` and
//! `agents.<name>.questions_to`) by [`crate::config`], followed by [`crate::machine`] when a
//! question opens and as time passes; read by `sett answer`, `sett questions --mine` and the
//! console to decide who may answer.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::AgentName;

/// How an addressee names a group rather than a person: `group:legal`.
pub const GROUP_PREFIX: &str = "group:";

/// What the state machine applies of routing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    /// The default addressees of each agent's questions (`agents.<name>.questions_to`).
    pub questions_to: BTreeMap<AgentName, Vec<String>>,
    /// `humans.groups`: group name → its people.
    pub groups: BTreeMap<String, Vec<String>>,
    /// `humans.remind_every`: a `question_reminder` this often until answered; `None` = never.
    pub remind_every_ms: Option<i64>,
    /// `humans.escalate_after`: when `escalate_to` joins the addressees; `None` = never.
    pub escalate_after_ms: Option<i64>,
    /// `humans.escalate_to`: people and groups added on escalation.
    pub escalate_to: Vec<String>,
    /// `humans.reviewers`: who reviews artifacts of which types.
    pub reviewers: Vec<HumanReviewers>,
}

/// People who review artifacts of some types (`humans.reviewers[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanReviewers {
    pub artifact_types: Vec<String>,
    /// People and groups, sorted; any one of them decides.
    pub reviewers: Vec<String>,
}

impl Routing {
    /// The people `to` names: the people it names directly and the members of the `sett.yml`
    /// groups it names, sorted and once each. A group `sett.yml` does not define adds nobody
    /// here (the console's users file may still put people in it).
    pub fn people(&self, to: &[String]) -> Vec<String> {
        let mut people = BTreeSet::new();
        for a in to {
            match a.strip_prefix(GROUP_PREFIX) {
                Some(group) => people.extend(self.groups.get(group).into_iter().flatten().cloned()),
                None => {
                    people.insert(a.clone());
                }
            }
        }
        people.into_iter().collect()
    }

    /// Who reviews artifacts of `artifact_type` (every matching rule's reviewers), if anyone.
    pub fn reviewers_of(&self, artifact_type: &str) -> Vec<String> {
        normalise(
            self.reviewers
                .iter()
                .filter(|r| r.artifact_types.iter().any(|t| t == artifact_type))
                .flat_map(|r| r.reviewers.iter().cloned()),
        )
    }

    /// The groups (of `humans.groups`) `person` is in.
    pub fn groups_of(&self, person: &str) -> Vec<String> {
        self.groups.iter().filter(|(_, people)| people.iter().any(|p| p == person)).map(|(g, _)| g.clone()).collect()
    }
}

/// The addressees a Question's payload names itself: the `to` list of a JSON object payload
/// (`{"question": …, "to": ["alice", "group:legal"]}`), checked; `None` when it names none.
pub fn addressees_in_payload(payload: &str) -> Option<Vec<String>> {
    if !payload.trim_start().starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    let list = value.get("to")?.as_array()?;
    let to: Vec<String> =
        list.iter().filter_map(|v| v.as_str()).filter(|a| check_addressee(a).is_ok()).map(str::to_owned).collect();
    (!to.is_empty()).then(|| normalise(to))
}

/// Whether `a` is a valid addressee: a person's name (as the operator identity or the console's
/// users file gives it) or `group:<name>`, non-empty, without surrounding spaces.
pub fn check_addressee(a: &str) -> Result<(), String> {
    if a.trim().is_empty() {
        return Err("an addressee is empty".into());
    }
    if a.trim() != a {
        return Err(format!("addressee '{a}' has surrounding spaces"));
    }
    if a.strip_prefix(GROUP_PREFIX).is_some_and(|g| g.trim().is_empty()) {
        return Err(format!("addressee '{a}' names no group; write group:<name>"));
    }
    Ok(())
}

/// `to` sorted, once each (the form stored and compared).
pub fn normalise(to: impl IntoIterator<Item = String>) -> Vec<String> {
    to.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Whether `name`, a member of `groups`, may answer a question addressed to `to` whose people
/// (with `sett.yml` groups expanded) are `people`: anyone may when it is addressed to nobody.
pub fn may_answer(to: &[String], people: &[String], name: &str, groups: &[String]) -> bool {
    to.is_empty()
        || people.iter().any(|p| p == name)
        || to.iter().any(|a| a == name)
        || groups.iter().any(|g| to.iter().any(|a| a.strip_prefix(GROUP_PREFIX) == Some(g.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn people_expand_the_configured_groups() {
        let r = Routing { groups: BTreeMap::from([("legal".into(), s(&["carol", "dave"]))]), ..Routing::default() };
        assert_eq!(r.people(&s(&["alice", "group:legal", "group:unknown", "carol"])), s(&["alice", "carol", "dave"]));
        assert_eq!(r.groups_of("dave"), s(&["legal"]));
        assert!(r.groups_of("alice").is_empty());
    }

    #[test]
    fn only_addressees_may_answer_and_anyone_when_nobody_is_addressed() {
        let to = s(&["alice", "group:legal"]);
        let people = s(&["alice", "carol"]);
        assert!(may_answer(&to, &people, "alice", &[]));
        assert!(may_answer(&to, &people, "carol", &[]), "a member of a sett.yml group");
        assert!(may_answer(&to, &people, "erin", &s(&["legal"])), "a member by the console's users file");
        assert!(!may_answer(&to, &people, "bob", &s(&["ops"])));
        assert!(may_answer(&[], &[], "bob", &[]));
    }

    #[test]
    fn a_payload_names_its_addressees() {
        assert_eq!(
            addressees_in_payload(r#"{"question": "Ship?", "to": ["group:legal", "alice", "alice", " "]}"#),
            Some(s(&["alice", "group:legal"]))
        );
        assert_eq!(addressees_in_payload(r#"{"question": "Ship?"}"#), None);
        assert_eq!(addressees_in_payload("plain text"), None);
        assert!(check_addressee("group:").is_err());
        assert!(check_addressee(" bob").is_err());
        assert!(check_addressee("Bob Smith").is_ok());
    }
}
