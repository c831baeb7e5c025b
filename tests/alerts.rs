//! Alert delivery on a real cluster (`pacer up`: private etcd, schedulers, agents, the
//! real ocf:pacemaker:Dummy): Debian's stock `alert_file.sh.sample` as an exec
//! receiver; a webhook the test serves on loopback, with a header whose value comes
//! from a secret file, still receiving every event when the leader is killed during a
//! burst; a receiver that hangs, killed at its timeout and shown as a failed delivery
//! by `pacer status`, the event log and `pacer check`; bad input refused at apply.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{LOCAL_PREFIX, LocalCluster, TestEtcd, pacer, text};
use pacer::alerts::select::AlertConfig;
use pacer::api::records::{EventKind, EventRecord};
use pacer::store::Store;

const SAMPLE: &str = "/usr/share/pacemaker/alerts/alert_file.sh.sample";

async fn connect(cluster: &LocalCluster) -> Store {
    Store::connect(std::slice::from_ref(&cluster.endpoint), LOCAL_PREFIX).await.expect("connect")
}

/// Polls `check` every 200 ms until it gives a value; panics after `limit` with `what`
/// and the description `describe` gives then.
async fn wait_until<T>(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> Option<T>, describe: impl Fn() -> String) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "no {what} within {limit:?}: {}", describe());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn executable(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn apply(cluster: &LocalCluster, manifest: &str) {
    let output = cluster.pacer(&["apply", "-f", "-"], Some(manifest));
    assert!(output.status.success(), "apply failed: {}\n{manifest}", text(&output.stderr));
}

fn dummies(count: usize) -> String {
    (0..count)
        .map(|index| format!("---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: r{index}}}\nspec: {{agent: 'ocf:pacemaker:Dummy'}}\n"))
        .collect()
}

/// Waits until the leader runs the alert's worker (its cursor is written).
async fn wait_for_cursor(store: &Store, alert: &str) {
    wait_until("cursor of the alert", Duration::from_secs(30), async || store.read_alert_cursor(alert).await.ok().flatten(), String::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_file_agent_writes_a_resource_start_in_its_format() {
    let cluster = LocalCluster::start(1, &["--fencing", "off"]);
    let store = connect(&cluster).await;
    let agent = cluster.dir.path().join("alert_file.sh");
    std::fs::copy(SAMPLE, &agent).expect("copy the sample (install pacemaker)");
    executable(&agent, 0o755);
    let recipient = cluster.dir.path().join("alerts.log");
    apply(
        &cluster,
        &format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: file}}\nspec:\n  receiver:\n    exec: {{path: {}}}\n  recipients: [{}]\n  parameters: {{debug_exec_order: 'false'}}\n",
            agent.display(),
            recipient.display()
        ),
    );
    wait_for_cursor(&store, "file").await;
    apply(&cluster, "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n");
    let read = || std::fs::read_to_string(&recipient).unwrap_or_default();
    let line = wait_until(
        "start of web in the recipient file",
        Duration::from_secs(60),
        async || read().lines().find(|line| line.contains("Resource operation 'start' for 'web' on 'n1': ok")).map(str::to_string),
        read,
    )
    .await;
    // The sample's format: the timestamp (Pacemaker's default, %H:%M:%S.%06N), then the text.
    let (timestamp, rest) = line.split_once(": ").expect("timestamp");
    assert_eq!(rest, "Resource operation 'start' for 'web' on 'n1': ok");
    assert_eq!(timestamp.len(), "12:34:56.123456".len(), "{line}");
    assert!(timestamp.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '.'), "{line}");
    let cursor = store.read_alert_cursor("file").await.expect("read").expect("cursor");
    assert!(cursor.succeeded >= 1 && cursor.last_failure.is_none(), "{cursor:?}");
}

/// What the test's webhook received: the events' sequences and the secret header.
#[derive(Default)]
struct Received {
    sequences: Vec<u64>,
    /// When each delivery arrived, with its sequence.
    arrivals: Vec<(Instant, u64)>,
    keys: BTreeSet<String>,
    bodies: Vec<serde_json::Value>,
}

/// A webhook on loopback (axum), recording every POST.
async fn serve_webhook(received: Arc<Mutex<Received>>) -> String {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    async fn hook(State(received): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: String) -> StatusCode {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) else { return StatusCode::BAD_REQUEST };
        // A receiver that takes its time, so the burst is still being delivered when
        // the leader is killed.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut received = received.lock().expect("lock");
        if let Some(key) = headers.get("x-api-key").and_then(|value| value.to_str().ok()) {
            received.keys.insert(key.to_string());
        }
        if let Some(sequence) = value.pointer("/event/sequence").and_then(serde_json::Value::as_u64) {
            received.sequences.push(sequence);
            received.arrivals.push((Instant::now(), sequence));
        }
        received.bodies.push(value);
        StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let address = listener.local_addr().expect("address");
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(received);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/hook")
}

