//! Reading a live cluster the way an operator does: `get` with live columns and
//! Kubernetes-style conditions, `wait`, shell completion of live names, and the one
//! line an unreachable etcd gets. On a real local cluster (`pacer up`, real agents).

mod common;

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
";

fn condition<'a>(status: &'a Value, kind: &str) -> &'a Value {
    status["conditions"].as_array().and_then(|conditions| conditions.iter().find(|condition| condition["type"] == kind)).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn get_shows_live_state_and_wait_waits_for_it() {
    let cluster = LocalCluster::start(2, &["--fencing", "off"]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(applied.status.success(), "{}", text(&applied.stderr));

    // wait: until started / promoted; exit 0 with where it runs.
    let waited = cluster.pacer(&["wait", "web", "--for", "started", "--timeout", "60s"], None);
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    assert!(text(&waited.stdout).starts_with("web started"), "{}", text(&waited.stdout));
    let waited = cluster.pacer(&["wait", "db", "--for", "promoted", "--timeout", "60s", "-o", "json"], None);
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    let reached: Value = serde_json::from_slice(&waited.stdout).expect("wait JSON");
    assert!(reached["nodes"].as_array().is_some_and(|nodes| nodes.iter().any(|node| node.as_str().is_some_and(|node| node.ends_with("Promoted")))));
    let settled = cluster.pacer(&["wait", "db", "--for", "started", "--timeout", "60s"], None);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stderr));

    // get: the table has live columns; -o json a status with conditions.
    let table = cluster.pacer(&["get", "rsc"], None);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGENT", "CLONE", "NODES", "ROLE", "FAILURES", "AGE"], "{table}");
    let web_row: Vec<&str> = table.lines().find(|line| line.starts_with("web ")).unwrap_or_default().split_whitespace().collect();
    assert!(matches!(web_row.get(3), Some(&"n1") | Some(&"n2")), "{table}");
    assert_eq!((web_row.get(4), web_row.get(5)), (Some(&"Started"), Some(&"0")), "{table}");

    let json = cluster.pacer(&["get", "rsc", "web", "-o", "json"], None);
    let web: Value = serde_json::from_slice(&json.stdout).expect("get JSON");
    let status = &web["status"];
    assert_eq!(status["role"], "Started", "{web}");
    let available = condition(status, "Available");
    assert_eq!(available["status"], "True", "{web}");
    assert_eq!(available["observedGeneration"], web["metadata"]["generation"], "{web}");
    assert!(available["lastTransitionTime"].is_string(), "{web}");
    assert_eq!(condition(status, "Failed")["status"], "False", "{web}");
    assert_eq!(condition(status, "Settled")["status"], "True", "{web}");

    let nodes = cluster.pacer(&["get", "no", "-o", "json"], None);
    let nodes: Value = serde_json::from_slice(&nodes.stdout).expect("get JSON");
    let items = nodes["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{nodes}");
    for node in &items {
        assert_eq!(node["status"]["state"], "online", "{node}");
        assert_eq!(condition(&node["status"], "Ready")["status"], "True", "{node}");
    }

    // A disabled resource: Available False with the scheduler's reason; wait for
    // stopped returns, wait for started times out with exit 1 saying where it runs.
    let disabled = MANIFESTS.replace("  agent: ocf:heartbeat:Dummy\n", "  agent: ocf:heartbeat:Dummy\n  meta: {targetRole: Stopped}\n");
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(&disabled));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let stopped = cluster.pacer(&["wait", "web", "--for", "stopped", "--timeout", "60s"], None);
    assert_eq!(stopped.status.code(), Some(0), "{}", text(&stopped.stderr));
    let json = cluster.pacer(&["get", "rsc", "web", "-o", "json"], None);
    let web: Value = serde_json::from_slice(&json.stdout).expect("get JSON");
    let available = condition(&web["status"], "Available");
    assert_eq!((&available["status"], &available["reason"]), (&Value::from("False"), &Value::from("Stopped")), "{web}");
    assert!(available["message"].as_str().is_some_and(|message| !message.is_empty()), "{web}");
    let timed_out = cluster.pacer(&["wait", "web", "--for", "started", "--timeout", "1s"], None);
    assert_eq!(timed_out.status.code(), Some(1));
    assert!(text(&timed_out.stderr).contains("not reached within 1s: web runs nowhere"), "{}", text(&timed_out.stderr));

    // Bad input: one line, exit 1.
    for (args, message) in [
        (vec!["wait", "nope", "--for", "started"], "error: resource nope not found"),
        (vec!["wait", "web", "--for", "promoted"], "error: web is not a promotable clone"),
        (vec!["wait", "web", "--for", "started", "--node", "n9"], "error: node n9 is not a member of the cluster"),
        (vec!["wait", "web", "--for", "started", "--timeout", "5x"], "error: invalid value '5x' for '--timeout <TIMEOUT>'"),
    ] {
        let output = cluster.pacer(&args, None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }

    // Completion: the shell asks pacer, which offers the live names.
    let completion = std::process::Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["--", "pacer", "wait", ""])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .env("_CLAP_IFS", "\n")
        .env("PACER_ETCD", &cluster.endpoint)
        .output()
        .expect("complete");
    let offered = text(&completion.stdout);
    assert!(offered.lines().any(|line| line == "web") && offered.lines().any(|line| line == "db"), "{offered}");
    let script = cluster.pacer(&["completion", "bash"], None);
    assert!(text(&script.stdout).contains("complete -o nospace -o bashdefault -o nosort -F _clap_complete_pacer pacer"), "{}", text(&script.stdout));
}

