//! The cluster's state as ClusterLabs' ha_cluster_exporter exports a Pacemaker
//! cluster's (`collector/pacemaker`, `doc/metrics.md`): the same names, labels and
//! values, so its Grafana dashboards work unchanged. Computed at scrape time from the
//! leader's latest turn — its snapshot and plan, kept as they were decided on (the
//! plan without its score tables) — and nothing else. Pure.
//!
//! How Pacer's facts map to crm_mon's (what the exporter reads):
//! - `ha_cluster_pacemaker_nodes{node,type,status}`: every configured or reporting node,
//!   `type="member"`, one series per status with 1 or 0: `online`, `standby`,
//!   `standby_onfail` (in standby by the decision, not by its `Node` object: an
//!   `onFail: Standby`), `maintenance`, `pending` (joining, not probed yet), `unclean`
//!   (the decision's verdict: lost, to be fenced), `shutdown`, `expected_up` (online,
//!   joining or lost unclean: not known down), `dc` (the node the leading scheduler
//!   runs on: the first node whose agent shares its host, `daemon::dc_node`).
//! - `ha_cluster_pacemaker_resources{node,resource,role,managed,status,agent,group,clone}`:
//!   one entry per instance and node it runs on, one with `node=""` and
//!   `role="stopped"` for an instance that runs nowhere (anonymous clone instances
//!   go by the primitive's name and their stopped entries count once, as crm_mon
//!   shows them); five series each, `status` = `active`, `orphaned` (never here: the
//!   agents stop what is no longer configured), `blocked` (left alone though managed:
//!   a failure blocks it), `failed`, `failure_ignored` (`onFail: Ignore` and failures
//!   on the node). Roles are Pacemaker 2.1's, lower case (`started`, `promoted`,
//!   `unpromoted`); `agent` is crm_mon's form (`ocf::heartbeat:Dummy`). Fence devices
//!   are left out: the fencer runs them on demand, nothing keeps them started.
//! - `ha_cluster_pacemaker_fail_count{node,resource}` and
//!   `..._migration_threshold{node,resource}`: for every resource active on a node or
//!   with failures there (crm_mon's node history also lists every probe, which on
//!   1,000 nodes would be ten million series); an INFINITY fail count is `+Inf`.
//! - `ha_cluster_pacemaker_location_constraints{constraint,node,resource,role}`: each
//!   Location and resource it names, the score as value (`±Inf` for INFINITY); a
//!   Location of rules has `node=""` and 0, as the exporter reads it from the CIB.
//! - `ha_cluster_pacemaker_node_attributes{node,name,value}`: run-time node attributes
//!   (fail counts and `#` attributes aside, as crm_mon shows them); value 1.
//! - `ha_cluster_pacemaker_stonith_enabled`, `..._maintenance_mode_enabled`: the
//!   `ClusterPolicy` (defaults when there is none).
//! - `ha_cluster_pacemaker_config_last_change`: when the spec last changed (the
//!   spec-version key's time, by its writer's clock), seconds since the epoch; left out
//!   until a change has recorded one. A gauge (the exporter declares a counter; the
//!   name and value are what dashboards read).
//! - Pacer's own: `pacer_scheduler_decision_timestamp_seconds`, when the turn the
//!   families come from decided.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::agent::AgentRef;
use crate::api::names::split_instance;
use crate::api::records::NodeState;
use crate::api::resource::{OnFail, ResourceMeta, Role};
use crate::api::score::INFINITY_VALUE;
use crate::api::{Object, Score, Spec};
use crate::scheduler::plan::{Plan, ResourceKind};
use crate::scheduler::snapshot::{NodeLiveness, Snapshot};

