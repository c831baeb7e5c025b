//! Promotion is a compare-and-set across nodes. Two agents, each seeing the other's
//! instance unpromoted (a decision each, or one decision read at different times),
//! both decide to promote a clone with promotedMax 1; each writes its intent (the
//! pending promote, written before the agent runs) guarded by the mod revisions of the
//! other nodes' statuses it decided on. On real etcd, only one of the two intents can
//! be written; the other agent, refused, does not try again on the same view, and on
//! the fresher one sees no room.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::agent::{Action, Reconciler};
use pacer::api::records::{AssignedResource, Definition, NodeAssignment, NodeHeartbeat, NodeState, ObservedRole, ResourceStatus};
use pacer::api::resource::Role;
use pacer::state::ProbeTarget;
use pacer::store::Store;
use pacer::store::node::NodeSession;

const PREFIX: &str = "/pacer";

fn definition() -> Definition {
    Definition {
        agent: "ocf:pacer:witness".parse().expect("agent name"),
        params: BTreeMap::new(),
        secret_files: BTreeMap::new(),
        meta: BTreeMap::from([("promoted_max".to_string(), "1".to_string()), ("promotable".to_string(), "true".to_string())]),
        operations: Vec::new(),
    }
}

fn status(node: &str, role: ObservedRole) -> ResourceStatus {
    ResourceStatus {
        id: "db".into(),
        name: "db".into(),
        group: None,
        clone: Some("db-clone".into()),
        node: node.into(),
        role,
        definition: definition().into(),
        history: Vec::new(),
        failures: 0,
        started_after: Vec::new(),
        fail_counts: BTreeMap::new(),
        last_failure: None,
        failure_reason: None,
        pending: None,
        notice: None,
        acks: BTreeMap::new(),
    }
}

/// The agent of `node`, its instance unpromoted, told to promote it.
fn reconciler(node: &str) -> Reconciler {
    let mut reconciler = Reconciler::new(node, vec![status(node, ObservedRole::Unpromoted)]);
    let target = ProbeTarget { id: "db".into(), name: "db".into(), group: None, clone: Some("db-clone".into()), definition: definition().into() };
    reconciler.set_targets(std::sync::Arc::new(BTreeMap::from([("db".to_string(), target)])));
    reconciler.local.get_mut("db").expect("db").status.role = ObservedRole::Unpromoted;
    reconciler.assignment = Some(NodeAssignment {
        node: node.into(),
        input_revision: 1,
        term: 1,
        seen_revision: 0,
        state: NodeState::Online,
        start_failure_is_fatal: true,
        unfence_first: false,
        attributes: BTreeMap::new(),
        resources: vec![AssignedResource {
            id: "db".into(),
            instance: "db:0".into(),
            name: "db".into(),
            group: None,
            clone: Some("db-clone".into()),
            role: Role::Promoted,
            managed: true,
            exclusive: false,
            definition: definition(),
            failures_seen: 0,
            migrate_from: None,
            start_after: Vec::new(),
            promote_after: Vec::new(),
            restart: None,
        }],
        migrations: Vec::new(),
        stop_after: BTreeMap::new(),
        probe_first: Vec::new(),
    });
    reconciler
}

/// What the node's agent sees of the other nodes' statuses, with their mod revisions,
/// as its watch delivers them.
async fn see(store: &Store, reconciler: &mut Reconciler) {
    let (_, statuses) = store.read_records::<ResourceStatus>(&format!("{PREFIX}/status/")).await.expect("read the statuses");
    for (_, status, revision) in statuses {
        let key = (status.node.clone(), status.id.clone());
        reconciler.revisions.insert(key.clone(), revision);
        reconciler.cluster.insert(key, status);
    }
}

async fn session(store: &Store, node: &str) -> NodeSession {
    let lease = store.grant_lease(Duration::from_secs(60)).await.expect("grant a lease");
    let heartbeat = NodeHeartbeat { node: node.into(), lease_ttl_ms: 60_000, probed: true, ..NodeHeartbeat::default() };
    assert!(store.claim_node(node, lease, &heartbeat).await.expect("claim"), "{node} is free");
    NodeSession { node: node.into(), lease }
}

/// Decides, records the intent to promote as the agent loop does, and writes it as the
/// agent's flush does: guarded by the revisions it was decided on. Whether it was
/// written.
async fn intend_promotion(store: &Store, session: &NodeSession, reconciler: &mut Reconciler) -> bool {
    let steps = reconciler.decide(Instant::now());
    let step = steps.iter().find(|step| step.id == "db" && step.action == Action::Intend).expect("an intent to promote");
    reconciler.intend(step);
    let basis = reconciler.promotion_guard("db").expect("a promotion's intent is guarded").clone();
    let unchanged: Vec<(String, i64)> = basis.iter().map(|((node, id), revision)| (store.keys().status(node, id), *revision)).collect();
    let value = serde_json::to_string(&reconciler.local["db"].status).expect("encode");
    let written = store.guarded_write_unless_changed(session, &store.keys().status(&session.node, "db"), value, Vec::new(), &unchanged).await.expect("write");
    match written {
        Some(revision) => reconciler.intent_written("db", revision, std::time::Instant::now()),
        None => reconciler.intent_refused("db"),
    }
    written.is_some()
}

#[tokio::test]
async fn two_concurrent_intents_to_promote_cannot_both_be_written() {
    let etcd = TestEtcd::start();
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
    let n1 = session(&store, "n1").await;
    let n2 = session(&store, "n2").await;
    for session in [&n1, &n2] {
        let value = serde_json::to_string(&status(&session.node, ObservedRole::Unpromoted)).expect("encode");
        store.guarded_write(session, &store.keys().status(&session.node, "db"), Some(value), false).await.expect("write the unpromoted status");
    }
    // Both agents see both instances unpromoted: each has room under promotedMax.
    let mut first = reconciler("n1");
    let mut second = reconciler("n2");
    see(&store, &mut first).await;
    see(&store, &mut second).await;

    let first_written = intend_promotion(&store, &n1, &mut first).await;
    let second_written = intend_promotion(&store, &n2, &mut second).await;
    assert!(first_written, "the first intent finds its view unchanged");
    assert!(!second_written, "the second was decided on a view the first intent changed: refused");
    assert_eq!(second.local["db"].status.pending, None, "the refused intent is dropped");

    // On the same view it is not tried again; on the fresher one, n1's instance counts
    // as promoted (its promotion pending) and n2 has no room.
    let steps = second.decide(Instant::now());
    assert!(!steps.iter().any(|step| step.id == "db" && matches!(step.action, Action::Intend | Action::Promote)), "{steps:?}");
    see(&store, &mut second).await;
    let steps = second.decide(Instant::now());
    assert!(!steps.iter().any(|step| step.id == "db" && matches!(step.action, Action::Intend | Action::Promote)), "{steps:?}");
    let (_, statuses) = store.read_records::<ResourceStatus>(&format!("{PREFIX}/status/")).await.expect("read the statuses");
    let pending: Vec<&str> =
        statuses.iter().filter(|(_, status, _)| status.pending.as_deref() == Some("promote")).map(|(_, status, _)| status.node.as_str()).collect();
    assert_eq!(pending, vec!["n1"], "one promotion recorded");
}
