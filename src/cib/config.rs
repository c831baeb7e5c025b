//! Cluster options (`crm_config`, `rsc_defaults`, `op_defaults`) and `<nodes>`.

use std::collections::BTreeMap;

use crate::api::cluster::{ClusterPolicySpec, NoQuorumPolicy, NodeHealthStrategy, NodeSpec, PlacementStrategy, StonithAction};
use crate::api::validate::CLUSTER_POLICY_NAME;
use crate::api::{Duration, Name, Object, ObjectMeta, ParamValue, Spec};

use super::values::{parse_bool, parse_duration, parse_score};
use super::xml::Element;
use super::{Importer, Namespace};

/// Cluster-wide settings gathered from the configuration.
pub(crate) struct ClusterSettings {
    pub policy: ClusterPolicySpec,
    /// `no-quorum-policy=suicide`: Pacer cannot express it, but it decides whether an
    /// online node of an inquorate partition is unclean.
    pub no_quorum_suicide: bool,
    /// `rsc_defaults` meta-attributes (other than stickiness, which the policy holds),
    /// inherited by every resource that does not set them.
    pub resource_defaults: Vec<(String, String)>,
    /// `op_defaults` timeout, inherited by every operation without one.
    pub operation_timeout: Option<Duration>,
}

impl ClusterSettings {
    pub fn policy_object(&self) -> Object {
        Object { metadata: ObjectMeta { name: Name::from(CLUSTER_POLICY_NAME), ..ObjectMeta::default() }, spec: Spec::ClusterPolicy(self.policy.clone()) }
    }
}

/// The configured nodes, and how node ids and unames map to Pacer names.
pub(crate) struct NodeTable {
    pub objects: Vec<Object>,
    pub by_id: BTreeMap<String, Name>,
    pub by_uname: BTreeMap<String, Name>,
}

impl NodeTable {
    /// A node named in a constraint, fencing level or host list, by uname.
    pub fn find(&self, uname: &str) -> Option<&Name> {
        self.by_uname.get(uname)
    }
}

/// Options that only tune the controller's timing or logging, not any decision.
const INFORMATIONAL_OPTIONS: &[&str] = &[
    "dc-version",
    "cluster-infrastructure",
    "have-watchdog",
    "last-lrm-refresh",
    "cluster-name",
    "cluster-delay",
    "dc-deadtime",
    "election-timeout",
    "shutdown-escalation",
    "crmd-transition-delay",
    "crmd-integration-timeout",
    "crmd-finalization-timeout",
    "transition-delay",
    "join-integration-timeout",
    "join-finalization-timeout",
    "transition-idle-timeout",
    "pe-error-series-max",
    "pe-warn-series-max",
    "batch-limit",
    "node-action-limit",
    "network-delay",
    "concurrent-fencing",
    "stonith-max-attempts",
    "fence-reaction",
    "load-threshold",
    "enable-acl",
    "cluster-ipc-limit",
    "stonith-watchdog-timeout",
];

/// Boolean options Pacer has no field for: harmless at their default, recorded otherwise.
const BOOLEAN_OPTIONS_WITH_DEFAULTS: &[(&str, bool)] =
    &[("stop-orphan-resources", true), ("stop-orphan-actions", true), ("stop-all-resources", false), ("shutdown-lock", false), ("enable-startup-probes", true)];

/// Meta-attributes of `rsc_defaults` that resources inherit.
const INHERITED_DEFAULTS: &[&str] =
    &["migration-threshold", "is-managed", "maintenance", "failure-timeout", "target-role", "priority", "multiple-active", "allow-migrate", "requires"];

