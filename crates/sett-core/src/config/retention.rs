//! The validated `retention:` and `ledger:` sections: what is archived where, anchoring, the
//! witness file and the reaction to a ledger that went back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the orchestrator does about a ledger regression besides reporting it
/// (`ledger.on_regression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegressionReaction {
    /// Report it (log, metric, status, notification) and keep granting work.
    #[default]
    Continue,
    /// Report it and pause the instance: nothing new is granted until `sett resume`.
    Pause,
}

impl RegressionReaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Pause => "pause",
        }
    }
}

/// The witness file's default path, relative to the workspace.
pub const DEFAULT_WITNESS_FILE: &str = ".sett/ledger/witness.jsonl";

/// The `retention:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub archive_after: Duration,
    pub every: Duration,
    pub archive: ArchiveTarget,
    /// The largest share of the orchestrator's time its archiving passes may take.
    pub max_share: ArchiveShare,
}

/// A share of time in (0, 1], kept in thousandths so the config stays `Eq`
/// (`retention.max_share`): after a pass that took `d`, the next one waits until the pass is at
/// most this share of the time since it started, so archiving under full load costs the engine
/// a bounded share and falls behind instead (the lag shows in `sett status` and
/// `sett_archive_last_success_timestamp_seconds`); `1` lets passes run back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveShare(u16);

impl ArchiveShare {
    /// No limit: a pass may start as soon as the previous one ended.
    pub const WHOLE: Self = Self(1000);

    /// `share` in (0, 1], rounded to thousandths; `None` outside.
    pub fn new(share: f64) -> Option<Self> {
        let permille = (share * 1000.0).round();
        (share.is_finite() && share > 0.0 && share <= 1.0 && permille >= 1.0).then_some(Self(permille as u16))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// How long to wait after a pass that took `pass` so that passes take at most this share.
    pub fn rest_after(self, pass: Duration) -> Duration {
        // At the whole time (1000 thousandths) this is zero: no rest.
        pass.mul_f64((1000.0 - f64::from(self.0)) / f64::from(self.0))
    }
}

/// The default period of the orchestrator's archiving pass (`retention.every`).
pub const DEFAULT_ARCHIVE_EVERY: Duration = Duration::from_secs(60);
/// The default `retention.max_share`.
pub const DEFAULT_ARCHIVE_MAX_SHARE: ArchiveShare = ArchiveShare::WHOLE;
/// The default archive directory, relative to the workspace.
pub const DEFAULT_ARCHIVE_DIR: &str = ".sett/archive";

/// Where an archive lives: recorded in Redis by the pass that writes it, so every reader finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveTarget {
    /// A directory (relative to the workspace as written in `sett.yml`; absolute once resolved).
    Dir(String),
    S3(S3Target),
}

/// An S3-compatible bucket (AWS, MinIO, Ceph, moto…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Target {
    /// The bucket name.
    pub bucket: String,
    /// A prefix for every object name (e.g. `sett/`); the instance name follows it.
    #[serde(default)]
    pub prefix: String,
    /// The server's URL for S3-compatible servers other than AWS (e.g. http://minio:9000).
    pub endpoint: Option<String>,
    /// The region (default: `us-east-1`).
    pub region: Option<String>,
    /// Allow a plain http:// endpoint (test servers).
    #[serde(default)]
    pub allow_http: bool,
}

impl fmt::Display for ArchiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "directory {d}"),
            Self::S3(s) => {
                write!(f, "s3://{}/{}", s.bucket, s.prefix)?;
                if let Some(e) = &s.endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// The `ledger:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// How often the orchestrator anchors the head in `sett:audit`; `None` = never.
    pub anchor_every: Option<Duration>,
    /// Where anchors are witnessed outside Redis, as written (relative to the workspace unless
    /// absolute): [`LedgerConfig::witness_path`] resolves it.
    pub witness_file: PathBuf,
    /// What the orchestrator does about a ledger regression besides reporting it.
    pub on_regression: RegressionReaction,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            anchor_every: None,
            witness_file: PathBuf::from(DEFAULT_WITNESS_FILE),
            on_regression: RegressionReaction::default(),
        }
    }
}

impl LedgerConfig {
    /// The witness file of a workspace rooted at `workspace`.
    pub fn witness_path(&self, workspace: &Path) -> PathBuf {
        workspace.join(&self.witness_file)
    }
}
