//! The operator's verbs on a live cluster (real etcd, `pacer scheduler`, two `pacer
//! agent`s, the witness agent): `cleanup` and `refresh` through requests the agents
//! apply, node standby and maintenance, `drain`, the cluster's maintenance mode,
//! `enable`/`disable`, `manage`/`unmanage` and `restart`; and the bad input each
//! refuses with one line, exit 1 and no etcd write.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::local::witness::{Testimony, read_witness};
use pacer::store::Store;
use serde_json::Value;

const PREFIX: &str = "/pacer";
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const TTL: u64 = 2;

async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test exceeded its timeout");
}

/// A process this test started, ended by PID when dropped.
struct Process {
    child: Child,
    name: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        if !pacer::local::child::terminate(&mut self.child, Duration::from_secs(15)) {
            eprintln!("{} did not stop; killed it", self.name);
        }
    }
}

struct Cluster {
    // Dropped in order: agents and the scheduler, then etcd.
    processes: BTreeMap<String, Process>,
    store: Store,
    etcd: TestEtcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// etcd, a scheduler and agents n1 and n2, fencing off, `objects` applied.
    async fn start(objects: &str) -> Cluster {
        let etcd = TestEtcd::start();
        let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["nodes", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("layout");
        }
        let mut cluster = Cluster { processes: BTreeMap::new(), store, etcd, dir };
        let policy = "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n";
        let nodes: String = ["n1", "n2"].iter().map(|node| format!("---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\n")).collect();
        cluster.apply(&format!("{policy}{nodes}---\n{objects}"));
        let endpoint = cluster.etcd.endpoint();
        cluster.spawn("s1", &endpoint, &["scheduler".into(), "--lease-ttl".into(), TTL.to_string(), "--identity".into(), "s1".into()]);
        cluster.start_agent("n1");
        cluster.start_agent("n2");
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, name: &str, endpoint: &str, args: &[String]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path(&format!("logs/{name}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(args)
            .env("PACER_ETCD", endpoint)
            .env("PACER_PREFIX", PREFIX)
            .env("PACER_LOG", "pacer=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pacer");
        self.processes.insert(name.to_string(), Process { child, name: name.to_string() });
    }

    fn start_agent(&mut self, node: &str) {
        let state_dir = self.path(&format!("nodes/{node}"));
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
        let args = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--lease-ttl".into(),
            TTL.to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--agents-dir".into(),
            agents.display().to_string(),
        ];
        let endpoint = self.etcd.endpoint();
        self.spawn(node, &endpoint, &args);
    }

    /// Stops a node's agent (SIGTERM: it stops its resources and gives up its lease).
    fn stop_agent(&mut self, node: &str) {
        drop(self.processes.remove(node));
    }

    fn logs(&self) -> String {
        self.processes
            .keys()
            .map(|name| format!("--- {name}\n{}", std::fs::read_to_string(self.path(&format!("logs/{name}.log"))).unwrap_or_default()))
            .collect()
    }

    /// `pacer ARGS`.
    fn pacer(&self, args: &[&str]) -> Output {
        common::pacer(&self.etcd.endpoint(), PREFIX, args, None)
    }

    /// `pacer ARGS`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.pacer(args);
        assert!(output.status.success(), "pacer {args:?}: {}{}\n{}", common::text(&output.stdout), common::text(&output.stderr), self.logs());
        common::text(&output.stdout)
    }