impl Importer {
    /// Reads `crm_config`, `rsc_defaults` and `op_defaults`.
    pub(super) fn cluster_settings(&mut self, configuration: &Element) -> ClusterSettings {
        let mut settings =
            ClusterSettings { policy: ClusterPolicySpec::default(), no_quorum_suicide: false, resource_defaults: Vec::new(), operation_timeout: None };
        let options = configuration.child("crm_config").map(|crm| self.nvpairs(crm, "cluster_property_set")).unwrap_or_default();
        let mut default_stickiness = None;
        for (name, value) in &options {
            self.cluster_option(&mut settings, &mut default_stickiness, name, value);
        }
        if let Some(defaults) = configuration.child("rsc_defaults") {
            for (name, value) in self.nvpairs(defaults, "meta_attributes") {
                if name == "resource-stickiness" {
                    match parse_score(&value) {
                        Some(score) => default_stickiness = Some(score),
                        None => self.unmapped("rsc_defaults", &name, format!("{value:?} is not a score")),
                    }
                } else if INHERITED_DEFAULTS.contains(&name.as_str()) {
                    settings.resource_defaults.push((name, value));
                } else {
                    self.unmapped("rsc_defaults", &name, "resource default Pacer does not inherit".into());
                }
            }
        }
        if let Some(stickiness) = default_stickiness {
            settings.policy.default_resource_stickiness = stickiness;
        }
        if let Some(defaults) = configuration.child("op_defaults") {
            for (name, value) in self.nvpairs(defaults, "meta_attributes") {
                match (name.as_str(), parse_duration(&value)) {
                    ("timeout", Some(timeout)) if !timeout.is_zero() => settings.operation_timeout = Some(timeout),
                    ("timeout", _) => self.unmapped("op_defaults", &name, format!("{value:?} is not a timeout")),
                    _ => self.unmapped("op_defaults", &name, "operation default Pacer does not inherit".into()),
                }
            }
        }
        settings
    }

    fn cluster_option(&mut self, settings: &mut ClusterSettings, stickiness: &mut Option<crate::api::Score>, name: &str, value: &str) {
        let policy = &mut settings.policy;
        let mut invalid = false;
        match name {
            "stonith-enabled" => match parse_bool(value) {
                Some(enabled) => policy.stonith_enabled = enabled,
                None => invalid = true,
            },
            "stonith-action" => match value.trim().to_ascii_lowercase().as_str() {
                "reboot" => policy.stonith_action = StonithAction::Reboot,
                "off" | "poweroff" => policy.stonith_action = StonithAction::Off,
                _ => invalid = true,
            },
            "stonith-timeout" => match parse_duration(value) {
                Some(timeout) => policy.stonith_timeout = timeout,
                None => invalid = true,
            },
            "symmetric-cluster" => match parse_bool(value) {
                Some(symmetric) => policy.symmetric_cluster = symmetric,
                None => invalid = true,
            },
            "no-quorum-policy" => match value.trim().to_ascii_lowercase().as_str() {
                "stop" => policy.no_quorum_policy = NoQuorumPolicy::Stop,
                "freeze" => policy.no_quorum_policy = NoQuorumPolicy::Freeze,
                "ignore" => policy.no_quorum_policy = NoQuorumPolicy::Ignore,
                "demote" => policy.no_quorum_policy = NoQuorumPolicy::Demote,
                "suicide" => {
                    settings.no_quorum_suicide = true;
                    self.unmapped("nvpair", name, "no-quorum-policy suicide has no Pacer equivalent; the policy stays Stop".into());
                }
                _ => invalid = true,
            },
            "placement-strategy" => match value.trim().to_ascii_lowercase().as_str() {
                "default" => policy.placement_strategy = PlacementStrategy::Default,
                "utilization" => policy.placement_strategy = PlacementStrategy::Utilization,
                "minimal" => policy.placement_strategy = PlacementStrategy::Minimal,
                "balanced" => policy.placement_strategy = PlacementStrategy::Balanced,
                _ => invalid = true,
            },
            "node-health-strategy" => match value.trim().to_ascii_lowercase().as_str() {
                "none" => policy.node_health_strategy = NodeHealthStrategy::None,
                "migrate-on-red" => policy.node_health_strategy = NodeHealthStrategy::MigrateOnRed,
                "only-green" => policy.node_health_strategy = NodeHealthStrategy::OnlyGreen,
                "progressive" => policy.node_health_strategy = NodeHealthStrategy::Progressive,
                "custom" => policy.node_health_strategy = NodeHealthStrategy::Custom,
                _ => invalid = true,
            },
            "node-health-red" | "node-health-yellow" | "node-health-green" | "node-health-base" => match parse_score(value) {
                Some(score) => match name {
                    "node-health-red" => policy.node_health_red = score,
                    "node-health-yellow" => policy.node_health_yellow = score,
                    "node-health-green" => policy.node_health_green = score,
                    _ => policy.node_health_base = score,
                },
                None => invalid = true,
            },
            "startup-fencing" => match parse_bool(value) {
                Some(fence) => policy.startup_fencing = fence,
                None => invalid = true,
            },
            "maintenance-mode" => match parse_bool(value) {
                Some(maintenance) => policy.maintenance_mode = maintenance,
                None => invalid = true,
            },
            "start-failure-is-fatal" => match parse_bool(value) {
                Some(fatal) => policy.start_failure_is_fatal = fatal,
                None => invalid = true,
            },
            "cluster-recheck-interval" => match parse_duration(value) {
                Some(interval) => policy.cluster_recheck_interval = interval,
                None => invalid = true,
            },
            // Pacemaker keeps this many scheduler inputs; -1 means no limit.
            "pe-input-series-max" => match value.trim().parse::<i64>() {
                Ok(limit) if limit < 0 => policy.history_limit = 1_000_000,
                Ok(limit) => policy.history_limit = u32::try_from(limit.min(1_000_000)).unwrap_or(1_000_000),
                Err(_) => invalid = true,
            },
            "default-resource-stickiness" => match parse_score(value) {
                Some(score) => *stickiness = Some(score),
                None => invalid = true,
            },
            _ if INFORMATIONAL_OPTIONS.contains(&name) => {}
            _ => {
                if let Some((_, default)) = BOOLEAN_OPTIONS_WITH_DEFAULTS.iter().find(|(option, _)| *option == name) {
                    if parse_bool(value) != Some(*default) {
                        self.unmapped("nvpair", name, format!("cluster option {name}={value} has no Pacer equivalent"));
                    }
                } else {
                    self.unmapped("nvpair", name, format!("cluster option {name}={value} has no Pacer equivalent"));
                }
            }
        }
        if invalid {
            self.unmapped("nvpair", name, format!("{value:?} is not a valid {name}; the default applies"));
        }
    }

