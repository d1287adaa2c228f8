//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver): answer a question from the inbox and watch the agent resume; agent
//! text that tries to inject markup stays text in the DOM; every artifact of a workflow is a
//! node of its SVG graph; an operator cancels a running workflow from its page, while an
//! answerer sees no buttons and gets 403 naming the role for the same request. Screenshots go to `target/console-screenshots/` (and to `docs/img/`
//! with `SETT_UPDATE_SCREENSHOTS=1`, which is how docs/console.md's are made).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use sett_core::StructuralType;
use sett_core::event::{EventData, EventKind};
use sett_e2e::{ASKER_YML, DRAFT_FINISHER, DRAFT_WRITER, DRAFTING_YML, Env, KillOnDrop};

const MINUTE: Duration = Duration::from_secs(60);
const TOKEN: &str = "e2e-console-token-0123456789abcdef";
const XSS: &str = r#"Which port? <script>alert(1)</script> "><img src=x onerror=alert(1)>"#;

/// One agent that asks once (the question text is hostile markup), then ends with the answer.
/// `sett console` on a free port, answering as `Ada Console`; returns it and its printed URL.
fn start_console(env: &Env) -> (KillOnDrop, String) {
    let mut child = env
        .sett(&["console", "--addr", "127.0.0.1:0", "--operator", "Ada Console"])
        .env("SETT_CONSOLE_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sett console");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the console prints its URL");
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with(&format!("/?token={TOKEN}")), "{url}");
    (KillOnDrop(child), url)
}

/// `sett console --users FILE` on a free port; returns it and its base URL.
fn start_console_with_users(env: &Env, users: &Path) -> (KillOnDrop, String) {
    let mut child = env
        .sett(&["console", "--addr", "127.0.0.1:0", "--users"])
        .arg(users)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sett console");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the console prints its URL");
    let base = line.trim().split("/?token=").next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    (KillOnDrop(child), base)
}

/// chromedriver and a headless Chromium session.
struct Browser {
    client: Client,
    _driver: KillOnDrop,
}