/// What the leader decided on in its latest turn, for scrapes until the next.
#[derive(Debug)]
pub struct ClusterState {
    /// The turn's snapshot without its operation histories: they are the bulk of it
    /// (every probe on every node: ten million at 10,000 resources on 1,000 nodes) and
    /// the plan already says what they mean (where each instance runs, failed or not).
    pub snapshot: Snapshot,
    /// The decision, without its score tables (ten million numbers at 10,000 resources
    /// on 1,000 nodes, and no metric reads them).
    pub plan: Plan,
    /// When the spec last changed, seconds since the epoch.
    pub spec_changed_at: Option<i64>,
    /// The host the leading scheduler runs on (Pacemaker's DC is the node of the
    /// elected controller).
    pub leader_host: String,
}

impl ClusterState {
    pub fn new(mut snapshot: Snapshot, mut plan: Plan, spec_changed_at: Option<i64>, leader_host: String) -> ClusterState {
        snapshot.observed.history = Vec::new();
        for resource in &mut plan.resources {
            resource.scores = Default::default();
        }
        ClusterState { snapshot, plan, spec_changed_at, leader_host }
    }
}

/// The ha_cluster families of one scrape.
#[derive(Debug)]
pub struct ClusterCollector(pub std::sync::Arc<ClusterState>);

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_cluster(&self.0, &mut encoder)
    }
}

/// Writes one gauge family: its descriptor, then a series per `(labels, value)`.
pub(crate) fn gauges<S: EncodeLabelSet, V: EncodeGaugeValue + std::fmt::Debug + Send + Sync>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, V)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels.
pub(crate) fn gauge<V: EncodeGaugeValue + std::fmt::Debug + Send + Sync>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

pub(crate) const NODES_HELP: &str = "The status of each node in the cluster; 1 means the node is in that status, 0 otherwise";
pub(crate) const RESOURCES_HELP: &str = "The status of each resource in the cluster; 1 means the resource is in that status, 0 otherwise";
pub(crate) const FAIL_COUNT_HELP: &str = "The Fail count number per node and resource id";
pub(crate) const MIGRATION_THRESHOLD_HELP: &str = "The migration_threshold number per node and resource id";

/// A node's statuses, in the exporter's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeStatuses {
    pub online: bool,
    pub standby: bool,
    pub standby_onfail: bool,
    pub maintenance: bool,
    pub pending: bool,
    pub unclean: bool,
    pub shutdown: bool,
    pub expected_up: bool,
    pub dc: bool,
}

impl NodeStatuses {
    pub(crate) fn series(self) -> [(&'static str, bool); 9] {
        [
            ("online", self.online),
            ("standby", self.standby),
            ("standby_onfail", self.standby_onfail),
            ("maintenance", self.maintenance),
            ("pending", self.pending),
            ("unclean", self.unclean),
            ("shutdown", self.shutdown),
            ("expected_up", self.expected_up),
            ("dc", self.dc),
        ]
    }
}

/// One `ha_cluster_pacemaker_resources` entry (five series).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourceEntry<'a> {
    pub node: &'a str,
    pub resource: &'a str,
    pub role: &'static str,
    pub managed: bool,
    pub agent: &'a str,
    pub group: &'a str,
    pub clone: &'a str,
    pub active: bool,
    pub orphaned: bool,
    pub blocked: bool,
    pub failed: bool,
    pub failure_ignored: bool,
}

impl<'a> ResourceEntry<'a> {
    pub(crate) fn series(&self) -> impl Iterator<Item = ([(&'static str, &'a str); 8], i64)> + '_ {
        let managed = if self.managed { "true" } else { "false" };
        [("active", self.active), ("orphaned", self.orphaned), ("blocked", self.blocked), ("failed", self.failed), ("failure_ignored", self.failure_ignored)]
            .into_iter()
            .map(move |(status, flag)| {
                (
                    [
                        ("node", self.node),
                        ("resource", self.resource),
                        ("role", self.role),
                        ("managed", managed),
                        ("status", status),
                        ("agent", self.agent),
                        ("group", self.group),
                        ("clone", self.clone),
                    ],
                    i64::from(flag),
                )
            })
    }
}

