//! The Lua scripts, loaded from `lua/*.lua` at compile time. Each opens with its KEYS/ARGV
//! contract; `evalsha_with_reload` recovers from NOSCRIPT after a Redis restart or failover.
//! Every script that appends to an event stream has `lua/ledger_chain.lua` prepended and appends
//! only through its `ledger_append`, so the hash chain is extended in the same atomic call.

use std::sync::LazyLock;

use fred::types::scripts::Script;

#[cfg(not(feature = "bench-unchained-ledger"))]
macro_rules! ledger_prelude {
    () => {
        include_str!("../lua/ledger_chain.lua")
    };
}

/// The benchmark baseline's prelude (see the feature in Cargo.toml): no chain.
#[cfg(feature = "bench-unchained-ledger")]
macro_rules! ledger_prelude {
    () => {
        include_str!("../lua/ledger_unchained.lua")
    };
}

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::from_lua(include_str!(concat!("../lua/", $file))));
    };
    ($name:ident, $file:literal, chained) => {
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::from_lua(concat!(ledger_prelude!(), include_str!(concat!("../lua/", $file)))));
    };
}

script!(CREATE_ARTIFACT, "create_artifact.lua", chained);
script!(WRITE_CLAIM, "write_claim.lua", chained);
script!(SUBMIT_BID, "submit_bid.lua", chained);
script!(APPEND_EVENT, "append_event.lua", chained);
script!(CANCEL_WORKFLOW, "cancel_workflow.lua", chained);
script!(RECORD_LATE_OUTPUT, "record_late_output.lua", chained);
script!(PAUSE, "pause.lua", chained);
script!(RESUME, "resume.lua", chained);
script!(RETRY, "retry.lua", chained);
script!(RECORD_BUDGET, "record_budget.lua", chained);
script!(RELEASE_HELD, "release_held.lua");
script!(LOCK_RENEW, "lock_renew.lua");
script!(LOCK_RELEASE, "lock_release.lua");
script!(WORKER_OFFER, "worker_offer.lua");
script!(WORKER_RELEASE, "worker_release.lua");
script!(WORKER_UPDATE, "worker_update.lua");
script!(NOTIFY_ENQUEUE, "notify_enqueue.lua");
script!(NOTIFY_FINISH, "notify_finish.lua");
script!(ARCHIVE_DELETE, "archive_delete.lua");
