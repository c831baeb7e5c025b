//! From one decision to what each node is told: the `Plan`'s placements, cut per
//! node, with everything an agent needs to run them (agent, parameters, operation
//! timeouts, gates resolved to primitives). Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::resource::{CloneSpec, ResourceSpec, Role};
use crate::api::{Object, Spec, params};
use crate::scheduler::plan::{Gate, Plan, ResourceKind, ResourcePlan};

use crate::api::records::{AssignedResource, DEFAULT_TIMEOUT_MS, Definition, LocalGate, Migration, NodeAssignment, NodeState, OperationDef};

/// Failures the decision has seen, per (node, resource id on that node): the
/// `ResourceStatus::failures` counters of the statuses the snapshot was built from.
pub type FailuresSeen = BTreeMap<(String, String), u32>;

/// The decision cut per node: one `NodeAssignment` for every node of the plan (a node
/// with nothing to run gets an empty one, which tells its agent to stop everything).
/// `input_revision` is the etcd revision the snapshot was read at; `term` the
/// scheduler's election term.
pub fn node_assignments(plan: &Plan, objects: &[Object], failures: &FailuresSeen, input_revision: i64, term: i64) -> BTreeMap<String, NodeAssignment> {
    let catalog = Catalog::new(objects);
    // Where the decision places each primitive that is not cloned.
    let placed: BTreeMap<&str, Vec<String>> = plan
        .resources
        .iter()
        .filter(|resource| resource.clone.is_none())
        .map(|resource| {
            (resource.name.as_str(), resource.next.iter().filter(|placement| placement.role != Role::Stopped).map(|placement| placement.node.clone()).collect())
        })
        .collect();
    let mut assignments: BTreeMap<String, NodeAssignment> = plan
        .nodes
        .iter()
        .map(|node| {
            let assignment = NodeAssignment {
                node: node.name.clone(),
                input_revision,
                term,
                seen_revision: 0,
                state: node.state,
                start_failure_is_fatal: catalog.start_failure_is_fatal,
                unfence_first: plan.fencing.iter().any(|fencing| fencing.node == node.name && fencing.action == "on"),
                attributes: catalog.node_attributes.get(node.name.as_str()).cloned().unwrap_or_default(),
                resources: Vec::new(),
                migrations: Vec::new(),
                stop_after: BTreeMap::new(),
                probe_first: node.probe_first.clone(),
            };
            (node.name.clone(), assignment)
        })
        .collect();
    for resource in &plan.resources {
        if resource.kind == ResourceKind::FenceDevice {
            // Fence devices are run by the fencer on demand, not kept started.
            continue;
        }
        let Some(spec) = catalog.resources.get(resource.name.as_str()) else { continue };
        // A live migration: the plan moves a healthy allowMigrate resource in one step.
        let migration = plan
            .actions
            .iter()
            .any(|action| action.verb == "Migrate" && action.resource == resource.id)
            .then(|| match (resource.current.as_slice(), resource.next.as_slice()) {
                ([from], [to]) if from.node != to.node => Some((from.node.clone(), to.node.clone())),
                // A partial migration continued: it half runs on the target already.
                ([first, second], [to]) if first.node == to.node => Some((second.node.clone(), to.node.clone())),
                ([first, second], [to]) if second.node == to.node => Some((first.node.clone(), to.node.clone())),
                _ => None,
            })
            .flatten();
        // Stop gates where it runs now: what it leaves, or restarts, waits for them.
        if !resource.stop_after.is_empty() {
            for placement in &resource.current {
                if let Some(assignment) = assignments.get_mut(&placement.node) {
                    assignment.stop_after.entry(resource.name.clone()).or_insert_with(|| resource.stop_after.clone());
                }
            }
        }
        if let Some((source, target)) = &migration
            && let Some(assignment) = assignments.get_mut(source)
        {
            assignment.migrations.push(Migration { id: resource.id.clone(), target: target.clone() });
        }
        for placement in &resource.next {
            let Some(assignment) = assignments.get_mut(&placement.node) else { continue };
            if placement.role == Role::Stopped {
                continue;
            }
            let id = local_id(resource, assignment);
            let failures_seen = failures.get(&(placement.node.clone(), id.clone())).copied().unwrap_or(0);
            assignment.resources.push(AssignedResource {
                id,
                instance: resource.id.clone(),
                name: resource.name.clone(),
                group: resource.group.clone(),
                clone: resource.clone.clone(),
                role: placement.role,
                managed: !resource.frozen,
                exclusive: resource.clone.is_none() || resource.unique,
                definition: definition(spec, &resource.id, catalog.clone_of(resource)),
                failures_seen,
                migrate_from: migration.as_ref().filter(|(_, target)| *target == placement.node).map(|(source, _)| source.clone()),
                start_after: resource.start_after.iter().map(|gate| catalog.resolve(gate, &placed)).collect(),
                promote_after: resource.promote_after.iter().map(|gate| catalog.resolve(gate, &placed)).collect(),
                restart: resource.restart.filter(|_| resource.current.iter().any(|current| current.node == placement.node)),
            });
        }
    }
    // A node that is not online runs nothing new; say so plainly (its agent, if it is
    // alive at all, stops what it runs unless the node is in maintenance).
    for assignment in assignments.values_mut() {
        if matches!(assignment.state, NodeState::Offline | NodeState::Unclean | NodeState::Pending) {
            assignment.resources.retain(|resource| !resource.managed);
        }
    }
    assignments
}

