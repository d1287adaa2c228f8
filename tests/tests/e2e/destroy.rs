//! `sett destroy` after a real workflow (the demo team: a question answered by the operator, a
//! rejected review and its rework, a parallel checker, a publisher in ephemeral workers): every
//! key family the system created is removed, neighbours with the same name prefix are untouched.

use std::time::Duration;

use sett_core::InstanceName;
use sett_e2e::{Env, text};
use sett_store::Dump;

const MINUTE: Duration = Duration::from_secs(60);

async fn export(store: &sett_store::Store) -> Vec<Dump> {
    let mut v = Vec::new();
    store
        .export(|d| {
            v.push(d);
            Ok::<_, sett_store::StoreError>(())
        })
        .await
        .unwrap();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_after_a_full_workflow_leaves_nothing_and_spares_neighbours() {
    let mut env = Env::examples(true).await;
    env.up();
    env.forage("Build a to-do service");
    let out = env.ok(&["questions", "--wait", "--timeout", "60s", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let qid = listed[0]["id"].as_str().expect("a question").to_owned();
    env.ok(&["answer", &qid, "Use port 8080"]);
    env.wait_terminals(1, 2 * MINUTE).await;

    // Running: refused with the seed's message.
    let o = env.run(&["destroy", "--force"]);
    assert_eq!(o.status.code(), Some(1));
    let name = env.name.clone();
    assert!(
        text(&o.stderr).starts_with(&format!(
            "Error: Cannot destroy instance '{name}' - instance is still running\nRun 'sett down --name {name}' first"
        )),
        "{}",
        text(&o.stderr)
    );
    env.down();

    // Neighbours whose names share a prefix get a copy of the whole instance.
    let original = export(&env.store).await;
    let families: std::collections::BTreeSet<String> = original
        .iter()
        .map(|d| env.store.keys().family_of(&format!("{}{}", env.store.keys().prefix(), d.key)).to_owned())
        .collect();
    for f in ["artifact", "claim", "bids", "thread", "events", "index", "questions", "executions"] {
        assert!(families.contains(f), "the workflow created {f} keys: {families:?}");
    }
    let neighbours: Vec<InstanceName> = [format!("{name}-1"), format!("{name}b"), format!("{name}-b")]
        .iter()
        .map(|n| InstanceName::parse(n).unwrap())
        .collect();
    for n in &neighbours {
        let s = env.redis.instance(n);
        for d in &original {
            s.restore(d).await.unwrap();
        }
    }
    let counter = || {
        let o = std::process::Command::new("redis-cli")
            .args(["-u", &env.redis_url, "GET", "sett:instance_counter"])
            .output()
            .unwrap();
        text(&o.stdout)
    };
    let counter_before = counter();
    // Written only by Sett's own writers: the destroy enumerates its keys and, on this single
    // node, sweeps nothing, so the scans below prove the enumeration missed no key of a real
    // workflow.
    assert!(env.store.keys_indexed().await.unwrap());

    let o = env.run(&["destroy", "--force", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        original.len() as u64
    );
    assert_eq!(report["registry_entry_removed"], true);

    assert!(env.store.count_instance_keys().await.unwrap().is_empty());
    assert!(env.store.lock_holder().await.unwrap().is_none());
    let left = std::process::Command::new("redis-cli")
        .args(["-u", &env.redis_url, "--scan", "--pattern", &format!("sett:{{{name}}}:*")])
        .output()
        .unwrap();
    assert_eq!(text(&left.stdout).trim(), "", "a scan of sett:{{{name}}}:* finds nothing");
    assert!(env.redis.instance_record(&name).await.unwrap().is_none());
    for n in &neighbours {
        assert_eq!(export(&env.redis.instance(n)).await, original, "neighbour {n} untouched");
    }
    assert_eq!(counter(), counter_before, "sett:instance_counter untouched");
    let audit = env.redis.audit_records().await.unwrap();
    assert!(audit.iter().any(|(_, r)| r["instance"] == name.as_str() && r["operator"] == "test-operator"));
}
