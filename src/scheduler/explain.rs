//! The scheduler explaining itself: `explain(&Snapshot, resource)` runs the very
//! phases `schedule` runs, with a recorder (`Trace`) switched on, and returns the plan
//! with every node's final score for the resource and the named steps that made it.
//!
//! The recorder holds no scheduler logic. Node criteria and assignment call it after
//! each step that may change a score table (`Trace::record`, `Trace::record_at`); it
//! compares the traced resources' tables with what it saw last and writes down each
//! change under the step's name. Every change is therefore seen, whichever step made
//! it, and the contributions folded in order (`NodeScore::total`) are the final score
//! the plan reports — a test holds that on every golden scenario. A tentative clone
//! assignment that is undone takes its contributions with it (`Trace::undo`).
//!
//! When nobody asks, `schedule` passes no recorder: each step then costs a branch on
//! `None`.

use std::collections::HashMap;

use serde::Serialize;

use crate::api::Score;

use super::assign::{ScoreRow, Table};
use super::model::{Cluster, NodeIdx, RscIdx};
use super::plan::Plan;
use super::snapshot::Snapshot;

/// Why a resource's score on a node is what it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The resource asked about (a primitive, group, clone or fence device).
    pub resource: String,
    /// One entry per primitive it is made of: itself, a group's members, a clone's
    /// instances (`name:N`), in the plan's order.
    pub instances: Vec<InstanceExplanation>,
}

/// One primitive (or clone instance): its score on every node, in the plan's node order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceExplanation {
    /// The id the plan reports it under (`ResourcePlan::id`).
    pub id: String,
    pub nodes: Vec<NodeScore>,
}

/// A node's final score for one primitive and the steps that made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeScore {
    pub node: String,
    /// The score the plan reports (`ResourcePlan::scores`).
    pub score: Score,
    /// In the order the scheduler applied them.
    pub contributions: Vec<Contribution>,
}

impl NodeScore {
    /// The contributions folded in order with the scheduler's score arithmetic: what
    /// `score` must equal.
    pub fn total(&self) -> Score {
        let folded = self.contributions.iter().fold(None, |total: Option<Score>, contribution| {
            Some(if contribution.replaces { contribution.score } else { total.unwrap_or(Score::ZERO) + contribution.score })
        });
        super::transition::plan_score(folded)
    }
}

/// One step's effect on a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    pub kind: ContributionKind,
    /// What it is, in words: `location web-prefers-n2`, `fail count 3 of
    /// migration-threshold 3`, `colocation db-with-ip (with ip, on n1)`.
    pub text: String,
    /// The constraint object it comes from, when there is one (a Location or a
    /// Colocation), so a reader can look at its metadata (who made it, when).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// The amount added, or the value set when `replaces`.
    pub score: Score,
    /// The step set the score rather than adding to it (a clone's node limits, a
    /// resource whose target role is Stopped, a step out of an opt-in cluster's
    /// "not allowed").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaces: bool,
}

/// The steps that change scores, one per place in the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContributionKind {
    /// Where every resource starts: 0 on online nodes of a symmetric cluster,
    /// -INFINITY on nodes that are down.
    Initial,
    /// The node's `#health*` attributes under the node-health strategy.
    NodeHealth,
    /// A Location constraint (or one of its rules).
    Location,
    /// A Location with `resourceDiscovery: exclusive`: nodes it does not name are out.
    DiscoveryExclusive,
    /// A failure on the node that bans it (a hard error, a failed stop, a failed start
    /// with startFailureIsFatal) or bans it everywhere (a fatal error).
    Failure,
    /// The resource stays where it runs.
    Stickiness,
    /// The fail count reached migration-threshold.
    MigrationThreshold,
    /// A colocation with a resource already placed, pulling toward it or pushing away.
    Colocation,
    /// The scores of resources colocated with this one, merged in scaled by their
    /// colocation.
    Dependents,
    /// Its target role (or a parent's) is Stopped.
    TargetRoleStopped,
    /// Not enough capacity left on the node (placement strategy).
    Utilization,
    /// A clone instance: the node cannot run anything, or the clone may not use it.
    CloneNode,
    /// A clone instance: clone-node-max instances already placed on the node.
    CloneNodeMax,
    /// A clone instance: the clone's own negative score for the node.
    CloneScore,
    /// A clone instance beyond clone-max.
    CloneInstanceLimit,
    /// A promotable clone instance: its promotion score on the node (`master-<name>`),
    /// which draws it where it is to be promoted.
    PromotionScore,
    /// An opt-in cluster (symmetricCluster false) and no location allows the node.
    NotAllowed,
    /// A change no named step claimed (a gap in the recorder's coverage: a bug).
    Other,
}

