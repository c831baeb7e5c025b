//! The cluster as the scheduler works on it: nodes and resources in arenas, indexed by
//! position, with constraints resolved to indices.
//!
//! Built once per decision by `unpack` from a `Snapshot`; later phases read it and
//! keep their own working state, so the model itself is never finalised piecemeal.

use std::collections::BTreeMap;

use crate::api::Score;
use crate::api::cluster::{NoQuorumPolicy, PlacementStrategy};
use crate::api::constraint::{OrderAction, OrderKind};
use crate::api::resource::{MultipleActive, OnFail, Requires, Role};

pub(crate) type NodeIdx = usize;
pub(crate) type RscIdx = usize;

/// Cluster-wide settings the scheduler reads (ClusterPolicy plus the observed quorum).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub stonith_enabled: bool,
    pub symmetric: bool,
    pub no_quorum_policy: NoQuorumPolicy,
    pub have_quorum: bool,
    pub placement_strategy: PlacementStrategy,
    pub maintenance_mode: bool,
    pub start_failure_is_fatal: bool,
    /// At least one fence device is configured: fencing is possible at all.
    pub have_fence_device: bool,
    /// Some fence device also unfences: nodes are unfenced before they run anything.
    pub have_unfencing_device: bool,
    pub now: i64,
}

impl Settings {
    /// Whether a node can be fenced (Pacemaker's `pe_can_fence`).
    pub fn can_fence(&self, node: &Node) -> bool {
        if !self.stonith_enabled || !self.have_fence_device {
            false
        } else if self.have_quorum || self.no_quorum_policy == NoQuorumPolicy::Ignore {
            true
        } else {
            node.online
        }
    }
}

/// One node and what is known about it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub name: String,
    /// Configured attributes, overlaid by run-time ones, plus `#uname` and `#id`.
    pub attributes: BTreeMap<String, String>,
    pub online: bool,
    /// Lost or misbehaving: must be fenced before its resources run elsewhere.
    pub unclean: bool,
    pub standby: bool,
    pub pending: bool,
    pub maintenance: bool,
    pub shutdown: bool,
    /// Why the node is unclean, for the plan.
    pub unclean_reason: Option<String>,
    /// Capacity per utilization attribute (placement strategies other than Default).
    pub capacity: BTreeMap<String, i64>,
    /// The node's health under the node-health strategy, as a score every resource
    /// gets there (0 with no strategy).
    pub health: Score,
}

impl Node {
    /// Whether the node may run resources at all (Pacemaker's `pcmk__node_available`).
    pub fn available(&self) -> bool {
        self.online && !self.shutdown && !self.unclean && !self.standby && !self.maintenance && !self.pending
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// What a resource is: a primitive runs an agent; groups and clones hold children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RscKind {
    Primitive,
    Group,
    Clone,
}

/// One operation definition, as far as recovery needs it.
#[derive(Clone, Debug)]
pub(crate) struct OpDef {
    pub name: String,
    pub interval_ms: u64,
    pub on_fail: Option<OnFail>,
}

/// A node and the role a primitive was found in there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Active {
    pub node: NodeIdx,
    pub role: Role,
    /// The call id of the operation that found or left it running there
    /// (`records::start_call`): the copy a restart stops.
    pub started_call: Option<i64>,
}

