//! `sett mcp` driven by a client nobody here wrote: the official MCP Python SDK (`mcp` from
//! PyPI, installed by .ci/run), running tests/mcp/client.py over stdio and over streamable HTTP.
//! The script asserts the protocol side (initialize, tools with schemas, the question
//! notification, answer, Terminal, the artifact resource) and prints a JSON report; these tests
//! check the report against the blackboard.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sett_core::StructuralType;
use sett_e2e::{ASKER_YML, Env, KillOnDrop, asker_script, bin_dir, structured_asker_script, text};

const MINUTE: Duration = Duration::from_secs(60);
const TOKEN: &str = "e2e-mcp-token-0123456789abcdef";
const QUESTION: &str = "Which port should the service listen on?";

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mcp").join("client.py")
}

/// Runs the Python client with `args` in the workspace.
fn client(env: &Env, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(client_script())
        .args(args)
        .current_dir(env.path())
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs (the MCP SDK: python3 -m pip install mcp; .ci/run does)")
}

/// The client's JSON report; fails the test with its output unless it succeeded.
fn report(env: &Env, args: &[&str]) -> serde_json::Value {
    let out = client(env, args);
    assert!(
        out.status.success(),
        "client.py {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        env.logs()
    );
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("client.py printed {stdout:?}: {e}"))
}

/// `sett mcp` over stdio as the client launches it: everything on the command line, because the
/// SDK gives a launched server only a minimal environment.
fn stdio_command(env: &Env, extra: &[&str]) -> Vec<String> {
    let mut cmd = vec![
        bin_dir().join("sett").display().to_string(),
        "--redis-url".into(),
        env.redis_url.clone(),
        "-n".into(),
        env.name.to_string(),
        "mcp".into(),
    ];
    cmd.extend(extra.iter().map(|s| (*s).to_owned()));
    cmd
}