/// Where a change was made, as the recording step names it; resolved to words once
/// the run is over (`describe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Initial,
    NodeHealth,
    Location(usize),
    DiscoveryExclusive(usize),
    Failure { rsc: RscIdx, everywhere: bool },
    Stickiness,
    MigrationThreshold { rsc: RscIdx, failures: i64 },
    Colocation(usize),
    Dependents(usize),
    TargetRoleStopped,
    Utilization,
    CloneNode,
    CloneNodeMax,
    CloneScore,
    CloneInstanceLimit,
    PromotionScore,
    Other,
}

/// How one step changed one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Add(Score),
    Set(Score),
}

/// One recorded change.
#[derive(Clone, Debug)]
struct Entry {
    rsc: RscIdx,
    node: NodeIdx,
    step: Step,
    effect: Effect,
}

/// The recorder: the traced resources' tables as last seen, and the changes so far.
#[derive(Clone, Debug)]
pub(crate) struct Trace {
    traced: Vec<bool>,
    last: HashMap<RscIdx, Table>,
    entries: Vec<Entry>,
}

impl Trace {
    /// Records changes of the primitives in `traced` (arena indices).
    pub(crate) fn new(cluster: &Cluster, traced: &[RscIdx]) -> Trace {
        let mut flags = vec![false; cluster.resources.len()];
        let mut last = HashMap::new();
        for &rsc in traced {
            flags[rsc] = true;
            last.insert(rsc, vec![None; cluster.nodes.len()]);
        }
        Trace { traced: flags, last, entries: Vec::new() }
    }

    /// After `step` changed the tables of `rsc` and what is below it: writes down every
    /// change of a traced primitive there.
    pub(crate) fn record(&mut self, cluster: &Cluster, tables: &[ScoreRow], rsc: RscIdx, step: Step) {
        self.visit(cluster, rsc, &mut |trace, primitive| {
            for node in 0..cluster.nodes.len() {
                trace.compare(tables, primitive, node, step);
            }
        });
    }

    /// As `record`, for one node only (steps that change one node at a time).
    pub(crate) fn record_at(&mut self, cluster: &Cluster, tables: &[ScoreRow], rsc: RscIdx, node: NodeIdx, step: Step) {
        self.visit(cluster, rsc, &mut |trace, primitive| trace.compare(tables, primitive, node, step));
    }

    /// A position to `undo` back to.
    pub(crate) fn mark(&self) -> usize {
        self.entries.len()
    }

    /// A tentative assignment of `rsc` was undone (its tables restored): its changes
    /// since `mark` never happened.
    pub(crate) fn undo(&mut self, cluster: &Cluster, tables: &[ScoreRow], rsc: RscIdx, mark: usize) {
        // The traced primitives under `rsc` (few), and only the entries since `mark`
        // looked at: an undo costs what was recorded since, not the whole trace.
        let mut undone = std::collections::HashSet::new();
        self.visit(cluster, rsc, &mut |trace, primitive| {
            undone.insert(primitive);
            trace.last.insert(primitive, tables[primitive].to_vec());
        });
        let since = self.entries.split_off(mark.min(self.entries.len()));
        self.entries.extend(since.into_iter().filter(|entry| !undone.contains(&entry.rsc)));
    }

    fn visit(&mut self, cluster: &Cluster, rsc: RscIdx, action: &mut impl FnMut(&mut Trace, RscIdx)) {
        if self.traced[rsc] {
            action(self, rsc);
        }
        for &child in &cluster.resources[rsc].children {
            self.visit(cluster, child, action);
        }
    }

    fn compare(&mut self, tables: &[ScoreRow], rsc: RscIdx, node: NodeIdx, step: Step) {
        let Some(last) = self.last.get_mut(&rsc) else { return };
        let (before, after) = (last[node], tables[rsc][node]);
        if before == after {
            return;
        }
        last[node] = after;
        self.entries.push(Entry { rsc, node, step, effect: effect(before, after) });
    }

