//! `pacer up` end to end, as the demo uses it: a private etcd, a scheduler and three
//! agents; `manifests/demo/` applied and running; a node powered off with the local
//! fence agent, fenced, and its resources back on the survivors; then SIGTERM stops
//! every process it started.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "/pacer";

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

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] != "Stopped")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

/// Everything that can run does: some node is online and no instance is stopped
/// without a reason.
fn settled(view: &Value) -> bool {
    let resources = view["resources"].as_array().cloned().unwrap_or_default();
    !resources.is_empty() && resources.iter().all(|entry| entry["role"] != "Stopped" || entry["reason"].is_string())
}

fn wait(endpoint: &str, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = status(endpoint);
        if condition(&view) {
            return view;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pid: &str) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid.trim().parse::<i32>().is_ok_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
}

#[test]
fn pacer_up_runs_the_demo_and_survives_a_node_powered_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("up");
    let root = env!("CARGO_MANIFEST_DIR");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["up", "--nodes", "3", "--lease-ttl", "2", "--state-dir"])
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
    let components = ["etcd", "scheduler", "n1", "n2", "n3"];
    while !components.iter().all(|component| state_dir.join("pids").join(component).exists()) {
        assert!(started.elapsed() < Duration::from_secs(30), "pacer up did not start its components");
        assert!(matches!(up.0.try_wait(), Ok(None)), "pacer up exited: {}", std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    let endpoint = std::fs::read_to_string(state_dir.join("endpoint")).expect("endpoint").trim().to_string();
    for component in components {
        let pid = std::fs::read_to_string(state_dir.join("pids").join(component)).expect("pid file");
        assert!(alive(&pid), "{component} is not running");
    }

    // The demo manifests, with the witness log in this test's directory.
    let witness = dir.path().join("witness.log");
    let mut manifests = String::new();
    for entry in std::fs::read_dir(Path::new(root).join("manifests/demo")).expect("manifests/demo") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("manifest");
        manifests.push_str(&text.replace("/tmp/pacer-demo-witness.log", &witness.display().to_string()));
        manifests.push_str("\n---\n");
    }
    let output = common::pacer(&endpoint, PREFIX, &["apply", "-f", "-"], Some(&manifests));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let view = wait(&endpoint, "every demo resource to run", Duration::from_secs(60), |view| {
        settled(view) && node_of(view, "vm1").is_some() && node_of(view, "named").is_some()
    });
    let storage_promoted = view["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["name"].as_str().is_some_and(|name| name.starts_with("storage-vm1")) && entry["role"] == "Promoted")
        .count();
    assert_eq!(storage_promoted, 1, "{view}");
    assert!(view["failures"].as_array().is_some_and(Vec::is_empty), "nothing fails in the demo: {view}");

    // Power off the node running vm1 with the local fence agent.
    let victim = node_of(&view, "vm1").expect("vm1 runs");
    let mut fence = Command::new(Path::new(root).join("agents/fence/fence_pacer_local")).stdin(Stdio::piped()).spawn().expect("fence agent");
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), format!("action=off\nport={victim}\nstate_dir={}\n", state_dir.display()).as_bytes())
        .expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
    let powered_off = Instant::now();
    let view =
        wait(&endpoint, "vm1 to run elsewhere", Duration::from_secs(60), |view| node_of(view, "vm1").is_some_and(|node| node != victim) && settled(view));
    println!("node powered off -> vm1 running elsewhere (lease TTL 2 s): {:?}", powered_off.elapsed());
    let fenced = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == victim.as_str() && entry["state"] == "succeeded");
    assert!(fenced, "{view}");

    // SIGTERM: pacer up stops everything it started.
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

/// The `--agents-dir` an agent process was started with.
fn agents_dir_of(pid_file: &Path) -> Option<String> {
    let pid = std::fs::read_to_string(pid_file).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok()?;
    let args: Vec<String> = cmdline.split(|byte| *byte == 0).map(|arg| String::from_utf8_lossy(arg).into_owned()).collect();
    args.iter().position(|arg| arg == "--agents-dir").and_then(|index| args.get(index + 1).cloned())
}

#[test]
fn pacer_up_does_not_take_agents_from_the_current_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Whoever controls the directory pacer up starts in puts agents there.
    let planted = dir.path().join("agents");
    for sub in ["ocf/pacer", "lsb", "fence"] {
        std::fs::create_dir_all(planted.join(sub)).expect("mkdir");
    }
    let state_dir = dir.path().join("up");
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["up", "--nodes", "1", "--fencing", "off", "--lease-ttl", "2", "--state-dir"])
        .arg(&state_dir)
        .current_dir(dir.path())
        .env("PACER_PREFIX", PREFIX)
        .env_remove("PACER_ETCD")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start pacer up");
    let up = Up(child);
    let pid_file = state_dir.join("pids/n1");
    let started = Instant::now();
    while !pid_file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pacer up did not start: {}",
            std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = agents_dir_of(&pid_file);
    drop(up);
    let planted = std::fs::canonicalize(&planted).expect("canonical").display().to_string();
    assert_ne!(used.as_deref(), Some(planted.as_str()), "pacer up ran the agents of its current directory");
    // Built in this tree and without the package, it uses the tree's agents/.
    let repo_agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    if !Path::new("/usr/lib/pacer/agents").is_dir() {
        assert_eq!(used.map(std::path::PathBuf::from), Some(std::fs::canonicalize(repo_agents).expect("canonical")));
    }
}