/// A resource: primitive, group, clone, or a clone's instance (a primitive or group
/// whose parent is a clone).
#[derive(Clone, Debug)]
pub(crate) struct Rsc {
    /// The id used in plans and history: a primitive's name, `name:N` for an instance
    /// of a unique clone or any instance before naming (see `display_name`).
    pub id: String,
    /// The configured name this resource came from (the primitive or group name).
    pub name: String,
    pub kind: RscKind,
    pub parent: Option<RscIdx>,
    pub children: Vec<RscIdx>,
    /// A fence device rather than a service.
    pub is_fence_device: bool,
    pub priority: i64,
    pub stickiness: Score,
    /// 0 means never move away because of failures.
    pub migration_threshold: i64,
    pub failure_timeout_s: u64,
    pub target_role: Option<Role>,
    pub managed: bool,
    /// What must hold before it may start: `Nothing` starts even without quorum.
    pub requires: Requires,
    /// What to do when found active on several nodes.
    pub multiple_active: MultipleActive,
    /// May move by live migration (migrate_to on the source, migrate_from on the
    /// target) instead of a stop and a start.
    pub allow_migrate: bool,
    pub operations: Vec<OpDef>,
    /// What it consumes of a node's capacity, per utilization attribute.
    pub utilization: BTreeMap<String, i64>,
    pub clone: Option<CloneInfo>,
    /// Where a primitive was found running, and in which role (from history).
    pub active: Vec<Active>,
    /// A failure in its history calls for recovery.
    pub failed: bool,
    /// A failure was ignored (on-fail=ignore): its fail count does not push it away.
    pub failure_ignored: bool,
    /// Nodes it has been probed or run on (its status is known there).
    pub known_on: Vec<NodeIdx>,
    /// Nodes it may never run on because of failures (hard errors, stop failures).
    pub banned_on: Vec<NodeIdx>,
    /// Banned from every node (fatal error, on-fail=stop).
    pub banned_everywhere: bool,
    /// A failure that leaves the resource where it is, untouched (on-fail=block, or a
    /// stop failure that cannot be fenced).
    pub blocked: bool,
    /// The history names this resource was found under (`rsc:0` for an anonymous
    /// instance); promotion scores and fail counts are looked up by it.
    pub history_name: Option<String>,
    /// A live migration the history shows half done — `migrate_to` on the source
    /// succeeded, no `migrate_from` on the target yet —: (source, target). The
    /// resource counts as active on both; the migration goes on if it stays on the
    /// target.
    pub partial_migration: Option<(NodeIdx, NodeIdx)>,
    /// Nodes where a live migration's source is to be stopped whatever it is taken
    /// to run there (Pacemaker's `dangling_migrations`): both halves done without a
    /// stop on the source, or a failed `migrate_to` left as the source's last word.
    pub dangling_on: Vec<NodeIdx>,
    /// Nodes whose history of it was recorded with another agent (class, provider or
    /// type) than the configured one (Pacemaker's `pcmk__rsc_agent_changed`), or where
    /// it runs with other parameters than the configured ones (the start's parameter
    /// digest, `digest.rs`): a definition change; for a fence device when unfencing
    /// is on, the node is unfenced again.
    pub definition_changed_on: Vec<NodeIdx>,
    /// Nodes where it runs with other parameters than configured, all of them ones its
    /// agent can reload (the history's restart digest still matches, `digest.rs`): it
    /// is reloaded there rather than restarted (Pacemaker's `Reload`).
    pub reload_on: Vec<NodeIdx>,
    /// (node, operation key `<task>_<interval ms>`) of a failed start or probe that ran
    /// with other parameters than the configured ones: Pacemaker clears that
    /// operation's fail count, so it bans nothing there. Recurring monitors are not
    /// judged: their recorded digest covers their own meta (timeout), which the
    /// resource's digest does not.
    pub failcount_cleared_on: Vec<(NodeIdx, String)>,
}

impl Rsc {
    /// The current role: the highest role on any node, Stopped when inactive.
    pub fn role(&self) -> Role {
        self.active.iter().map(|active| active.role).max().unwrap_or(Role::Stopped)
    }

    /// The single node a resource is running on, or the first of several.
    pub fn current_node(&self) -> Option<NodeIdx> {
        self.active.first().map(|active| active.node)
    }
}

/// How a clone behaves.
#[derive(Clone, Debug)]
pub(crate) struct CloneInfo {
    pub max: usize,
    /// Instances that must run before what is ordered after the clone may start.
    pub min: usize,
    pub node_max: usize,
    pub unique: bool,
    pub interleave: bool,
    pub promotable: bool,
    pub promoted_max: usize,
    pub promoted_node_max: usize,
}

/// A location preference of one resource, already evaluated per node.
#[derive(Clone, Debug)]
pub(crate) struct LocationRule {
    pub resource: RscIdx,
    /// Applies only to instances in this role (promotion scores); None: placement.
    pub role: Option<Role>,
    /// The score per node where the constraint applies.
    pub scores: Vec<(NodeIdx, Score)>,
    /// `resource-discovery=exclusive`: nodes outside it never run the resource.
    pub exclusive: bool,
    /// The `Location` object it comes from (its index in the snapshot's objects), so
    /// an explanation can name it.
    pub origin: usize,
}