    /// The entries by primitive and node, each list in order (grouped once: looking
    /// each (primitive, node) up in the whole trace would be quadratic for a big clone).
    fn by_primitive_and_node(&self) -> HashMap<(RscIdx, NodeIdx), Vec<&Entry>> {
        let mut grouped: HashMap<(RscIdx, NodeIdx), Vec<&Entry>> = HashMap::new();
        for entry in &self.entries {
            grouped.entry((entry.rsc, entry.node)).or_default().push(entry);
        }
        grouped
    }
}

/// The change from `before` to `after` as something the score arithmetic reproduces:
/// an addition where adding gives exactly `after`, a replacement otherwise (a restored
/// or replaced score, a way out of -INFINITY, a leap past the score range).
fn effect(before: Option<Score>, after: Option<Score>) -> Effect {
    let after_score = after.unwrap_or(Score::NEG_INFINITY);
    let Some(before) = before else { return Effect::Set(after_score) };
    if after.is_none() || before.is_infinite() {
        return Effect::Set(after_score);
    }
    if after_score.is_infinite() {
        return Effect::Add(after_score);
    }
    let delta = after_score.value() - before.value();
    if delta.abs() < Score::INFINITY.value() { Effect::Add(Score::new(delta)) } else { Effect::Set(after_score) }
}

