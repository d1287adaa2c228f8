//! A running cub's presence (design.md §5, standing bids): a sharded Pub/Sub subscription to
//! its agent's presence channel, on a connection of its own. Redis drops a subscription the
//! moment its connection closes, and the kernel closes a process's sockets when it dies however
//! it dies, so a script that counts the channel's subscribers (`PUBSUB SHARDNUMSUB`, in
//! lua/write_claim.lua) knows in the same atomic step whether the cub still runs: no standing
//! bid is recorded for a cub that is gone.

use fred::clients::SubscriberClient;
use fred::prelude::*;
use sett_core::AgentName;
use tokio::task::JoinHandle;

use crate::{Result, Store};

/// How long withdrawing a presence may wait for Redis.
const WITHDRAW_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// A cub's subscription to its presence channel; [`Presence::withdraw`] ends it (so does
/// dropping it, when the process ends).
pub struct Presence {
    client: SubscriberClient,
    channel: String,
    /// Subscribes again after a reconnection (a Redis restart or failover drops every
    /// subscription).
    resubscribe: JoinHandle<()>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl Store {
    /// Subscribes to `agent`'s presence channel on a connection of its own, for as long as the
    /// returned [`Presence`] lives.
    pub async fn announce_presence(&self, agent: &AgentName) -> Result<Presence> {
        let client = self.redis.subscriber().await?;
        let resubscribe = client.manage_subscriptions();
        let channel = self.keys.presence_channel(agent);
        if let Err(e) = client.ssubscribe(channel.as_str()).await {
            resubscribe.abort();
            let _ = client.quit().await;
            return Err(e.into());
        }
        Ok(Presence { client, channel, resubscribe })
    }

    /// Whether a cub of `agent` is subscribed to its presence channel now.
    pub async fn is_present(&self, agent: &AgentName) -> Result<bool> {
        let reply: Vec<Value> = self
            .client()
            .custom(
                fred::cmd!("PUBSUB"),
                vec![Value::from("SHARDNUMSUB"), Value::from(self.keys.presence_channel(agent))],
            )
            .await?;
        Ok(reply.get(1).and_then(Value::as_u64).unwrap_or(0) > 0)
    }
}

impl Presence {
    /// Ends the subscription: from now on no standing bid is recorded for this cub.
    /// Bounded by [`WITHDRAW_BOUND`]: with Redis gone, the subscriber client queues its
    /// SUNSUBSCRIBE and QUIT until it has reconnected, which may be never, and a cub told to stop
    /// would not exit; a subscription ends with its connection anyway.
    pub async fn withdraw(self) {
        self.resubscribe.abort();
        let close = async {
            let _ = self.client.sunsubscribe(self.channel.as_str()).await;
            let _ = self.client.quit().await;
        };
        if tokio::time::timeout(WITHDRAW_BOUND, close).await.is_err() {
            tracing::warn!(bound = ?WITHDRAW_BOUND, "Redis did not answer the presence unsubscribe; closing without it");
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.resubscribe.abort();
    }
}
