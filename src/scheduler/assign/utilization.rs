//! Utilization: capacity left on each node as resources are assigned. Under any
//! placement strategy but Default a node without room is out, and Balanced prefers
//! the node with the most left.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::api::Score;

use super::Work;
use crate::scheduler::model::{NodeIdx, RscIdx, RscKind};

impl Work<'_> {
    /// Pacemaker's capacity comparison: for each attribute either node has, the node
    /// with more left counts a point; the node with more points sorts first.
    pub(super) fn compare_capacities(&self, a: NodeIdx, b: NodeIdx) -> Ordering {
        let (left, right) = (&self.remaining[a], &self.remaining[b]);
        let mut result: i64 = 0;
        for key in left.keys().chain(right.keys().filter(|key| !left.contains_key(*key))) {
            let (mine, theirs) = (left.get(key).copied().unwrap_or(0), right.get(key).copied().unwrap_or(0));
            result += match mine.cmp(&theirs) {
                Ordering::Greater => -1,
                Ordering::Less => 1,
                Ordering::Equal => 0,
            };
        }
        result.cmp(&0)
    }

    /// Whether `node` has `required` left.
    fn has_capacity(&self, node: NodeIdx, required: &BTreeMap<String, i64>) -> bool {
        required.iter().all(|(key, amount)| self.remaining[node].get(key).copied().unwrap_or(0) >= *amount)
    }

    /// Utilization-aware strategies: a node without room for the resource and the
    /// resources that must run with it (not yet placed) is out; if no node has room
    /// for all of them, only the resource itself must fit.
    pub(super) fn ban_insufficient_capacity(&mut self, rsc: RscIdx) {
        let cluster = self.cluster;
        let mut together = Vec::new();
        self.collect_colocated(rsc, &mut together);
        let mut required: BTreeMap<String, i64> = BTreeMap::new();
        for &member in &together {
            if member != rsc && !self.provisional[member] {
                continue;
            }
            for (key, amount) in &cluster.resources[member].utilization {
                let total = required.entry(key.clone()).or_insert(0);
                *total = total.saturating_add(*amount);
            }
        }
        let nodes: Vec<NodeIdx> = (0..cluster.nodes.len()).filter(|&node| self.allowed[rsc][node].is_some() && self.node_available(node)).collect();
        let any_fits_all = nodes.iter().any(|&node| self.has_capacity(node, &required));
        let required = if any_fits_all { required } else { cluster.resources[rsc].utilization.clone() };
        for node in nodes {
            if !self.has_capacity(node, &required) {
                self.allowed[rsc].set(node, Some(Score::NEG_INFINITY));
            }
        }
    }

    /// `rsc` and every primitive tied to it by INFINITY colocations, either way.
    fn collect_colocated(&self, rsc: RscIdx, out: &mut Vec<RscIdx>) {
        if out.contains(&rsc) {
            return;
        }
        out.push(rsc);
        // A group member brings its whole group, and the group's own colocations; a
        // clone instance brings its clone's colocations.
        let mut owners = vec![rsc];
        if let Some(parent) = self.cluster.resources[rsc].parent.filter(|&parent| self.cluster.resources[parent].kind == RscKind::Group) {
            owners.push(parent);
            for member in self.cluster.primitives_of(parent) {
                self.collect_colocated(member, out);
            }
        }
        if let Some(clone) = self.cluster.clone_of(rsc) {
            owners.push(clone);
        }
        for owner in owners {
            for &index in self.this_with[owner].iter().chain(self.with_this[owner].iter()) {
                let colocation = &self.cluster.colocations[index];
                if colocation.score < Score::INFINITY {
                    continue;
                }
                let other = if colocation.dependent == owner { colocation.primary } else { colocation.dependent };
                // Of a clone, one instance goes along: the first not yet placed.
                let other = match self.cluster.resources[other].kind {
                    RscKind::Clone => {
                        let instances = &self.cluster.resources[other].children;
                        match instances.iter().copied().find(|&instance| self.provisional[instance]) {
                            Some(instance) => instance,
                            None => continue,
                        }
                    }
                    _ => other,
                };
                for primitive in self.cluster.primitives_of(other) {
                    self.collect_colocated(primitive, out);
                }
            }
        }
    }
}
