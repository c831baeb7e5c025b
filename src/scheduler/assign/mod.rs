//! Phase 3, assign: from the node criteria to an `Assignment` — every resource placed
//! on a node (or not, with the reason) and given its role.
//!
//! The files follow Pacemaker's own steps:
//! - `criteria`: phase 2, the score of every node for every resource before anything
//!   is placed (initial scores, health, locations, failure bans, stickiness,
//!   migration-threshold);
//! - `resources`: top-level resources in Pacemaker's order; primitives and groups
//!   assigned one at a time, the node chosen by score and tie-breaks;
//! - `merge`: colocated resources' scores merged into one table (`merge_scores`);
//! - `colocation`: an assigned primary pulling or pushing its dependents;
//! - `utilization`: capacity left on nodes under a utilization-aware strategy;
//! - `clones`: instances kept where they run, the rest distributed;
//! - `promotion`: which instances of a promotable clone are promoted.
//!
//! The working state (`Work`) is private to this module: its tables start as a copy
//! of the criteria and are changed in place as resources are assigned; its output is
//! an `Assignment`.

mod clones;
mod colocation;
pub(crate) mod criteria;
mod merge;
mod promotion;
mod resources;
mod utilization;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::Score;
use crate::api::resource::Role;

use super::explain::{Step, Trace};
use super::model::{Cluster, NodeIdx, RscIdx, RscKind};
use super::plan::Reason;
use super::row::Row;
use criteria::NodeCriteria;

/// Where every resource goes and in which role.
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    /// Per resource: the node it is assigned to, if any.
    pub node: Vec<Option<NodeIdx>>,
    /// Per resource: the role it should have there (Stopped when unassigned).
    pub role: Vec<Role>,
    /// Per resource: the final score of every node (None: not allowed at all).
    pub scores: Vec<ScoreRow>,
    /// Per resource: why it was not assigned, when it was not.
    pub reason: Vec<Option<Reason>>,
    /// Per resource: left where it is because it is unmanaged or blocked.
    pub frozen: Vec<bool>,
}

/// The score of every node for one resource, in node order (None: not allowed at
/// all, as in an opt-in cluster without a location): a working copy that a step
/// changes node by node (merges, colocations).
pub(crate) type Table = Vec<Option<Score>>;

/// A `Table` as it is kept between steps, for every resource: compressed (most nodes
/// hold the same score; see `row`). Read it as a table (`row[node]`, `row.iter()`);
/// change it with `set`, `fill`, `map`, or from a `Table` (`ScoreRow::from_values`).
pub(crate) type ScoreRow = Row<Option<Score>>;

/// The assignment's working state: per resource its scores so far, its node and
/// planned role once decided, and the flags that stop recursion along colocations.
struct Work<'a> {
    cluster: &'a Cluster,
    allowed: Vec<ScoreRow>,
    assigned: Vec<Option<NodeIdx>>,
    provisional: Vec<bool>,
    allocating: Vec<bool>,
    merging: Vec<bool>,
    next_role: Vec<Option<Role>>,
    reason: Vec<Option<Reason>>,
    frozen: Vec<bool>,
    /// Colocations where the resource is the dependent ("this with").
    this_with: Vec<Vec<usize>>,
    /// Colocations where the resource is the primary ("with this").
    with_this: Vec<Vec<usize>>,
    /// Per node: whether it can run resources (`Node::available`), read for many
    /// nodes per resource: one flag each, side by side.
    available: Vec<bool>,
    /// The nodes that cannot run resources, ascending: the only nodes a score merge
    /// reads one by one besides those whose scores differ (`Row::zip_map`).
    unavailable: Vec<u32>,
    /// Capacity left on each node (utilization-aware placement strategies).
    remaining: Vec<BTreeMap<String, i64>>,
    /// Resources assigned to each node so far (Pacemaker prefers emptier nodes).
    /// Changed only through `count_assignment`, which keeps `by_count` in step.
    assigned_count: Vec<usize>,
    /// The available nodes by (resources assigned, index): the order in which nodes
    /// sharing a score are chosen, kept sorted as resources are assigned, so that
    /// choosing a node for a row whose nodes mostly share one score needs no pass
    /// over every node.
    by_count: BTreeSet<(usize, NodeIdx)>,
    /// Promotion priority of promotable instances.
    priority: Vec<Score>,
    /// The priority clone instances are placed by: the configured one, raised to the
    /// best promotion score of a promotable instance (`add_promotion_scores`).
    instance_priority: Vec<i64>,
    /// The score recorder of `explain`; None when nobody asked (`schedule`).
    trace: Option<Trace>,
    /// Per primitive of an anonymous clone, where its copies (the same primitive in
    /// every instance) are active and known: read for every instance on every node
    /// when promotion scores are added.
    anonymous_copies: AnonymousCopies,
}

