//! The scheduler's output: where every resource instance ends up and in which role,
//! which nodes are fenced first, the actions that get there, and — for every
//! resource — the score of every node and the reason when it cannot run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::constraint::OrderAction;
use crate::api::records::NodeState;
use crate::api::resource::Role;
use crate::api::{Score, Spec};

use super::row::Row;
use super::snapshot::{NodeLiveness, Snapshot};

/// One decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub nodes: Vec<NodePlan>,
    pub resources: Vec<ResourcePlan>,
    /// Nodes to fence before any of their resources is recovered elsewhere.
    pub fencing: Vec<Fencing>,
    /// What changes, in Pacemaker's transition-summary terms.
    pub actions: Vec<Action>,
}

/// A node's state once the plan has run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePlan {
    pub name: String,
    pub state: NodeState,
    /// Why the node is unclean, when it is (or was, before fencing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclean_reason: Option<String>,
    /// On a joining (pending) node: the primitives whose start waits for their probe
    /// here, by name, so that its agent probes them before the rest. Empty elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probe_first: Vec<String>,
}

/// What kind of resource an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Primitive,
    Clone,
    Promotable,
    FenceDevice,
}

/// One primitive (or one instance of a cloned primitive).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePlan {
    /// `name`, or `name:N` for a clone instance.
    pub id: String,
    /// The configured primitive.
    pub name: String,
    pub kind: ResourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For a clone instance: the clone it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone: Option<String>,
    /// For an instance: whether the clone is globally unique (its instances are told
    /// apart by number).
    pub unique: bool,
    /// Where it runs now.
    pub current: Vec<Placement>,
    /// Where it runs once the plan has run (several entries only for a resource left
    /// active on several nodes because it cannot be managed).
    pub next: Vec<Placement>,
    /// The final score of every node for this resource, in the order of `Plan::nodes`
    /// (names are not repeated, and a `Row` keeps the score most nodes share once: a
    /// plan of 10,000 resources on 1,000 nodes holds ten million scores). Serialized
    /// as the list of every node's score. `Plan::scores_of` pairs them with node names.
    pub scores: Row<Score>,
    /// Why it does not run, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub failed: bool,
    /// Left alone: unmanaged, blocked by a failure, or on a maintenance node.
    pub frozen: bool,
    /// What the node agent must see happen before it starts this instance: the
    /// mandatory orders it is the `then` of, and the group member before it. The
    /// scheduler computes gates; the agent only evaluates them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_after: Vec<Gate>,
    /// What must be seen before this instance is promoted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promote_after: Vec<Gate>,
    /// It stays where it runs but is restarted there (Pacemaker's `Restart`): the
    /// `first` of a mandatory symmetric order it is the `then` of moves or is recovered.
    /// The call id of the start that made the copy now running: the agent stops that
    /// copy (before the first stops), and starts it again once its gates open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<i64>,
    /// Primitives (by name) whose copies started after this one must be seen stopped,
    /// on any node, before it stops: the `then`s of its mandatory symmetric orders.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_after: Vec<String>,
    /// Nodes where it is stopped although it is not taken to run there: a live
    /// migration finished (the target runs it) without a stop on its source
    /// (Pacemaker's dangling migration). Not a summary action, as in Pacemaker.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dangling: Vec<String>,
}

/// Why a resource does not run: a code for programs, a sentence for people. Text
/// renderings (`pacer simulate`, `pacer status`, the decision history) show the
/// sentence only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    pub code: ReasonCode,
    pub text: String,
}

