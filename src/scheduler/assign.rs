//! Phase 2, assign: node scores per resource (locations, stickiness, failure
//! thresholds), then resources assigned to nodes one at a time in Pacemaker's order,
//! colocations pulling and pushing scores, then clone instances distributed and
//! promotable instances given their roles.
//!
//! The working state (`Work`) is private to this phase; its output is an `Assignment`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use crate::api::Score;
use crate::api::cluster::{NoQuorumPolicy, PlacementStrategy};
use crate::api::resource::{MultipleActive, Requires, Role};

use super::model::{Cluster, NodeIdx, RscIdx, RscKind};
use super::unpack::strip_instance;

/// Where every resource goes and in which role.
#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    /// Per resource: the node it is assigned to, if any.
    pub node: Vec<Option<NodeIdx>>,
    /// Per resource: the role it should have there (Stopped when unassigned).
    pub role: Vec<Role>,
    /// Per resource: the final score of every node (None: not allowed at all).
    pub scores: Vec<Vec<Option<Score>>>,
    /// Per resource: why it was not assigned, when it was not.
    pub reason: Vec<Option<String>>,
    /// Per resource: left where it is because it is unmanaged or blocked.
    pub frozen: Vec<bool>,
}

type Table = Vec<Option<Score>>;

/// A resource's working state saved before a tentative assignment: scores, node,
/// whether still provisional, planned role.
type Saved = (RscIdx, Table, Option<NodeIdx>, bool, Option<Role>);

/// Flags of a score merge (Pacemaker's `pe_weights_*`).
#[derive(Clone, Copy, Default)]
struct Merge {
    /// Start from the resource's own scores (not the caller's table).
    init: bool,
    /// Follow "this with" colocations (the resources this one depends on) instead of
    /// "with this" ones (the resources depending on this one).
    forward: bool,
    /// Undo the merge if it leaves no node able to run the resource.
    rollback: bool,
    /// Only positive preferences count.
    positive: bool,
}

/// A sentinel score marking a node as unusable during a positive-only merge.
const UNUSABLE: Score = Score::sentinel(i64::MAX / 2);

struct Work<'a> {
    cluster: &'a Cluster,
    allowed: Vec<Table>,
    assigned: Vec<Option<NodeIdx>>,
    provisional: Vec<bool>,
    allocating: Vec<bool>,
    merging: Vec<bool>,
    next_role: Vec<Option<Role>>,
    reason: Vec<Option<String>>,
    frozen: Vec<bool>,
    /// Colocations where the resource is the dependent ("this with").
    this_with: Vec<Vec<usize>>,
    /// Colocations where the resource is the primary ("with this").
    with_this: Vec<Vec<usize>>,
    /// Capacity left on each node (utilization-aware placement strategies).
    remaining: Vec<BTreeMap<String, i64>>,
    /// Resources assigned to each node so far (Pacemaker prefers emptier nodes).
    assigned_count: Vec<usize>,
    /// Promotion priority of promotable instances.
    priority: Vec<Score>,
}

/// Assigns every resource. Pure; `cluster` is only read.
pub(crate) fn assign(cluster: &Cluster) -> Assignment {
    let count = cluster.resources.len();
    let mut work = Work {
        cluster,
        allowed: vec![Vec::new(); count],
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
        remaining: cluster.nodes.iter().map(|node| node.capacity.clone()).collect(),
        priority: vec![Score::ZERO; count],
    };
    for (index, colocation) in cluster.colocations.iter().enumerate() {
        work.this_with[colocation.dependent].push(index);
        work.with_this[colocation.primary].push(index);
    }
    work.initial_scores();
    work.apply_locations();
    work.apply_stickiness();
    work.apply_failure_thresholds();
    let order = work.sorted_top();
    for rsc in order {
        work.assign_resource(rsc, None);
    }
    work.finish()
}

impl<'a> Work<'a> {
    fn node_available(&self, node: NodeIdx) -> bool {
        self.cluster.nodes[node].available()
    }

    /// Every resource starts with 0 on every node in a symmetric cluster (-INFINITY
    /// where the node is down) and with nothing in an opt-in one.
    fn initial_scores(&mut self) {
        let nodes = &self.cluster.nodes;
        let base: Table = nodes.iter().map(|node| Some(if node.online { Score::ZERO } else { Score::NEG_INFINITY })).collect();
        let empty: Table = vec![None; nodes.len()];
        for rsc in 0..self.cluster.resources.len() {
            self.allowed[rsc] = if self.cluster.settings.symmetric { base.clone() } else { empty.clone() };
        }
    }

    /// Adds `score` for `node` to `rsc` and everything below it.
    fn add_location(&mut self, rsc: RscIdx, node: NodeIdx, score: Score) {
        let base = if self.cluster.nodes[node].online { Score::ZERO } else { Score::NEG_INFINITY };
        let entry = &mut self.allowed[rsc][node];
        *entry = Some(entry.unwrap_or(base) + score);
        for child in self.cluster.resources[rsc].children.clone() {
            self.add_location(child, node, score);
        }
    }

