//! A `then` that stays is restarted when its `first` moves, in Pacemaker's order, on a
//! live cluster (`pacer up`: real etcd, scheduler and agents running the witness
//! agent). The witness log is the shared testimony of what ran where and when: the
//! then's stop ends before the first's stop begins on the node it leaves, and the then
//! starts again only after the first's start has ended on its new node.

mod common;

use std::time::{Duration, Instant};

use common::{LocalCluster, text};
use pacer::local::witness::{Testimony, read_witness};

fn apply(cluster: &LocalCluster, manifest: &str) {
    let output = cluster.pacer(&["apply", "-f", "-"], Some(manifest));
    assert!(output.status.success(), "apply failed: {}\n{manifest}", text(&output.stderr));
}

/// `db` on `db_node` (a location of 100), `web` on n3, `db` then `web` (mandatory,
/// symmetrical). db's stop takes a second, so a first that did not wait would be seen.
fn manifests(log: &str, db_node: &str) -> String {
    format!(
        "apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {{name: db}}
spec:
  agent: ocf:pacer:witness
  params: {{log: {log}, delay: '1'}}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {{name: web}}
spec:
  agent: ocf:pacer:witness
  params: {{log: {log}}}
---
apiVersion: pacer.io/v1alpha1
kind: Location
metadata: {{name: db-here}}
spec: {{resource: db, node: {db_node}, score: 100}}
---
apiVersion: pacer.io/v1alpha1
kind: Location
metadata: {{name: web-on-n3}}
spec: {{resource: web, node: n3, score: INFINITY}}
---
apiVersion: pacer.io/v1alpha1
kind: Order
metadata: {{name: db-then-web}}
spec: {{first: db, then: web, kind: Mandatory}}
"
    )
}

/// The first line of the testimony for (resource, node, operation, phase) at or after
/// index `from`.
fn find(testimony: &[Testimony], from: usize, resource: &str, node: &str, operation: &str, phase: &str) -> Option<usize> {
    testimony
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, line)| line.resource == resource && line.node == node && line.operation == operation && line.phase == phase)
        .map(|(index, _)| index)
}

/// Waits for the testimony to satisfy `done`; a deadline that only a stuck cluster
/// misses (a loaded machine is slow, not stuck), with what the cluster says then.
async fn wait_until(cluster: &LocalCluster, what: &str, log: &std::path::Path, mut done: impl FnMut(&[Testimony]) -> bool) -> Vec<Testimony> {
    let started = Instant::now();
    loop {
        let testimony = read_witness(log);
        if done(&testimony) {
            return testimony;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let lines: Vec<String> = testimony.iter().map(|line| format!("{} {} {} {}", line.node, line.resource, line.operation, line.phase)).collect();
            let status = cluster.pacer(&["status", "-o", "json"], None);
            panic!("timed out waiting for {what}; the witness saw:\n{}\nstatus: {}", lines.join("\n"), text(&status.stdout));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_then_that_stays_is_restarted_around_its_first_moving() {
    let cluster = LocalCluster::start(3, &["--fencing", "off"]);
    let log = cluster.dir.path().join("witness.log");
    let log_text = log.display().to_string();
    apply(&cluster, &manifests(&log_text, "n1"));
    let ready = |testimony: &[Testimony]| find(testimony, 0, "db", "n1", "start", "end").is_some() && find(testimony, 0, "web", "n3", "start", "end").is_some();
    let before = wait_until(&cluster, "db on n1 and web on n3", &log, ready).await;
    let db_started = find(&before, 0, "db", "n1", "start", "end").expect("db started");
    let web_started = find(&before, 0, "web", "n3", "start", "begin").expect("web started");
    assert!(db_started < web_started, "web started after db the first time");
    let mark = before.len();

    // db now prefers n2: it moves, web stays on n3 and is restarted around the move.
    apply(&cluster, &manifests(&log_text, "n2"));
    let after = wait_until(&cluster, "web started again after db moved", &log, |testimony| {
        find(testimony, mark, "db", "n2", "start", "end").is_some() && find(testimony, mark, "web", "n3", "start", "end").is_some()
    })
    .await;
    let web_stop_end = find(&after, mark, "web", "n3", "stop", "end").expect("web was stopped");
    let db_stop_begin = find(&after, mark, "db", "n1", "stop", "begin").expect("db was stopped on n1");
    let db_stop_end = find(&after, mark, "db", "n1", "stop", "end").expect("db's stop ended");
    let db_start_begin = find(&after, mark, "db", "n2", "start", "begin").expect("db started on n2");
    let db_start_end = find(&after, mark, "db", "n2", "start", "end").expect("db's start ended");
    let web_start_begin = find(&after, mark, "web", "n3", "start", "begin").expect("web started again");
    assert!(web_stop_end < db_stop_begin, "web stops before db stops");
    assert!(db_stop_end < db_start_begin, "db stops on n1 before it starts on n2");
    assert!(db_start_end < web_start_begin, "web starts again after db has started on n2");
    // Restarted once: the decision naming the old copy, written again, restarts nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = read_witness(&log);
    let web_starts = settled.iter().skip(mark).filter(|line| line.resource == "web" && line.operation == "start" && line.phase == "begin").count();
    assert_eq!(web_starts, 1, "web was restarted exactly once");
}
