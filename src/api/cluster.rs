//! `FenceDevice`, `FencingTopology`, `Node`, `ClusterPolicy` and `Alert`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::agent::FenceAgentRef;
use super::duration::Duration;
use super::names::{Name, ParamValue};
use super::params::Param;
use super::resource::{CloneSpec, Operation, ResourceMeta};
use super::score::Score;

/// A fence (STONITH) device: a fence agent and the nodes it can power off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FenceDeviceSpec {
    pub agent: FenceAgentRef,
    /// Passed to the agent on stdin as `key=value` lines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$", "maxLength": 128}))]
    pub params: BTreeMap<String, Param>,
    /// Nodes this device can fence (`pcmk_host_list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_list: Vec<Name>,
    /// Node name to the agent's port/plug name (`pcmk_host_map`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_map: BTreeMap<String, String>,
    /// How to find out which nodes the device can fence (`pcmk_host_check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_check: Option<HostCheck>,
    /// The agent parameter that receives the port (`pcmk_host_argument`), default `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_argument: Option<String>,
    /// Fixed wait before fencing (`pcmk_delay_base`), to avoid fence races in 2-node clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Upper bound of an added random wait (`pcmk_delay_max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_max: Option<Duration>,
    /// Timeout of a fencing action (`pcmk_reboot_timeout`, `pcmk_off_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Fencing attempts before moving on to the next level (`pcmk_reboot_retries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub retries: Option<u32>,
    /// The device also unfences (turns a node's access back on, as fence_scsi does):
    /// a node is unfenced through it before it runs anything (Pacemaker's
    /// `provides=unfencing`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfencing: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    pub meta: ResourceMeta,
    /// Run the device on several nodes at once (Pacemaker's cloned stonith
    /// resource); `promotable` is refused for fence devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HostCheck {
    /// hostList / hostMap say it.
    StaticList,
    /// Ask the agent (`action=list`).
    DynamicList,
    /// Ask the agent per node (`action=status`).
    Status,
    /// The device can fence every node.
    None,
}

/// The fencing levels of one node: level 1 is tried first; a level succeeds when all of
/// its devices succeed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FencingTopologySpec {
    /// The node these levels fence.
    pub node: Name,
    #[schemars(length(min = 1, max = 9))]
    pub levels: Vec<FencingLevel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FencingLevel {
    /// 1 to 9; lower levels are tried first.
    #[schemars(range(min = 1, max = 9))]
    pub index: u32,
    #[schemars(length(min = 1, max = 16))]
    pub devices: Vec<Name>,
}

/// A cluster node. Agents register theirs; administrators set attributes, capacity,
/// standby and maintenance here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// Permanent node attributes, matched by location rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, ParamValue>,
    /// Capacity, compared with resources' utilization.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub utilization: BTreeMap<String, u64>,
    /// A node in standby runs no resources.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// A node in maintenance has its resources left alone: no starts, stops or recovery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// Operations this node's agent runs at once, probes and monitors included; overrides
    /// `ClusterPolicy.nodeActionLimit` for this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub action_limit: Option<u32>,
}

/// Cluster-wide options. A singleton: its name is `cluster`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterPolicySpec {
    #[serde(default = "default_true")]
    pub stonith_enabled: bool,
    /// Fencing action: Reboot (default) or Off.
    #[serde(default)]
    pub stonith_action: StonithAction,
    #[serde(default = "default_stonith_timeout")]
    pub stonith_timeout: Duration,
    /// Resources may run anywhere unless constrained (true), or only where allowed (false).
    #[serde(default = "default_true")]
    pub symmetric_cluster: bool,
    #[serde(default)]
    pub no_quorum_policy: NoQuorumPolicy,
    #[serde(default)]
    pub default_resource_stickiness: Score,
    #[serde(default)]
    pub placement_strategy: PlacementStrategy,
    #[serde(default)]
    pub node_health_strategy: NodeHealthStrategy,
    /// What a `#health-*` node attribute of `red` / `yellow` / `green` scores under the
    /// Progressive and Custom strategies (MigrateOnRed and OnlyGreen fix their own).
    #[serde(default = "default_health_red")]
    pub node_health_red: Score,
    #[serde(default)]
    pub node_health_yellow: Score,
    #[serde(default)]
    pub node_health_green: Score,
    /// The starting health of every node under the Progressive strategy.
    #[serde(default)]
    pub node_health_base: Score,
    /// Manage nothing: no starts, stops or recovery anywhere.
    #[serde(default)]
    pub maintenance_mode: bool,
    /// A failed start bans the resource from the node at once.
    #[serde(default = "default_true")]
    pub start_failure_is_fatal: bool,
    /// A configured node never heard from since the cluster started is fenced before
    /// anything it may run is started elsewhere. Turning it off trusts such nodes to
    /// run nothing.
    #[serde(default = "default_true")]
    pub startup_fencing: bool,
    /// Re-evaluate time-based rules and failure timeouts at least this often.
    #[serde(default = "default_recheck_interval")]
    pub cluster_recheck_interval: Duration,
    /// Scheduler decisions kept in the history.
    #[serde(default = "default_history_limit")]
    #[schemars(range(max = 1000000))]
    pub history_limit: u32,
    /// Events kept (`pacer events`, alert delivery): the oldest beyond it go.
    #[serde(default = "default_event_limit")]
    #[schemars(range(min = 100, max = 1000000))]
    pub event_limit: u32,
    /// Operations each node's agent runs at once (probes and monitors included), unless
    /// its `Node.actionLimit` says otherwise; 0 (the default) is twice the node's cores,
    /// as Pacemaker's `node-action-limit`. More wait their turn, stops and demotes first.
    #[serde(default)]
    #[schemars(range(max = 10000))]
    pub node_action_limit: u32,
    /// CPU load, in percent of the node's cores, above which an agent runs fewer
    /// operations at once: a quarter of its limit above it, one at a time above twice it
    /// (Pacemaker's `load-threshold`). 0 turns the throttle off.
    #[serde(default = "default_load_threshold")]
    #[schemars(range(max = 10000))]
    pub load_threshold: u32,
}

