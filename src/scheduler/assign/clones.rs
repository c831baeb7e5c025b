//! Clones: instances kept where they run (up to the per-node optimum), the rest
//! distributed over the best nodes within clone-max and clone-node-max, tentative
//! assignments undone when an instance would not stay where it runs.

use std::cmp::Ordering;

use crate::api::Score;
use crate::api::resource::Role;

use super::{ScoreRow, Work};
use crate::scheduler::explain::Step;
use crate::scheduler::model::{CloneInfo, NodeIdx, RscIdx, RscKind};
use crate::scheduler::plan::{Reason, ReasonCode};

/// A resource's working state saved before a tentative assignment: scores, node,
/// whether still provisional, planned role.
type Saved = (RscIdx, ScoreRow, Option<NodeIdx>, bool, Option<Role>);

/// How many instances of a clone each node holds so far, and which nodes an instance
/// may not go to whatever its scores: those that cannot run resources and those that
/// hold as many instances as clone-node-max allows.
struct Slots {
    per_node: Vec<usize>,
    node_max: usize,
    /// The nodes that are unavailable or full, ascending: kept up to date rather than
    /// found again for every instance.
    blocked: Vec<u32>,
}

impl Slots {
    fn new(unavailable: &[u32], nodes: usize, node_max: usize) -> Slots {
        let blocked = if node_max == 0 { (0..nodes as u32).collect() } else { unavailable.to_vec() };
        Slots { per_node: vec![0; nodes], node_max, blocked }
    }

    /// One instance more on `node`.
    fn take(&mut self, node: NodeIdx) {
        self.per_node[node] += 1;
        if self.per_node[node] >= self.node_max {
            if let Err(position) = self.blocked.binary_search(&(node as u32)) {
                self.blocked.insert(position, node as u32);
            }
        }
    }
}

