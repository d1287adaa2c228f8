//! The workspace: the directory holding `sett.yml` (or the git repository root), and Sett's local
//! state under `.sett/` (logs, pid files, the managed Redis).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    /// The nearest ancestor of `cwd` with a `sett.yml`, else the nearest with `.git`, else `cwd`.
    pub fn discover(cwd: &Path) -> Self {
        let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_owned());
        let find = |marker: &str| cwd.ancestors().find(|d| d.join(marker).exists()).map(Path::to_path_buf);
        let root = find("sett.yml").or_else(|| find(".git")).unwrap_or(cwd);
        Self { root }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("sett.yml")
    }

    pub fn sett_dir(&self) -> PathBuf {
        self.root.join(".sett")
    }

    /// Where a component's log file lives (local runtime).
    pub fn log_path(&self, instance: &str, component: &str) -> PathBuf {
        self.sett_dir().join("logs").join(instance).join(format!("{component}.log"))
    }

    /// The managed Redis's URL file, written by `sett up` when it starts one.
    pub fn managed_redis_file(&self) -> PathBuf {
        self.sett_dir().join("redis").join("url")
    }
}
