//! What-if: the scheduler run on a snapshot changed in memory — proposed manifests
//! applied (checked as `apply` checks them), nodes lost, operations failing — through
//! the same `schedule()`. `pacer simulate` (offline, on files), `pacer simulate --live`
//! (on the live snapshot) and `pacer diff --simulate` share it. Nothing is written.

use crate::api::manifest::{Loaded, check_change};
use crate::api::records::{ExecStatus, OperationRecord};
use crate::api::{Kind, Object, ObjectKey, ObjectSet, Spec};
use crate::scheduler::snapshot::{NodeLiveness, ObservedNode, ResourceHistory};
use crate::scheduler::{Plan, Snapshot, schedule, strip_instance};
use crate::store::Store;

use super::OpsError;
use super::live::Live;

/// One what-if injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injection {
    /// `--node-fail NODE`: the node is lost without a clean shutdown.
    NodeFail(String),
    /// `--op-fail RSC:OP:NODE=RC`: the operation's next result on that node is `rc`.
    OpFail { resource: String, operation: String, node: String, rc: i32 },
}

impl Injection {
    /// Parses `RSC:OP:NODE=RC` (`--op-fail`).
    pub fn op_fail(spec: &str) -> Result<Injection, OpsError> {
        let usage = || OpsError::Refused(format!("--op-fail {spec:?}: expected RESOURCE:OPERATION:NODE=RC, for example web:monitor:node1=7"));
        let (target, rc) = spec.rsplit_once('=').ok_or_else(usage)?;
        let rc: i32 = rc.trim().parse().map_err(|_| usage())?;
        let mut parts = target.splitn(3, ':');
        let (Some(resource), Some(operation), Some(node)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(usage());
        };
        if resource.is_empty() || operation.is_empty() || node.is_empty() {
            return Err(usage());
        }
        Ok(Injection::OpFail { resource: resource.to_string(), operation: operation.to_string(), node: node.to_string(), rc })
    }

    /// Changes `snapshot` as the injection says; an unknown node is refused.
    pub fn apply(&self, snapshot: &mut Snapshot) -> Result<(), OpsError> {
        match self {
            Injection::NodeFail(node) => inject_node_failure(snapshot, node),
            Injection::OpFail { resource, operation, node, rc } => inject_op_failure(snapshot, resource, operation, node, *rc),
        }
    }
}

fn known_node(snapshot: &Snapshot, node: &str) -> bool {
    snapshot.observed.nodes.contains_key(node) || snapshot.objects.iter().any(|object| object.kind() == Kind::Node && object.name().as_str() == node)
}

/// The node is lost without a clean shutdown.
fn inject_node_failure(snapshot: &mut Snapshot, node: &str) -> Result<(), OpsError> {
    if !known_node(snapshot, node) {
        return Err(OpsError::NotFound(format!("--node-fail {node}: no such node")));
    }
    let entry = snapshot.observed.nodes.entry(node.to_string()).or_insert_with(|| ObservedNode {
        liveness: NodeLiveness::Unclean,
        shutdown: false,
        attributes: Default::default(),
    });
    entry.liveness = NodeLiveness::Unclean;
    Ok(())
}

/// The operation's next result on that node is `rc`.
fn inject_op_failure(snapshot: &mut Snapshot, resource: &str, operation: &str, node: &str, rc: i32) -> Result<(), OpsError> {
    if !known_node(snapshot, node) {
        return Err(OpsError::NotFound(format!("--op-fail: no such node {node}")));
    }
    let definition = snapshot.objects.iter().find(|object| object.name().as_str() == resource && matches!(object.kind(), Kind::Resource | Kind::FenceDevice));
    let Some(definition) = definition else {
        return Err(OpsError::NotFound(format!("--op-fail: no such resource {resource}")));
    };
    let interval_ms = match &definition.spec {
        Spec::Resource(spec) => spec.operations.iter().find(|op| op.name.as_str() == operation).map(|op| op.interval.as_millis()),
        Spec::FenceDevice(spec) => spec.operations.iter().find(|op| op.name.as_str() == operation).map(|op| op.interval.as_millis()),
        _ => None,
    }
    .unwrap_or(0);
    let call_id = snapshot.observed.history.iter().flat_map(|history| history.operations.iter().map(|op| op.call_id)).max().unwrap_or(0).saturating_add(1);
    let record = OperationRecord {
        operation: operation.to_string(),
        interval_ms,
        call_id,
        rc,
        expected_rc: 0,
        status: ExecStatus::Done,
        last_rc_change: Some(snapshot.now),
        migrate_source: None,
        migrate_target: None,
        digest: None,
        restart_digest: None,
    };
    match snapshot.observed.history.iter_mut().find(|history| strip_instance(&history.resource) == resource && history.node == node) {
        Some(history) => history.operations.push(record),
        None => {
            snapshot.observed.history.push(ResourceHistory { resource: resource.to_string(), node: node.to_string(), agent: None, operations: vec![record] })
        }
    }
    Ok(())
}

