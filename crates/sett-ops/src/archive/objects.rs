//! Where segments are kept: a local directory (`<dir>/<instance>/<segment>.jsonl.zst`, written
//! to a temporary file, synced and renamed, so a segment is whole or absent) or an S3-compatible
//! bucket (`<prefix><instance>/<segment>.jsonl.zst`) through the `object_store` crate.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use sett_core::InstanceName;
use sett_core::config::ArchiveTarget;

use super::ArchiveError;

const SUFFIX: &str = ".jsonl.zst";

/// An opened archive store for one instance.
#[derive(Debug, Clone)]
pub struct ArchiveObjects {
    target: ArchiveTarget,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Dir(PathBuf),
    S3 { store: Arc<dyn ObjectStore>, prefix: String },
}

impl ArchiveObjects {
    /// Opens `target` (a directory must be absolute: resolve it against the workspace first).
    /// S3 credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// optionally `AWS_SESSION_TOKEN`).
    pub fn open(target: &ArchiveTarget, instance: &InstanceName) -> Result<Self, ArchiveError> {
        let inner = match target {
            ArchiveTarget::Dir(d) => Inner::Dir(PathBuf::from(d).join(instance.as_str())),
            ArchiveTarget::S3(s3) => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".to_owned()))
                    .with_allow_http(s3.allow_http)
                    // A store that does not answer fails the pass within seconds (Redis keeps
                    // everything; the next pass tries again) instead of retrying for minutes.
                    .with_retry(object_store::RetryConfig {
                        max_retries: 3,
                        retry_timeout: std::time::Duration::from_secs(15),
                        ..Default::default()
                    });
                if let Some(e) = &s3.endpoint {
                    b = b.with_endpoint(e);
                }
                let store = b.build().map_err(|e| ArchiveError::Objects {
                    location: target.to_string(),
                    reason: format!("{e} (check retention.archive.s3 and the AWS_* environment variables)"),
                })?;
                Inner::S3 { store: Arc::new(store), prefix: format!("{}{}/", s3.prefix, instance.as_str()) }
            }
        };
        Ok(Self { target: target.clone(), inner })
    }

    pub fn target(&self) -> &ArchiveTarget {
        &self.target
    }

    fn err(&self, reason: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Objects { location: self.target.to_string(), reason: reason.to_string() }
    }

    /// Where a segment is, for messages.
    pub fn describe(&self, segment: &str) -> String {
        match &self.inner {
            Inner::Dir(d) => d.join(format!("{segment}{SUFFIX}")).display().to_string(),
            Inner::S3 { prefix, .. } => format!("{} object {prefix}{segment}{SUFFIX}", self.target),
        }
    }

    /// Stores a segment. A segment is written once: a different one under the same name is an
    /// error, the same bytes again (a pass resumed after a crash) are not.
    pub async fn put(&self, segment: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        match &self.inner {
            Inner::Dir(d) => {
                let dir = d.clone();
                let name = format!("{segment}{SUFFIX}");
                let bytes = bytes.to_vec();
                let result = tokio::task::spawn_blocking(move || write_dir(&dir, &name, &bytes))
                    .await
                    .map_err(|e| self.err(e))?;
                result.map_err(|e| self.err(e))
            }
            Inner::S3 { store, prefix } => {
                let path = object_store::path::Path::from(format!("{prefix}{segment}{SUFFIX}"));
                store.put(&path, bytes.to_vec().into()).await.map_err(|e| self.err(e))?;
                Ok(())
            }
        }
    }

    /// A segment's bytes; `None` when it is not there.
    pub async fn get(&self, segment: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        match &self.inner {
            Inner::Dir(d) => match tokio::fs::read(d.join(format!("{segment}{SUFFIX}"))).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.err(e)),
            },
            Inner::S3 { store, prefix } => {
                let path = object_store::path::Path::from(format!("{prefix}{segment}{SUFFIX}"));
                match store.get(&path).await {
                    Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.err(e))?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }

    /// Removes a segment that was never recorded (a pass that died before recording it).
    pub async fn delete(&self, segment: &str) -> Result<(), ArchiveError> {
        match &self.inner {
            Inner::Dir(d) => match tokio::fs::remove_file(d.join(format!("{segment}{SUFFIX}"))).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(self.err(e)),
            },
            Inner::S3 { store, prefix } => {
                let path = object_store::path::Path::from(format!("{prefix}{segment}{SUFFIX}"));
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }
}

/// Writes `name` in `dir` whole or not at all: a temporary file, synced, renamed; an existing
/// segment with other bytes is refused (segments are immutable).
fn write_dir(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(existing) if existing == bytes => return Ok(()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists with other content; segments are never overwritten", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}
