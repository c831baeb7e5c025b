//! Two nodes and a witness, as `pacer up --nodes 2 --etcd-members 3` runs it: etcd
//! members m1 (n1's), m2 (n2's) and m3 (the witness, on a third machine in a real
//! cluster), every component given all three. Losing the witness changes nothing; a
//! rolling restart of etcd (SIGUSR1 to `pacer up`: one member at a time, as an
//! upgrade) stops and starts nothing; losing a node whole — its agent and its etcd
//! member — leaves the other node and the witness with etcd's quorum: the lost node is
//! fenced and its resources start on the survivor. The witness agent's log is the
//! judge: no new start or stop where nothing may change, never two copies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pacer::local::witness::{Rules, Testimony, audit, read_witness};
use serde_json::Value;

const PREFIX: &str = "/pacer";
/// With three members, half the lease must outlast an etcd election (README: a 5 s
/// lease with the LAN's raft timing).
const TTL: Duration = Duration::from_secs(5);
const RESOURCES: [&str; 4] = ["a", "b", "c", "d"];

/// `pacer up`, ended by PID when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(60));
    }
}

fn pid_of(state_dir: &Path, component: &str) -> Option<i32> {
    std::fs::read_to_string(state_dir.join("pids").join(component)).ok()?.trim().parse().ok()
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process `pacer up` (this test's child) started.
    unsafe {
        libc::kill(pid, signal);
    }
}

fn status(endpoint: &str) -> Value {
    let output = common::pacer(endpoint, PREFIX, &["status", "-o", "json"], None);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

/// The node each resource is Started on.
fn placement(view: &Value) -> Vec<Option<String>> {
    let entries = view["resources"].as_array().cloned().unwrap_or_default();
    RESOURCES
        .iter()
        .map(|name| {
            entries.iter().find(|entry| entry["name"] == *name && entry["role"] == "Started").and_then(|entry| entry["node"].as_str().map(str::to_string))
        })
        .collect()
}

fn wait(endpoint: &str, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        // A status read may fail while etcd elects a leader: only "not yet".
        let output = common::pacer(endpoint, PREFIX, &["status", "-o", "json"], None);
        if output.status.success() {
            let view: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
            if condition(&view) {
                return view;
            }
            assert!(started.elapsed() < limit, "timed out waiting for {what}: {view}");
        } else {
            assert!(started.elapsed() < limit, "timed out waiting for {what}: {}", common::text(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts, stops, promotions and demotions in the witness log after line `from`.
fn changes(log: &Path, from: usize) -> Vec<String> {
    read_witness(log)
        .get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|line: &&Testimony| line.phase == "begin" && line.operation != "monitor" && line.operation != "notify")
        .map(|line| format!("{} {} on {}", line.operation, line.resource, line.node))
        .collect()
}

fn self_fencings(state_dir: &Path) -> usize {
    ["n1", "n2"]
        .iter()
        .map(|node| {
            let log = std::fs::read(state_dir.join("logs").join(format!("{node}.log"))).unwrap_or_default();
            String::from_utf8_lossy(&log).lines().filter(|line| pacer::local::logs::strip_ansi(line).contains(pacer::agent::SELF_FENCING_LOG)).count()
        })
        .sum()
}

fn power_offs(state_dir: &Path) -> std::collections::BTreeMap<String, Vec<u128>> {
    ["n1", "n2"]
        .iter()
        .map(|node| {
            let marker = state_dir.join("nodes").join(node).join("powered-off");
            let times = std::fs::read_to_string(marker).unwrap_or_default().lines().filter_map(|line| line.trim().parse().ok()).collect();
            (node.to_string(), times)
        })
        .collect()
}

/// `PACER_ETCD` of a running process.
fn etcd_of(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|byte| *byte == 0).find_map(|entry| String::from_utf8_lossy(entry).strip_prefix("PACER_ETCD=").map(str::to_string))
}

fn start(dir: &Path) -> (Up, PathBuf, String) {
    let state_dir = dir.join("up");
    let log = std::fs::File::create(dir.join("up.log")).expect("log");
    let up = Up(Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["up", "--nodes", "2", "--etcd-members", "3", "--lease-ttl", &TTL.as_secs().to_string(), "--state-dir"])
        .arg(&state_dir)
        .arg("--agents-dir")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("agents"))
        .env("PACER_PREFIX", PREFIX)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start pacer up"));
    let components = ["etcd-m1", "etcd-m2", "etcd-m3", "up", "scheduler", "n1", "n2"];
    let started = Instant::now();
    while !components.iter().all(|component| pid_of(&state_dir, component).is_some()) {
        assert!(started.elapsed() < Duration::from_secs(60), "pacer up did not start: {}", std::fs::read_to_string(dir.join("up.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = std::fs::read_to_string(state_dir.join("endpoint")).expect("endpoint").trim().to_string();
    (up, state_dir, endpoint)
}

#[test]
fn two_nodes_and_a_witness_lose_the_witness_restart_etcd_and_lose_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up, state_dir, endpoint) = start(dir.path());
    assert_eq!(endpoint.split(',').count(), 3, "three members: {endpoint}");
    // Every component is given every member.
    for component in ["scheduler", "n1", "n2"] {
        let pid = pid_of(&state_dir, component).expect("pid");
        assert_eq!(etcd_of(pid).as_deref(), Some(endpoint.as_str()), "{component}'s PACER_ETCD");
    }

    let witness = dir.path().join("witness.log");
    let documents: Vec<String> = RESOURCES
        .iter()
        .map(|name| {
            format!(
                "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations: [{{name: monitor, interval: 1s}}]\n",
                witness.display()
            )
        })
        .collect();
    let output = common::pacer(&endpoint, PREFIX, &["apply", "-f", "-"], Some(&documents.join("---\n")));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let view = wait(&endpoint, "every resource to run", Duration::from_secs(60), |view| placement(view).iter().all(Option::is_some));
    let before = placement(&view);
    // Both nodes run something (the scheduler spreads them).
    assert!(before.iter().flatten().any(|node| node == "n1") && before.iter().flatten().any(|node| node == "n2"), "{view}");
    std::thread::sleep(Duration::from_secs(1));

    // 1. The witness lost: the two nodes' members keep the quorum; nothing changes.
    let lines = read_witness(&witness).len();
    let fencings = self_fencings(&state_dir);
    signal(pid_of(&state_dir, "etcd-m3").expect("m3"), libc::SIGKILL);
    std::thread::sleep(TTL * 2);
    let view = status(&endpoint);
    assert_eq!(placement(&view), before, "the witness lost moved resources: {view}");
    assert_eq!(changes(&witness, lines), Vec::<String>::new(), "the witness lost stopped or started resources");
    assert_eq!(self_fencings(&state_dir), fencings, "a node self-fenced when the witness was lost");

    // 2. A rolling restart of etcd (the witness first started again, then m1, m2, m3
    // one at a time): nothing stops or starts.
    let old_pids: Vec<Option<i32>> = ["etcd-m1", "etcd-m2"].iter().map(|member| pid_of(&state_dir, member)).collect();
    signal(up.0.id() as i32, libc::SIGUSR1);
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
        if log.contains("etcd restarted") {
            break;
        }
        assert!(!log.contains("restart etcd:"), "the rolling restart failed: {log}");
        assert!(started.elapsed() < Duration::from_secs(120), "the rolling restart did not end: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("rolling restart of three etcd members: {:?}", started.elapsed());
    let new_pids: Vec<Option<i32>> = ["etcd-m1", "etcd-m2"].iter().map(|member| pid_of(&state_dir, member)).collect();
    assert!(old_pids.iter().zip(&new_pids).all(|(old, new)| new.is_some() && old != new), "members not restarted: {old_pids:?} -> {new_pids:?}");
    assert!(pid_of(&state_dir, "etcd-m3").is_some(), "the witness was started again");
    std::thread::sleep(TTL);
    let view = status(&endpoint);
    assert_eq!(placement(&view), before, "the rolling restart moved resources: {view}");
    assert_eq!(changes(&witness, lines), Vec::<String>::new(), "the rolling restart stopped or started resources");
    assert_eq!(self_fencings(&state_dir), fencings, "a node self-fenced during the rolling restart");

    // 3. A node lost whole, its agent and its etcd member: the survivor and the
    // witness keep the quorum, fence it, and run everything.
    let victim = before[0].clone().expect("a runs");
    let (survivor, member) = if victim == "n1" { ("n2", "etcd-m1") } else { ("n1", "etcd-m2") };
    let lost = Instant::now();
    signal(pid_of(&state_dir, &victim).expect("victim agent"), libc::SIGKILL);
    signal(pid_of(&state_dir, member).expect("victim member"), libc::SIGKILL);
    let view =
        wait(&endpoint, "every resource on the survivor", Duration::from_secs(60), |view| placement(view).iter().all(|node| node.as_deref() == Some(survivor)));
    let failover = lost.elapsed();
    let fenced = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded");
    assert!(fenced, "{victim} was not fenced: {view}");
    println!("two nodes and a witness: {victim} lost (agent and etcd member) -> every resource Started on {survivor} after {failover:?} (lease TTL {TTL:?})");

    // Never two copies of a resource, the power-off counted.
    let rules = Rules { exclusive: RESOURCES.iter().map(|name| name.to_string()).collect(), ..Rules::default() };
    let problems = audit(&read_witness(&witness), &power_offs(&state_dir), &rules);
    assert!(problems.is_empty(), "{problems:?}");
    drop(up);
}
