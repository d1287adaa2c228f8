//! Budget decisions (sett_core::budget): each is one `budget_decided` event with its action
//! record (`actions`, checked by `sett verify` like an operator's pause), written in one atomic
//! step by `lua/record_budget.lua`; the decision that a budget was reached also opens the
//! budget Question it asked. And reading one artifact's usage without its payload.

use fred::prelude::*;
use sett_core::ArtifactId;
use sett_core::event::{BudgetDecided, EventData};
use sett_core::ledger;
use sett_core::usage::Usage;

use crate::pause::ActionRecord;
use crate::scripts::RECORD_BUDGET;
use crate::{Result, Store, StoreError};

impl Store {
    /// Records budget decision `d`, made at `at_ms`, with its action record; `open` also opens
    /// its question (a reached budget). Returns false when its action id was recorded before
    /// (nothing written).
    pub async fn record_budget_decision(&self, d: &BudgetDecided, at_ms: i64, open: bool) -> Result<bool> {
        let k = &self.keys;
        let ts = at_ms.to_string();
        let data = EventData::BudgetDecided(d.clone()).to_json();
        let digest = ledger::event_digest("budget_decided", &ts, &data, None);
        let action = ActionRecord {
            kind: "budget_decided".into(),
            target: d.goal_id.to_string(),
            operator: d.operator.clone(),
            reason: d.reason.clone(),
            at_ms,
        };
        let keys = vec![k.events(), k.ledger(), k.actions(), k.question_answers(), k.open_questions()];
        let args = vec![
            ts,
            data,
            digest,
            d.action_id.clone(),
            action.encode(),
            if open { d.question_id.to_string() } else { String::new() },
        ];
        let (reply, _rewritten): (Vec<String>, bool) = self
            .durable(|| async {
                Ok(RECORD_BUDGET.evalsha_with_reload(self.client(), keys.clone(), args.clone()).await?)
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(true),
            Some("exists") => Ok(false),
            other => Err(StoreError::Decode(format!("unexpected record_budget reply {other:?}"))),
        }
    }

    /// Takes a question asked by Sett itself out of the open-question index (its workflow
    /// ended: nobody waits for it; no claim holds it, so the cancellation did not).
    pub async fn forget_open_question(&self, question: &ArtifactId) -> Result<()> {
        let _: i64 = self.client().zrem(self.keys.open_questions(), question.to_string()).await?;
        Ok(())
    }

    /// The usage an artifact reported (one field read, not the payload).
    pub async fn artifact_usage(&self, id: &ArtifactId) -> Result<Option<Usage>> {
        let raw: Option<String> = self.client().hget(self.keys.artifact(id), "usage").await?;
        raw.filter(|r| !r.is_empty())
            .map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Decode(format!("usage of {id}: {e}"))))
            .transpose()
    }
}
