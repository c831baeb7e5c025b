//! Colocations applied once the primary is assigned (Pacemaker's
//! `rsc_colocation_rh`): the dependent's scores pulled toward or pushed away from where
//! the primary went, with a primitive, a group or a clone as primary; role
//! colocations change promotion priority instead.

use crate::api::Score;
use crate::api::resource::Role;

use super::Work;
use crate::scheduler::model::{NodeIdx, RscIdx, RscKind};

/// What a colocation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Affects {
    Nothing,
    Location,
    Role,
}

impl Work<'_> {
    /// Applies one colocation to an already assigned primary (Pacemaker's
    /// "rsc_colocation_rh"), dispatching on what the primary is.
    pub(super) fn apply_colocation(&mut self, dependent: RscIdx, primary: RscIdx, index: usize) {
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
        let change = |node: NodeIdx, entry: Option<Score>| {
            let current = entry?;
            let Some(primary_node) = primary_node else { return Some(current + -score) };
            Some(if self.same_attribute(node, primary_node, attribute) {
                if score < Score::INFINITY { current + score } else { current }
            } else if score >= Score::INFINITY {
                current + -score
            } else {
                current
            })
        };
        // By node name (the default) only the primary's node stands apart: the row
        // changes over the nodes that differ, not node by node (issue 19).
        let work = match (attribute, primary_node) {
            (None | Some("#uname") | Some("#id"), Some(primary_node)) => self.allowed[dependent].map_special(&[primary_node as u32], change),
            (_, None) => self.allowed[dependent].map_special(&[], change),
            _ => self.allowed[dependent].iter().enumerate().map(|(node, entry)| change(node, entry)).collect(),
        };
        if score.is_infinite() || self.can_run_any_row(&work) {
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
                None if colocation.score >= Score::INFINITY => self.allowed[dependent].fill(Some(Score::NEG_INFINITY)),
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
        let table = &self.allowed[rsc].to_vec();
        let mut nodes: Vec<NodeIdx> = (0..self.cluster.nodes.len()).filter(|&node| table[node].is_some()).collect();
        self.sort_nodes(&mut nodes, table, None);
        nodes.into_iter().find_map(matches)
    }

    /// Adds `score` to every node sharing `attribute` with `node`.
    fn update_one(&mut self, rsc: RscIdx, node: NodeIdx, attribute: Option<&str>, score: Score) {
        if matches!(attribute, None | Some("#uname") | Some("#id")) {
            // Only the node itself shares its name (`same_attribute`).
            if let Some(current) = self.allowed[rsc][node] {
                self.allowed[rsc].set(node, Some(current + score));
            }
            return;
        }
        for other in 0..self.cluster.nodes.len() {
            if let Some(current) = self.allowed[rsc][other] {
                if self.same_attribute(other, node, attribute) {
                    self.allowed[rsc].set(other, Some(current + score));
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
        self.allowed[rsc].map(|node, entry| if entry.is_some() && !keep.contains(&node) { Some(Score::NEG_INFINITY) } else { entry });
    }
}
