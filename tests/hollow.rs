//! A hollow cluster through `pacer up --nodes 1 --hollow-nodes 20` (one real agent,
//! twenty hollow nodes in one `pacer hollow` process): 200 resources converge; a hollow
//! node powered off with the local fence agent is fenced and its resources are started
//! elsewhere; while that happens the fault observer's witness-free checks hold on the
//! statuses in etcd (no resource reported active on two nodes at once, never more
//! promoted than promotedMax); SIGTERM ends every process `pacer up` started.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacer::api::records::ResourceStatus;
use serde_json::Value;

const PREFIX: &str = "/pacer";
const HOLLOW_NODES: usize = 20;
const PRIMITIVES: usize = 179;
const PROMOTED_MAX: usize = 2;

/// `pacer up`, ended by PID when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(60));
    }
}

fn status(endpoint: &str) -> Value {
    let output = common::pacer(endpoint, PREFIX, &["status", "-o", "json"], None);
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("status JSON")
}

fn resources(view: &Value) -> Vec<Value> {
    view["resources"].as_array().cloned().unwrap_or_default()
}

/// Every instance (the clone has one per node) runs.
fn all_running(view: &Value, nodes: usize) -> bool {
    let resources = resources(view);
    resources.len() == PRIMITIVES + nodes && resources.iter().all(|entry| entry["role"] != "Stopped")
}

fn node_of(view: &Value, resource: &str) -> Option<String> {
    resources(view)
        .into_iter()
        .find(|entry| entry["name"] == resource && entry["role"] != "Stopped")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

fn wait(endpoint: &str, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = status(endpoint);
        if condition(&view) {
            return view;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}: {} of {} running", running(&view), resources(&view).len());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn running(view: &Value) -> usize {
    resources(view).iter().filter(|entry| entry["role"] != "Stopped").count()
}

/// How many established TCP connections the process `pid` has to `port` on
/// loopback: its sockets (`/proc/<pid>/fd`) among the connections its network
/// namespace lists.
fn established_to(pid: &str, port: u16) -> usize {
    let sockets: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let remote = format!(":{port:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // remote address, state (01: established), inode
            fields.len() > 9 && fields[2].ends_with(&remote) && fields[3] == "01" && sockets.contains(fields[9])
        })
        .count()
}

/// The nice value of each thread of `pid` (field 19 of `/proc/<pid>/task/<tid>/stat`,
/// counted after the command name's closing parenthesis).
fn thread_niceness(pid: &str) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|entries| entries.flatten().collect::<Vec<_>>()).unwrap_or_default();
    tasks
        .iter()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(16)?.parse().ok()))
        .collect()
}

fn alive(pid: &str) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid.trim().parse::<i32>().is_ok_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
}

fn manifests() -> String {
    let mut documents: Vec<String> = (0..PRIMITIVES)
        .map(|index| {
            format!(
                "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: r{index}}}\nspec:\n  agent: ocf:pacer:witness\n  operations: [{{name: monitor, interval: 10s}}]\n"
            )
        })
        .collect();
    documents.push(format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: db}}\nspec:\n  agent: ocf:pacer:witness\n  operations:\n    - {{name: monitor, interval: 5s, role: Promoted}}\n    - {{name: monitor, interval: 10s, role: Unpromoted}}\n  clone: {{promotable: {{promotedMax: {PROMOTED_MAX}}}}}\n"
    ));
    documents.join("---\n")
}

/// What the checks read of a status.
struct Reported {
    id: String,
    node: String,
    /// `ResourceStatus::may_be_active`.
    active: bool,
    /// `ResourceStatus::may_be_promoted`.
    promoted: bool,
}

impl Reported {
    fn of(status: &ResourceStatus) -> Reported {
        Reported { id: status.id.clone(), node: status.node.clone(), active: status.may_be_active(), promoted: status.may_be_promoted() }
    }
}

