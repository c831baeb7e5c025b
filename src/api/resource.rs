//! `Resource` (a primitive, optionally cloned or promotable) and `Group`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::agent::AgentRef;
use super::duration::Duration;
use super::names::Name;
use super::params::Param;
use super::score::Score;

/// A primitive resource: one agent instance, possibly cloned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSpec {
    /// `ocf:<provider>:<type>`, `lsb:<script>` or `systemd:<unit>`.
    pub agent: AgentRef,
    /// Instance attributes, passed to OCF agents as `OCF_RESKEY_<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128}))]
    pub params: BTreeMap<String, Param>,
    /// Operation definitions: timeouts of start/stop, recurring monitors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    pub meta: ResourceMeta,
    /// What one instance consumes, compared against node capacity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub utilization: BTreeMap<String, u64>,
    /// Run as a clone (one instance per node by default), or as a promotable clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSpec>,
}

/// Agent actions an operation can configure (the agent's own verbs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OperationName {
    #[serde(rename = "monitor")]
    Monitor,
    #[serde(rename = "start")]
    Start,
    #[serde(rename = "stop")]
    Stop,
    #[serde(rename = "promote")]
    Promote,
    #[serde(rename = "demote")]
    Demote,
    #[serde(rename = "migrate_to")]
    MigrateTo,
    #[serde(rename = "migrate_from")]
    MigrateFrom,
    #[serde(rename = "notify")]
    Notify,
    #[serde(rename = "reload")]
    Reload,
    #[serde(rename = "reload-agent")]
    ReloadAgent,
}

impl OperationName {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationName::Monitor => "monitor",
            OperationName::Start => "start",
            OperationName::Stop => "stop",
            OperationName::Promote => "promote",
            OperationName::Demote => "demote",
            OperationName::MigrateTo => "migrate_to",
            OperationName::MigrateFrom => "migrate_from",
            OperationName::Notify => "notify",
            OperationName::Reload => "reload",
            OperationName::ReloadAgent => "reload-agent",
        }
    }
}

/// One operation definition (Pacemaker's `<op>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    pub name: OperationName,
    /// How often a monitor recurs; 0 (the default) for one-shot actions and probes.
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub interval: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The role this monitor applies to (promotable clones monitor each role apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_fail: Option<OnFail>,
    /// A disabled operation is kept in the configuration but never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A resource's role. `Promoted`/`Unpromoted` only exist for promotable clones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Role {
    Stopped,
    Started,
    Unpromoted,
    Promoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stopped => "Stopped",
            Role::Started => "Started",
            Role::Unpromoted => "Unpromoted",
            Role::Promoted => "Promoted",
        }
    }
}

/// What to do when an operation fails (Pacemaker's `on-fail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OnFail {
    Ignore,
    Block,
    Stop,
    Restart,
    Standby,
    Fence,
    Demote,
}

/// What to do when a non-clone is found active on several nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MultipleActive {
    StopStart,
    StopOnly,
    Block,
    StopUnexpected,
}

/// What must hold before the resource may start (Pacemaker's `requires`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Requires {
    Nothing,
    Quorum,
    Fencing,
    Unfencing,
}

/// Meta-attributes of a resource or group. `None` means the cluster default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_managed: Option<bool>,
    /// Leave the resource entirely alone: no starts, stops or monitors (like a node in
    /// maintenance, for one resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_stickiness: Option<Score>,
    /// Failures on a node before the resource is banned from it (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_threshold: Option<Score>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_migrate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Score>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_active: Option<MultipleActive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<Requires>,
}

impl ResourceMeta {
    pub fn is_empty(&self) -> bool {
        *self == ResourceMeta::default()
    }
}

/// Clone options (Pacemaker's clone meta-attributes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneSpec {
    /// Instances in the cluster; default: the number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100000))]
    pub max: Option<u32>,
    /// Instances that must run before anything ordered after the clone may start
    /// (Pacemaker's clone-min); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub min: Option<u32>,
    /// Instances per node; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub node_max: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interleave: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub globally_unique: bool,
    /// Present for a promotable clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotable: Option<PromotableSpec>,
}

/// Promotable clone options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotableSpec {
    /// Instances promoted in the cluster; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100000))]
    pub promoted_max: Option<u32>,
    /// Instances promoted per node; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub promoted_node_max: Option<u32>,
}

/// Ordered members that run together on one node and start in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// Resources, started first to last and stopped last to first.
    #[schemars(length(min = 1, max = 1000))]
    pub members: Vec<Name>,
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    pub meta: ResourceMeta,
    /// Clone the whole group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSpec>,
}