/// Puts proposed objects (created or updated: `Some`; deleted: `None`) into the
/// snapshot's objects: an update keeps the object's place in definition order, a new
/// object comes last, as `apply` orders them.
pub fn propose(snapshot: &mut Snapshot, changes: Vec<(ObjectKey, Option<Object>)>) {
    for (key, object) in changes {
        let place = snapshot.objects.iter().position(|existing| existing.key() == key);
        match (place, object) {
            (Some(index), Some(mut object)) => {
                object.metadata.creation_sequence = snapshot.objects[index].metadata.creation_sequence;
                snapshot.objects[index] = object;
            }
            (None, Some(object)) => snapshot.objects.push(object),
            (Some(index), None) => {
                snapshot.objects.remove(index);
            }
            (None, None) => {}
        }
    }
}

/// The proposed manifests, checked against `stored` as `apply` checks them (schema
/// and decoding in `load`, the semantic checks of the whole set after the change).
pub fn check_proposed(stored: &ObjectSet, loaded: &Loaded) -> Result<Vec<(ObjectKey, Option<Object>)>, OpsError> {
    let checked = check_change(stored, &loaded.manifests, &[], &Default::default(), &loaded.broken);
    let mut diagnostics = loaded.diagnostics.clone();
    diagnostics.extend(checked.diagnostics);
    if !diagnostics.is_empty() {
        diagnostics.sort();
        diagnostics.dedup();
        return Err(OpsError::Invalid(diagnostics));
    }
    Ok(loaded.manifests.iter().map(|manifest| (manifest.object.key(), Some(manifest.object.clone()))).collect())
}

/// What a simulation started from and what it decided.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The etcd revision the live cluster was read at (0 offline).
    pub revision: i64,
    /// The live decision, before any change.
    pub before: Plan,
    /// The decision with the changes.
    pub plan: Plan,
}

/// The live snapshot with `proposed` changes (already checked) and `injections`,
/// through `schedule`. Reads the cluster once; writes nothing.
pub async fn simulate_live(store: &Store, proposed: Option<&Loaded>, injections: &[Injection]) -> Result<Simulation, OpsError> {
    let live = Live::read(store).await?;
    let mut snapshot = live.live.snapshot.clone();
    let before = schedule(&snapshot);
    if let Some(loaded) = proposed {
        let stored: ObjectSet = live.cache.objects().iter().map(|(key, stored)| (key.clone(), (*stored.object).clone())).collect();
        propose(&mut snapshot, check_proposed(&stored, loaded)?);
    }
    for injection in injections {
        injection.apply(&mut snapshot)?;
    }
    Ok(Simulation { revision: live.live.revision, before, plan: schedule(&snapshot) })
}

/// `simulate_live` with changes already planned by a dry-run apply (`pacer diff
/// --simulate`): each object as it would be stored, or None when deleted.
pub async fn simulate_changes(store: &Store, changes: Vec<(ObjectKey, Option<Object>)>) -> Result<Simulation, OpsError> {
    let live = Live::read(store).await?;
    let mut snapshot = live.live.snapshot.clone();
    let before = schedule(&snapshot);
    propose(&mut snapshot, changes);
    Ok(Simulation { revision: live.live.revision, before, plan: schedule(&snapshot) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::snapshot::Observed;

    #[test]
    fn op_fail_parses_and_bad_ones_are_refused_with_the_expected_form() {
        assert_eq!(
            Injection::op_fail("web:monitor:n1=7").ok(),
            Some(Injection::OpFail { resource: "web".into(), operation: "monitor".into(), node: "n1".into(), rc: 7 })
        );
        for bad in ["web:monitor:n1", "web:monitor=7", "web:monitor:n1=x", ":monitor:n1=7"] {
            let error = Injection::op_fail(bad).expect_err(bad).to_string();
            assert!(error.contains("expected RESOURCE:OPERATION:NODE=RC"), "{error}");
        }
    }

    #[test]
    fn an_unknown_node_is_refused() {
        let mut snapshot = Snapshot { objects: vec![], observed: Observed::default(), now: 0 };
        let error = Injection::NodeFail("ghost".into()).apply(&mut snapshot).expect_err("unknown");
        assert_eq!(error.to_string(), "--node-fail ghost: no such node");
    }
}