    /// Reads `<nodes>`: cluster nodes become Node objects; remote and ping nodes are
    /// recorded, because Pacer has no such kinds.
    pub(super) fn nodes(&mut self, configuration: &Element) -> NodeTable {
        let mut table = NodeTable { objects: Vec::new(), by_id: BTreeMap::new(), by_uname: BTreeMap::new() };
        let Some(nodes) = configuration.child("nodes") else { return table };
        for node in nodes.children_named("node") {
            let id = node.id();
            let uname = node.attr("uname").unwrap_or(id);
            if uname.is_empty() {
                self.unmapped("node", id, "node without uname or id".into());
                continue;
            }
            match node.attr("type").map(str::to_ascii_lowercase).as_deref() {
                None | Some("member") | Some("normal") => {}
                Some(other) => {
                    self.unmapped("node", id, format!("{other} nodes have no Pacer equivalent"));
                    continue;
                }
            }
            if table.by_uname.contains_key(uname) {
                self.unmapped("node", id, format!("{uname} is configured twice; the first wins"));
                continue;
            }
            let name = self.name(Namespace::Node, "node", uname);
            let spec = self.node_spec(node, uname);
            table.by_id.insert(id.to_string(), name.clone());
            table.by_uname.insert(uname.to_string(), name.clone());
            table.objects.push(Object { metadata: ObjectMeta { name, ..ObjectMeta::default() }, spec: Spec::Node(spec) });
        }
        table
    }

    fn node_spec(&mut self, node: &Element, uname: &str) -> NodeSpec {
        let mut spec = NodeSpec::default();
        for (name, value) in self.nvpairs(node, "instance_attributes") {
            match name.as_str() {
                "standby" | "maintenance" => match parse_bool(&value) {
                    Some(flag) if name == "standby" => spec.standby = flag,
                    Some(flag) => spec.maintenance = flag,
                    None => self.unmapped("nvpair", uname, format!("{name}={value:?} is not a boolean")),
                },
                _ if name.is_empty() || name.starts_with('#') || name.chars().any(|c| c.is_control() || c.is_whitespace()) => {
                    self.unmapped("nvpair", uname, format!("node attribute name {name:?} is not allowed in Pacer"));
                }
                _ => {
                    spec.attributes.insert(name, ParamValue(value));
                }
            }
        }
        spec.utilization = self.utilization(node, uname);
        spec
    }

    /// Utilization values are non-negative integers in Pacer.
    pub(super) fn utilization(&mut self, owner: &Element, owner_id: &str) -> BTreeMap<String, u64> {
        let mut utilization = BTreeMap::new();
        for (name, value) in self.nvpairs(owner, "utilization") {
            match value.trim().parse::<u64>() {
                Ok(amount) => {
                    utilization.insert(name, amount);
                }
                Err(_) => self.unmapped("utilization", owner_id, format!("{name}={value:?} is not a non-negative integer")),
            }
        }
        utilization
    }
}
