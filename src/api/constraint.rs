//! Constraints: `Location`, `Colocation` and `Order`, with resource sets and rules.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::{Name, ParamValue};
use super::resource::Role;
use super::score::Score;
use super::timestamp::Timestamp;

/// Where a resource may or prefers to run: a node with a score, or rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationSpec {
    /// The constrained resource (a Resource, Group or FenceDevice); or use `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Name>,
    /// Several resources constrained alike (a resource set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub resources: Vec<Name>,
    /// Limit the constraint to one role of a promotable clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// With `score`: the node this constraint scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// Instead of node + score: rules over node attributes; each that matches adds its score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub rules: Vec<LocationRule>,
    /// Whether probes run on the nodes this constraint names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_discovery: Option<ResourceDiscovery>,
    /// When the constraint stops counting (RFC 3339): from this instant on the
    /// scheduler ignores it, as Pacemaker does a constraint whose rule has a lifetime
    /// (`date lt`); the leader deletes an expired one that `pacer move` or `ban` made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

impl LocationSpec {
    /// Whether the constraint no longer counts at `now` (seconds since the epoch): its
    /// expiry is at or before `now`.
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires.is_some_and(|expires| expires.epoch_secs() <= now)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ResourceDiscovery {
    Always,
    Never,
    Exclusive,
}

/// A scored rule: when `expression` holds on a node, the node gets `score`
/// (or the value of the node attribute `scoreAttribute`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub expression: Expression,
}

/// A boolean expression over node attributes: exactly one of `and`, `or`, `not`, or
/// a comparison (`attribute` + `operation` [+ `value`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expression {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub and: Option<Vec<Expression>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub or: Option<Vec<Expression>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Expression>>,
    /// A node attribute, or `#uname` (node name), `#id`, `#kind`, `#is_dc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<ExpressionOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ParamValue>,
    /// How to compare: as strings (default), integers, numbers or versions.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ExpressionType>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ExpressionOperation {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Defined,
    NotDefined,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ExpressionType {
    String,
    Integer,
    Number,
    Version,
}

/// Keep resources together (positive score) or apart (negative).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColocationSpec {
    /// The dependent resource: placed relative to `withResource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_resource: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_role: Option<Role>,
    pub score: Score,
    /// Colocate by this node attribute instead of by node (`#uname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_attribute: Option<String>,
    /// Whether the dependent's preferences may move `withResource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub influence: Option<bool>,
    /// Instead of resource/withResource: resource sets, each colocated with the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub sets: Vec<ResourceSet>,
}

/// A resource set of a colocation or order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSet {
    #[schemars(length(min = 1, max = 1000))]
    pub resources: Vec<Name>,
    /// Whether members depend on each other in sequence (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<bool>,
    /// For orders: whether all of the set (default) or any one must be done first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OrderAction>,
}

/// An action an order constraint sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OrderAction {
    Start,
    Stop,
    Promote,
    Demote,
}

/// How binding an order is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum OrderKind {
    /// `then` may not run its action unless `first` has (and is stopped first on the way down).
    #[default]
    Mandatory,
    /// Only applies when both actions happen in the same transition.
    Optional,
    /// The two never run their actions at the same time, in either order.
    Serialize,
}

/// Run one action before another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Name>,
    /// Default: Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_action: Option<OrderAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<Name>,
    /// Default: the first action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_action: Option<OrderAction>,
    #[serde(default)]
    pub kind: OrderKind,
    /// Also order the reverse actions in reverse (default: true, except for Serialize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetrical: Option<bool>,
    /// Instead of first/then: resource sets, each ordered before the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub sets: Vec<ResourceSet>,
}

impl OrderSpec {
    pub fn first_action(&self) -> OrderAction {
        self.first_action.unwrap_or(OrderAction::Start)
    }

    pub fn then_action(&self) -> OrderAction {
        self.then_action.unwrap_or(self.first_action())
    }

    pub fn is_symmetrical(&self) -> bool {
        self.symmetrical.unwrap_or(self.kind != OrderKind::Serialize)
    }
}
