//! `pacer why`, `pacer simulate --live`, `pacer diff --simulate` and `pacer history` on
//! a real local cluster (`pacer up --nodes 3`: a private etcd, a scheduler, three
//! agents running the witness agent): `why` names a ban made by a verb and a fail
//! count at migration-threshold (three failed starts); the simulations write nothing (etcd's revision is
//! unchanged); the latest decision replays to the same decision, and a tampered
//! record or input does not.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::LocalCluster;

use serde_json::Value;

const PREFIX: &str = common::LOCAL_PREFIX;

/// `pacer up --nodes 3` (`common::LocalCluster`), with the helpers these tests use.
struct Cluster(LocalCluster);

impl Cluster {
    fn start() -> Cluster {
        Cluster(LocalCluster::start(3, &[]))
    }

    fn pacer(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.0.pacer(args, stdin)
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.pacer(args, None);
        assert!(output.status.success(), "pacer {args:?}: {}{}", common::text(&output.stdout), common::text(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("pacer {args:?}: not JSON: {error}: {}", common::text(&output.stdout)))
    }

    fn running_on(&self, resource: &str) -> Option<String> {
        let view = self.json(&["status", "-o", "json"]);
        view["resources"]
            .as_array()?
            .iter()
            .find(|entry| entry["name"] == resource && entry["role"] == "Started")
            .and_then(|entry| entry["node"].as_str().map(str::to_string))
    }

    fn wait_until_on(&self, resource: &str, node: &str) {
        let started = Instant::now();
        while self.running_on(resource).as_deref() != Some(node) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{resource} did not come to run on {node}: {}\n{}",
                self.json(&["status", "-o", "json"]),
                std::fs::read_to_string(self.0.dir.path().join("up.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.0.endpoint.clone()], None).await.expect("connect to etcd")
    }

    /// etcd's current revision: it moves with every write.
    async fn revision(&self) -> i64 {
        let response = self.client().await.get("/", None).await.expect("read etcd");
        response.header().map(|header| header.revision()).expect("a header")
    }
}

/// Settles the cluster: no new decision for a while (the revision still moves with
/// agents' writes, which the simulations must not add to).
async fn quiet(cluster: &Cluster) -> i64 {
    let mut last = cluster.revision().await;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = cluster.revision().await;
        if now == last {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the cluster keeps writing");
        last = now;
    }
}

fn manifests(dir: &Path) -> String {
    let log = dir.join("witness.log");
    let witness = |name: &str, extra: &str| {
        format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}{extra}}}\n  operations: [{{name: monitor, interval: 1s}}]\n  meta: {{migrationThreshold: 3}}\n---\n",
            log.display()
        )
    };
    // web's start fails on n1, its preferred node: three failed starts reach its
    // migration-threshold and it goes to n2 (n3 is banned by `pacer ban`).
    format!(
        "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {{name: cluster}}\nspec: {{stonithEnabled: false, startFailureIsFatal: false}}\n---\n\
         {}{}\
         apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-prefers-n1}}\nspec: {{resource: web, node: n1, score: 100}}\n---\n\
         apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: db-prefers-n1}}\nspec: {{resource: db, node: n1, score: 50}}\n---\n\
         apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata:\n  name: ban-web-n3\n  annotations: {{pacer.io/owner: ban, pacer.io/created-by: tester@host}}\nspec: {{resource: web, node: n3, score: -INFINITY}}\n",
        witness("web", ", fail_start: n1"),
        witness("db", "")
    )
}

