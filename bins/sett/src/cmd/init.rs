//! `sett init`: write a `sett.yml` and an example agent that work as generated.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::InitArgs;
use crate::ctx::Ctx;
use crate::output;

const SETT_YML: &str = include_str!("../../templates/sett.yml");
const SCRIBE: &str = include_str!("../../templates/scribe.sh");

pub(crate) async fn run(ctx: &Ctx, args: InitArgs) -> Result<ExitCode> {
    let root = &ctx.workspace.root;
    let config = root.join("sett.yml");
    if config.exists() && !args.force {
        bail!("{} exists already: edit it, or pass --force to overwrite it with the example", config.display());
    }
    if !root.join(".git").exists() {
        bail!("{} is not a git repository: agents record their work as commits; run 'git init' first", root.display());
    }
    // The generated file must parse: a template that does not is a bug caught by tests.
    sett_core::config::SettConfig::parse("sett.yml", SETT_YML).context("the built-in sett.yml template is invalid")?;
    // The modeline points editors (YAML language server) at the schema of this Sett version.
    let text = format!("{}\n{SETT_YML}", super::config::SCHEMA_MODELINE);
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    super::config::write_schema(root)?;
    let agent = root.join("agents").join("scribe").join("run.sh");
    write_executable(&agent, SCRIBE)?;
    ignore_sett_dir(root)?;
    if !ctx.global.quiet {
        output::line(&format!("Wrote {} and {}.", config.display(), agent.display()))?;
        output::line("The example agent 'Scribe' records each goal in notes/ as a git commit and ends the workflow.")?;
        output::line("Next: sett up && sett forage --goal \"Write down our first goal\" --watch")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Keeps Sett's local state (logs, managed Redis) out of the repository.
fn ignore_sett_dir(root: &Path) -> Result<()> {
    let path = root.join(".gitignore");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current.lines().any(|l| l.trim() == ".sett/" || l.trim() == ".sett") {
        return Ok(());
    }
    let sep = if current.is_empty() || current.ends_with('\n') { "" } else { "\n" };
    std::fs::write(&path, format!("{current}{sep}.sett/\n"))?;
    Ok(())
}
