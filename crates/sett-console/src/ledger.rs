//! The console's own ledger-regression checks (docs/operations.md, "The ledger went back"): one
//! in-memory [`LedgerWatch`] per instance shown, looked at every [`CHECK_EVERY`]. A regression
//! is logged, counted (`component="console"`) and recorded, so the instances page shows it
//! until an operator runs `sett ledger ack`. An instance no longer registered (destroyed) is
//! forgotten, so one re-created under the same name starts afresh.

use std::collections::HashMap;
use std::sync::Arc;

use sett_core::InstanceName;
use sett_ops::ledger_watch::{CHECK_EVERY, LedgerWatch};
use tokio_util::sync::CancellationToken;

use crate::app::App;

pub(crate) async fn watch(app: Arc<App>, stop: CancellationToken) {
    let mut watches: HashMap<InstanceName, LedgerWatch> = HashMap::new();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(names) = app.instance_names().await else { continue };
        watches.retain(|n, _| names.contains(n));
        for name in names {
            let watch =
                watches.entry(name.clone()).or_insert_with(|| LedgerWatch::new(app.redis.instance(&name), "console"));
            if let Err(e) = watch.check().await {
                tracing::debug!(instance = %name, error = %e, "ledger check failed; retrying at the next tick");
            }
        }
    }
}
