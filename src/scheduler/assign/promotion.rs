//! Promotion: which assigned instances of a promotable clone are promoted — ranked by
//! promotion score (`master-<name>`) plus role locations and role colocations, up to
//! promoted-max in all and promoted-node-max per node.

use crate::api::Score;
use crate::api::cluster::NoQuorumPolicy;
use crate::api::resource::Role;

use super::merge::Merge;
use super::{ScoreRow, Work};
use crate::scheduler::explain::Step;
use crate::scheduler::model::{CloneInfo, NodeIdx, RscIdx, RscKind};
use crate::scheduler::unpack::strip_instance;

impl Work<'_> {
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
        if !self.promotion_score_applies(rsc, node) {
            return missing;
        }
        let unique = cluster.is_unique_instance(rsc);
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

    /// Whether a promotable primitive's promotion score counts on a node (Pacemaker's
    /// `promotion_score_applies`): only where the node may run it, and then for an
    /// anonymous instance where it is the copy active there, or where no copy is
    /// active and the resource has been probed; for any instance when it is unknown
    /// everywhere (cluster start-up: permanent scores count); otherwise where its own
    /// status is known.
    fn promotion_score_applies(&self, rsc: RscIdx, node: NodeIdx) -> bool {
        let cluster = self.cluster;
        let resource = &cluster.resources[rsc];
        // Read last (a search in the row): asked for every instance on every node, most
        // are ruled out before.
        let allowed = || self.allowed[rsc][node].is_some_and(|score| score >= Score::ZERO);
        let known_here = |copy: RscIdx| {
            let copy = &cluster.resources[copy];
            copy.known_on.contains(&node) || copy.active.iter().any(|active| active.node == node)
        };
        if !cluster.is_unique_instance(rsc) {
            // The same primitive in every instance of the clone, indexed by node once
            // (`Work::anonymous_copies`): asked for every instance on every node.
            let copies = self.anonymous_copies.of(rsc);
            let active_here = copies.and_then(|copies| copies.active_on.get(node).copied().flatten());
            match active_here {
                Some(copy) if copy == rsc => return allowed(),
                None if copies.is_some_and(|copies| copies.known_on.get(node).is_some_and(|&known| known)) => return allowed(),
                _ => {}
            }
        }
        if resource.active.is_empty() && resource.known_on.is_empty() {
            return allowed();
        }
        known_here(rsc) && allowed()
    }

    /// Before a promotable clone's instances are placed, each instance's positive
    /// promotion score on a node that can run resources is added to its score there,
    /// and its placement priority is raised to its best promotion score (Pacemaker's
    /// `pcmk__add_promotion_scores`): instances go where they are to be promoted, the
    /// most promotable placed first.
    pub(super) fn add_promotion_scores(&mut self, clone: RscIdx) {
        let cluster = self.cluster;
        for &instance in &cluster.resources[clone].children {
            // The scores as they were, read in node order (the row changes below only
            // at the node being read).
            let before = self.allowed[instance].to_vec();
            for (node, &before) in before.iter().enumerate() {
                if !self.node_available(node) {
                    continue;
                }
                let Some(current) = before else { continue };
                let score = self.promotion_score(instance, node, 0);
                if score > 0 {
                    self.allowed[instance].set(node, Some(current + Score::new(score)));
                }
                if score > self.instance_priority[instance] {
                    self.instance_priority[instance] = score;
                }
            }
            self.record(instance, Step::PromotionScore);
        }
    }

    /// Chooses which assigned instances are promoted: by promotion score plus role
    /// locations and role colocations, up to promoted-max (promoted-node-max per node).
    pub(super) fn set_instance_roles(&mut self, clone: RscIdx, info: &CloneInfo) {
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
                self.record(instance, Step::Colocation(index));
            }
            sort_index.push((instance, self.priority[instance]));
        }
        // Merge the sort indexes into the clone's scores with its role colocations.
        let mut clone_scores = self.allowed[clone].to_vec();
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
        let mut clone_scores = ScoreRow::from_values(clone_scores);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::assign::assign;
    use crate::scheduler::assign::criteria::node_criteria;
    use crate::scheduler::fixture::{cluster, node};
    use crate::scheduler::model::Cluster;

    const NO_FENCING: (&str, &str, &str) = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
    /// Promotion scores 5, 10 and 1 on node1, node2 and node3.
    const SCORES: &str = "nodes:
  node1: {liveness: Online, attributes: {master-db: \"5\"}}
  node2: {liveness: Online, attributes: {master-db: \"10\"}}
  node3: {liveness: Online, attributes: {master-db: \"1\"}}
";

    fn promotable(clone: &str) -> (&'static str, &'static str, String) {
        ("Resource", "db", format!(r#"{{agent: "ocf:pacemaker:Stateful", clone: {clone}}}"#))
    }

    fn the_clone(cluster: &Cluster) -> RscIdx {
        cluster.resources.iter().position(|resource| resource.kind == RscKind::Clone && resource.name == "db").expect("the clone db")
    }

    /// The nodes whose instance of db the assignment promotes, in node order.
    fn promoted_nodes(objects: &[(&str, &str, &str)]) -> Vec<String> {
        let cluster = cluster(&["node1", "node2", "node3"], objects, SCORES);
        let assignment = assign(&cluster, &node_criteria(&cluster));
        let mut nodes: Vec<String> = cluster.resources[the_clone(&cluster)]
            .children
            .iter()
            .filter(|&&instance| assignment.role[instance] == Role::Promoted)
            .filter_map(|&instance| assignment.node[instance].map(|node| cluster.nodes[node].name.clone()))
            .collect();
        nodes.sort();
        nodes
    }

    #[test]
    fn the_instance_with_the_highest_promotion_score_is_promoted() {
        let (kind, name, spec) = promotable("{promotable: {}}");
        assert_eq!(promoted_nodes(&[NO_FENCING, (kind, name, &spec)]), vec!["node2"]);
    }

    #[test]
    fn promoted_max_promotes_that_many_best_instances() {
        let (kind, name, spec) = promotable("{promotable: {promotedMax: 2}}");
        assert_eq!(promoted_nodes(&[NO_FENCING, (kind, name, &spec)]), vec!["node1", "node2"]);
    }

    #[test]
    fn a_promoted_role_location_adds_to_the_promotion_score() {
        let (kind, name, spec) = promotable("{promotable: {}}");
        // 1 + 20 on node3 outranks 10 on node2; the location does not move instances.
        let location = ("Location", "db-promoted-on-node3", "{resource: db, role: Promoted, node: node3, score: 20}");
        assert_eq!(promoted_nodes(&[NO_FENCING, (kind, name, &spec), location]), vec!["node3"]);
    }

    #[test]
    fn the_promotion_score_is_the_nodes_attribute_or_missing() {
        let (kind, name, spec) = promotable("{promotable: {}}");
        let cluster =
            cluster(&["node1", "node2", "node3"], &[NO_FENCING, (kind, name, &spec)], "nodes:\n  node2: {liveness: Online, attributes: {master-db: \"10\"}}\n");
        let work = Work::new(&cluster, &node_criteria(&cluster));
        let instance = cluster.resources[the_clone(&cluster)].children[0];
        assert_eq!(work.promotion_score(instance, node(&cluster, "node2"), -1), 10);
        assert_eq!(work.promotion_score(instance, node(&cluster, "node1"), -1), -1);
    }

    /// A unique promotable clone of 4 on two nodes, two per node, one promoted per
    /// node; each instance has its own promotion score on one node, as an agent sets
    /// it (`master-db:N`), and a Promoted location prefers node1.
    fn unique_with_instance_scores() -> (Cluster, crate::scheduler::assign::Assignment) {
        let spec = r#"{agent: "ocf:pacemaker:Stateful", clone: {max: 4, nodeMax: 2, globallyUnique: true, promotable: {promotedMax: 2, promotedNodeMax: 1}}}"#;
        let location = ("Location", "db-promoted-on-node1", "{resource: db, role: Promoted, node: node1, score: 100}");
        let observed = "nodes:
  node1: {liveness: Online, attributes: {\"master-db:0\": \"20\", \"master-db:2\": \"10\"}}
  node2: {liveness: Online, attributes: {\"master-db:1\": \"10\", \"master-db:3\": \"20\"}}
";
        let cluster = cluster(&["node1", "node2"], &[NO_FENCING, ("Resource", "db", spec), location], observed);
        let assignment = assign(&cluster, &node_criteria(&cluster));
        (cluster, assignment)
    }

    #[test]
    fn promotion_scores_draw_instances_to_their_nodes_and_the_best_is_promoted() {
        let (cluster, assignment) = unique_with_instance_scores();
        let placed = |id: &str| {
            let rsc = crate::scheduler::fixture::resource(&cluster, id);
            (assignment.node[rsc].map(|node| cluster.nodes[node].name.clone()), assignment.role[rsc])
        };
        // Each instance goes where its score is; on node2 the instance scored 20 is
        // promoted, not the one scored 10 that a lower number would have chosen.
        assert_eq!(placed("db:0"), (Some("node1".into()), Role::Promoted));
        assert_eq!(placed("db:1"), (Some("node2".into()), Role::Unpromoted));
        assert_eq!(placed("db:2"), (Some("node1".into()), Role::Unpromoted));
        assert_eq!(placed("db:3"), (Some("node2".into()), Role::Promoted));
    }

    #[test]
    fn promotion_scores_are_added_to_the_instances_placement_scores() {
        let (cluster, assignment) = unique_with_instance_scores();
        let db3 = crate::scheduler::fixture::resource(&cluster, "db:3");
        assert_eq!(assignment.scores[db3][node(&cluster, "node2")], Some(Score::new(20)));
    }

    /// The promotion score on `node` of the instance of db that runs on node1, when db
    /// runs on node1 and node2 and `node3_history` is what node3 recorded of it.
    fn score_of_the_instance_on_node1(on: &str, node3_history: &str) -> i64 {
        let (kind, name, spec) = promotable("{promotable: {}}");
        let observed = format!(
            "{SCORES}history:\n{}{}{node3_history}",
            crate::scheduler::fixture::started("db", "node1"),
            crate::scheduler::fixture::started("db", "node2")
        );
        let cluster = cluster(&["node1", "node2", "node3"], &[NO_FENCING, (kind, name, &spec)], &observed);
        let work = Work::new(&cluster, &node_criteria(&cluster));
        let node1 = node(&cluster, "node1");
        let instance = cluster.resources[the_clone(&cluster)]
            .children
            .iter()
            .copied()
            .find(|&instance| cluster.resources[instance].active.iter().any(|active| active.node == node1))
            .expect("an instance runs on node1");
        work.promotion_score(instance, node(&cluster, on), -1)
    }

    #[test]
    fn an_anonymous_instance_counts_its_promotion_score_where_it_runs_or_where_no_copy_runs_but_one_was_probed() {
        let probed = "  - {resource: db, node: node3, operations: [{operation: monitor, callId: 1, rc: 7, expectedRc: 7, status: Done}]}\n";
        assert_eq!(score_of_the_instance_on_node1("node1", ""), 5);
        assert_eq!(score_of_the_instance_on_node1("node2", ""), -1, "another copy runs there");
        assert_eq!(score_of_the_instance_on_node1("node3", ""), -1, "nothing is known there");
        assert_eq!(score_of_the_instance_on_node1("node3", probed), 1, "no copy runs there and one was probed");
    }
}