/// The witness-free checks of the fault observer on one consistent read of the
/// statuses: a resource (not a clone) reported possibly active by two nodes, or more
/// than promotedMax instances of the clone possibly promoted, is a violation.
fn check_statuses(statuses: &[Reported]) -> Vec<String> {
    let mut active: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut promoted = BTreeSet::new();
    for status in statuses {
        let (primitive, _) = pacer::api::names::split_instance(&status.id);
        if primitive == "db" {
            if status.promoted {
                promoted.insert(format!("{} on {}", status.id, status.node));
            }
        } else if status.active {
            active.entry(status.id.as_str()).or_default().insert(status.node.as_str());
        }
    }
    let mut violations: Vec<String> = active.into_iter().filter(|(_, nodes)| nodes.len() > 1).map(|(id, nodes)| format!("{id} active on {nodes:?}")).collect();
    if promoted.len() > PROMOTED_MAX {
        violations.push(format!("more than {PROMOTED_MAX} promoted: {promoted:?}"));
    }
    violations
}

/// Reads the statuses every 100 ms until stopped; returns the violations seen and how
/// many reads were checked.
fn observe(endpoint: String, stop: Arc<AtomicBool>, violations: Arc<Mutex<Vec<String>>>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let store = pacer::store::Store::connect(&[endpoint], PREFIX).await.expect("connect");
            let prefix = store.keys().statuses_prefix();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A read that fails (etcd busy) is skipped: the checks need no gapless
                // record, and the count of reads is asserted.
                let Ok((_, records)) = store.read_records::<ResourceStatus>(&prefix).await else { continue };
                let statuses: Vec<Reported> = records.iter().map(|(_, status, _)| Reported::of(status)).collect();
                violations.lock().expect("lock").extend(check_statuses(&statuses));
                reads += 1;
            }
            reads
        })
    })
}