/// The copies of the primitives of anonymous clones, indexed by node once.
#[derive(Default)]
struct AnonymousCopies {
    /// Per resource: its entry in `sets`, for a primitive of an anonymous clone.
    set_of: Vec<Option<usize>>,
    sets: Vec<CopySet>,
}

/// Where the copies of one primitive of an anonymous clone are, by node: read for
/// every instance on every node, so indexed by node rather than hashed (the hashing
/// was about 6% of `pacer simulate`'s instructions on 1,000 nodes, issue 19).
struct CopySet {
    /// Per node: the first copy (in instance order) active there.
    active_on: Vec<Option<RscIdx>>,
    /// Per node: whether some copy has been probed or run there.
    known_on: Vec<bool>,
}

impl AnonymousCopies {
    fn new(cluster: &Cluster) -> AnonymousCopies {
        let nodes = cluster.nodes.len();
        let mut index = AnonymousCopies { set_of: vec![None; cluster.resources.len()], sets: Vec::new() };
        for (clone, resource) in cluster.resources.iter().enumerate() {
            if resource.kind != RscKind::Clone || resource.clone.as_ref().is_some_and(|info| info.unique) {
                continue;
            }
            let mut by_name: HashMap<&str, usize> = HashMap::new();
            for copy in cluster.primitives_of(clone) {
                let primitive = &cluster.resources[copy];
                let set = *by_name.entry(primitive.name.as_str()).or_insert_with(|| {
                    index.sets.push(CopySet { active_on: vec![None; nodes], known_on: vec![false; nodes] });
                    index.sets.len() - 1
                });
                index.set_of[copy] = Some(set);
                let entry = &mut index.sets[set];
                for active in &primitive.active {
                    if let Some(slot) = entry.active_on.get_mut(active.node) {
                        slot.get_or_insert(copy);
                    }
                }
                for &node in &primitive.known_on {
                    if let Some(known) = entry.known_on.get_mut(node) {
                        *known = true;
                    }
                }
            }
        }
        index
    }

    /// The copies of `rsc` (itself among them), when it is a primitive of an anonymous clone.
    fn of(&self, rsc: RscIdx) -> Option<&CopySet> {
        self.set_of.get(rsc).copied().flatten().map(|set| &self.sets[set])
    }
}

/// Assigns every resource. Pure; `cluster` and `criteria` are only read.
#[cfg(test)]
pub(crate) fn assign(cluster: &Cluster, criteria: &NodeCriteria) -> Assignment {
    assign_traced(cluster, criteria, None).0
}

/// `assign` with the score recorder of `explain` (None: not recording), which has
/// seen the criteria.
pub(crate) fn assign_traced(cluster: &Cluster, criteria: &NodeCriteria, trace: Option<Trace>) -> (Assignment, Option<Trace>) {
    let mut work = Work::new(cluster, criteria);
    work.trace = trace;
    let order = work.sorted_top();
    for rsc in order {
        work.assign_resource(rsc, None);
    }
    // Anything a step changed without saying so shows as `Other`.
    if work.trace.is_some() {
        for &top in &cluster.top {
            work.record(top, Step::Other);
        }
    }
    let trace = work.trace.take();
    (work.finish(), trace)
}

