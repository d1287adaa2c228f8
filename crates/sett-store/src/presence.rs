//! A running cub's presence (design.md §5, standing bids): a sharded Pub/Sub subscription to
//! its agent's presence channel, on a connection of its own. Redis drops a subscription the
//! moment its connection closes, and the kernel closes a process's sockets when it dies however
//! it dies, so a script that counts the channel's subscribers (`PUBSUB SHARDNUMSUB`, in
//! lua/write_claim.lua) knows in the same atomic step whether the cub still runs: no standing
//! bid is recorded for a cub that is gone.
//!
//! The same connection is the cub's [`Bell`]: the claim write that grants to its agent
//! publishes the grant on the presence channel ([`RungGrant`]: the cub may take it before it
//! reads the grant's event, one round trip sooner), and the writes any cub may have to act on
//! (a claim waiting for bids, a cancelled workflow, an orchestrator started) publish on the
//! instance's `cubs:bell` channel, which every presence connection also listens on. A cub whose standing
//! bid is recorded has nothing to do with the other events, so it reads the stream when rung
//! (and at least every [`crate::driver::BELL_FALLBACK`]) instead of being woken by every entry:
//! the stream stays the one source of events, and a ring is only a hint that is never needed
//! for correctness (issue 29: five readers woken per entry took the CPU from the one cub that
//! had to take the grant).

use std::sync::Arc;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Message;
use sett_core::{AgentName, ArtifactId, ClaimId};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::{Result, Store};

/// How long withdrawing a presence may wait for Redis.
const WITHDRAW_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// A cub's subscription to its presence channel; [`Presence::withdraw`] ends it (so does
/// dropping it, when the process ends).
pub struct Presence {
    client: SubscriberClient,
    /// The presence channel and the instance's bell channel.
    channels: Vec<String>,
    /// Subscribes again after a reconnection (a Redis restart or failover drops every
    /// subscription).
    resubscribe: JoinHandle<()>,
    bell: Bell,
    /// Rings the bell on every message and reconnection, and passes the grants on.
    listen: JoinHandle<()>,
    grants: Option<mpsc::Receiver<RungGrant>>,
}

/// Grants rung but not taken by the cub yet, at most: beyond, a ring only rings the bell, and
/// the grant is taken from its event.
const RUNG_GRANTS_QUEUED: usize = 1024;

/// A grant as its claim write rings the granted agent's cub: what the grant's `claim_granted`
/// says about it, so the cub takes it at once (and handles the event, read just after, as the
/// same grant). Published by the same writes as the event, so trusted as much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RungGrant {
    pub claim: ClaimId,
    pub seq: u64,
    pub artifact: ArtifactId,
}

impl RungGrant {
    /// The message: `grant <claim> <seq> <artifact>`.
    pub(crate) fn to_message(self) -> String {
        format!("grant {} {} {}", self.claim, self.seq, self.artifact)
    }

    /// A grant message, or `None` for any other ring.
    fn parse(message: &str) -> Option<Self> {
        let mut words = message.strip_prefix("grant ")?.split(' ');
        let claim = ClaimId::parse(words.next()?).ok()?;
        let seq = words.next()?.parse().ok()?;
        let artifact = ArtifactId::parse(words.next()?).ok()?;
        words.next().is_none().then_some(Self { claim, seq, artifact })
    }
}

/// Rung when a message arrives on a cub's presence connection: an event it may have to act on
/// was written (see the module's docs). Cheap to clone. A ring that comes while nobody waits is
/// kept for the next wait, so one that arrives between a read of the stream and the next wait
/// is not lost.
#[derive(Debug, Clone, Default)]
pub struct Bell(Arc<Notify>);

impl Bell {
    /// Rings: the next (or current) [`Bell::rung`] returns.
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Returns once rung (at once if it was rung since the last return). Cancel-safe.
    pub async fn rung(&self) {
        self.0.notified().await;
    }
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence").field("channels", &self.channels).finish_non_exhaustive()
    }
}