/// A score as the exporter reports it: INFINITY as `±Inf`.
fn score_value(score: Score) -> f64 {
    match score.value() {
        value if value >= INFINITY_VALUE => f64::INFINITY,
        value if value <= -INFINITY_VALUE => f64::NEG_INFINITY,
        value => value as f64,
    }
}

/// A fail count as the exporter reports it: Pacemaker's INFINITY (1,000,000) as `+Inf`.
pub(crate) fn fail_count_value(count: u64) -> f64 {
    if count >= INFINITY_VALUE as u64 { f64::INFINITY } else { count as f64 }
}

/// A role as the exporter reports it (crm_mon's, lower case).
pub(crate) fn role_label(role: Role) -> &'static str {
    match role {
        Role::Stopped => "stopped",
        Role::Started => "started",
        Role::Unpromoted => "unpromoted",
        Role::Promoted => "promoted",
    }
}

/// An agent as crm_mon names it: `ocf::heartbeat:Dummy`, `lsb:name`, `systemd:unit`.
pub(crate) fn crm_mon_agent(agent: &AgentRef) -> String {
    match &agent.provider {
        Some(provider) => format!("{}::{provider}:{}", agent.class.as_str(), agent.agent_type),
        None => format!("{}:{}", agent.class.as_str(), agent.agent_type),
    }
}

/// What the families need of each configured primitive, looked up by name.
pub(crate) struct Primitive {
    pub agent: String,
    pub migration_threshold: i64,
    /// `isManaged: false` or `maintenance: true`, on it or on its group.
    pub unmanaged: bool,
    /// Some operation has `onFail: Ignore`.
    pub ignores_failures: bool,
}

/// The configuration as the families read it.
pub(crate) struct SpecIndex {
    pub primitives: HashMap<String, Primitive>,
    pub stonith_enabled: bool,
    pub maintenance_mode: bool,
    /// Node name → (standby, maintenance) from its `Node` object.
    pub nodes: BTreeMap<String, (bool, bool)>,
}

impl SpecIndex {
    pub(crate) fn new(objects: &[Object]) -> SpecIndex {
        SpecIndex::of(objects.iter(), |_| true)
    }

    /// The index with only the primitives `wanted` picks (the agent's few running
    /// resources out of every configured one: no agent name is formatted for the rest).
    pub(crate) fn of<'o>(objects: impl Iterator<Item = &'o Object> + Clone, wanted: impl Fn(&str) -> bool) -> SpecIndex {
        let mut group_of: HashMap<&str, &ResourceMeta> = HashMap::new();
        for object in objects.clone() {
            if let Spec::Group(group) = &object.spec {
                for member in group.members.iter().filter(|member| wanted(member.as_str())) {
                    group_of.insert(member.as_str(), &group.meta);
                }
            }
        }
        let unmanaged = |meta: &ResourceMeta| meta.is_managed == Some(false) || meta.maintenance == Some(true);
        let mut index = SpecIndex { primitives: HashMap::new(), stonith_enabled: true, maintenance_mode: false, nodes: BTreeMap::new() };
        for object in objects {
            let name = object.name().as_str();
            match &object.spec {
                Spec::Resource(resource) if wanted(name) => {
                    let group = group_of.get(name).copied();
                    let threshold = resource.meta.migration_threshold.or_else(|| group.and_then(|meta| meta.migration_threshold));
                    index.primitives.insert(
                        name.to_string(),
                        Primitive {
                            agent: crm_mon_agent(&resource.agent),
                            migration_threshold: threshold.map_or(INFINITY_VALUE, Score::value),
                            unmanaged: unmanaged(&resource.meta) || group.is_some_and(unmanaged),
                            ignores_failures: resource.operations.iter().any(|operation| operation.on_fail == Some(OnFail::Ignore)),
                        },
                    );
                }
                Spec::ClusterPolicy(policy) => {
                    index.stonith_enabled = policy.stonith_enabled;
                    index.maintenance_mode = policy.maintenance_mode;
                }
                Spec::Node(node) => {
                    index.nodes.insert(name.to_string(), (node.standby, node.maintenance));
                }
                _ => {}
            }
        }
        index
    }

    /// The primitive of a status or history id (`name`, or `name:N`).
    pub(crate) fn primitive(&self, id: &str) -> Option<&Primitive> {
        self.primitives.get(id).or_else(|| self.primitives.get(split_instance(id).0))
    }
}

