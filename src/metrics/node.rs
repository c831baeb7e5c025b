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
    /// The configuration as the agent last took it in, resources left out.
    pub objects: &'a [Object],
    /// A configured resource by name.
    pub resource: &'a dyn Fn(&str) -> Option<&'a Object>,
}

/// The view of the node from the agent's statuses, each with the verb of the operation
/// running on it, if any.
pub fn node_view<'a>(facts: NodeFacts<'_>, statuses: impl Iterator<Item = (&'a ResourceStatus, Option<&'static str>)>) -> NodeView {
    // A node keeps a status for every configured resource (all are probed) and runs a
    // few: only those are looked up.
    let present: Vec<(&ResourceStatus, Option<&'static str>)> =
        statuses.filter(|(status, _)| status.role.may_be_active() && status.role != ObservedRole::Unknown).collect();
    let names: std::collections::HashSet<&str> = present.iter().map(|(status, _)| status.name.as_str()).collect();
    let present_objects: Vec<&Object> = names.iter().filter_map(|name| (facts.resource)(name)).collect();
    let spec = SpecIndex::of(facts.objects.iter().chain(present_objects.iter().copied()), |name| names.contains(name));
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
    for (status, busy) in present {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::server::{Format, render};

    fn status(id: &str, agent: &str, role: &str, more: &str) -> ResourceStatus {
        let name = crate::api::names::split_instance(id).0;
        serde_json::from_str(&format!(
            r#"{{"id": "{id}", "name": "{name}", "node": "n1", "role": "{role}", "definition": {{"agent": "{agent}"}}, "history": []{more}}}"#
        ))
        .expect("a status")
    }

    #[test]
    fn an_agent_shows_what_may_run_on_its_node() {
        let objects = crate::scheduler::fixture::snapshot(
            &["n1"],
            &[
                ("Resource", "web", "{agent: 'ocf:heartbeat:Dummy', meta: {migrationThreshold: 2}}"),
                ("Resource", "db", "{agent: 'ocf:pacemaker:Stateful', clone: {promotable: {}}}"),
                ("Resource", "idle", "{agent: 'ocf:heartbeat:Dummy'}"),
            ],
            "",
        )
        .objects;
        let dummy = "ocf:heartbeat:Dummy";
        let statuses = [
            (status("web", dummy, "Started", r#", "failCounts": {"monitor_10000": 1}"#), Some("stop")),
            (status("db", "ocf:pacemaker:Stateful", "Promoted", r#", "clone": "db""#), None),
            (status("idle", dummy, "Stopped", r#", "failCounts": {"start_0": 1000000}"#), None),
            (status("gone", dummy, "Failed", ""), None),
            (status("unprobed", dummy, "Unknown", ""), None),
        ];
        // As the agent holds them: resources apart, looked up by name.
        let (resources, others): (Vec<Object>, Vec<Object>) = objects.into_iter().partition(|object| object.kind() == crate::api::Kind::Resource);
        let resource = |name: &str| resources.iter().find(|object| object.name().as_str() == name);
        let facts = NodeFacts { node: "n1", probed: true, shutting_down: false, assignment: None, objects: &others, resource: &resource };
        let view = node_view(facts, statuses.iter().map(|(status, busy)| (status, *busy)));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(NodeCollector(view)));
        let rendered = render(&registry, None, Format::Text).expect("render");
        // Stopped and unprobed resources are the leader's to show; the node is online.
        let shown: Vec<&str> = rendered.lines().filter(|line| !line.starts_with('#') && !line.contains("status=\"blocked\"")).collect();
        expect_test::expect![[r#"
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="online"} 1
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="standby"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="standby_onfail"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="maintenance"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="pending"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="unclean"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="shutdown"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="expected_up"} 1
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="dc"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="web",role="stopping",managed="true",status="active",agent="ocf::heartbeat:Dummy",group="",clone=""} 1
            ha_cluster_pacemaker_resources{node="n1",resource="web",role="stopping",managed="true",status="orphaned",agent="ocf::heartbeat:Dummy",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="n1",resource="web",role="stopping",managed="true",status="failed",agent="ocf::heartbeat:Dummy",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="n1",resource="web",role="stopping",managed="true",status="failure_ignored",agent="ocf::heartbeat:Dummy",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="active",agent="ocf::pacemaker:Stateful",group="",clone="db"} 1
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="orphaned",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="failed",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="failure_ignored",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="gone",role="started",managed="true",status="active",agent="ocf::heartbeat:Dummy",group="",clone=""} 1
            ha_cluster_pacemaker_resources{node="n1",resource="gone",role="started",managed="true",status="orphaned",agent="ocf::heartbeat:Dummy",group="",clone=""} 1
            ha_cluster_pacemaker_resources{node="n1",resource="gone",role="started",managed="true",status="failed",agent="ocf::heartbeat:Dummy",group="",clone=""} 1
            ha_cluster_pacemaker_resources{node="n1",resource="gone",role="started",managed="true",status="failure_ignored",agent="ocf::heartbeat:Dummy",group="",clone=""} 0
            ha_cluster_pacemaker_fail_count{node="n1",resource="web"} 1.0
            ha_cluster_pacemaker_fail_count{node="n1",resource="db"} 0.0
            ha_cluster_pacemaker_fail_count{node="n1",resource="gone"} 0.0
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="web"} 2
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="db"} 1000000
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="gone"} 1000000"#]].assert_eq(&shown.join("\n"));
    }
}
