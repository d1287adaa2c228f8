//! Anchors: the ledger head recorded in the global audit stream (by `sett down`, `sett export`,
//! and periodically by the orchestrator with `ledger.anchor_every`) and witnessed outside Redis.

use sett_core::ledger::Head;
use sett_store::Store;

use super::VerifyError;

/// Records the instance's ledger head in the global audit stream (an anchor:
/// `{"event": "ledger_anchor", "instance", "head", "reason", "ts"}`) and returns it; `None`
/// (and nothing written) before the first chained event. Written by `sett down`, `sett export`
/// and, with `ledger.anchor_every`, periodically by the orchestrator.
pub async fn anchor(store: &Store, reason: &str) -> Result<Option<Head>, VerifyError> {
    let Some(head) = store.ledger_head().await? else { return Ok(None) };
    let record = serde_json::json!({
        "event": "ledger_anchor",
        "instance": store.instance().as_str(),
        "head": head.to_string(),
        "reason": reason,
        "ts": sett_store::now_ms(),
    });
    store.redis().append_audit(&record).await?;
    Ok(Some(head))
}

/// `ledger.anchor_every`: once the orchestrator holds the instance lock (`ready`), records the
/// ledger head in the global audit stream every `every` until `stop` — only when the head moved
/// since the last anchor this loop wrote, so an idle instance adds nothing — and witnesses it
/// outside Redis (the witness file at `witness`, and `on_anchor`: the `ledger_anchor`
/// notification). A failed anchor is logged and retried at the next tick; anchoring never stops
/// the engine.
pub async fn anchor_periodically(
    store: Store,
    every: std::time::Duration,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: tokio_util::sync::CancellationToken,
    witness: std::path::PathBuf,
    on_anchor: Option<crate::witness::OnAnchor>,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // After a pause (a suspended machine) one anchor, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Head> = None;
    loop {
        // Cancel-safe: `tick()` and `cancelled()` hold no state that a lost race would drop.
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !ready.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        match store.ledger_head().await {
            Ok(Some(head)) if last.as_ref() != Some(&head) => match anchor(&store, "periodic").await {
                Ok(written) => {
                    tracing::info!(head = ?written.as_ref().map(ToString::to_string), "ledger head anchored in the global audit stream");
                    if let Some(h) = &written {
                        match crate::witness::witness_head(&store, h, "periodic", &witness, on_anchor.as_ref()).await {
                            Ok(_) => last = written,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not witness the ledger head outside Redis; retrying at the next interval")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not anchor the ledger head; retrying at the next interval"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the ledger head; retrying at the next interval"),
        }
    }
}
