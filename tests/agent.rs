//! The node agent as a real process (`pacer agent`) against a private etcd, running
//! real resource agents (resource-agents' heartbeat:Dummy/Delay/anything, Pacemaker's
//! pacemaker:Dummy/Stateful, Pacer's ocf:pacer:witness). Decisions are made the way the
//! scheduler daemon makes them (`daemon::decide_once`: snapshot from etcd, `schedule`,
//! per-node assignments) or written by hand where a test needs a plan the scheduler
//! would not make.
//!
//! Timings are printed (`cargo test --test agent -- --nocapture`), never asserted,
//! except where the bound is the safety property itself (lease loss: everything
//! stopped before the lease can expire).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::api::manifest::{Source, load};
use pacer::api::records::{ExecStatus, NodeAssignment, NodeHeartbeat, ObservedRole, ResourceStatus};
use pacer::api::{Kind, Name, ObjectKey};
use pacer::daemon::decide_once;
use pacer::local::witness::{Rules, Testimony, audit, read_witness};
use pacer::store::apply::{ApplyOutcome, ApplyRequest, apply};
use pacer::store::{LeaderGuard, Store};

const PREFIX: &str = "/pacer";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

const POLICY: &str = "
apiVersion: pacer.io/v1alpha1
kind: ClusterPolicy
metadata: {name: cluster}
spec: {stonithEnabled: false}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n1}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n2}
";

async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test exceeded its timeout");
}

fn require(path: &str) {
    assert!(Path::new(path).exists(), "{path} is missing: install resource-agents and pacemaker's agents (scripts/install-deps)");
}

/// A `pacer agent` process, ended by PID when dropped (SIGTERM, then SIGKILL).
struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl AgentProcess {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit; `None` if it did not within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.child, Duration::from_secs(15));
    }
}

struct Cluster {
    // Agents drop first (they stop their resources while etcd still runs).
    agents: BTreeMap<String, AgentProcess>,
    store: Store,
    /// The test decides as the scheduler leader would: it holds the election.
    guard: LeaderGuard,
    etcd: TestEtcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new() -> Cluster {
        let etcd = TestEtcd::start();
        let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
        let dir = tempfile::tempdir().expect("tempdir");
        let (guard, _) = store
            .campaign(&serde_json::json!({"identity": "test", "since": 0}), Duration::from_secs(3600))
            .await
            .expect("campaign")
            .expect("no other scheduler");
        let cluster = Cluster { agents: BTreeMap::new(), store, guard, etcd, dir };
        cluster.apply(POLICY).await;
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

    fn start_agent(&mut self, node: &str, lease_ttl: u64) {
        let agent = self.spawn_agent(node, lease_ttl, "", &[]);
        self.agents.insert(node.to_string(), agent);
    }

    /// `start_agent` with more arguments.
    fn start_agent_with(&mut self, node: &str, lease_ttl: u64, extra: &[&str]) {
        let agent = self.spawn_agent(node, lease_ttl, "", extra);
        self.agents.insert(node.to_string(), agent);
    }

    /// A `pacer agent` for `node` with its state in `<dir>/<node>`, logging to
    /// `<dir>/<node><log_suffix>.log`, with `extra` arguments.
    fn spawn_agent(&self, node: &str, lease_ttl: u64, log_suffix: &str, extra: &[&str]) -> AgentProcess {
        let state_dir = self.path(node);
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let log = self.path(&format!("{node}{log_suffix}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["agent", "--node", node, "--lease-ttl", &lease_ttl.to_string(), "--state-dir"])
            .arg(&state_dir)
            .arg("--agents-dir")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("agents"))
            .args(extra)
            .env("PACER_ETCD", self.etcd.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .env("PACER_LOG", "pacer=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start pacer agent");
        AgentProcess { child, log }
    }

    /// The lease holding the node's key, if any.
    async fn node_lease(&self, node: &str) -> Option<i64> {
        self.store.node_lease_id(node).await.expect("read the node's key")
    }

    fn agent_logs(&self) -> String {
        self.agents.iter().map(|(node, agent)| format!("--- {node}\n{}", agent.log_text())).collect()
    }

    async fn status(&self, node: &str, id: &str) -> Option<ResourceStatus> {
        let (_, records) = self.store.read_records::<ResourceStatus>(&self.store.keys().status(node, id)).await.expect("read status");
        records.into_iter().find(|(key, _, _)| key == &self.store.keys().status(node, id)).map(|(_, status, _)| status)
    }

    async fn heartbeat(&self, node: &str) -> Option<NodeHeartbeat> {
        let key = self.store.keys().node_lease(node);
        let (_, records) = self.store.read_records::<NodeHeartbeat>(&key).await.expect("read heartbeat");
        records.into_iter().find(|(found, _, _)| *found == key).map(|(_, heartbeat, _)| heartbeat)
    }

    async fn role(&self, node: &str, id: &str) -> Option<ObservedRole> {
        self.status(node, id).await.map(|status| status.role)
    }

    /// Polls `condition` every 20 ms until it holds; panics with the agents' logs
    /// after `limit`. Returns how long it took.
    async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, mut condition: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while started.elapsed() < limit {
            if condition().await {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}\n{}", self.agent_logs());
    }

    async fn wait_probed(&self, node: &str) {
        self.wait_for(&format!("{node} to probe everything"), Duration::from_secs(30), || async {
            self.heartbeat(node).await.is_some_and(|heartbeat| heartbeat.probed)
        })
        .await;
    }

    async fn wait_role(&self, node: &str, id: &str, role: ObservedRole) -> Duration {
        self.wait_for(&format!("{id} {role:?} on {node}"), Duration::from_secs(30), || async { self.role(node, id).await == Some(role) }).await
    }

    /// One decision, as the scheduler daemon makes it.
    async fn decide(&self) {
        decide_once(&self.store, &self.guard).await.expect("decide");
    }

    async fn assignment(&self, node: &str) -> Option<NodeAssignment> {
        let key = self.store.keys().plan(node);
        let (_, records) = self.store.read_records::<NodeAssignment>(&key).await.expect("read plan");
        records.into_iter().find(|(found, _, _)| *found == key).map(|(_, assignment, _)| assignment)
    }
}

fn dummy(name: &str, agent: &str, params: &str, operations: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: {agent}\n  params: {{{params}}}\n  operations: [{operations}]\n"
    )
}

fn location(resource: &str, node: &str, score: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: {resource}-on-{node}}}\nspec: {{resource: {resource}, node: {node}, score: \"{score}\"}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_then_starts_and_stops_as_the_plan_says() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    require("/usr/lib/ocf/resource.d/pacemaker/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        let web_state = cluster.path("web.state");
        cluster
            .apply(&format!(
                "{}{}",
                dummy("web", "ocf:heartbeat:Dummy", &format!("state: {}", web_state.display()), "{name: monitor, interval: 1s}"),
                dummy("slow", "ocf:pacemaker:Dummy", "op_sleep: 1", "")
            ))
            .await;
        // Already running before the agent starts: the probe must find it.
        std::fs::write(&web_state, "").expect("state file");
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        assert_eq!(cluster.role("n1", "web").await, Some(ObservedRole::Started), "the probe finds what runs");
        // A probe that finds nothing where nothing was reported writes nothing: no
        // status is "not running here" to every reader.
        assert_eq!(cluster.role("n1", "slow").await, None, "a probe finding nothing is not written");
        let written = Instant::now();
        cluster.decide().await;
        let started = cluster.wait_role("n1", "slow", ObservedRole::Started).await;
        println!("plan written -> pacemaker:Dummy (op_sleep 1s) started and reported: {:?}", written.elapsed().max(started));
        let status = cluster.status("n1", "slow").await.expect("status");
        let operations: Vec<(&str, i32)> = status.history.iter().map(|record| (record.operation.as_str(), record.rc)).collect();
        assert_eq!(operations, [("start", 0)], "the probe's record is replaced by the start's");

        cluster
            .apply(&dummy("slow", "ocf:pacemaker:Dummy", "op_sleep: 1", "").replace("operations: []", "operations: []\n  meta: {targetRole: Stopped}"))
            .await;
        cluster.decide().await;
        cluster.wait_role("n1", "slow", ObservedRole::Stopped).await;
        assert_eq!(cluster.role("n1", "web").await, Some(ObservedRole::Started), "web is left running");
    })
    .await;
}