/// The id a node keeps an instance under: the instance id for globally unique
/// clones, the primitive's name for anything else — anonymous instances are
/// interchangeable, so a second one on the same node (clone `nodeMax` > 1) is the only
/// one that needs its number.
fn local_id(resource: &ResourcePlan, assignment: &NodeAssignment) -> String {
    if resource.clone.is_none() || resource.unique {
        return resource.id.clone();
    }
    if assignment.resources.iter().any(|other| other.id == resource.name) { resource.id.clone() } else { resource.name.clone() }
}

fn definition(spec: &ResourceSpec, instance: &str, clone: Option<&CloneSpec>) -> Definition {
    let operations = spec
        .operations
        .iter()
        .filter(|operation| operation.enabled != Some(false))
        .map(|operation| OperationDef {
            name: operation.name.as_str().to_string(),
            interval_ms: operation.interval.as_millis(),
            timeout_ms: operation.timeout.map_or(DEFAULT_TIMEOUT_MS, |timeout| timeout.as_millis()),
            role: operation.role,
        })
        .collect();
    let mut meta = BTreeMap::new();
    if let Some(clone) = clone {
        let instance = instance.rsplit_once(':').map_or("0", |(_, number)| number);
        meta.insert("clone".to_string(), instance.to_string());
        if let Some(max) = clone.max {
            meta.insert("clone_max".to_string(), max.to_string());
        }
        meta.insert("clone_node_max".to_string(), clone.node_max.unwrap_or(1).to_string());
        meta.insert("globally_unique".to_string(), clone.globally_unique.to_string());
        meta.insert("notify".to_string(), clone.notify.to_string());
        if let Some(promotable) = &clone.promotable {
            let promoted_max = promotable.promoted_max.unwrap_or(1).to_string();
            let promoted_node_max = promotable.promoted_node_max.unwrap_or(1).to_string();
            meta.insert("promotable".to_string(), "true".to_string());
            // Older agents read the names from before Pacemaker 2.1.
            meta.insert("master_max".to_string(), promoted_max.clone());
            meta.insert("master_node_max".to_string(), promoted_node_max.clone());
            meta.insert("promoted_max".to_string(), promoted_max);
            meta.insert("promoted_node_max".to_string(), promoted_node_max);
        }
    }
    Definition { agent: spec.agent.clone(), params: params::plain_values(&spec.params), secret_files: params::secret_files(&spec.params), meta, operations }
}

/// Probe targets by id: what a node's agent holds (`agent::Reconciler::targets`).
pub type ProbeTargets = BTreeMap<String, ProbeTarget>;

/// `probe_targets`, by id.
pub fn probe_targets_by_id(objects: &[Object]) -> ProbeTargets {
    probe_targets(objects).into_iter().map(|target| (target.id.clone(), target)).collect()
}

/// A resource a node probes: every configured primitive is probed on every node, so
/// the scheduler knows what already runs where before it starts anything.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeTarget {
    pub id: String,
    pub name: String,
    pub group: Option<String>,
    pub clone: Option<String>,
    /// Shared with the node's entry for it while that is stopped or runs as
    /// configured.
    pub definition: Arc<Definition>,
}