/// A second scheduler, standing by, ended by PID when dropped.
struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(30));
    }
}

fn kill(pid: i32) {
    // SAFETY: kill(2) on a process this test (or its `pacer up`) started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_every_event_at_least_once_across_a_leader_change() {
    let cluster = LocalCluster::start(2, &["--fencing", "off"]);
    let store = connect(&cluster).await;
    let scheduler_log = cluster.dir.path().join("s2.log");
    let standby = Scheduler(
        Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["scheduler", "--lease-ttl", "2", "--identity", "s2"])
            .env("PACER_ETCD", &cluster.endpoint)
            // Everything the delivery logs, so the check below that the secret is not
            // in it means something.
            .env("PACER_LOG", "pacer=debug,reqwest=debug")
            .env("PACER_PREFIX", LOCAL_PREFIX)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&scheduler_log).expect("log"))
            .stderr(std::fs::File::create(cluster.dir.path().join("s2.err")).expect("log"))
            .spawn()
            .expect("start a standby scheduler"),
    );
    let received = Arc::new(Mutex::new(Received::default()));
    let url = serve_webhook(Arc::clone(&received)).await;
    let secret = format!("s3cret-{}", std::process::id());
    let key_file = cluster.dir.path().join("api-key");
    std::fs::write(&key_file, format!("{secret}\n")).expect("write the secret");
    apply(
        &cluster,
        &format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: hook}}\nspec:\n  receiver:\n    webhook:\n      url: {url}\n      headers:\n        - {{name: X-Api-Key, valueFrom: {{file: {}}}}}\n  events: [Resource, Node]\n  recipients: [ops]\n  timeout: 5s\n",
            key_file.display()
        ),
    );
    wait_for_cursor(&store, "hook").await;
    let start = store.read_alert_cursor("hook").await.expect("read").expect("cursor").delivered;

    // A burst: 30 resources start; the leader is killed once deliveries flow.
    apply(&cluster, &dummies(30));
    let count = || received.lock().expect("lock").sequences.len();
    wait_until("first deliveries", Duration::from_secs(60), async || (count() >= 3).then_some(()), || format!("{} received", count())).await;
    let status = cluster.pacer(&["status", "-o", "json"], None);
    let view: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let leader = view["leader"].as_str().unwrap_or_default().to_string();
    if leader == "s2" {
        kill(i32::try_from(standby.0.id()).expect("pid"));
    } else {
        let pid = std::fs::read_to_string(cluster.state_dir.join("pids/scheduler")).expect("pid file");
        kill(pid.trim().parse().expect("pid"));
    }
    let killed_at = count();
    let killed = Instant::now();
    println!("killed the leader ({leader}) after {killed_at} deliveries");

    // Every selected event of the log after the alert's start arrives at least once.
    let objects: Vec<_> = store.list_objects().await.expect("list").into_objects().collect();
    let alert = AlertConfig::enabled(&objects).remove("hook").expect("the alert");
    let expected = async || -> BTreeSet<u64> {
        let log = store.list_events().await.expect("events");
        log.events.iter().filter(|event| event.sequence > start && alert.selects(event)).map(|event| event.sequence).collect()
    };
    let starts_logged = async || -> usize {
        let log = store.list_events().await.expect("events");
        log.events.iter().filter(|event| event.kind == EventKind::Resource && event.task.as_deref() == Some("start") && event.sequence > start).count()
    };
    wait_until("30 start events in the log", Duration::from_secs(120), async || (starts_logged().await >= 30).then_some(()), String::new).await;
    let missing = async || -> BTreeSet<u64> {
        let wanted = expected().await;
        let got: BTreeSet<u64> = received.lock().expect("lock").sequences.iter().copied().collect();
        wanted.difference(&got).copied().collect()
    };
    let started = Instant::now();
    let last_missing = loop {
        let now_missing = missing().await;
        if now_missing.is_empty() || started.elapsed() > Duration::from_secs(60) {
            break now_missing;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let expected_count = expected().await.len();
    let received = std::mem::take(&mut *received.lock().expect("lock"));
    assert!(last_missing.is_empty(), "events never delivered: {last_missing:?} ({} received, {killed_at} before the kill)", received.sequences.len());
    let distinct: BTreeSet<u64> = received.sequences.iter().copied().collect();
    assert!(killed_at < distinct.len(), "every event was delivered before the leader was killed: the takeover was not exercised");
    // The new leader delivered: some event arrived for the first time well after the
    // kill (the old leader's requests in flight land within the receiver's 250 ms).
    let mut first_seen: BTreeMap<u64, Instant> = BTreeMap::new();
    for (at, sequence) in &received.arrivals {
        first_seen.entry(*sequence).or_insert(*at);
    }
    assert!(first_seen.values().any(|at| at.duration_since(killed) > Duration::from_secs(1)), "no event was first delivered by the new leader");
    println!(
        "{} deliveries of {} distinct events ({} repeated after the leader change); {} expected",
        received.sequences.len(),
        distinct.len(),
        received.sequences.len() - distinct.len(),
        expected_count
    );
    // The header carried the secret; nothing logged it.
    assert_eq!(received.keys.iter().collect::<Vec<_>>(), vec![&secret]);
    let body = received.bodies.first().expect("a body");
    assert_eq!(body["alert"], "hook");
    assert_eq!(body["recipients"], serde_json::json!(["ops"]));
    assert!(body["event"]["kind"].is_string() && body["event"]["timeUsec"].is_i64(), "{body}");
    let logs = [cluster.dir.path().join("up.log"), cluster.state_dir.join("logs/scheduler.log"), scheduler_log.clone(), cluster.dir.path().join("s2.err")];
    for log in &logs {
        let content = std::fs::read_to_string(log).unwrap_or_else(|error| panic!("read {}: {error}", log.display()));
        assert!(!content.contains(&secret), "{} shows the secret", log.display());
    }
    let debug = std::fs::read_to_string(&scheduler_log).expect("s2's log") + &std::fs::read_to_string(cluster.dir.path().join("s2.err")).expect("s2's stderr");
    assert!(debug.contains("alert delivered"), "s2 logged its deliveries at debug level");
    let deliveries = store.list_events().await.expect("events").events.into_iter().filter(|event| event.kind == EventKind::Delivery).count();
    assert_eq!(deliveries, 0, "no delivery failed");
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_is_killed_recorded_and_warned_about() {
    let cluster = LocalCluster::start(1, &["--fencing", "off"]);
    let store = connect(&cluster).await;
    let marker = format!("1000.{}", std::process::id());
    let agent: PathBuf = cluster.dir.path().join("hang.sh");
    std::fs::write(&agent, format!("#!/bin/sh\nsleep {marker}\n")).expect("write the receiver");
    executable(&agent, 0o755);
    apply(
        &cluster,
        &format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: hang}}\nspec:\n  receiver:\n    exec: {{path: {}}}\n  events: [Resource]\n  timeout: 1s\n",
            agent.display()
        ),
    );
    wait_for_cursor(&store, "hang").await;
    apply(&cluster, "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n");

    // The Delivery event names the alert and the event.
    let failure: EventRecord = wait_until(
        "a Delivery event",
        Duration::from_secs(60),
        async || store.list_events().await.ok()?.events.into_iter().find(|event| event.kind == EventKind::Delivery),
        String::new,
    )
    .await;
    assert!(failure.detail.as_deref().is_some_and(|detail| detail.starts_with("alert=hang sequence=")), "{failure:?}");
    assert!(failure.desc.contains("timed out after 1s"), "{failure:?}");
    // Killed, process group and all.
    wait_until("the receiver gone", Duration::from_secs(10), async || processes_with(&marker).is_empty().then_some(()), || processes_with(&marker).join("\n"))
        .await;
    // Nothing blocked: the resource runs.
    let status = cluster.pacer(&["status"], None);
    let shown = text(&status.stdout);
    assert!(shown.contains("Alerts whose last delivery failed:"), "{shown}");
    let line = shown.lines().find(|line| line.trim_start().starts_with("hang ")).expect("the alert's line");
    assert!(line.contains("timed out after 1s"), "{line}");
    let json: serde_json::Value = serde_json::from_slice(&cluster.pacer(&["status", "-o", "json"], None).stdout).expect("json");
    assert_eq!(json["alerts"][0]["name"], "hang", "{json}");
    assert!(json["alerts"][0]["failures"].as_u64().is_some_and(|failures| failures >= 1), "{json}");
    assert!(json["resources"].as_array().expect("resources").iter().any(|resource| resource["name"] == "web" && resource["role"] == "Started"), "{json}");
    let check = cluster.pacer(&["check"], None);
    let said = text(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(said.starts_with("PACER WARNING"), "{said}");
    assert!(said.contains("alert hang: last delivery failed"), "{said}");

    // Disabled, it gets nothing: its old failure is no longer a warning, and its
    // cursor follows the log, so enabling it again sends nothing of the pause.
    let disabled = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: hang}}\nspec:\n  enabled: false\n  receiver:\n    exec: {{path: {}}}\n  events: [Resource]\n  timeout: 1s\n",
        agent.display()
    );
    apply(&cluster, &disabled);
    let failed_before = store.read_alert_cursor("hang").await.expect("read").expect("cursor").failed;
    let check = cluster.pacer(&["check"], None);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    apply(&cluster, "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: quiet}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n");
    let started = async || {
        store.list_events().await.ok()?.events.into_iter().find(|event| event.resource.as_deref() == Some("quiet") && event.task.as_deref() == Some("start"))
    };
    let quiet: EventRecord = wait_until("quiet's start", Duration::from_secs(60), started, String::new).await;
    wait_until(
        "the disabled alert's cursor past quiet's start",
        Duration::from_secs(30),
        async || (store.read_alert_cursor("hang").await.ok()??.delivered >= quiet.sequence).then_some(()),
        String::new,
    )
    .await;
    // Delivered to the hanging receiver, quiet's start would have failed, counted in
    // the same cursor write that passed it.
    let cursor = store.read_alert_cursor("hang").await.expect("read").expect("cursor");
    assert_eq!(cursor.failed, failed_before, "a disabled alert delivered: {cursor:?}");
}