/// The fail counts per node and resource id in a snapshot, from the
/// `fail-count-<id>#<op>_<interval>` attributes `state::observe` makes of the statuses.
fn fail_counts(snapshot: &Snapshot) -> BTreeMap<(&str, &str), u64> {
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (node, observed) in &snapshot.observed.nodes {
        for (name, value) in &observed.attributes {
            let Some((id, _operation)) = name.strip_prefix("fail-count-").and_then(|rest| rest.rsplit_once('#')) else { continue };
            let count = if value == "INFINITY" { INFINITY_VALUE as u64 } else { value.parse().unwrap_or(0) };
            let total = counts.entry((node.as_str(), id)).or_default();
            *total = total.saturating_add(count);
        }
    }
    counts
}

fn encode_cluster(state: &ClusterState, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let ClusterState { snapshot, plan, spec_changed_at, leader_host } = state;
    let spec = SpecIndex::new(&snapshot.objects);
    let verdicts: HashMap<&str, NodeState> = plan.nodes.iter().map(|node| (node.name.as_str(), node.state)).collect();

    let mut names: BTreeSet<&str> = spec.nodes.keys().map(String::as_str).collect();
    names.extend(snapshot.observed.nodes.keys().map(String::as_str));
    let dc = snapshot.observed.dc.as_deref().unwrap_or(leader_host.as_str());
    let statuses = names.iter().map(|name| {
        let (standby, maintenance) = spec.nodes.get(*name).copied().unwrap_or_default();
        let observed = snapshot.observed.nodes.get(*name);
        let liveness = observed.map(|node| node.liveness);
        let verdict = verdicts.get(name).copied();
        let statuses = NodeStatuses {
            online: liveness == Some(NodeLiveness::Online),
            standby,
            standby_onfail: verdict == Some(NodeState::Standby) && !standby,
            maintenance,
            pending: liveness == Some(NodeLiveness::Pending),
            unclean: verdict == Some(NodeState::Unclean),
            shutdown: observed.is_some_and(|node| node.shutdown),
            expected_up: matches!(liveness, Some(NodeLiveness::Online | NodeLiveness::Pending | NodeLiveness::Unclean)),
            dc: *name == dc,
        };
        (*name, statuses)
    });
    let node_series: Vec<([(&str, &str); 3], i64)> = statuses
        .flat_map(|(name, statuses)| {
            statuses.series().into_iter().map(move |(status, flag)| ([("node", name), ("type", "member"), ("status", status)], i64::from(flag)))
        })
        .collect();
    gauges(encoder, "ha_cluster_pacemaker_nodes", NODES_HELP, node_series)?;

    let counts = fail_counts(snapshot);
    let maintenance_nodes: BTreeSet<&str> = spec.nodes.iter().filter(|(_, (_, maintenance))| *maintenance).map(|(name, _)| name.as_str()).collect();
    let mut entries = Vec::with_capacity(plan.resources.len());
    let mut stopped_seen: BTreeSet<&str> = BTreeSet::new();
    let mut running_seen: BTreeSet<(&str, &str, Role)> = BTreeSet::new();
    // (node, resource id) pairs the node history families cover: active or failed.
    let mut histories: BTreeSet<(&str, &str)> = counts.iter().filter(|(_, count)| **count > 0).map(|(key, _)| *key).collect();
    for resource in &plan.resources {
        if resource.kind == ResourceKind::FenceDevice {
            continue;
        }
        let anonymous = resource.clone.is_some() && !resource.unique;
        let id = if anonymous { resource.name.as_str() } else { resource.id.as_str() };
        let primitive = spec.primitive(&resource.name);
        let agent = primitive.map_or("", |primitive| primitive.agent.as_str());
        let unmanaged = spec.maintenance_mode || primitive.is_some_and(|primitive| primitive.unmanaged);
        let ignores_failures = primitive.is_some_and(|primitive| primitive.ignores_failures);
        let entry = |node, role: Role| {
            let managed = !unmanaged && !maintenance_nodes.contains(node);
            ResourceEntry {
                node,
                resource: id,
                role: role_label(role),
                managed,
                agent,
                group: resource.group.as_deref().unwrap_or(""),
                clone: resource.clone.as_deref().unwrap_or(""),
                active: role != Role::Stopped,
                orphaned: false,
                blocked: resource.frozen && managed,
                failed: resource.failed,
                failure_ignored: ignores_failures && counts.get(&(node, id)).is_some_and(|count| *count > 0),
            }
        };
        let running: Vec<_> = resource.current.iter().filter(|placement| placement.role != Role::Stopped).collect();
        if running.is_empty() {
            if stopped_seen.insert(id) || !anonymous {
                entries.push(entry("", Role::Stopped));
            }
            continue;
        }
        for placement in running {
            histories.insert((placement.node.as_str(), id));
            // Instances of an anonymous clone are one resource to the exporter: two on
            // one node in one role would be the same series twice.
            if anonymous && !running_seen.insert((placement.node.as_str(), id, placement.role)) {
                continue;
            }
            entries.push(entry(placement.node.as_str(), placement.role));
        }
    }
    gauges(encoder, "ha_cluster_pacemaker_resources", RESOURCES_HELP, entries.iter().flat_map(ResourceEntry::series))?;

    let fail_count: Vec<([(&str, &str); 2], f64)> =
        histories.iter().map(|(node, id)| ([("node", *node), ("resource", *id)], fail_count_value(counts.get(&(*node, *id)).copied().unwrap_or(0)))).collect();
    gauges(encoder, "ha_cluster_pacemaker_fail_count", FAIL_COUNT_HELP, fail_count)?;
    let threshold: Vec<([(&str, &str); 2], i64)> = histories
        .iter()
        .map(|(node, id)| ([("node", *node), ("resource", *id)], spec.primitive(id).map_or(INFINITY_VALUE, |primitive| primitive.migration_threshold)))
        .collect();
    gauges(encoder, "ha_cluster_pacemaker_migration_threshold", MIGRATION_THRESHOLD_HELP, threshold)?;

    let mut locations = Vec::new();
    for object in &snapshot.objects {
        let Spec::Location(location) = &object.spec else { continue };
        let role = location.role.map_or("", role_label);
        let node = location.node.as_ref().map_or("", |node| node.as_str());
        let score = match (&location.node, location.score) {
            (Some(_), Some(score)) => score_value(score),
            _ => 0.0,
        };
        for resource in location.resource.iter().chain(location.resources.iter()) {
            locations.push(([("constraint", object.name().as_str()), ("node", node), ("resource", resource.as_str()), ("role", role)], score));
        }
    }
    gauges(encoder, "ha_cluster_pacemaker_location_constraints", "Resource location constraints. The value indicates the score.", locations)?;

    let attributes: Vec<([(&str, &str); 3], i64)> = snapshot
        .observed
        .nodes
        .iter()
        .flat_map(|(node, observed)| {
            observed
                .attributes
                .iter()
                .filter(|(name, _)| !name.starts_with("fail-count-") && !name.starts_with("last-failure-") && !name.starts_with('#'))
                .map(move |(name, value)| ([("node", node.as_str()), ("name", name.as_str()), ("value", value.as_str())], 1i64))
        })
        .collect();
    gauges(encoder, "ha_cluster_pacemaker_node_attributes", "Metadata attributes of each node; value is always 1", attributes)?;

    gauge(encoder, "ha_cluster_pacemaker_stonith_enabled", "Whether or not stonith is enabled", i64::from(spec.stonith_enabled))?;
    gauge(
        encoder,
        "ha_cluster_pacemaker_maintenance_mode_enabled",
        "Whether or not cluster wide maintenance-mode is enabled",
        i64::from(spec.maintenance_mode),
    )?;
    if let Some(changed) = spec_changed_at {
        gauge(encoder, "ha_cluster_pacemaker_config_last_change", "The timestamp of the last change of the cluster configuration", *changed)?;
    }
    gauge(
        encoder,
        "pacer_scheduler_decision_timestamp_seconds",
        "When the scheduler turn the ha_cluster_pacemaker_* families describe decided, seconds since the epoch",
        snapshot.now,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::server::{Format, render};
    use crate::scheduler::fixture;

    /// Two nodes, a group on n1 with one member failed there, a clone on both, a
    /// promotable clone, a resource that cannot run, a ban and a standby node.
    pub(crate) fn state() -> ClusterState {
        let objects = [
            ("Node", "n3", "{standby: true}"),
            ("ClusterPolicy", "cluster", "{stonithEnabled: false}"),
            ("Resource", "fs", "{agent: 'ocf:heartbeat:Dummy', meta: {migrationThreshold: 3}}"),
            ("Resource", "app", "{agent: 'ocf:heartbeat:Dummy', operations: [{name: monitor, interval: 10s, onFail: Ignore}]}"),
            ("Group", "grp", "{members: [fs, app]}"),
            ("Resource", "ping", "{agent: 'ocf:pacemaker:Dummy', clone: {}}"),
            ("Resource", "db", "{agent: 'ocf:pacemaker:Stateful', clone: {promotable: {}}}"),
            ("Resource", "off", "{agent: 'lsb:witness-lsb', meta: {targetRole: Stopped}}"),
            ("Location", "ban-off-n2", "{resource: off, node: n2, score: -INFINITY}"),
            ("Location", "db-promoted-on-n1", "{resource: db, role: Promoted, node: n1, score: 50}"),
        ];
        let mut observed = String::from(
            "nodes:\n  n1:\n    liveness: Online\n    attributes: {master-db: '10', 'fail-count-fs#start_0': INFINITY, 'last-failure-fs#start_0': '1000'}\n  n2: {liveness: Online, attributes: {master-db: '5', 'fail-count-app#monitor_10000': '2'}}\n  n3: {liveness: Online}\nhistory:\n",
        );
        for (resource, node) in [("fs", "n2"), ("app", "n2"), ("ping", "n1"), ("ping", "n2"), ("db", "n2")] {
            observed.push_str(&fixture::started(resource, node));
        }
        observed.push_str(
            "  - {resource: db, node: n1, operations: [{operation: start, callId: 1, rc: 0, expectedRc: 0, status: Done}, {operation: promote, callId: 2, rc: 0, expectedRc: 0, status: Done}]}\n",
        );
        let mut snapshot = fixture::snapshot(&["n1", "n2"], &objects, &observed);
        snapshot.now = 1_700_000_100;
        let plan = crate::scheduler::schedule(&snapshot);
        ClusterState::new(snapshot, plan, Some(1_700_000_000), "n1".into())
    }

    fn rendered() -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ClusterCollector(std::sync::Arc::new(state()))));
        render(&registry, None, Format::Text).expect("render")
    }

    #[test]
    fn families_follow_ha_cluster_exporter() {
        expect_test::expect![[r##"
            # HELP ha_cluster_pacemaker_nodes The status of each node in the cluster; 1 means the node is in that status, 0 otherwise
            # TYPE ha_cluster_pacemaker_nodes gauge
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="online"} 1
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="standby"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="standby_onfail"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="maintenance"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="pending"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="unclean"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="shutdown"} 0
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="expected_up"} 1
            ha_cluster_pacemaker_nodes{node="n1",type="member",status="dc"} 1
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="online"} 1
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="standby"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="standby_onfail"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="maintenance"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="pending"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="unclean"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="shutdown"} 0
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="expected_up"} 1
            ha_cluster_pacemaker_nodes{node="n2",type="member",status="dc"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="online"} 1
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="standby"} 1
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="standby_onfail"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="maintenance"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="pending"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="unclean"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="shutdown"} 0
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="expected_up"} 1
            ha_cluster_pacemaker_nodes{node="n3",type="member",status="dc"} 0
            # HELP ha_cluster_pacemaker_resources The status of each resource in the cluster; 1 means the resource is in that status, 0 otherwise
            # TYPE ha_cluster_pacemaker_resources gauge
            ha_cluster_pacemaker_resources{node="n2",resource="fs",role="started",managed="true",status="active",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 1
            ha_cluster_pacemaker_resources{node="n2",resource="fs",role="started",managed="true",status="orphaned",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="fs",role="started",managed="true",status="blocked",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="fs",role="started",managed="true",status="failed",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="fs",role="started",managed="true",status="failure_ignored",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="app",role="started",managed="true",status="active",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 1
            ha_cluster_pacemaker_resources{node="n2",resource="app",role="started",managed="true",status="orphaned",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="app",role="started",managed="true",status="blocked",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="app",role="started",managed="true",status="failed",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 0
            ha_cluster_pacemaker_resources{node="n2",resource="app",role="started",managed="true",status="failure_ignored",agent="ocf::heartbeat:Dummy",group="grp",clone=""} 1
            ha_cluster_pacemaker_resources{node="n1",resource="ping",role="started",managed="true",status="active",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 1
            ha_cluster_pacemaker_resources{node="n1",resource="ping",role="started",managed="true",status="orphaned",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="ping",role="started",managed="true",status="blocked",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="ping",role="started",managed="true",status="failed",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="ping",role="started",managed="true",status="failure_ignored",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="ping",role="started",managed="true",status="active",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 1
            ha_cluster_pacemaker_resources{node="n2",resource="ping",role="started",managed="true",status="orphaned",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="ping",role="started",managed="true",status="blocked",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="ping",role="started",managed="true",status="failed",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="ping",role="started",managed="true",status="failure_ignored",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="",resource="ping",role="stopped",managed="true",status="active",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="",resource="ping",role="stopped",managed="true",status="orphaned",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="",resource="ping",role="stopped",managed="true",status="blocked",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="",resource="ping",role="stopped",managed="true",status="failed",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="",resource="ping",role="stopped",managed="true",status="failure_ignored",agent="ocf::pacemaker:Dummy",group="",clone="ping"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="db",role="unpromoted",managed="true",status="active",agent="ocf::pacemaker:Stateful",group="",clone="db"} 1
            ha_cluster_pacemaker_resources{node="n2",resource="db",role="unpromoted",managed="true",status="orphaned",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="db",role="unpromoted",managed="true",status="blocked",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="db",role="unpromoted",managed="true",status="failed",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n2",resource="db",role="unpromoted",managed="true",status="failure_ignored",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="active",agent="ocf::pacemaker:Stateful",group="",clone="db"} 1
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="orphaned",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="blocked",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="failed",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="n1",resource="db",role="promoted",managed="true",status="failure_ignored",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="db",role="stopped",managed="true",status="active",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="db",role="stopped",managed="true",status="orphaned",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="db",role="stopped",managed="true",status="blocked",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="db",role="stopped",managed="true",status="failed",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="db",role="stopped",managed="true",status="failure_ignored",agent="ocf::pacemaker:Stateful",group="",clone="db"} 0
            ha_cluster_pacemaker_resources{node="",resource="off",role="stopped",managed="true",status="active",agent="lsb:witness-lsb",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="",resource="off",role="stopped",managed="true",status="orphaned",agent="lsb:witness-lsb",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="",resource="off",role="stopped",managed="true",status="blocked",agent="lsb:witness-lsb",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="",resource="off",role="stopped",managed="true",status="failed",agent="lsb:witness-lsb",group="",clone=""} 0
            ha_cluster_pacemaker_resources{node="",resource="off",role="stopped",managed="true",status="failure_ignored",agent="lsb:witness-lsb",group="",clone=""} 0
            # HELP ha_cluster_pacemaker_fail_count The Fail count number per node and resource id
            # TYPE ha_cluster_pacemaker_fail_count gauge
            ha_cluster_pacemaker_fail_count{node="n1",resource="db"} 0.0
            ha_cluster_pacemaker_fail_count{node="n1",resource="fs"} +Inf
            ha_cluster_pacemaker_fail_count{node="n1",resource="ping"} 0.0
            ha_cluster_pacemaker_fail_count{node="n2",resource="app"} 2.0
            ha_cluster_pacemaker_fail_count{node="n2",resource="db"} 0.0
            ha_cluster_pacemaker_fail_count{node="n2",resource="fs"} 0.0
            ha_cluster_pacemaker_fail_count{node="n2",resource="ping"} 0.0
            # HELP ha_cluster_pacemaker_migration_threshold The migration_threshold number per node and resource id
            # TYPE ha_cluster_pacemaker_migration_threshold gauge
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="db"} 1000000
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="fs"} 3
            ha_cluster_pacemaker_migration_threshold{node="n1",resource="ping"} 1000000
            ha_cluster_pacemaker_migration_threshold{node="n2",resource="app"} 1000000
            ha_cluster_pacemaker_migration_threshold{node="n2",resource="db"} 1000000
            ha_cluster_pacemaker_migration_threshold{node="n2",resource="fs"} 3
            ha_cluster_pacemaker_migration_threshold{node="n2",resource="ping"} 1000000
            # HELP ha_cluster_pacemaker_location_constraints Resource location constraints. The value indicates the score.
            # TYPE ha_cluster_pacemaker_location_constraints gauge
            ha_cluster_pacemaker_location_constraints{constraint="ban-off-n2",node="n2",resource="off",role=""} -Inf
            ha_cluster_pacemaker_location_constraints{constraint="db-promoted-on-n1",node="n1",resource="db",role="promoted"} 50.0
            # HELP ha_cluster_pacemaker_node_attributes Metadata attributes of each node; value is always 1
            # TYPE ha_cluster_pacemaker_node_attributes gauge
            ha_cluster_pacemaker_node_attributes{node="n1",name="master-db",value="10"} 1
            ha_cluster_pacemaker_node_attributes{node="n2",name="master-db",value="5"} 1
            # HELP ha_cluster_pacemaker_stonith_enabled Whether or not stonith is enabled
            # TYPE ha_cluster_pacemaker_stonith_enabled gauge
            ha_cluster_pacemaker_stonith_enabled 0
            # HELP ha_cluster_pacemaker_maintenance_mode_enabled Whether or not cluster wide maintenance-mode is enabled
            # TYPE ha_cluster_pacemaker_maintenance_mode_enabled gauge
            ha_cluster_pacemaker_maintenance_mode_enabled 0
            # HELP ha_cluster_pacemaker_config_last_change The timestamp of the last change of the cluster configuration
            # TYPE ha_cluster_pacemaker_config_last_change gauge
            ha_cluster_pacemaker_config_last_change 1700000000
            # HELP pacer_scheduler_decision_timestamp_seconds When the scheduler turn the ha_cluster_pacemaker_* families describe decided, seconds since the epoch
            # TYPE pacer_scheduler_decision_timestamp_seconds gauge
            pacer_scheduler_decision_timestamp_seconds 1700000100
        "##]].assert_eq(&rendered());
    }
}