    /// `pacer ARGS`, which must be refused: exit 1, one line on stderr; that line.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.pacer(args);
        let stderr = common::text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "pacer {args:?}: {}{stderr}", common::text(&output.stdout));
        assert_eq!(stderr.lines().count(), 1, "pacer {args:?}: one line: {stderr}");
        stderr
    }

    fn apply(&self, yaml: &str) {
        let output = common::pacer(&self.etcd.endpoint(), PREFIX, &["apply", "-f", "-"], Some(yaml));
        assert!(output.status.success(), "apply: {}", common::text(&output.stderr));
    }

    /// `pacer status -o json`.
    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "-o", "json"])).expect("status JSON")
    }

    /// Nodes where `resource` (an instance name) runs, per `pacer status`.
    fn running(&self, resource: &str) -> Vec<String> {
        let status = self.status();
        let mut nodes: Vec<String> = status["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["name"].as_str().is_some_and(|name| name == resource || name.starts_with(&format!("{resource}:"))))
            .filter(|entry| entry["node"].is_string() && entry["role"] != "Stopped")
            .filter_map(|entry| entry["node"].as_str().map(str::to_string))
            .collect();
        nodes.sort();
        nodes
    }

    /// The fail counts `pacer status` shows, as `resource@node`.
    fn failures(&self) -> Vec<String> {
        let status = self.status();
        status["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| format!("{}@{}", entry["resource"].as_str().unwrap_or(""), entry["node"].as_str().unwrap_or("")))
            .collect()
    }

    /// A stored record, decoded.
    async fn record(&self, key: &str) -> Option<Value> {
        let dump = self.etcd.dump(&format!("{PREFIX}/{key}")).await;
        dump.into_iter().find(|(found, _)| found == &format!("{PREFIX}/{key}")).and_then(|(_, value)| serde_json::from_str(&value).ok())
    }

    /// Keys under `requests/`.
    async fn requests(&self) -> Vec<String> {
        self.etcd.dump(&format!("{PREFIX}/requests/")).await.into_iter().map(|(key, _)| key).collect()
    }

    async fn revision(&self) -> i64 {
        self.store.current_revision().await.expect("revision")
    }

    /// The revision once the cluster has written nothing for 2 s (an idle cluster
    /// writes nothing but lease keep-alives, which are no revisions): what a command
    /// that must write nothing is measured against.
    async fn quiet_revision(&self) -> i64 {
        let started = Instant::now();
        let mut last = (self.revision().await, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.revision().await;
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(2) {
                return now;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the cluster never went quiet\n{}", self.logs());
        }
    }

    async fn wait_for(&self, what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}\nstatus: {}\n{}", self.status(), self.logs());
    }

    /// The spec of a stored object, as `pacer get -o json` shows it.
    fn spec(&self, kind: &str, name: &str) -> Value {
        let object: Value = serde_json::from_str(&self.ok(&["get", kind, name, "-o", "json"])).expect("object JSON");
        object["spec"].clone()
    }
}

/// A witness resource logging to `log`, with a 1 s monitor and `extra` (indented
/// spec lines).
fn witness(name: &str, log: &Path, extra: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations: [{{name: monitor, interval: 1s}}]\n{extra}",
        log.display()
    )
}

/// The witness's testimony about `resource` (`name` or `name:N`), from line `from` on.
fn testimony(log: &Path, resource: &str, from: usize) -> Vec<Testimony> {
    read_witness(log).into_iter().skip(from).filter(|line| line.resource == resource || line.resource.starts_with(&format!("{resource}:"))).collect()
}