impl Reason {
    pub(crate) fn new(code: ReasonCode, text: impl Into<String>) -> Reason {
        Reason { code, text: text.into() }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// What keeps a resource from running, one variant per place the scheduler decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReasonCode {
    /// No node has a score of 0 or more for it that is free to run it (bans, locations,
    /// colocations, capacity). Set by assignment, and by the transition for a resource
    /// the assignment left without a node and without a reason — which today includes
    /// an unmanaged resource that is not running (FIXME(scheduler): it deserves a code
    /// and a sentence of its own; the sentence is kept so renderings do not change).
    NoAllowedNode,
    /// Its target role, or one of its parents', is Stopped.
    TargetRoleStopped,
    /// Found active on several nodes with multiple-active=StopOnly: it is stopped
    /// everywhere.
    MultipleActive,
    /// The partition has no quorum and the no-quorum-policy (stop, or freeze for a
    /// resource not yet running) keeps it from running; the text names the policy.
    NoQuorum,
    /// A clone instance beyond clone-max.
    CloneInstanceLimit,
    /// Assigned a node, but the transition knocked out its start: a mandatory order
    /// whose first action will not happen, a group member before it that will not
    /// start, or a mandatory colocation with something that will not run. Today also
    /// what an unmanaged resource left on a node that is fenced gets (FIXME(scheduler):
    /// as for `NoAllowedNode`, a code of its own once the sentence may change).
    DependencyCannotRun,
}

/// One condition a start or promotion waits for: an action of another resource,
/// observed in the cluster's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The configured resource (primitive, group or clone) whose action must be seen.
    pub resource: String,
    /// `Start` (it runs) or `Promote` (it is promoted).
    pub action: OrderAction,
    /// Only a copy on the same node counts (the group member before, or the instance
    /// of an interleaved clone).
    pub same_node: bool,
    /// How many copies must have done it (a clone's `min`; 1 otherwise).
    pub at_least: u32,
    /// Gates sharing a number are alternatives: one of them suffices (a set with
    /// `requireAll: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_of: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub node: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fencing {
    pub node: String,
    /// `reboot` or `off`.
    pub action: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// `Start`, `Stop`, `Move`, `Recover`, `Restart`, `Promote`, `Demote`.
    pub verb: String,
    pub resource: String,
    /// A human summary such as `node1 -> node2`.
    pub detail: String,
}