/// The primitives a name stands for: itself, a group's members, a clone's instances
/// (or one instance, by its id `name:N`).
pub(crate) fn primitives_named(cluster: &Cluster, name: &str) -> Vec<RscIdx> {
    let mut out: Vec<RscIdx> = Vec::new();
    for (rsc, resource) in cluster.resources.iter().enumerate() {
        if resource.name == name || resource.id == name {
            out.extend(cluster.primitives_of(rsc));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Runs the scheduler on `snapshot` with the recorder on for `resource` (a primitive,
/// group, clone or fence device by name) and returns the plan — the one `schedule`
/// returns — with the explanation. None when no resource has that name.
pub fn explain(snapshot: &Snapshot, resource: &str) -> Option<(Plan, Explanation)> {
    let (plan, cluster, trace) = super::run(snapshot, Some(resource), &mut |_| {});
    let trace = trace?;
    let primitives: Vec<RscIdx> = trace.last.keys().copied().collect();
    if primitives.is_empty() {
        return None;
    }
    let grouped = trace.by_primitive_and_node();
    let mut instances = Vec::new();
    // The plan lists primitives in arena order; follow it.
    let mut ordered = primitives;
    ordered.sort_unstable();
    for rsc in ordered {
        let id = cluster.resources[rsc].id.clone();
        let Some(planned) = plan.resources.iter().find(|planned| planned.id == id) else { continue };
        let nodes = plan
            .scores_of(planned)
            .enumerate()
            .map(|(node, (name, score))| {
                let mut contributions: Vec<Contribution> =
                    grouped.get(&(rsc, node)).into_iter().flatten().map(|entry| describe(snapshot, &cluster, entry)).collect();
                if trace.last.get(&rsc).is_some_and(|table| table[node].is_none()) {
                    contributions.push(Contribution {
                        kind: ContributionKind::NotAllowed,
                        text: "opt-in cluster: no location allows this node".to_string(),
                        constraint: None,
                        score: Score::NEG_INFINITY,
                        replaces: true,
                    });
                }
                NodeScore { node: name.to_string(), score, contributions }
            })
            .collect();
        instances.push(InstanceExplanation { id, nodes });
    }
    Some((plan, Explanation { resource: resource.to_string(), instances }))
}

/// A recorded change in words.
fn describe(snapshot: &Snapshot, cluster: &Cluster, entry: &Entry) -> Contribution {
    let object_name = |index: usize| snapshot.objects.get(index).map(|object| object.name().to_string());
    let rsc_id = |rsc: RscIdx| cluster.resources[rsc].id.clone();
    let (score, replaces) = match entry.effect {
        Effect::Add(score) => (score, false),
        Effect::Set(score) => (score, true),
    };
    let (kind, text, constraint) = match entry.step {
        Step::Initial if score == Score::NEG_INFINITY => (ContributionKind::Initial, "the node is not online".to_string(), None),
        Step::Initial => (ContributionKind::Initial, "starting score (symmetric cluster)".to_string(), None),
        Step::NodeHealth => (ContributionKind::NodeHealth, "node health (#health attributes)".to_string(), None),
        Step::Location(index) => {
            let name = cluster.locations.get(index).and_then(|location| object_name(location.origin));
            (ContributionKind::Location, format!("location {}", name.as_deref().unwrap_or("?")), name)
        }
        Step::DiscoveryExclusive(index) => {
            let name = cluster.locations.get(index).and_then(|location| object_name(location.origin));
            (
                ContributionKind::DiscoveryExclusive,
                format!("location {} (resourceDiscovery: exclusive) does not name this node", name.as_deref().unwrap_or("?")),
                name,
            )
        }
        Step::Failure { rsc, everywhere: false } => {
            (ContributionKind::Failure, format!("{} failed here (hard error or failed stop): banned from this node", rsc_id(rsc)), None)
        }
        Step::Failure { rsc, everywhere: true } => {
            (ContributionKind::Failure, format!("{} failed with a fatal error: banned from every node", rsc_id(rsc)), None)
        }
        Step::Stickiness => (ContributionKind::Stickiness, "stickiness: it runs here".to_string(), None),
        Step::MigrationThreshold { rsc, failures } => {
            let threshold = cluster.resources[rsc].migration_threshold;
            let failures = if failures >= Score::INFINITY.value() { "INFINITY".to_string() } else { failures.to_string() };
            (ContributionKind::MigrationThreshold, format!("fail count {failures} of migration-threshold {threshold} ({})", rsc_id(rsc)), None)
        }
        Step::Colocation(index) => {
            let colocation = &cluster.colocations[index];
            let primary = &cluster.resources[colocation.primary].name;
            let name = colocation.origin.and_then(object_name);
            let text = match &name {
                Some(name) => format!("colocation {name} (with {primary}, score {})", colocation.score),
                None => format!("group: placed with {primary}, the member before it"),
            };
            (ContributionKind::Colocation, text, name)
        }
        Step::Dependents(index) => {
            let colocation = &cluster.colocations[index];
            let dependent = &cluster.resources[colocation.dependent].name;
            let name = colocation.origin.and_then(object_name);
            let text = match &name {
                Some(name) => format!("colocation {name}: {dependent}'s preferences, scaled by {}/INFINITY", colocation.score),
                None => format!("group: {dependent}'s preferences (the member after it)"),
            };
            (ContributionKind::Dependents, text, name)
        }
        Step::TargetRoleStopped => (ContributionKind::TargetRoleStopped, "target role is Stopped".to_string(), None),
        Step::Utilization => (ContributionKind::Utilization, "not enough capacity left (utilization)".to_string(), None),
        Step::CloneNode => (ContributionKind::CloneNode, "the clone cannot use this node".to_string(), None),
        Step::CloneNodeMax => (ContributionKind::CloneNodeMax, "clone-node-max instances already placed here".to_string(), None),
        Step::CloneScore => (ContributionKind::CloneScore, "the clone's own score here is negative".to_string(), None),
        Step::CloneInstanceLimit => (ContributionKind::CloneInstanceLimit, "beyond clone-max".to_string(), None),
        Step::PromotionScore => (ContributionKind::PromotionScore, "its promotion score here (master-<name>)".to_string(), None),
        Step::Other => (ContributionKind::Other, "changed by an unnamed step".to_string(), None),
    };
    Contribution { kind, text, constraint, score, replaces }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixture::{snapshot, started};
    use crate::scheduler::schedule;

    const DUMMY: &str = r#"{agent: "ocf:heartbeat:Dummy"}"#;

    /// Every node's contributions add up to the plan's score, the plan is `schedule`'s,
    /// and no change went unnamed.
    pub(crate) fn assert_consistent(snapshot: &Snapshot, resource: &str) -> Explanation {
        let (plan, explanation) = explain(snapshot, resource).expect("the resource exists");
        assert_eq!(plan, schedule(snapshot), "explaining changes the plan");
        for instance in &explanation.instances {
            for node in &instance.nodes {
                assert_eq!(node.total(), node.score, "{} on {}: {:?}", instance.id, node.node, node.contributions);
                assert!(
                    node.contributions.iter().all(|contribution| contribution.kind != ContributionKind::Other),
                    "{} on {}: {:?}",
                    instance.id,
                    node.node,
                    node.contributions
                );
            }
        }
        explanation
    }

    fn contributions<'a>(explanation: &'a Explanation, id: &str, node: &str) -> Vec<(&'a str, Score)> {
        let instance = explanation.instances.iter().find(|instance| instance.id == id).expect("instance");
        let node = instance.nodes.iter().find(|entry| entry.node == node).expect("node");
        node.contributions.iter().map(|contribution| (contribution.text.as_str(), contribution.score)).collect()
    }

    #[test]
    fn locations_stickiness_and_a_fail_count_are_named_and_add_up() {
        let snapshot = snapshot(
            &["n1", "n2", "n3"],
            &[
                ("ClusterPolicy", "cluster", "{stonithEnabled: false, defaultResourceStickiness: 100}"),
                ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", meta: {migrationThreshold: 3}}"#),
                ("Location", "web-prefers-n2", "{resource: web, node: n2, score: 500}"),
                ("Location", "web-avoids-n3", "{resource: web, node: n3, score: -20}"),
            ],
            &format!("nodes:\n  n2: {{liveness: Online, attributes: {{fail-count-web#monitor_10000: \"3\"}}}}\nhistory:\n{}", started("web", "n1")),
        );
        let explanation = assert_consistent(&snapshot, "web");
        assert_eq!(
            contributions(&explanation, "web", "n1"),
            vec![("starting score (symmetric cluster)", Score::ZERO), ("stickiness: it runs here", Score::new(100))]
        );
        assert_eq!(
            contributions(&explanation, "web", "n2"),
            vec![
                ("starting score (symmetric cluster)", Score::ZERO),
                ("location web-prefers-n2", Score::new(500)),
                ("fail count 3 of migration-threshold 3 (web)", Score::NEG_INFINITY)
            ]
        );
        assert_eq!(
            contributions(&explanation, "web", "n3"),
            vec![("starting score (symmetric cluster)", Score::ZERO), ("location web-avoids-n3", Score::new(-20))]
        );
    }

    #[test]
    fn colocations_and_groups_are_explained_per_member() {
        let snapshot = snapshot(
            &["n1", "n2"],
            &[
                ("ClusterPolicy", "cluster", "{stonithEnabled: false}"),
                ("Resource", "ip", DUMMY),
                ("Resource", "app", DUMMY),
                ("Group", "stack", "{members: [ip, app]}"),
                ("Resource", "db", DUMMY),
                ("Location", "db-on-n2", "{resource: db, node: n2, score: 200}"),
                ("Colocation", "stack-with-db", "{resource: stack, withResource: db, score: 50}"),
            ],
            "",
        );
        let explanation = assert_consistent(&snapshot, "stack");
        assert_eq!(explanation.instances.iter().map(|instance| instance.id.as_str()).collect::<Vec<_>>(), vec!["ip", "app"]);
        let on_n2 = contributions(&explanation, "ip", "n2");
        assert!(on_n2.iter().any(|(text, _)| text.starts_with("colocation stack-with-db")), "{on_n2:?}");
        let app = contributions(&explanation, "app", "n1");
        assert!(app.iter().any(|(text, _)| text.starts_with("group: placed with ip")), "{app:?}");
        assert_consistent(&snapshot, "db");
    }

    #[test]
    fn a_clone_is_explained_per_instance_and_an_opt_in_cluster_names_what_is_not_allowed() {
        let snapshot = snapshot(
            &["n1", "n2", "n3"],
            &[
                ("ClusterPolicy", "cluster", "{stonithEnabled: false, symmetricCluster: false}"),
                ("Resource", "pool", r#"{agent: "ocf:heartbeat:Dummy", clone: {max: 2}}"#),
                ("Location", "pool-on-n1", "{resource: pool, node: n1, score: 10}"),
                ("Location", "pool-on-n2", "{resource: pool, node: n2, score: 10}"),
            ],
            &format!("history:\n{}", started("pool", "n2")),
        );
        let explanation = assert_consistent(&snapshot, "pool");
        assert_eq!(explanation.instances.len(), 2);
        for instance in &explanation.instances {
            let n3 = &instance.nodes[2];
            assert_eq!(n3.score, Score::NEG_INFINITY);
            assert!(
                n3.contributions
                    .iter()
                    .any(|contribution| contribution.kind == ContributionKind::NotAllowed || contribution.kind == ContributionKind::CloneNode)
            );
        }
    }

    #[test]
    fn an_unknown_resource_has_no_explanation() {
        let snapshot = snapshot(&["n1"], &[("Resource", "web", DUMMY)], "");
        assert!(explain(&snapshot, "nope").is_none());
    }
}