impl Store {
    /// Subscribes to `agent`'s presence channel on a connection of its own, for as long as the
    /// returned [`Presence`] lives, and to the instance's bell channel: [`Presence::bell`] is
    /// rung by what is published on either.
    pub async fn announce_presence(&self, agent: &AgentName) -> Result<Presence> {
        let client = self.redis.subscriber().await?;
        // Listening before subscribing: no message is published to a channel before it is.
        let bell = Bell::default();
        let (grants_tx, grants) = mpsc::channel(RUNG_GRANTS_QUEUED);
        let listen =
            tokio::spawn(ring_on_messages(client.message_rx(), client.reconnect_rx(), bell.clone(), grants_tx));
        let resubscribe = client.manage_subscriptions();
        let channels = vec![self.keys.presence_channel(agent), self.keys.cubs_bell_channel()];
        if let Err(e) = client.ssubscribe(channels.clone()).await {
            resubscribe.abort();
            listen.abort();
            let _ = client.quit().await;
            return Err(e.into());
        }
        Ok(Presence { client, channels, resubscribe, bell, listen, grants: Some(grants) })
    }

    /// Rings every cub's bell (the instance's `cubs:bell` channel), after writing an event any
    /// of them may have to act on. `Ok(false)` when this Redis user may not publish there (an
    /// ACL without `spublish` on the instance's channels): then nobody is rung, and cubs find
    /// the event within their bell's fallback.
    pub async fn ring_cubs(&self) -> Result<bool> {
        match self.client().spublish::<i64, _, _>(self.keys.cubs_bell_channel(), "ring").await {
            Ok(_) => Ok(true),
            Err(e) if e.details().starts_with("NOPERM") => Ok(false),
            Err(e) => Err(e.into()),
        }
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

/// Rings `bell` for every message, and after every reconnection (what was published while the
/// connection was down is lost); passes the grants rung on to `grants` (dropped when the cub is
/// that far behind: it reads them from the stream). Ends when the client is gone.
async fn ring_on_messages(
    mut messages: Receiver<Message>,
    mut reconnects: Receiver<fred::types::config::Server>,
    bell: Bell,
    grants: mpsc::Sender<RungGrant>,
) {
    loop {
        // Cancel-safe: two channel receives.
        let received = tokio::select! {
            m = messages.recv() => m.map(Some),
            r = reconnects.recv() => r.map(|_| None),
        };
        match received {
            Ok(message) => {
                if let Some(grant) = message.as_ref().and_then(|m| m.value.as_str()).and_then(|s| RungGrant::parse(&s))
                {
                    let _ = grants.try_send(grant);
                }
                bell.ring();
            }
            // A lagging receiver lost messages: one ring stands for all of them.
            Err(RecvError::Lagged(_)) => bell.ring(),
            Err(RecvError::Closed) => return,
        }
    }
}

impl Presence {
    /// Rung when an event this cub may have to act on was written (see the module's docs).
    pub fn bell(&self) -> Bell {
        self.bell.clone()
    }

    /// The grants rung for this cub's agent, in the order rung (once: later calls return
    /// `None`). Each is also in the stream, as its `claim_granted`.
    pub fn take_rung_grants(&mut self) -> Option<mpsc::Receiver<RungGrant>> {
        self.grants.take()
    }

    /// Ends the subscription: from now on no standing bid is recorded for this cub.
    /// Bounded by [`WITHDRAW_BOUND`]: with Redis gone, the subscriber client queues its
    /// SUNSUBSCRIBE and QUIT until it has reconnected, which may be never, and a cub told to stop
    /// would not exit; a subscription ends with its connection anyway.
    pub async fn withdraw(self) {
        self.resubscribe.abort();
        self.listen.abort();
        let close = async {
            let _ = self.client.sunsubscribe(self.channels.clone()).await;
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
        self.listen.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_ring_is_read_back_and_anything_else_is_not_a_grant() {
        let grant = RungGrant { claim: crate::new_claim_id(), seq: 7, artifact: crate::new_artifact_id() };
        assert_eq!(RungGrant::parse(&grant.to_message()), Some(grant));
        for other in ["ring", "claim x", "grant", "grant a 1 b", &format!("{} extra", grant.to_message())] {
            assert_eq!(RungGrant::parse(other), None, "{other}");
        }
    }
}