/// Runs the local fence agent on `node` with `action`, as a person at the power switch.
fn power(state_dir: &Path, node: &str, action: &str) {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/fence/fence_pacer_local");
    let mut fence = Command::new(agent).stdin(Stdio::piped()).spawn().expect("fence agent");
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), format!("action={action}\nport={node}\nstate_dir={}\n", state_dir.display()).as_bytes())
        .expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
}

fn node_state(view: &Value, node: &str) -> String {
    view["nodes"].as_array().into_iter().flatten().find(|entry| entry["name"] == node).and_then(|entry| entry["state"].as_str()).unwrap_or("absent").to_string()
}

fn fenced_with(view: &Value, node: &str, action: &str) -> bool {
    view["fencing_history"].as_array().into_iter().flatten().any(|entry| entry["node"] == node && entry["action"] == action && entry["state"] == "succeeded")
}

fn pid_of(state_dir: &Path, node: &str) -> String {
    std::fs::read_to_string(state_dir.join("pids").join(node)).unwrap_or_default().trim().to_string()
}

/// The lease holding `nodes/<node>/lease`, if any.
async fn lease_of(endpoint: &str, node: &str) -> Option<i64> {
    let mut client = etcd_client::Client::connect([endpoint.to_string()], None).await.expect("connect");
    let response = client.get(format!("{PREFIX}/nodes/{node}/lease"), None).await.expect("read");
    response.kvs().first().map(etcd_client::KeyValue::lease)
}

fn witness(name: &str, log: &Path) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations: [{{name: monitor, interval: 1s}}]\n",
        log.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_fence_device_rebooted_comes_back_and_one_powered_off_does_not() {
    let cluster = common::LocalCluster::start(3, &["--reboot-delay", "2s"]);
    let endpoint = cluster.endpoint.clone();
    let state_dir = cluster.state_dir.clone();
    let log = cluster.dir.path().join("witness.log");
    let output = cluster.pacer(&["apply", "-f", "-"], Some(&witness("web", &log)));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    let view = wait(&endpoint, "web to run", Duration::from_secs(60), |view| node_of(view, "web").is_some());
    let victim = node_of(&view, "web").expect("web runs");
    let old_pid = pid_of(&state_dir, &victim);
    let old_lease = lease_of(&endpoint, &victim).await.expect("the victim holds its lease");

    // The node dies (powered off by hand); the cluster fences it with a reboot.
    power(&state_dir, &victim, "off");
    wait(&endpoint, "the victim fenced with a reboot", Duration::from_secs(60), |view| {
        fenced_with(view, &victim, "reboot") && node_of(view, "web").is_some_and(|node| node != victim)
    });
    // pacer up starts it again; it rejoins with a new lease and is online.
    let view = wait(&endpoint, "the rebooted node online again", Duration::from_secs(60), |view| node_state(view, &victim) == "online");
    let new_pid = pid_of(&state_dir, &victim);
    assert!(new_pid != old_pid && alive(&new_pid), "the agent of {victim} was not started again (pid {old_pid} -> {new_pid}): {view}");
    let new_lease = lease_of(&endpoint, &victim).await.expect("the rebooted node holds a lease");
    assert_ne!(new_lease, old_lease, "the rebooted node resumed its old lease");
    // A resource allowed there starts there again.
    let pinned = format!(
        "{}---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: pinned-on-victim}}\nspec: {{resource: pinned, node: {victim}, score: INFINITY}}\n",
        witness("pinned", &log)
    );
    let output = cluster.pacer(&["apply", "-f", "-"], Some(&pinned));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    wait(&endpoint, "pinned to run on the rebooted node", Duration::from_secs(60), |view| node_of(view, "pinned").as_deref() == Some(victim.as_str()));

    // With stonithAction Off, a lost node is fenced with `off`: it stays off.
    let policy = "---\napiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithAction: Off}\n";
    let output = cluster.pacer(&["apply", "-f", "-"], Some(policy));
    assert!(output.status.success(), "{}", common::text(&output.stderr));
    // A node running something (one running nothing is lost cleanly, not fenced).
    let other = node_of(&status(&endpoint), "web").expect("web runs");
    assert_ne!(other, victim, "web runs where pinned does");
    let other_pid = pid_of(&state_dir, &other);
    power(&state_dir, &other, "off");
    wait(&endpoint, "the other node fenced with off", Duration::from_secs(60), |view| fenced_with(view, &other, "off"));
    // Well past the reboot delay, it is still down.
    std::thread::sleep(Duration::from_secs(6));
    let view = status(&endpoint);
    assert_eq!(node_state(&view, &other), "offline", "{view}");
    let pid = pid_of(&state_dir, &other);
    assert!(pid == other_pid && !alive(&pid), "{other} was started again after being powered off (pid {other_pid} -> {pid})");
}