/// What a node probes: each primitive under the id it would run under there — its
/// name, or `name:N` for each instance of a globally unique clone (as many as its
/// `max`, or one per configured node). Fence devices are not probed.
pub fn probe_targets(objects: &[Object]) -> Vec<ProbeTarget> {
    let catalog = Catalog::new(objects);
    let node_count = u32::try_from(catalog.node_attributes.len()).unwrap_or(u32::MAX).max(1);
    let mut group_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (group, (members, _)) in &catalog.groups {
        for member in members {
            group_of.insert(member.as_str(), group);
        }
    }
    let mut targets = Vec::new();
    for (&name, spec) in &catalog.resources {
        let group = group_of.get(name).copied();
        let (clone, clone_name) = match (&spec.clone, group.and_then(|group| catalog.groups.get(group))) {
            (Some(clone), _) => (Some(clone), Some(name)),
            (None, Some((_, Some(clone)))) => (Some(*clone), group),
            _ => (None, None),
        };
        let ids: Vec<String> = match clone {
            Some(clone) if clone.globally_unique => (0..clone.max.unwrap_or(node_count)).map(|instance| format!("{name}:{instance}")).collect(),
            _ => vec![name.to_string()],
        };
        for id in ids {
            let definition = Arc::new(definition(spec, &id, clone));
            targets.push(ProbeTarget { id, name: name.to_string(), group: group.map(str::to_string), clone: clone_name.map(str::to_string), definition });
        }
    }
    targets
}

/// The objects a decision refers to, by name.
struct Catalog<'a> {
    resources: BTreeMap<&'a str, &'a ResourceSpec>,
    groups: BTreeMap<&'a str, (Vec<String>, Option<&'a CloneSpec>)>,
    node_attributes: BTreeMap<&'a str, BTreeMap<String, String>>,
    start_failure_is_fatal: bool,
}

impl<'a> Catalog<'a> {
    fn new(objects: &'a [Object]) -> Catalog<'a> {
        let mut catalog = Catalog { resources: BTreeMap::new(), groups: BTreeMap::new(), node_attributes: BTreeMap::new(), start_failure_is_fatal: true };
        for object in objects {
            let name = object.name().as_str();
            match &object.spec {
                Spec::Resource(spec) => {
                    catalog.resources.insert(name, spec);
                }
                Spec::Group(group) => {
                    let members = group.members.iter().map(|member| member.as_str().to_string()).collect();
                    catalog.groups.insert(name, (members, group.clone.as_ref()));
                }
                Spec::Node(node) => {
                    let attributes = node.attributes.iter().map(|(key, value)| (key.clone(), value.as_str().to_string())).collect();
                    catalog.node_attributes.insert(name, attributes);
                }
                Spec::ClusterPolicy(policy) => catalog.start_failure_is_fatal = policy.start_failure_is_fatal,
                _ => {}
            }
        }
        catalog
    }

    /// The clone options a primitive instance runs under: its own, or its group's.
    fn clone_of(&self, resource: &ResourcePlan) -> Option<&'a CloneSpec> {
        resource.clone.as_ref()?;
        if let Some(clone) = self.resources.get(resource.name.as_str()).and_then(|spec| spec.clone.as_ref()) {
            return Some(clone);
        }
        resource.group.as_deref().and_then(|group| self.groups.get(group)).and_then(|(_, clone)| *clone)
    }

    /// A plan gate with its resource resolved to the primitives that must have acted,
    /// and, for primitives that are not cloned, to where the decision places them.
    fn resolve(&self, gate: &Gate, placed: &BTreeMap<&str, Vec<String>>) -> LocalGate {
        let members = match self.groups.get(gate.resource.as_str()) {
            Some((members, _)) => members.clone(),
            None => vec![gate.resource.clone()],
        };
        let on_nodes = members.iter().all(|member| placed.contains_key(member.as_str())).then(|| {
            let mut nodes: Vec<String> = members.iter().flat_map(|member| placed.get(member.as_str()).into_iter().flatten().cloned()).collect();
            nodes.sort();
            nodes.dedup();
            nodes
        });
        LocalGate {
            resource: gate.resource.clone(),
            members,
            action: gate.action,
            same_node: gate.same_node,
            on_nodes,
            at_least: gate.at_least.max(1),
            any_of: gate.any_of,
        }
    }
}