impl Plan {
    /// The actions a live cluster carries out. Fence devices are run by the fencer
    /// on demand, never kept started (`state::assignments`), so the starts and stops
    /// the plan gives them — Pacemaker's, kept for conformance — are not waited for.
    pub fn live_actions(&self) -> impl Iterator<Item = &Action> + '_ {
        // Fence devices are few: a list, collected once.
        let fence_devices: Vec<&str> =
            self.resources.iter().filter(|resource| resource.kind == ResourceKind::FenceDevice).map(|resource| resource.id.as_str()).collect();
        self.actions.iter().filter(move |action| !fence_devices.contains(&action.resource.as_str()))
    }

    /// Every node's name with its score for `resource`.
    pub fn scores_of<'a>(&'a self, resource: &'a ResourcePlan) -> impl Iterator<Item = (&'a str, Score)> + 'a {
        self.nodes.iter().map(|node| node.name.as_str()).zip(resource.scores.iter())
    }

    /// Re-verifies the plan's safety invariants, against its own verdicts and, where
    /// they can be read off directly, against the snapshot it was made from: nothing
    /// started on a node that is not online and clean, or that a Location bans with
    /// -INFINITY; at most one active copy of anything it places (instances count one
    /// by one); no more promoted instances than a clone's promotedMax. Returns every
    /// violation found (empty when the plan is sound).
    pub fn check(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut problems = self.check_own_verdicts();
        problems.extend(self.check_against(snapshot));
        problems
    }

    /// The invariants against facts taken from the snapshot, not from the scheduler.
    fn check_against(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut problems = Vec::new();
        // Containers (group, clone) a placement of a primitive also answers for.
        let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut promoted_max: BTreeMap<&str, u32> = BTreeMap::new();
        for object in &snapshot.objects {
            match &object.spec {
                Spec::Group(group) => {
                    for member in &group.members {
                        owners.entry(member.as_str()).or_default().push(object.name().as_str());
                    }
                }
                Spec::Resource(resource) => {
                    if let Some(promotable) = resource.clone.as_ref().and_then(|clone| clone.promotable.as_ref()) {
                        promoted_max.insert(object.name().as_str(), promotable.promoted_max.unwrap_or(1));
                    }
                }
                _ => {}
            }
        }
        let banned = |resource: &str, node: &str| {
            let names: Vec<&str> = std::iter::once(resource).chain(owners.get(resource).into_iter().flatten().copied()).collect();
            snapshot.objects.iter().any(|object| match &object.spec {
                Spec::Location(location) => {
                    location.role.is_none()
                        && !location.expired_at(snapshot.now)
                        && location.node.as_ref().is_some_and(|banned| banned.as_str() == node)
                        && location.score == Some(Score::NEG_INFINITY)
                        && location.resource.iter().chain(location.resources.iter()).any(|name| names.contains(&name.as_str()))
                }
                _ => false,
            })
        };
        for resource in &self.resources {
            let kept = |placement: &Placement| resource.current.iter().any(|current| current.node == placement.node);
            for placement in resource.next.iter().filter(|placement| !kept(placement)) {
                let liveness = snapshot.observed.nodes.get(&placement.node).map(|node| node.liveness);
                if liveness != Some(NodeLiveness::Online) {
                    problems.push(format!("{} is started on {}, which the snapshot does not show online", resource.id, placement.node));
                }
                if banned(&resource.name, &placement.node) {
                    problems.push(format!("{} is started on {}, which a Location bans", resource.id, placement.node));
                }
            }
        }
        // Promoted copies left on an unclean node that cannot be fenced are not the
        // plan's choice (nothing can stop them), so they do not count.
        let online = |node: &str| self.nodes.iter().any(|state| state.name == node && state.state == NodeState::Online);
        for (name, limit) in promoted_max {
            let promoted = self
                .resources
                .iter()
                .filter(|resource| resource.name == name && !resource.frozen)
                .flat_map(|resource| &resource.next)
                .filter(|placement| placement.role == Role::Promoted && online(&placement.node))
                .count();
            if promoted > limit as usize {
                problems.push(format!("{name} has {promoted} promoted instances, more than promotedMax {limit}"));
            }
        }
        problems
    }

    /// The invariants against the plan's own node verdicts and scores.
    fn check_own_verdicts(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for resource in &self.resources {
            if resource.frozen {
                continue;
            }
            // Left where it is (a node that cannot be stopped or fenced keeps what it
            // runs): not a decision, so not checked.
            let kept = |placement: &Placement| resource.current.iter().any(|current| current.node == placement.node);
            if resource.next.len() > 1 && !resource.next.iter().all(kept) {
                problems.push(format!("{} is planned on {} nodes", resource.id, resource.next.len()));
            }
            for placement in resource.next.iter().filter(|placement| !kept(placement)) {
                let Some(node) = self.nodes.iter().find(|node| node.name == placement.node) else {
                    problems.push(format!("{} is planned on unknown node {}", resource.id, placement.node));
                    continue;
                };
                if node.state != NodeState::Online {
                    problems.push(format!("{} is planned on {} which is {}", resource.id, node.name, node.state.as_str()));
                }
                let score = self.scores_of(resource).find(|(name, _)| *name == placement.node).map(|(_, score)| score);
                if score == Some(Score::NEG_INFINITY) {
                    problems.push(format!("{} is planned on {} against a -INFINITY score", resource.id, placement.node));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_serializes_as_code_and_text_and_displays_as_its_text() {
        let reason = Reason::new(ReasonCode::NoAllowedNode, "no node can run it");
        assert_eq!(serde_json::to_value(&reason).ok(), Some(serde_json::json!({"code": "NoAllowedNode", "text": "no node can run it"})));
        assert_eq!(reason.to_string(), "no node can run it");
    }
}
