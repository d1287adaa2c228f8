//! The replication state of the primary that holds an instance (`INFO replication`, on a cluster
//! from the primary of the instance's hash slot): its replicas, whether their link is up, how far
//! behind they are. `sett up` and `sett status` show it and warn when work would run on a
//! primary whose replica has not synced (the write a dying primary alone held is lost whole);
//! the ledger watch and the anchors use [`Store::replica_caught_up`] so that under
//! `durability: replicated` they only trust a head a replica holds.

use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::ClusterHash;
use fred::types::InfoKind;
use fred::types::config::{Config, Options, ServerConfig};
use serde::Serialize;
use sett_core::config::Durability;

use crate::{Redis, Result, Store};

/// One replica as its primary sees it (a `slaveN:` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaState {
    /// `host:port`.
    pub addr: String,
    /// Redis's state of the link: `online` (synced, streaming), or `wait_bgsave` / `send_bulk`
    /// (its first full sync is not done: it holds nothing yet).
    pub state: String,
    /// The replication offset the replica acknowledged.
    pub offset: i64,
    /// Seconds since its last acknowledgement.
    pub lag_s: i64,
}

impl ReplicaState {
    /// Whether the replica has synced and streams the primary's writes.
    pub fn is_synced(&self) -> bool {
        self.state == "online"
    }
}

/// What `INFO replication` says about replication on the node that holds the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationState {
    /// `master` or `slave` (Redis's words).
    pub role: String,
    /// The primary's replication offset.
    pub offset: i64,
    pub replicas: Vec<ReplicaState>,
    /// On a replica: whether its link to the primary is up (`master_link_status`).
    pub link_up: Option<bool>,
}

impl ReplicationState {
    /// Parses `INFO replication`.
    pub fn parse(info: &str) -> Self {
        let mut me = Self { role: String::new(), offset: 0, replicas: Vec::new(), link_up: None };
        for line in info.lines().map(str::trim) {
            let Some((k, v)) = line.split_once(':') else { continue };
            match k {
                "role" => me.role = v.to_owned(),
                "master_repl_offset" => me.offset = v.parse().unwrap_or(0),
                "master_link_status" => me.link_up = Some(v == "up"),
                k if k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()) => {
                    let field = |name: &str| {
                        v.split(',').find_map(|kv| kv.split_once('=').filter(|(n, _)| *n == name).map(|(_, x)| x))
                    };
                    me.replicas.push(ReplicaState {
                        addr: format!("{}:{}", field("ip").unwrap_or("?"), field("port").unwrap_or("?")),
                        state: field("state").unwrap_or("unknown").to_owned(),
                        offset: field("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
                        lag_s: field("lag").and_then(|o| o.parse().ok()).unwrap_or(0),
                    });
                }
                _ => {}
            }
        }
        me
    }

    /// Replicas that have synced.
    pub fn synced(&self) -> usize {
        self.replicas.iter().filter(|r| r.is_synced()).count()
    }

    /// Bytes of the primary's writes the most advanced synced replica has not acknowledged yet
    /// (`None` without a synced replica).
    pub fn behind_bytes(&self) -> Option<i64> {
        self.replicas.iter().filter(|r| r.is_synced()).map(|r| (self.offset - r.offset).max(0)).min()
    }

    /// Whether a synced replica acknowledged everything up to `offset`.
    pub fn replica_has(&self, offset: i64) -> bool {
        self.replicas.iter().any(|r| r.is_synced() && r.offset >= offset)
    }
}

impl Redis {
    /// Whether the URL names a deployment with replicas (Sentinel or Cluster), where
    /// `durability` defaults to `replicated` ([`sett_core::config::RedisConfig::durability_for`]).
    pub fn has_replicas(&self) -> bool {
        url_has_replicas(&self.options.url)
    }

    /// The same connection with the durability `sett.yml` configures (`None`: the default for
    /// this deployment).
    pub fn with_configured_durability(self, config: &sett_core::config::RedisConfig) -> Self {
        let d = config.durability_for(self.has_replicas());
        self.with_durability(d)
    }
}

/// Whether `url` names a Sentinel or Cluster deployment (an unparsable URL: no).
pub fn url_has_replicas(url: &str) -> bool {
    Config::from_url(url)
        .map(|c| matches!(c.server, ServerConfig::Clustered { .. } | ServerConfig::Sentinel { .. }))
        .unwrap_or(false)
}

impl Store {
    /// `INFO replication` of the node holding this instance (on a cluster, the primary of its
    /// hash slot).
    pub async fn replication_state(&self) -> Result<ReplicationState> {
        let slot = fred::util::redis_keyslot(self.keys.prefix().as_bytes());
        let options = Options { cluster_hash: Some(ClusterHash::Custom(slot)), ..Default::default() };
        let info: String = self.client().with_options(&options).info(Some(InfoKind::Replication)).await?;
        Ok(ReplicationState::parse(&info))
    }

    /// Under `durability: replicated`, whether a synced replica holds everything the instance's
    /// primary had when this was called (every write read before it, e.g. a ledger head), waiting
    /// up to `limit` for the replicas' acknowledgements (sent every second). Under `fast`: true
    /// at once (nothing is waited for).
    pub async fn replica_caught_up(&self, limit: Duration) -> Result<bool> {
        if self.redis.durability == Durability::Fast {
            return Ok(true);
        }
        let epoch = self.write_epoch();
        let target = self.replication_state().await?.offset;
        let until = Instant::now() + limit;
        loop {
            let now = self.replication_state().await?;
            if self.write_epoch() != epoch {
                // Another node may answer now (a failover): its offsets say nothing of the first.
                return Ok(false);
            }
            if now.replica_has(target) {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=1200,lag=0\r\nslave1:ip=10.0.0.3,port=6381,state=wait_bgsave,offset=0,lag=3\r\nmaster_failover_state:no-failover\r\nmaster_replid:abc\r\nmaster_repl_offset:1234\r\nslave_read_repl_offset:1234\r\n";

    #[test]
    fn info_replication_is_read() {
        let s = ReplicationState::parse(PRIMARY);
        assert_eq!((s.role.as_str(), s.offset, s.link_up), ("master", 1234, None));
        assert_eq!(s.replicas.len(), 2);
        assert_eq!(s.replicas[0].addr, "10.0.0.2:6380");
        assert_eq!((s.synced(), s.behind_bytes()), (1, Some(34)));
        assert!(s.replica_has(1200) && !s.replica_has(1201), "only what a synced replica acknowledged");
        assert!(!s.replicas[1].is_synced(), "a replica waiting for its first sync holds nothing");
        let r = ReplicationState::parse("role:slave\r\nmaster_link_status:down\r\nmaster_repl_offset:7\r\n");
        assert_eq!((r.link_up, r.synced(), r.behind_bytes()), (Some(false), 0, None));
    }

    #[test]
    fn sentinel_and_cluster_urls_have_replicas() {
        assert!(url_has_replicas("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=mymaster"));
        assert!(url_has_replicas("redis-cluster://127.0.0.1:7000"));
        assert!(!url_has_replicas("redis://127.0.0.1:6379"));
        assert!(!url_has_replicas("not a url"));
    }
}
