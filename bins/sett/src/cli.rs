//! The command-line grammar (clap derive). Values are parsed here; meaning is given in `cmd`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sett",
    version,
    about = "Orchestrate teams of AI agents through a Redis blackboard",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Redis URL (redis://, rediss:// for TLS, user:password@ for ACL users,
    /// redis+unix:///path/to/redis.sock for a Redis on this host). Default: the workspace's
    /// managed Redis started by `sett up`.
    #[arg(long, env = "SETT_REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Instance name. Default: the instance registered for this workspace.
    #[arg(short = 'n', long = "name", env = "SETT_INSTANCE", global = true)]
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// Print only what scripts need.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Disable colours (also honoured: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Log format for diagnostics on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 30s, 5m, 1h)"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create sett.yml and an example agent in this directory (a git repository).
    Init(InitArgs),
    /// Start the orchestrator and the agents' cubs.
    Up(UpArgs),
    /// Stop everything gracefully; data is kept.
    Down(DownArgs),
    /// List instances.
    List,
    /// Start a workflow: write a GoalDefined artifact.
    Forage(ForageArgs),
    /// Replay the audit trail, then follow it live.
    Watch(WatchArgs),
    /// List artifacts, or show one.
    Hoard(HoardArgs),
    /// List open questions from agents.
    Questions(QuestionsArgs),
    /// Answer an agent's question.
    Answer(AnswerArgs),
    /// Approve a gated agent's claim: its tool runs, on exactly the artifact shown.
    Approve(ApproveArgs),
    /// Reject a gated agent's claim: it ends with a Failure naming you and your reason.
    Reject(RejectArgs),
    /// Cancel a workflow: end its claims, close its questions, stop its tools.
    Cancel(CancelArgs),
    /// Pause the instance, or one workflow: nothing new is granted and deadlines stand still.
    Pause(PauseArgs),
    /// Resume a paused instance or workflow.
    Resume(PauseArgs),
    /// Retry a failed workflow: its failed step gets a new attempt; the first one stays.
    Retry(RetryArgs),
    /// Start a branch from an earlier artifact: a new version of it (or a different answer to a
    /// Question); everything after it runs again on the branch, the original stays.
    Fork(ForkArgs),
    /// Show the health of an instance.
    Status(StatusArgs),
    /// List claims.
    Claims(ClaimsArgs),
    /// Show a component's logs.
    Logs(LogsArgs),
    /// Permanently delete all data of a stopped instance.
    Destroy(DestroyArgs),
    /// Write every key of an instance as JSON lines.
    Export(ExportArgs),
    /// Restore an instance from `sett export` output.
    Import(ImportArgs),
    /// Serve the web console (read + answer only) and its JSON API.
    Console(ConsoleArgs),
    /// Check the tamper-evident ledger (artifact hashes, event chain); print its head.
    Verify(VerifyArgs),
    /// Archive finished workflows out of Redis (retention), or show the archive.
    Archive(ArchiveArgs),
    /// Bring an archived workflow back into Redis.
    Restore(RestoreArgs),
    /// What agents reported they spent (tokens, cost), by workflow, agent or model.
    Usage(UsageArgs),
    /// Serve an MCP (Model Context Protocol) server for LLM clients, over stdio or HTTP.
    Mcp(McpArgs),
    /// Ledger regressions (a ledger that went back): acknowledge them once handled.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Print version information.
    Version,
    /// Check sett.yml, or print its JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completions(CompletionsArgs),
    /// Write man pages for sett and its subcommands (used by `cargo xtask man`).
    #[command(hide = true)]
    ManPages(ManPagesArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a sett.yml and print every error with its line and the fix (exit 1 if any).
    Check(ConfigCheckArgs),
    /// Print the JSON Schema of sett.yml (for editors; committed as docs/sett.schema.json).
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Acknowledge the instance's ledger regressions (shown by `sett status` until then) and
    /// take its current head as the one to compare with from now on.
    Ack,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The file to check. Default: the workspace's sett.yml.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManPagesArgs {
    /// The directory to write `sett.1` and `sett-<command>.1` into.
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing sett.yml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Start even when the workspace has uncommitted changes or the name is registered to
    /// another workspace.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for every component to become ready.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Grace period for running tools before they are killed.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub grace: Duration,
}

#[derive(Debug, Args)]
pub struct ForageArgs {
    /// The goal, in words.
    #[arg(long)]
    pub goal: String,
    /// Stream the workflow until it ends.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: give up after this long (exit 2).
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only events after this point: a duration ago (10m), an RFC 3339 time, or an event id.
    #[arg(long)]
    pub since: Option<String>,
    /// Only events about artifacts of this type.
    #[arg(long = "type")]
    pub artifact_type: Option<String>,
    /// Only events involving this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Stop when a workflow ends (a Terminal or Failure artifact).
    #[arg(long)]
    pub exit_on_completion: bool,
    /// Give up after this long (exit 2).
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct HoardArgs {
    /// An artifact id or short id (at least 6 hex characters).
    pub id: Option<String>,
    /// Only artifacts of this type.
    #[arg(long = "type")]
    pub artifact_type: Option<String>,
    /// Only artifacts produced by this agent or role.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only artifacts of this structural type.
    #[arg(long)]
    pub structural_type: Option<String>,
    /// Only artifacts created after this point (a duration ago or an RFC 3339 time).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Group by workflow (its goal), agent or model.
    #[arg(long, value_enum, default_value_t = UsageBy::Workflow)]
    pub by: UsageBy,
    /// Only usage reported after this point (a duration ago or an RFC 3339 time).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageBy {
    Workflow,
    Agent,
    Model,
}

#[derive(Debug, Args)]
pub struct QuestionsArgs {
    /// Only the questions addressed to you (by name or a sett.yml group; you are
    /// $SETT_OPERATOR, else your account name, as for `sett answer`).
    #[arg(long)]
    pub mine: bool,
    /// Block until at least one question is open, print it and exit.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit 2).
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The question's id or short id.
    pub question: String,
    /// The answer: free text, or for a question with options an option's text or number
    /// (several separated by commas when it allows several); `-` reads it from stdin. Leave it
    /// out on a terminal to be prompted (field by field for a form).
    pub text: Option<String>,
    /// Read the answer from a file.
    #[arg(long, conflicts_with = "text")]
    pub file: Option<PathBuf>,
    /// The answer as JSON: an object for a form question (`--json '{"replicas": 3}'`), an
    /// option's text or an array of them for a choice.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["text", "file"])]
    pub json: Option<String>,
    /// For a human review (`humans.reviewers`): your comments with the decision, e.g.
    /// `sett answer <id> changes --comment "cite the clause"` (required to request changes;
    /// the agent that reworks the artifact is given them).
    #[arg(long, requires = "text", conflicts_with_all = ["file", "json"])]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The approval's id or short id (see 'sett questions').
    pub approval: String,
    /// Why: recorded in the answer with your operator name ($SETT_OPERATOR, else your account).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    /// The approval's id or short id (see 'sett questions').
    pub approval: String,
    /// Why (required): recorded in the Failure that ends the claim, with your operator name.
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The workflow: its goal's id, or the id (or short id) of any artifact in it.
    pub workflow: String,
    /// Why: recorded in the ledger with your operator name ($SETT_OPERATOR, else your account).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The failed workflow: its goal's id, its Failure's, or the id (or short id) of any
    /// artifact in it.
    pub workflow: String,
    /// Why: recorded in the ledger with your operator name ($SETT_OPERATOR, else your account).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    /// The artifact to branch from: its id or short id (see 'sett hoard'); a work product, or a
    /// Question (or its Answer).
    pub artifact: String,
    /// The branch's version of a work product (default: its payload as it was, run again).
    #[arg(long, conflicts_with = "answer")]
    pub payload: Option<String>,
    /// For a Question: the different answer the asking agent resumes with on the branch.
    #[arg(long)]
    pub answer: Option<String>,
    /// Why: recorded in the ledger with your operator name ($SETT_OPERATOR, else your account).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The workflow (its goal's id, or the id or short id of any artifact in it); without it,
    /// the whole instance.
    pub workflow: Option<String>,
    /// Why: recorded in the ledger with your operator name ($SETT_OPERATOR, else your account).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Address to listen on. Loopback by default: for remote use put a TLS reverse proxy in
    /// front (see docs/console.md). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: std::net::SocketAddr,
    /// Show only this instance (repeatable). Default: `--name` when given, else every instance
    /// registered in the Redis.
    #[arg(long = "instance", value_name = "NAME")]
    pub instances: Vec<String>,
    /// A tokens file: one `<token> <operator name> [role=viewer|answerer|operator]
    /// [groups=g1,g2]` per line, so several people use the console under their own names and
    /// roles (no role: answerer). Without it, one token ($SETT_CONSOLE_TOKEN, else a random
    /// one).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// The name answers are recorded under with the single token. Default: $SETT_OPERATOR,
    /// else the OS user.
    #[arg(long, value_name = "NAME", conflicts_with = "users")]
    pub operator: Option<String>,
    /// How long a browser session lasts after the token in the URL was exchanged for it
    /// (absolute: using the console does not extend it). Then the browser gets 401 and the
    /// printed URL opens a new session.
    #[arg(long, value_parser = duration, default_value = "12h", value_name = "DURATION")]
    pub session_lifetime: Duration,
    /// Let the single token act on workflows (cancel, pause, resume, retry, fork) as well as
    /// read and answer: its role becomes `operator`. With --users, roles come from the file.
    #[arg(long, conflicts_with = "users")]
    pub allow_actions: bool,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve streamable HTTP on this address (path /mcp) instead of stdio. Loopback unless
    /// you say otherwise; port 0 picks a free port. Every request needs a bearer token
    /// ($SETT_MCP_TOKEN, else a random one printed at start, or --users).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// With --http: a tokens file, one `<token> <operator name> [role=…] [groups=…]` per line
    /// (the console's format), so each client answers under its own name; a token's role
    /// limits it further (viewer reads, answerer also answers, operator also acts).
    #[arg(long, value_name = "FILE", requires = "http")]
    pub users: Option<PathBuf>,
    /// The name answers are recorded under (stdio, or the single HTTP token). Default:
    /// $SETT_OPERATOR, else the OS user.
    #[arg(long, value_name = "NAME", conflicts_with = "users")]
    pub operator: Option<String>,
    /// Let MCP clients answer agents' questions (the answer_question tool). Without it and
    /// --allow-actions the server is read-only.
    #[arg(long)]
    pub allow_answers: bool,
    /// Let MCP clients start workflows (the forage tool) and cancel them (cancel_workflow).
    #[arg(long)]
    pub allow_actions: bool,
}

#[derive(Debug, Args)]
pub struct ClaimsArgs {
    /// Only claims with this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Only claims that are past a deadline or pending for longer than --stuck-after.
    #[arg(long)]
    pub stuck: bool,
    /// What "stuck" means for a pending claim with no deadline.
    #[arg(long, value_parser = duration, default_value = "10m")]
    pub stuck_after: Duration,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// `orchestrator` or an agent name.
    pub component: String,
    /// Keep following new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Show only the last N lines.
    #[arg(long)]
    pub lines: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Skip the confirmation prompt (for scripts).
    #[arg(long)]
    pub force: bool,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a full export to FILE before deleting anything.
    #[arg(long)]
    pub backup: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file (`-` for stdin).
    pub file: PathBuf,
    /// Import even if the instance already has data (existing keys are replaced).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Run an archiving pass now (without it: show the archive and the last pass).
    #[arg(long)]
    pub now: bool,
    /// With --now: archive workflows that ended longer ago than this, instead of
    /// retention.archive_after.
    #[arg(long, value_parser = duration, requires = "now")]
    pub older_than: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The workflow: its goal artifact's full id (as `sett forage` printed it).
    pub workflow: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify an export file (`sett export --file`) offline, without Redis.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// A head recorded earlier (`<seq>:<hash>`, as printed by `sett verify`): it must still be
    /// in the chain, which detects a wholesale rewrite.
    #[arg(long, value_parser = parse_head)]
    pub head: Option<sett_core::ledger::Head>,
    /// A witness file (`ledger.witness_file`; without a value, this workspace's): every head of
    /// the instance witnessed in it must still be in the chain, which proves a lost tail
    /// (Redis restarted on an older copy, a failover to a replica that had not synced) and
    /// names the events lost.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    #[allow(clippy::option_option)]
    pub witness: Option<Option<PathBuf>>,
}

fn parse_head(s: &str) -> Result<sett_core::ledger::Head, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
