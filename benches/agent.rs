//! Node agent benchmark (`make bench`): a private etcd, one `pacer agent` process and
//! heartbeat:Dummy resources. Prints, over several rounds:
//! - plan written → resource reported Started in etcd (one resource, and a batch);
//! - resource broken behind the agent's back → failure visible in etcd, for monitor
//!   intervals of 1 s and 5 s (the expected figure is about half the interval plus
//!   the agent's run time);
//! - the etcd writes an idle node makes (revision growth per second).
//!
//! Figures only; it asserts nothing but that each step happened.
//! `PACER_BENCH_ROUNDS` sets the rounds (default 10).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pacer::api::manifest::{Source, load};
use pacer::api::records::{NodeHeartbeat, ObservedRole, ResourceStatus};
use pacer::daemon::decide_once;
use pacer::local::etcd::EtcdServer;
use pacer::store::Store;
use pacer::store::apply::{ApplyOutcome, ApplyRequest, apply};

const PREFIX: &str = "/pacer";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        // It stops its resources on SIGTERM.
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(20));
    }
}

async fn apply_yaml(store: &Store, yaml: &str) {
    let loaded = load(&[Source { name: "bench.yaml".into(), text: yaml.to_string() }]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    match apply(store, &ApplyRequest { loaded, ..ApplyRequest::default() }).await.expect("apply") {
        ApplyOutcome::Planned(_) => {}
        ApplyOutcome::Invalid(diagnostics) => panic!("refused: {diagnostics:?}"),
    }
}

fn resource(name: &str, state: &Path, interval: &str, target_role: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  params: {{state: {}}}\n  operations: [{{name: monitor, interval: {interval}}}]\n  meta: {{targetRole: {target_role}}}\n",
        state.display()
    )
}

async fn roles(store: &Store) -> Vec<(String, ObservedRole)> {
    let (_, records) = store.read_records::<ResourceStatus>(&store.keys().node_statuses_prefix("n1")).await.expect("read statuses");
    records.into_iter().map(|(_, status, _)| (status.id, status.role)).collect()
}

/// Polls every 5 ms until every one of `names` has `role`; returns the time taken.
async fn wait_roles(store: &Store, names: &[String], role: ObservedRole) -> Duration {
    let started = Instant::now();
    loop {
        let current = roles(store).await;
        if names.iter().all(|name| current.iter().any(|(id, found)| id == name && *found == role)) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {names:?} {role:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let p50 = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    format!("{label:<58} n={:<3} min {:>7.1} ms  p50 {:>7.1} ms  max {:>7.1} ms", samples.len(), millis(samples[0]), millis(p50), millis(max))
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdServer::start(&dir.path().join("etcd"), &[]).expect("start etcd (scripts/install-deps)");
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
    // The benchmark decides as the scheduler leader would: it holds the election.
    let (guard, _) =
        store.campaign(&serde_json::json!({"identity": "bench", "since": 0}), Duration::from_secs(3600)).await.expect("campaign").expect("no other scheduler");
    apply_yaml(&store, "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n").await;
    let state_dir = dir.path().join("n1");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let state = |name: &str| -> PathBuf { dir.path().join(format!("{name}.state")) };
    let batch: Vec<String> = (0..50).map(|index| format!("batch{index}")).collect();
    let mut manifest = resource("one", &state("one"), "1s", "Stopped") + &resource("slow", &state("slow"), "5s", "Stopped");
    for name in &batch {
        manifest.push_str(&resource(name, &state(name), "10s", "Stopped"));
    }
    apply_yaml(&store, &manifest).await;
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["agent", "--node", "n1", "--lease-ttl", "5", "--state-dir"])
            .arg(&state_dir)
            .env("PACER_ETCD", etcd.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pacer agent"),
    );
    let started = Instant::now();
    loop {
        let (_, beats) = store.read_records::<NodeHeartbeat>(&store.keys().node_lease("n1")).await.expect("heartbeat");
        if beats.iter().any(|(_, beat, _)| beat.probed) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the agent did not probe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("agent started -> {} resources probed and reported: {:.1} ms", batch.len() + 2, started.elapsed().as_secs_f64() * 1000.0);
    decide_once(&store, &guard).await.expect("decide");

    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut fail_1s = Vec::new();
    let mut fail_5s = Vec::new();
    for _ in 0..rounds {
        // One resource: Stopped -> Started.
        apply_yaml(&store, &resource("one", &state("one"), "1s", "Started")).await;
        decide_once(&store, &guard).await.expect("decide");
        one.push(wait_roles(&store, &["one".to_string()], ObservedRole::Started).await);
        // Its monitor (1 s) notices it broke.
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::remove_file(state("one")).expect("break one");
        fail_1s.push(wait_roles(&store, &["one".to_string()], ObservedRole::Failed).await);
        apply_yaml(&store, &resource("one", &state("one"), "1s", "Stopped")).await;
        decide_once(&store, &guard).await.expect("decide");
        wait_roles(&store, &["one".to_string()], ObservedRole::Stopped).await;
    }
    for _ in 0..rounds.min(5) {
        apply_yaml(&store, &resource("slow", &state("slow"), "5s", "Started")).await;
        decide_once(&store, &guard).await.expect("decide");
        wait_roles(&store, &["slow".to_string()], ObservedRole::Started).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::remove_file(state("slow")).expect("break slow");
        fail_5s.push(wait_roles(&store, &["slow".to_string()], ObservedRole::Failed).await);
        apply_yaml(&store, &resource("slow", &state("slow"), "5s", "Stopped")).await;
        decide_once(&store, &guard).await.expect("decide");
        wait_roles(&store, &["slow".to_string()], ObservedRole::Stopped).await;
    }
    for _ in 0..rounds.min(5) {
        let started_yaml: String = batch.iter().map(|name| resource(name, &state(name), "10s", "Started")).collect();
        apply_yaml(&store, &started_yaml).await;
        decide_once(&store, &guard).await.expect("decide");
        many.push(wait_roles(&store, &batch, ObservedRole::Started).await);
        let stopped_yaml: String = batch.iter().map(|name| resource(name, &state(name), "10s", "Stopped")).collect();
        apply_yaml(&store, &stopped_yaml).await;
        decide_once(&store, &guard).await.expect("decide");
        wait_roles(&store, &batch, ObservedRole::Stopped).await;
    }
    // Idle: the batch running with 10 s monitors, nothing changing.
    let started_yaml: String = batch.iter().map(|name| resource(name, &state(name), "10s", "Started")).collect();
    apply_yaml(&store, &started_yaml).await;
    decide_once(&store, &guard).await.expect("decide");
    wait_roles(&store, &batch, ObservedRole::Started).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let revision = |store: Store| async move { store.current_revision().await.expect("status") };
    let before = revision(store.clone()).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after = revision(store.clone()).await;

    let lines = [
        summary("plan written -> 1 resource Started in etcd", one),
        summary("plan written -> 50 resources Started in etcd", many),
        summary("resource broken -> failure in etcd (monitor every 1 s)", fail_1s),
        summary("resource broken -> failure in etcd (monitor every 5 s)", fail_5s),
        format!("idle node, 50 resources monitored every 10 s: {} etcd revisions in 20 s", after - before),
    ];
    let report = lines.join("\n");
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-agent.txt", format!("{report}\n"));
}