#[test]
fn a_hollow_cluster_converges_and_survives_a_node_powered_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("up");
    let root = env!("CARGO_MANIFEST_DIR");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["up", "--nodes", "1", "--hollow-nodes", &HOLLOW_NODES.to_string(), "--hollow-latency", "20ms", "--lease-ttl", "3", "--state-dir"])
        .arg(&state_dir)
        .arg("--agents-dir")
        .arg(Path::new(root).join("agents"))
        .env("PACER_PREFIX", PREFIX)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start pacer up"));
    let started = Instant::now();
    let components = ["etcd", "scheduler", "n1", "hollow"];
    while !components.iter().all(|component| state_dir.join("pids").join(component).exists()) {
        assert!(started.elapsed() < Duration::from_secs(30), "pacer up did not start its components");
        assert!(matches!(up.0.try_wait(), Ok(None)), "pacer up exited: {}", std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = std::fs::read_to_string(state_dir.join("endpoint")).expect("endpoint").trim().to_string();
    let nodes = HOLLOW_NODES + 1;
    wait(&endpoint, "every node online", Duration::from_secs(30), |view| {
        view["nodes"].as_array().is_some_and(|nodes_seen| nodes_seen.iter().filter(|node| node["state"] == "online").count() == nodes)
    });

    // Every hollow node has a connection of its own to etcd, as a real node has (one
    // shared by all of them was one HTTP/2 connection that h2 closes for all of them
    // after 1,024 cancelled requests).
    let hollow_pid = std::fs::read_to_string(state_dir.join("pids").join("hollow")).expect("hollow pid");
    let port = endpoint.rsplit(':').next().and_then(|port| port.trim_end_matches('/').parse::<u16>().ok()).expect("etcd port");
    let connections = established_to(hollow_pid.trim(), port);
    assert!(connections > HOLLOW_NODES, "{connections} connections to etcd for {HOLLOW_NODES} hollow nodes");
    // The hollow nodes stand for other machines: their process yields the CPU to etcd
    // and the scheduler (ten steps nicer than `pacer up`, which runs as nice as this
    // test), and every one of its threads does.
    let own = thread_niceness("self").first().copied().expect("this test's nice value");
    let niceness = thread_niceness(hollow_pid.trim());
    assert!(!niceness.is_empty() && niceness.iter().all(|nice| *nice == (own + 10).min(19)), "hollow threads' nice values {niceness:?}, this test's {own}");

    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::new()));
    let observer = observe(endpoint.clone(), stop.clone(), violations.clone());

    let applied = Instant::now();
    let output = common::pacer(&endpoint, PREFIX, &["apply", "-f", "-"], Some(&manifests()));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    // Converged: everything runs and promotedMax copies are promoted (a promotion may
    // come in a later decision than the starts: promotion scores are known once the
    // instances run). Never more than promotedMax is the observer's check meanwhile.
    let promoted = |view: &Value| resources(view).iter().filter(|entry| entry["role"] == "Promoted").count();
    let view = wait(&endpoint, "every resource to run and two copies promoted", Duration::from_secs(90), |view| {
        all_running(view, nodes) && promoted(view) == PROMOTED_MAX
    });
    println!("{} resources on {nodes} nodes: applied -> all running in {:?}", PRIMITIVES + nodes, applied.elapsed());

    // Power off the hollow node running r0 with the local fence agent: it stops dead
    // (its lease lapses), is fenced by the cluster, and its resources start elsewhere.
    let victim = node_of(&view, "r0").expect("r0 runs");
    assert!(victim.starts_with('h'), "r0 runs on a hollow node: {victim}");
    let victims: Vec<String> = resources(&view)
        .iter()
        .filter(|entry| entry["node"] == victim.as_str() && entry["kind"] == "primitive")
        .filter_map(|entry| entry["name"].as_str().map(str::to_string))
        .collect();
    let mut fence = Command::new(Path::new(root).join("agents/fence/fence_pacer_local")).stdin(Stdio::piped()).spawn().expect("fence agent");
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), format!("action=off\nport={victim}\nstate_dir={}\n", state_dir.display()).as_bytes())
        .expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
    let powered_off = Instant::now();
    let view = wait(&endpoint, "the powered-off node's resources to run elsewhere", Duration::from_secs(60), |view| {
        victims.iter().all(|resource| node_of(view, resource).is_some_and(|node| node != victim))
    });
    println!("hollow node {victim} powered off -> its {} resources running elsewhere in {:?}", victims.len(), powered_off.elapsed());
    let fenced = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded");
    assert!(fenced, "{} was not fenced: {}", victim, view["fencing"]);
    // Every primitive runs; of the clone's instances (one per configured node) only the
    // powered-off node's may stay stopped.
    wait(&endpoint, "every resource to run again", Duration::from_secs(60), |view| {
        let stopped: Vec<Value> = resources(view).into_iter().filter(|entry| entry["role"] == "Stopped").collect();
        stopped.len() <= 1 && stopped.iter().all(|entry| entry["name"].as_str().is_some_and(|name| name.starts_with("db:")))
    });

    // The cluster fenced it with a reboot: pacer up powers it on again and it rejoins.
    wait(&endpoint, "the rebooted hollow node online again", Duration::from_secs(60), |view| {
        view["nodes"].as_array().into_iter().flatten().any(|entry| entry["name"] == victim.as_str() && entry["state"] == "online")
    });

    stop.store(true, Ordering::Relaxed);
    let reads = observer.join().expect("observer");
    assert!(reads > 10, "the observer read the statuses only {reads} times");
    let violations = violations.lock().expect("lock").clone();
    assert!(violations.is_empty(), "{violations:?}");

    // SIGTERM: pacer up stops everything it started, the hollow process included.
    let pids: Vec<String> = components.iter().filter_map(|component| std::fs::read_to_string(state_dir.join("pids").join(component)).ok()).collect();
    // SAFETY: SIGTERM to the child this test started.
    unsafe {
        libc::kill(up.0.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while matches!(up.0.try_wait(), Ok(None)) {
        assert!(Instant::now() < deadline, "pacer up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids {
        assert!(!alive(&pid), "pid {} outlived pacer up", pid.trim());
    }
}

#[test]
fn the_observer_checks_catch_two_copies_and_too_many_promoted() {
    let status = |id: &str, node: &str, active: bool| Reported { id: id.into(), node: node.into(), active, promoted: active && id.starts_with("db") };
    assert!(check_statuses(&[status("r1", "h1", true), status("r1", "h2", false)]).is_empty());
    assert_eq!(check_statuses(&[status("r1", "h1", true), status("r1", "h2", true)]).len(), 1);
    let promoted: Vec<Reported> = (0..=PROMOTED_MAX).map(|index| status(&format!("db:{index}"), &format!("h{index}"), true)).collect();
    assert_eq!(check_statuses(&promoted[..PROMOTED_MAX]).len(), 0);
    assert_eq!(check_statuses(&promoted).len(), 1);
}
