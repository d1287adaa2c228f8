//! `cargo xtask demo`: Sett's main job on its embedded defaults. Builds the binaries, creates a
//! temporary git repository with the example agents (`examples/`), starts an instance (with a
//! managed `redis-server` unless `SETT_REDIS_URL` is set), forages a goal, answers the agent's
//! question as the operator, waits for the workflow to finish and prints its audit trail. With
//! `--python` the team is the Python one (`examples/agents-python`, on the SDK in `sdk/python`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The goal to give the agents.
    #[arg(long, default_value = "Build a tiny to-do list service")]
    goal: String,
    /// Keep the instance running and the workspace after the demo.
    #[arg(long)]
    keep: bool,
    /// Run the Python agents (examples/agents-python, written with the SDK in sdk/python)
    /// instead of the shell ones. Needs python3 (3.10 or later) on PATH.
    #[arg(long)]
    python: bool,
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

struct Sett {
    bin: PathBuf,
    workspace: PathBuf,
    name: String,
    /// Set for the Python team: the SDK's source, which the daemons (and so the agents, which
    /// pass PYTHONPATH on) import `sett_agent` from.
    python_path: Option<PathBuf>,
}

impl Sett {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).args(["--name", &self.name]).current_dir(&self.workspace).env("SETT_OPERATOR", "demo-operator");
        if let Some(path) = &self.python_path {
            c.env("PYTHONPATH", path);
        }
        c
    }

    /// Runs a command with its output shown, failing on a non-zero exit.
    fn show(&self, title: &str, args: &[&str]) -> Result<()> {
        println!("\n$ sett {}", args.join(" "));
        let _ = title;
        let status = self.cmd(args).status().with_context(|| format!("cannot run sett {}", args.join(" ")))?;
        if !status.success() {
            bail!("`sett {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }

    /// Runs a command quietly; its stderr is shown only when it failed for a reason other than
    /// a wait timeout (exit code 2).
    fn capture(&self, args: &[&str]) -> Result<(i32, String)> {
        let out = self.cmd(args).stderr(Stdio::piped()).output()?;
        let code = out.status.code().unwrap_or(1);
        if code != 0 && code != 2 {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((code, String::from_utf8_lossy(&out.stdout).into_owned()))
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    let root = crate::project_root();
    let status = Command::new(env!("CARGO")).args(["build", "--bins", "--locked"]).current_dir(&root).status()?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin_dir = root.join("target").join("debug");
    let workspace = std::env::temp_dir().join(format!("sett-demo-{}", std::process::id()));
    std::fs::create_dir_all(&workspace)?;
    let git = |a: &[&str]| -> Result<()> {
        let s = Command::new("git").args(a).current_dir(&workspace).stdout(Stdio::null()).status()?;
        if !s.success() {
            bail!("git {} failed", a.join(" "));
        }
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["config", "user.name", "Sett Demo"])?;
    git(&["config", "user.email", "demo@sett.invalid"])?;
    let (agents, config) = if args.python {
        check_python()?;
        ("agents-python", "sett-python.yml")
    } else {
        ("agents", "sett.yml")
    };
    copy_dir(&root.join("examples").join(agents), &workspace.join("agents"))?;
    std::fs::copy(root.join("examples").join(config), workspace.join("sett.yml"))?;
    std::fs::write(workspace.join(".gitignore"), ".sett/\n")?;
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "Sett demo workspace"])?;

    let sett = Sett {
        bin: bin_dir.join("sett"),
        workspace: workspace.clone(),
        name: format!("demo-{}", std::process::id()),
        python_path: args.python.then(|| root.join("sdk").join("python").join("src")),
    };
    println!("Sett demo workspace: {}", workspace.display());
    sett.show("start", &["up"])?;

    let result = drive(&sett, &args.goal);

    if !args.keep {
        let _ = sett.show("stop", &["down"]);
    }
    result?;
    println!("\nDemo complete. Workspace: {}", workspace.display());
    if args.keep {
        println!("The instance is still running: cd {} && sett status", workspace.display());
    }
    Ok(())
}

/// The Python agents need python3 3.10 or later; say so before starting anything.
fn check_python() -> Result<()> {
    let out = Command::new("python3")
        .args(["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)"])
        .output()
        .context("--python needs python3 on PATH (3.10 or later); install it or run the demo without --python")?;
    if !out.status.success() {
        bail!("--python needs python3 3.10 or later; `python3 --version` shows an older one");
    }
    Ok(())
}

fn drive(sett: &Sett, goal: &str) -> Result<()> {
    println!("\n$ sett forage --goal {goal:?} --watch");
    let mut forage = sett
        .cmd(&["forage", "--goal", goal, "--watch", "--timeout", "300s"])
        .spawn()
        .context("cannot run sett forage")?;
    // Play the human operator: answer every question the agents ask until the workflow ends.
    let started = Instant::now();
    let outcome = loop {
        if let Some(status) = forage.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(320) {
            let _ = forage.kill();
            bail!("the workflow did not finish within 320 s");
        }
        let (code, out) = sett.capture(&["questions", "--wait", "--timeout", "2s", "-o", "json"])?;
        if code != 0 {
            continue; // no question yet (exit 2 on timeout)
        }
        let open: serde_json::Value = serde_json::from_str(&out).context("questions -o json output")?;
        for q in open.as_array().cloned().unwrap_or_default() {
            let id = q["id"].as_str().or_else(|| q["question_id"].as_str()).unwrap_or_default().to_owned();
            let text = q["question"].as_str().or_else(|| q["text"].as_str()).unwrap_or_default().to_owned();
            println!("\nAn agent asks: {text}");
            sett.show("answer", &["answer", &id, "Use SQLite, keep it simple."])?;
        }
    };
    if !outcome.success() {
        bail!("the workflow did not reach a Terminal artifact ({outcome})");
    }
    sett.show("artifacts", &["hoard"])?;
    sett.show("audit trail", &["watch", "--exit-on-completion"])?;
    sett.show("status", &["status"])?;
    Ok(())
}