impl<'a> Work<'a> {
    /// Nothing assigned yet; every resource's scores are its criteria.
    fn new(cluster: &'a Cluster, criteria: &NodeCriteria) -> Work<'a> {
        let count = cluster.resources.len();
        let mut work = Work {
            cluster,
            allowed: criteria.scores.clone(),
            assigned: vec![None; count],
            provisional: vec![true; count],
            allocating: vec![false; count],
            merging: vec![false; count],
            next_role: vec![None; count],
            reason: vec![None; count],
            frozen: vec![false; count],
            this_with: vec![Vec::new(); count],
            with_this: vec![Vec::new(); count],
            assigned_count: vec![0; cluster.nodes.len()],
            by_count: (0..cluster.nodes.len()).filter(|&node| cluster.nodes[node].available()).map(|node| (0, node)).collect(),
            available: cluster.nodes.iter().map(|node| node.available()).collect(),
            unavailable: (0..cluster.nodes.len()).filter(|&node| !cluster.nodes[node].available()).map(|node| node as u32).collect(),
            remaining: cluster.nodes.iter().map(|node| node.capacity.clone()).collect(),
            priority: vec![Score::ZERO; count],
            instance_priority: cluster.resources.iter().map(|resource| resource.priority).collect(),
            trace: None,
            anonymous_copies: AnonymousCopies::new(cluster),
        };
        for (index, colocation) in cluster.colocations.iter().enumerate() {
            work.this_with[colocation.dependent].push(index);
            work.with_this[colocation.primary].push(index);
        }
        work
    }

    /// Tells the recorder, if any, that `step` may have changed the scores of `rsc`
    /// (and of what is below it).
    #[inline]
    fn record(&mut self, rsc: RscIdx, step: Step) {
        if let Some(trace) = &mut self.trace {
            trace.record(self.cluster, &self.allowed, rsc, step);
        }
    }

    /// As `record`, for one node.
    #[inline]
    fn record_at(&mut self, rsc: RscIdx, node: NodeIdx, step: Step) {
        if let Some(trace) = &mut self.trace {
            trace.record_at(self.cluster, &self.allowed, rsc, node, step);
        }
    }

    fn node_available(&self, node: NodeIdx) -> bool {
        self.available[node]
    }

    /// A resource's target role, taking its parents' into account.
    fn effective_target_role(&self, rsc: RscIdx) -> Option<Role> {
        let mut current = Some(rsc);
        let mut result = None;
        while let Some(index) = current {
            let resource = &self.cluster.resources[index];
            if let Some(role) = resource.target_role {
                result = Some(match result {
                    Some(existing) => std::cmp::min(existing, role),
                    None => role,
                });
            }
            current = resource.parent;
        }
        result
    }

    /// Settles `rsc` on `node` (or nowhere); the node's count and capacity left follow.
    fn record_assignment(&mut self, rsc: RscIdx, node: Option<NodeIdx>) {
        self.provisional[rsc] = false;
        self.assigned[rsc] = node;
        if let Some(node) = node {
            self.count_assignment(node, true);
            for (key, amount) in &self.cluster.resources[rsc].utilization {
                let left = self.remaining[node].entry(key.clone()).or_insert(0);
                *left = left.saturating_sub(*amount);
            }
        }
    }

    /// One resource more (`added`) or less on `node`.
    fn count_assignment(&mut self, node: NodeIdx, added: bool) {
        let count = self.assigned_count[node];
        let new = if added { count + 1 } else { count.saturating_sub(1) };
        self.assigned_count[node] = new;
        if self.by_count.remove(&(count, node)) {
            self.by_count.insert((new, node));
        }
    }

    fn finish(self) -> Assignment {
        let cluster = self.cluster;
        let mut role = Vec::with_capacity(cluster.resources.len());
        for rsc in 0..cluster.resources.len() {
            let assigned = self.assigned[rsc].is_some();
            let next = match self.next_role[rsc] {
                Some(next) if assigned || self.frozen[rsc] => next,
                Some(_) | None if !assigned => Role::Stopped,
                _ => match self.effective_target_role(rsc) {
                    Some(Role::Unpromoted) if cluster.is_promotable_instance(rsc) => Role::Unpromoted,
                    _ => Role::Started,
                },
            };
            role.push(next);
        }
        Assignment { node: self.assigned, role, scores: self.allowed, reason: self.reason, frozen: self.frozen }
    }
}
