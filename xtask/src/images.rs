//! `cargo xtask images`: builds the container images of `runtime: docker` without any registry
//! pull. Each image is a root filesystem assembled from this machine's binaries and the shared
//! libraries `ldd` reports for them, imported with `docker import`:
//!
//! - `sett-runtime:dev`: sett, sett-orchestrator, sett-cub (from `target/<profile>`), bash, jq,
//!   git with its helpers, coreutils, grep, sed, the machine's CA certificates, a `sett` user
//!   (uid 10001) and the entry script
//!   `sett-entry`;
//! - `sett-redis:dev`: redis-server.
//!
//! An image is rebuilt only when the hash of its input files changed (recorded in the image's
//! `sett.inputs` label). Machines with a registry can use `docker/Dockerfile` instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The runtime image tag the docker runtime uses by default.
pub const RUNTIME_IMAGE: &str = "sett-runtime:dev";
/// The Redis image tag.
pub const REDIS_IMAGE: &str = "sett-redis:dev";
/// The non-root user of both images.
const UID: u32 = 10001;
/// Bumped whenever the way a root filesystem is assembled changes (part of the inputs hash).
const LAYOUT: u32 = 2;

#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Take the Sett binaries from target/release instead of target/debug.
    #[arg(long)]
    pub release: bool,
    /// Rebuild even when the inputs did not change.
    #[arg(long)]
    pub force: bool,
    /// Do not run `cargo build` first (the binaries are already built).
    #[arg(long)]
    pub no_build: bool,
}

/// The entry point of the runtime image: records this container's own address as the health
/// address (so the address a daemon registers is reachable from the host over the bridge),
/// then runs the command, its output appended to `$SETT_LOG_FILE` when set.
const ENTRY: &str = include_str!("../../docker/sett-entry");

pub fn run(args: ImagesArgs) -> Result<()> {
    let root = crate::project_root();
    let profile = if args.release { "release" } else { "debug" };
    if !args.no_build {
        let mut c = Command::new("cargo");
        // The same build as `cargo xtask ci` (same features), so it is a no-op there.
        c.args(["build", "--workspace", "--bins", "--locked"]);
        if args.release {
            c.arg("--release");
        }
        let ok = c.current_dir(&root).status().context("cargo build")?.success();
        if !ok {
            bail!("cargo build of the sett binaries failed");
        }
    }
    docker_available()?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bins = target.join(profile);
    let work = target.join("images");

    let mut runtime = Rootfs::default();
    for b in ["sett", "sett-orchestrator", "sett-cub"] {
        let p = bins.join(b);
        if !p.exists() {
            bail!(
                "{} is missing: run `cargo build --bins{}`",
                p.display(),
                if args.release { " --release" } else { "" }
            );
        }
        runtime.file(&p, Path::new("/usr/local/bin").join(b))?;
    }
    for tool in ["bash", "jq", "git", "grep", "sed", "env", "sh"] {
        let p = which(tool)
            .with_context(|| format!("`{tool}` is not installed on this machine (the runtime image copies it)"))?;
        runtime.file(&p, p.clone())?;
    }
    for p in coreutils()? {
        runtime.file(&p, p.clone())?;
    }
    // The system's CA certificates, when this machine has them: an https:// OTLP collector
    // (or webhook) is reached from the containers too.
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.exists() {
        runtime.file(ca, ca.to_path_buf())?;
    }
    let exec_path = String::from_utf8(Command::new("git").arg("--exec-path").output()?.stdout)?.trim().to_owned();
    runtime.tree(Path::new(&exec_path))?;
    runtime.text("/usr/local/bin/sett-entry", ENTRY, 0o755);
    runtime.text(
        "/etc/passwd",
        &format!("root:x:0:0:root:/root:/bin/bash\nsett:x:{UID}:{UID}:sett:/tmp:/bin/bash\n"),
        0o644,
    );
    runtime.text("/etc/group", &format!("root:x:0:\nsett:x:{UID}:\n"), 0o644);
    // HOME is /tmp (writable by any uid): the containers may run as the workspace owner's uid.
    runtime.dir("/tmp", 0o1777);
    runtime.dir("/workspace", 0o755);
    runtime.build(
        RUNTIME_IMAGE,
        &work.join("runtime"),
        &[
            format!("USER {UID}:{UID}"),
            "ENV HOME=/tmp".into(),
            "ENV PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "WORKDIR /workspace".into(),
            r#"ENTRYPOINT ["/usr/local/bin/sett-entry"]"#.into(),
            r#"CMD ["sett", "--help"]"#.into(),
        ],
        args.force,
    )?;

    let mut redis = Rootfs::default();
    let server = which("redis-server")
        .context("`redis-server` is not installed (apt-get install -y redis-server): the Redis image copies it")?;
    redis.file(&server, PathBuf::from("/usr/local/bin/redis-server"))?;
    redis.text("/etc/passwd", &format!("redis:x:{UID}:{UID}:redis:/data:/bin/false\n"), 0o644);
    redis.text("/etc/group", &format!("redis:x:{UID}:\n"), 0o644);
    redis.dir("/data", 0o1777);
    redis.dir("/tmp", 0o1777);
    redis.build(
        REDIS_IMAGE,
        &work.join("redis"),
        &[
            format!("USER {UID}:{UID}"),
            "WORKDIR /data".into(),
            "EXPOSE 6379".into(),
            r#"ENTRYPOINT ["/usr/local/bin/redis-server"]"#.into(),
            r#"CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes"]"#.into(),
        ],
        args.force,
    )?;
    Ok(())
}