/// Agents never write the spec (a node's identity may not): the leader creates the
/// `Node` object of a node whose agent runs and has none, and leaves the
/// administrator's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writes_no_spec_and_the_leader_creates_its_node() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let node_object = |listing: &pacer::store::Listing, name: &str| {
            listing.objects.iter().find(|(key, _)| key.to_string() == format!("Node/{name}")).map(|(_, stored)| (*stored.object).clone())
        };
        cluster.start_agent("n3", 2);
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n3").await;
        cluster.wait_probed("n1").await;
        let listing = cluster.store.list_objects().await.expect("list");
        assert!(node_object(&listing, "n3").is_none(), "the agent wrote its own Node object");
        cluster.decide().await;
        let listing = cluster.store.list_objects().await.expect("list");
        let created = node_object(&listing, "n3").expect("the leader creates n3's Node object");
        assert_eq!(created.metadata.annotations.get("pacer.io/created-by").map(String::as_str), Some("scheduler"));
        let administrators = node_object(&listing, "n1").expect("n1's Node object");
        assert!(administrators.metadata.annotations.is_empty(), "the administrator's Node is left alone: {administrators:?}");
    })
    .await;
}

/// What an agent proposes of its node's attributes stays run-time: the `Node` object
/// the leader creates has none of them (there they would outrank the run-time ones,
/// as the administrator's do), and one agent's invalid proposal (a `#` name, the
/// cluster's) holds up no other node's object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposed_attributes_stay_run_time_and_an_invalid_one_holds_up_nobody() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        cluster.start_agent_with("n4", 2, &["--attribute", "#x=1", "--attribute", "disk=hdd"]);
        cluster.start_agent_with("n5", 2, &["--attribute", "rack=r5", "--capacity", "cpu=4"]);
        cluster.wait_probed("n4").await;
        cluster.wait_probed("n5").await;
        cluster.decide().await;
        let listing = cluster.store.list_objects().await.expect("list");
        let spec_of = |name: &str| {
            let object = listing.objects.iter().find(|(key, _)| key.to_string() == format!("Node/{name}")).map(|(_, stored)| (*stored.object).clone());
            match object.unwrap_or_else(|| panic!("the leader creates {name}'s Node object")).spec {
                pacer::api::Spec::Node(spec) => spec,
                other => panic!("not a Node: {other:?}"),
            }
        };
        for node in ["n4", "n5"] {
            let spec = spec_of(node);
            assert!(spec.attributes.is_empty(), "{node}'s proposed attributes became the administrator's: {spec:?}");
        }
        assert_eq!(spec_of("n5").utilization.get("cpu"), Some(&4));
        // The proposals are run-time attributes under each node's own prefix; `#x` is
        // not the agent's to set.
        let written = cluster.etcd.dump(&format!("{PREFIX}/attributes/")).await;
        let value = |key: &str| {
            written.iter().find(|(found, _)| found == key).map(|(_, value)| serde_json::from_str::<serde_json::Value>(value).expect("JSON")["value"].clone())
        };
        assert_eq!(value("/pacer/attributes/n5/rack"), Some("r5".into()), "{written:?}");
        assert_eq!(value("/pacer/attributes/n4/disk"), Some("hdd".into()), "{written:?}");
        assert_eq!(value("/pacer/attributes/n4/#x"), None, "{written:?}");
    })
    .await;
}

