//! Events on a real local cluster (`pacer up`, real agents): the agent records each
//! operation result worth telling and each attribute change with the fact itself, and
//! `pacer events` lists and filters them; bad input and an unreachable etcd are one
//! line.

mod common;

use std::time::{Duration, Instant};

use common::{LocalCluster, text};
use serde_json::Value;

/// A Dummy whose state file the test controls (removing it fails the monitor), and a
/// witness that sets its promotion score (a node attribute) when it starts.
fn manifests(state: &std::path::Path) -> String {
    format!(
        "
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {{name: web}}
spec:
  agent: ocf:heartbeat:Dummy
  params: {{state: {}}}
  operations: [{{name: monitor, interval: 1s}}]
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {{name: score}}
spec:
  agent: ocf:pacer:witness
  params: {{promotable: 'true'}}
",
        state.display()
    )
}

/// `pacer events ARGS -o json`: the events listed.
fn events(cluster: &LocalCluster, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "-o", "json"];
    all.extend(args);
    let output = cluster.pacer(&all, None);
    assert_eq!(output.status.code(), Some(0), "pacer {all:?}: {}", text(&output.stderr));
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap_or_else(|error| panic!("pacer {all:?}: {error}: {}", text(&output.stdout)))
}

/// Polls `pacer events` until `done` holds of the listing (60 s at most).
fn events_until(cluster: &LocalCluster, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let listed = events(cluster, &[]);
        if done(&listed) {
            return listed;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {what} within 60 s: {listed:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is(event: &Value, resource: &str, task: &str) -> bool {
    event["resource"] == resource && event["task"] == task
}

#[test]
fn results_and_attribute_changes_are_events_and_pacer_events_filters_them() {
    let cluster = LocalCluster::start(1, &["--fencing", "off"]);
    let state = cluster.dir.path().join("web.state");
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(&manifests(&state)));
    assert!(applied.status.success(), "{}", text(&applied.stderr));

    // Starting web writes its start event, as Pacemaker's alert fields have it.
    let listed = events_until(&cluster, "start of web", |events| events.iter().any(|event| is(event, "web", "start")));
    let start = listed.iter().find(|event| is(event, "web", "start")).expect("the start");
    assert_eq!(start["kind"], "Resource", "{start}");
    assert_eq!((&start["node"], &start["reporter"]), (&Value::from("n1"), &Value::from("n1")), "{start}");
    assert_eq!(
        (&start["rc"], &start["targetRc"], &start["status"], &start["desc"]),
        (&Value::from(0), &Value::from(0), &Value::from("Done"), &Value::from("ok")),
        "{start}"
    );
    assert!(start["execTimeMs"].is_u64(), "{start}");
    assert!(start["timeUsec"].as_i64().is_some_and(|time| time > 1_600_000_000_000_000), "{start}");
    // Probes found everything stopped: not news. Nor is a monitor answering as expected.
    assert!(!listed.iter().any(|event| event["task"] == "monitor"), "{listed:#?}");

    // The witness set its promotion score when it started: an attribute event.
    let listed = events_until(&cluster, "promotion score", |events| events.iter().any(|event| event["kind"] == "Attribute"));
    let attribute = listed.iter().find(|event| event["kind"] == "Attribute").expect("the attribute event");
    assert_eq!(
        (&attribute["attributeName"], &attribute["attributeValue"], &attribute["node"]),
        (&Value::from("master-score"), &Value::from("5"), &Value::from("n1")),
        "{attribute}"
    );
    assert_eq!(attribute["desc"], "Attribute 'master-score' on node 'n1' was updated to '5'");

    // web dies (its state file goes): the failed monitor, then the recovery.
    std::fs::remove_file(&state).expect("web's state file");
    let listed = events_until(&cluster, "recovery of web", |events| {
        let web: Vec<&Value> = events.iter().filter(|event| event["resource"] == "web").collect();
        let failed = web.iter().position(|event| event["task"] == "monitor");
        failed.is_some_and(|failed| {
            let after = &web[failed..];
            let stop = after.iter().position(|event| event["task"] == "stop");
            stop.is_some_and(|stop| after[stop..].iter().any(|event| event["task"] == "start"))
        })
    });
    let failed = listed.iter().find(|event| is(event, "web", "monitor")).expect("the failed monitor");
    assert_eq!(
        (&failed["intervalMs"], &failed["rc"], &failed["targetRc"], &failed["desc"]),
        (&Value::from(1000), &Value::from(7), &Value::from(0), &Value::from("not running")),
        "{failed}"
    );
    // One monitor event: the first answer after the restart is as expected.
    assert_eq!(listed.iter().filter(|event| is(event, "web", "monitor")).count(), 1, "{listed:#?}");

    // The leader gives every event its place in one sequence: once none is pending,
    // sequences are 1, 2, 3… without a gap, the agent's events among the leader's, and
    // the decision to recover web comes after the failure it reacts to.
    let listed =
        events_until(&cluster, "every event sequenced", |events| events.iter().all(|event| event["sequence"].as_u64().is_some_and(|sequence| sequence > 0)));
    let sequences: Vec<u64> = listed.iter().filter_map(|event| event["sequence"].as_u64()).collect();
    assert_eq!(sequences, (1..=listed.len() as u64).collect::<Vec<_>>());
    assert!(listed.iter().any(|event| event["reporter"] == "n1") && listed.iter().any(|event| event["reporter"] == "scheduler"), "{listed:#?}");
    let failed_at = listed.iter().position(|event| is(event, "web", "monitor")).expect("the failed monitor");
    let recovery = listed.iter().position(|event| {
        event["kind"] == "Decision"
            && event["desc"].as_str().is_some_and(|desc| desc.contains("web"))
            && event["sequence"].as_u64() > listed[failed_at]["sequence"].as_u64()
    });
    assert!(recovery.is_some(), "no decision about web after its failure: {listed:#?}");

    // --for resource/web: web's events only, the same as in the whole listing.
    let web = events(&cluster, &["--for", "resource/web"]);
    let all = events(&cluster, &[]);
    let expected: Vec<&Value> = all.iter().filter(|event| event["resource"] == "web").collect();
    assert_eq!(web.iter().collect::<Vec<_>>(), expected);
    assert!(web.len() >= 4, "start, monitor, stop, start: {web:#?}");
    let score = events(&cluster, &["--for", "resource/score"]);
    assert!(score.iter().all(|event| event["resource"] == "score") && !score.is_empty(), "{score:#?}");
    // --for node/n1: the events about n1 (the leader's decisions are about no node);
    // another node has none.
    let n1 = events(&cluster, &["--for", "node/n1"]);
    assert!(!n1.is_empty() && n1.iter().all(|event| event["node"] == "n1"), "{n1:#?}");
    assert_eq!(n1.len(), events(&cluster, &[]).iter().filter(|event| event["node"] == "n1").count());
    assert!(events(&cluster, &["--for", "node/n9"]).is_empty());
    // --since: everything happened within the last hour, nothing in the future.
    assert_eq!(events(&cluster, &["--since", "1h"]).len(), events(&cluster, &[]).len());

    // The table: a header, then one line per event.
    let table = cluster.pacer(&["events", "--for", "resource/web"], None);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["SEQ", "TIME", "KIND", "NODE", "RESOURCE", "TASK", "REPORTER", "DESCRIPTION"], "{table}");
    assert!(table.lines().any(|line| line.contains("monitor/1s") && line.ends_with("not running (expected ok)")), "{table}");
    assert_eq!(table.lines().count(), web.len() + 1, "{table}");

    // --watch -o json: what exists, then each event as the leader sequences it, one
    // object a line, until ended (by PID).
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["events", "--watch", "-o", "json"])
        .env("PACER_ETCD", &cluster.endpoint)
        .env("PACER_PREFIX", common::LOCAL_PREFIX)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pacer events --watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Its first line: the listing is done, and it follows the log from there.
    let first = received.recv_timeout(Duration::from_secs(30)).expect("the events so far");
    assert!(serde_json::from_str::<Value>(&first).is_ok_and(|event| event["sequence"].as_u64().is_some()), "{first}");
    let late = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: late}\nspec: {agent: 'ocf:heartbeat:Dummy'}\n";
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(late));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = loop {
        let line = received.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the start of late, as it happened");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|error| panic!("{error}: {line}"));
        if is(&event, "late", "start") {
            break event;
        }
    };
    pacer::local::child::terminate(&mut watch, Duration::from_secs(5));
    // It happened after the listing: printed once the leader gave it its number.
    assert!(started["sequence"].as_u64().is_some_and(|sequence| sequence > 0), "{started}");

    // Bad input: one line on stderr, exit 1.
    for args in [vec!["events", "--for", "pod/x"], vec!["events", "--since", "soon"], vec!["events", "--for", "web"]] {
        let refused = cluster.pacer(&args, None);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn fencing_results_are_events_of_who_fenced_and_of_pacer_fence_confirm() {
    let cluster = LocalCluster::start(2, &[]);
    // A clone everywhere: n2 runs something, so when it is lost it must be fenced.
    let clone = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: pool}\nspec:\n  agent: ocf:heartbeat:Dummy\n  clone: {}\n";
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(clone));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    events_until(&cluster, "pool started on both nodes", |events| {
        ["n1", "n2"].iter().all(|node| events.iter().any(|event| is(event, "pool", "start") && event["node"] == *node))
    });

    // n2 powered off (the local fence agent, as the demo does): n1 fences it.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fence = std::process::Command::new(root.join("agents/fence/fence_pacer_local")).stdin(std::process::Stdio::piped()).spawn().expect("fence agent");
    let request = format!("action=off\nport=n2\nstate_dir={}\n", cluster.state_dir.display());
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), request.as_bytes()).expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
    let by_n1 = |event: &&Value| event["kind"] == "Fencing" && event["reporter"] == "n1";
    let listed = events_until(&cluster, "the fencing of n2", |events| events.iter().any(|event| by_n1(&event)));
    let fenced = listed.iter().find(by_n1).expect("the fencing event");
    let action = fenced["task"].as_str().unwrap_or_default();
    assert_eq!((&fenced["reporter"], &fenced["node"], &fenced["rc"]), (&Value::from("n1"), &Value::from("n2"), &Value::from(0)), "{fenced}");
    assert_eq!(fenced["desc"], format!("Operation {action} of n2 by n1 for pacer@scheduler: OK"), "{fenced}");

    // A person confirms n2 down: the confirmation is an event of its own, reported by
    // `pacer`, written with it.
    let confirmed = cluster.pacer(&["fence", "confirm", "n2"], None);
    assert_eq!(confirmed.status.code(), Some(0), "{}", text(&confirmed.stderr));
    let listed = events(&cluster, &["--for", "node/n2"]);
    let confirmation = listed.iter().find(|event| event["kind"] == "Fencing" && event["reporter"] == "pacer").expect("the confirmation's event");
    assert_eq!((&confirmation["task"], &confirmation["rc"]), (&Value::from("off"), &Value::from(0)), "{confirmation}");
    let desc = confirmation["desc"].as_str().unwrap_or_default();
    assert!(desc.starts_with("Operation off of n2 by a human (") && desc.ends_with(": OK"), "{desc}");
    // Refused while the node's agent holds its lease: no event.
    let refused = cluster.pacer(&["fence", "confirm", "n1"], None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(!events(&cluster, &["--for", "node/n1"]).iter().any(|event| event["reporter"] == "pacer"));
}

#[test]
fn an_unreachable_etcd_is_one_line_and_exit_2() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).expect("a free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    for args in [vec!["events"], vec!["events", "--watch", "-o", "json"], vec!["events", "--for", "resource/web"]] {
        let output = common::pacer(&endpoint, "/pacer", &args, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("error: cannot reach etcd at {endpoint}: connection refused (set --etcd or PACER_ETCD)\n"), "{args:?}");
    }
}