    fn apply_locations(&mut self) {
        let cluster = self.cluster;
        // Node health acts as a location of every resource on the node.
        for (node, state) in cluster.nodes.iter().enumerate() {
            if state.health != Score::ZERO {
                for &top in &cluster.top {
                    self.add_location(top, node, state.health);
                }
            }
        }
        for location in &cluster.locations {
            if location.role.is_some() {
                continue;
            }
            for &(node, score) in &location.scores {
                self.add_location(location.resource, node, score);
            }
            if location.exclusive {
                for node in 0..cluster.nodes.len() {
                    if !location.scores.iter().any(|(listed, _)| *listed == node) {
                        self.add_location(location.resource, node, Score::NEG_INFINITY);
                    }
                }
            }
        }
        for rsc in 0..cluster.resources.len() {
            let resource = &cluster.resources[rsc];
            let target = self.ban_target(rsc);
            for &node in &resource.banned_on {
                self.add_location(target, node, Score::NEG_INFINITY);
            }
            if resource.banned_everywhere {
                for node in 0..cluster.nodes.len() {
                    self.add_location(target, node, Score::NEG_INFINITY);
                }
            }
        }
    }

    /// A failure of an anonymous clone instance bans the whole clone from the node.
    fn ban_target(&self, rsc: RscIdx) -> RscIdx {
        if self.cluster.clone_of(rsc).is_some() && !self.cluster.is_unique_instance(rsc) { self.cluster.top_of(rsc) } else { rsc }
    }

    /// A managed primitive active on exactly one node prefers to stay there.
    fn apply_stickiness(&mut self) {
        let cluster = self.cluster;
        for (rsc, resource) in cluster.resources.iter().enumerate() {
            if resource.kind != RscKind::Primitive || !resource.managed || resource.stickiness <= Score::ZERO || resource.active.len() != 1 {
                continue;
            }
            let node = resource.active[0].node;
            if !cluster.settings.symmetric && self.allowed[rsc][node].is_none() {
                continue;
            }
            let entry = &mut self.allowed[rsc][node];
            *entry = Some(entry.unwrap_or(Score::ZERO) + resource.stickiness);
        }
    }

    /// Bans a resource from nodes where its fail count reached migration-threshold.
    fn apply_failure_thresholds(&mut self) {
        let cluster = self.cluster;
        // Who a `fail-count-<name>[#op_interval]` attribute may count against: a
        // primitive by its id or the name its node recorded it under; every instance of
        // an anonymous clone by the primitive's name (with or without `:N`).
        let mut by_name: HashMap<&str, Vec<RscIdx>> = HashMap::new();
        for (rsc, resource) in cluster.resources.iter().enumerate() {
            // Ignored failures do not count against migration-threshold either.
            if resource.kind != RscKind::Primitive || resource.migration_threshold <= 0 || resource.failure_ignored {
                continue;
            }
            by_name.entry(resource.id.as_str()).or_default().push(rsc);
            if let Some(history) = &resource.history_name {
                by_name.entry(history.as_str()).or_default().push(rsc);
            }
            if cluster.clone_of(rsc).is_some() && !cluster.is_unique_instance(rsc) {
                by_name.entry(strip_instance(&resource.id)).or_default().push(rsc);
            }
        }
        if by_name.is_empty() {
            return;
        }
        for (node, state) in cluster.nodes.iter().enumerate() {
            let mut totals: BTreeMap<RscIdx, Score> = BTreeMap::new();
            for (key, value) in &state.attributes {
                let Some(rest) = key.strip_prefix("fail-count-") else { continue };
                let (name, suffix) = match rest.split_once('#') {
                    Some((name, suffix)) => (name, Some(suffix)),
                    None => (rest, None),
                };
                let Ok(count) = value.parse::<Score>() else { continue };
                let mut owners: Vec<RscIdx> = by_name.get(name).cloned().unwrap_or_default();
                let base = strip_instance(name);
                if base != name {
                    let anonymous = by_name.get(base).into_iter().flatten().copied().filter(|&rsc| {
                        cluster.clone_of(rsc).is_some() && !cluster.is_unique_instance(rsc) && strip_instance(&cluster.resources[rsc].id) == base
                    });
                    owners.extend(anonymous);
                }
                owners.sort_unstable();
                owners.dedup();
                for rsc in owners {
                    // Failures older than failure-timeout have expired.
                    let timeout = cluster.resources[rsc].failure_timeout_s;
                    if timeout > 0 {
                        let last_key = match suffix {
                            Some(suffix) => format!("last-failure-{name}#{suffix}"),
                            None => format!("last-failure-{name}"),
                        };
                        let last = state.attributes.get(&last_key).and_then(|text| text.parse::<i64>().ok());
                        if last
                            .and_then(|last| last.checked_add(i64::try_from(timeout).unwrap_or(i64::MAX)))
                            .is_some_and(|expiry| expiry <= cluster.settings.now)
                        {
                            continue;
                        }
                    }
                    *totals.entry(rsc).or_insert(Score::ZERO) += count;
                }
            }
            for (rsc, failures) in totals {
                let failures = failures.value();
                if failures > 0 && cluster.resources[rsc].migration_threshold - failures <= 0 {
                    let target = self.ban_target(rsc);
                    self.add_location(target, node, Score::NEG_INFINITY);
                }
            }
        }
    }