/// A resource deleted while it runs is stopped, and its status deleted: the stop makes
/// the status both changed and gone, and etcd refuses a transaction that writes and
/// deletes one key (it once did, silently, and the status said Started for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_deleted_while_it_runs_is_stopped_and_its_status_deleted() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        let names = ["web", "api"];
        let states: Vec<PathBuf> = names.iter().map(|name| cluster.path(&format!("{name}.state"))).collect();
        let manifests: String = names
            .iter()
            .zip(&states)
            .map(|(name, state)| dummy(name, "ocf:heartbeat:Dummy", &format!("state: {}", state.display()), "{name: monitor, interval: 1s}"))
            .collect();
        cluster.apply(&manifests).await;
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        for name in names {
            cluster.wait_role("n1", name, ObservedRole::Started).await;
        }
        let delete = names.iter().map(|name| ObjectKey { kind: Kind::Resource, name: Name(name.to_string()) }).collect();
        match apply(&cluster.store, &ApplyRequest { delete, ..ApplyRequest::default() }).await.expect("delete") {
            ApplyOutcome::Planned(_) => {}
            ApplyOutcome::Invalid(diagnostics) => panic!("refused: {diagnostics:?}"),
        }
        cluster.decide().await;
        for name in names {
            cluster.wait_for(&format!("{name}'s status deleted"), Duration::from_secs(30), || async { cluster.status("n1", name).await.is_none() }).await;
        }
        assert!(states.iter().all(|state| !state.exists()), "both stopped");
        assert!(!cluster.agent_logs().contains("cannot write this node's statuses"), "{}", cluster.agent_logs());
    })
    .await;
}