#[tokio::test]
async fn bad_alerts_are_refused_at_apply_and_nothing_is_written() {
    let etcd = TestEtcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    executable(&plain, 0o644);
    let alert = |spec: &str| format!("apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: bad}}\nspec:\n{spec}");
    let cases = [
        (alert(&format!("  receiver:\n    exec: {{path: {}}}\n", plain.display())), "spec.receiver.exec.path", "is not executable"),
        (alert(&format!("  receiver:\n    exec: {{path: {}/missing.sh}}\n", dir.path().display())), "spec.receiver.exec.path", "does not exist on this host"),
        (alert("  receiver:\n    exec: {path: alert.sh}\n"), "spec.receiver.exec.path", "is not an absolute path"),
        (alert("  receiver:\n    webhook: {url: 'ftp://example.com/x'}\n"), "spec.receiver.webhook.url", "is not an http:// or https:// URL"),
        (alert("  receiver:\n    webhook: {url: 'http://'}\n"), "spec.receiver.webhook.url", "is not an http:// or https:// URL"),
        (alert(&format!("  receiver:\n    exec: {{path: {SAMPLE}}}\n  timestampFormat: '%H:%Q'\n")), "spec.timestampFormat", "does not parse"),
        (
            alert("  receiver:\n    webhook:\n      url: https://example.com/x\n      headers: [{name: 'a b', value: x}]\n"),
            "spec.receiver.webhook.headers[0].name",
            "is not an HTTP header name",
        ),
        (
            alert(&format!("  receiver:\n    exec: {{path: {SAMPLE}}}\n  parameters: {{'1x': y}}\n")),
            "spec.parameters.1x",
            "is not an environment variable name",
        ),
        (
            alert(&format!("  receiver:\n    exec: {{path: {SAMPLE}}}\n  parameters: {{LD_PRELOAD: /tmp/x.so}}\n")),
            "spec.parameters.LD_PRELOAD",
            "changes how the receiver runs",
        ),
        (
            alert("  receiver:\n    webhook:\n      url: https://example.com/x\n      headers: [{name: X-Name, value: 'caf\u{00e9}'}]\n"),
            "spec.receiver.webhook.headers[0].value",
            "printable ASCII",
        ),
    ];
    for (manifest, field, reason) in cases {
        let output = pacer(&etcd.endpoint(), "/bad", &["apply", "-f", "-"], Some(&manifest));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{manifest}\n{stderr}");
        let line = stderr.lines().find(|line| line.contains(field)).unwrap_or_else(|| panic!("{field} not named:\n{stderr}"));
        assert!(line.starts_with("-:") && line.contains("Alert/bad") && line.contains(reason), "{line}");
        assert!(etcd.dump("/bad").await.is_empty(), "something was written for:\n{manifest}");
    }
    // The same receiver, executable, is accepted.
    executable(&plain, 0o755);
    let output = pacer(&etcd.endpoint(), "/bad", &["apply", "-f", "-"], Some(&alert(&format!("  receiver:\n    exec: {{path: {}}}\n", plain.display()))));
    assert!(output.status.success(), "{}", text(&output.stderr));
}
