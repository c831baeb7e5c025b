//! Pacemaker's score merge along colocations: a resource's table summed with the
//! scaled tables of the resources colocated with it, so a primary is placed where its
//! dependents can follow.

use std::collections::HashMap;

use crate::api::Score;

use super::{ScoreRow, Work};
use crate::scheduler::explain::Step;
use crate::scheduler::model::{NodeIdx, RscIdx, RscKind};

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
        scores.enumerate().any(|(node, score)| usable(score) && self.node_available(node))
    }

    /// `can_run_any` for a row, reading the nodes that hold its common value as one:
    /// asked after every merge step.
    pub(super) fn can_run_any_row(&self, row: &ScoreRow) -> bool {
        let Some((common, exceptions)) = row.sparse_parts() else { return self.can_run_any(row.iter()) };
        if exceptions.iter().any(|&(node, score)| usable(score) && self.node_available(node as NodeIdx)) {
            return true;
        }
        // Some available node not listed holds the common value.
        let mut listed = exceptions.iter().map(|entry| entry.0 as NodeIdx).peekable();
        usable(common)
            && (0..row.len()).any(|node| {
                while listed.next_if(|&other| other < node).is_some() {}
                listed.peek() != Some(&node) && self.node_available(node)
            })
    }

    /// Pacemaker's score merge along colocations: the scores of `rsc` added to `table`
    /// scaled by `factor`, then recursively those of the resources colocated with it.
    /// A group merges through its first member, then its own dependents.
    pub(super) fn merge_scores(&mut self, rsc: RscIdx, table: Option<ScoreRow>, attribute: Option<&str>, factor: f64, flags: Merge) -> ScoreRow {
        if self.merging[rsc] {
            return table.unwrap_or_else(|| self.allowed[rsc].clone());
        }
        let resource = &self.cluster.resources[rsc];
        if resource.kind == RscKind::Group {
            let Some(&first) = resource.children.first() else {
                return table.unwrap_or_else(|| self.allowed[rsc].clone());
            };
            self.merging[rsc] = true;
            let mut work = self.merge_scores(first, table, attribute, factor, flags);
            let flags = Merge { init: false, ..flags };
            // Forward merges follow the group's own colocations (what it is placed
            // with); the others follow what is placed with it.
            for position in 0..self.colocations_to_follow(rsc, flags.forward).len() {
                let index = self.colocations_to_follow(rsc, flags.forward)[position];
                let colocation = &self.cluster.colocations[index];
                if colocation.score == Score::ZERO {
                    continue;
                }
                let other = if flags.forward { colocation.primary } else { colocation.dependent };
                let scaled = colocation.factor();
                let attribute = colocation.node_attribute.as_deref();
                work = self.merge_scores(other, Some(work), attribute, scaled, Merge { rollback: true, ..flags });
            }
            self.merging[rsc] = false;
            return work;
        }
        self.merging[rsc] = true;
        // Kept only to be given back by a rollback.
        let original = if flags.rollback { table.clone() } else { None };
        let work = if flags.init {
            self.allowed[rsc].clone()
        } else {
            let work = table.unwrap_or_else(|| ScoreRow::uniform(self.cluster.nodes.len(), None));
            self.add_matching_scores(&work, rsc, attribute, factor, flags.positive)
        };
        let flags = Merge { init: false, ..flags };
        let mut work = work;
        if self.can_run_any_row(&work) {
            let multiplier = if factor < 0.0 { -1.0 } else { 1.0 };
            // By position: the merges below change no colocation list, and a copy of
            // the list per merge was a measurable part of it (issue 19).
            for position in 0..self.colocations_to_follow(rsc, flags.forward).len() {
                let index = self.colocations_to_follow(rsc, flags.forward)[position];
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
                let attribute = colocation.node_attribute.as_deref();
                work = self.merge_scores(other, Some(work), attribute, scaled, Merge { rollback: true, ..flags });
            }
        } else if flags.rollback {
            self.merging[rsc] = false;
            return original.unwrap_or(work);
        }
        if flags.positive {
            work = work.convert(|score| if score == Some(UNUSABLE) { Some(Score::new(1)) } else { score });
        }
        self.merging[rsc] = false;
        work
    }

    /// The colocations a merge follows from `rsc`: those it depends on (`forward`), or
    /// those depending on it.
    fn colocations_to_follow(&self, rsc: RscIdx, forward: bool) -> &[usize] {
        if forward { &self.this_with[rsc] } else { &self.with_this[rsc] }
    }

    /// Adds the scores of the resources placed with `rsc` (its dependents) to its own,
    /// each scaled by its colocation, undone where it would leave no node usable. A
    /// clone counts only positive preferences (`only_positive`).
    pub(super) fn merge_dependents(&mut self, rsc: RscIdx, only_positive: bool) {
        let cluster = self.cluster;
        for position in 0..self.with_this[rsc].len() {
            let index = self.with_this[rsc][position];
            let colocation = &cluster.colocations[index];
            if !cluster.influences(colocation) {
                continue;
            }
            let attribute = colocation.node_attribute.as_deref();
            let table = self.allowed[rsc].clone();
            let flags = Merge { rollback: true, positive: only_positive, ..Merge::default() };
            self.allowed[rsc] = self.merge_scores(colocation.dependent, Some(table), attribute, colocation.factor(), flags);
            self.record(rsc, Step::Dependents(index));
        }
    }

    /// `table` with, added to each node, the best score `rsc` has on a node with the
    /// same value of `attribute` (the node itself by default), scaled by `factor`.
    fn add_matching_scores(&self, table: &ScoreRow, rsc: RscIdx, attribute: Option<&str>, factor: f64, only_positive: bool) -> ScoreRow {
        let nodes = &self.cluster.nodes;
        let allowed = &self.allowed[rsc];
        let Some(name) = attribute.filter(|name| *name != "#uname") else {
            // Each node is its own group: a merge of the two rows, in which only the
            // nodes that are down stand apart from the common values.
            return table.zip_map(allowed, &self.unavailable, |node, current, own| {
                let best = match own {
                    Some(score) if self.node_available(node) => score,
                    _ => Score::NEG_INFINITY,
                };
                current.map(|current| merged_score(current, best, factor, only_positive))
            });
        };
        // The best score `rsc` has among usable nodes sharing each value of the
        // attribute, found in one pass.
        let mut by_value: HashMap<String, Score> = HashMap::new();
        for (node, score) in allowed.iter().enumerate() {
            let (Some(score), Some(value)) = (score, nodes[node].attribute(name)) else { continue };
            if self.node_available(node) {
                let entry = by_value.entry(value.to_lowercase()).or_insert(Score::NEG_INFINITY);
                *entry = (*entry).max(score);
            }
        }
        let values = table
            .iter()
            .enumerate()
            .map(|(node, current)| {
                let best = nodes[node].attribute(name).and_then(|value| by_value.get(&value.to_lowercase()).copied()).unwrap_or(Score::NEG_INFINITY);
                current.map(|current| merged_score(current, best, factor, only_positive))
            })
            .collect();
        ScoreRow::from_values(values)
    }
}

/// Whether a score lets a node run a resource during a merge.
fn usable(score: Option<Score>) -> bool {
    score.is_some_and(|score| score >= Score::ZERO && score != UNUSABLE)
}

/// A node's score once `best` (the score a colocated resource has there, or on a node
/// sharing the attribute) is added scaled by `factor` (Pacemaker's
/// `add_node_scores_matching_attr`). A negative factor leaves out what that resource
/// may not use; in a positive-only merge a node turned negative becomes `UNUSABLE`
/// (or stays at zero).
fn merged_score(current: Score, best: Score, factor: f64, only_positive: bool) -> Score {
    if factor < 0.0 && best < Score::ZERO {
        return current;
    }
    if current == UNUSABLE {
        return current;
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
        return UNUSABLE;
    }
    if only_positive && new_score < Score::ZERO && current == Score::ZERO {
        return current;
    }
    new_score
}