/// Successful ends of `operation` in `lines`, by node.
fn ended(lines: &[Testimony], operation: &str) -> Vec<String> {
    lines.iter().filter(|line| line.operation == operation && line.phase == "end" && line.rc == Some(0)).map(|line| line.node.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_clears_a_failure_past_the_threshold_and_refresh_probes_again() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("witness.log");
        let prefer_n1 = "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: web-on-n1}\nspec: {resource: web, node: n1, score: 100}\n";
        let mut cluster = Cluster::start(&format!("{}{prefer_n1}", witness("web", &log, "  meta: {migrationThreshold: 1}\n"))).await;
        cluster.wait_for("web on n1", Duration::from_secs(30), || cluster.running("web") == ["n1"]).await;

        // Nothing failed: cleanup says so, exits 1 and writes nothing.
        let before = cluster.quiet_revision().await;
        let notice = cluster.refused(&["cleanup", "web"]);
        assert_eq!(notice, "notice: nothing to clean up: no failures recorded of web\n");
        cluster.refused(&["cleanup"]);
        assert_eq!(cluster.revision().await, before, "no etcd write");

        // web dies on n1 (its state file goes): one monitor failure, the threshold, so
        // it moves to n2 and stays off n1.
        let state = cluster.path("nodes/n1/rsctmp/witness-web.state");
        std::fs::remove_file(&state).expect("web's state file on n1");
        cluster.wait_for("web to move to n2", Duration::from_secs(30), || cluster.running("web") == ["n2"]).await;
        cluster.wait_for("the failure on n1 to show", Duration::from_secs(10), || cluster.failures() == ["web@n1"]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(cluster.running("web"), ["n2"], "banned from n1 by its fail count");

        // Bad input: one line, exit 1, nothing written.
        let before = cluster.quiet_revision().await;
        assert_eq!(cluster.refused(&["cleanup", "nosuch"]), "error: no resource, group or fence device named nosuch\n");
        assert_eq!(cluster.refused(&["cleanup", "web", "--node", "n9"]), "error: node n9 is not a member of the cluster (no Node object, never seen)\n");
        assert!(cluster.refused(&["cleanup", "web", "--operation", "monitor", "--interval", "soon"]).starts_with("error: --interval: invalid duration"));
        assert!(cluster.refused(&["cleanup", "web", "--operation", "frobnicate"]).starts_with("error: unknown operation frobnicate"));
        assert!(cluster.refused(&["cleanup", "web", "--wait=soon"]).starts_with("error: invalid value 'soon' for '--wait"));
        cluster.refused(&["cleanup", "web", "--node", "n2"]);
        cluster.refused(&["cleanup", "web", "--operation", "start"]);
        // A dry run says what it would clean and writes nothing.
        let planned = cluster.ok(&["cleanup", "web", "--dry-run"]);
        assert_eq!(planned, "would clean up:\n  web on n1 (monitor_1000=1)\n");
        assert_eq!(cluster.revision().await, before, "no etcd write");

        // Cleaned up (the monitor's failures only, at its interval): the fail count is
        // gone, and web may return to n1, which it prefers.
        let started = Instant::now();
        let printed = cluster.ok(&["cleanup", "web", "--operation", "monitor", "--interval", "1s", "--wait=30s"]);
        println!("cleanup --wait: {:?}", started.elapsed());
        assert!(printed.starts_with("cleanup requested for:\n  web on n1 (monitor_1000=1)\n"), "{printed}");
        assert!(cluster.requests().await.is_empty(), "the agent deleted its request");
        let status = cluster.record("status/n1/web").await.expect("web's status on n1");
        assert!(status.get("failCounts").is_none() && status.get("lastFailure").is_none(), "{status}");
        assert_eq!(status["failures"], 1, "the counter decisions echo is kept: {status}");
        assert!(cluster.failures().is_empty());
        assert_eq!(cluster.running("web"), ["n1"], "--wait returns once the cluster settled: web is back on n1");

        // Refresh: web's history on n1 is forgotten and probed again; it keeps running.
        let call_id = |status: &Value| status["history"].as_array().into_iter().flatten().filter_map(|record| record["callId"].as_i64()).max().unwrap_or(0);
        let last_call = call_id(&cluster.record("status/n1/web").await.expect("status"));
        let lines = read_witness(&log).len();
        let printed = cluster.ok(&["refresh", "web", "--node", "n1", "--wait=30s"]);
        assert_eq!(printed.lines().take(2).collect::<Vec<_>>(), ["refresh requested for:", "  web on n1"]);
        let status = cluster.record("status/n1/web").await.expect("status");
        let one_shot: Vec<&Value> =
            status["history"].as_array().into_iter().flatten().filter(|record| record["intervalMs"].as_u64().unwrap_or(0) == 0).collect();
        assert_eq!(one_shot.len(), 1, "{status}");
        assert_eq!(one_shot[0]["operation"], "monitor", "the one-shot operation is the new probe: {status}");
        assert!(call_id(&status) > last_call, "{status}");
        assert_eq!(status["role"], "Started");
        assert!(ended(&testimony(&log, "web", lines), "start").is_empty() && ended(&testimony(&log, "web", lines), "stop").is_empty(), "not restarted");
        assert_eq!(cluster.running("web"), ["n1"]);

        // A request for a node whose agent is down waits for it, and says so.
        cluster.stop_agent("n2");
        cluster
            .wait_for("n2 to be offline", Duration::from_secs(20), || {
                cluster.status()["nodes"].as_array().into_iter().flatten().any(|node| node["name"] == "n2" && node["state"] == "offline")
            })
            .await;
        let printed = cluster.ok(&["refresh", "web", "--node", "n2"]);
        assert!(printed.contains("web on n2 — node down: applied when its agent returns"), "{printed}");
        assert!(printed.contains("the requests for n2 wait until their agents return"), "{printed}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(cluster.requests().await.len(), 1, "kept until n2's agent returns");
        // pacer status shows what waits for an agent.
        let waiting = cluster.status()["requests"].as_array().cloned().unwrap_or_default();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        assert_eq!((&waiting[0]["node"], &waiting[0]["kind"]), (&Value::from("n2"), &Value::from("refresh")), "{waiting:?}");
        let text = cluster.ok(&["status"]);
        assert!(text.contains("Cleanups and refreshes waiting for their node's agent:"), "{text}");
        let waited = cluster.pacer(&["refresh", "web", "--node", "n2", "--wait=2s"]);
        assert_eq!(waited.status.code(), Some(1));
        assert!(common::text(&waited.stderr).contains("not yet applied on n2 (n2 down: the request waits for its agent)"), "{}", common::text(&waited.stderr));
        cluster.start_agent("n2");
        let started = Instant::now();
        while !cluster.requests().await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "n2's agent did not apply its requests\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("agent back -> its two refresh requests applied: {:?}", started.elapsed());
        assert_eq!(cluster.running("web"), ["n1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_drain_and_maintenance_through_the_node_and_policy_objects() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("witness.log");
        let clone = "  clone: {}\n";
        let cluster = Cluster::start(&format!("{}{}{}", witness("a", &log, ""), witness("b", &log, ""), witness("pool", &log, clone))).await;
        cluster
            .wait_for("everything to run", Duration::from_secs(30), || {
                cluster.running("a").len() == 1 && cluster.running("b").len() == 1 && cluster.running("pool") == ["n1", "n2"]
            })
            .await;

        // Unknown nodes: one line, exit 1, nothing written.
        let before = cluster.quiet_revision().await;
        assert_eq!(cluster.refused(&["node", "standby", "n9"]), "error: node n9 is not a member of the cluster (no Node object, never seen)\n");
        cluster.refused(&["node", "standby", "n1", "n9"]);
        cluster.refused(&["drain", "n9"]);
        assert!(cluster.refused(&["drain", "n1", "--timeout", "soon"]).starts_with("error: --timeout: invalid duration"));
        assert_eq!(
            cluster.ok(&["node", "standby", "--all", "--dry-run"]),
            "(dry run) Node/n1: set spec.standby: true\n(dry run) Node/n2: set spec.standby: true\n"
        );
        assert_eq!(cluster.revision().await, before, "no etcd write");

        // Standby: nothing runs on n1 once settled; unstandby lets the clone back.
        assert_eq!(cluster.ok(&["node", "standby", "n1", "--wait=30s"]).lines().next(), Some("Node/n1: set spec.standby: true"));
        assert_eq!(cluster.spec("node", "n1")["standby"], true);
        assert_eq!(cluster.running("a"), ["n2"]);
        assert_eq!(cluster.running("pool"), ["n2"]);
        assert_eq!(cluster.ok(&["node", "standby", "n1"]), "Node/n1: unchanged, already spec.standby: true\n");
        cluster.ok(&["node", "unstandby", "n1", "--wait=30s"]);
        assert!(cluster.spec("node", "n1").get("standby").is_none());
        assert_eq!(cluster.running("pool"), ["n1", "n2"]);

        // Drain: n2 empties.
        let started = Instant::now();
        let printed = cluster.ok(&["drain", "n2", "--timeout", "30s"]);
        println!("drain of n2: {:?}", started.elapsed());
        assert!(printed.ends_with("n2 is drained: nothing runs there\n"), "{printed}");
        assert!(cluster.running("a") != ["n2"] && cluster.running("b") != ["n2"] && cluster.running("pool") == ["n1"]);
        // What left n2 starts on n1 (drain returns once n2 is empty).
        cluster.wait_for("a and b on n1", Duration::from_secs(30), || cluster.running("a") == ["n1"] && cluster.running("b") == ["n1"]).await;
        cluster.ok(&["node", "unstandby", "n2", "--wait=30s"]);

        // A drain that cannot finish: an unmanaged resource stays where it is.
        cluster.ok(&["unmanage", "a", "--wait=30s"]);
        assert_eq!(cluster.spec("resource", "a")["meta"]["isManaged"], false);
        assert_eq!(cluster.refused(&["restart", "a"]), "error: a is unmanaged: the cluster would not stop it (`pacer manage a` first)\n");
        let a_on = cluster.running("a").remove(0);
        let other = if a_on == "n1" { "n2" } else { "n1" };
        let output = cluster.pacer(&["drain", &a_on, "--timeout", "3s"]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = common::text(&output.stderr);
        assert!(stderr.starts_with(&format!("error: not reached within 3s: {a_on} is in standby, and still runs ")), "{stderr}");
        assert!(stderr.contains("a (Started)") && stderr.lines().count() == 1, "{stderr}");
        cluster.wait_for("the rest to leave", Duration::from_secs(30), || cluster.running("b") == [other] && cluster.running("pool") == [other]).await;
        assert_eq!(cluster.running("a"), std::slice::from_ref(&a_on));
        cluster.ok(&["manage", "a"]);
        assert!(cluster.spec("resource", "a").get("meta").is_none(), "isManaged removed");
        cluster.wait_for("a to leave the node in standby", Duration::from_secs(30), || cluster.running("a") == [other]).await;
        cluster.ok(&["node", "unstandby", &a_on, "--wait=30s"]);

        // Node maintenance: set and cleared in the Node object.
        cluster.ok(&["node", "maintenance", "n2"]);
        assert_eq!(cluster.spec("node", "n2")["maintenance"], true);
        cluster.ok(&["node", "unmaintenance", "n2", "--wait=30s"]);
        assert!(cluster.spec("node", "n2").get("maintenance").is_none());

        // Cluster maintenance: a disabled resource is left running until it ends.
        let lines = read_witness(&log).len();
        cluster.ok(&["maintenance", "on"]);
        assert_eq!(cluster.spec("clusterpolicy", "cluster")["maintenanceMode"], true);
        let b_on = cluster.running("b");
        assert_eq!(b_on.len(), 1);
        cluster.ok(&["disable", "b"]);
        assert_eq!(cluster.spec("resource", "b")["meta"]["targetRole"], "Stopped");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(cluster.running("b"), b_on, "left alone in maintenance mode");
        assert!(ended(&testimony(&log, "b", lines), "stop").is_empty());
        cluster.ok(&["maintenance", "off", "--wait=30s"]);
        assert_eq!(cluster.spec("clusterpolicy", "cluster")["maintenanceMode"], false);
        assert!(cluster.running("b").is_empty(), "disabled: stopped once maintenance is off");
        assert_eq!(ended(&testimony(&log, "b", lines), "stop"), b_on);
        cluster.ok(&["enable", "b", "--wait=30s"]);
        assert_eq!(cluster.running("b").len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_stops_and_starts_again_and_leaves_nothing_behind() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("witness.log");
        let objects =
            format!("{}{}{}", witness("web", &log, ""), witness("pool", &log, "  clone: {}\n"), witness("slow", &log, "  meta: {targetRole: Stopped}\n"));
        let cluster = Cluster::start(&objects).await;
        cluster.wait_for("web and pool to run", Duration::from_secs(30), || cluster.running("web").len() == 1 && cluster.running("pool") == ["n1", "n2"]).await;
        let web_on = cluster.running("web");

        // Bad input.
        let before = cluster.quiet_revision().await;
        assert_eq!(cluster.refused(&["restart", "nosuch"]), "error: no resource, group or fence device named nosuch\n");
        cluster.refused(&["restart", "web", "--node", "n9"]);
        assert_eq!(cluster.refused(&["restart", "slow"]), "error: slow is not running: nothing to restart\n");
        assert_eq!(cluster.refused(&["enable", "nosuch"]), "error: no resource, group or fence device named nosuch\n");
        cluster.refused(&["disable", "nosuch"]);
        cluster.refused(&["manage", "nosuch"]);
        cluster.refused(&["unmanage", "nosuch"]);
        assert!(cluster.refused(&["restart", "web", "--wait=soon"]).starts_with("error: invalid value"));
        let planned = cluster.ok(&["restart", "web", "--dry-run"]);
        assert!(planned.starts_with("(dry run) would set spec.meta.targetRole: Stopped on Resource/web\n"), "{planned}");
        assert_eq!(cluster.revision().await, before, "no etcd write");

        // Disable stops, enable starts.
        let lines = read_witness(&log).len();
        cluster.ok(&["disable", "web", "--wait=30s"]);
        assert!(cluster.running("web").is_empty());
        assert_eq!(ended(&testimony(&log, "web", lines), "stop"), web_on);
        cluster.ok(&["enable", "web", "--wait=30s"]);
        assert_eq!(cluster.running("web").len(), 1);
        let web_on = cluster.running("web");

        // Restart: stopped, then started again where it ran; the target role as before.
        let lines = read_witness(&log).len();
        let started = Instant::now();
        let printed = cluster.ok(&["restart", "web", "--wait=30s"]);
        println!("restart web: {:?}", started.elapsed());
        assert_eq!(
            printed,
            format!(
                "set spec.meta.targetRole: Stopped on Resource/web\nweb stopped\nput spec.meta.targetRole back: (removed)\nweb runs again on {}\n",
                web_on[0]
            )
        );
        let lines_after = testimony(&log, "web", lines);
        assert_eq!(ended(&lines_after, "stop"), web_on);
        assert_eq!(ended(&lines_after, "start"), web_on);
        assert!(cluster.spec("resource", "web").get("meta").is_none(), "nothing left behind");

        // Restart on one node of a clone: only that instance; the ban is gone after.
        let lines = read_witness(&log).len();
        let printed = cluster.ok(&["restart", "pool", "--node", "n1", "--wait=30s", "-o", "json"]);
        let outcome: Value = serde_json::from_str(&printed).expect("JSON");
        assert_eq!(outcome["runsOn"], serde_json::json!(["n1", "n2"]), "{outcome}");
        let pool = testimony(&log, "pool", lines);
        assert_eq!(ended(&pool, "stop"), ["n1"]);
        assert_eq!(ended(&pool, "start"), ["n1"]);
        assert!(!cluster.ok(&["get", "locations", "-o", "json"]).contains("pool-restart-n1"), "the ban is deleted");

        // A restart that cannot finish in time is undone all the same: slow takes 4 s
        // to stop.
        cluster.apply(&witness("slow", &log, "").replace("  params: {log:", "  params: {delay: '4', log:"));
        cluster.wait_for("slow to run", Duration::from_secs(30), || cluster.running("slow").len() == 1).await;
        let output = cluster.pacer(&["restart", "slow", "--wait=1s"]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = common::text(&output.stderr);
        assert!(stderr.starts_with("error: set spec.meta.targetRole: Stopped on Resource/slow; not stopped within 1s: slow still runs on"), "{stderr}");
        assert!(stderr.trim_end().ends_with("; put spec.meta.targetRole back: (removed)"), "{stderr}");
        assert!(cluster.spec("resource", "slow").get("meta").is_none(), "nothing left behind");
        cluster.wait_for("slow to run again", Duration::from_secs(30), || cluster.running("slow").len() == 1).await;

        // Interrupted (Ctrl-C) while slow stops: undone all the same.
        let restart = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["restart", "slow", "--wait=30s"])
            .env("PACER_ETCD", cluster.etcd.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pacer restart");
        cluster.wait_for("the restart to stop slow", Duration::from_secs(10), || cluster.spec("resource", "slow")["meta"]["targetRole"] == "Stopped").await;
        // SAFETY: SIGINT to the child this test started.
        unsafe {
            libc::kill(restart.id() as i32, libc::SIGINT);
        }
        let output = restart.wait_with_output().expect("pacer restart ends");
        assert_eq!(output.status.code(), Some(1));
        let stderr = common::text(&output.stderr);
        assert!(stderr.contains("not stopped: interrupted; put spec.meta.targetRole back: (removed)"), "{stderr}");
        assert!(cluster.spec("resource", "slow").get("meta").is_none(), "nothing left behind");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_create_what_is_missing_and_refuse_strangers() {
    bounded(async {
        let etcd = TestEtcd::start();
        let endpoint = etcd.endpoint();
        let pacer = |args: &[&str]| common::pacer(&endpoint, PREFIX, args, None);
        // No ClusterPolicy yet: maintenance mode creates it, with every other field at
        // its default.
        let output = pacer(&["maintenance", "on"]);
        assert!(output.status.success(), "{}", common::text(&output.stderr));
        assert_eq!(common::text(&output.stdout), "ClusterPolicy/cluster: created with spec.maintenanceMode: true\n");
        let policy: Value = serde_json::from_slice(&pacer(&["get", "clusterpolicy", "cluster", "-o", "json"]).stdout).expect("JSON");
        assert_eq!(policy["spec"]["maintenanceMode"], true);
        assert_eq!(policy["spec"]["stonithEnabled"], true, "the other fields keep their defaults");
        // A node never seen and never configured is no member; one an agent claimed
        // once (its activity record) is, and gets its Node object.
        let output = pacer(&["node", "standby", "n5"]);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(common::text(&output.stderr), "error: node n5 is not a member of the cluster (no Node object, never seen)\n");
        let mut client = etcd.client().await;
        client.put(format!("{PREFIX}/nodes/n5/activity"), r#"{"node":"n5","running":0,"queued":0,"limit":4}"#, None).await.expect("put");
        let output = pacer(&["node", "standby", "n5", "-o", "json"]);
        assert!(output.status.success(), "{}", common::text(&output.stderr));
        let outcome: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(outcome["changes"][0]["created"], true, "{outcome}");
        let node: Value = serde_json::from_slice(&pacer(&["get", "node", "n5", "-o", "json"]).stdout).expect("JSON");
        assert_eq!(node["spec"]["standby"], true);
        // etcd out of reach: one line, exit 2.
        let output = common::pacer("http://127.0.0.1:1", PREFIX, &["cleanup", "web"], None);
        assert_eq!(output.status.code(), Some(2));
        let stderr = common::text(&output.stderr);
        assert_eq!(stderr, "error: cannot reach etcd at http://127.0.0.1:1: connection refused (set --etcd or PACER_ETCD)\n");
    })
    .await;
}