/// The contributions to `resource`'s score on `node` in `pacer why -o json`.
fn contributions<'a>(why: &'a Value, node: &str) -> Vec<&'a Value> {
    why["instances"][0]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["node"] == node)
        .flat_map(|entry| entry["contributions"].as_array().into_iter().flatten())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_simulate_and_history_on_a_live_cluster() {
    let cluster = Cluster::start();
    let output = cluster.pacer(&["apply", "-f", "-"], Some(&manifests(cluster.0.dir.path())));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    cluster.wait_until_on("db", "n1");
    cluster.wait_until_on("web", "n2");

    // why: where and why there; the ban names the verb that made it; the fail count.
    let why = cluster.json(&["why", "web", "-o", "json"]);
    let verdict = why["instances"][0]["verdict"].as_str().unwrap_or_default().to_string();
    assert!(verdict.starts_with("runs on n2"), "{why}");
    let on_n3 = contributions(&why, "n3");
    let ban = on_n3.iter().find(|entry| entry["constraint"] == "ban-web-n3").unwrap_or_else(|| panic!("the ban is named: {why}"));
    assert_eq!(ban["owner"], "ban");
    assert_eq!(ban["score"], "-INFINITY");
    let on_n1 = contributions(&why, "n1");
    assert!(on_n1.iter().any(|entry| entry["kind"] == "location" && entry["constraint"] == "web-prefers-n1"), "{why}");
    let fail_count = on_n1.iter().find(|entry| entry["kind"] == "migrationThreshold").unwrap_or_else(|| panic!("the fail count is named: {why}"));
    assert_eq!(fail_count["text"], "fail count 3 of migration-threshold 3 (web)");
    let text = common::text(&cluster.pacer(&["why", "web"], None).stdout);
    assert!(text.contains("fail count 3 of migration-threshold 3") && text.contains("made by `pacer ban` (tester@host)"), "{text}");

    // Simulations write nothing.
    let before = quiet(&cluster).await;
    let simulated = cluster.pacer(&["simulate", "--live", "--node-fail", "n1"], None);
    assert!(simulated.status.success(), "{}", common::text(&simulated.stderr));
    let text = common::text(&simulated.stdout);
    assert!(text.contains("nothing was written") && text.contains("db"), "db leaves n1 when n1 is lost: {text}");
    let proposed = "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: db-prefers-n2}\nspec: {resource: db, node: n2, score: 500}\n";
    let proposed_path = cluster.0.dir.path().join("proposed.yaml");
    std::fs::write(&proposed_path, proposed).expect("write");
    let simulated = cluster.pacer(&["simulate", "--live", "-f", &proposed_path.display().to_string()], None);
    assert!(simulated.status.success(), "{}", common::text(&simulated.stderr));
    assert!(common::text(&simulated.stdout).contains("Move"), "{}", common::text(&simulated.stdout));
    let diffed = cluster.pacer(&["diff", "-f", &proposed_path.display().to_string(), "--simulate"], None);
    assert_eq!(diffed.status.code(), Some(1), "diff finds a change: {}", common::text(&diffed.stderr));
    let text = common::text(&diffed.stdout);
    assert!(text.contains("db-prefers-n2"), "{text}");
    assert!(text.contains("If applied") && text.contains("Move") && text.contains("n1 -> n2"), "{text}");
    // Bad input: one line, exit 1, nothing written.
    let ghost = cluster.pacer(&["simulate", "--live", "--node-fail", "ghost"], None);
    assert_eq!(ghost.status.code(), Some(1));
    assert_eq!(common::text(&ghost.stderr).trim(), "error: --node-fail ghost: no such node");
    let invalid = cluster.pacer(
        &["simulate", "--live", "-f", "-"],
        Some("apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: x}\nspec: {resource: nope, node: n2, score: 5}\n"),
    );
    assert_eq!(invalid.status.code(), Some(1), "{}", common::text(&invalid.stderr));
    let unknown = cluster.pacer(&["why", "nope"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(common::text(&unknown.stderr).trim(), "error: resource nope not found");
    assert_eq!(cluster.revision().await, before, "a simulation or why wrote to etcd");

    // History: the latest decision replays to the same decision.
    quiet(&cluster).await;
    let history = cluster.json(&["history", "-o", "json"]);
    let entries = history.as_array().expect("a list");
    assert!(entries.len() >= 2, "{history}");
    assert!(entries.iter().all(|entry| entry["input"] == true), "every decision of this cluster kept its input: {history}");
    let latest = entries[0]["inputRevision"].as_i64().expect("revision").to_string();
    let older = entries[entries.len() - 1]["inputRevision"].as_i64().expect("revision").to_string();
    let replay = cluster.pacer(&["history", "replay", &latest], None);
    assert_eq!(replay.status.code(), Some(0), "{}{}", common::text(&replay.stdout), common::text(&replay.stderr));
    for revision in entries.iter().filter_map(|entry| entry["inputRevision"].as_i64()) {
        let replay = cluster.pacer(&["history", "replay", &revision.to_string()], None);
        assert_eq!(replay.status.code(), Some(0), "decision {revision}: {}", common::text(&replay.stdout));
    }
    let shown = cluster.json(&["history", "show", &latest, "-o", "json"]);
    assert!(shown["input"]["objects"].as_u64().is_some_and(|objects| objects >= 4), "{shown}");
    let diff = cluster.json(&["history", "diff", &older, &latest, "-o", "json"]);
    assert!(!diff["input"].as_array().expect("input changes").is_empty(), "{diff}");
    assert!(diff["decision"].as_array().expect("decision changes").iter().any(|line| line.as_str().is_some_and(|line| line.starts_with("web"))), "{diff}");
    let bad = cluster.pacer(&["history", "replay", "abc"], None);
    assert_eq!(bad.status.code(), Some(1));
    let missing = cluster.pacer(&["history", "show", "999999999"], None);
    assert_eq!(missing.status.code(), Some(1), "{}", common::text(&missing.stderr));

    // A tampered record: the replay differs.
    let mut client = cluster.client().await;
    let record_key = format!("{PREFIX}/history/{:020}", latest.parse::<i64>().expect("revision"));
    let stored = client.get(record_key.clone(), None).await.expect("read").kvs().first().map(|kv| kv.value().to_vec()).expect("the record");
    let mut record: Value = serde_json::from_slice(&stored).expect("record JSON");
    record["actions"] = serde_json::json!(["Start web (n3)"]);
    record["digest"] = serde_json::json!("00000000000000000000000000000000");
    client.put(record_key.clone(), serde_json::to_vec(&record).expect("encode"), None).await.expect("write");
    let replay = cluster.pacer(&["history", "replay", &latest], None);
    assert_eq!(replay.status.code(), Some(1), "{}", common::text(&replay.stdout));
    assert!(common::text(&replay.stdout).contains("Start web (n3)"), "{}", common::text(&replay.stdout));
    client.put(record_key, stored, None).await.expect("restore");

    // A tampered input record: its time moved by a second (a replay would likely
    // decide the same; the record's digest of the input says it was changed).
    let input_key = format!("{PREFIX}.archive/inputs/{:020}", latest.parse::<i64>().expect("revision"));
    let stored_input = client.get(input_key.clone(), None).await.expect("read").kvs().first().map(|kv| kv.value().to_vec()).expect("the input");
    let mut moved: Value = serde_json::from_slice(&stored_input).expect("input JSON");
    moved["now"] = serde_json::json!(moved["now"].as_i64().expect("now") + 1);
    client.put(input_key.clone(), serde_json::to_vec(&moved).expect("encode"), None).await.expect("write");
    let replay = cluster.pacer(&["history", "replay", &latest], None);
    assert_eq!(replay.status.code(), Some(1), "{}", common::text(&replay.stdout));
    assert!(common::text(&replay.stdout).contains("it was changed"), "{}", common::text(&replay.stdout));
    client.put(input_key.clone(), stored_input, None).await.expect("restore");
    let replay = cluster.pacer(&["history", "replay", &latest], None);
    assert_eq!(replay.status.code(), Some(0), "restored: {}", common::text(&replay.stdout));

    // A tampered input: one node's blob replaced by another's.
    let input: Value = serde_json::from_slice(client.get(input_key, None).await.expect("read").kvs().first().expect("the input").value()).expect("input JSON");
    let (first, second) = (input["nodes"][0][0].as_str().expect("a blob"), input["nodes"][1][0].as_str().expect("a blob"));
    let chunk = |digest: &str| format!("{PREFIX}.archive/blobs/{digest}/0000");
    let other = client.get(chunk(second), None).await.expect("read").kvs().first().map(|kv| kv.value().to_vec()).expect("a blob");
    client.put(chunk(first), other, None).await.expect("write");
    let replay = cluster.pacer(&["history", "replay", &latest], None);
    assert_eq!(replay.status.code(), Some(1), "{}", common::text(&replay.stdout));
    assert!(common::text(&replay.stdout).contains("does not match its digest"), "{}", common::text(&replay.stdout));
}