/// A colocation between two resources ("dependent with primary").
#[derive(Clone, Debug)]
pub(crate) struct Colocation {
    pub dependent: RscIdx,
    pub primary: RscIdx,
    pub score: Score,
    /// None means any role (Pacemaker's "Started" in a colocation means any role).
    pub dependent_role: Option<Role>,
    pub primary_role: Option<Role>,
    pub node_attribute: Option<String>,
    pub influence: bool,
    /// The `Colocation` object it comes from (its index in the snapshot's objects);
    /// None for the colocation a group implies between consecutive members.
    pub origin: Option<usize>,
}

impl Colocation {
    /// The colocation's weight in score merges: its score over INFINITY.
    pub fn factor(&self) -> f64 {
        self.score.value() as f64 / Score::INFINITY.value() as f64
    }
}

/// An ordering between two resources' actions.
#[derive(Clone, Debug)]
pub(crate) struct Ordering {
    pub first: RscIdx,
    pub first_action: OrderAction,
    pub then: RscIdx,
    pub then_action: OrderAction,
    pub kind: OrderKind,
    /// Whether the order also runs backwards for stops; an asymmetric mandatory order
    /// only gates a `then` that has yet to start.
    pub symmetrical: bool,
    /// For a set with require-all=false: `then` needs only one of the `first`s of this
    /// group to be runnable.
    pub any_of: Option<usize>,
}

/// The unpacked cluster: every fact the later phases need, and nothing they decide.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub settings: Settings,
    pub nodes: Vec<Node>,
    pub resources: Vec<Rsc>,
    /// Top-level resources in definition order.
    pub top: Vec<RscIdx>,
    pub locations: Vec<LocationRule>,
    pub colocations: Vec<Colocation>,
    pub orderings: Vec<Ordering>,
    /// Per resource: the orderings whose `then` it is.
    pub orderings_by_then: Vec<Vec<usize>>,
    /// Per resource: the colocations whose dependent it is.
    pub colocations_by_dependent: Vec<Vec<usize>>,
}

impl Cluster {
    /// The top-level ancestor of a resource.
    pub fn top_of(&self, mut rsc: RscIdx) -> RscIdx {
        while let Some(parent) = self.resources[rsc].parent {
            rsc = parent;
        }
        rsc
    }

    /// The clone a resource belongs to (itself if it is a clone).
    pub fn clone_of(&self, mut rsc: RscIdx) -> Option<RscIdx> {
        loop {
            if self.resources[rsc].kind == RscKind::Clone {
                return Some(rsc);
            }
            rsc = self.resources[rsc].parent?;
        }
    }

    /// Every primitive at or below `rsc`, in order.
    pub fn primitives_of(&self, rsc: RscIdx) -> Vec<RscIdx> {
        let mut out = Vec::new();
        self.collect_primitives(rsc, &mut out);
        out
    }

    fn collect_primitives(&self, rsc: RscIdx, out: &mut Vec<RscIdx>) {
        if self.resources[rsc].kind == RscKind::Primitive {
            out.push(rsc);
        } else {
            for &child in &self.resources[rsc].children {
                self.collect_primitives(child, out);
            }
        }
    }

    /// Whether a colocation's dependent may pull its primary toward it: always, unless
    /// `influence: false` and the dependent already runs.
    pub fn influences(&self, colocation: &Colocation) -> bool {
        colocation.influence || self.resources[colocation.dependent].active.is_empty()
    }

    /// Whether `rsc` is inside a promotable clone.
    pub fn is_promotable_instance(&self, rsc: RscIdx) -> bool {
        self.clone_of(rsc).and_then(|clone| self.resources[clone].clone.as_ref()).is_some_and(|info| info.promotable)
    }

    /// Whether `rsc` is an instance (or inside an instance) of a globally unique clone.
    pub fn is_unique_instance(&self, rsc: RscIdx) -> bool {
        self.clone_of(rsc).and_then(|clone| self.resources[clone].clone.as_ref()).is_some_and(|info| info.unique)
    }
}
