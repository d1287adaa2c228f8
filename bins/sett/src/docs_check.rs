//! Keeps the documentation honest: every `sett …` command shown in a shell block of README.md or
//! docs/*.md must be accepted by the CLI grammar, so a renamed flag or command fails CI instead of
//! rotting in the docs. (The scenarios themselves are run against real instances by the
//! end-to-end tests.)

use clap::Parser;

use crate::cli::Cli;

const DOCS: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../README.md")),
    ("docker/README.md", include_str!("../../../docker/README.md")),
    ("docs/agents.md", include_str!("../../../docs/agents.md")),
    ("docs/architecture.md", include_str!("../../../docs/architecture.md")),
    ("docs/benchmarks.md", include_str!("../../../docs/benchmarks.md")),
    ("docs/configuration.md", include_str!("../../../docs/configuration.md")),
    ("docs/console.md", include_str!("../../../docs/console.md")),
    ("docs/backup-recovery.md", include_str!("../../../docs/backup-recovery.md")),
    ("docs/design.md", include_str!("../../../docs/design.md")),
    ("docs/deployment.md", include_str!("../../../docs/deployment.md")),
    ("docs/mcp.md", include_str!("../../../docs/mcp.md")),
    ("docs/metrics.md", include_str!("../../../docs/metrics.md")),
    ("docs/notifications.md", include_str!("../../../docs/notifications.md")),
    ("docs/operations.md", include_str!("../../../docs/operations.md")),
    ("docs/reliability.md", include_str!("../../../docs/reliability.md")),
    ("docs/security.md", include_str!("../../../docs/security.md")),
    ("docs/troubleshooting.md", include_str!("../../../docs/troubleshooting.md")),
];

/// The `sett` command lines of the shell blocks of `markdown`, with their line numbers.
fn commands(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_shell = false;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            in_shell = !in_shell && matches!(lang.trim(), "sh" | "bash" | "console" | "shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let cmd = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
        // A pipeline or a chain: check each `sett` part.
        for part in cmd.split(['|', ';']).flat_map(|p| p.split("&&")) {
            let part = part.trim();
            if part.starts_with("sett ") || part == "sett" {
                out.push((i + 1, part.to_owned()));
            }
        }
    }
    out
}

/// Splits a shell word list, dropping a trailing `# comment` and redirections.
fn words(cmd: &str) -> Option<Vec<String>> {
    let without_comment = match cmd.find(" #") {
        Some(i) => &cmd[..i],
        None => cmd,
    };
    let mut words = shlex::split(without_comment)?;
    if let Some(i) = words.iter().position(|w| w.starts_with('>') || w.starts_with('<') || w == "2>&1") {
        words.truncate(i);
    }
    Some(words)
}

#[test]
fn every_documented_sett_command_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, text) in DOCS {
        for (line, cmd) in commands(text) {
            let Some(argv) = words(&cmd) else {
                failures.push(format!("{file}:{line}: cannot split `{cmd}`"));
                continue;
            };
            checked += 1;
            if let Err(e) = Cli::try_parse_from(&argv) {
                let first = e.to_string().lines().next().unwrap_or_default().to_owned();
                failures.push(format!("{file}:{line}: `{cmd}`: {first}"));
            }
        }
    }
    assert!(checked > 20, "only {checked} documented commands found: is the extraction broken?");
    assert!(failures.is_empty(), "documented commands the CLI rejects:\n{}", failures.join("\n"));
}

#[test]
fn extraction_finds_commands_in_shell_blocks_only() {
    let md =
        "text sett up\n```sh\nsett up   # start\ncd x && sett forage --goal \"a b\"\n```\n```yaml\nsett: no\n```\n";
    let found: Vec<String> = commands(md).into_iter().map(|(_, c)| c).collect();
    assert_eq!(found, ["sett up   # start", "sett forage --goal \"a b\""]);
    assert_eq!(words("sett up   # start").unwrap(), ["sett", "up"]);
    assert_eq!(words("sett export > backup.jsonl").unwrap(), ["sett", "export"]);
}