impl Work<'_> {
    /// A clone: instances placed where they run now when they may stay, the rest on
    /// the best nodes, at most `node_max` per node and `max` in all. A promotable
    /// clone's promotion scores steer where its instances go and in which order they
    /// are placed (`add_promotion_scores`).
    pub(super) fn assign_clone(&mut self, rsc: RscIdx) {
        let cluster = self.cluster;
        if !self.provisional[rsc] || self.allocating[rsc] {
            return;
        }
        let Some(info) = cluster.resources[rsc].clone.clone() else { return };
        if info.promotable {
            self.add_promotion_scores(rsc);
        }
        self.allocating[rsc] = true;
        for index in self.this_with[rsc].clone() {
            let primary = cluster.colocations[index].primary;
            self.assign_resource(primary, None);
        }
        self.merge_dependents(rsc, true);
        let mut instances = cluster.resources[rsc].children.clone();
        instances.sort_by(|&a, &b| self.compare_instances(a, b));
        self.distribute(rsc, &instances, &info);
        if info.promotable {
            self.set_instance_roles(rsc, &info);
        } else {
            for &instance in &cluster.resources[rsc].children {
                self.set_role_recursive(instance, if self.assigned[instance].is_some() { Role::Started } else { Role::Stopped });
            }
        }
        self.allocating[rsc] = false;
        self.provisional[rsc] = false;
    }

    pub(super) fn set_role_recursive(&mut self, rsc: RscIdx, role: Role) {
        if self.next_role[rsc].is_none() || role == Role::Stopped {
            self.next_role[rsc] = Some(role);
        }
        for child in self.cluster.resources[rsc].children.clone() {
            let child_role = if self.assigned[child].is_some() { role } else { Role::Stopped };
            self.set_role_recursive(child, child_role);
        }
    }

    /// Instance order: active ones whose node may keep them first, then by priority,
    /// then healthy before failed, then by number.
    pub(super) fn compare_instances(&self, a: RscIdx, b: RscIdx) -> Ordering {
        let cluster = self.cluster;
        let active_nodes = |rsc: RscIdx| -> Vec<NodeIdx> {
            let mut nodes: Vec<NodeIdx> =
                cluster.primitives_of(rsc).iter().flat_map(|&p| cluster.resources[p].active.iter().map(|active| active.node)).collect();
            nodes.sort_unstable();
            nodes.dedup();
            nodes
        };
        let nodes_a = active_nodes(a);
        let nodes_b = active_nodes(b);
        if !nodes_a.is_empty() && !nodes_b.is_empty() && nodes_a.len() != nodes_b.len() {
            return nodes_a.len().cmp(&nodes_b.len());
        }
        let can_stay = |rsc: RscIdx, nodes: &[NodeIdx]| -> bool {
            match nodes.first() {
                Some(&node) if !cluster.nodes[node].online => self.allowed_ignoring_liveness(rsc, node),
                Some(&node) => self.allowed[rsc][node].is_some_and(|score| score >= Score::ZERO),
                None => true,
            }
        };
        let stay_a = can_stay(a, &nodes_a);
        let stay_b = can_stay(b, &nodes_b);
        if stay_a != stay_b {
            return stay_b.cmp(&stay_a);
        }
        let priority = self.instance_priority[b].cmp(&self.instance_priority[a]);
        if priority != Ordering::Equal {
            return priority;
        }
        let active = (!nodes_b.is_empty()).cmp(&!nodes_a.is_empty());
        if active != Ordering::Equal {
            return active;
        }
        let runnable = |nodes: &[NodeIdx]| nodes.first().is_some_and(|&node| self.node_available(node));
        let run = runnable(&nodes_b).cmp(&runnable(&nodes_a));
        if run != Ordering::Equal {
            return run;
        }
        let failed = |rsc: RscIdx| cluster.primitives_of(rsc).iter().any(|&p| cluster.resources[p].failed);
        let fail = failed(a).cmp(&failed(b));
        if fail != Ordering::Equal {
            return fail;
        }
        a.cmp(&b)
    }

    /// Whether the constraints allow `rsc` on a node that is down, as if it were up:
    /// an instance active on a lost node still counts as active where it may run
    /// (Pacemaker gives a node that is down no score of its own; whether it can run
    /// anything is a later tie-break). The criteria's -INFINITY for the node being down
    /// is left aside: what counts are locations of the instance and of what it belongs
    /// to, and failure bans.
    fn allowed_ignoring_liveness(&self, rsc: RscIdx, node: NodeIdx) -> bool {
        let cluster = self.cluster;
        let mut lineage = vec![rsc];
        let mut current = rsc;
        while let Some(parent) = cluster.resources[current].parent {
            lineage.push(parent);
            current = parent;
        }
        let mut score = if cluster.settings.symmetric { Some(Score::ZERO) } else { None };
        for location in &cluster.locations {
            if location.role.is_some() || !lineage.contains(&location.resource) {
                continue;
            }
            for &(located, value) in &location.scores {
                if located == node {
                    score = Some(score.unwrap_or(Score::ZERO) + value);
                }
            }
            if location.exclusive && !location.scores.iter().any(|&(located, _)| located == node) {
                return false;
            }
        }
        // A failure of an anonymous instance bans the whole clone from the node.
        let banned_scope = if cluster.is_unique_instance(rsc) { rsc } else { cluster.top_of(rsc) };
        let banned = cluster.primitives_of(banned_scope).iter().any(|&primitive| {
            let resource = &cluster.resources[primitive];
            resource.banned_everywhere || resource.banned_on.contains(&node)
        });
        !banned && score.is_some_and(|score| score >= Score::ZERO)
    }

    fn distribute(&mut self, clone: RscIdx, instances: &[RscIdx], info: &CloneInfo) {
        let cluster = self.cluster;
        let available = (0..cluster.nodes.len()).filter(|&node| self.node_available(node)).count();
        let all_colocated = info.max < available;
        let optimal = info.max.checked_div(available).unwrap_or(1).max(1);
        let mut slots = Slots::new(&self.unavailable, cluster.nodes.len(), info.node_max);
        let mut allocated = 0;
        // Keep instances where they run, up to the optimal number per node.
        for &instance in instances {
            if allocated >= info.max {
                break;
            }
            let Some(current) = self.current_node_any(instance) else { continue };
            if !self.provisional[instance] || cluster.primitives_of(instance).iter().any(|&p| cluster.resources[p].failed) {
                continue;
            }
            let parent_score = self.allowed[clone][current];
            if !self.node_available(current) || parent_score.is_none_or(|score| score < Score::ZERO) {
                continue;
            }
            if slots.per_node[current] >= optimal {
                continue;
            }
            if self.assign_instance(clone, instance, Some(current), all_colocated, &mut slots) {
                allocated += 1;
            }
        }
        for &instance in instances {
            if !self.provisional[instance] {
                continue;
            }
            if allocated >= info.max {
                self.force_stop(instance, &Reason::new(ReasonCode::CloneInstanceLimit, "clone instance limit reached"));
                self.record(instance, Step::CloneInstanceLimit);
                continue;
            }
            if self.assign_instance(clone, instance, None, all_colocated, &mut slots) {
                allocated += 1;
            }
        }
    }

    /// Stops `rsc` and everything below it for good, with `reason`.
    fn force_stop(&mut self, rsc: RscIdx, reason: &Reason) {
        self.allowed[rsc].fill(Some(Score::NEG_INFINITY));
        for child in self.cluster.resources[rsc].children.clone() {
            self.force_stop(child, reason);
        }
        self.provisional[rsc] = false;
        self.assigned[rsc] = None;
        self.next_role[rsc] = Some(Role::Stopped);
        self.reason[rsc] = Some(reason.clone());
    }

    fn assign_instance(&mut self, clone: RscIdx, instance: RscIdx, prefer: Option<NodeIdx>, all_colocated: bool, slots: &mut Slots) -> bool {
        let cluster = self.cluster;
        if !self.provisional[instance] {
            return self.assigned[instance].is_some();
        }
        // The clone's colocations reach its instances: always the mandatory and
        // negative ones, the optional positive ones only when not every node gets one.
        let parent_this_with: Vec<usize> = self.this_with[clone]
            .iter()
            .copied()
            .filter(|&index| all_colocated || cluster.colocations[index].score < Score::ZERO || cluster.colocations[index].score == Score::INFINITY)
            .collect();
        let parent_with_this: Vec<usize> =
            self.with_this[clone].iter().copied().filter(|&index| all_colocated || cluster.colocations[index].score < Score::ZERO).collect();
        let (saved_this, saved_with) = (self.this_with[instance].clone(), self.with_this[instance].clone());
        for index in parent_this_with.iter().rev() {
            self.this_with[instance].insert(0, *index);
        }
        for index in parent_with_this.iter().rev() {
            self.with_this[instance].insert(0, *index);
        }
        if let Some(prefer) = prefer {
            if self.allowed[instance][prefer].is_none_or(|score| score < Score::ZERO) {
                self.this_with[instance] = saved_this;
                self.with_this[instance] = saved_with;
                return false;
            }
        }
        // Nodes the clone may not use, or that are full, are out for this instance.
        self.ban_instance(clone, instance, slots);
        if self.trace.is_some() {
            for node in 0..cluster.nodes.len() {
                if self.instance_ban(node, self.allowed[clone][node], slots).is_some() {
                    let step = self.ban_step(clone, node, slots);
                    self.record_at(instance, node, step);
                }
            }
        }
        // Only an instance tried where it runs (`prefer`) may have to be undone: the
        // others need no copy of their rows.
        let backup = prefer.map(|_| self.snapshot_subtree(instance));
        let mark = self.trace.as_ref().map(|trace| trace.mark());
        let chosen = self.assign_resource_inner(instance, prefer);
        let chosen = match (chosen, prefer, backup) {
            (Some(chosen), Some(prefer), Some(backup)) if chosen != prefer => {
                self.restore_subtree(backup);
                if let (Some(trace), Some(mark)) = (&mut self.trace, mark) {
                    trace.undo(self.cluster, &self.allowed, instance, mark);
                }
                None
            }
            (chosen, _, _) => chosen,
        };
        if let Some(node) = chosen {
            slots.take(node);
        }
        self.this_with[instance] = saved_this;
        self.with_this[instance] = saved_with;
        chosen.is_some()
    }

    /// The score an instance of a clone must take on `node` before it is placed, given
    /// the clone's score there (`parent`), or None when it keeps its own: -INFINITY
    /// where the clone may not run or the node holds clone-node-max instances already,
    /// the clone's own score where that is negative.
    fn instance_ban(&self, node: NodeIdx, parent: Option<Score>, slots: &Slots) -> Option<Score> {
        match parent {
            _ if slots.per_node[node] >= slots.node_max || !self.node_available(node) => Some(Score::NEG_INFINITY),
            None => Some(Score::NEG_INFINITY),
            Some(parent) if parent < Score::ZERO => Some(parent),
            Some(_) => None,
        }
    }

    /// What banned an instance of `clone` from `node` (`instance_ban`), for `explain`.
    fn ban_step(&self, clone: RscIdx, node: NodeIdx, slots: &Slots) -> Step {
        if slots.per_node[node] >= slots.node_max {
            Step::CloneNodeMax
        } else if !self.node_available(node) || self.allowed[clone][node].is_none() {
            Step::CloneNode
        } else {
            Step::CloneScore
        }
    }

    /// Bans an instance (`rsc` and everything below it) where `instance_ban` says
    /// (Pacemaker's `common_update_score`, which replaces rather than adds). Each row
    /// is rebuilt once, from the clone's row and the nodes that are down or full
    /// (`Slots::blocked`), not node by node: late in a clone's distribution most nodes
    /// are full, and a pass over every node per instance was a tenth of `pacer
    /// simulate` (issue 19).
    fn ban_instance(&mut self, clone: RscIdx, rsc: RscIdx, slots: &Slots) {
        let banned = self.allowed[rsc].zip_map(&self.allowed[clone], &slots.blocked, |node, value, parent| self.instance_ban(node, parent, slots).or(value));
        self.allowed[rsc] = banned;
        for position in 0..self.cluster.resources[rsc].children.len() {
            let child = self.cluster.resources[rsc].children[position];
            self.ban_instance(clone, child, slots);
        }
    }

    /// Assigns an instance (primitive or group) without escalating to its clone.
    fn assign_resource_inner(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        match self.cluster.resources[rsc].kind {
            RscKind::Primitive => self.assign_primitive(rsc, prefer),
            RscKind::Group => self.assign_group(rsc, prefer),
            RscKind::Clone => None,
        }
    }

    fn snapshot_subtree(&self, rsc: RscIdx) -> Vec<Saved> {
        let mut out = vec![(rsc, self.allowed[rsc].clone(), self.assigned[rsc], self.provisional[rsc], self.next_role[rsc])];
        for &child in &self.cluster.resources[rsc].children {
            out.extend(self.snapshot_subtree(child));
        }
        out
    }

    fn restore_subtree(&mut self, saved: Vec<Saved>) {
        for (index, table, assigned, provisional, next_role) in saved {
            // Undo a tentative assignment: the node's count and capacity come back.
            if let Some(node) = self.assigned[index] {
                if assigned != Some(node) {
                    self.count_assignment(node, false);
                    for (key, amount) in &self.cluster.resources[index].utilization {
                        let left = self.remaining[node].entry(key.clone()).or_insert(0);
                        *left = left.saturating_add(*amount);
                    }
                }
            }
            self.allowed[index] = table;
            self.assigned[index] = assigned;
            self.provisional[index] = provisional;
            self.next_role[index] = next_role;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scheduler::assign::assign;
    use crate::scheduler::assign::criteria::node_criteria;
    use crate::scheduler::fixture::{cluster, started};
    use crate::scheduler::model::RscKind;

    #[test]
    fn an_instance_stays_where_it_runs_and_the_rest_go_to_the_emptiest_nodes() {
        let cluster = cluster(
            &["node1", "node2", "node3"],
            &[("ClusterPolicy", "cluster", "{stonithEnabled: false}"), ("Resource", "pool", r#"{agent: "ocf:heartbeat:Dummy", clone: {max: 2}}"#)],
            &format!("history:\n{}", started("pool", "node3")),
        );
        let assignment = assign(&cluster, &node_criteria(&cluster));
        let clone = cluster.resources.iter().position(|resource| resource.kind == RscKind::Clone).expect("the clone pool");
        let mut nodes: Vec<&str> =
            cluster.resources[clone].children.iter().filter_map(|&instance| assignment.node[instance]).map(|node| cluster.nodes[node].name.as_str()).collect();
        nodes.sort_unstable();
        assert_eq!(nodes, vec!["node1", "node3"]);
    }

    #[test]
    fn instances_active_on_a_lost_node_are_placed_before_inactive_ones() {
        // db:2 and db:3 ran on node3, which was lost; two other nodes take one each.
        // The instances that ran are placed first (the node being down is a later
        // tie-break than having run), so db:2 and db:3 move and db:0, db:1 stay stopped.
        let cluster = cluster(
            &["node1", "node2", "node3"],
            &[
                ("FenceDevice", "fence-all", r#"{agent: fence_ipmilan, params: {ip: 10.0.0.100}, hostList: [node1, node2, node3], hostCheck: StaticList}"#),
                ("Resource", "db", r#"{agent: "ocf:heartbeat:Dummy", clone: {max: 4, nodeMax: 1, globallyUnique: true}}"#),
            ],
            &format!("nodes:\n  node3: {{liveness: Unclean}}\nhistory:\n{}{}", started("db:2", "node3"), started("db:3", "node3")),
        );
        let assignment = assign(&cluster, &node_criteria(&cluster));
        let mut placed: Vec<&str> = cluster
            .resources
            .iter()
            .enumerate()
            .filter(|(rsc, resource)| resource.kind == RscKind::Primitive && !resource.is_fence_device && assignment.node[*rsc].is_some())
            .map(|(_, resource)| resource.id.as_str())
            .collect();
        placed.sort_unstable();
        assert_eq!(placed, vec!["db:2", "db:3"]);
    }
}
