//! `/metrics` on a real local cluster (`pacer up`, real agents): every endpoint's
//! output passes Debian's `promtool check metrics`; a real Prometheus, started here on
//! loopback with its own configuration and data directory, scrapes the cluster — every
//! target up, and its query API returns the resources this test applied, where they
//! run, in ha_cluster_exporter's names. A standby scheduler exports only its own
//! metrics. A node powered off is fenced, the fencing counted by the agent that ran
//! it, and the leader shows the node offline. A metrics address already in use is
//! refused at start in one line.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{LocalCluster, text};
use serde_json::Value;

const MANIFESTS: &str = "
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec:
  agent: ocf:heartbeat:Dummy
  operations: [{name: monitor, interval: 2s}]
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: db}
spec:
  agent: ocf:pacemaker:Stateful
  clone: {promotable: {}}
  operations: [{name: monitor, interval: 2s, role: Promoted}, {name: monitor, interval: 3s, role: Unpromoted}]
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: everywhere}
spec:
  agent: ocf:heartbeat:Dummy
  clone: {}
---
apiVersion: pacer.io/v1alpha1
kind: Location
metadata: {name: web-avoids-n3}
spec: {resource: web, node: n3, score: -INFINITY}
";

/// One HTTP/1.0 GET (no chunked answers): the status code and the body.
fn get(address: &str, path: &str, accept: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|error| panic!("connect to {address}: {error}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let code = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (code, body.to_string())
}

fn scrape(address: &str) -> String {
    let (code, body) = get(address, "/metrics", "*/*");
    assert_eq!(code, 200, "GET http://{address}/metrics: {body}");
    body
}

/// What promtool's linter says of ha_cluster_exporter's own name, which dashboards
/// query and Pacer therefore keeps: the exporter's own sample output
/// (`test/pacemaker.metrics`) gets the same finding from this promtool.
const EXPORTER_NAMES: &[&str] = &["ha_cluster_pacemaker_fail_count non-histogram and non-summary metrics should not have \"_count\" suffix"];

/// `promtool check metrics` on an exposition: it must parse (exit 1 is a format
/// error), and the linter (exit 3) may only report the exporter's names.
fn promtool(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (scripts/install-deps installs Debian's prometheus package)");
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("feed promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let findings = format!("{}{}", text(&output.stdout), text(&output.stderr));
    let only_exporter_names = findings.lines().all(|line| EXPORTER_NAMES.contains(&line.trim()));
    match output.status.code() {
        Some(0) => Ok(()),
        Some(3) if only_exporter_names => Ok(()),
        code => Err(format!("exit {code:?}: {findings}")),
    }
}

/// Waits for a component's `DIR/metrics/<component>` and returns the address in it.
fn metrics_address(file: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(address) = std::fs::read_to_string(file)
            && !address.trim().is_empty()
        {
            return address.trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{} never appeared", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process this test started, ended by PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(20));
    }
}

/// Starts a process in its own group that the kernel ends if this test dies.
fn start(command: &mut Command, log: &Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    command.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).process_group(0);
    // SAFETY: prctl is async-signal-safe; the child gets SIGTERM if this test dies.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    Process(command.spawn().expect("start the process"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).expect("a free port")
}

/// A query of Prometheus's HTTP API: the `result` array.
fn query(prometheus: &str, promql: &str) -> Vec<Value> {
    let encoded: String = promql
        .bytes()
        .map(|byte| if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) { (byte as char).to_string() } else { format!("%{byte:02X}") })
        .collect();
    let (code, body) = get(prometheus, &format!("/api/v1/query?query={encoded}"), "application/json");
    assert_eq!(code, 200, "query {promql}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("query {promql}: {error}: {body}"));
    answer["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn until<T>(what: &str, limit: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) => assert!(started.elapsed() < limit, "timed out waiting for {what}: {last}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Where `pacer status` says each resource runs: (resource, node, role), anonymous
/// clone instances by their primitive's name, roles in lower case.
fn running(cluster: &LocalCluster) -> BTreeSet<(String, String, String)> {
    let status = cluster.pacer(&["status", "-o", "json"], None);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let view: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    view["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["role"] != "Stopped")
        .map(|entry| {
            let name = entry["name"].as_str().unwrap_or_default();
            let primitive = name.split_once(':').map_or(name, |(primitive, _)| primitive);
            (primitive.to_string(), entry["node"].as_str().unwrap_or_default().to_string(), entry["role"].as_str().unwrap_or_default().to_lowercase())
        })
        .collect()
}

#[test]
fn promtool_passes_every_endpoint_and_prometheus_scrapes_the_cluster() {
    let cluster = LocalCluster::start(3, &[]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    for (resource, role) in [("web", "started"), ("db", "promoted"), ("everywhere", "started")] {
        let waited = cluster.pacer(&["wait", resource, "--for", role, "--timeout", "60s"], None);
        assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    }
    let components = ["scheduler", "n1", "n2", "n3"];
    let addresses: Vec<String> = components.iter().map(|component| metrics_address(&cluster.state_dir.join("metrics").join(component))).collect();

    // Every endpoint, as curl or promtool would fetch it (the classic text format).
    for (component, address) in components.iter().zip(&addresses) {
        let exposition = scrape(address);
        if let Err(findings) = promtool(&exposition) {
            panic!("promtool check metrics on {component}'s /metrics:\n{findings}\n{exposition}");
        }
        assert!(exposition.contains("pacer_etcd_request_duration_seconds_bucket"), "{component}: {exposition}");
        assert!(exposition.contains("pacer_lease_renewal_duration_seconds_count"), "{component}: {exposition}");
        if *component == "scheduler" {
            assert!(exposition.contains("pacer_scheduler_leader 1\n"), "{exposition}");
            assert!(exposition.contains("pacer_scheduler_decisions_total{outcome=\"new\"}"), "{exposition}");
            assert!(exposition.contains("ha_cluster_pacemaker_stonith_enabled 1\n"), "{exposition}");
            assert!(exposition.contains("ha_cluster_pacemaker_config_last_change "), "{exposition}");
            // ha_cluster_exporter's dashboards select the cluster by its one DC: the
            // node whose agent shares the leader's host (all of them here: the first).
            let dcs: Vec<&str> = exposition
                .lines()
                .filter(|line| line.starts_with("ha_cluster_pacemaker_nodes{") && line.contains("status=\"dc\"") && line.ends_with(" 1"))
                .collect();
            assert_eq!(dcs.len(), 1, "exactly one DC: {dcs:?}");
            assert!(dcs[0].contains("node=\"n1\""), "{dcs:?}");
        } else {
            assert!(exposition.contains(&format!("ha_cluster_pacemaker_nodes{{node=\"{component}\",type=\"member\",status=\"online\"}} 1\n")), "{exposition}");
            assert!(
                exposition.contains("pacer_agent_operation_duration_seconds_count{agent=\"ocf:heartbeat:Dummy\",operation=\"start\",result=\"ok\"}"),
                "{exposition}"
            );
            assert!(!exposition.contains("node=\"\""), "an agent reports only what runs on its node: {exposition}");
        }
    }

    // A standby scheduler: its own metrics, not the cluster's.
    let standby_file = cluster.dir.path().join("standby-metrics");
    let _standby = start(
        Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["scheduler", "--lease-ttl", "2", "--identity", "standby", "--metrics-listen", "127.0.0.1:0", "--metrics-address-file"])
            .arg(&standby_file)
            .env("PACER_ETCD", &cluster.endpoint)
            .env("PACER_PREFIX", common::LOCAL_PREFIX),
        &cluster.dir.path().join("standby.log"),
    );
    let standby = scrape(&metrics_address(&standby_file));
    assert!(standby.contains("pacer_scheduler_leader 0\n") && !standby.contains("ha_cluster_"), "{standby}");
    promtool(&standby).unwrap_or_else(|findings| panic!("promtool on the standby: {findings}"));

    // A real Prometheus on loopback: its configuration and data in a directory of its
    // own, scraping every component each second (OpenMetrics, which it asks for).
    let dir = tempfile::tempdir().expect("tempdir");
    let targets: Vec<String> = addresses.iter().map(|address| format!("'{address}'")).collect();
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: pacer\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).expect("write the configuration");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let _prometheus = start(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={listen}")),
        &dir.path().join("prometheus.log"),
    );
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    until("Prometheus to be ready", Duration::from_secs(30), || {
        let ready = TcpStream::connect(&listen).is_ok() && get(&listen, "/-/ready", "*/*").0 == 200;
        if ready { Ok(()) } else { Err(log()) }
    });

    // Every target up.
    until("every target up", Duration::from_secs(30), || {
        let (_, body) = get(&listen, "/api/v1/targets", "application/json");
        let answer: Value = serde_json::from_str(&body).map_err(|error| format!("{error}: {body}"))?;
        let active = answer["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let up = active.iter().filter(|target| target["health"] == "up").count();
        if active.len() == components.len() && up == components.len() { Ok(()) } else { Err(body) }
    });
    let ups = query(&listen, "up == 1");
    assert_eq!(ups.len(), components.len(), "{ups:?}");

    // The resources this test applied, where `pacer status` says they run.
    let expected = running(&cluster);
    for resource in ["web", "db", "everywhere"] {
        assert!(expected.iter().any(|(name, _, _)| name == resource), "{resource} does not run: {expected:?}");
    }
    until("Prometheus to show the resources where they run", Duration::from_secs(30), || {
        let result = query(&listen, "ha_cluster_pacemaker_resources{status=\"active\",job=\"pacer\"} == 1");
        // The leader's entries (every node's) and each agent's (its own) agree.
        let seen: BTreeSet<(String, String, String)> = result
            .iter()
            .map(|series| {
                let metric = &series["metric"];
                let label = |name: &str| metric[name].as_str().unwrap_or_default().to_string();
                (label("resource"), label("node"), label("role"))
            })
            .collect();
        let from_leader = result.iter().filter(|series| series["metric"]["instance"] == addresses[0].as_str()).count();
        if seen == expected && from_leader == expected.len() { Ok(()) } else { Err(format!("Prometheus: {seen:?}, status: {expected:?}")) }
    });
    let web = query(&listen, "ha_cluster_pacemaker_resources{resource=\"web\",status=\"active\"} == 1");
    assert!(web.iter().all(|series| series["metric"]["agent"] == "ocf::heartbeat:Dummy" && series["metric"]["managed"] == "true"), "{web:?}");
    let ban = query(&listen, "ha_cluster_pacemaker_location_constraints{constraint=\"web-avoids-n3\"}");
    assert_eq!(ban.len(), 1, "{ban:?}");
    assert_eq!(
        (&ban[0]["metric"]["node"], &ban[0]["metric"]["resource"], &ban[0]["value"][1]),
        (&Value::from("n3"), &Value::from("web"), &Value::from("-Inf"))
    );
    let online = query(&listen, "count(count by (node) (ha_cluster_pacemaker_nodes{status=\"online\"} == 1))");
    assert_eq!(online.first().map(|series| series["value"][1].clone()), Some(Value::from("3")), "{online:?}");
    let claimed = query(&listen, "pacer_agent_node_claimed == 1");
    assert_eq!(claimed.len(), 3, "{claimed:?}");

    // n3 powered off (the local fence agent, as the demo does): a survivor fences it
    // and counts the outcome; the leader shows it offline.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fence = Command::new(root.join("agents/fence/fence_pacer_local")).stdin(Stdio::piped()).spawn().expect("fence agent");
    let request = format!("action=off\nport=n3\nstate_dir={}\n", cluster.state_dir.display());
    fence.stdin.take().expect("stdin").write_all(request.as_bytes()).expect("ask the fence agent");
    assert!(fence.wait().expect("fence agent").success());
    until("a survivor to count n3's fencing", Duration::from_secs(60), || {
        let counted = addresses[1..3].iter().any(|address| {
            scrape(address).lines().any(|line| line.starts_with("pacer_agent_fencing_total{target=\"n3\",") && line.contains("result=\"succeeded\"} 1"))
        });
        if counted { Ok(()) } else { Err(format!("n1: {}\nn2: {}", scrape(&addresses[1]), scrape(&addresses[2]))) }
    });
    until("the leader to show n3 offline", Duration::from_secs(30), || {
        let leader = scrape(&addresses[0]);
        let offline = leader.contains("ha_cluster_pacemaker_nodes{node=\"n3\",type=\"member\",status=\"online\"} 0\n")
            && leader.contains("ha_cluster_pacemaker_nodes{node=\"n3\",type=\"member\",status=\"expected_up\"} 0\n");
        if offline { Ok(()) } else { Err(leader) }
    });
}

#[test]
fn a_metrics_address_in_use_is_refused_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("n1").display().to_string();
    // No etcd anywhere: the address is refused before anything connects.
    let unreachable = "http://127.0.0.1:1";
    for args in [
        vec!["scheduler", "--metrics-listen", address.as_str()],
        vec!["agent", "--node", "n1", "--state-dir", state_dir.as_str(), "--metrics-listen", address.as_str()],
    ] {
        let output = common::pacer(unreachable, "/pacer", &args, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(&format!("error: listen for metrics on {address}: ")) && stderr.contains("in use"), "{args:?}: {stderr}");
    }
    // Not an address at all: bad input, exit 1, one line.
    let output = common::pacer(unreachable, "/pacer", &["scheduler", "--metrics-listen", "localhost"], None);
    let stderr = text(&output.stderr);
    assert_eq!((output.status.code(), stderr.lines().count()), (Some(1), 1), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}

/// `/healthz` (Kubernetes' liveness and readiness probes) says whether the loop turns
/// with a healthy lease, the signal systemd's watchdog gets: 200 on a scheduler and an
/// agent that run; 503 once the agent has been cut off from etcd (frozen) for longer
/// than the limit (30 s, the units' WatchdogSec); 200 again once etcd answers.
#[test]
fn healthz_follows_the_loop_s_progress() {
    let etcd = common::TestEtcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let component = |args: &[&str], name: &str| {
        let file = dir.path().join(format!("{name}-metrics"));
        let process = start(
            Command::new(env!("CARGO_BIN_EXE_pacer"))
                .args(args)
                .args(["--lease-ttl", "2", "--metrics-listen", "127.0.0.1:0", "--metrics-address-file"])
                .arg(&file)
                .env("PACER_ETCD", etcd.endpoint())
                .env("PACER_PREFIX", common::LOCAL_PREFIX),
            &dir.path().join(format!("{name}.log")),
        );
        (process, metrics_address(&file))
    };
    let state = dir.path().join("state").display().to_string();
    let (_scheduler, scheduler) = component(&["scheduler"], "scheduler");
    let (_agent, agent) = component(&["agent", "--node", "n1", "--state-dir", &state], "agent");
    for address in [&scheduler, &agent] {
        until("the loop to report progress", Duration::from_secs(30), || {
            let (code, body) = get(address, "/healthz", "*/*");
            if code == 200 && body.starts_with("ok: the loop turned ") { Ok(()) } else { Err(format!("{code} {body}")) }
        });
    }

    let etcd_pid = i32::try_from(etcd.server.pid().expect("etcd pid")).expect("pid");
    // SAFETY: SIGSTOP to the etcd this test started; SIGCONT below and in the guard.
    unsafe {
        libc::kill(etcd_pid, libc::SIGSTOP);
    }
    struct Resume(i32);
    impl Drop for Resume {
        fn drop(&mut self) {
            // SAFETY: SIGCONT to the etcd this test stopped.
            unsafe {
                libc::kill(self.0, libc::SIGCONT);
            }
        }
    }
    let resume = Resume(etcd_pid);
    let frozen = Instant::now();
    let stale = until("the agent's /healthz to go stale", Duration::from_secs(60), || {
        let (code, body) = get(&agent, "/healthz", "*/*");
        if code == 503 { Ok(body) } else { Err(format!("{code} {body}")) }
    });
    println!("stale after {:?}: {stale}", frozen.elapsed());
    assert!(stale.starts_with("stale: the loop last turned with a healthy lease "), "{stale}");
    // The limit runs from the last healthy turn, marked at least every 5 s before the
    // freeze.
    assert!(frozen.elapsed() >= Duration::from_secs(25), "stale before the limit: {:?}", frozen.elapsed());
    drop(resume);
    until("the agent's /healthz to recover", Duration::from_secs(60), || {
        let (code, body) = get(&agent, "/healthz", "*/*");
        if code == 200 { Ok(()) } else { Err(format!("{code} {body}")) }
    });
}