fn docker_available() -> Result<()> {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("no Docker engine answers (`docker version` failed): start Docker, or set DOCKER_HOST");
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The programs of the coreutils package (Debian), else a fixed list found on PATH.
fn coreutils() -> Result<Vec<PathBuf>> {
    let listed = Command::new("dpkg").args(["-L", "coreutils"]).output();
    let mut out: Vec<PathBuf> = match listed {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("/usr/bin/") || l.starts_with("/bin/"))
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect(),
        _ => Vec::new(),
    };
    if out.is_empty() {
        for t in [
            "cat", "cp", "mv", "rm", "ls", "mkdir", "head", "tail", "tr", "wc", "sort", "uniq", "cut", "date", "sleep",
            "printf", "echo", "touch", "id", "env", "tee", "basename", "dirname", "mktemp", "true", "false",
        ] {
            if let Some(p) = which(t) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// A root filesystem to assemble: files (host path → image path), hard links preserved,
/// small text files and directories.
#[derive(Default)]
struct Rootfs {
    /// image path → host path.
    files: BTreeMap<PathBuf, PathBuf>,
    texts: BTreeMap<PathBuf, (String, u32)>,
    dirs: BTreeMap<PathBuf, u32>,
    libs: BTreeSet<PathBuf>,
    inodes: BTreeSet<(u64, u64)>,
}

impl Rootfs {
    /// Adds `host` at `at` and, when it is dynamically linked, its shared libraries.
    fn file(&mut self, host: &Path, at: PathBuf) -> Result<()> {
        let real = std::fs::canonicalize(host).with_context(|| format!("{}", host.display()))?;
        self.files.insert(at, real.clone());
        self.add_libs(&real)
    }

    /// Adds a whole directory at the same path.
    fn tree(&mut self, dir: &Path) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?.flatten() {
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                self.tree(&p)?;
            } else if ft.is_file() {
                self.files.insert(p.clone(), p.clone());
                // Most helpers are hard links of one binary: ldd each inode once.
                let meta = std::fs::metadata(&p)?;
                if self.inodes.insert((meta.dev(), meta.ino())) {
                    self.add_libs(&p)?;
                }
            } else if ft.is_symlink() {
                let real = std::fs::canonicalize(&p)?;
                if real.is_file() {
                    self.files.insert(p.clone(), real);
                }
            }
        }
        Ok(())
    }

    fn text(&mut self, at: &str, text: &str, mode: u32) {
        self.texts.insert(at.into(), (text.to_owned(), mode));
    }

    fn dir(&mut self, at: &str, mode: u32) {
        self.dirs.insert(at.into(), mode);
    }

    fn add_libs(&mut self, bin: &Path) -> Result<()> {
        let out = Command::new("ldd").arg(bin).output().context("ldd")?;
        if !out.status.success() {
            return Ok(()); // a script or a static binary
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                self.libs.insert(PathBuf::from(p));
            }
        }
        Ok(())
    }

    /// A hash of every input (content of the files, the texts and the image settings).
    fn inputs_hash(&self, changes: &[String]) -> Result<String> {
        let mut hosts: BTreeSet<&Path> = self.files.values().map(PathBuf::as_path).collect();
        hosts.extend(self.libs.iter().map(PathBuf::as_path));
        let out = Command::new("sha256sum").args(hosts.iter().copied()).output().context("sha256sum")?;
        if !out.status.success() {
            bail!("sha256sum failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut manifest = String::from_utf8_lossy(&out.stdout).into_owned();
        for (at, host) in &self.files {
            manifest.push_str(&format!("{} {}\n", at.display(), host.display()));
        }
        manifest.push_str(&format!("{LAYOUT}\n{:?}\n{:?}\n{changes:?}\n", self.texts, self.dirs));
        let mut c = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        {
            use std::io::Write;
            c.stdin.take().expect("piped").write_all(manifest.as_bytes())?;
        }
        let out = c.wait_with_output()?;
        Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned())
    }

    /// Assembles the tree under `dir` and imports it as `tag`, unless `tag` already holds the
    /// same inputs.
    fn build(&self, tag: &str, dir: &Path, changes: &[String], force: bool) -> Result<()> {
        let started = Instant::now();
        let hash = self.inputs_hash(changes)?;
        let current = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}} {{index .Config.Labels \"sett.inputs\"}}", tag])
            .output()?;
        let current = String::from_utf8_lossy(&current.stdout).into_owned();
        let (old_id, old_hash) = current.trim().split_once(' ').unwrap_or(("", ""));
        if !force && old_hash == hash {
            println!("{tag}: up to date (inputs {})", &hash[..12]);
            return Ok(());
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        // Merged /usr: /bin, /lib, … are symlinks on the host; the same in the image, so that
        // `#!/bin/bash` and the loader's path resolve.
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            if let Ok(target) = std::fs::read_link(Path::new("/").join(top)) {
                std::fs::create_dir_all(dir.join(target.strip_prefix("/").unwrap_or(&target)))?;
                std::os::unix::fs::symlink(&target, dir.join(top))?;
            }
        }
        let put = |at: &Path| dir.join(at.strip_prefix("/").unwrap_or(at));
        // Hard links in the source stay hard links in the image (git's helpers).
        let mut by_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut all: Vec<(PathBuf, PathBuf)> = self.files.iter().map(|(a, h)| (a.clone(), h.clone())).collect();
        all.extend(self.libs.iter().map(|l| (l.clone(), l.clone())));
        for (at, host) in all {
            let dest = put(&at);
            std::fs::create_dir_all(dest.parent().expect("absolute path"))?;
            if dest.exists() {
                continue;
            }
            let meta = std::fs::metadata(&host)?;
            let key = (meta.dev(), meta.ino());
            match by_inode.get(&key) {
                Some(first) => std::fs::hard_link(first, &dest)?,
                None => {
                    std::fs::copy(&host, &dest).with_context(|| format!("copy {}", host.display()))?;
                    by_inode.insert(key, dest);
                }
            }
        }
        for (at, (text, mode)) in &self.texts {
            let dest = put(at);
            std::fs::create_dir_all(dest.parent().expect("absolute path"))?;
            std::fs::write(&dest, text)?;
            set_mode(&dest, *mode)?;
        }
        for (at, mode) in &self.dirs {
            let dest = put(at);
            std::fs::create_dir_all(&dest)?;
            set_mode(&dest, *mode)?;
        }
        // Everything in the image belongs to root; the user writes only to /tmp and mounts.
        let tar = dir.with_extension("tar");
        let mut c = Command::new("tar");
        c.arg("-C").arg(dir).arg("-cf").arg(&tar).args(["--numeric-owner", "--owner=0", "--group=0", "."]);
        ok(c.status()?, "tar")?;
        let mut c = Command::new("docker");
        c.args(["import", "--change", &format!("LABEL sett.inputs={hash}")]);
        for ch in changes {
            c.args(["--change", ch]);
        }
        c.arg(&tar).arg(tag).stdout(Stdio::null());
        ok(c.status()?, "docker import")?;
        let _ = std::fs::remove_file(&tar);
        // The previous build of this tag is now untagged: remove it unless a container uses it.
        if !old_id.is_empty() {
            let _ = Command::new("docker")
                .args(["image", "rm", old_id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let size = Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", tag]).output()?;
        let bytes: u64 = String::from_utf8_lossy(&size.stdout).trim().parse().unwrap_or(0);
        println!(
            "{tag}: built in {:.1}s, {:.1} MB (inputs {})",
            started.elapsed().as_secs_f64(),
            bytes as f64 / 1e6,
            &hash[..12]
        );
        Ok(())
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn ok(s: std::process::ExitStatus, what: &str) -> Result<()> {
    if !s.success() {
        bail!("{what} failed ({s})");
    }
    Ok(())
}
