//! Retention and archival (docs/backup-recovery.md, "Retention and archive"): `sett archive`
//! moves finished workflows out of Redis into segments and trims the stream behind them;
//! `sett verify` proves archive + stream as one chain; `sett restore` brings a workflow back as
//! it was; a lagging consumer group loses nothing; SIGKILL mid-pass loses and duplicates
//! nothing; the S3 path works against a real S3-compatible server (moto).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sett_core::event::EventKind;
use sett_core::{Artifact, ArtifactId, StructuralType};
use sett_e2e::{ASKER_YML, Env, KillOnDrop, asker_script, text};
use sett_store::{GroupStart, new_artifact_id, now_ms};

const MINUTE: Duration = Duration::from_secs(60);

/// The one-agent asker team with retention whose own pass never runs during a test (every 1h):
/// the tests run `sett archive --now`.
fn asker_with_retention(archive: &str) -> String {
    format!("{ASKER_YML}retention: {{archive_after: 0, every: 1h, archive: {archive}}}\n")
}

fn archive_dir(env: &Env) -> PathBuf {
    env.path().join(".sett").join("archive").join(env.name.as_str())
}

/// Every `sett export` line by key (the stream and the archive's own keys left out: those are
/// what archiving changes by design).
fn export_lines(env: &Env) -> BTreeMap<String, String> {
    env.ok(&["export"])
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let key = v["key"].as_str()?.to_owned();
            (key != "events" && !key.starts_with("archive:")).then(|| (key, l.to_owned()))
        })
        .collect()
}

/// The first `seq` still in the stream.
async fn first_live_seq(env: &Env) -> Option<u64> {
    let raw = env.store.raw_events_after(None, 1).await.unwrap();
    raw.first().and_then(|(_, f)| f.get("seq")).and_then(|s| s.parse().ok())
}

/// The id of the `n`th question asked (1-based): the workflows here run one after the other.
async fn nth_question(env: &Env, n: usize) -> String {
    let evs = env.wait_events(MINUTE, "the question", n, |e| e.kind() == EventKind::QuestionAsked).await;
    evs[n - 1].data.question_id().expect("question id").to_string()
}

