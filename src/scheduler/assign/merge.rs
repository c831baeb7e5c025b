//! Pacemaker's score merge along colocations: a resource's table summed with the
//! scaled tables of the resources colocated with it, so a primary is placed where its
//! dependents can follow.

use std::collections::HashMap;

use crate::api::Score;

use super::{ScoreRow, Table, Work};
use crate::scheduler::explain::Step;
use crate::scheduler::model::{RscIdx, RscKind};

/// Flags of a score merge (Pacemaker's `pe_weights_*`).
#[derive(Clone, Copy, Default)]
pub(super) struct Merge {
    /// Start from the resource's own scores (not the caller's table).
    pub init: bool,
    /// Follow "this with" colocations (the resources this one depends on) instead of
    /// "with this" ones (the resources depending on this one).
    pub forward: bool,
    /// Undo the merge if it leaves no node able to run the resource.
    pub rollback: bool,
    /// Only positive preferences count.
    pub positive: bool,
}

/// A sentinel score marking a node as unusable during a positive-only merge.
pub(super) const UNUSABLE: Score = Score::sentinel(i64::MAX / 2);

impl Work<'_> {
    /// Whether some available node has a usable score in `scores` (a table's or a
    /// row's values in node order).
    pub(super) fn can_run_any(&self, scores: impl Iterator<Item = Option<Score>>) -> bool {
        scores.enumerate().any(|(node, score)| score.is_some_and(|score| score >= Score::ZERO && score != UNUSABLE) && self.node_available(node))
    }

    /// Pacemaker's score merge along colocations: the scores of `rsc` added to `table`
    /// scaled by `factor`, then recursively those of the resources colocated with it.
    /// A group merges through its first member, then its own dependents.
    pub(super) fn merge_scores(&mut self, rsc: RscIdx, table: Option<Table>, attribute: Option<&str>, factor: f64, flags: Merge) -> Table {
        if self.merging[rsc] {
            return table.unwrap_or_else(|| self.allowed[rsc].to_vec());
        }
        let resource = &self.cluster.resources[rsc];
        if resource.kind == RscKind::Group {
            let Some(&first) = resource.children.first() else {
                return table.unwrap_or_else(|| self.allowed[rsc].to_vec());
            };
            self.merging[rsc] = true;
            let mut work = self.merge_scores(first, table, attribute, factor, flags);
            let flags = Merge { init: false, ..flags };
            // Forward merges follow the group's own colocations (what it is placed
            // with); the others follow what is placed with it.
            let list = if flags.forward { self.this_with[rsc].clone() } else { self.with_this[rsc].clone() };
            for index in list {
                let colocation = &self.cluster.colocations[index];
                if colocation.score == Score::ZERO {
                    continue;
                }
                let other = if flags.forward { colocation.primary } else { colocation.dependent };
                let scaled = colocation.factor();
                let attribute = colocation.node_attribute.clone();
                work = self.merge_scores(other, Some(work), attribute.as_deref(), scaled, Merge { rollback: true, ..flags });
            }
            self.merging[rsc] = false;
            return work;
        }
        self.merging[rsc] = true;
        // Kept only to be given back by a rollback.
        let original = if flags.rollback { table.clone() } else { None };
        let mut work = if flags.init {
            self.allowed[rsc].to_vec()
        } else {
            let mut work = table.unwrap_or_else(|| vec![None; self.cluster.nodes.len()]);
            self.add_matching_scores(&mut work, rsc, attribute, factor, flags.positive);
            work
        };
        let flags = Merge { init: false, ..flags };
        if self.can_run_any(work.iter().copied()) {
            let list: Vec<usize> = if flags.forward { self.this_with[rsc].clone() } else { self.with_this[rsc].clone() };
            let multiplier = if factor < 0.0 { -1.0 } else { 1.0 };
            for index in list {
                let colocation = &self.cluster.colocations[index];
                let other = if flags.forward {
                    colocation.primary
                } else {
                    if !self.cluster.influences(colocation) {
                        continue;
                    }
                    colocation.dependent
                };
                let scaled = multiplier * colocation.factor();
                let attribute = colocation.node_attribute.clone();
                work = self.merge_scores(other, Some(work), attribute.as_deref(), scaled, Merge { rollback: true, ..flags });
            }
        } else if flags.rollback {
            self.merging[rsc] = false;
            return original.unwrap_or(work);
        }
        if flags.positive {
            for score in work.iter_mut().flatten() {
                if *score == UNUSABLE {
                    *score = Score::new(1);
                }
            }
        }
        self.merging[rsc] = false;
        work
    }

    /// Adds the scores of the resources placed with `rsc` (its dependents) to its own,
    /// each scaled by its colocation, undone where it would leave no node usable. A
    /// clone counts only positive preferences (`only_positive`).
    pub(super) fn merge_dependents(&mut self, rsc: RscIdx, only_positive: bool) {
        let cluster = self.cluster;
        for index in self.with_this[rsc].clone() {
            let colocation = &cluster.colocations[index];
            if !cluster.influences(colocation) {
                continue;
            }
            let attribute = colocation.node_attribute.clone();
            let table = self.allowed[rsc].to_vec();
            let flags = Merge { rollback: true, positive: only_positive, ..Merge::default() };
            let merged = self.merge_scores(colocation.dependent, Some(table), attribute.as_deref(), colocation.factor(), flags);
            self.allowed[rsc] = ScoreRow::from_values(merged);
            self.record(rsc, Step::Dependents(index));
        }
    }

    /// Adds to each node of `table` the best score `rsc` has on a node with the same
    /// value of `attribute` (the node itself by default), scaled by `factor`.
    fn add_matching_scores(&self, table: &mut Table, rsc: RscIdx, attribute: Option<&str>, factor: f64, only_positive: bool) {
        let nodes = &self.cluster.nodes;
        let allowed = &self.allowed[rsc];
        // The best score `rsc` has among usable nodes sharing each value of the
        // attribute, found in one pass. By default the attribute is the node name, so
        // each node is its own group.
        let by_value: Option<HashMap<String, Score>> = attribute.filter(|name| *name != "#uname").map(|name| {
            let mut best: HashMap<String, Score> = HashMap::new();
            for (node, score) in allowed.iter().enumerate() {
                let (Some(score), Some(value)) = (score, nodes[node].attribute(name)) else { continue };
                if nodes[node].available() {
                    let entry = best.entry(value.to_lowercase()).or_insert(Score::NEG_INFINITY);
                    *entry = (*entry).max(score);
                }
            }
            best
        });
        // `allowed` read in node order alongside (a row's lookups cost a search each).
        for (node, own) in allowed.iter().enumerate() {
            let Some(current) = table[node] else { continue };
            let best = match (&by_value, attribute) {
                (Some(by_value), Some(name)) => {
                    nodes[node].attribute(name).and_then(|value| by_value.get(&value.to_lowercase()).copied()).unwrap_or(Score::NEG_INFINITY)
                }
                _ => match own {
                    Some(score) if nodes[node].available() => score,
                    _ => Score::NEG_INFINITY,
                },
            };
            if factor < 0.0 && best < Score::ZERO {
                continue;
            }
            if current == UNUSABLE {
                continue;
            }
            let product = factor * best.value() as f64;
            let mut weight = if product < 0.0 { (product - 0.5) as i64 } else { (product + 0.5) as i64 };
            if weight == 0 && best != Score::ZERO {
                weight = if factor > 0.0 {
                    1
                } else if factor < 0.0 {
                    -1
                } else {
                    0
                };
            }
            let new_score = Score::new(weight) + current;
            if only_positive && new_score < Score::ZERO && current > Score::ZERO {
                table[node] = Some(UNUSABLE);
                continue;
            }
            if only_positive && new_score < Score::ZERO && current == Score::ZERO {
                continue;
            }
            table[node] = Some(new_score);
        }
    }
}