/// Checks the workflow the client ran against the blackboard: the Answer was recorded under
/// `operator`, the Terminal carries it, the ledger verifies.
async fn check_workflow(env: &Env, report: &serde_json::Value, operator: &str) {
    assert_eq!(report["answered_by"], operator);
    assert_eq!(report["terminal_payload"], "8080");
    assert!(
        report["second_answer_error"].as_str().unwrap().contains(&format!("already answered by {operator}")),
        "{report}"
    );
    assert!(report["bad_uri_error"].as_str().unwrap().contains("is not an artifact id"), "{report}");
    let questions_uri = format!("sett://{}/questions", env.name);
    let notified = report["notified"].as_array().unwrap();
    assert!(notified.iter().any(|u| u == questions_uri.as_str()), "{report}");
    let goal_uri = format!("sett://{}/artifacts/{}", env.name, report["goal_id"].as_str().unwrap());
    assert!(notified.iter().any(|u| u == goal_uri.as_str()), "{report}");
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let answer = artifacts.iter().find(|a| a.structural_type == StructuralType::Answer).expect("an Answer");
    assert_eq!(answer.id.to_string(), report["answer_id"].as_str().unwrap());
    assert_eq!(answer.answered_by.as_deref(), Some(operator));
    assert_eq!(answer.produced_by_role, format!("human:{operator}"));
    let question = artifacts.iter().find(|a| a.structural_type == StructuralType::Question).expect("a Question");
    assert_eq!(question.payload, QUESTION);
    assert_eq!(question.id.to_string(), report["question_id"].as_str().unwrap());
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.id.to_string(), report["terminal_id"].as_str().unwrap());
    env.ok(&["verify"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_over_stdio_starts_a_workflow_is_told_of_its_question_and_answers_it() {
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    let mut args = vec!["workflow", "--instance", env.name.as_str(), "--operator", "Claude Desktop User", "--stdio"];
    let server = stdio_command(&env, &["--allow-answers", "--allow-actions", "--operator", "Claude Desktop User"]);
    args.extend(server.iter().map(String::as_str));
    let r = report(&env, &args);
    check_workflow(&env, &r, "Claude Desktop User").await;
    assert_eq!(r["health"], "running");
}

/// `sett mcp --http` on a free port with the token; returns it and its URL.
fn start_http(env: &Env, extra: &[&str]) -> (KillOnDrop, String) {
    let mut args = vec!["mcp", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = env
        .sett(&args)
        .env("SETT_MCP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sett mcp --http");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("sett mcp prints its URL");
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");
    (KillOnDrop(child), url)
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_over_http_refuses_requests_without_the_token_and_answers_as_its_operator() {
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    // The single token answers as $SETT_OPERATOR (set by the test environment).
    let (_server, url) = start_http(&env, &["--allow-answers", "--allow-actions"]);

    let refused = report(&env, &["no-token", "--http", &url]);
    assert_eq!(refused["bare_status"], 401, "{refused}");
    assert_eq!(refused["wrong_status"], 401, "{refused}");
    assert!(refused["bare_body"].as_str().unwrap().contains("Authorization: Bearer"), "{refused}");
    // Nothing was written by the refused requests.
    assert!(env.artifacts().await.is_empty());

    let r = report(
        &env,
        &["workflow", "--instance", env.name.as_str(), "--operator", "test-operator", "--http", &url, "--token", TOKEN],
    );
    check_workflow(&env, &r, "test-operator").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_is_read_only_without_allow_flags_and_says_how_to_allow() {
    // No daemons are needed: nothing may be written.
    let env = Env::new(ASKER_YML, &[("asker.sh", &asker_script(QUESTION))]).await;
    let mut args = vec!["read-only", "--instance", env.name.as_str(), "--stdio"];
    let server = stdio_command(&env, &[]);
    args.extend(server.iter().map(String::as_str));
    let r = report(&env, &args);
    let answer = r["errors"]["answer_question"].as_str().unwrap();
    assert!(answer.contains("answering is not allowed"), "{answer}");
    assert!(answer.contains(&format!("sett mcp --allow-answers -n {}", env.name)), "{answer}");
    let forage = r["errors"]["forage"].as_str().unwrap();
    assert!(forage.contains("starting workflows is not allowed"), "{forage}");
    assert!(forage.contains(&format!("sett mcp --allow-actions -n {}", env.name)), "{forage}");
    let cancel = r["errors"]["cancel_workflow"].as_str().unwrap();
    assert!(cancel.contains("cancelling workflows is not allowed"), "{cancel}");
    assert_eq!(r["workflows"], 0);
    // The refusals wrote nothing.
    assert!(env.artifacts().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_cancels_a_workflow_waiting_on_its_question_with_allow_actions() {
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &asker_script(QUESTION))]).await;
    env.up();
    let mut args = vec!["cancel", "--instance", env.name.as_str(), "--operator", "Ada MCP", "--stdio"];
    let server = stdio_command(&env, &["--allow-actions", "--operator", "Ada MCP"]);
    args.extend(server.iter().map(String::as_str));
    let r = report(&env, &args);
    let goal = sett_core::ArtifactId::parse(r["goal_id"].as_str().unwrap()).unwrap();
    let record = env.store.cancellation(&goal).await.unwrap().expect("a cancellation record");
    assert_eq!(record.operator, "Ada MCP");
    assert_eq!(record.reason.as_deref(), Some("wrong goal"));
    assert!(env.store.open_questions().await.unwrap().is_empty());
    env.ok(&["verify"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_lists_a_structured_questions_options_and_refuses_an_answer_outside_them() {
    const CHOICE: &str = r#"{"question": "Which storage?", "options": ["SQLite", "Postgres", "Redis"]}"#;
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &structured_asker_script(CHOICE))]).await;
    env.up();
    let mut args = vec!["structured", "--instance", env.name.as_str(), "--stdio"];
    let server = stdio_command(&env, &["--allow-answers", "--allow-actions"]);
    args.extend(server.iter().map(String::as_str));
    let r = report(&env, &args);
    assert_eq!(r["question"], "Which storage?");
    assert_eq!(r["answer_spec"]["options"], serde_json::json!(["SQLite", "Postgres", "Redis"]), "{r}");
    assert!(r["refused"].as_str().unwrap().contains("MongoDB"), "{r}");
    assert_eq!(r["terminal_payload"], "\"Postgres\"", "{r}");
    let answers = env.artifacts_of(StructuralType::Answer).await;
    assert_eq!(answers.len(), 1, "the refused answer wrote nothing");
    env.ok(&["verify"]);
}
