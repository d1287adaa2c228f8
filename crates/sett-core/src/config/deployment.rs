//! Where Sett runs and how sure a write must be: `runtime:` and the `redis:` section.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the orchestrator and cubs run: `local` (processes on this machine) or `docker`
/// (containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    #[default]
    Local,
    Docker,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker => "docker",
        }
    }
}

/// How sure a write must be before Sett acts on it or reports it (`redis.durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged by the primary: the fastest; a failover can lose the last writes
    /// (Redis replicates asynchronously). See docs/deployment.md for what is lost and how the
    /// orchestrator reconciles.
    #[default]
    Fast,
    /// Also confirmed by at least one replica (`WAIT 1`) before anyone acts on it; a write that
    /// cannot be confirmed is retried or fails, never assumed.
    Replicated,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Replicated => "replicated",
        }
    }
}

/// The `redis:` section of `sett.yml` (the URL itself comes from `--redis-url`/`SETT_REDIS_URL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `fast` (acknowledged by the primary) or `replicated` (also confirmed by a replica with
    /// `WAIT 1` before anyone acts on it). Default: `replicated` with a Sentinel or Cluster URL
    /// (a deployment that has replicas), `fast` with a single Redis. See docs/deployment.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

impl RedisConfig {
    /// The durability writes get on a deployment: the configured one, else `replicated` where
    /// the URL names replicas (Sentinel, Cluster: a write the primary alone acknowledged is
    /// lost whole when it dies before its replica copied it) and `fast` on a single Redis
    /// (nothing to wait for).
    pub fn durability_for(&self, has_replicas: bool) -> Durability {
        self.durability.unwrap_or(if has_replicas { Durability::Replicated } else { Durability::Fast })
    }
}