/// Waits until the claims of `goals` have completed and the orchestrator has carried out every
/// follow-up (the outbox is empty): the ended workflows have nothing open.
async fn settled(env: &Env, goals: &[ArtifactId]) {
    env.wait_events(MINUTE, "claims to complete", goals.len(), |e| {
        e.kind() == EventKind::ClaimCompleted && e.data.artifact_id().is_some_and(|a| goals.contains(&a))
    })
    .await;
    env.eventually("the outbox is empty", async || env.store.execution_and_outbox_fields().await.unwrap().1.is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_then_restore_gives_back_the_records_and_verify_spans_archive_and_stream() {
    let yml = asker_with_retention("{dir: .sett/archive}");
    let mut env = Env::new(&yml, &[("asker.sh", &asker_script("Which port?"))]).await;
    env.up();
    let first = env.forage("first");
    let q1 = nth_question(&env, 1).await;
    env.ok(&["answer", &q1, "8080"]);
    let second = env.forage("second");
    let q2 = nth_question(&env, 2).await;
    env.ok(&["answer", &q2, "9090"]);
    let done = env.wait_terminals(2, MINUTE).await;
    let first_done = done
        .iter()
        .find(|a| a.structural_type == StructuralType::Terminal && a.source_artifacts.contains(&first))
        .unwrap()
        .id;
    // A third workflow waits on its question: never archived, whatever its age.
    let waiting = env.forage("waiting");
    let q3 = nth_question(&env, 3).await;
    // Each goal's claim has completed (the orchestrator handled the Terminal) before archiving.
    settled(&env, &[first, second]).await;
    let before = export_lines(&env);

    let out = env.ok(&["archive", "--now"]);
    assert!(out.contains("Archived 2 workflow(s)"), "{out}");
    assert!(!env.store.artifact_exists(&first).await.unwrap(), "archived workflows leave Redis");
    assert!(!env.store.artifact_exists(&second).await.unwrap());
    assert!(env.store.artifact_exists(&waiting).await.unwrap(), "a workflow waiting on a question stays");
    assert!(env.store.artifact_exists(&ArtifactId::parse(&q3).unwrap()).await.unwrap());
    let files: Vec<_> = std::fs::read_dir(archive_dir(&env)).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(files.len(), 1, "one segment: {files:?}");

    // The stream is trimmed once the groups have delivered and acknowledged what was archived.
    env.eventually("an archiving pass trims the stream", async || {
        let first = first_live_seq(&env).await;
        if first.is_none_or(|s| s == 1) {
            env.ok(&["archive", "--now"]);
            return Err(first);
        }
        Ok(())
    })
    .await;

    // Verify walks archive + stream as one chain.
    let v = env.ok(&["verify"]);
    assert!(v.contains("is intact") && v.contains("From the archive: 1 segment(s)"), "{v}");
    // Reads find archived work, and say so.
    let shown = env.ok(&["hoard", &first_done.to_string()]);
    assert!(shown.contains("from the archive") && shown.contains("8080"), "{shown}");
    let status = env.ok(&["archive"]);
    assert!(status.contains("Segments:   1") && status.contains("2 workflows"), "{status}");
    reads_find_archived_work(&env, first, second, &q1).await;
    let st: serde_json::Value = serde_json::from_str(&env.ok(&["status", "-o", "json"])).unwrap();
    assert_eq!(st["archive"]["workflows"], 2, "{st}");

    // The waiting workflow goes on after archiving, then is archived itself.
    env.ok(&["answer", &q3, "7070"]);
    settled(&env, &[waiting]).await;
    let out = env.ok(&["archive", "--now"]);
    assert!(out.contains("Archived 1 workflow(s)"), "{out}");
    assert!(env.ok(&["verify"]).contains("is intact"));

    // Restore: the records come back byte for byte (export lines identical to before).
    let out = env.ok(&["restore", &first.to_string()]);
    assert!(out.contains("Restored workflow"), "{out}");
    let after = export_lines(&env);
    let restored: Vec<&String> =
        after.keys().filter(|k| k.starts_with("artifact:") || k.starts_with("claim:")).collect();
    assert!(restored.iter().any(|k| **k == format!("artifact:{first}")), "{restored:?}");
    for key in &restored {
        assert_eq!(after[*key], before[*key], "{key} restored differently");
    }
    assert!(!after.contains_key(&format!("artifact:{second}")), "only the one workflow comes back");
    let answers: serde_json::Value = serde_json::from_str(&after["questions:answers"]).unwrap();
    let answers_before: serde_json::Value = serde_json::from_str(&before["questions:answers"]).unwrap();
    assert_eq!(answers["value"][&q1], answers_before["value"][&q1]);
    assert!(env.ok(&["verify"]).contains("is intact"), "verify after a restore");
    // A restored workflow stays in Redis.
    env.ok(&["archive", "--now"]);
    assert!(env.store.artifact_exists(&first).await.unwrap());
    env.down();

    // One changed byte of a segment is a break.
    let seg = std::fs::read_dir(archive_dir(&env)).unwrap().flatten().map(|e| e.path()).min().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&seg, bytes).unwrap();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("BROKEN at archive segment seg-00000001"), "{}", text(&out.stdout));
}

const CONSOLE_TOKEN: &str = "e2e-archive-console-token-0123456789";

