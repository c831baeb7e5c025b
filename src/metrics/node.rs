//! A node agent's view of its own node, in ha_cluster_exporter's families (see
//! `cluster.rs` for how the names map): the node's statuses as the agent knows them,
//! and the resources it runs — never the stopped ones, which are the leader's to report
//! (`node=""`), so the agents' series and the leader's cover the same (node, resource)
//! pairs. Built by the agent's loop when a scrape asks (`node_view`, pure), rendered
//! off it.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::api::Object;
use crate::api::records::{NodeAssignment, ObservedRole, ResourceStatus};
use crate::api::score::INFINITY_VALUE;

use super::cluster::{
    FAIL_COUNT_HELP, MIGRATION_THRESHOLD_HELP, NODES_HELP, NodeStatuses, RESOURCES_HELP, ResourceEntry, SpecIndex, crm_mon_agent, fail_count_value, gauges,
};

/// The agent's own node, as one scrape shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub node: String,
    statuses: NodeStatuses,
    resources: Vec<LocalResource>,
}

/// A resource that may run on the node (anything but a proven stop).
#[derive(Clone, Debug, PartialEq)]
struct LocalResource {
    /// As the node keeps it: the primitive's name, `name:N` for a unique clone's
    /// instance.
    id: String,
    role: &'static str,
    managed: bool,
    /// Running here though no longer configured (the agent is stopping it).
    orphaned: bool,
    failed: bool,
    failure_ignored: bool,
    agent: String,
    group: String,
    clone: String,
    fail_count: u64,
    migration_threshold: i64,
}

/// What the agent's loop knows of its node, for `node_view`.
pub struct NodeFacts<'a> {
    pub node: &'a str,
    /// The agent holds the node's lease and has probed every resource.
    pub probed: bool,
    /// SIGTERM received: stopping everything.
    pub shutting_down: bool,
    pub assignment: Option<&'a NodeAssignment>,
    /// The configuration as the agent last listed it.
    pub objects: &'a [Object],
}

/// The view of the node from the agent's statuses, each with the verb of the operation
/// running on it, if any.
pub fn node_view<'a>(facts: NodeFacts<'_>, statuses: impl Iterator<Item = (&'a ResourceStatus, Option<&'static str>)>) -> NodeView {
    let spec = SpecIndex::new(facts.objects);
    let (standby, maintenance) = spec.nodes.get(facts.node).copied().unwrap_or_default();
    let statuses_of_node = NodeStatuses {
        online: facts.probed,
        standby,
        standby_onfail: facts.assignment.is_some_and(|assignment| assignment.state == crate::api::records::NodeState::Standby) && !standby,
        maintenance,
        pending: !facts.probed,
        unclean: false,
        shutdown: facts.shutting_down,
        expected_up: true,
        dc: false,
    };
    let node_in_maintenance = maintenance || spec.maintenance_mode;
    let mut resources = Vec::new();
    for (status, busy) in statuses {
        if !status.role.may_be_active() || status.role == ObservedRole::Unknown {
            continue;
        }
        let role = match busy {
            Some("start") => "starting",
            Some("stop") => "stopping",
            Some("promote") => "promoting",
            Some("demote") => "demoting",
            Some("migrate_to" | "migrate_from") => "migrating",
            _ => match status.role {
                ObservedRole::Promoted => "promoted",
                ObservedRole::Unpromoted => "unpromoted",
                ObservedRole::Migrating => "migrating",
                _ => "started",
            },
        };
        let fail_count: u64 = status.fail_counts.values().fold(0u64, |total, count| total.saturating_add(u64::from(*count)));
        let primitive = spec.primitive(&status.name);
        let assigned = facts.assignment.and_then(|assignment| assignment.resources.iter().find(|resource| resource.id == status.id));
        let managed = match assigned {
            Some(assigned) => assigned.managed,
            None => !node_in_maintenance && !primitive.is_some_and(|primitive| primitive.unmanaged),
        };
        resources.push(LocalResource {
            id: status.id.clone(),
            role,
            managed,
            orphaned: primitive.is_none(),
            failed: status.role == ObservedRole::Failed,
            failure_ignored: fail_count > 0 && primitive.is_some_and(|primitive| primitive.ignores_failures),
            agent: crm_mon_agent(&status.definition.agent),
            group: status.group.clone().unwrap_or_default(),
            clone: status.clone.clone().unwrap_or_default(),
            fail_count,
            migration_threshold: primitive.map_or(INFINITY_VALUE, |primitive| primitive.migration_threshold),
        });
    }
    NodeView { node: facts.node.to_string(), statuses: statuses_of_node, resources }
}

/// The node's families of one scrape.
#[derive(Debug)]
pub struct NodeCollector(pub NodeView);

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = &self.0;
        let node = view.node.as_str();
        let statuses = view.statuses.series().map(|(status, flag)| ([("node", node), ("type", "member"), ("status", status)], i64::from(flag)));
        gauges(&mut encoder, "ha_cluster_pacemaker_nodes", NODES_HELP, statuses)?;
        let entries: Vec<ResourceEntry> = view
            .resources
            .iter()
            .map(|resource| ResourceEntry {
                node,
                resource: &resource.id,
                role: resource.role,
                managed: resource.managed,
                agent: &resource.agent,
                group: &resource.group,
                clone: &resource.clone,
                active: true,
                orphaned: resource.orphaned,
                blocked: false,
                failed: resource.failed,
                failure_ignored: resource.failure_ignored,
            })
            .collect();
        gauges(&mut encoder, "ha_cluster_pacemaker_resources", RESOURCES_HELP, entries.iter().flat_map(ResourceEntry::series))?;
        fn labels<'v>(node: &'v str, resource: &'v LocalResource) -> [(&'static str, &'v str); 2] {
            [("node", node), ("resource", resource.id.as_str())]
        }
        let fail_counts = view.resources.iter().map(|resource| (labels(node, resource), fail_count_value(resource.fail_count)));
        gauges(&mut encoder, "ha_cluster_pacemaker_fail_count", FAIL_COUNT_HELP, fail_counts)?;
        let thresholds = view.resources.iter().map(|resource| (labels(node, resource), resource.migration_threshold));
        gauges(&mut encoder, "ha_cluster_pacemaker_migration_threshold", MIGRATION_THRESHOLD_HELP, thresholds)
    }
}
