//! What every command needs: the resolved Redis connection, the instance, the workspace and the
//! output settings. Resolution errors say which flag or command fixes them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sett_core::InstanceName;
use sett_store::{Redis, RedisOptions, Store};

use crate::cli::{Global, OutputFormat};
use crate::workspace::Workspace;

/// A usage error: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error (exit code 2) with `msg`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

#[derive(Debug)]
pub struct Ctx {
    pub global: Global,
    pub workspace: Workspace,
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Ok(Self { global, workspace: Workspace::discover(&cwd) })
    }

    pub fn output(&self) -> OutputFormat {
        self.global.output
    }

    /// The workspace's managed Redis (used when no URL is configured).
    pub fn managed_redis(&self) -> sett_runtime::ManagedRedis {
        sett_runtime::ManagedRedis::new(self.workspace.managed_redis_file().parent().unwrap_or(&self.workspace.root))
    }

    /// The Redis URL to use, restarting the workspace's managed Redis (with its data) when it
    /// was stopped by `sett down`.
    pub async fn ensure_redis_url(&self) -> Result<Option<String>> {
        if let Some(url) = self.global.redis_url.clone() {
            return Ok(Some(url));
        }
        let managed = self.managed_redis();
        if managed.exists() {
            return Ok(Some(managed.ensure().await?));
        }
        Ok(None)
    }

    /// Connects to Redis, or explains how to point Sett at one.
    pub async fn redis(&self) -> Result<Redis> {
        let Some(url) = self.ensure_redis_url().await? else {
            anyhow::bail!(
                "no Redis configured for {}: run 'sett up' here (it starts a managed redis-server), or pass --redis-url / set SETT_REDIS_URL",
                self.workspace.root.display()
            );
        };
        let redis = Redis::connect(RedisOptions::new(url)).await?;
        Ok(redis.with_configured_durability(&self.redis_config()))
    }

    /// The `redis:` section of the workspace's `sett.yml` (the defaults when there is none, or
    /// it does not parse: the commands that need the configuration report that themselves), so
    /// an operator's writes (`forage`, `answer`) are confirmed like the daemons' writes.
    pub fn redis_config(&self) -> sett_core::config::RedisConfig {
        self.config().map(|c| c.redis).unwrap_or_default()
    }

    /// The workspace's witness file (`ledger.witness_file`, or its default).
    pub fn witness_file(&self) -> PathBuf {
        self.config().map(|c| c.ledger).unwrap_or_default().witness_path(&self.workspace.root)
    }

    /// The workspace's `sett.yml`, when there is one that parses.
    pub fn config(&self) -> Option<sett_core::config::SettConfig> {
        let path = self.workspace.config_path();
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| sett_core::config::SettConfig::parse(&path.display().to_string(), &text).ok())
    }

    /// The workspace's `retention:` section, with its archive directory resolved against the
    /// workspace; `None` without a `sett.yml` or without the section.
    pub fn retention(&self) -> Result<Option<sett_core::config::RetentionConfig>> {
        let path = self.workspace.config_path();
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let config = sett_core::config::SettConfig::parse(&path.display().to_string(), &text)?;
        Ok(config.retention.map(|mut r| {
            r.archive = sett_ops::archive::resolve_target(&r.archive, &self.workspace.root);
            r
        }))
    }

    /// The instance's archive store: where its archive was written (recorded in Redis), else the
    /// workspace's `retention.archive`; `None` when there is neither.
    pub async fn archive_objects(&self, store: &Store) -> Result<Option<sett_ops::archive::ArchiveObjects>> {
        let fallback = self.retention().ok().flatten().map(|r| r.archive);
        Ok(sett_ops::archive::recorded_objects(store, fallback.as_ref()).await?)
    }

    /// The explicit `--name`, validated.
    pub fn explicit_name(&self) -> Result<Option<InstanceName>> {
        self.global.name.as_deref().map(|n| InstanceName::parse(n).map_err(|e| usage(e.to_string()))).transpose()
    }

    /// The instance: `--name`, else the one instance registered for this workspace.
    pub async fn instance_name(&self, redis: &Redis) -> Result<InstanceName> {
        if let Some(n) = self.explicit_name()? {
            return Ok(n);
        }
        let root = self.workspace.root.display().to_string();
        let matching: Vec<InstanceName> =
            redis.instances().await?.into_iter().filter(|(_, r)| r.workspace == root).map(|(n, _)| n).collect();
        match matching.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(usage(format!(
                "no instance is registered for {root}: pass --name NAME (see 'sett list'), or run 'sett up' here first"
            ))),
            many => Err(usage(format!(
                "several instances use {root} ({}): pass --name NAME",
                many.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Connects and resolves the instance in one step.
    pub async fn store(&self) -> Result<Store> {
        let redis = self.redis().await?;
        let name = self.instance_name(&redis).await?;
        Ok(redis.instance(&name))
    }

    /// The operator's identity for audit records: `$SETT_OPERATOR`, else the effective uid's
    /// account in the password database, else `uid:<n>` (see [`sett_ops::operator`]).
    pub fn operator(&self) -> String {
        sett_ops::operator::current()
    }

    /// The workspace's root directory (where `sett.yml` is).
    pub fn workspace_root(&self) -> &std::path::Path {
        &self.workspace.root
    }

    pub fn sett_dir(&self) -> PathBuf {
        self.workspace.sett_dir()
    }
}
