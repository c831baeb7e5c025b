//! Failsafe (issue 20): a `pacer up` cluster (3 nodes, lease TTL 2 s, fencing with
//! fence_pacer_local) rides out its etcd frozen (SIGSTOP by PID) for twice the lease
//! TTL: nothing is stopped, started or fenced, and the cluster settles after; and a
//! node that cannot reach a member of its last known membership during the outage
//! stops its resources as before, nothing running twice (the witness log's audit).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{LOCAL_PREFIX, LocalCluster};
use pacer::local::witness::{Rules, audit, read_witness};
use serde_json::Value;

fn status(cluster: &LocalCluster) -> Value {
    let output = cluster.pacer(&["status", "-o", "json"], None);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

/// Every resource runs somewhere and nothing is pending.
fn running(view: &Value, resources: &[String]) -> bool {
    let entries = view["resources"].as_array().cloned().unwrap_or_default();
    resources.iter().all(|name| entries.iter().any(|entry| entry["name"] == name.as_str() && entry["role"] == "Started"))
}

fn wait(cluster: &LocalCluster, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = status(cluster);
        if condition(&view) {
            return view;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}: {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `count` witness resources `w1`.., each with a monitor every second: their names and
/// manifests.
fn witnesses(witness: &Path, count: usize) -> (Vec<String>, Vec<String>) {
    let names: Vec<String> = (1..=count).map(|index| format!("w{index}")).collect();
    let manifests: Vec<String> = names
        .iter()
        .map(|name| {
            format!(
                "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations:\n    - {{name: monitor, interval: 1s}}\n",
                witness.display()
            )
        })
        .collect();
    (names, manifests)
}

/// Witness resources, each with a monitor every second.
fn apply_witnesses(cluster: &LocalCluster, witness: &Path, count: usize) -> Vec<String> {
    let (names, manifests) = witnesses(witness, count);
    let output = cluster.pacer(&["apply", "-f", "-"], Some(&manifests.join("---\n")));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    names
}

/// The witness log's starts, stops, promotions and demotions.
fn actions(witness: &Path) -> Vec<String> {
    read_witness(witness)
        .into_iter()
        .filter(|line| matches!(line.operation.as_str(), "start" | "stop" | "promote" | "demote"))
        .map(|line| format!("{} {} {} {}", line.node, line.resource, line.operation, line.phase))
        .collect()
}

fn node_log(cluster: &LocalCluster, node: &str) -> String {
    pacer::local::logs::strip_ansi(&std::fs::read_to_string(cluster.state_dir.join("logs").join(format!("{node}.log"))).unwrap_or_default())
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: a signal to the etcd process the cluster this test started runs.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal} to {pid}");
}

fn etcd_pid(cluster: &LocalCluster) -> i32 {
    std::fs::read_to_string(cluster.state_dir.join("pids").join("etcd")).expect("etcd pid").trim().parse().expect("pid")
}

/// Freezes the cluster's etcd for `outage`.
fn freeze_etcd(cluster: &LocalCluster, outage: Duration) {
    let pid = etcd_pid(cluster);
    signal(pid, libc::SIGSTOP);
    std::thread::sleep(outage);
    signal(pid, libc::SIGCONT);
}

fn exclusive(resources: &[String]) -> Rules {
    Rules { exclusive: resources.iter().cloned().collect::<BTreeSet<_>>(), promoted_max: BTreeMap::new() }
}

#[test]
fn etcd_frozen_for_twice_the_lease_stops_and_fences_nothing() {
    let cluster = LocalCluster::start(3, &[]);
    let witness = cluster.dir.path().join("witness.log");
    let resources = apply_witnesses(&cluster, &witness, 6);
    wait(&cluster, "every resource to run", Duration::from_secs(60), |view| running(view, &resources));
    // Let the first monitors pass.
    std::thread::sleep(Duration::from_secs(2));
    let before = actions(&witness);

    freeze_etcd(&cluster, Duration::from_secs(4));
    let back = Instant::now();
    wait(&cluster, "the cluster to settle", Duration::from_secs(60), |view| running(view, &resources));
    // Past the new leader's grace (10 s), when a node not claimed again would be fenced.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(back.elapsed()));
    let view = wait(&cluster, "the cluster to settle", Duration::from_secs(30), |view| running(view, &resources));

    let after = actions(&witness);
    let logs = || {
        ["n1", "n2", "n3", "scheduler"]
            .map(|node| {
                format!("--- {node}\n{}", node_log(&cluster, node).lines().filter(|line| !line.contains("lease renewal failed")).collect::<Vec<_>>().join("\n"))
            })
            .join("\n")
    };
    assert_eq!(after, before, "the outage stopped or started something:\n{}", logs());
    for node in ["n1", "n2", "n3"] {
        let log = node_log(&cluster, node);
        assert!(log.contains(pacer::agent::FAILSAFE_LOG), "{node} did not enter failsafe:\n{log}");
        assert!(log.contains(pacer::agent::FAILSAFE_OVER_LOG), "{node} did not leave failsafe:\n{log}");
        assert!(!log.contains(pacer::agent::SELF_FENCING_LOG), "{node} self-fenced:\n{log}");
    }
    let fencing = view["fencing"].as_array().cloned().unwrap_or_default();
    assert!(fencing.is_empty(), "the outage fenced a node: {view}");
    assert!(audit(&read_witness(&witness), &BTreeMap::new(), &exclusive(&resources)).is_empty());
}

/// `pacer up --secure`: the peer endpoint speaks mutual TLS with the nodes'
/// certificates, refuses a peer without one, and failsafe works through it.
#[test]
fn a_secure_cluster_rides_out_etcd_frozen_over_mutual_tls() {
    let cluster = LocalCluster::start(3, &["--secure"]);
    let config = cluster.state_dir.join("config.yaml");
    let pacer = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--config", config.to_str().expect("path")];
        all.extend_from_slice(args);
        common::pacer(&cluster.endpoint, LOCAL_PREFIX, &all, stdin)
    };
    let witness = cluster.dir.path().join("witness.log");
    let (names, manifests) = witnesses(&witness, 3);
    let output = pacer(&["apply", "-f", "-"], Some(&manifests.join("---\n")));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let wait_running = || {
        let started = Instant::now();
        loop {
            let output = pacer(&["status", "-o", "json"], None);
            let view: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            if running(&view, &names) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "not every resource runs: {view}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_running();
    std::thread::sleep(Duration::from_secs(2));
    // A peer without a certificate gets no answer.
    let n1 = node_log(&cluster, "n1");
    let address = n1
        .lines()
        .find(|line| line.contains("peer endpoint listening"))
        .and_then(|line| line.split_whitespace().find_map(|word| word.strip_prefix("address=")))
        .expect("n1's peer endpoint")
        .to_string();
    assert!(n1.contains("tls=true"), "{n1}");
    let mut plain = std::net::TcpStream::connect(&address).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    std::io::Write::write_all(&mut plain, b"{\"from\":\"intruder\"}\n").expect("write");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut plain, &mut answer);
    assert!(!answer.contains("holding"), "answered in plaintext: {answer}");

    let before = actions(&witness);
    freeze_etcd(&cluster, Duration::from_secs(4));
    std::thread::sleep(Duration::from_secs(3));
    wait_running();
    assert_eq!(actions(&witness), before, "the outage stopped or started something");
    for node in ["n1", "n2", "n3"] {
        let log = node_log(&cluster, node);
        assert!(log.contains(pacer::agent::FAILSAFE_LOG) && !log.contains(pacer::agent::SELF_FENCING_LOG), "{node}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_reach_a_member_stops_its_resources() {
    let cluster = LocalCluster::start(3, &[]);
    let witness = cluster.dir.path().join("witness.log");
    let resources = apply_witnesses(&cluster, &witness, 6);
    let view = wait(&cluster, "every resource to run", Duration::from_secs(60), |view| running(view, &resources));
    std::thread::sleep(Duration::from_secs(2));
    let on = |node: &str| -> BTreeSet<String> {
        view["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["node"] == node && entry["role"] == "Started")
            .filter_map(|entry| entry["name"].as_str().map(str::to_string))
            .collect()
    };
    // n1's peer endpoint, as the others know it, refuses: its heartbeat names a port
    // nothing listens on (written under its lease, as the agent would).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let refused = closed.local_addr().expect("address").to_string();
    drop(closed);
    let mut client = etcd_client::Client::connect([cluster.endpoint.clone()], None).await.expect("connect");
    let key = format!("{LOCAL_PREFIX}/nodes/n1/lease");
    let stored = client.get(key.as_str(), None).await.expect("read");
    let kv = stored.kvs().first().expect("n1's heartbeat");
    let mut heartbeat: Value = serde_json::from_slice(kv.value()).expect("heartbeat");
    heartbeat["peer"] = Value::String(refused);
    client.put(key.as_str(), heartbeat.to_string(), Some(etcd_client::PutOptions::new().with_lease(kv.lease()))).await.expect("write");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = actions(&witness);

    freeze_etcd(&cluster, Duration::from_secs(4));

    // n2 and n3 cannot confirm the outage with n1: they stopped everything before their
    // leases could expire. n1 heard both and kept its resources.
    for node in ["n2", "n3"] {
        let log = node_log(&cluster, node);
        assert!(log.contains(pacer::agent::SELF_FENCING_LOG), "{node} did not self-fence:\n{log}");
        assert!(log.contains("n1 did not answer"), "{node}:\n{log}");
    }
    let n1 = node_log(&cluster, "n1");
    assert!(n1.contains(pacer::agent::FAILSAFE_LOG) && !n1.contains(pacer::agent::SELF_FENCING_LOG), "{n1}");
    let during = actions(&witness);
    let new: Vec<&String> = during[before.len()..].iter().collect();
    for resource in on("n1") {
        assert!(!new.iter().any(|line| line.contains(&format!(" {resource} "))), "{resource} on n1 was touched: {new:?}");
    }
    for resource in on("n2").into_iter().chain(on("n3")) {
        assert!(new.iter().any(|line| line.contains(&format!(" {resource} stop end"))), "{resource} was not stopped: {new:?}");
    }

    wait(&cluster, "the cluster to settle", Duration::from_secs(60), |view| running(view, &resources));
    let problems = audit(&read_witness(&witness), &BTreeMap::new(), &exclusive(&resources));
    assert!(problems.is_empty(), "{problems:?}");
}

/// Processes this test started, ended by PID when dropped.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            pacer::local::child::terminate(child, Duration::from_secs(30));
        }
    }
}

#[test]
fn etcd_killed_and_restarted_stops_nothing() {
    let mut etcd = common::TestEtcd::start();
    let endpoint = etcd.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let witness = dir.path().join("witness.log");
    let spawn = |name: &str, args: &[String]| {
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).expect("log");
        std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(args)
            .env("PACER_ETCD", &endpoint)
            .env("PACER_PREFIX", LOCAL_PREFIX)
            .env_remove("PACER_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pacer")
    };
    let mut processes = Processes(vec![spawn("scheduler", &["scheduler".into(), "--lease-ttl".into(), "2".into()])]);
    for node in ["n1", "n2", "n3"] {
        let args: Vec<String> = ["agent", "--node", node, "--lease-ttl", "2", "--peer-listen", "127.0.0.1:0", "--state-dir"]
            .into_iter()
            .map(str::to_string)
            .chain([dir.path().join(node).display().to_string(), "--agents-dir".into(), root.join("agents").display().to_string()])
            .collect();
        processes.0.push(spawn(node, &args));
    }
    let (names, manifests) = witnesses(&witness, 6);
    // Fencing enabled (failsafe needs it) with the local power device `pacer up` uses;
    // nothing is fenced here.
    let mut manifests = manifests;
    manifests.extend(["n1", "n2", "n3"].map(|node| format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\nspec: {{}}\n")));
    manifests.push(format!(
        "apiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [n1, n2, n3]\n  params: {{state_dir: {}}}\n",
        dir.path().display()
    ));
    let output = common::pacer(&endpoint, LOCAL_PREFIX, &["apply", "-f", "-"], Some(&manifests.join("---\n")));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let status = || -> Value {
        let output = common::pacer(&endpoint, LOCAL_PREFIX, &["status", "-o", "json"], None);
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    };
    let wait_running = |limit: Duration| {
        let started = Instant::now();
        while !running(&status(), &names) {
            assert!(started.elapsed() < limit, "not every resource runs: {}", status());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_running(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let before = actions(&witness);

    etcd.server.kill();
    std::thread::sleep(Duration::from_secs(4));
    etcd.server.restart().expect("restart etcd");
    let back = Instant::now();
    wait_running(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(12).saturating_sub(back.elapsed()));
    wait_running(Duration::from_secs(30));

    let log = |name: &str| pacer::local::logs::strip_ansi(&std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default());
    let after = actions(&witness);
    assert_eq!(after, before, "the outage stopped or started something:\n{}", ["n1", "n2", "n3", "scheduler"].map(log).join("\n"));
    for node in ["n1", "n2", "n3"] {
        let log = log(node);
        assert!(log.contains(pacer::agent::FAILSAFE_LOG), "{node} did not enter failsafe:\n{log}");
        assert!(log.contains(pacer::agent::FAILSAFE_OVER_LOG), "{node} did not leave failsafe:\n{log}");
        assert!(!log.contains(pacer::agent::SELF_FENCING_LOG), "{node} self-fenced:\n{log}");
    }
    drop(processes);
}

/// Starts `pacer ARGS` against `endpoint`, its log in `dir/logs/NAME.log` and its PID in
/// `dir/pids/NAME` (where fence_pacer_local finds it).
fn spawn_in(dir: &Path, name: &str, endpoint: &str, args: &[String]) -> std::process::Child {
    for sub in ["logs", "pids", "nodes"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dir");
    }
    let log = std::fs::File::create(dir.join("logs").join(format!("{name}.log"))).expect("log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .env("PACER_ETCD", endpoint)
        .env("PACER_PREFIX", LOCAL_PREFIX)
        .env_remove("PACER_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start pacer");
    std::fs::write(dir.join("pids").join(name), format!("{}\n", child.id())).expect("pid file");
    child
}

fn agent_args(dir: &Path, node: &str) -> Vec<String> {
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    ["agent", "--node", node, "--lease-ttl", "2", "--peer-listen", "127.0.0.1:0", "--state-dir"]
        .into_iter()
        .map(str::to_string)
        .chain([dir.join("nodes").join(node).display().to_string(), "--agents-dir".into(), agents.display().to_string()])
        .collect()
}

/// The node that reaches etcd answers "active": a node cut off from etcd alone (its
/// peers still reach it) gets no confirmation and stops its resources as before,
/// before they run elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_alone_stops_its_resources() {
    let etcd = common::TestEtcd::start();
    let endpoint = etcd.endpoint();
    let temporary = tempfile::tempdir().expect("tempdir");
    let dir = temporary.path();
    let witness = dir.join("witness.log");
    let link = pacer::local::link::Link::open(&endpoint).await.expect("link");
    let manifest = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: n1}}\nspec: {{}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: n2}}\nspec: {{}}\n---\napiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [n1, n2]\n  params: {{state_dir: {}}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations:\n    - {{name: monitor, interval: 1s}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-on-n1}}\nspec: {{resource: web, node: n1, score: 100}}\n",
        dir.display(),
        witness.display()
    );
    let output = common::pacer(&endpoint, LOCAL_PREFIX, &["apply", "-f", "-"], Some(&manifest));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let _processes = Processes(vec![
        spawn_in(dir, "scheduler", &endpoint, &["scheduler".into(), "--lease-ttl".into(), "2".into()]),
        spawn_in(dir, "n1", link.endpoint(), &agent_args(dir, "n1")),
        spawn_in(dir, "n2", &endpoint, &agent_args(dir, "n2")),
    ]);
    let running_on = |node: &'static str| {
        let endpoint = endpoint.clone();
        move || {
            let output = common::pacer(&endpoint, LOCAL_PREFIX, &["status", "-o", "json"], None);
            let view: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            view["resources"].as_array().into_iter().flatten().any(|entry| entry["name"] == "web" && entry["role"] == "Started" && entry["node"] == node)
        }
    };
    let until = |what: &str, condition: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("web to run on n1", &running_on("n1"));
    std::thread::sleep(Duration::from_secs(2));
    let order = || -> Vec<String> {
        read_witness(&witness)
            .into_iter()
            .filter(|line| line.phase == "end" && matches!(line.operation.as_str(), "start" | "stop"))
            .map(|line| format!("{} {}", line.operation, line.node))
            .collect()
    };
    let before = order().len();
    link.set_cut(true);
    until("web to run on n2", &running_on("n2"));

    let log = |name: &str| pacer::local::logs::strip_ansi(&std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default());
    let n1 = log("n1");
    assert!(n1.contains(pacer::agent::SELF_FENCING_LOG), "n1 did not self-fence:\n{n1}");
    assert!(!n1.contains(pacer::agent::FAILSAFE_LOG), "n1 entered failsafe although n2 reaches etcd:\n{n1}");
    assert!(n1.contains("n2 reaches etcd"), "{n1}");
    assert_eq!(order()[before..], ["stop n1", "start n2"], "the cut-off node stops web itself before n2 starts it");
    assert!(audit(&read_witness(&witness), &BTreeMap::new(), &exclusive(&["web".to_string()])).is_empty());
}
