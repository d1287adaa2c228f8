//! `sett config check|schema`, `sett completions` and the man pages: the CLI's fit with the
//! operator's editor and shell.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use sett_core::config::SettConfig;

use crate::cli::{Cli, ConfigCheckArgs, ConfigCommand, OutputFormat};
use crate::ctx::Ctx;
use crate::output;

/// Where `sett init` and `sett config check` keep the schema editors read, relative to the
/// workspace root (the `# yaml-language-server: $schema=` line of sett.yml points at it).
pub(crate) const SCHEMA_FILE: &str = ".sett/sett.schema.json";

/// The first line `sett init` writes into sett.yml, so editors with the YAML language server
/// validate and complete the file.
pub(crate) const SCHEMA_MODELINE: &str = "# yaml-language-server: $schema=.sett/sett.schema.json";

pub(crate) fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Schema => {
            output::line(&schema_text())?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check(a) => check(ctx, a),
    }
}

/// The schema as committed in docs/sett.schema.json: pretty JSON without a trailing newline.
pub(crate) fn schema_text() -> String {
    serde_json::to_string_pretty(&sett_core::config::json_schema()).expect("a JSON value serialises")
}

/// Writes the schema editors use next to the workspace's sett.yml (best effort: a read-only
/// workspace still gets its check).
pub(crate) fn write_schema(root: &Path) -> Result<()> {
    let path = root.join(SCHEMA_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, schema_text() + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn check(ctx: &Ctx, args: ConfigCheckArgs) -> Result<ExitCode> {
    let path = args.file.clone().unwrap_or_else(|| ctx.workspace.config_path());
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("cannot read {}: give the file to check, or run 'sett init' to create sett.yml", path.display())
    })?;
    let shown = path.display().to_string();
    let issues = SettConfig::check(&shown, &text);
    if args.file.is_none() {
        // Keep the editor's schema in step with this Sett version.
        let _ = write_schema(&ctx.workspace.root);
    }
    match ctx.output() {
        OutputFormat::Table => {
            for i in &issues {
                let e = &i.error;
                let at = match i.line {
                    Some(l) => format!("{shown}:{l}"),
                    None => shown.clone(),
                };
                let key = if e.key_path.is_empty() { String::new() } else { format!(" '{}'", e.key_path) };
                eprintln!("{at}: error:{key}: {}\n  fix: {}", e.message, e.fix);
            }
            if issues.is_empty() {
                if !ctx.global.quiet {
                    output::line(&format!("{shown}: OK"))?;
                }
            } else {
                let n = issues.len();
                eprintln!("{shown}: {n} error{}", if n == 1 { "" } else { "s" });
            }
        }
        OutputFormat::Json | OutputFormat::Jsonl => {
            let rows: Vec<serde_json::Value> = issues
                .iter()
                .map(|i| {
                    serde_json::json!({"file": shown, "line": i.line, "key": i.error.key_path,
                        "message": i.error.message, "fix": i.error.fix})
                })
                .collect();
            if ctx.output() == OutputFormat::Json {
                output::json(&serde_json::Value::Array(rows))?;
            } else {
                for r in &rows {
                    output::jsonl(r)?;
                }
            }
        }
    }
    Ok(if issues.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `sett completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sett", &mut out);
    output::raw(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `sett.1` and one page per subcommand (`sett-up.1`, `sett-config-check.1`, …) into `dir`.
pub(crate) fn man_pages(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
