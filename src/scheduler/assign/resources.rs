//! Primitives and groups: top-level resources in Pacemaker's assignment order, each
//! assigned after what it is colocated with, unmanaged ones left as they are, and the
//! node chosen by score with Pacemaker's tie-breaks.

use std::cmp::Ordering;

use crate::api::Score;
use crate::api::cluster::{NoQuorumPolicy, PlacementStrategy};
use crate::api::resource::{MultipleActive, Requires, Role};

use super::merge::Merge;
use super::{ScoreRow, Table, Work};
use crate::scheduler::explain::Step;
use crate::scheduler::model::{NodeIdx, RscIdx, RscKind};
use crate::scheduler::plan::{Reason, ReasonCode};

impl Work<'_> {
    /// Top-level resources in assignment order: priority; under a utilization-aware
    /// placement strategy also score on the current node, then best score anywhere;
    /// definition order breaks remaining ties.
    pub(super) fn sorted_top(&mut self) -> Vec<RscIdx> {
        let cluster = self.cluster;
        if cluster.settings.placement_strategy == PlacementStrategy::Default {
            // Pacemaker compares scores only under a utilization-aware strategy; by
            // default the order is priority, then definition order (a stable sort).
            let mut order = cluster.top.clone();
            order.sort_by(|&a, &b| cluster.resources[b].priority.cmp(&cluster.resources[a].priority));
            return order;
        }
        // Nodes in the order Pacemaker weighs them with no resource in mind: usable
        // ones first, then (balanced) by capacity left, then by name.
        let base: Table = cluster.nodes.iter().map(|node| Some(if node.online { Score::ZERO } else { Score::NEG_INFINITY })).collect();
        let mut nodes: Vec<NodeIdx> = (0..cluster.nodes.len()).collect();
        self.sort_nodes(&mut nodes, &base, None);
        let merged: Vec<(RscIdx, ScoreRow)> =
            cluster.top.iter().map(|&rsc| (rsc, self.merge_scores(rsc, None, None, 1.0, Merge { init: true, forward: true, ..Merge::default() }))).collect();
        let mut order: Vec<usize> = (0..merged.len()).collect();
        order.sort_by(|&a, &b| {
            let (rsc_a, table_a) = &merged[a];
            let (rsc_b, table_b) = &merged[b];
            let res_a = &cluster.resources[*rsc_a];
            let res_b = &cluster.resources[*rsc_b];
            res_b.priority.cmp(&res_a.priority).then_with(|| {
                let current =
                    |rsc: RscIdx, table: &ScoreRow| -> Score { self.current_node_any(rsc).and_then(|node| table[node]).unwrap_or(Score::NEG_INFINITY) };
                let by_current = current(*rsc_b, table_b).cmp(&current(*rsc_a, table_a));
                if by_current != Ordering::Equal {
                    return by_current;
                }
                for &node in &nodes {
                    let score_a = table_a[node].unwrap_or(Score::NEG_INFINITY);
                    let score_b = table_b[node].unwrap_or(Score::NEG_INFINITY);
                    if score_a != score_b {
                        return score_b.cmp(&score_a);
                    }
                }
                Ordering::Equal
            })
        });
        order.into_iter().map(|index| merged[index].0).collect()
    }

    /// The node a resource (or the first of its primitives) is active on.
    pub(super) fn current_node_any(&self, rsc: RscIdx) -> Option<NodeIdx> {
        let resource = &self.cluster.resources[rsc];
        match resource.kind {
            RscKind::Primitive => resource.current_node(),
            _ => resource.children.iter().find_map(|&child| self.current_node_any(child)),
        }
    }

    pub(super) fn assign_resource(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        match self.cluster.resources[rsc].kind {
            RscKind::Primitive => self.assign_primitive(rsc, prefer),
            RscKind::Group => self.assign_group(rsc, prefer),
            RscKind::Clone => {
                self.assign_clone(rsc);
                None
            }
        }
    }

    /// The common start of assigning a primitive or a group: a child escalates to its
    /// top-level resource first; a resource already decided answers with its node; one
    /// being assigned further up the stack (a colocation loop) answers no node.
    /// `Some(answer)` means there is nothing left to do.
    fn settled(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<Option<NodeIdx>> {
        let cluster = self.cluster;
        if let Some(parent) = cluster.resources[rsc].parent {
            if !self.allocating[parent] && self.provisional[parent] {
                self.assign_resource(cluster.top_of(rsc), prefer);
            }
        }
        if !self.provisional[rsc] {
            return Some(self.assigned[rsc]);
        }
        if self.allocating[rsc] {
            return Some(None);
        }
        None
    }

    pub(super) fn assign_primitive(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        let cluster = self.cluster;
        if let Some(answer) = self.settled(rsc, prefer) {
            return answer;
        }
        self.allocating[rsc] = true;

        for index in self.this_with[rsc].clone() {
            let colocation = &cluster.colocations[index];
            let keep = (colocation.dependent_role == Some(Role::Promoted) || colocation.score < Score::ZERO && colocation.score > Score::NEG_INFINITY)
                .then(|| self.allowed[rsc].clone());
            self.assign_resource(colocation.primary, None);
            self.apply_colocation(rsc, colocation.primary, index);
            if let Some(keep) = keep {
                if !self.can_run_any_row(&self.allowed[rsc]) {
                    self.allowed[rsc] = keep;
                }
            }
            self.record(rsc, Step::Colocation(index));
        }
        self.merge_dependents(rsc, false);

        let resource = &cluster.resources[rsc];
        let settings = &cluster.settings;
        let target_stopped = self.effective_target_role(rsc) == Some(Role::Stopped);
        if target_stopped {
            self.allowed[rsc].fill(Some(Score::NEG_INFINITY));
            self.record(rsc, Step::TargetRoleStopped);
        }
        // A failure that blocks the resource stops mattering once every node it is
        // active on is fenced: fencing proves it stopped.
        let blocked =
            resource.blocked && resource.active.iter().any(|active| !(cluster.nodes[active.node].unclean && settings.can_fence(&cluster.nodes[active.node])));
        // Found active on several nodes: multiple-active says what happens — not for a
        // partial migration, which is continued or recovered (Pacemaker).
        let multiply_active = resource.active.len() > 1 && cluster.clone_of(rsc).is_none() && resource.partial_migration.is_none();
        let multiple_active_blocks = multiply_active && resource.multiple_active == MultipleActive::Block;
        let multiple_active_stops = multiply_active && resource.multiple_active == MultipleActive::StopOnly;
        let unmanaged = !resource.managed
            || blocked
            || multiple_active_blocks
            || (settings.stonith_enabled && !settings.have_fence_device)
            || resource.active.iter().any(|active| cluster.nodes[active.node].maintenance);
        // Without quorum only resources that require nothing may start.
        let needs_quorum = resource.requires != Requires::Nothing;
        let frozen_by_quorum = needs_quorum && !settings.have_quorum && settings.no_quorum_policy == NoQuorumPolicy::Freeze && resource.active.is_empty();
        if unmanaged {
            let node = resource.current_node();
            self.frozen[rsc] = true;
            self.record_assignment(rsc, node);
            self.next_role[rsc] = Some(resource.role());
        } else if multiple_active_stops {
            self.reason[rsc] = Some(Reason::new(ReasonCode::MultipleActive, "active on several nodes (multiple-active=StopOnly)"));
            self.record_assignment(rsc, None);
        } else if needs_quorum && !settings.have_quorum && settings.no_quorum_policy == NoQuorumPolicy::Stop {
            self.reason[rsc] = Some(Reason::new(ReasonCode::NoQuorum, "the partition has no quorum (no-quorum-policy=stop)"));
            self.record_assignment(rsc, None);
        } else if frozen_by_quorum {
            self.reason[rsc] = Some(Reason::new(ReasonCode::NoQuorum, "the partition has no quorum (no-quorum-policy=freeze)"));
            self.record_assignment(rsc, None);
        } else {
            if settings.placement_strategy != PlacementStrategy::Default {
                self.ban_insufficient_capacity(rsc);
                self.record(rsc, Step::Utilization);
            }
            let chosen = self.choose_node(rsc, prefer);
            if chosen.is_none() && self.reason[rsc].is_none() {
                self.reason[rsc] = Some(if target_stopped {
                    Reason::new(ReasonCode::TargetRoleStopped, "target role is Stopped")
                } else {
                    Reason::new(ReasonCode::NoAllowedNode, "no node can run it")
                });
            }
            self.record_assignment(rsc, chosen);
        }
        self.allocating[rsc] = false;
        self.assigned[rsc]
    }

    /// A group: its members in order, each placed with the one before it; the group's
    /// own colocations act through its first member.
    pub(super) fn assign_group(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        let cluster = self.cluster;
        if let Some(answer) = self.settled(rsc, prefer) {
            return answer;
        }
        let members = cluster.resources[rsc].children.clone();
        let Some(&first) = members.first() else {
            self.provisional[rsc] = false;
            return None;
        };
        self.allocating[rsc] = true;
        let group_this_with = std::mem::take(&mut self.this_with[rsc]);
        self.this_with[first].extend(group_this_with);
        let last = *members.last().unwrap_or(&first);
        let group_with_this = std::mem::take(&mut self.with_this[rsc]);
        self.with_this[last].extend(group_with_this);
        let mut group_node = None;
        for member in members {
            let node = self.assign_resource(member, prefer);
            if group_node.is_none() && member == first {
                group_node = node;
            }
        }
        self.allocating[rsc] = false;
        self.provisional[rsc] = false;
        self.assigned[rsc] = group_node;
        group_node
    }

    /// Pacemaker's node choice: best score; among equal scores the node with fewer
    /// assigned resources, then the current node, then the name.
    fn choose_node(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        let cluster = self.cluster;
        let current = cluster.resources[rsc].current_node();
        let best = self.best_node(rsc, current)?;
        let table = &self.allowed[rsc];
        let score_of = |node: NodeIdx| table[node].unwrap_or(Score::NEG_INFINITY);
        let mut chosen = None;
        if let Some(prefer) = prefer {
            if table[prefer].is_some() && score_of(prefer) >= Score::ZERO && score_of(prefer) >= score_of(best) && self.node_available(prefer) {
                chosen = Some(prefer);
            }
        }
        if chosen.is_none() {
            let mut pick = best;
            // Among nodes as good as the best, the one it runs on now wins.
            let unique_instance = cluster.resources[rsc].parent.is_some() && cluster.is_unique_instance(rsc);
            if !unique_instance && score_of(pick) > Score::ZERO && self.node_available(pick) {
                if let Some(running) = current {
                    if self.node_available(running) && table[running].is_some() && score_of(running) == score_of(pick) {
                        pick = running;
                    }
                }
            }
            chosen = Some(pick);
        }
        let chosen = chosen?;
        if score_of(chosen) < Score::ZERO || !self.node_available(chosen) {
            return None;
        }
        Some(chosen)
    }

    /// The first node in Pacemaker's order (`compare_nodes`) among those `rsc` has a
    /// score on, or None when there is none. Under the default strategy, for a row
    /// whose nodes mostly share one score, the nodes holding it are one candidate —
    /// the first of them by resources assigned, the current node, name (`by_count`) —
    /// weighed against the few that differ. Otherwise one pass over every node, no
    /// sort. Either way, when the best node's score (as `compare_nodes` sees it) is
    /// below zero, the node returned may be another such node: no node is chosen then.
    fn best_node(&self, rsc: RscIdx, current: Option<NodeIdx>) -> Option<NodeIdx> {
        let row = &self.allowed[rsc];
        let sparse = row.sparse_parts().filter(|_| self.cluster.settings.placement_strategy == PlacementStrategy::Default);
        let Some((common, exceptions)) = sparse else {
            // Read node by node many times: a plain copy, not the compressed row.
            let table = &row.to_vec();
            return (0..table.len()).filter(|&node| table[node].is_some()).min_by(|&a, &b| self.compare_nodes(a, b, table, current));
        };
        // The best score among the nodes that differ, as `compare_nodes` sees it.
        let effective = |node: NodeIdx, value: Option<Score>| value.map(|score| if self.node_available(node) { score } else { Score::NEG_INFINITY });
        let differing_top = exceptions.iter().filter_map(|&(node, value)| effective(node as NodeIdx, value)).max();
        let differs = |node: NodeIdx| exceptions.binary_search_by_key(&(node as u32), |(listed, _)| *listed).is_ok();
        // The available nodes holding the common score tie on score: the first by
        // count, then the current node among those with that count, then name. The
        // unavailable ones score -INFINITY (see the doc above). Not looked for when
        // a differing node scores higher.
        let shared = common.filter(|&common| differing_top.is_none_or(|top| common >= top)).and_then(|_| {
            let &(count, first) = self.by_count.iter().find(|&&(_, node)| !differs(node))?;
            Some(match current {
                Some(current) if self.assigned_count[current] == count && self.node_available(current) && !differs(current) => current,
                _ => first,
            })
        });
        let top = match (shared.and(common), differing_top) {
            (Some(common), Some(top)) => common.max(top),
            (Some(common), None) => common,
            (None, top) => top?,
        };
        // Only the nodes at the top score compete, on count, current node and name.
        let score = |node: NodeIdx| row[node];
        exceptions
            .iter()
            .filter(|&&(node, value)| effective(node as NodeIdx, value) == Some(top))
            .map(|&(node, _)| node as NodeIdx)
            .chain(shared.filter(|_| common == Some(top)))
            .min_by(|&a, &b| self.compare_nodes_by(a, b, &score, current))
    }

    pub(super) fn sort_nodes(&self, nodes: &mut [NodeIdx], table: &Table, current: Option<NodeIdx>) {
        nodes.sort_by(|&a, &b| self.compare_nodes(a, b, table, current));
    }

    /// Pacemaker's node order for a resource: usable nodes by score; then (balanced)
    /// capacity left; then fewer resources assigned; then the node it runs on; then
    /// name (nodes are indexed in name order).
    fn compare_nodes(&self, a: NodeIdx, b: NodeIdx, table: &Table, current: Option<NodeIdx>) -> Ordering {
        self.compare_nodes_by(a, b, &|node| table[node], current)
    }

    /// `compare_nodes` with the scores read through `table`.
    fn compare_nodes_by(&self, a: NodeIdx, b: NodeIdx, table: &dyn Fn(NodeIdx) -> Option<Score>, current: Option<NodeIdx>) -> Ordering {
        let strategy = self.cluster.settings.placement_strategy;
        let score = |node: NodeIdx| if self.node_available(node) { table(node).unwrap_or(Score::NEG_INFINITY) } else { Score::NEG_INFINITY };
        score(b)
            .cmp(&score(a))
            .then_with(|| if strategy == PlacementStrategy::Balanced { self.compare_capacities(a, b) } else { Ordering::Equal })
            .then_with(|| if strategy == PlacementStrategy::Minimal { Ordering::Equal } else { self.assigned_count[a].cmp(&self.assigned_count[b]) })
            .then_with(|| {
                if strategy == PlacementStrategy::Minimal {
                    return Ordering::Equal;
                }
                match current {
                    Some(current) if current == a => Ordering::Less,
                    Some(current) if current == b => Ordering::Greater,
                    _ => Ordering::Equal,
                }
            })
            .then_with(|| a.cmp(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::assign::ScoreRow;
    use crate::scheduler::assign::assign;
    use crate::scheduler::assign::criteria::node_criteria;
    use crate::scheduler::fixture::{cluster, node, resource, started};
    use crate::scheduler::model::Cluster;

    const NO_FENCING: (&str, &str, &str) = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
    const WEB: (&str, &str, &str) = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy"}"#);

    /// The node `choose_node` picks for web with `counts` resources already assigned
    /// per node (in node order).
    fn chosen(cluster: &Cluster, counts: &[usize]) -> Option<String> {
        let mut work = Work::new(cluster, &node_criteria(cluster));
        for (node, &count) in counts.iter().enumerate() {
            for _ in 0..count {
                work.count_assignment(node, true);
            }
        }
        work.choose_node(resource(cluster, "web"), None).map(|index| cluster.nodes[index].name.clone())
    }

    #[test]
    fn equal_scores_go_to_the_node_with_fewer_resources_then_by_name() {
        let cluster = cluster(&["node1", "node2", "node3"], &[NO_FENCING, WEB], "");
        assert_eq!(chosen(&cluster, &[0, 0, 0]).as_deref(), Some("node1"));
        assert_eq!(chosen(&cluster, &[1, 0, 0]).as_deref(), Some("node2"));
        assert_eq!(chosen(&cluster, &[1, 1, 0]).as_deref(), Some("node3"));
    }

    #[test]
    fn equal_scores_and_counts_go_to_the_current_node_before_the_name() {
        let cluster = cluster(&["node1", "node2", "node3"], &[NO_FENCING, WEB], &format!("history:\n{}", started("web", "node3")));
        assert_eq!(chosen(&cluster, &[0, 0, 0]).as_deref(), Some("node3"));
    }

    #[test]
    fn the_current_node_beats_fewer_resources_only_with_a_positive_score() {
        let history = format!("history:\n{}", started("web", "node2"));
        let at_zero = cluster(&["node1", "node2"], &[NO_FENCING, WEB], &history);
        assert_eq!(chosen(&at_zero, &[0, 1]).as_deref(), Some("node1"));
        let preferred = cluster(
            &["node1", "node2"],
            &[
                NO_FENCING,
                WEB,
                ("Location", "web-likes-node1", "{resource: web, node: node1, score: 10}"),
                ("Location", "web-likes-node2", "{resource: web, node: node2, score: 10}"),
            ],
            &history,
        );
        assert_eq!(chosen(&preferred, &[0, 1]).as_deref(), Some("node2"));
    }

    #[test]
    fn the_node_chosen_by_the_common_score_is_the_one_a_pass_over_every_node_finds() {
        // Rows of few distinct scores (mostly one), counts of resources assigned and a
        // current node drawn at random; node3 is in standby (not available).
        let names: Vec<String> = (0..12).map(|index| format!("node{index:02}")).collect();
        let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut cluster = cluster(&nodes, &[NO_FENCING, WEB], &format!("history:\n{}", started("web", "node05")));
        let standby = node(&cluster, "node03");
        cluster.nodes[standby].standby = true;
        let web = resource(&cluster, "web");
        let current = cluster.resources[web].current_node();
        let scores = [None, Some(Score::NEG_INFINITY), Some(Score::new(-5)), Some(Score::ZERO), Some(Score::new(10)), Some(Score::INFINITY)];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut draw = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        for _ in 0..2000 {
            let mut work = Work::new(&cluster, &node_criteria(&cluster));
            let common = scores[draw(scores.len())];
            let table: Table = (0..nodes.len()).map(|_| if draw(4) == 0 { scores[draw(scores.len())] } else { common }).collect();
            work.allowed[web] = ScoreRow::from_values(table.clone());
            for node in 0..nodes.len() {
                for _ in 0..draw(3) {
                    work.count_assignment(node, true);
                }
            }
            let everywhere = (0..nodes.len()).filter(|&node| table[node].is_some()).min_by(|&a, &b| work.compare_nodes(a, b, &table, current));
            let usable = |node: Option<NodeIdx>| node.filter(|&node| work.node_available(node) && table[node].is_some_and(|score| score >= Score::ZERO));
            let best = work.best_node(web, current);
            if usable(everywhere).is_some() {
                assert_eq!(best, everywhere, "{table:?}");
            } else {
                assert_eq!(usable(best), None, "{table:?}");
            }
        }
    }

    #[test]
    fn a_best_score_below_zero_chooses_no_node() {
        let cluster = cluster(
            &["node1", "node2"],
            &[
                NO_FENCING,
                WEB,
                ("Location", "web-avoids-node1", "{resource: web, node: node1, score: -10}"),
                ("Location", "web-avoids-node2", "{resource: web, node: node2, score: -20}"),
            ],
            "",
        );
        assert_eq!(chosen(&cluster, &[0, 0]), None);
    }

    #[test]
    fn a_resource_that_does_not_run_says_why_with_a_code() {
        let stopped = cluster(&["node1"], &[NO_FENCING, ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", meta: {targetRole: Stopped}}"#)], "");
        let assignment = assign(&stopped, &node_criteria(&stopped));
        assert_eq!(assignment.reason[resource(&stopped, "web")], Some(Reason::new(ReasonCode::TargetRoleStopped, "target role is Stopped")));

        let banned = cluster(&["node1"], &[NO_FENCING, WEB, ("Location", "web-not-node1", "{resource: web, node: node1, score: -INFINITY}")], "");
        let assignment = assign(&banned, &node_criteria(&banned));
        let web = resource(&banned, "web");
        assert_eq!(assignment.node[web], None);
        assert_eq!(assignment.reason[web], Some(Reason::new(ReasonCode::NoAllowedNode, "no node can run it")));
        assert_eq!(assignment.scores[web][node(&banned, "node1")], Some(Score::NEG_INFINITY));
    }
}