/// Every moment two copies of one resource were active, by the shared observer
/// (`pacer::local::witness`), every resource in the log taken as exclusive.
fn overlaps(testimony: &[Testimony]) -> Vec<String> {
    let rules = Rules { exclusive: testimony.iter().map(|line| line.resource.clone()).collect(), promoted_max: BTreeMap::new() };
    audit(testimony, &BTreeMap::new(), &rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_moves_in_order_without_two_copies_at_once() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        let member = |name: &str| dummy(name, "ocf:pacer:witness", &format!("log: {}, delay: \"1\"", witness.display()), "{name: monitor, interval: 2s}");
        cluster
            .apply(&format!(
                "{}{}---\napiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {{name: app}}\nspec: {{members: [ip, web]}}\n{}",
                member("ip"),
                member("web"),
                location("app", "n1", "100")
            ))
            .await;
        cluster.start_agent("n1", 2);
        cluster.start_agent("n2", 2);
        cluster.wait_probed("n1").await;
        cluster.wait_probed("n2").await;
        cluster.decide().await;
        cluster.wait_role("n1", "web", ObservedRole::Started).await;
        assert_eq!(cluster.role("n1", "ip").await, Some(ObservedRole::Started));

        // Prefer n2 now: both agents get their new assignment at once; n2 must wait
        // for n1's stops, and n1 stops web before ip.
        cluster.apply(&location("app", "n1", "-100")).await;
        cluster.decide().await;
        cluster.wait_role("n2", "web", ObservedRole::Started).await;
        let testimony = read_witness(&witness);
        assert_eq!(overlaps(&testimony), Vec::<String>::new(), "\n{}", cluster.agent_logs());
        let order: Vec<String> = testimony
            .iter()
            .filter(|line| line.phase == "end" && (line.operation == "start" || line.operation == "stop"))
            .map(|line| format!("{} {} {}", line.operation, line.resource, line.node))
            .collect();
        assert_eq!(order, ["start ip n1", "start web n1", "stop web n1", "stop ip n1", "start ip n2", "start web n2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_promotion_scores_reach_etcd_and_one_copy_is_promoted() {
    require("/usr/lib/ocf/resource.d/pacemaker/Stateful");
    bounded(async {
        let mut cluster = Cluster::new().await;
        cluster
            .apply(
                "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: db}\nspec:\n  agent: ocf:pacemaker:Stateful\n  operations:\n  - {name: monitor, interval: 1s, role: Promoted}\n  - {name: monitor, interval: 2s, role: Unpromoted}\n  clone: {promotable: {}}\n",
            )
            .await;
        cluster.start_agent("n1", 2);
        cluster.start_agent("n2", 2);
        cluster.wait_probed("n1").await;
        cluster.wait_probed("n2").await;
        cluster.decide().await;
        cluster.wait_role("n1", "db", ObservedRole::Unpromoted).await;
        cluster.wait_role("n2", "db", ObservedRole::Unpromoted).await;
        // Stateful sets its promotion score with crm_master after start.
        let attributes = cluster.etcd.dump(&format!("{PREFIX}/attributes/")).await;
        let keys: Vec<&str> = attributes.iter().map(|(key, _)| key.as_str()).collect();
        assert!(keys.contains(&"/pacer/attributes/n1/master-db"), "{attributes:?}");
        assert!(keys.contains(&"/pacer/attributes/n2/master-db"), "{attributes:?}");
        cluster.decide().await;
        cluster
            .wait_for("one promoted copy", Duration::from_secs(30), || async {
                let roles = [cluster.role("n1", "db").await, cluster.role("n2", "db").await];
                roles.iter().filter(|role| **role == Some(ObservedRole::Promoted)).count() == 1
                    && roles.iter().filter(|role| **role == Some(ObservedRole::Unpromoted)).count() == 1
            })
            .await;
        // The promoted copy's monitor expects 8 and is content with it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for node in ["n1", "n2"] {
            let status = cluster.status(node, "db").await.expect("status");
            assert_ne!(status.role, ObservedRole::Failed, "{status:?}");
            assert_eq!(status.failures, 0);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_monitor_is_reported_and_recovered_only_when_a_decision_says() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        let state = cluster.path("web.state");
        cluster.apply(&dummy("web", "ocf:heartbeat:Dummy", &format!("state: {}", state.display()), "{name: monitor, interval: 1s}")).await;
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        cluster.wait_role("n1", "web", ObservedRole::Started).await;
        // Let the first monitor run, then make the resource fail behind the agent's back.
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::remove_file(&state).expect("remove the state file");
        let failed_at = Instant::now();
        cluster.wait_role("n1", "web", ObservedRole::Failed).await;
        println!("resource failed -> failure visible in etcd (monitor interval 1s): {:?}", failed_at.elapsed());
        let status = cluster.status("n1", "web").await.expect("status");
        assert_eq!(status.failures, 1);
        assert_eq!(status.fail_counts.get("monitor_1000"), Some(&1), "{status:?}");
        assert!(status.history.iter().any(|record| record.operation == "monitor" && record.interval_ms == 1000 && record.rc == 7), "{status:?}");
        // The agent does not recover on its own.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(cluster.role("n1", "web").await, Some(ObservedRole::Failed), "no recovery without a decision");
        cluster.decide().await;
        assert_eq!(cluster.assignment("n1").await.expect("plan").resources[0].failures_seen, 1);
        cluster.wait_role("n1", "web", ObservedRole::Started).await;
        assert!(state.exists(), "restarted in place");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_kill_missing_agents_are_not_installed_and_failed_starts_move() {
    require("/usr/lib/ocf/resource.d/heartbeat/Delay");
    require("/usr/lib/ocf/resource.d/pacemaker/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        cluster
            .apply(&format!(
                "{}{}{}{}",
                dummy("slow", "ocf:heartbeat:Delay", "startdelay: 30, stopdelay: 0, mondelay: 0", "{name: start, timeout: 2s}"),
                dummy("ghost", "ocf:heartbeat:NoSuchAgent", "", ""),
                dummy("flaky", "ocf:pacemaker:Dummy", "fail_start_on: n1", ""),
                location("slow", "n1", "INFINITY") + &location("flaky", "n1", "50"),
            ))
            .await;
        cluster.start_agent("n1", 2);
        cluster.start_agent("n2", 2);
        cluster.wait_probed("n1").await;
        cluster.wait_probed("n2").await;
        let ghost = cluster.status("n1", "ghost").await.expect("ghost status");
        assert_eq!(ghost.role, ObservedRole::Stopped);
        assert_eq!(ghost.history.last().map(|record| record.status), Some(ExecStatus::NotInstalled), "{ghost:?}");
        cluster.decide().await;
        let took = cluster.wait_role("n1", "slow", ObservedRole::Failed).await;
        println!("start with a 2s timeout of a 30s Delay -> failed and reported: {took:?}");
        let slow = cluster.status("n1", "slow").await.expect("status");
        let last = slow.history.last().expect("history");
        assert_eq!((last.operation.as_str(), last.status), ("start", ExecStatus::Timeout), "{slow:?}");
        // The agent's process group was killed: no Delay agent left sleeping.
        let left = Command::new("pgrep").args(["-f", "resource.d/heartbeat/Delay start"]).output().expect("pgrep");
        let listing = Command::new("ps").args(["-eo", "pid,ppid,pgid,stat,etime,args"]).output().expect("ps");
        assert!(left.stdout.is_empty(), "Delay still starting: {}\n{}", String::from_utf8_lossy(&left.stdout), String::from_utf8_lossy(&listing.stdout));
        // pacemaker:Dummy fails to start on n1: banned there at once, recovered on n2.
        cluster.wait_role("n1", "flaky", ObservedRole::Failed).await;
        let flaky = cluster.status("n1", "flaky").await.expect("status");
        assert_eq!(flaky.fail_counts.get("start_0"), Some(&pacer::api::records::FAIL_COUNT_INFINITY));
        cluster.decide().await;
        cluster.wait_role("n1", "flaky", ObservedRole::Stopped).await;
        cluster.decide().await;
        cluster.wait_role("n2", "flaky", ObservedRole::Started).await;
        assert_ne!(cluster.role("n1", "ghost").await, Some(ObservedRole::Started));
        assert_ne!(cluster.role("n2", "ghost").await, Some(ObservedRole::Started));
    })
    .await;
}

/// The pid in a pidfile, if the file exists and the process lives.
fn live_pid(pidfile: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// Resumes a stopped etcd when dropped, whatever happened.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: SIGCONT to the etcd this test started.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_loss_stops_everything_before_the_lease_can_expire() {
    require("/usr/lib/ocf/resource.d/heartbeat/anything");
    bounded(async {
        let mut cluster = Cluster::new().await;
        let pidfile = cluster.path("sleeper.pid");
        cluster
            .apply(&dummy(
                "sleeper",
                "ocf:heartbeat:anything",
                &format!("binfile: /bin/sleep, cmdline_options: \"1000\", pidfile: {}", pidfile.display()),
                "{name: monitor, interval: 1s}",
            ))
            .await;
        let ttl = Duration::from_secs(2);
        cluster.start_agent("n1", ttl.as_secs());
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        cluster.wait_role("n1", "sleeper", ObservedRole::Started).await;
        let pid = live_pid(&pidfile).expect("the sleeper runs");
        // Cut the agent off: etcd stops answering anyone.
        let etcd_pid = i32::try_from(cluster.etcd.server.pid().expect("etcd pid")).expect("pid");
        let cut_at = Instant::now();
        // SAFETY: SIGSTOP to the etcd this test started; `Frozen` resumes it.
        unsafe {
            libc::kill(etcd_pid, libc::SIGSTOP);
        }
        let frozen = Frozen(etcd_pid);
        // SAFETY: signal 0 only checks that the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && cut_at.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stopped_after = cut_at.elapsed();
        println!("etcd unreachable -> resource process gone (lease TTL {ttl:?}): {stopped_after:?}");
        // The lease was last renewed before the cut: it cannot expire for the others
        // before cut + TTL. Everything must be down by then.
        assert!(stopped_after < ttl, "the resource outlived the lease: {stopped_after:?}\n{}", cluster.agent_logs());
        drop(frozen);
        // Back in touch: the agent claims the node anew (or resumes its lease, if that
        // still holds the node: everything here was stopped), probes (nothing runs) and
        // follows the assignment, which still says to run the sleeper here.
        // (The status in etcd still says Started from before the cut: wait for the
        // new process, then for the heartbeat of the new session.)
        let restarted =
            cluster.wait_for("the sleeper to run again", Duration::from_secs(30), || async { live_pid(&pidfile).is_some_and(|new| new != pid) }).await;
        println!("etcd back -> node claimed anew, probed and the resource started again: {restarted:?}");
        // The probe's Stopped is written before the start runs; the start's Started after.
        cluster.wait_role("n1", "sleeper", ObservedRole::Started).await;
        assert!(cluster.heartbeat("n1").await.is_some_and(|heartbeat| heartbeat.probed));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_resource_and_gives_up_the_node() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        let member = |name: &str| dummy(name, "ocf:pacer:witness", &format!("log: {}", witness.display()), "");
        cluster
            .apply(&format!(
                "{}{}---\napiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {{name: app}}\nspec: {{members: [a, b]}}\n",
                member("a"),
                member("b")
            ))
            .await;
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        cluster.wait_role("n1", "b", ObservedRole::Started).await;
        let agent = cluster.agents.get_mut("n1").expect("agent");
        agent.signal(libc::SIGTERM);
        let status = agent.wait_exit(Duration::from_secs(20)).expect("the agent exits");
        assert!(status.success(), "{status:?}");
        assert_eq!(cluster.role("n1", "a").await, Some(ObservedRole::Stopped));
        assert_eq!(cluster.role("n1", "b").await, Some(ObservedRole::Stopped));
        assert!(cluster.heartbeat("n1").await.is_none(), "the node's lease is given up");
        let stops: Vec<String> =
            read_witness(&witness).into_iter().filter(|line| line.operation == "stop" && line.phase == "end").map(|line| line.resource).collect();
        assert_eq!(stops, ["b", "a"], "stopped in reverse order");
    })
    .await;
}

/// A cluster of n1 and n2 (n2's lease TTL `n2_ttl` seconds) running `vm`, an
/// `allowMigrate` Dummy placed on n1.
async fn migratable_started_on_n1(n2_ttl: u64) -> Cluster {
    let mut cluster = Cluster::new().await;
    let vm = dummy("vm", "ocf:heartbeat:Dummy", "", "{name: monitor, interval: 1s}").replace("operations: [", "meta: {allowMigrate: true}\n  operations: [");
    cluster.apply(&format!("{vm}{}", location("vm", "n1", "100"))).await;
    cluster.start_agent("n1", 2);
    cluster.start_agent("n2", n2_ttl);
    cluster.wait_probed("n1").await;
    cluster.wait_probed("n2").await;
    cluster.decide().await;
    cluster.wait_role("n1", "vm", ObservedRole::Started).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_migrate_resource_moves_by_live_migration() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let cluster = migratable_started_on_n1(2).await;
        cluster.apply(&location("vm", "n1", "-100")).await;
        let decision = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        assert!(decision.plan.actions.iter().any(|action| action.verb == "Migrate" && action.resource == "vm"), "{:?}", decision.plan.actions);
        let took = cluster.wait_role("n2", "vm", ObservedRole::Started).await;
        println!("live migration decided -> running on the target: {took:?}");
        cluster.wait_role("n1", "vm", ObservedRole::Stopped).await;
        let target = cluster.status("n2", "vm").await.expect("target status");
        let record = target.history.iter().find(|record| record.operation == "migrate_from").expect("migrate_from in the target's history");
        assert_eq!((record.rc, record.migrate_source.as_deref(), record.migrate_target.as_deref()), (0, Some("n1"), Some("n2")));
        // The agents' logs show the handshake in order: migrate_to on n1, then migrate_from on n2.
        assert!(cluster.agents["n1"].log_text().contains("action=MigrateTo"), "{}", cluster.agent_logs());
        // The next decision sees it settled on n2 and changes nothing.
        let settled = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        assert!(settled.plan.actions.is_empty(), "{:?}", settled.plan.actions);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_migration_placed_back_on_its_source_is_stopped_there_and_started_again() {
    // Pacemaker aborts a partial migration whose resource is not placed on the
    // target: both halves stop, and it starts on the chosen node. Here the target's
    // agent is frozen (SIGSTOP; its lease outlives the test's steps) after n1's
    // migrate_to, and the resource is placed back on n1.
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let cluster = migratable_started_on_n1(60).await;
        cluster.agents["n2"].signal(libc::SIGSTOP);
        cluster.apply(&location("vm", "n1", "-100")).await;
        let decision = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        assert!(decision.plan.actions.iter().any(|action| action.verb == "Migrate" && action.resource == "vm"), "{:?}", decision.plan.actions);
        cluster.wait_role("n1", "vm", ObservedRole::Migrating).await;
        // Placed back on the source before the target took over.
        cluster.apply(&location("vm", "n1", "100")).await;
        let decision = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        let actions: Vec<String> = decision.plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect();
        assert_eq!(actions, vec!["Move vm n2 -> n1".to_string()], "both halves stop, it starts on n1");
        cluster.agents["n2"].signal(libc::SIGCONT);
        cluster.wait_role("n1", "vm", ObservedRole::Started).await;
        // n1 stopped what migrate_to left and started it again (the history keeps the
        // last one-shot operation: the start); n2 never ran it.
        let source = cluster.status("n1", "vm").await.expect("source status");
        assert!(source.history.iter().any(|record| record.operation == "start" && record.rc == 0), "{:?}", source.history);
        assert!(cluster.agents["n1"].log_text().contains("action=Stop"), "{}", cluster.agent_logs());
        let target = cluster.status("n2", "vm").await;
        assert!(target.iter().all(|status| !status.role.is_active() && !status.history.iter().any(|record| record.operation == "migrate_from")), "{target:?}");
        let settled = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        assert!(settled.plan.actions.is_empty(), "{:?}", settled.plan.actions);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_notifications_reach_every_active_instance() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        cluster
            .apply(&format!(
                "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: peers}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  clone: {{notify: true}}\n",
                witness.display()
            ))
            .await;
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        cluster.wait_role("n1", "peers", ObservedRole::Started).await;
        cluster.start_agent("n2", 2);
        cluster.wait_probed("n2").await;
        cluster.decide().await;
        cluster.wait_role("n2", "peers", ObservedRole::Started).await;
        // n1's copy hears of its own start afterwards (post), then of n2's start before
        // (pre) and after (post) it; n2's copy hears of its own start afterwards — and
        // nothing of n1's, which happened before it ran.
        let expected = ["n1 notify=post-start", "n1 notify=post-start", "n1 notify=pre-start", "n2 notify=post-start"];
        let started = Instant::now();
        let lines = loop {
            let lines: Vec<String> = std::fs::read_to_string(&witness)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains("op=notify") && line.contains("phase=end"))
                .map(|line| {
                    let field = |name: &str| line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string();
                    format!("{} notify={}", field("node"), field("notify"))
                })
                .collect();
            if lines.len() >= expected.len() || started.elapsed() > Duration::from_secs(10) {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{}", cluster.agent_logs());
        // n1 acknowledged n2's announcement in its status.
        let n1 = cluster.status("n1", "peers").await.expect("status");
        assert_eq!(n1.acks.get("n2/peers").map(|(_, seq)| *seq), Some(1), "{n1:?}");
        let n2 = cluster.status("n2", "peers").await.expect("status");
        assert_eq!(n2.notice.as_ref().map(|notice| (notice.operation.as_str(), notice.phase)), Some(("start", pacer::api::records::NoticePhase::Post)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_only_its_own_assignment() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let mut cluster = Cluster::new().await;
        // Decided for n1 while web may not run: n1 is told to run nothing.
        cluster.apply(&dummy("web", "ocf:heartbeat:Dummy", "", "").replace("operations: []", "operations: []\n  meta: {targetRole: Stopped}")).await;
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        let own = cluster.assignment("n1").await.expect("n1's plan");
        assert!(own.resources.is_empty());
        // An assignment for n10, which runs web, sits next to n1's key (`plans/n1` is
        // a prefix of `plans/n10`).
        cluster.apply(&dummy("web", "ocf:heartbeat:Dummy", "", "")).await;
        let decision = decide_once(&cluster.store, &cluster.guard).await.expect("decide");
        assert!(decision.plan.actions.iter().any(|action| action.verb == "Start"), "{:?}", decision.plan.actions);
        let mut other = cluster.assignment("n1").await.expect("n1's plan");
        assert_eq!(other.resources.len(), 1);
        other.node = "n10".into();
        let mut client = cluster.etcd.client().await;
        // Put back by hand, as no leader would: it names no revision it saw, so n1 does
        // not hold its withdrawal of a start it may have made meanwhile (`seenRevision`).
        let own = NodeAssignment { seen_revision: 0, ..own };
        client.put(cluster.store.keys().plan("n1"), serde_json::to_string(&own).expect("json"), None).await.expect("put");
        // Let n1 settle on its own (empty) plan, stopping web if it had started it.
        cluster.wait_role("n1", "web", ObservedRole::Stopped).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.put(cluster.store.keys().plan("n10"), serde_json::to_string(&other).expect("json"), None).await.expect("put");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(cluster.role("n1", "web").await, Some(ObservedRole::Stopped), "n1 followed n10's plan\n{}", cluster.agent_logs());
    })
    .await;
}

/// A joining node is told which of its probes a start elsewhere waits for
/// (`probeFirst`): it runs those first and, while it probes the rest, lists those it
/// found not running in its heartbeat (`probedAhead`), which the scheduler reads as
/// their probes' results — also one it had probed before it was asked. None of them
/// gets a status: a probe that finds nothing is not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_reports_first_the_probes_a_start_waits_for() {
    bounded(async {
        let cluster = Cluster::new().await;
        // A hollow node (the real agent, operations simulated: 500 ms each), one
        // operation at a time: probing six resources takes it about three seconds.
        let resources: String = ["a", "b", "c", "d", "e", "f"].iter().map(|name| dummy(name, "ocf:heartbeat:Dummy", "", "")).collect();
        cluster.apply(&format!("{resources}---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: h1}}\nspec: {{actionLimit: 1}}\n")).await;
        // What the scheduler tells a node that joins while f (probed last otherwise) waits for its probe there.
        let plan = serde_json::json!({"node": "h1", "inputRevision": 1, "state": "pending", "resources": [], "probeFirst": ["f"]});
        let mut client = cluster.etcd.client().await;
        client.put(cluster.store.keys().plan("h1"), plan.to_string(), None).await.expect("put");
        let log = cluster.path("hollow.log");
        let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["hollow", "--nodes", "h1", "--lease-ttl", "5", "--latency", "500ms", "--nodes-dir"])
            .arg(cluster.path("hollow"))
            .env("PACER_ETCD", cluster.etcd.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .env("PACER_LOG", "pacer=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start pacer hollow");
        let hollow = AgentProcess { child, log };
        cluster
            .wait_for("h1's heartbeat to say f was probed, while it probes the rest", Duration::from_secs(30), || async {
                cluster.heartbeat("h1").await.is_some_and(|heartbeat| !heartbeat.probed && heartbeat.probed_ahead == ["f"])
            })
            .await;
        // Then a (id order); asked for it once it is done, the node says so too.
        cluster
            .wait_for("a probed", Duration::from_secs(30), || async {
                hollow.log_text().lines().any(|line| line.contains("operation done") && line.contains("resource=a action=Probe"))
            })
            .await;
        let plan = serde_json::json!({"node": "h1", "inputRevision": 2, "state": "pending", "resources": [], "probeFirst": ["a"]});
        client.put(cluster.store.keys().plan("h1"), plan.to_string(), None).await.expect("put");
        cluster
            .wait_for("h1's heartbeat to say a and f were probed, while it probes the rest", Duration::from_secs(30), || async {
                cluster.heartbeat("h1").await.is_some_and(|heartbeat| !heartbeat.probed && heartbeat.probed_ahead == ["a", "f"])
            })
            .await;
        cluster.wait_probed("h1").await;
        let heartbeat = cluster.heartbeat("h1").await.expect("heartbeat");
        assert!(heartbeat.probed_ahead.is_empty(), "probed: the list is dropped: {:?}", heartbeat.probed_ahead);
        assert!(cluster.status("h1", "f").await.is_none(), "a probe that found nothing is not written\n{}", hollow.log_text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_kept_when_both_resources_move() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        // ip stops slowly: its old copy is still running while named could start on
        // the new node, which it must not (named is ordered after ip, colocated with it).
        cluster
            .apply(&format!(
                "{}{}---\napiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {{name: ip-then-named}}\nspec: {{first: ip, then: named}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Colocation\nmetadata: {{name: named-with-ip}}\nspec: {{resource: named, withResource: ip, score: INFINITY}}\n{}",
                dummy("ip", "ocf:pacer:witness", &format!("log: {}, delay: \"1\"", witness.display()), ""),
                dummy("named", "ocf:pacer:witness", &format!("log: {}", witness.display()), ""),
                location("ip", "n1", "100")
            ))
            .await;
        cluster.start_agent("n1", 2);
        cluster.start_agent("n2", 2);
        cluster.wait_probed("n1").await;
        cluster.wait_probed("n2").await;
        cluster.decide().await;
        cluster.wait_role("n1", "named", ObservedRole::Started).await;
        cluster.apply(&location("ip", "n1", "-100")).await;
        cluster.decide().await;
        cluster.wait_role("n2", "named", ObservedRole::Started).await;
        let order: Vec<String> = read_witness(&witness)
            .iter()
            .filter(|line| line.phase == "end" && (line.operation == "start" || line.operation == "stop"))
            .map(|line| format!("{} {} {}", line.operation, line.resource, line.node))
            .collect();
        assert_eq!(order, ["start ip n1", "start named n1", "stop named n1", "stop ip n1", "start ip n2", "start named n2"], "{}", cluster.agent_logs());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_within_its_lease_resumes_it_and_leaves_its_resources_alone() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        cluster.apply(&dummy("a", "ocf:pacer:witness", &format!("log: {}", witness.display()), "{name: monitor, interval: 1s}")).await;
        cluster.start_agent("n1", 5);
        cluster.wait_probed("n1").await;
        cluster.decide().await;
        cluster.wait_role("n1", "a", ObservedRole::Started).await;
        let lease = cluster.node_lease("n1").await.expect("n1 is claimed");

        // A second agent on the same state dir is refused: both would act on a.
        let mut second = cluster.spawn_agent("n1", 5, "-second", &[]);
        let status = second.wait_exit(Duration::from_secs(20)).expect("the second agent exits");
        assert!(!status.success(), "{status:?}");
        assert!(second.log_text().contains("another pacer agent holds"), "{}", second.log_text());

        // The agent crashes and is started again at once (an upgrade, a bug).
        let agent = cluster.agents.get_mut("n1").expect("agent");
        agent.child.kill().expect("kill -9 the agent");
        agent.child.wait().expect("reap the agent");
        cluster.start_agent("n1", 5);
        let pid = cluster.agents["n1"].child.id();
        cluster
            .wait_for("the restarted agent to probe", Duration::from_secs(30), || async {
                cluster.heartbeat("n1").await.is_some_and(|heartbeat| heartbeat.pid == pid && heartbeat.probed)
            })
            .await;
        assert_eq!(cluster.node_lease("n1").await, Some(lease), "the lease was resumed, not replaced\n{}", cluster.agent_logs());
        assert_eq!(cluster.role("n1", "a").await, Some(ObservedRole::Started));
        cluster.decide().await;
        // Monitors run again (1 s) and still nothing is restarted.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(cluster.role("n1", "a").await, Some(ObservedRole::Started));
        let operations: Vec<String> = read_witness(&witness).into_iter().filter(|line| line.phase == "begin").map(|line| line.operation).collect();
        assert_eq!(operations, ["start"], "the resource ran on untouched\n{}", cluster.agent_logs());

        // Without its lease file the restarted agent could not resume it: it would wait
        // for the old lease to lapse (and a scheduler would fence the node).
        assert!(cluster.path("n1/lease").exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_died_during_a_start_does_not_resume_its_lease() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        let witness = cluster.path("witness.log");
        // The start takes 3 s: the agent dies while it runs, and the orphaned start
        // goes on (its process group outlives the agent).
        cluster.apply(&dummy("slow", "ocf:pacer:witness", &format!("log: {}, delay: 3", witness.display()), "")).await;
        cluster.start_agent("n1", 5);
        cluster.wait_probed("n1").await;
        let lease = cluster.node_lease("n1").await.expect("n1 is claimed");
        cluster.decide().await;
        cluster
            .wait_for("the start to begin", Duration::from_secs(30), || async {
                read_witness(&witness).iter().any(|line| line.operation == "start" && line.phase == "begin")
            })
            .await;
        let agent = cluster.agents.get_mut("n1").expect("agent");
        agent.child.kill().expect("kill -9 the agent");
        agent.child.wait().expect("reap the agent");
        assert_eq!(cluster.status("n1", "slow").await.and_then(|status| status.pending).as_deref(), Some("start"), "the start was recorded before it ran");
        cluster.start_agent("n1", 5);
        let pid = cluster.agents["n1"].child.id();
        cluster
            .wait_for("the restarted agent to claim the node", Duration::from_secs(30), || async {
                cluster.heartbeat("n1").await.is_some_and(|heartbeat| heartbeat.pid == pid)
            })
            .await;
        // It waited for the old lease to lapse (a scheduler would have fenced the node
        // meanwhile: it was lost with a start under way) and claimed it with a new one.
        assert_ne!(cluster.node_lease("n1").await, Some(lease), "a lease with a start under way was resumed\n{}", cluster.agent_logs());
        assert!(cluster.agent_logs().contains("not resuming its lease"), "{}", cluster.agent_logs());
    })
    .await;
}

/// The most operations of the witness log running at once on one node: each begins at
/// its `begin` line and ends at its `end` line.
fn most_at_once(testimony: &[Testimony], operation: &str) -> usize {
    let mut events: Vec<(u128, i32)> = testimony
        .iter()
        .filter(|line| line.operation == operation)
        .filter_map(|line| match line.phase.as_str() {
            "begin" => Some((line.ns, 1)),
            "end" => Some((line.ns, -1)),
            _ => None,
        })
        .collect();
    // An end and a begin at the same instant: the end first.
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_node_limit_is_held_to_it_and_the_lease_is_kept() {
    bounded(async {
        let mut cluster = Cluster::new().await;
        cluster
            .apply(
                "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false, nodeActionLimit: 2, loadThreshold: 0}\n",
            )
            .await;
        let witness = cluster.path("witness.log");
        cluster.start_agent("n1", 2);
        cluster.wait_probed("n1").await;
        let lease = cluster.node_lease("n1").await.expect("n1 holds its lease");
        // Twelve one-second starts at once, on a node that may run two operations.
        let burst: String = (0..12).map(|index| dummy(&format!("b{index}"), "ocf:pacer:witness", &format!("log: {}, delay: \"1\"", witness.display()), "")).collect();
        cluster.apply(&burst).await;
        cluster.wait_probed("n1").await;
        let began = Instant::now();
        cluster.decide().await;
        for index in 0..12 {
            cluster.wait_role("n1", &format!("b{index}"), ObservedRole::Started).await;
        }
        println!("12 one-second starts under a limit of 2: all started after {:?}", began.elapsed());
        let testimony = read_witness(&witness);
        assert_eq!(testimony.iter().filter(|line| line.operation == "start" && line.phase == "end").count(), 12, "{testimony:?}");
        assert_eq!(most_at_once(&testimony, "start"), 2, "the limit is used and never exceeded");
        assert!(began.elapsed() >= Duration::from_secs(6), "twelve one-second starts two at a time take six seconds at least");
        assert_eq!(cluster.node_lease("n1").await, Some(lease), "the node kept its lease throughout");
        assert!(!cluster.agent_logs().contains(pacer::agent::SELF_FENCING_LOG), "no self-fencing:\n{}", cluster.agent_logs());
    })
    .await;
}

#[tokio::test]
async fn a_state_dir_others_could_change_is_refused() {
    bounded(async {
        let cluster = Cluster::new().await;
        // The agent must exit at once; one that accepted the dir runs on, and is
        // ended by its PID after a while (the test then fails).
        let start = |state_dir: &Path| {
            let log = cluster.path("refused.log");
            let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
                .args(["agent", "--node", "n1", "--lease-ttl", "5", "--state-dir"])
                .arg(state_dir)
                .env("PACER_ETCD", cluster.etcd.endpoint())
                .env("PACER_PREFIX", PREFIX)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("run pacer agent");
            let started = Instant::now();
            let status = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if started.elapsed() > Duration::from_secs(10) {
                    pacer::local::child::terminate(&mut child, Duration::from_secs(20));
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            (status, std::fs::read_to_string(&log).unwrap_or_default())
        };
        use std::os::unix::fs::PermissionsExt;
        let writable = cluster.path("writable");
        std::fs::create_dir(&writable).expect("mkdir");
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let link = cluster.path("link");
        std::os::unix::fs::symlink(&writable, &link).expect("symlink");
        let mut cases = vec![(writable.clone(), "group or others may write it"), (link.clone(), "it is a symlink")];
        // SAFETY: geteuid(2) takes nothing and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let foreign = cluster.path("foreign");
            std::fs::create_dir(&foreign).expect("mkdir");
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
            cases.push((foreign, "owned by uid 65534"));
        } else {
            eprintln!("skipping the other-user case: only root can hand a directory to another user");
        }
        for (state_dir, reason) in cases {
            let (status, stderr) = start(&state_dir);
            assert!(status.is_some_and(|status| !status.success()), "{} was accepted: {stderr}", state_dir.display());
            assert!(stderr.contains(&state_dir.display().to_string()) && stderr.contains(reason), "{stderr}");
            assert!(!state_dir.join("exec").exists(), "{} was used", state_dir.display());
        }
        // A missing state dir is made, 0700.
        let fresh = cluster.path("fresh/n1");
        let mut agent = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["agent", "--node", "n1", "--lease-ttl", "5", "--state-dir"])
            .arg(&fresh)
            .env("PACER_ETCD", cluster.etcd.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pacer agent");
        let started = Instant::now();
        while !fresh.join("exec/bin/crm_node").exists() && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pacer::local::child::terminate(&mut agent, Duration::from_secs(20));
        let mode = std::fs::metadata(&fresh).expect("the state dir was made").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    })
    .await;
}
