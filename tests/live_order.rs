//! Definition order survives etcd. The scheduler breaks its last ties by the order
//! objects were defined in (`Snapshot.objects`); `pacer simulate -f` reads it from the
//! manifests, the live scheduler from `metadata.creationSequence` through
//! `runtime::ClusterCache::objects_in_order`. On a case where only that order decides,
//! the two must place everything alike — and unlike name (key) order.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestEtcd, pacer, text};
use pacer::api::records::{NodeAssignment, NodeHeartbeat};
use pacer::daemon::decide_once;
use pacer::store::Store;
use serde_json::Value;

const PREFIX: &str = "/pacer";

/// Two equal nodes and two equal resources, `zeta` defined before `alpha`: the first
/// resource assigned takes n1 (equal scores and loads: the node name decides), the
/// second n2 (fewer resources). Which one is first is definition order alone.
const MANIFESTS: &str = "\
apiVersion: pacer.io/v1alpha1
kind: ClusterPolicy
metadata: {name: cluster}
spec: {stonithEnabled: false}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n1}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n2}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: zeta}
spec: {agent: \"ocf:heartbeat:Dummy\"}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: alpha}
spec: {agent: \"ocf:heartbeat:Dummy\"}
";

/// Resource name → node, from `pacer simulate -f FILE --json`.
fn simulated(etcd: &TestEtcd, file: &str) -> BTreeMap<String, String> {
    let output = pacer(&etcd.endpoint(), PREFIX, &["simulate", "-f", file, "--json"], None);
    assert!(output.status.success(), "simulate: {}", text(&output.stderr));
    let plan: Value = serde_json::from_slice(&output.stdout).expect("simulate --json prints JSON");
    let placements = plan["resources"].as_array().expect("resources");
    placements.iter().map(|placement| (placement[0].as_str().unwrap_or_default().to_string(), placement[2].as_str().unwrap_or_default().to_string())).collect()
}

/// Makes `node` online: a probed heartbeat under `nodes/<node>/lease`, as its agent
/// would hold it.
async fn online(store: &Store, node: &str) {
    let lease = store.grant_lease(Duration::from_secs(60)).await.expect("grant a lease");
    let heartbeat = NodeHeartbeat {
        node: node.into(),
        pid: std::process::id(),
        host: "test".into(),
        started: 0,
        lease_ttl_ms: 60_000,
        probed: true,
        shutdown: false,
        ..NodeHeartbeat::default()
    };
    assert!(store.claim_node(node, lease, &heartbeat).await.expect("claim"), "{node} is free");
}

#[tokio::test]
async fn the_live_decision_breaks_ties_by_definition_order_as_simulate_does() {
    let etcd = TestEtcd::start();
    let file = etcd.dir.path().join("order.yaml");
    std::fs::write(&file, MANIFESTS).expect("write the manifests");
    let file = file.display().to_string();

    let offline = simulated(&etcd, &file);
    let by_definition = BTreeMap::from([("zeta".to_string(), "n1".to_string()), ("alpha".to_string(), "n2".to_string())]);
    assert_eq!(offline, by_definition, "simulate places by definition order, not by name");

    let output = pacer(&etcd.endpoint(), PREFIX, &["apply", "-f", &file], None);
    assert!(output.status.success(), "apply: {}", text(&output.stderr));
    let store = Store::connect(&[etcd.endpoint()], PREFIX).await.expect("connect");
    for node in ["n1", "n2"] {
        online(&store, node).await;
    }
    let (guard, _) =
        store.campaign(&serde_json::json!({"identity": "test", "since": 0}), Duration::from_secs(3600)).await.expect("campaign").expect("no other scheduler");
    let decision = decide_once(&store, &guard).await.expect("decide");

    let live: BTreeMap<String, String> =
        decision.plan.resources.iter().flat_map(|resource| resource.next.iter().map(|placement| (resource.name.clone(), placement.node.clone()))).collect();
    assert_eq!(live, offline, "the live decision places like simulate -f");
    // And that is what the agents are told.
    let (_, plans) = store.read_records::<NodeAssignment>(&store.keys().plans_prefix()).await.expect("read the assignments");
    let assigned: BTreeMap<String, String> =
        plans.iter().flat_map(|(_, assignment, _)| assignment.resources.iter().map(|resource| (resource.id.clone(), assignment.node.clone()))).collect();
    assert_eq!(assigned, offline, "plans/<node> say the same");
}