impl Browser {
    async fn start() -> Self {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver; .ci/run does)");
        // chromedriver announces its port once it listens.
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let mut port = None;
        for line in lines.by_ref() {
            let line = line.expect("chromedriver output");
            if let Some(p) = line.split("started successfully on port ").nth(1) {
                port = Some(p.trim().trim_end_matches('.').to_owned());
                break;
            }
        }
        let port = port.expect("chromedriver reports its port");
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"]}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Self { client, _driver: KillOnDrop(driver) }
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Saves a screenshot as `<name>.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let mut dirs = vec![root.join("target/console-screenshots")];
        if std::env::var_os("SETT_UPDATE_SCREENSHOTS").is_some() {
            dirs.push(root.join("docs/img"));
        }
        for d in dirs {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(PathBuf::from(&d).join(format!("{name}.png")), &png).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answer_from_the_browser_inbox_and_the_agent_resumes() {
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &sett_e2e::asker_script(XSS))]).await;
    env.up();
    let goal = env.forage("Build a service");
    let out = env.ok(&["questions", "--wait", "--timeout", "30s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["text"], XSS);
    let (_console, url) = start_console(&env);
    let base = url.split("/?token=").next().unwrap().to_owned();
    let b = Browser::start().await;

    // The token opens a session and leaves the address bar.
    b.client.goto(&url).await.unwrap();
    assert_eq!(b.client.current_url().await.unwrap().as_str(), format!("{base}/"));
    b.client.wait().for_element(Locator::Css(&format!(r#"tr[data-instance="{}"]"#, env.name))).await.unwrap();
    let notice = b.client.find(Locator::Id("notice")).await.unwrap().text().await.unwrap();
    assert!(notice.contains("Read + answer only"), "{notice}");
    b.shot("console-instances").await;

    b.client.goto(&format!("{base}/questions")).await.unwrap();
    let card = format!(r#"article[data-question-id="{qid}"]"#);
    b.client.wait().for_element(Locator::Css(&card)).await.unwrap();
    // The hostile question is text: no element was created from it.
    let dom = b
        .js(&format!(
            r#"const card = document.querySelector('{card}');
               return [document.querySelectorAll('main script').length, document.querySelectorAll('img').length,
                       card.querySelector('pre.text').textContent];"#,
            card = card.replace('\'', "\\'")
        ))
        .await;
    assert_eq!(dom, serde_json::json!([0, 0, XSS]), "agent text renders as text");
    // The context chain is fetched when opened (the page has none of it): it leads back to the goal.
    let before = b
        .js(&format!("return document.querySelectorAll('{} details.chain li').length;", card.replace('\'', "\\'")))
        .await;
    assert_eq!(before, 0, "no chain is rendered with the page");
    b.client.find(Locator::Css(&format!("{card} details.chain summary"))).await.unwrap().click().await.unwrap();
    let to_goal = format!(r#"{card} details.chain li a[href$="/artifacts/{goal}"]"#);
    b.client.wait().for_element(Locator::Css(&to_goal)).await.expect("the chain loads on demand");
    // Live updates are connected (server-sent events).
    b.client.wait().for_element(Locator::Css("#live-state.live-on")).await.expect("the page follows the event stream");
    b.shot("console-inbox").await;

    let textarea = b.client.find(Locator::Css(&format!("{card} textarea"))).await.unwrap();
    textarea.send_keys("8080").await.unwrap();
    b.client.find(Locator::Css(&format!("{card} button[type=submit]"))).await.unwrap().click().await.unwrap();
    b.client
        .wait()
        .for_element(Locator::Css(&format!(r#"[data-question-id="{qid}"][data-state="answered"]"#)))
        .await
        .expect("the question is marked answered");

    let artifacts = env.wait_terminals(1, MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    assert_eq!(terminal.payload, "8080", "the agent resumed with the browser's answer");
    let answer = artifacts.iter().find(|a| a.structural_type == StructuralType::Answer).unwrap();
    assert_eq!(answer.answered_by.as_deref(), Some("Ada Console"));
    assert_eq!(answer.produced_by_role, "human:Ada Console");
    assert_eq!(answer.source_artifacts.iter().map(ToString::to_string).collect::<Vec<_>>(), vec![qid.clone()]);

    // Without a reload, the inbox follows: the question is listed as answered by the console user.
    // The condition is the element's text itself: the page re-renders on each event of the
    // resumed workflow, so an element found first and read after may already be replaced.
    let answered_by = format!(
        r#"//article[contains(concat(' ', @class, ' '), ' done ')][@data-question-id="{qid}"]//*[contains(concat(' ', @class, ' '), ' by ')][normalize-space()="Ada Console"]"#
    );
    b.client
        .wait()
        .for_element(Locator::XPath(&answered_by))
        .await
        .expect("the page updated live: the question answered by the console user");
    assert_eq!(b.js("return window.settLive.refreshes > 0 && window.settLive.events > 0;").await, true);
    b.shot("console-answered").await;

    // The workflow page draws every artifact, including the question and its answer.
    b.client.goto(&format!("{base}/instances/{}/workflows/{goal}", env.name)).await.unwrap();
    b.client.wait().for_element(Locator::Css("svg#graph")).await.unwrap();
    let drawn = svg_ids(&b).await;
    let all: BTreeSet<String> = env.artifacts().await.iter().map(|a| a.id.to_string()).collect();
    assert_eq!(drawn, all);
    b.client.clone().close().await.unwrap();
}

async fn svg_ids(b: &Browser) -> BTreeSet<String> {
    let ids = b.js("return Array.from(document.querySelectorAll('svg#graph [data-artifact-id]')).map(n => n.dataset.artifactId);").await;
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_workflow_page_draws_every_artifact_of_the_demo_pipeline() {
    let mut env = Env::examples(false).await;
    env.up();
    let goal = env.forage("Write a haiku about provenance");
    env.wait_terminals(1, 2 * MINUTE).await;
    let (_console, url) = start_console(&env);
    let base = url.split("/?token=").next().unwrap().to_owned();
    let b = Browser::start().await;
    b.client.goto(&url).await.unwrap();
    b.client.goto(&format!("{base}/instances/{}", env.name)).await.unwrap();
    let row = b.client.wait().for_element(Locator::Css(&format!(r#"tr[data-goal-id="{goal}"]"#))).await.unwrap();
    assert!(row.text().await.unwrap().contains("complete"));
    b.shot("console-workflows").await;
    b.client.goto(&format!("{base}/instances/{}/workflows/{goal}", env.name)).await.unwrap();
    b.client.wait().for_element(Locator::Css("svg#graph")).await.unwrap();
    let drawn = svg_ids(&b).await;
    let all: BTreeSet<String> = env.artifacts().await.iter().map(|a| a.id.to_string()).collect();
    assert!(all.len() >= 4, "the demo pipeline makes several artifacts: {all:?}");
    assert_eq!(drawn, all, "every artifact of the workflow is a node");
    let timeline = b.client.find(Locator::Css(".timeline")).await.unwrap().text().await.unwrap();
    assert!(timeline.contains("granted to"), "{timeline}");
    b.shot("console-workflow").await;
    // A node opens its artifact.
    let first = drawn.iter().next().unwrap().clone();
    b.client.goto(&format!("{base}/instances/{}/artifacts/{first}", env.name)).await.unwrap();
    let props = b.client.wait().for_element(Locator::Css(&format!(r#"dl[data-artifact-id="{first}"]"#))).await.unwrap();
    assert!(props.text().await.unwrap().contains("Produced by"));
    b.shot("console-artifact").await;
    b.client.clone().close().await.unwrap();
}

/// A form question: an integer, a select, a checkbox and a checkbox group.
const FORM_QUESTION: &str = r#"{"question": "How should it be deployed?", "schema": {"type": "object",
  "properties": {
    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "description": "pods to run"},
    "region": {"type": "string", "enum": ["eu", "us"], "title": "Region"},
    "dry_run": {"type": "boolean", "default": true},
    "checks": {"type": "array", "items": {"type": "string", "enum": ["lint", "test"]}, "default": ["test"]}
  },
  "required": ["replicas", "region"]}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_structured_question_is_a_form_checked_in_the_page_and_the_agent_resumes_with_json() {
    let mut env = Env::new(ASKER_YML, &[("asker.sh", &sett_e2e::structured_asker_script(FORM_QUESTION))]).await;
    env.up();
    env.forage("Deploy it");
    let out = env.ok(&["questions", "--wait", "--timeout", "30s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().unwrap().to_owned();
    let (_console, url) = start_console(&env);
    let base = url.split("/?token=").next().unwrap().to_owned();
    let b = Browser::start().await;
    b.client.goto(&url).await.unwrap();
    b.client.goto(&format!("{base}/questions")).await.unwrap();
    let card = format!(r#"article[data-question-id="{qid}"]"#);
    b.client.wait().for_element(Locator::Css(&format!("{card} form.structured"))).await.unwrap();
    // The spec as controls, defaults filled in, the question's own text shown.
    let form = b
        .js(&format!(
            r#"const c = document.querySelector('{card}'), f = c.querySelector('form');
               return [c.querySelector('pre.text').textContent, f.querySelector('input[name=replicas]').type,
                       f.querySelector('select[name=region]').required, f.querySelector('input[name=dry_run]').checked,
                       Array.from(f.querySelectorAll('input[name=checks]:checked')).map(e => e.value),
                       f.querySelectorAll('abbr.req').length];"#,
            card = card.replace('\'', "\\'")
        ))
        .await;
    assert_eq!(form, serde_json::json!(["How should it be deployed?", "number", true, true, ["test"], 2]));

    // Out of range: the page refuses it (no request leaves), and says why.
    let replicas = b.client.find(Locator::Css(&format!("{card} input[name=replicas]"))).await.unwrap();
    replicas.send_keys("12").await.unwrap();
    b.client
        .find(Locator::Css(&format!("{card} select[name=region] option[value=us]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.js(&format!("document.querySelector('{}').scrollIntoView(); return 0;", card.replace('\'', "\\'"))).await;
    b.shot("console-form").await;
    b.client.find(Locator::Css(&format!("{card} button[type=submit]"))).await.unwrap().click().await.unwrap();
    let refused = b
        .js(&format!(
            "const f = document.querySelector('{} form'); return [f.checkValidity(), f.querySelector('input[name=replicas]').validity.rangeOverflow];",
            card.replace('\'', "\\'")
        ))
        .await;
    assert_eq!(refused, serde_json::json!([false, true]), "the page checks the range");

    replicas.clear().await.unwrap();
    replicas.send_keys("3").await.unwrap();
    b.client.find(Locator::Css(&format!("{card} input[name=dry_run]"))).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Css(&format!("{card} button[type=submit]"))).await.unwrap().click().await.unwrap();
    b.client
        .wait()
        .for_element(Locator::Css(&format!(r#"[data-question-id="{qid}"][data-state="answered"]"#)))
        .await
        .expect("the question is marked answered");
    let artifacts = env.wait_terminals(1, MINUTE).await;
    let terminal = artifacts.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap();
    let got: serde_json::Value = serde_json::from_str(&terminal.payload).unwrap();
    assert_eq!(got, serde_json::json!({"replicas": 3, "region": "us", "dry_run": false, "checks": ["test"]}));
    b.client.clone().close().await.unwrap();
    env.down();
}

/// An approval from the console: its page shows the agent, the claim type, the target's payload
/// and hash and the context chain; a rejection without a reason is refused in place; Approve
/// starts the held-back tool (its marker file appears only then).
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_reviewed_and_approved_in_the_console() {
    let mut env = crate::approvals::gated_env("{timeout: 1h}").await;
    env.up();
    env.forage("Deploy release 2.4 to production");
    let approval = crate::approvals::wait_for_approval(&env);
    let qid = approval["id"].as_str().unwrap().to_owned();
    let hash = approval["approval"]["target"]["hash"].as_str().unwrap().to_owned();
    let (_console, url) = start_console(&env);
    let base = url.split("/?token=").next().unwrap().to_owned();
    let b = Browser::start().await;
    b.client.goto(&url).await.unwrap();
    // The inbox links the approval; its page shows what is to be approved.
    b.client.goto(&format!("{base}/questions")).await.unwrap();
    let card = format!(r#"article[data-question-id="{qid}"]"#);
    b.client.wait().for_element(Locator::Css(&format!("{card} form.approval"))).await.unwrap();
    b.client.goto(&format!("{base}/instances/{}/artifacts/{qid}", env.name)).await.unwrap();
    b.client.wait().for_element(Locator::Css("section.approval form.approval, form.approval")).await.unwrap();
    let shown = b
        .js(r#"const s = document.querySelector('section.approval');
               return [s.querySelector('.agent').textContent, s.querySelector('.claim-type').textContent,
                       s.querySelector('pre.target').textContent, s.querySelector('code.hash').textContent];"#)
        .await;
    assert_eq!(shown, serde_json::json!(["Deployer", "exclusive", "Deploy release 2.4 to production", hash]));
    b.js("document.querySelector('section.approval').scrollIntoView(); return 0;").await;
    b.shot("console-approval").await;
    assert!(!crate::approvals::marker_exists(&env), "nothing runs before the approval");

    // Reject without a reason: refused by the server, shown next to the reason, nothing written.
    b.client.find(Locator::Css("form.approval button.reject")).await.unwrap().click().await.unwrap();
    b.client.wait().for_element(Locator::Css("form.approval output.result.bad")).await.unwrap();
    let problem = b.js("return document.querySelector('[data-field=reason] output.problem').textContent;").await;
    assert!(problem.as_str().unwrap_or("").contains("required to reject"), "{problem}");

    let reason = b.client.find(Locator::Css("form.approval input[name=reason]")).await.unwrap();
    reason.send_keys("release notes checked").await.unwrap();
    b.client.find(Locator::Css("form.approval button.approve")).await.unwrap().click().await.unwrap();
    // The page follows the instance live, so it may redraw without the form right after;
    // the ledger is what tells.
    env.wait_terminals(1, MINUTE).await;
    assert!(crate::approvals::marker_exists(&env), "the approved tool ran");
    let answers = env.artifacts_of(StructuralType::Answer).await;
    assert_eq!(answers[0].answered_by.as_deref(), Some("Ada Console"));
    let decided: serde_json::Value = serde_json::from_str(&answers[0].payload).unwrap();
    assert_eq!(decided, serde_json::json!({"decision": "approve", "reason": "release notes checked"}));
    b.client.clone().close().await.unwrap();
    env.down();
}

/// A human review from the console: the inbox card links the Draft to review and its hash, and
/// the decision form (decision, comments) approves it; the workflow moves on to its next phase
/// and the Review artifact is produced by the signed-in reviewer.
#[tokio::test(flavor = "multi_thread")]
async fn a_human_review_is_approved_in_the_console_and_the_workflow_moves_on() {
    use crate::reviews::{PUBLISHER, WRITER, reviewed_yml, wait_for_review};
    let yml = reviewed_yml(r#"["Ada Console"]"#);
    let mut env = Env::new(&yml, &[("writer.sh", WRITER), ("publisher.sh", PUBLISHER)]).await;
    env.up();
    env.forage("Draft the supplier contract");
    let review = wait_for_review(&env);
    let qid = review["id"].as_str().unwrap().to_owned();
    let hash = review["review"]["target"]["hash"].as_str().unwrap().to_owned();
    let (_console, url) = start_console(&env);
    let base = url.split("/?token=").next().unwrap().to_owned();
    let b = Browser::start().await;
    b.client.goto(&url).await.unwrap();
    b.client.goto(&format!("{base}/questions?mine=1")).await.unwrap();
    let card = format!(r#"article[data-question-id="{qid}"]"#);
    b.client.wait().for_element(Locator::Css(&format!("{card} form.structured"))).await.unwrap();
    let shown = b
        .js(&format!(
            r#"const c = document.querySelector('{card}');
               return [c.querySelector('a.review-target').textContent.startsWith('Draft '), c.querySelector('p.review-link code.hash').textContent,
                       Array.from(c.querySelectorAll('select[name=decision] option')).map(o => o.value).filter(v => v),
                       !!c.querySelector('[name=comments]')];"#,
            card = card.replace('\'', "\\'")
        ))
        .await;
    assert_eq!(shown, serde_json::json!([true, hash, ["approve", "changes"], true]));
    b.client
        .find(Locator::Css(&format!("{card} select[name=decision] option[value=approve]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.client
        .find(Locator::Css(&format!("{card} [name=comments]")))
        .await
        .unwrap()
        .send_keys("clause 4 reads well")
        .await
        .unwrap();
    b.js(&format!("document.querySelector('{}').scrollIntoView(); return 0;", card.replace('\'', "\\'"))).await;
    b.shot("console-review").await;
    b.client.find(Locator::Css(&format!("{card} button[type=submit]"))).await.unwrap().click().await.unwrap();
    let artifacts = env.wait_terminals(1, MINUTE).await;
    assert!(artifacts.iter().any(|a| a.structural_type == StructuralType::Terminal && a.payload == "published"));
    let reviews = env.artifacts_of(StructuralType::Review).await;
    assert_eq!(reviews.len(), 1);
    assert_eq!((reviews[0].produced_by_role.as_str(), reviews[0].is_approval()), ("human:Ada Console", true));
    b.client.clone().close().await.unwrap();
    env.down();
}

const OPERATOR_TOKEN: &str = "e2e-operator-token-0123456789abcdef";
const ANSWERER_TOKEN: &str = "e2e-answerer-token-0123456789abcdef";

/// A tool that says it started (the marker file), then runs for five minutes.
const LONG_TOOL: &str = r#"#!/usr/bin/env bash
touch "$MARK_FILE"
sleep 300
echo '{"structural_type": "Terminal", "artifact_type": "Done", "artifact_payload": "too late"}'
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_cancels_a_running_workflow_from_its_page_and_an_answerer_gets_403() {
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("started");
    let yml = format!(
        r#"
version: "1.0"
orchestrator: {{bid_timeout: 10s}}
agents:
  Worker:
    command: ["./long.sh"]
    bidding_strategy: exclusive
    timeout: 10m
    environment: ["MARK_FILE={}"]
"#,
        mark.display()
    );
    let mut env = Env::new(&yml, &[("long.sh", LONG_TOOL)]).await;
    env.up();
    let goal = env.forage("Run for a long time");
    env.eventually("the tool started", async || mark.exists()).await;
    let users = marks.path().join("users.txt");
    std::fs::write(
        &users,
        format!("{OPERATOR_TOKEN} Olga Operator role=operator groups=oncall\n{ANSWERER_TOKEN} Ada Answerer\n"),
    )
    .unwrap();
    let (_console, base) = start_console_with_users(&env, &users);
    let page = format!("{base}/instances/{}/workflows/{goal}", env.name);
    let api = format!("/api/v1/instances/{}/workflows/{goal}/cancel", env.name);
    let b = Browser::start().await;

    // The answerer: the page offers no action, and the request the button would send is refused.
    b.client.goto(&format!("{page}?token={ANSWERER_TOKEN}")).await.unwrap();
    b.client.wait().for_element(Locator::Css("svg#graph")).await.unwrap();
    let state = b.client.find(Locator::Css("h1 .state")).await.unwrap().text().await.unwrap();
    assert_eq!(state, "running");
    let note = b.client.find(Locator::Css(".actions-note")).await.unwrap().text().await.unwrap();
    assert!(note.contains("need the role operator"), "{note}");
    assert_eq!(b.js("return document.querySelectorAll('section.actions button').length;").await, 0);
    let refused = b
        .js(&format!(
            r#"return fetch('{api}', {{method: 'POST', credentials: 'same-origin',
                 headers: {{'content-type': 'application/json',
                            'x-sett-csrf': document.querySelector('meta[name="sett-csrf"]').content}},
                 body: JSON.stringify({{reason: 'not mine to cancel'}})}})
               .then(r => r.json().then(b => [r.status, b.error]));"#
        ))
        .await;
    assert_eq!(refused[0], 403, "{refused}");
    let msg = refused[1].as_str().unwrap();
    assert!(msg.contains("needs the role 'operator'") && msg.contains("'answerer'"), "{msg}");
    assert!(env.store.cancellation(&goal).await.unwrap().is_none(), "the answerer cancelled nothing");

    // The operator: Cancel, with a reason, from the page; the page follows to Cancelled.
    b.client.goto(&format!("{page}?token={OPERATOR_TOKEN}")).await.unwrap();
    let button =
        b.client.wait().for_element(Locator::Css(r#"section.actions button[data-action="cancel"]"#)).await.unwrap();
    assert_eq!(button.attr("disabled").await.unwrap(), None, "Cancel is enabled while it runs");
    b.client.wait().for_element(Locator::Css("#live-state.live-on")).await.expect("the page follows the event stream");
    b.client.find(Locator::Id("action-reason")).await.unwrap().send_keys("wrong goal").await.unwrap();
    b.shot("console-workflow-actions").await;
    button.click().await.unwrap();
    b.client
        .wait()
        .for_element(Locator::Css("h1 .state.cancelled"))
        .await
        .expect("the page shows the workflow cancelled without a reload");
    let by = b.client.find(Locator::Css(".cancelled-by")).await.unwrap().text().await.unwrap();
    assert!(by.contains("Cancelled by Olga Operator") && by.contains("wrong goal"), "{by}");
    let disabled =
        b.js(r#"return document.querySelector('section.actions button[data-action="cancel"]').disabled;"#).await;
    assert_eq!(disabled, true, "nothing is left to cancel");

    // The ledger: one cancellation, by the operator the token names, with the reason.
    let record = env.store.cancellation(&goal).await.unwrap().expect("the workflow is cancelled");
    assert_eq!((record.operator.as_str(), record.reason.as_deref()), ("Olga Operator", Some("wrong goal")));
    let cancelled = env.events_of(EventKind::WorkflowCancelled).await;
    assert_eq!(cancelled.len(), 1);
    let EventData::WorkflowCancelled(c) = &cancelled[0].data else { unreachable!("events_of filters by kind") };
    assert_eq!((c.goal_id, c.operator.as_str(), c.reason.as_deref()), (goal, "Olga Operator", Some("wrong goal")));
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "sett verify after the console's cancel: {}", sett_e2e::text(&out.stdout));
    b.client.clone().close().await.unwrap();
    env.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_forks_from_a_draft_on_the_workflow_page_and_the_branch_runs_to_its_terminal() {
    let mut env = Env::new(DRAFTING_YML, &[("writer.sh", DRAFT_WRITER), ("finisher.sh", DRAFT_FINISHER)]).await;
    env.up();
    let goal = env.forage("the plan");
    let first = env.wait_terminals(1, MINUTE).await;
    let original = first.iter().find(|a| a.structural_type == StructuralType::Terminal).unwrap().clone();
    let draft = first.iter().find(|a| a.artifact_type == "Draft").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.txt");
    std::fs::write(&users, format!("{OPERATOR_TOKEN} Olga Operator role=operator\n{ANSWERER_TOKEN} Ada Answerer\n"))
        .unwrap();
    let (_console, base) = start_console_with_users(&env, &users);
    let b = Browser::start().await;
    b.client.goto(&format!("{base}/instances/{}/workflows/{goal}?token={OPERATOR_TOKEN}", env.name)).await.unwrap();
    b.client.wait().for_element(Locator::Css("#live-state.live-on")).await.expect("the page follows the event stream");
    let state = b.client.find(Locator::Css("h1 .state")).await.unwrap().text().await.unwrap();
    assert_eq!(state, "complete");

    // "Fork from here" on the draft: opening it fills in the draft's payload; type a new one.
    let row = format!(r#"tr[data-artifact-id="{}"]"#, draft.id);
    b.client.find(Locator::Css(&format!("{row} details.fork summary"))).await.unwrap().click().await.unwrap();
    b.client
        .wait()
        .for_element(Locator::Css(&format!(r#"{row} form.fork[data-loaded="1"]"#)))
        .await
        .expect("the form is filled with the draft's payload");
    let text = b.client.find(Locator::Css(&format!("{row} form.fork textarea"))).await.unwrap();
    assert_eq!(text.prop("value").await.unwrap().as_deref(), Some(draft.payload.as_str()));
    text.clear().await.unwrap();
    text.send_keys("a better draft").await.unwrap();
    b.client
        .find(Locator::Css(&format!("{row} form.fork input[name=reason]")))
        .await
        .unwrap()
        .send_keys("try it shorter")
        .await
        .unwrap();
    b.js(&format!(r#"document.querySelector('{row} form.fork').scrollIntoView({{block: "center"}}); return 1;"#)).await;
    b.shot("console-workflow-fork").await;
    b.client.find(Locator::Css(&format!("{row} form.fork button"))).await.unwrap().click().await.unwrap();
    let done = format!(r#"{row} form.fork output.result.ok"#);
    b.client.wait().for_element(Locator::Css(&done)).await.expect("the fork is confirmed in the page");
    // Read in the page: a live refresh may replace the element meanwhile (the result is kept).
    let said = b.js(&format!(r#"return document.querySelector('{done}').textContent;"#)).await;
    let said = said.as_str().unwrap_or_default();
    assert!(said.contains("Forked as Olga Operator") && said.contains("(v2)"), "{said}");

    // The branch runs to its own Terminal on the new version; the original stays.
    let all = env
        .wait_for(MINUTE, "the branch's Terminal", |a| {
            a.iter().filter(|a| a.structural_type == StructuralType::Terminal).count() == 2
        })
        .await;
    let fork = all.iter().find(|a| a.forked_from.is_some()).expect("the forked version").clone();
    assert_eq!((fork.forked_from, fork.logical_id, fork.version), (Some(draft.id), draft.logical_id, 2));
    assert_eq!((fork.payload.as_str(), fork.produced_by_role.as_str()), ("a better draft", "human:Olga Operator"));
    let branch_end = all.iter().find(|a| a.structural_type == StructuralType::Terminal && a.id != original.id).unwrap();
    assert_eq!(branch_end.payload, "final: a better draft");
    assert_eq!(branch_end.source_artifacts, vec![fork.id]);
    assert_eq!(env.store.get_artifact(&original.id).await.unwrap().unwrap(), original, "the original stays");
    let forks = env.events_of(EventKind::ArtifactForked).await;
    assert_eq!(forks.len(), 1);
    let EventData::ArtifactForked(f) = &forks[0].data else { unreachable!("events_of filters by kind") };
    assert_eq!((f.artifact_id, f.forked_from, f.goal_id), (fork.id, draft.id, goal));
    assert_eq!((f.operator.as_str(), f.reason.as_deref()), ("Olga Operator", Some("try it shorter")));

    // The page follows: the branch is listed, complete, and the new version is marked forked.
    let branch = format!(r#"li.branch[data-branch-root="{}"] .state.complete"#, fork.id);
    b.client.wait().for_element(Locator::Css(&branch)).await.expect("the page lists the branch, complete");
    let marked = format!(r#"tr[data-artifact-id="{}"] .forked-from"#, fork.id);
    b.client.wait().for_element(Locator::Css(&marked)).await.expect("the new version is marked forked");
    b.js("window.scrollTo(0, 0); return 1;").await;
    b.shot("console-workflow-branch").await;
    let out = env.run(&["verify"]);
    assert!(out.status.success(), "sett verify after the console's fork: {}", sett_e2e::text(&out.stdout));
    b.client.clone().close().await.unwrap();
    env.down();
}