fn default_true() -> bool {
    true
}

fn default_stonith_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_recheck_interval() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_health_red() -> Score {
    Score::NEG_INFINITY
}

fn default_history_limit() -> u32 {
    1000
}

fn default_event_limit() -> u32 {
    10000
}

fn default_load_threshold() -> u32 {
    80
}

impl Default for ClusterPolicySpec {
    fn default() -> ClusterPolicySpec {
        ClusterPolicySpec {
            stonith_enabled: true,
            stonith_action: StonithAction::default(),
            stonith_timeout: default_stonith_timeout(),
            symmetric_cluster: true,
            no_quorum_policy: NoQuorumPolicy::default(),
            default_resource_stickiness: Score::ZERO,
            placement_strategy: PlacementStrategy::default(),
            node_health_strategy: NodeHealthStrategy::default(),
            node_health_red: default_health_red(),
            node_health_yellow: Score::ZERO,
            node_health_green: Score::ZERO,
            node_health_base: Score::ZERO,
            maintenance_mode: false,
            start_failure_is_fatal: true,
            startup_fencing: true,
            cluster_recheck_interval: default_recheck_interval(),
            history_limit: default_history_limit(),
            event_limit: default_event_limit(),
            node_action_limit: 0,
            load_threshold: default_load_threshold(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StonithAction {
    #[default]
    Reboot,
    Off,
}

/// What to do when the cluster loses quorum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NoQuorumPolicy {
    /// Stop everything in the partition.
    #[default]
    Stop,
    /// Keep what runs, start nothing new.
    Freeze,
    /// Carry on as if quorate (two-node clusters).
    Ignore,
    /// Demote promoted instances, stop nothing else.
    Demote,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PlacementStrategy {
    /// Utilization is ignored.
    #[default]
    Default,
    /// Nodes must have capacity; otherwise scores decide.
    Utilization,
    /// Capacity, and as few nodes as possible.
    Minimal,
    /// Capacity, and spread load evenly.
    Balanced,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum NodeHealthStrategy {
    #[default]
    None,
    MigrateOnRed,
    OnlyGreen,
    Progressive,
    Custom,
}

/// Tell someone when something happens (Pacemaker's `<alert>`): every event of the
/// kinds selected is delivered to the receiver, at least once, by the leading
/// scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertSpec {
    pub receiver: AlertReceiver,
    /// Whether events are delivered (Pacemaker's `enabled` meta-attribute). A disabled
    /// alert's position is kept: enabled again, it resumes where it stopped.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Event kinds to send; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AlertEvent>,
    /// For Attribute events: only these node attributes; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Passed to the receiver (an e-mail address, a channel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// How long one delivery may take (an exec receiver is killed then; a webhook
    /// attempt given up); default 30s, as Pacemaker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// strftime format of `CRM_alert_timestamp`, with Pacemaker's `%N` for fractions of
    /// a second (`%3N` milliseconds, `%6N` microseconds); default `%H:%M:%S.%06N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
    /// Given to an exec receiver as environment variables (Pacemaker's instance
    /// attributes of an alert, such as `debug_exec_order` for the file sample).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Param>,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Exactly one of `webhook` or `exec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertReceiver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookReceiver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecReceiver>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookReceiver {
    /// An http:// or https:// URL; the event is POSTed as JSON.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// Headers sent with every request (an API key, a token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebhookHeader>,
}

/// One HTTP header of a webhook: its value given here, or read at each delivery from a
/// file on the scheduler's host (a secret kept out of etcd, never logged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookHeader {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueSource>,
}

/// Where a header's value is read from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValueSource {
    /// An absolute path on the scheduler's host; its content, without the trailing
    /// newline, is the value.
    #[schemars(length(min = 1, max = 4096))]
    pub file: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecReceiver {
    /// An absolute path to an executable, run with Pacemaker's CRM_alert_* environment.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AlertEvent {
    Node,
    Fencing,
    Resource,
    Attribute,
}