    /// Top-level resources in assignment order: priority; under a utilization-aware
    /// placement strategy also score on the current node, then best score anywhere;
    /// definition order breaks remaining ties.
    fn sorted_top(&mut self) -> Vec<RscIdx> {
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
        let merged: Vec<(RscIdx, Table)> =
            cluster.top.iter().map(|&rsc| (rsc, self.merge_scores(rsc, None, None, 1.0, Merge { init: true, forward: true, ..Merge::default() }))).collect();
        let mut order: Vec<usize> = (0..merged.len()).collect();
        order.sort_by(|&a, &b| {
            let (rsc_a, table_a) = &merged[a];
            let (rsc_b, table_b) = &merged[b];
            let res_a = &cluster.resources[*rsc_a];
            let res_b = &cluster.resources[*rsc_b];
            res_b.priority.cmp(&res_a.priority).then_with(|| {
                let current = |rsc: RscIdx, table: &Table| -> Score { self.current_node_any(rsc).and_then(|node| table[node]).unwrap_or(Score::NEG_INFINITY) };
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
    fn current_node_any(&self, rsc: RscIdx) -> Option<NodeIdx> {
        let resource = &self.cluster.resources[rsc];
        match resource.kind {
            RscKind::Primitive => resource.current_node(),
            _ => resource.children.iter().find_map(|&child| self.current_node_any(child)),
        }
    }

    fn can_run_any(&self, table: &Table) -> bool {
        table.iter().enumerate().any(|(node, score)| score.is_some_and(|score| score >= Score::ZERO && score != UNUSABLE) && self.node_available(node))
    }

    /// Pacemaker's score merge along colocations: the scores of `rsc` added to `table`
    /// scaled by `factor`, then recursively those of the resources colocated with it.
    /// A group merges through its first member, then its own dependents.
    fn merge_scores(&mut self, rsc: RscIdx, table: Option<Table>, attribute: Option<&str>, factor: f64, flags: Merge) -> Table {
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
        let original = table.clone();
        let mut work = if flags.init {
            self.allowed[rsc].clone()
        } else {
            let mut work = table.clone().unwrap_or_else(|| vec![None; self.cluster.nodes.len()]);
            self.add_matching_scores(&mut work, rsc, attribute, factor, flags.positive);
            work
        };
        let flags = Merge { init: false, ..flags };
        if self.can_run_any(&work) {
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
    fn merge_dependents(&mut self, rsc: RscIdx, only_positive: bool) {
        let cluster = self.cluster;
        for index in self.with_this[rsc].clone() {
            let colocation = &cluster.colocations[index];
            if !cluster.influences(colocation) {
                continue;
            }
            let attribute = colocation.node_attribute.clone();
            let table = self.allowed[rsc].clone();
            let flags = Merge { rollback: true, positive: only_positive, ..Merge::default() };
            self.allowed[rsc] = self.merge_scores(colocation.dependent, Some(table), attribute.as_deref(), colocation.factor(), flags);
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
                let (Some(score), Some(value)) = (*score, nodes[node].attribute(name)) else { continue };
                if nodes[node].available() {
                    let entry = best.entry(value.to_lowercase()).or_insert(Score::NEG_INFINITY);
                    *entry = (*entry).max(score);
                }
            }
            best
        });
        for node in 0..nodes.len() {
            let Some(current) = table[node] else { continue };
            let best = match (&by_value, attribute) {
                (Some(by_value), Some(name)) => {
                    nodes[node].attribute(name).and_then(|value| by_value.get(&value.to_lowercase()).copied()).unwrap_or(Score::NEG_INFINITY)
                }
                _ => match allowed[node] {
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

    fn assign_resource(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
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

    fn assign_primitive(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
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
                if !self.can_run_any(&self.allowed[rsc]) {
                    self.allowed[rsc] = keep;
                }
            }
        }
        self.merge_dependents(rsc, false);

        let resource = &cluster.resources[rsc];
        let settings = &cluster.settings;
        let target_stopped = self.effective_target_role(rsc) == Some(Role::Stopped);
        if target_stopped {
            for score in self.allowed[rsc].iter_mut() {
                *score = Some(Score::NEG_INFINITY);
            }
        }
        // A failure that blocks the resource stops mattering once every node it is
        // active on is fenced: fencing proves it stopped.
        let blocked =
            resource.blocked && resource.active.iter().any(|active| !(cluster.nodes[active.node].unclean && settings.can_fence(&cluster.nodes[active.node])));
        // Found active on several nodes: multiple-active says what happens.
        let multiply_active = resource.active.len() > 1 && cluster.clone_of(rsc).is_none();
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
            self.reason[rsc] = Some("active on several nodes (multiple-active=StopOnly)".into());
            self.record_assignment(rsc, None);
        } else if needs_quorum && !settings.have_quorum && settings.no_quorum_policy == NoQuorumPolicy::Stop {
            self.reason[rsc] = Some("the partition has no quorum (no-quorum-policy=stop)".into());
            self.record_assignment(rsc, None);
        } else if frozen_by_quorum {
            self.reason[rsc] = Some("the partition has no quorum (no-quorum-policy=freeze)".into());
            self.record_assignment(rsc, None);
        } else {
            if settings.placement_strategy != PlacementStrategy::Default {
                self.ban_insufficient_capacity(rsc);
            }
            let chosen = self.choose_node(rsc, prefer);
            if chosen.is_none() && self.reason[rsc].is_none() {
                self.reason[rsc] = Some(if target_stopped { "target role is Stopped".into() } else { "no node can run it".into() });
            }
            self.record_assignment(rsc, chosen);
        }
        self.allocating[rsc] = false;
        self.assigned[rsc]
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

    fn record_assignment(&mut self, rsc: RscIdx, node: Option<NodeIdx>) {
        self.provisional[rsc] = false;
        self.assigned[rsc] = node;
        if let Some(node) = node {
            self.assigned_count[node] += 1;
            for (key, amount) in &self.cluster.resources[rsc].utilization {
                let left = self.remaining[node].entry(key.clone()).or_insert(0);
                *left = left.saturating_sub(*amount);
            }
        }
    }

    /// Pacemaker's node choice: best score; among equal scores the node with fewer
    /// assigned resources, then the current node, then the name.
    fn choose_node(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
        let cluster = self.cluster;
        let current = cluster.resources[rsc].current_node();
        let table = &self.allowed[rsc];
        // The first node in Pacemaker's order; one pass, no sort.
        let best = (0..cluster.nodes.len()).filter(|&node| table[node].is_some()).min_by(|&a, &b| self.compare_nodes(a, b, table, current))?;
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

    fn sort_nodes(&self, nodes: &mut [NodeIdx], table: &Table, current: Option<NodeIdx>) {
        nodes.sort_by(|&a, &b| self.compare_nodes(a, b, table, current));
    }

    /// Pacemaker's node order for a resource: usable nodes by score; then (balanced)
    /// capacity left; then fewer resources assigned; then the node it runs on; then
    /// name (nodes are indexed in name order).
    fn compare_nodes(&self, a: NodeIdx, b: NodeIdx, table: &Table, current: Option<NodeIdx>) -> Ordering {
        let strategy = self.cluster.settings.placement_strategy;
        let score = |node: NodeIdx| if self.node_available(node) { table[node].unwrap_or(Score::NEG_INFINITY) } else { Score::NEG_INFINITY };
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

    /// Pacemaker's capacity comparison: for each attribute either node has, the node
    /// with more left counts a point; the node with more points sorts first.
    fn compare_capacities(&self, a: NodeIdx, b: NodeIdx) -> Ordering {
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
    fn ban_insufficient_capacity(&mut self, rsc: RscIdx) {
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
                self.allowed[rsc][node] = Some(Score::NEG_INFINITY);
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

    /// Applies one colocation to an already assigned primary (Pacemaker's
    /// "rsc_colocation_rh"), dispatching on what the primary is.
    fn apply_colocation(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
        let cluster = self.cluster;
        match cluster.resources[primary].kind {
            RscKind::Primitive => self.colocate_with_primitive(dependent, primary, index),
            RscKind::Group => {
                if self.provisional[primary] {
                    return;
                }
                let members = &cluster.resources[primary].children;
                let member = if cluster.colocations[index].score >= Score::INFINITY { members.last() } else { members.first() };
                if let Some(&member) = member {
                    self.colocate_with_primitive_or_group(dependent, member, index);
                }
            }
            RscKind::Clone => self.colocate_with_clone(dependent, primary, index),
        }
    }

    fn colocate_with_primitive_or_group(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
        match self.cluster.resources[primary].kind {
            RscKind::Primitive => self.colocate_with_primitive(dependent, primary, index),
            _ => self.apply_colocation(dependent, primary, index),
        }
    }

    /// Whether a colocation affects the dependent's location, its promotion, or nothing
    /// (Pacemaker's `pcmk__colocation_affects`).
    fn colocation_affects(&self, dependent: RscIdx, primary: RscIdx, index: usize) -> Affects {
        let colocation = &self.cluster.colocations[index];
        if self.provisional[primary] {
            return Affects::Nothing;
        }
        if colocation.dependent_role.is_some_and(|role| role >= Role::Unpromoted)
            && self.cluster.resources[dependent].parent.is_some()
            && self.cluster.is_promotable_instance(dependent)
            && !self.provisional[dependent]
        {
            return Affects::Role;
        }
        if !self.provisional[dependent] {
            return Affects::Nothing;
        }
        let dependent_next = self.planned_role(dependent);
        let primary_next = self.planned_role(primary);
        if colocation.score > Score::ZERO {
            if colocation.dependent_role.is_some_and(|role| Some(role) != dependent_next) {
                return Affects::Nothing;
            }
            if colocation.primary_role.is_some_and(|role| Some(role) != primary_next) {
                return Affects::Nothing;
            }
        }
        if colocation.score < Score::ZERO {
            if colocation.dependent_role.is_some_and(|role| Some(role) == dependent_next) {
                return Affects::Nothing;
            }
            if colocation.primary_role.is_some_and(|role| Some(role) == primary_next) {
                return Affects::Nothing;
            }
        }
        Affects::Location
    }

    /// The role a resource is heading for so far: decided, or its current one
    /// (Pacemaker's `next_role`, unknown until decided).
    fn planned_role(&self, rsc: RscIdx) -> Option<Role> {
        if let Some(role) = self.next_role[rsc] {
            return Some(role);
        }
        if !self.provisional[rsc] {
            return Some(if self.assigned[rsc].is_some() { Role::Started } else { Role::Stopped });
        }
        None
    }

    fn colocate_with_primitive(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
        match self.colocation_affects(dependent, primary, index) {
            Affects::Nothing => {}
            Affects::Role => self.colocation_priority(dependent, primary, index),
            Affects::Location => self.colocation_scores(dependent, self.assigned[primary], index),
        }
    }

    /// Moves the dependent's scores toward (or away from) where the primary went.
    fn colocation_scores(&mut self, dependent: RscIdx, primary_node: Option<NodeIdx>, index: usize) {
        let cluster = self.cluster;
        let colocation = &cluster.colocations[index];
        let attribute = colocation.node_attribute.as_deref();
        let score = colocation.score;
        if primary_node.is_none() && score < Score::ZERO {
            return;
        }
        let mut work = self.allowed[dependent].clone();
        for (node, entry) in work.iter_mut().enumerate() {
            let Some(current) = *entry else { continue };
            let Some(primary_node) = primary_node else {
                *entry = Some(current + -score);
                continue;
            };
            if self.same_attribute(node, primary_node, attribute) {
                if score < Score::INFINITY {
                    *entry = Some(current + score);
                }
            } else if score >= Score::INFINITY {
                *entry = Some(current + -score);
            }
        }
        if score.is_infinite() || self.can_run_any(&work) {
            self.allowed[dependent] = work;
        }
    }

    /// A role colocation between promotable instances changes promotion priority.
    fn colocation_priority(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
        let cluster = self.cluster;
        let colocation = &cluster.colocations[index];
        let (Some(dependent_node), Some(primary_node)) = (self.assigned[dependent], self.assigned[primary]) else { return };
        let same = self.same_attribute(dependent_node, primary_node, colocation.node_attribute.as_deref());
        if !same {
            if colocation.score >= Score::INFINITY && colocation.dependent_role == Some(Role::Promoted) {
                self.priority[dependent] = Score::NEG_INFINITY;
            }
            return;
        }
        if colocation.primary_role.is_some_and(|role| Some(role) != self.planned_role(primary)) {
            return;
        }
        let score = if colocation.dependent_role == Some(Role::Unpromoted) { -colocation.score } else { colocation.score };
        self.priority[dependent] += score;
    }

    /// Colocation with a clone: with INFINITY the dependent may only go where an
    /// instance went; otherwise each instance's node gets the score. Interleaved clone
    /// pairs match instance to instance.
    fn colocate_with_clone(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
        let cluster = self.cluster;
        if self.provisional[primary] {
            return;
        }
        let colocation = &cluster.colocations[index];
        let declared_dependent = colocation.dependent;
        let primary_info = cluster.resources[primary].clone.clone();
        let primary_promotable = primary_info.as_ref().is_some_and(|info| info.promotable);
        let instances = cluster.resources[primary].children.clone();

        if primary_promotable && colocation.primary_role.is_some() {
            // Colocation with a role of a promotable clone.
            if self.provisional[dependent] {
                let mut affected = Vec::new();
                for &instance in &instances {
                    let Some(node) = self.assigned[instance] else { continue };
                    if self.next_role[instance] == colocation.primary_role {
                        if colocation.score < Score::INFINITY {
                            self.update_one(dependent, node, colocation.node_attribute.as_deref(), colocation.score);
                        }
                        affected.push(node);
                    }
                }
                if (colocation.dependent_role != Some(Role::Promoted) || colocation.primary_role != Some(Role::Promoted)) && colocation.score >= Score::INFINITY
                {
                    self.exclude_nodes(dependent, &affected);
                }
            } else if colocation.dependent_role == Some(Role::Promoted) {
                let dependent_node = self.assigned[dependent];
                let partner = instances.iter().find(|&&instance| {
                    self.assigned[instance].is_some() && self.assigned[instance] == dependent_node && self.next_role[instance] == colocation.primary_role
                });
                match partner {
                    None if colocation.score >= Score::INFINITY => self.priority[dependent] = Score::NEG_INFINITY,
                    Some(_) => self.priority[dependent] += colocation.score,
                    None => {}
                }
            }
            return;
        }

        let interleave = cluster.resources[declared_dependent].kind == RscKind::Clone
            && cluster.resources[declared_dependent].clone.as_ref().is_some_and(|info| info.interleave)
            && dependent != declared_dependent;
        if interleave {
            match self.compatible_instance(dependent, primary, None) {
                Some(instance) => self.colocate_with_primitive_or_group(dependent, instance, index),
                None if colocation.score >= Score::INFINITY => {
                    for score in self.allowed[dependent].iter_mut() {
                        *score = Some(Score::NEG_INFINITY);
                    }
                }
                None => {}
            }
            return;
        }
        if colocation.score >= Score::INFINITY {
            // An instance blocked by a failure is no place to be with.
            let nodes: Vec<NodeIdx> = instances
                .iter()
                .filter(|&&instance| !cluster.primitives_of(instance).iter().any(|&primitive| cluster.resources[primitive].blocked))
                .filter_map(|&instance| self.assigned[instance])
                .collect();
            self.exclude_nodes(dependent, &nodes);
            return;
        }
        for instance in instances {
            self.colocate_with_primitive_or_group(dependent, instance, index);
        }
    }

    /// An instance of `clone` assigned to the node `rsc` is assigned to, or to the best
    /// node `rsc` may use.
    fn compatible_instance(&self, rsc: RscIdx, clone: RscIdx, role: Option<Role>) -> Option<RscIdx> {
        let instances = &self.cluster.resources[clone].children;
        let matches = |node: NodeIdx| {
            instances.iter().copied().find(|&instance| self.assigned[instance] == Some(node) && role.is_none_or(|role| self.next_role[instance] == Some(role)))
        };
        if let Some(node) = self.assigned[rsc] {
            return matches(node);
        }
        let table = &self.allowed[rsc];
        let mut nodes: Vec<NodeIdx> = (0..self.cluster.nodes.len()).filter(|&node| table[node].is_some()).collect();
        self.sort_nodes(&mut nodes, table, None);
        nodes.into_iter().find_map(matches)
    }

    /// Adds `score` to every node sharing `attribute` with `node`.
    fn update_one(&mut self, rsc: RscIdx, node: NodeIdx, attribute: Option<&str>, score: Score) {
        for other in 0..self.cluster.nodes.len() {
            if let Some(current) = self.allowed[rsc][other] {
                if self.same_attribute(other, node, attribute) {
                    self.allowed[rsc][other] = Some(current + score);
                }
            }
        }
    }

    /// Whether two nodes share the value of a colocation's node attribute (by default
    /// the node name: the same node). Values compare ignoring ASCII case, as
    /// Pacemaker's do.
    fn same_attribute(&self, a: NodeIdx, b: NodeIdx, attribute: Option<&str>) -> bool {
        match attribute {
            None | Some("#uname") | Some("#id") => a == b,
            Some(name) => match (self.cluster.nodes[a].attribute(name), self.cluster.nodes[b].attribute(name)) {
                (Some(left), Some(right)) => left.eq_ignore_ascii_case(right),
                (None, None) => true,
                _ => false,
            },
        }
    }

    /// Bans `rsc` from every node not in `keep`.
    fn exclude_nodes(&mut self, rsc: RscIdx, keep: &[NodeIdx]) {
        for (node, entry) in self.allowed[rsc].iter_mut().enumerate() {
            if entry.is_some() && !keep.contains(&node) {
                *entry = Some(Score::NEG_INFINITY);
            }
        }
    }

    /// A group: its members in order, each placed with the one before it; the group's
    /// own colocations act through its first member.
    fn assign_group(&mut self, rsc: RscIdx, prefer: Option<NodeIdx>) -> Option<NodeIdx> {
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

    /// A clone: instances placed where they run now when they may stay, the rest on
    /// the best nodes, at most `node_max` per node and `max` in all. Promotion scores
    /// do not steer where instances go (Pacemaker 2.1.5 applies them only when choosing
    /// which instances to promote).
    fn assign_clone(&mut self, rsc: RscIdx) {
        let cluster = self.cluster;
        if !self.provisional[rsc] || self.allocating[rsc] {
            return;
        }
        let Some(info) = cluster.resources[rsc].clone.clone() else { return };
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

    fn set_role_recursive(&mut self, rsc: RscIdx, role: Role) {
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
    fn compare_instances(&self, a: RscIdx, b: RscIdx) -> Ordering {
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
                Some(&node) => self.allowed[rsc][node].is_some_and(|score| score >= Score::ZERO),
                None => true,
            }
        };
        let stay_a = can_stay(a, &nodes_a);
        let stay_b = can_stay(b, &nodes_b);
        if stay_a != stay_b {
            return stay_b.cmp(&stay_a);
        }
        let priority = cluster.resources[b].priority.cmp(&cluster.resources[a].priority);
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

    fn distribute(&mut self, clone: RscIdx, instances: &[RscIdx], info: &super::model::CloneInfo) {
        let cluster = self.cluster;
        let available = (0..cluster.nodes.len()).filter(|&node| self.node_available(node)).count();
        let all_colocated = info.max < available;
        let optimal = info.max.checked_div(available).unwrap_or(1).max(1);
        let mut per_node = vec![0usize; cluster.nodes.len()];
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
            if per_node[current] >= optimal {
                continue;
            }
            if self.assign_instance(clone, instance, Some(current), all_colocated, info.node_max, &mut per_node) {
                allocated += 1;
            }
        }
        for &instance in instances {
            if !self.provisional[instance] {
                continue;
            }
            if allocated >= info.max {
                self.force_stop(instance, "clone instance limit reached");
                continue;
            }
            if self.assign_instance(clone, instance, None, all_colocated, info.node_max, &mut per_node) {
                allocated += 1;
            }
        }
    }

    fn force_stop(&mut self, rsc: RscIdx, reason: &str) {
        for score in self.allowed[rsc].iter_mut() {
            *score = Some(Score::NEG_INFINITY);
        }
        for child in self.cluster.resources[rsc].children.clone() {
            self.force_stop(child, reason);
        }
        self.provisional[rsc] = false;
        self.assigned[rsc] = None;
        self.next_role[rsc] = Some(Role::Stopped);
        self.reason[rsc] = Some(reason.to_string());
    }

    fn assign_instance(
        &mut self,
        clone: RscIdx,
        instance: RscIdx,
        prefer: Option<NodeIdx>,
        all_colocated: bool,
        node_max: usize,
        per_node: &mut [usize],
    ) -> bool {
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
        for (node, &placed) in per_node.iter().enumerate() {
            let parent = self.allowed[clone][node];
            let blocked = !self.node_available(node) || parent.is_none() || placed >= node_max;
            if blocked {
                self.ban_recursive(instance, node, Score::NEG_INFINITY);
            } else if let Some(parent) = parent {
                if parent < Score::ZERO {
                    self.ban_recursive(instance, node, parent);
                }
            }
        }
        let backup = self.snapshot_subtree(instance);
        let chosen = self.assign_resource_inner(instance, prefer);
        let chosen = match (chosen, prefer) {
            (Some(chosen), Some(prefer)) if chosen != prefer => {
                self.restore_subtree(backup);
                None
            }
            (chosen, _) => chosen,
        };
        if let Some(node) = chosen {
            per_node[node] += 1;
        }
        self.this_with[instance] = saved_this;
        self.with_this[instance] = saved_with;
        chosen.is_some()
    }

    /// Sets a node's score on `rsc` and everything below it (Pacemaker's
    /// `common_update_score`, which replaces rather than adds).
    fn ban_recursive(&mut self, rsc: RscIdx, node: NodeIdx, score: Score) {
        if let Some(entry) = self.allowed[rsc].get_mut(node) {
            *entry = Some(score);
        }
        for child in self.cluster.resources[rsc].children.clone() {
            self.ban_recursive(child, node, score);
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
                    self.assigned_count[node] = self.assigned_count[node].saturating_sub(1);
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

    /// The promotion score of an instance on a node: the `master-<name>` attribute the
    /// agent set there, summed over a group's members; `missing` when none is set.
    fn promotion_score(&self, rsc: RscIdx, node: NodeIdx, missing: i64) -> i64 {
        let cluster = self.cluster;
        let resource = &cluster.resources[rsc];
        if resource.kind != RscKind::Primitive {
            let mut score = missing;
            for &child in &resource.children {
                let child_score = self.promotion_score(child, node, missing);
                score = if score == missing { child_score } else { score + child_score };
            }
            return score;
        }
        let unique = cluster.is_unique_instance(rsc);
        if unique && (!resource.active.is_empty() || !resource.known_on.is_empty()) {
            let active_here = resource.active.iter().any(|active| active.node == node);
            if !active_here && !resource.known_on.contains(&node) {
                return missing;
            }
        }
        match self.allowed[rsc][node] {
            None => return missing,
            Some(score) if score < Score::ZERO => return missing,
            _ => {}
        }
        let attributes = &cluster.nodes[node].attributes;
        // The name the node recorded the instance under, its own id, then (anonymous
        // clones) the primitive's name: an agent sets the score under whichever name
        // its node knew it by.
        let mut names = Vec::new();
        if let Some(history) = &resource.history_name {
            names.push(history.clone());
        }
        names.push(resource.id.clone());
        if !unique {
            names.push(strip_instance(&resource.id).to_string());
        }
        for name in names {
            if let Some(value) = attributes.get(&format!("master-{name}")) {
                return value.parse::<Score>().map_or(missing, Score::value);
            }
        }
        missing
    }

    /// Chooses which assigned instances are promoted: by promotion score plus role
    /// locations and role colocations, up to promoted-max (promoted-node-max per node).
    fn set_instance_roles(&mut self, clone: RscIdx, info: &super::model::CloneInfo) {
        let cluster = self.cluster;
        let instances = cluster.resources[clone].children.clone();
        let mut sort_index: Vec<(RscIdx, Score)> = Vec::new();
        for &instance in &instances {
            let Some(node) = self.assigned[instance] else {
                self.set_role_recursive(instance, Role::Stopped);
                continue;
            };
            let target = self.effective_target_role(instance);
            // A group instance is promoted as a whole: one that does not fully run
            // cannot be.
            let incomplete = cluster.primitives_of(instance).iter().any(|&member| self.assigned[member].is_none());
            let mut priority = match target {
                Some(Role::Unpromoted) | Some(Role::Stopped) => Score::NEG_INFINITY,
                _ if incomplete => Score::NEG_INFINITY,
                _ => Score::new(self.promotion_score(instance, node, -1)),
            };
            // Role-specific locations of the instance and of the clone.
            for location in &cluster.locations {
                if location.role != Some(Role::Promoted) || (location.resource != instance && location.resource != clone) {
                    continue;
                }
                for &(located, score) in &location.scores {
                    if located == node {
                        priority += score;
                    }
                }
            }
            self.priority[instance] = priority;
            // Role colocations of the instance (including the clone's).
            let colocations: Vec<usize> = self.this_with[clone].iter().chain(self.this_with[instance].iter()).copied().collect();
            for index in colocations {
                let primary = cluster.colocations[index].primary;
                self.apply_colocation(instance, primary, index);
            }
            sort_index.push((instance, self.priority[instance]));
        }
        // Merge the sort indexes into the clone's scores with its role colocations.
        let mut clone_scores = self.allowed[clone].clone();
        for &(instance, index) in &sort_index {
            if index < Score::ZERO {
                continue;
            }
            if let Some(node) = self.assigned[instance] {
                if let Some(entry) = clone_scores[node] {
                    clone_scores[node] = Some(entry + index);
                }
            }
        }
        for index in self.this_with[clone].clone() {
            let colocation = &cluster.colocations[index];
            if colocation.dependent_role == Some(Role::Promoted) {
                let factor = colocation.factor();
                let flags = if colocation.score == Score::INFINITY { Merge::default() } else { Merge { rollback: true, ..Merge::default() } };
                let attribute = colocation.node_attribute.clone();
                clone_scores = self.merge_scores(colocation.primary, Some(clone_scores), attribute.as_deref(), factor, flags);
            }
        }
        for index in self.with_this[clone].clone() {
            let colocation = &cluster.colocations[index];
            if !cluster.influences(colocation) {
                continue;
            }
            if colocation.primary_role == Some(Role::Promoted) {
                let factor = colocation.factor();
                let attribute = colocation.node_attribute.clone();
                clone_scores = self.merge_scores(
                    colocation.dependent,
                    Some(clone_scores),
                    attribute.as_deref(),
                    factor,
                    Merge { rollback: true, positive: true, ..Merge::default() },
                );
            }
        }
        let mut ranked: Vec<(RscIdx, Score)> = sort_index
            .iter()
            .map(|&(instance, index)| {
                // An instance left alone (unmanaged, blocked) that is promoted stays so,
                // and takes its place among the promoted.
                let kept_promoted = cluster.primitives_of(instance).iter().all(|&p| self.frozen[p])
                    && cluster.primitives_of(instance).iter().any(|&p| cluster.resources[p].role() == Role::Promoted);
                if kept_promoted {
                    return (instance, Score::INFINITY);
                }
                if index < Score::ZERO {
                    return (instance, index);
                }
                let node = self.assigned[instance];
                let score = node.and_then(|node| clone_scores[node]).unwrap_or(index);
                (instance, score)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| {
                    let role = |rsc: RscIdx| cluster.primitives_of(rsc).iter().map(|&p| cluster.resources[p].role()).max().unwrap_or(Role::Stopped);
                    role(b.0).cmp(&role(a.0))
                })
                .then_with(|| self.compare_instances(a.0, b.0))
        });
        let mut promoted = 0;
        let mut per_node = vec![0usize; cluster.nodes.len()];
        let settings = &cluster.settings;
        for (instance, score) in ranked {
            let node = self.assigned[instance];
            let kept = cluster.primitives_of(instance).iter().all(|&p| self.frozen[p]);
            let mut promote = false;
            if kept {
                // Left as it is; a promoted one still counts against promoted-max.
                if cluster.primitives_of(instance).iter().any(|&p| cluster.resources[p].role() == Role::Promoted) {
                    promoted += 1;
                    if let Some(node) = node {
                        per_node[node] += 1;
                    }
                }
                continue;
            }
            if score >= Score::ZERO && promoted < info.promoted_max {
                if let Some(node) = node {
                    let frozen_quorum = !settings.have_quorum
                        && matches!(settings.no_quorum_policy, NoQuorumPolicy::Freeze | NoQuorumPolicy::Demote)
                        && cluster.primitives_of(instance).iter().all(|&p| cluster.resources[p].role() < Role::Promoted);
                    let demote_quorum = !settings.have_quorum && settings.no_quorum_policy == NoQuorumPolicy::Demote;
                    if per_node[node] < info.promoted_node_max && self.node_available(node) && !frozen_quorum && !demote_quorum {
                        promote = true;
                        per_node[node] += 1;
                    }
                }
            }
            if promote {
                promoted += 1;
                self.set_role_recursive(instance, Role::Promoted);
            } else if node.is_some() {
                self.set_role_recursive(instance, Role::Unpromoted);
            } else {
                self.set_role_recursive(instance, Role::Stopped);
            }
        }
        // Unmanaged instances keep the role they have.
        for &instance in &instances {
            if self.frozen[instance] || cluster.primitives_of(instance).iter().all(|&p| self.frozen[p]) {
                for p in cluster.primitives_of(instance) {
                    self.next_role[p] = Some(cluster.resources[p].role());
                }
            }
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

/// What a colocation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Affects {
    Nothing,
    Location,
    Role,
}