/// `GET path` from the console at `base` with the token: (status, body).
fn console_get(base: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {CONSOLE_TOKEN}")])
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    let all = text(&out.stdout);
    let (body, code) = all.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// `sett watch --since`, `sett export` (+ `sett verify --file`) and the console's workflow and
/// artifact pages find the archived workflows `first` and `second` (its question `q1` was
/// answered 8080) and say they come from the archive; a changed export line is still caught.
async fn reads_find_archived_work(env: &Env, first: ArtifactId, second: ArtifactId, q1: &str) {
    // watch --since: the archived events first (the stream was trimmed of them), then the live ones.
    let out = env.run(&["watch", "--since", "1h", "--timeout", "1s", "-o", "jsonl"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("come from the archive"), "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<(u64, u64)> =
        events.iter().map(|e| sett_store::parse_stream_id(e["id"].as_str().unwrap()).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, no duplicate: {ids:?}");
    // Every event of the chain (archive + stream) once: as many as verify counts.
    let verified: serde_json::Value = serde_json::from_str(&env.ok(&["verify", "-o", "json"])).unwrap();
    assert_eq!(events.len() as u64, verified["report"]["events"].as_u64().unwrap(), "{stdout}");
    assert!(first_live_seq(env).await.is_some_and(|s| s > 1), "the stream was trimmed");
    assert!(stdout.contains(&first.to_string()) && stdout.contains(q1), "{stdout}");

    // export: says the archived part is not in the file; verify --file checks archive + file.
    let file = env.path().join("with-archive.jsonl");
    let f = file.to_str().unwrap();
    let out = env.run(&["export", "--file", f]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("From the archive: 2 workflow(s)"), "{}", text(&out.stderr));
    let v = env.ok(&["verify", "--file", f, "--name", env.name.as_str()]);
    assert!(
        v.contains("is intact") && v.contains("with its archive") && v.contains("From the archive: 1 segment(s)"),
        "{v}"
    );
    let out = env.sett(&["verify", "--file", f]).env_remove("SETT_INSTANCE").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "without --name the archive cannot be found");
    assert!(text(&out.stderr).contains("pass --name NAME"), "{}", text(&out.stderr));
    // One changed byte of a live record in the file is still a break.
    let edited = std::fs::read_to_string(&file).unwrap().replacen(
        "\"kind\":\"question_asked\"",
        "\"kind\":\"question_askex\"",
        1,
    );
    std::fs::write(&file, edited).unwrap();
    let out = env.run(&["verify", "--file", f, "--name", env.name.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("content changed"), "{}", text(&out.stdout));

    // The console: the workflow and artifact pages of an archived workflow.
    let (_console, base) = env.console(CONSOLE_TOKEN);
    let name = env.name.as_str();
    let (code, page) = console_get(&base, &format!("/instances/{name}/workflows/{second}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("From the archive") && page.contains("seg-00000001"), "{page}");
    assert!(page.contains(&format!("/instances/{name}/artifacts/{second}")), "the graph links its artifacts");
    let (code, page) = console_get(&base, &format!("/instances/{name}/artifacts/{second}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("From the archive") && page.contains(&format!("sett restore {second}")), "{page}");
    let (code, api) = console_get(&base, &format!("/api/v1/instances/{name}/artifacts/{second}"));
    assert_eq!(code, 200, "{api}");
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["archive"]["segment"], "seg-00000001", "{api}");
    assert_eq!(api["archive"]["workflow"], second.to_string(), "{api}");
    let (code, _) = console_get(&base, &format!("/instances/{name}/workflows/{}", sett_store::new_artifact_id()));
    assert_eq!(code, 404, "neither live nor archived");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_consumer_group_keeps_every_event_until_it_has_read_it() {
    let yml = asker_with_retention("{dir: .sett/archive}");
    let env = Env::new(&yml, &[]).await;
    // A consumer that joined at the beginning and has read nothing yet.
    let mut lagger = env.store.group_consumer("lagger", "one", GroupStart::Beginning).await.unwrap();
    lagger.ensure_group().await.unwrap();
    let goals = direct_workflows(&env, 3).await;
    let total = env.store.event_count().await.unwrap();

    let out = env.ok(&["archive", "--now"]);
    assert!(out.contains("Archived 3 workflow(s)"), "{out}");
    assert!(out.contains("Consumer group 'lagger'"), "{out}");
    assert_eq!(env.store.event_count().await.unwrap(), total, "nothing trimmed ahead of the lagging group");
    for g in &goals {
        assert!(!env.store.artifact_exists(g).await.unwrap());
    }

    // The lagging group receives every event, in order, then acknowledges: now they go.
    let mut seqs = Vec::new();
    loop {
        let evs = lagger.read(100, Duration::from_millis(100)).await.unwrap();
        if evs.is_empty() {
            break;
        }
        let ids: Vec<String> = evs.iter().map(|e| e.id.clone()).collect();
        let raw = env.store.raw_events_by_id(&ids).await.unwrap();
        seqs.extend(raw.into_iter().map(|f| f.unwrap()["seq"].parse::<u64>().unwrap()));
        lagger.ack(&ids).await.unwrap();
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "every event, once, in order");
    env.ok(&["archive", "--now"]);
    assert_eq!(env.store.event_count().await.unwrap(), 0, "trimmed once delivered and acknowledged");
    assert!(env.ok(&["verify"]).contains("is intact"));
    lagger.quit().await;
}

/// An artifact written straight to the store, derived from `sources`, as `edit` leaves it.
async fn write(
    env: &Env,
    st: StructuralType,
    payload: String,
    sources: &[ArtifactId],
    edit: impl FnOnce(&mut Artifact),
) -> Artifact {
    let mut a = Artifact::new_root(new_artifact_id(), st, format!("{st:?}"), payload, "tester", now_ms());
    a.source_artifacts = sources.to_vec();
    edit(&mut a);
    env.store.create_artifact(&a).await.unwrap();
    a
}

/// `n` finished workflows written straight to the store (a goal and its Terminal), no daemons.
async fn direct_workflows(env: &Env, n: usize) -> Vec<ArtifactId> {
    let mut goals = Vec::new();
    for i in 0..n {
        let goal = write(env, StructuralType::Standard, format!("goal {i}"), &[], |_| {}).await;
        write(env, StructuralType::Terminal, format!("done {i}"), &[goal.id], |_| {}).await;
        goals.push(goal.id);
    }
    goals
}

/// Where a round's kill lands: observed in Redis and on disk, not timed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    AtStart,
    LockTaken,
    Planned,
    SegmentWritten,
    Recorded,
    SomeDeleted,
}

async fn reached(env: &Env, point: KillPoint, goals: &[ArtifactId]) -> bool {
    let pending = env.store.archive_pending().await.unwrap();
    match point {
        KillPoint::AtStart => true,
        KillPoint::LockTaken => env.store.archive_state().await.unwrap().contains_key("location"),
        KillPoint::Planned => pending.is_some(),
        KillPoint::SegmentWritten => {
            std::fs::read_dir(archive_dir(env))
                .is_ok_and(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.')))
                && pending.is_some()
        }
        KillPoint::Recorded => pending.is_some_and(|p| p.contains("\"recorded\"")),
        KillPoint::SomeDeleted => {
            let exist = env.store.artifacts_exist(goals).await.unwrap();
            exist.iter().any(|e| !e)
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_any_point_of_a_pass_loses_and_duplicates_nothing() {
    let yml = asker_with_retention("{dir: .sett/archive}");
    let env = Env::new(&yml, &[]).await;
    let points = [
        KillPoint::AtStart,
        KillPoint::LockTaken,
        KillPoint::Planned,
        KillPoint::SegmentWritten,
        KillPoint::Recorded,
        KillPoint::SomeDeleted,
    ];
    let mut all_goals: Vec<ArtifactId> = Vec::new();
    for round in 0..12 {
        let goals = direct_workflows(&env, 30).await;
        all_goals.extend(&goals);
        let point = points[round % points.len()];
        let child = env.sett(&["archive", "--now"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut child = KillOnDrop(child);
        let until = Instant::now() + MINUTE;
        loop {
            if reached(&env, point, &goals).await || child.0.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < until, "round {round}: {point:?} never reached");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _ = child.0.kill();
        let _ = child.0.wait();
        // The next pass finishes the job.
        let out = env.ok(&["archive", "--now"]);
        // State: every workflow is in exactly one place, once.
        let manifests = sett_ops::archive::manifests(&env.store).await.unwrap();
        let mut archived: BTreeMap<String, usize> = BTreeMap::new();
        for m in &manifests {
            // Redis records the count and the goal range; the goals are in the segment's header.
            let bytes = std::fs::read(archive_dir(&env).join(format!("{}.jsonl.zst", m.segment))).unwrap();
            let header = sett_ops::archive::segment::decode(&bytes).unwrap().header;
            assert!(m.workflows.is_empty(), "round {round}: {} records its goal list in Redis", m.segment);
            assert_eq!(m.workflow_count, header.workflows.len() as u64, "round {round}: {}", m.segment);
            for w in &header.workflows {
                assert!(m.may_hold(w), "round {round}: {w} outside {}'s goal range", m.segment);
                *archived.entry(w.clone()).or_default() += 1;
            }
        }
        let live = env.store.artifacts_exist(&all_goals).await.unwrap();
        for (g, is_live) in all_goals.iter().zip(live) {
            let copies = archived.get(&g.to_string()).copied().unwrap_or(0);
            assert!(!is_live && copies == 1, "round {round} ({point:?}): {g} live={is_live} archived {copies}×\n{out}");
        }
        // No segment the manifests do not name (an interrupted pass's leftovers are removed).
        let names: BTreeSet<String> = manifests.iter().map(|m| format!("{}.jsonl.zst", m.segment)).collect();
        let files: BTreeSet<String> = std::fs::read_dir(archive_dir(&env))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(files, names, "round {round} ({point:?})");
        let v = env.run(&["verify"]);
        assert!(v.status.success(), "round {round} ({point:?}): {}", text(&v.stdout));
    }
    let s = sett_ops::archive::summary(&env.store).await.unwrap();
    assert_eq!(s.workflows, all_goals.len() as u64);
    assert_eq!(s.events, 2 * all_goals.len() as u64, "every event archived once");
}

/// A rework's later version names its thread in the key registry (`index:keys`, so `sett
/// destroy` reaches it); archiving the workflow empties that thread, and the registry entry
/// leaves in the same step: a bounded Redis keeps no registry entry per archived rework. A
/// thread that still holds a live version keeps its entry.
#[tokio::test(flavor = "multi_thread")]
async fn archiving_drops_the_key_registry_entries_of_what_it_emptied() {
    let yml = asker_with_retention("{dir: .sett/archive}");
    let env = Env::new(&yml, &[]).await;
    let registry = env.store.keys().key_registry();
    let members = || -> BTreeSet<String> {
        env.redis_cli(&["SMEMBERS", &registry]).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    };
    // Two workflows, each: goal → draft v1 → draft v2 (a later version: its thread joins the
    // registry); the first one ends (a Terminal), the second goes on.
    let mut threads = Vec::new();
    let mut goals = Vec::new();
    for i in 0..2 {
        let goal = write(&env, StructuralType::Standard, format!("goal {i}"), &[], |_| {}).await;
        let v1 = write(&env, StructuralType::Standard, "v1".into(), &[goal.id], |_| {}).await;
        let v2 = write(&env, StructuralType::Standard, "v2".into(), &[v1.id], |a| {
            a.logical_id = v1.logical_id;
            a.version = 2;
        })
        .await;
        if i == 0 {
            write(&env, StructuralType::Terminal, "done".into(), &[v2.id], |_| {}).await;
        }
        threads.push(format!("thread:{}", v1.logical_id));
        goals.push(goal.id);
    }
    let before = members();
    assert!(threads.iter().all(|t| before.contains(t)), "later versions register their thread: {before:?}");

    let out = env.ok(&["archive", "--now"]);
    assert!(out.contains("Archived 1 workflow(s)"), "{out}");
    assert!(!env.store.artifact_exists(&goals[0]).await.unwrap());
    assert!(env.store.artifact_exists(&goals[1]).await.unwrap(), "the workflow still running stays");
    let after = members();
    assert!(!after.contains(&threads[0]), "the archived rework's thread left the registry: {after:?}");
    assert!(after.contains(&threads[1]), "a live thread stays registered: {after:?}");
    assert_eq!(env.redis_cli(&["EXISTS", &env.store.keys().relative(&threads[0])]).trim(), "0");
    assert!(env.ok(&["verify"]).contains("is intact"));
}

/// The orchestrator's own passes (`every: 1s`) archive a finished workflow, and with
/// `max_share` a pass is followed by its rest: at a thousandth of the time, a pass of a
/// millisecond or more rests at least a second, so the next tick waits, and the wait is counted
/// in `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn the_orchestrators_passes_archive_by_themselves_and_rest_as_max_share_says() {
    // An agent that bids on nothing these workflows hold: they end by their Terminals alone.
    let yml = "version: \"1.0\"\nagents:\n  Idle:\n    command: [\"./asker.sh\"]\n    bidding_strategy: {type: exclusive, target_types: [\"NeverWritten\"]}\nretention: {archive_after: 0, every: 1s, max_share: 0.001}\n";
    let mut env = Env::new(yml, &[("asker.sh", &asker_script("Which port?"))]).await;
    let goals = direct_workflows(&env, 2).await;
    env.up();
    env.eventually("the orchestrator archived both workflows", async || {
        let mut gone = true;
        for g in &goals {
            gone &= !env.store.artifact_exists(g).await.unwrap();
        }
        gone
    })
    .await;
    let addr = env.addr_of("orchestrator").await.expect("the orchestrator's health address");
    env.eventually("a pass waited for its rest", async || {
        let (code, body) = sett_e2e::http_get(&addr, "/metrics").unwrap_or_default();
        code == 200
            && body.lines().any(|l| {
                // `sett_archive_rests_total{labels} N` or `sett_archive_rests_total N`.
                l.strip_prefix("sett_archive_rests_total").is_some_and(|rest| rest.starts_with(['{', ' ']))
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 0.0)
            })
    })
    .await;
    let st: serde_json::Value = serde_json::from_str(&env.ok(&["archive", "-o", "json"])).unwrap();
    assert_eq!(st["workflows"], 2, "{st}");
    assert!(env.ok(&["verify"]).contains("is intact"));
}

/// A moto S3 server on a free port, with a bucket; stopped on drop.
struct Moto {
    _child: KillOnDrop,
    url: String,
}

fn moto(bucket: &str) -> Moto {
    let port = sett_testkit::free_port();
    let child = Command::new("moto_server")
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
    let child = KillOnDrop(child);
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + MINUTE;
    loop {
        let made = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{url}/{bucket}")]).output().unwrap();
        if made.status.success() {
            break;
        }
        assert!(Instant::now() < until, "moto_server did not answer at {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { _child: child, url }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_works_in_an_s3_compatible_bucket() {
    let s3 = moto("sett-archive");
    let yml = asker_with_retention(&format!(
        "{{s3: {{bucket: sett-archive, prefix: 'prod/', endpoint: '{}', allow_http: true}}}}",
        s3.url
    ));
    let mut env = Env::new(&yml, &[]).await;
    env.env_vars.push(("AWS_ACCESS_KEY_ID".into(), "test".into()));
    env.env_vars.push(("AWS_SECRET_ACCESS_KEY".into(), "test".into()));
    let goals = direct_workflows(&env, 4).await;
    let out = env.ok(&["archive", "--now"]);
    assert!(out.contains("Archived 4 workflow(s)") && out.contains("s3://sett-archive/prod/"), "{out}");
    let listing = Command::new("curl").args(["-sf", &format!("{}/sett-archive?list-type=2", s3.url)]).output().unwrap();
    assert!(
        text(&listing.stdout).contains(&format!("prod/{}/seg-00000001.jsonl.zst", env.name.as_str())),
        "{}",
        text(&listing.stdout)
    );
    assert!(env.ok(&["verify"]).contains("is intact"));
    let out = env.ok(&["restore", &goals[0].to_string()]);
    assert!(out.contains("Restored workflow"), "{out}");
    assert!(env.store.artifact_exists(&goals[0]).await.unwrap());
    assert!(env.ok(&["verify"]).contains("is intact"));
    // An unreachable store fails the pass visibly and keeps the data in Redis.
    drop(s3);
    let kept = direct_workflows(&env, 1).await;
    let out = env.run(&["archive", "--now"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("archive store s3://sett-archive/prod/"), "{}", text(&out.stderr));
    assert!(env.store.artifact_exists(&kept[0]).await.unwrap(), "Redis keeps what could not be archived");
    let status = env.ok(&["archive"]);
    assert!(status.contains("FAILED"), "{status}");
    assert!(env.store.archive_pending().await.unwrap().is_some(), "the plan waits for the next pass");
}