#[test]
fn an_unreachable_etcd_is_one_line_and_exit_2() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).expect("a free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    for args in [vec!["status"], vec!["get", "rsc"], vec!["wait", "web", "--for", "started"], vec!["apply", "-f", "-"]] {
        let output = common::pacer(&endpoint, "/pacer", &args, Some(MANIFESTS));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr, format!("error: cannot reach etcd at {endpoint}: connection refused (set --etcd or PACER_ETCD)\n"), "{args:?}");
    }
}

/// `pacer check`'s output and exit code.
fn check(cluster: &LocalCluster, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check"];
    all.extend(args);
    let output = cluster.pacer(&all, None);
    (output.status.code(), text(&output.stdout))
}

#[test]
fn check_speaks_nagios() {
    let cluster = LocalCluster::start(2, &["--fencing", "off"]);
    let applied = cluster.pacer(&["apply", "-f", "-"], Some(MANIFESTS));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    for resource in ["web", "db"] {
        let waited = cluster.pacer(&["wait", resource, "--for", "started", "--timeout", "60s"], None);
        assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    }
    // Everything runs: OK, with performance data (db's two instances and web).
    let started = std::time::Instant::now();
    let (code, out) = loop {
        let (code, out) = check(&cluster, &[]);
        if code == Some(0) || started.elapsed() > std::time::Duration::from_secs(30) {
            break (code, out);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "PACER OK - 2/2 nodes online, 3/3 resources started | nodes_online=2;;;0;2 resources_started=3;;;0;3 failures=0;1;;0;\n");
    let (code, out) = check(&cluster, &["--resource", "web"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("PACER OK - web: Started n"), "{out}");

    // A node in standby: WARNING.
    let standby = "apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: n2}\nspec: {standby: true}\n";
    assert!(cluster.pacer(&["apply", "-f", "-"], Some(standby)).status.success());
    let (code, out) = check(&cluster, &["--node", "n2"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("PACER WARNING - node n2 standby") && out.contains("WARNING: node n2 is in standby"), "{out}");

    // web banned from both nodes: it should run and cannot — CRITICAL.
    let bans = "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: no-web}\nspec:\n  resource: web\n  rules: [{score: -INFINITY, expression: {attribute: '#uname', operation: Defined}}]\n";
    assert!(cluster.pacer(&["apply", "-f", "-"], Some(bans)).status.success());
    let waited = cluster.pacer(&["wait", "web", "--for", "stopped", "--timeout", "60s"], None);
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    let (code, out) = check(&cluster, &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("CRITICAL: resource web is stopped: "), "{out}");
    assert!(out.contains("WARNING: node n2 is in standby"), "{out}");
    let (code, out) = check(&cluster, &["-o", "json"]);
    let json: Value = serde_json::from_str(&out).expect("check JSON");
    assert_eq!((code, &json["state"]), (Some(2), &Value::from("CRITICAL")), "{out}");

    // Bad arguments: UNKNOWN, exit 3.
    for args in [vec!["--resource", "nope"], vec!["--node", "n9"], vec!["--nodes-warning", "x"], vec!["--bogus"]] {
        let (code, out) = check(&cluster, &args);
        assert_eq!(code, Some(3), "{args:?}: {out}");
        assert!(out.starts_with("PACER UNKNOWN - "), "{args:?}: {out}");
        assert_eq!(out.lines().count(), 1, "{args:?}: {out}");
    }
}

#[test]
fn check_without_etcd_is_critical() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).expect("a free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    let output = common::pacer(&endpoint, "/pacer", &["check"], None);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stdout), format!("PACER CRITICAL - cannot reach etcd at {endpoint}: connection refused (set --etcd or PACER_ETCD)\n"));
}
