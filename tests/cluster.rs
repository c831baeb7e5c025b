//! The cluster running itself: real etcd, `pacer scheduler` and `pacer agent`
//! processes laid out as `pacer up` lays them out (`DIR/pids/<node>`,
//! `DIR/nodes/<node>`), so the local fence agent (`fence_pacer_local`) can power a
//! node off. Resources are Pacer's witness agent, whose log proves that no two copies
//! of a resource ever ran at once.
//!
//! Timings are printed (`-- --nocapture`), not asserted.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::api::manifest::{Source, load};
use pacer::local::link::Link;
use pacer::local::witness::{Rules, audit, read_witness};
use pacer::store::Store;
use pacer::store::apply::{ApplyOutcome, ApplyRequest, apply};
use serde_json::Value;

const PREFIX: &str = "/pacer";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test exceeded its timeout");
}

/// A process this test started, ended by PID when dropped.
struct Process {
    child: Child,
    name: String,
}

impl Process {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !pacer::local::child::terminate(&mut self.child, Duration::from_secs(15)) {
            eprintln!("{} did not stop; killed it", self.name);
        }
    }
}

struct Cluster {
    // Dropped in order: agents and schedulers, then the proxy, then etcd.
    processes: BTreeMap<String, Process>,
    proxies: Vec<Link>,
    store: Store,
    etcd: TestEtcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(policy: &str) -> Cluster {
        let etcd = TestEtcd::start();
        let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["pids", "nodes", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("layout");
        }
        let cluster = Cluster { processes: BTreeMap::new(), proxies: Vec::new(), store, etcd, dir };
        cluster.apply(policy).await;
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn apply(&self, yaml: &str) {
        let loaded = load(&[Source { name: "test.yaml".into(), text: yaml.to_string() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        match apply(&self.store, &ApplyRequest { loaded, ..ApplyRequest::default() }).await.expect("apply") {
            ApplyOutcome::Planned(_) => {}
            ApplyOutcome::Invalid(diagnostics) => panic!("refused: {diagnostics:?}"),
        }
    }

    fn spawn(&mut self, name: &str, endpoint: &str, args: &[String]) {
        let log = std::fs::File::create(self.path(&format!("logs/{name}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(args)
            .env("PACER_ETCD", endpoint)
            .env("PACER_PREFIX", PREFIX)
            .env("PACER_LOG", "pacer=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pacer");
        std::fs::write(self.path(&format!("pids/{name}")), format!("{}\n", child.id())).expect("pid file");
        self.processes.insert(name.to_string(), Process { child, name: name.to_string() });
    }

    fn start_scheduler(&mut self, name: &str, ttl: u64) {
        let endpoint = self.etcd.endpoint();
        self.spawn(name, &endpoint, &["scheduler".into(), "--lease-ttl".into(), ttl.to_string(), "--identity".into(), name.into()]);
    }

    fn start_agent_via(&mut self, node: &str, ttl: u64, endpoint: &str) {
        let state_dir = self.path(&format!("nodes/{node}"));
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
        let args = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--lease-ttl".into(),
            ttl.to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--agents-dir".into(),
            agents.display().to_string(),
        ];
        self.spawn(node, endpoint, &args);
    }

    fn start_agent(&mut self, node: &str, ttl: u64) {
        let endpoint = self.etcd.endpoint();
        self.start_agent_via(node, ttl, &endpoint);
    }

    fn logs(&self) -> String {
        self.processes
            .keys()
            .map(|name| format!("--- {name}\n{}", std::fs::read_to_string(self.path(&format!("logs/{name}.log"))).unwrap_or_default()))
            .collect()
    }

    /// `pacer status -o json`.
    fn status(&self) -> Value {
        let output = common::pacer(&self.etcd.endpoint(), PREFIX, &["status", "-o", "json"], None);
        assert!(output.status.success(), "pacer status: {}", common::text(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Where `resource` runs with `role`, per `pacer status`.
    fn running(&self, resource: &str) -> Vec<String> {
        let status = self.status();
        status["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["name"] == resource && entry["node"].is_string() && entry["role"] != "Stopped")
            .filter_map(|entry| entry["node"].as_str().map(str::to_string))
            .collect()
    }

    fn node_state(&self, node: &str) -> String {
        let status = self.status();
        status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["name"] == node)
            .and_then(|entry| entry["state"].as_str())
            .unwrap_or("absent")
            .to_string()
    }

    async fn wait_for(&self, what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            if condition() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}\nstatus: {}\n{}", self.status(), self.logs());
    }

    async fn leader(&self) -> Option<String> {
        let mut client = self.etcd.client().await;
        let response = client.get(format!("{PREFIX}/election/scheduler"), None).await.expect("read election");
        response.kvs().first().and_then(|kv| serde_json::from_slice::<Value>(kv.value()).ok()).and_then(|value| value["identity"].as_str().map(str::to_string))
    }
}

fn witness(name: &str, log: &Path, extra: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations: [{{name: monitor, interval: 1s}}]\n{extra}",
        log.display()
    )
}

fn nodes(names: &[&str]) -> String {
    names.iter().map(|name| format!("---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{}}\n")).collect()
}

fn local_power(dir: &Path, names: &[&str]) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [{}]\n  params: {{state_dir: {}}}\n",
        names.join(", "),
        dir.display()
    )
}

/// Every moment two copies of one resource were active, by the shared observer
/// (`pacer::local::witness`): a copy is active from the start of its start to the
/// successful end of its stop — or, on a node that was powered off, until the moment
/// the fence agent finished (`fenced`: node and wall-clock nanoseconds).
fn overlaps(log: &Path, fenced: Option<(&str, u128)>) -> Vec<String> {
    let testimony = read_witness(log);
    let power_offs: BTreeMap<String, Vec<u128>> = fenced.into_iter().map(|(node, at)| (node.to_string(), vec![at])).collect();
    let rules = Rules { exclusive: testimony.iter().map(|line| line.resource.clone()).collect(), promoted_max: BTreeMap::new() };
    audit(&testimony, &power_offs, &rules)
}

/// When the fence agent powered `node` off (its marker file's time), in nanoseconds.
fn powered_off_at(dir: &Path, node: &str) -> u128 {
    let marker = dir.join(format!("nodes/{node}/powered-off"));
    let modified = std::fs::metadata(&marker).and_then(|metadata| metadata.modified()).expect("the fence agent left its marker");
    modified.duration_since(std::time::UNIX_EPOCH).expect("time").as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_scheduler_takes_over_when_the_leader_dies() {
    bounded(async {
        let mut cluster = Cluster::new("apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n").await;
        let log = cluster.path("witness.log");
        cluster.start_scheduler("s1", 2);
        let started = Instant::now();
        while cluster.leader().await.is_none() && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(cluster.leader().await.as_deref(), Some("s1"));
        cluster.start_scheduler("s2", 2);
        cluster.start_agent("n1", 2);
        cluster.apply(&witness("web", &log, "")).await;
        cluster.wait_for("web to run", Duration::from_secs(30), || cluster.running("web") == ["n1"]).await;
        // The leader dies; the standby takes over once its lease lapses.
        cluster.processes.get_mut("s1").expect("s1").kill9();
        let killed = Instant::now();
        loop {
            if cluster.leader().await.as_deref() == Some("s2") {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "s2 did not take over\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let takeover = killed.elapsed();
        println!("leader killed -> standby elected (lease TTL 2 s): {takeover:?}");
        // The new leader acts on changes.
        cluster.apply(&witness("web", &log, "  meta: {targetRole: Stopped}\n")).await;
        let reacted = cluster.wait_for("web to stop under the new leader", Duration::from_secs(30), || cluster.running("web").is_empty()).await;
        println!("change applied -> carried out under the new leader: {reacted:?}");
    })
    .await;
}

/// Fails over a node killed with SIGKILL under `ttl`, with the local fence device.
async fn fenced_failover(ttl: u64) {
    let names = ["n1", "n2", "n3"];
    let mut cluster = Cluster::new(&nodes(&names)).await;
    let log = cluster.path("witness.log");
    cluster.apply(&local_power(cluster.dir.path(), &names)).await;
    cluster.start_scheduler("s1", ttl);
    for node in names {
        cluster.start_agent(node, ttl);
    }
    cluster.apply(&witness("web", &log, "")).await;
    cluster.wait_for("web to run", Duration::from_secs(30), || cluster.running("web").len() == 1).await;
    let victim = cluster.running("web").remove(0);
    cluster.processes.get_mut(&victim).expect("victim").kill9();
    let killed = Instant::now();
    cluster
        .wait_for("web to run elsewhere", Duration::from_secs(60), || {
            let running = cluster.running("web");
            running.len() == 1 && running[0] != victim
        })
        .await;
    let failover = killed.elapsed();
    println!("node killed -> resource running elsewhere (lease TTL {ttl} s, fenced): {failover:?}");
    let status = cluster.status();
    let fencing = status["fencing"].as_array().cloned().unwrap_or_default();
    assert!(fencing.iter().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded"), "{status}");
    assert_eq!(cluster.node_state(&victim), "offline");
    // The copy on the killed node ran until the fence agent powered the node off;
    // the new one started after that.
    let fenced_at = powered_off_at(cluster.dir.path(), &victim);
    assert_eq!(overlaps(&log, Some((&victim, fenced_at))), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_fenced_and_its_resources_run_elsewhere() {
    bounded(fenced_failover(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_fenced_and_its_resources_run_elsewhere_with_a_5s_lease() {
    bounded(fenced_failover(5)).await;
}

/// Two nodes whose only fence device always fails, `web` (a witness logging to the
/// returned log) running, and the node running it killed: its fencing has failed
/// once. Returns the cluster, the witness log and the lost node.
async fn web_node_lost_and_fencing_failing() -> (Cluster, PathBuf, String) {
    let names = ["n1", "n2"];
    let mut cluster = Cluster::new(&nodes(&names)).await;
    let log = cluster.path("witness.log");
    cluster
            .apply("---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {name: broken}\nspec: {agent: fence_dummy, hostList: [n1, n2], params: {type: fail}, retries: 1}\n")
            .await;
    cluster.start_scheduler("s1", 2);
    for node in names {
        cluster.start_agent(node, 2);
    }
    cluster.apply(&witness("web", &log, "")).await;
    cluster.wait_for("web to run", Duration::from_secs(30), || cluster.running("web").len() == 1).await;
    let victim = cluster.running("web").remove(0);
    cluster.processes.get_mut(&victim).expect("victim").kill9();
    // fence_dummy's failing reboot waits out its 20 s power timeout before it answers.
    cluster
        .wait_for("the fencing failure to be reported", Duration::from_secs(60), || {
            cluster.status()["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "failed")
        })
        .await;
    (cluster, log, victim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_fencing_fails_nothing_moves_until_a_person_confirms() {
    require_fence_dummy();
    bounded(async {
        let (cluster, log, victim) = web_node_lost_and_fencing_failing().await;
        // Retries keep failing; nothing starts elsewhere meanwhile.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(cluster.node_state(&victim), "unclean");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let starts: Vec<&str> = text.lines().filter(|line| line.contains("op=start phase=begin")).collect();
        assert_eq!(starts.len(), 1, "web started again before its node was fenced:\n{text}");
        // The meatware path.
        let output = common::pacer(&cluster.etcd.endpoint(), PREFIX, &["fence", "confirm", &victim], None);
        assert!(output.status.success(), "{}", common::text(&output.stderr));
        cluster
            .wait_for("web to run elsewhere", Duration::from_secs(30), || {
                let running = cluster.running("web");
                running.len() == 1 && running[0] != victim
            })
            .await;
        // A live node cannot be confirmed down.
        let survivor = cluster.running("web").remove(0);
        let output = common::pacer(&cluster.etcd.endpoint(), PREFIX, &["fence", "confirm", &survivor], None);
        assert_eq!(output.status.code(), Some(1), "{}", common::text(&output.stderr));
    })
    .await;
}

/// `pacer history fencing -o json` (of `node` only when given).
fn fencing_history(cluster: &Cluster, node: Option<&str>) -> Vec<Value> {
    let mut args = vec!["history", "fencing", "-o", "json"];
    if let Some(node) = node {
        args.extend(["--node", node]);
    }
    let output = common::pacer(&cluster.etcd.endpoint(), PREFIX, &args, None);
    assert!(output.status.success(), "pacer history fencing: {}", common::text(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).expect("history JSON").as_array().cloned().unwrap_or_default()
}

fn has_attempt(attempts: &[Value], node: &str, state: &str) -> bool {
    attempts.iter().any(|attempt| attempt["node"] == node && attempt["action"] == "reboot" && attempt["state"] == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_then_successful_fencing_is_in_the_history_and_the_status() {
    bounded(async {
        let names = ["n1", "n2", "n3"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        // The power switch does not answer while this file exists.
        let switch_down = cluster.path("switch-down");
        std::fs::write(&switch_down, "").expect("fail file");
        cluster
            .apply(&format!(
                "---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [n1, n2, n3]\n  retries: 1\n  params: {{state_dir: {}, fail_file: {}}}\n",
                cluster.dir.path().display(),
                switch_down.display()
            ))
            .await;
        cluster.start_scheduler("s1", 2);
        for node in names {
            cluster.start_agent(node, 2);
        }
        cluster.apply(&witness("web", &log, "")).await;
        cluster.wait_for("web to run", Duration::from_secs(30), || cluster.running("web").len() == 1).await;
        let victim = cluster.running("web").remove(0);
        cluster.processes.get_mut(&victim).expect("victim").kill9();
        cluster.wait_for("a failed fencing in the history", Duration::from_secs(60), || has_attempt(&fencing_history(&cluster, None), &victim, "failed")).await;
        std::fs::remove_file(&switch_down).expect("repair the switch");
        cluster
            .wait_for("web to run elsewhere", Duration::from_secs(60), || {
                let running = cluster.running("web");
                running.len() == 1 && running[0] != victim
            })
            .await;
        cluster.wait_for("the successful fencing in the history", Duration::from_secs(30), || has_attempt(&fencing_history(&cluster, None), &victim, "succeeded")).await;
        // Both attempts, each with who ran it, who asked, why, when, and what went wrong.
        let history = fencing_history(&cluster, Some(&victim));
        let failed = history.iter().find(|attempt| attempt["state"] == "failed").expect("the failed attempt");
        let succeeded = history.iter().find(|attempt| attempt["state"] == "succeeded").expect("the successful attempt");
        for attempt in [failed, succeeded] {
            assert_eq!(attempt["node"], victim.as_str(), "{attempt}");
            assert_eq!(attempt["requester"], "s1", "{attempt}");
            assert!(attempt["executor"].is_string() && attempt["executor"] != victim.as_str(), "{attempt}");
            assert!(attempt["reason"].as_str().is_some_and(|reason| !reason.is_empty()), "{attempt}");
            assert!(attempt["requested"].as_i64().is_some() && attempt["finished"].as_i64().is_some(), "{attempt}");
            assert_eq!(attempt["devices"], serde_json::json!(["local-power"]), "{attempt}");
        }
        assert!(failed["error"].as_str().is_some_and(|error| error.contains("failure injected")), "{failed}");
        assert!(succeeded["attempts"].as_array().is_some_and(|lines| lines.iter().any(|line| line.as_str().is_some_and(|line| line.contains("ok")))), "{succeeded}");
        // Newest first.
        assert!(succeeded["id"].as_i64() > failed["id"].as_i64(), "{history:?}");
        assert_eq!(history.first(), Some(succeeded), "{history:?}");
        // Filtered by node: the other nodes were never fenced.
        let survivor = cluster.running("web").remove(0);
        assert_eq!(fencing_history(&cluster, Some(&survivor)), Vec::<Value>::new());
        // `pacer status` shows both, in JSON and as text.
        let status = cluster.status();
        let shown = status["fencing_history"].as_array().cloned().unwrap_or_default();
        assert!(has_attempt(&shown, &victim, "failed") && has_attempt(&shown, &victim, "succeeded"), "{status}");
        let output = common::pacer(&cluster.etcd.endpoint(), PREFIX, &["status"], None);
        let text = common::text(&output.stdout);
        assert!(text.contains(&format!("reboot of {victim} failed: ")) && text.contains(&format!("reboot of {victim} succeeded: ")), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_unfenced_by_themselves_and_then_run_resources() {
    require_fence_dummy();
    bounded(async {
        let names = ["n1", "n2"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        let status_file = cluster.path("fence_dummy.status");
        cluster
            .apply(&format!(
                "---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: scsi}}\nspec: {{agent: fence_dummy, hostList: [n1, n2], unfencing: true, params: {{status_file: {}, random_sleep_range: '2'}}}}\n",
                status_file.display()
            ))
            .await;
        cluster.start_scheduler("s1", 2);
        for node in names {
            cluster.start_agent(node, 2);
        }
        cluster.apply(&witness("web", &log, "")).await;
        // The moment web is seen running, its node's unfencing has succeeded (unfencing
        // takes 1-2 s here, so a start that did not wait would be seen first).
        let mut seen = Value::Null;
        cluster
            .wait_for("web to run", Duration::from_secs(30), || {
                seen = cluster.status();
                seen["resources"].as_array().into_iter().flatten().any(|entry| entry["name"] == "web" && entry["role"] == "Started")
            })
            .await;
        let node = seen["resources"].as_array().into_iter().flatten().find(|entry| entry["name"] == "web").and_then(|entry| entry["node"].as_str()).unwrap_or_default().to_string();
        let unfenced_first = seen["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == node.as_str() && entry["action"] == "on" && entry["state"] == "succeeded");
        assert!(unfenced_first, "web runs on {node} before {node} was unfenced: {seen}");
        cluster
            .wait_for("both nodes unfenced", Duration::from_secs(30), || {
                cluster.status()["fencing"].as_array().into_iter().flatten().filter(|entry| entry["action"] == "on" && entry["state"] == "succeeded").count() == 2
            })
            .await;
        let status = cluster.status();
        let unfenced: Vec<&str> = status["fencing"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["action"] == "on" && entry["state"] == "succeeded")
            .filter_map(|entry| entry["node"].as_str())
            .collect();
        assert_eq!(unfenced, ["n1", "n2"], "{status}");
        // Unfencing is done by the node itself.
        let by_self = status["fencing"].as_array().into_iter().flatten().all(|entry| entry["by"] == entry["node"]);
        assert!(by_self, "{status}");
    })
    .await;
}

fn require_fence_dummy() {
    assert!(Path::new("/usr/sbin/fence_dummy").exists(), "/usr/sbin/fence_dummy is missing: install fence-agents (scripts/install-deps)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_agent_stops_its_resources_before_they_start_elsewhere() {
    bounded(async {
        let names = ["n1", "n2"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        cluster.apply(&local_power(cluster.dir.path(), &names)).await;
        let link = Link::open(&cluster.etcd.endpoint()).await.expect("link");
        cluster.start_scheduler("s1", 2);
        cluster.start_agent_via("n1", 2, link.endpoint());
        cluster.start_agent("n2", 2);
        cluster.proxies.push(link);
        cluster.wait_for("both nodes online", Duration::from_secs(30), || cluster.node_state("n1") == "online" && cluster.node_state("n2") == "online").await;
        cluster
            .apply(&format!(
                "{}---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-on-n1}}\nspec: {{resource: web, node: n1, score: 100}}\n",
                witness("web", &log, "")
            ))
            .await;
        cluster.wait_for("web to run on n1", Duration::from_secs(30), || cluster.running("web") == ["n1"]).await;
        cluster.proxies[0].set_cut(true);
        let cut = Instant::now();
        cluster.wait_for("web to run on n2", Duration::from_secs(60), || cluster.running("web") == ["n2"]).await;
        println!("n1 cut off from etcd -> web running on n2 (lease TTL 2 s): {:?}", cut.elapsed());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let events: Vec<String> = text
            .lines()
            .filter(|line| line.contains("phase=end") && (line.contains("op=start") || line.contains("op=stop")))
            .map(|line| {
                let field = |name: &str| line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string();
                format!("{} {}", field("op"), field("node"))
            })
            .collect();
        assert_eq!(events, ["start n1", "stop n1", "start n2"], "the cut-off node stops web itself before n2 starts it:\n{text}\n{}", cluster.logs());
        assert_eq!(overlaps(&log, None), Vec::<String>::new());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fenced_while_its_agent_renews_loses_its_lease_even_if_resumed() {
    bounded(async {
        let names = ["n1", "n2"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        cluster.apply(&local_power(cluster.dir.path(), &names)).await;
        cluster.start_scheduler("s1", 5);
        for node in names {
            cluster.start_agent(node, 5);
        }
        // Its stop takes 2 s and may take 1 s: a stop that fails, so the node is fenced
        // while its agent still renews its lease.
        cluster
            .apply(&format!(
                "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}, delay: 2}}\n  operations: [{{name: monitor, interval: 1s}}, {{name: stop, timeout: 1s}}]\n",
                log.display()
            ))
            .await;
        cluster.wait_for("web to run", Duration::from_secs(30), || cluster.running("web").len() == 1).await;
        let victim = cluster.running("web").remove(0);
        let other = if victim == "n1" { "n2" } else { "n1" };
        cluster.apply(&format!("---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-moves}}\nspec: {{resource: web, node: {other}, score: INFINITY}}\n")).await;
        // Once fencing is asked for, hold the scheduler still while the node is fenced
        // and its agent, restarted at once (a fast reboot), resumes the lease.
        let request = format!("{PREFIX}/fencing/{victim}/request");
        let mut client = cluster.etcd.client().await;
        let started = Instant::now();
        while client.get(request.as_str(), None).await.expect("read the request").kvs().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "no fencing was asked for\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let scheduler = i32::try_from(cluster.processes["s1"].child.id()).expect("pid");
        // SAFETY: signals to the PID of a child this test started and has not reaped.
        unsafe { libc::kill(scheduler, libc::SIGSTOP) };
        let marker = cluster.path(&format!("nodes/{victim}/powered-off"));
        cluster.wait_for("the power-off", Duration::from_secs(10), || marker.exists()).await;
        let lease = cluster.store.node_lease_id(&victim).await.expect("read the lease").expect("the fenced agent's lease outlives it");
        cluster.start_agent(&victim, 5);
        let agent_log = cluster.path(&format!("logs/{victim}.log"));
        let resumed = cluster.wait_for("the restarted agent to resume its lease", Duration::from_secs(10), || std::fs::read_to_string(&agent_log).unwrap_or_default().contains("resuming the lease")).await;
        // SAFETY: as above.
        unsafe { libc::kill(scheduler, libc::SIGCONT) };
        println!("fenced, restarted and resumed within {resumed:?} of the power-off");
        // The leader voids the lease that held the fenced node: its old reports (a
        // failed stop) are forgotten and web runs on the other node.
        cluster
            .wait_for("web to run on the other node", Duration::from_secs(30), || {
                let running = cluster.running("web");
                running.len() == 1 && running[0] == other
            })
            .await;
        assert_ne!(cluster.store.node_lease_id(&victim).await.expect("read the lease"), Some(lease), "the fenced node's lease was revoked");
        // The first power-off (the marker has one line per power-off; see below).
        let fenced_at: u128 = std::fs::read_to_string(&marker).unwrap_or_default().lines().next().and_then(|line| line.trim().parse().ok()).expect("a power-off time");
        assert_eq!(overlaps(&log, Some((&victim, fenced_at))), Vec::<String>::new(), "fenced at {fenced_at}\n{}\n{}", std::fs::read_to_string(&log).unwrap_or_default(), cluster.logs());
        // The restarted agent read its statuses (the failed stop) before the leader
        // accepted the fencing: what it read is void once the answer is known, so it
        // claims the node anew and rejoins without writing the failed stop back, and
        // the node is not fenced a second time (issue 19, item 2).
        cluster.wait_for("the fenced node to rejoin", Duration::from_secs(30), || cluster.node_state(&victim) == "online").await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let power_offs = std::fs::read_to_string(&marker).unwrap_or_default().lines().count();
        assert_eq!(power_offs, 1, "the node was fenced again after it rejoined\n{}", cluster.logs());
        assert_eq!(cluster.node_state(&victim), "online");
        let status = cluster.status();
        let failed_here = status["resources"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["role"] == "Failed");
        assert!(!failed_here, "the failed stop from before the fencing is back: {status}");
    })
    .await;
}

// The security review's scenarios (issue 16): records are trusted by their keys, not
// their bodies. Each was reproduced against the code before the fix.

/// Writes `value` under `key` as a node (or anyone with write access) could.
async fn forge(cluster: &Cluster, key: &str, value: &Value) {
    let mut client = cluster.etcd.client().await;
    client.put(key, value.to_string(), None).await.expect("write the forged record");
}

async fn exists(cluster: &Cluster, key: &str) -> bool {
    let mut client = cluster.etcd.client().await;
    !client.get(key, None).await.expect("read").kvs().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_written_under_another_nodes_prefix_does_not_fence_its_node() {
    bounded(async {
        let names = ["n1", "n2"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        cluster.apply(&local_power(cluster.dir.path(), &names)).await;
        cluster.start_scheduler("s1", 2);
        for node in names {
            cluster.start_agent(node, 2);
        }
        cluster
            .apply(&format!(
                "{}---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-on-n1}}\nspec: {{resource: web, node: n1, score: 100}}\n",
                witness("web", &log, "")
            ))
            .await;
        cluster.wait_for("web to run on n1", Duration::from_secs(30), || cluster.running("web") == ["n1"]).await;
        // n2 writes, under its own prefix, a failed stop of web on n1.
        let mut client = cluster.etcd.client().await;
        let response = client.get(format!("{PREFIX}/status/n1/web"), None).await.expect("read n1's status");
        let mut status: Value = serde_json::from_slice(response.kvs()[0].value()).expect("status JSON");
        status["role"] = "Failed".into();
        status["history"].as_array_mut().expect("history").push(serde_json::json!({
            "operation": "stop", "intervalMs": 0, "callId": 999, "rc": 1, "expectedRc": 0, "status": "Done"
        }));
        let forged = format!("{PREFIX}/status/n2/web");
        forge(&cluster, &forged, &status).await;
        // Nobody fences n1: no request in 5 s, no power-off, web stays.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            assert!(!exists(&cluster, &format!("{PREFIX}/fencing/n1/request")).await, "n1 fenced on n2's word\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!cluster.path("nodes/n1/powered-off").exists());
        assert_eq!(cluster.running("web"), ["n1"]);
        // The record is named, as one that does not decode is.
        let output = common::pacer(&cluster.etcd.endpoint(), PREFIX, &["status"], None);
        assert!(common::text(&output.stderr).contains(&forged), "{}", common::text(&output.stderr));
        assert!(cluster.logs().contains(&forged), "the leader logs the skipped key");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_key_of_one_node_naming_another_shows_neither_online() {
    bounded(async {
        let policy = "---\napiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n";
        let mut cluster = Cluster::new(&format!("{policy}{}", nodes(&["n1", "n2", "n3"]))).await;
        cluster.start_scheduler("s1", 2);
        cluster.start_agent("n2", 2);
        cluster.wait_for("n2 online", Duration::from_secs(30), || cluster.node_state("n2") == "online").await;
        let heartbeat = serde_json::json!({"node": "n1", "pid": 1, "host": "h", "started": 0, "leaseTtlMs": 2000, "probed": true});
        forge(&cluster, &format!("{PREFIX}/nodes/n3/lease"), &heartbeat).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_ne!(cluster.node_state("n1"), "online", "{}", cluster.status());
        assert_ne!(cluster.node_state("n3"), "online", "{}", cluster.status());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_fencing_success_from_another_node_moves_nothing() {
    require_fence_dummy();
    bounded(async {
        let (cluster, log, victim) = web_node_lost_and_fencing_failing().await;
        let mut client = cluster.etcd.client().await;
        let response = client.get(format!("{PREFIX}/fencing/{victim}/request"), None).await.expect("read the request");
        let request: Value = serde_json::from_slice(response.kvs()[0].value()).expect("request JSON");
        let executor = request["executor"].as_str().expect("executor").to_string();
        assert_ne!(executor, "n3");
        let success = serde_json::json!({"request": request["id"], "target": victim, "action": "reboot", "succeeded": true, "by": "n3", "finished": 0});
        // n3, not the executor: under its own prefix, under the executor's, and where
        // results used to be.
        forge(&cluster, &format!("{PREFIX}/fence-results/n3/{victim}"), &success).await;
        forge(&cluster, &format!("{PREFIX}/fence-results/{executor}/{victim}"), &success).await;
        forge(&cluster, &format!("{PREFIX}/fencing/{victim}/result"), &success).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(cluster.node_state(&victim), "unclean", "{}", cluster.status());
        // `pacer status` does not show it fenced either: only the answer the leader
        // accepted says so.
        let status = cluster.status();
        let shown_fenced = status["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded");
        assert!(!shown_fenced, "{victim} shown fenced on n3's word: {status}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let starts = text.lines().filter(|line| line.contains("op=start phase=begin")).count();
        assert_eq!(starts, 1, "web started elsewhere on a forged success:\n{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fencing_request_whose_key_is_not_its_target_fences_nobody() {
    bounded(async {
        let names = ["n1", "n2", "n3"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        cluster.apply(&local_power(cluster.dir.path(), &names)).await;
        cluster.start_scheduler("s1", 2);
        for node in names {
            cluster.start_agent(node, 2);
        }
        cluster.wait_for("every node online", Duration::from_secs(30), || names.iter().all(|node| cluster.node_state(node) == "online")).await;
        for executor in ["n1", "n2"] {
            let request = serde_json::json!({"id": 999_999, "target": "n3", "action": "off", "reason": "forged", "executor": executor, "requested": 0});
            forge(&cluster, &format!("{PREFIX}/fencing/zz-{executor}/request"), &request).await;
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!cluster.path("nodes/n3/powered-off").exists(), "n3 powered off on a forged request\n{}", cluster.logs());
        assert_eq!(cluster.node_state("n3"), "online");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_unfencing_success_from_another_node_unfences_nobody() {
    require_fence_dummy();
    bounded(async {
        let names = ["n1", "n2"];
        let mut cluster = Cluster::new(&nodes(&names)).await;
        let log = cluster.path("witness.log");
        let status_file = cluster.path("fence_dummy.status");
        // n1 is unfenced through a device that works; n2's unfencing always fails.
        cluster
            .apply(&format!(
                "---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: good}}\nspec: {{agent: fence_dummy, hostList: [n1], unfencing: true, params: {{status_file: {}}}}}\n\
                 ---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: broken}}\nspec: {{agent: fence_dummy, hostList: [n2], unfencing: true, params: {{type: fail}}, retries: 1}}\n",
                status_file.display()
            ))
            .await;
        cluster.start_scheduler("s1", 2);
        for node in names {
            cluster.start_agent(node, 2);
        }
        cluster
            .apply(&format!(
                "{}---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-on-n2}}\nspec: {{resource: web, node: n2, score: 100}}\n",
                witness("web", &log, "")
            ))
            .await;
        let unfenced = |status: &Value, node: &str| {
            status["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == node && entry["action"] == "on" && entry["state"] == "succeeded")
        };
        cluster.wait_for("n1 shown unfenced", Duration::from_secs(30), || unfenced(&cluster.status(), "n1")).await;
        // web is placed on n2, whose agent waits for n2 to be unfenced before it starts it.
        let mut client = cluster.etcd.client().await;
        let plan_of_n2 = async |client: &mut etcd_client::Client| -> Value {
            let response = client.get(format!("{PREFIX}/plans/n2"), None).await.expect("read n2's plan");
            response.kvs().first().and_then(|kv| serde_json::from_slice(kv.value()).ok()).unwrap_or(Value::Null)
        };
        let started = Instant::now();
        while plan_of_n2(&mut client).await["resources"].as_array().is_none_or(|resources| resources.is_empty()) {
            assert!(started.elapsed() < Duration::from_secs(30), "web never placed on n2: {}", cluster.status());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // n1 writes, under its own prefix, a successful unfencing of n2 answering n2's
        // request (which names n2 as its executor).
        let response = client.get(format!("{PREFIX}/fencing/n2/request"), None).await.expect("read the request");
        let id = response.kvs().first().and_then(|kv| serde_json::from_slice::<Value>(kv.value()).ok()).map_or(Value::from(0), |request| request["id"].clone());
        let finished = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let success = serde_json::json!({"request": id, "target": "n2", "action": "on", "succeeded": true, "by": "n1", "finished": finished});
        forge(&cluster, &format!("{PREFIX}/fence-results/n1/n2"), &success).await;
        // And n2 writes, under its own prefix, a successful reboot of n1, asked by nobody.
        let fenced = serde_json::json!({"request": id, "target": "n1", "action": "reboot", "succeeded": true, "by": "n2", "finished": finished});
        forge(&cluster, &format!("{PREFIX}/fence-results/n2/n1"), &fenced).await;
        // For 4 s: n2 is never shown unfenced, its plan still asks it to be unfenced
        // first (the scheduler's view), and web never starts there.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let status = cluster.status();
            assert!(!unfenced(&status, "n2"), "n2 shown unfenced on n1's word: {status}");
            assert!(unfenced(&status, "n1"), "n1 shown fenced on n2's word: {status}");
            let plan = plan_of_n2(&mut client).await;
            assert_eq!(plan["unfenceFirst"], true, "the scheduler takes n2 as unfenced on n1's word: {plan}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(cluster.running("web").is_empty(), "{text}");
        assert!(!text.lines().any(|line| line.contains("node=n2 rsc=web op=start")), "web started on n2:\n{text}");
    })
    .await;
}
