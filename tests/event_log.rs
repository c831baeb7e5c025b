//! The leader's event log on a real cluster (`pacer up`: private etcd, a scheduler,
//! agents): nodes joining and lost, fencing asked for and decisions are sequenced by
//! the leader; pending events agents write are moved into the one sequence in the
//! order they were written, none twice; the log is capped by `eventLimit`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LOCAL_PREFIX, LocalCluster};
use pacer::api::records::{EventKind, EventRecord};
use pacer::store::Store;
use pacer::store::events::EventListing;

async fn listing(store: &Store) -> EventListing {
    store.list_events().await.expect("list events")
}

/// Waits until the log satisfies `done`, returning it.
async fn wait_for(store: &Store, what: &str, done: impl Fn(&EventListing) -> bool) -> EventListing {
    let started = Instant::now();
    loop {
        let events = listing(store).await;
        if done(&events) {
            return events;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let shown: Vec<String> = events.events.iter().map(|event| format!("{} {:?} {:?} {}", event.sequence, event.kind, event.node, event.desc)).collect();
            panic!("no {what} within 60 s; log:\n{}", shown.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn has(events: &[EventRecord], kind: EventKind, node: &str, desc: &str) -> bool {
    events.iter().any(|event| event.kind == kind && event.node.as_deref() == Some(node) && event.desc.contains(desc))
}

/// Sequences are 1, 2, 3… with no gap (nothing trimmed yet) and each stored under its
/// own number.
fn assert_consecutive(events: &[EventRecord], from: u64) {
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    let expected: Vec<u64> = (from..from + events.len() as u64).collect();
    assert_eq!(sequences, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_sequences_node_fencing_and_decision_events() {
    let cluster = LocalCluster::start(2, &[]);
    let store = Store::connect(std::slice::from_ref(&cluster.endpoint), LOCAL_PREFIX).await.expect("connect");
    let joined =
        wait_for(&store, "member events", |log| has(&log.events, EventKind::Node, "n1", "member") && has(&log.events, EventKind::Node, "n2", "member")).await;
    assert_consecutive(&joined.events, 1);
    assert!(joined.events.iter().all(|event| event.reporter == "scheduler" || event.kind != EventKind::Node));
    let announced = store.read_announced_nodes().await.expect("announced");
    assert_eq!(announced.nodes.get("n1").map(String::as_str), Some("member"));

    // A resource makes a decision.
    let manifest = "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n";
    assert!(cluster.pacer(&["apply", "-f", "-"], Some(manifest)).status.success());
    let decided =
        wait_for(&store, "a decision event", |log| log.events.iter().any(|event| event.kind == EventKind::Decision && event.desc.contains("Start web"))).await;
    let decision = decided.events.iter().find(|event| event.kind == EventKind::Decision && event.desc.contains("Start web")).expect("decision");
    assert!(decision.detail.as_deref().is_some_and(|detail| detail.starts_with("input revision ")), "{decision:?}");

    // Power n2 off with the local fence agent: the leader says it is lost and asks
    // for it to be fenced.
    let root = env!("CARGO_MANIFEST_DIR");
    let mut fence = Command::new(Path::new(root).join("agents/fence/fence_pacer_local")).stdin(Stdio::piped()).spawn().expect("fence agent");
    let input = format!("action=off\nport=n2\nstate_dir={}\n", cluster.state_dir.display());
    std::io::Write::write_all(fence.stdin.as_mut().expect("stdin"), input.as_bytes()).expect("write");
    drop(fence.stdin.take());
    assert!(fence.wait().expect("fence agent").success());
    let lost = wait_for(&store, "n2 lost and fenced", |log| {
        has(&log.events, EventKind::Node, "n2", "lost")
            && log.events.iter().any(|event| event.kind == EventKind::Fencing && event.node.as_deref() == Some("n2"))
    })
    .await;
    let lost_at = lost.events.iter().position(|event| event.kind == EventKind::Node && event.node.as_deref() == Some("n2") && event.desc == "lost");
    let fencing = lost.events.iter().find(|event| event.kind == EventKind::Fencing && event.reporter == "scheduler").expect("fencing request");
    assert!(fencing.desc.starts_with("Operation reboot of n2 requested from n1"), "{fencing:?}");
    assert_eq!(fencing.task.as_deref(), Some("reboot"));
    let fencing_at = lost.events.iter().position(|event| event.kind == EventKind::Fencing && event.reporter == "scheduler");
    assert!(lost_at.is_some() && lost_at < fencing_at, "the loss comes before the fencing it calls for");
    assert_consecutive(&lost.events, 1);
    assert_eq!(store.read_announced_nodes().await.expect("announced").nodes.get("n2").map(String::as_str), Some("lost"));
    // The executor's own event of the fencing it was asked to run passes the leader's
    // check (`a_fencing_event_a_node_was_not_asked_to_run_is_dropped`).
    wait_for(&store, "the executor's fencing event", |log| {
        log.events.iter().any(|event| event.kind == EventKind::Fencing && event.reporter == "n1" && event.desc.starts_with("Operation reboot of n2 by n1"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_are_sequenced_in_order_once_and_the_log_is_capped() {
    let cluster = LocalCluster::start(1, &["--fencing", "off"]);
    let store = Store::connect(std::slice::from_ref(&cluster.endpoint), LOCAL_PREFIX).await.expect("connect");
    let policy = "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false, eventLimit: 100}\n";
    assert!(cluster.pacer(&["apply", "-f", "-"], Some(policy)).status.success());
    wait_for(&store, "the first events", |log| has(&log.events, EventKind::Node, "n1", "member")).await;

    // 250 events as agents write them: pending, under their node, several per
    // transaction (one node's each), two "nodes" taking turns.
    let mut client = etcd_client::Client::connect([cluster.endpoint.clone()], None).await.expect("connect");
    let keys = store.keys().clone();
    for batch in 0..25 {
        let mut operations = Vec::new();
        for index in 0..10 {
            let number = batch * 10 + index;
            let node = if batch % 2 == 0 { "n1" } else { "x9" };
            let mut event = EventRecord::new(EventKind::Attribute, node, 1_000_000 + number, format!("test {number}"));
            event.node = Some(node.to_string());
            event.attribute_name = Some("probe".to_string());
            event.attribute_value = Some(number.to_string());
            let key = keys.pending_event(node, &format!("{number:08}"));
            operations.push(etcd_client::TxnOp::put(key, serde_json::to_string(&event).expect("encode"), None));
        }
        client.txn(etcd_client::Txn::new().and_then(operations)).await.expect("write pending");
    }
    // Capped: at most the limit plus one trimming step are kept, the newest ones
    // (trimming follows the writes).
    let done = wait_for(&store, "every test event sequenced, and the log trimmed to its limit", |log| {
        log.pending.is_empty() && log.events.iter().any(|event| event.desc == "test 249") && log.events.len() <= 101
    })
    .await;
    let first = done.events.first().map(|event| event.sequence).expect("events");
    assert_consecutive(&done.events, first);
    // In the order written, each once.
    let tests: Vec<i64> = done.events.iter().filter_map(|event| event.desc.strip_prefix("test ")).filter_map(|number| number.parse().ok()).collect();
    let mut sorted = tests.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(tests, sorted, "out of order or repeated");
    assert_eq!(tests.last(), Some(&249));
    assert!(tests.len() >= 90, "{tests:?}");
    assert_eq!(store.first_event_sequence().await.expect("first"), Some(first));
}

/// A node may tell of a fencing of another node only when it ran it as the executor
/// the request named: n1 writing, under its own prefix, a fencing of n2 it was never
/// asked to run has its event dropped (the leader's log names n1), so it reaches
/// neither the log nor an alert; its own events still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fencing_event_a_node_was_not_asked_to_run_is_dropped() {
    let cluster = LocalCluster::start(2, &[]);
    let store = Store::connect(std::slice::from_ref(&cluster.endpoint), LOCAL_PREFIX).await.expect("connect");
    wait_for(&store, "member events", |log| has(&log.events, EventKind::Node, "n1", "member") && has(&log.events, EventKind::Node, "n2", "member")).await;
    let keys = store.keys().clone();
    let mut forged = EventRecord::new(EventKind::Fencing, "n1", 1_000_000, "Operation reboot of n2 by n1 for pacer@scheduler: OK");
    forged.node = Some("n2".into());
    forged.task = Some("reboot".into());
    forged.rc = Some(0);
    // With a result of its own under its prefix, as the agent writes them together.
    let result = serde_json::json!({"request": 1, "target": "n2", "action": "reboot", "succeeded": true, "by": "n1", "finished": 0});
    let mut marker = EventRecord::new(EventKind::Attribute, "n1", 1_000_001, "marker");
    marker.node = Some("n1".into());
    marker.attribute_name = Some("marker".into());
    marker.attribute_value = Some("1".into());
    let forged_key = keys.pending_event("n1", "00000001");
    let operations = vec![
        etcd_client::TxnOp::put(keys.fence_result("n1", "n2"), result.to_string(), None),
        etcd_client::TxnOp::put(forged_key.clone(), serde_json::to_string(&forged).expect("encode"), None),
        etcd_client::TxnOp::put(keys.pending_event("n1", "00000002"), serde_json::to_string(&marker).expect("encode"), None),
    ];
    let mut client = etcd_client::Client::connect([cluster.endpoint.clone()], None).await.expect("connect");
    client.txn(etcd_client::Txn::new().and_then(operations)).await.expect("write the forged event");
    let done =
        wait_for(&store, "the marker sequenced and nothing pending", |log| has(&log.events, EventKind::Attribute, "n1", "marker") && log.pending.is_empty())
            .await;
    assert!(!done.events.iter().any(|event| event.kind == EventKind::Fencing && event.reporter == "n1"), "n1's word on n2's fencing reached the log");
    let scheduler = std::fs::read_to_string(cluster.state_dir.join("logs/scheduler.log")).unwrap_or_default();
    assert!(
        scheduler.lines().any(|line| line.contains("dropping a Fencing event") && line.contains("node=n1") && line.contains(&forged_key)),
        "the leader does not say it dropped n1's event:\n{scheduler}"
    );
}
