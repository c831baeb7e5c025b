//! Phase 2, node criteria: the score of every node for every resource before any
//! resource is placed — initial scores, node health, locations, failure bans,
//! stickiness and migration-threshold bans. Assignment starts from a copy of this
//! table; nothing later changes it.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt as _};

use crate::api::Score;

use super::ScoreRow;
use crate::scheduler::explain::{Step, Trace};
use crate::scheduler::model::{Cluster, NodeIdx, RscIdx, RscKind};
use crate::scheduler::unpack::strip_instance;

/// Per resource (arena order), the score of every node (node order) once the node
/// criteria are applied; None where an opt-in cluster allows the node nothing.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeCriteria {
    pub scores: Vec<ScoreRow>,
}

/// Applies the node criteria in Pacemaker's order: initial scores, locations (node
/// health first, then constraints, then failure bans), stickiness, then
/// migration-threshold. Pure; `cluster` is only read.
#[cfg(test)]
pub(crate) fn node_criteria(cluster: &Cluster) -> NodeCriteria {
    node_criteria_traced(cluster, None).0
}

/// `node_criteria` with the score recorder of `explain` (None: not recording).
pub(crate) fn node_criteria_traced(cluster: &Cluster, trace: Option<Trace>) -> (NodeCriteria, Option<Trace>) {
    let mut criteria = Criteria { cluster, scores: Vec::new(), trace };
    criteria.initial_scores();
    criteria.apply_locations();
    criteria.apply_stickiness();
    criteria.apply_failure_thresholds();
    (NodeCriteria { scores: criteria.scores }, criteria.trace)
}

/// The table being built.
struct Criteria<'a> {
    cluster: &'a Cluster,
    scores: Vec<ScoreRow>,
    trace: Option<Trace>,
}

impl Criteria<'_> {
    /// Tells the recorder, if any, that `step` may have changed `rsc`'s scores (and
    /// those of what is below it).
    #[inline]
    fn record(&mut self, rsc: RscIdx, step: Step) {
        if let Some(trace) = &mut self.trace {
            trace.record(self.cluster, &self.scores, rsc, step);
        }
    }

    /// Every resource starts with 0 on every node in a symmetric cluster (-INFINITY
    /// where the node is down) and with nothing in an opt-in one.
    fn initial_scores(&mut self) {
        let nodes = &self.cluster.nodes;
        let base: ScoreRow = nodes.iter().map(|node| Some(if node.online { Score::ZERO } else { Score::NEG_INFINITY })).collect();
        let empty = ScoreRow::uniform(nodes.len(), None);
        let initial = if self.cluster.settings.symmetric { base } else { empty };
        self.scores = vec![initial; self.cluster.resources.len()];
        if self.trace.is_some() {
            for &top in &self.cluster.top {
                self.record(top, Step::Initial);
            }
        }
    }

    /// Adds `score` for `node` to `rsc` and everything below it.
    fn add_location(&mut self, rsc: RscIdx, node: NodeIdx, score: Score) {
        let base = if self.cluster.nodes[node].online { Score::ZERO } else { Score::NEG_INFINITY };
        let entry = self.scores[rsc][node];
        self.scores[rsc].set(node, Some(entry.unwrap_or(base) + score));
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
                    self.record(top, Step::NodeHealth);
                }
            }
        }
        for (index, location) in cluster.locations.iter().enumerate() {
            if location.role.is_some() {
                continue;
            }
            for &(node, score) in &location.scores {
                self.add_location(location.resource, node, score);
            }
            self.record(location.resource, Step::Location(index));
            if location.exclusive {
                for node in 0..cluster.nodes.len() {
                    if !location.scores.iter().any(|(listed, _)| *listed == node) {
                        self.add_location(location.resource, node, Score::NEG_INFINITY);
                    }
                }
                self.record(location.resource, Step::DiscoveryExclusive(index));
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
            if !resource.banned_on.is_empty() || resource.banned_everywhere {
                self.record(target, Step::Failure { rsc, everywhere: resource.banned_everywhere });
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
            if !cluster.settings.symmetric && self.scores[rsc][node].is_none() {
                continue;
            }
            let entry = self.scores[rsc][node];
            self.scores[rsc].set(node, Some(entry.unwrap_or(Score::ZERO) + resource.stickiness));
            self.record(rsc, Step::Stickiness);
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
                    // A fail count about to be cleared (its failure ran with other
                    // parameters) forces nothing away (Pacemaker's
                    // check_failure_threshold): that operation's, or the resource's
                    // whole count where it is kept without an operation (older
                    // Pacemaker's `fail-count-<rsc>`).
                    let cleared = |key: &String| suffix.is_none_or(|suffix| key == suffix);
                    if cluster.resources[rsc].failcount_cleared_on.iter().any(|(on, key)| *on == node && cleared(key)) {
                        continue;
                    }
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
                    if let Some(trace) = &mut self.trace {
                        trace.record_at(cluster, &self.scores, target, node, Step::MigrationThreshold { rsc, failures });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::assign::Table;
    use crate::scheduler::fixture::{cluster, resource, started};

    const NO_FENCING: (&str, &str, &str) = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
    const DUMMY: &str = r#"{agent: "ocf:heartbeat:Dummy"}"#;

    fn scores_of(cluster: &Cluster, id: &str) -> Table {
        node_criteria(cluster).scores[resource(cluster, id)].to_vec()
    }

    #[test]
    fn a_location_ban_and_stickiness_on_the_current_node() {
        let cluster = cluster(
            &["node1", "node2", "node3"],
            &[
                ("ClusterPolicy", "cluster", "{stonithEnabled: false, defaultResourceStickiness: 100}"),
                ("Resource", "web", DUMMY),
                ("Location", "web-not-node2", "{resource: web, node: node2, score: -INFINITY}"),
                ("Location", "web-likes-node3", "{resource: web, node: node3, score: 30}"),
            ],
            &format!("history:\n{}", started("web", "node1")),
        );
        assert_eq!(scores_of(&cluster, "web"), vec![Some(Score::new(100)), Some(Score::NEG_INFINITY), Some(Score::new(30))]);
    }

    #[test]
    fn a_location_counts_until_it_expires_and_not_from_its_expiry_on() {
        let objects = [
            NO_FENCING,
            ("Resource", "web", DUMMY),
            ("Location", "web-not-node1", "{resource: web, node: node1, score: -INFINITY, expires: '1970-01-01T00:01:40Z'}"),
            ("Location", "web-likes-node2", "{resource: web, node: node2, score: 30, expires: '1970-01-01T00:01:40+00:00'}"),
        ];
        let mut snapshot = crate::scheduler::fixture::snapshot(&["node1", "node2"], &objects, "");
        let scores_at = |snapshot: &crate::scheduler::snapshot::Snapshot| scores_of(&crate::scheduler::unpack::unpack(snapshot), "web");
        snapshot.now = 99;
        assert_eq!(scores_at(&snapshot), vec![Some(Score::NEG_INFINITY), Some(Score::new(30))]);
        snapshot.now = 100;
        assert_eq!(scores_at(&snapshot), vec![Some(Score::ZERO), Some(Score::ZERO)]);
        // The plan's own check no longer counts the expired ban either.
        let plan = crate::scheduler::schedule(&snapshot);
        assert_eq!(plan.check(&snapshot), Vec::<String>::new());
    }

    #[test]
    fn an_opt_in_cluster_allows_only_the_nodes_a_location_names() {
        let cluster = cluster(
            &["node1", "node2"],
            &[
                ("ClusterPolicy", "cluster", "{stonithEnabled: false, symmetricCluster: false}"),
                ("Resource", "web", DUMMY),
                ("Location", "web-on-node2", "{resource: web, node: node2, score: 50}"),
            ],
            "",
        );
        assert_eq!(scores_of(&cluster, "web"), vec![None, Some(Score::new(50))]);
    }

    #[test]
    fn run_time_attributes_never_override_the_administrators() {
        // web runs only on secure nodes; node2's agent says it is secure, its Node
        // object says it is not. An agent also cannot claim what only the cluster says.
        let objects = [
            NO_FENCING,
            ("Node", "node1", "{attributes: {secure: 'true'}}"),
            ("Node", "node2", "{attributes: {secure: 'false'}}"),
            ("Resource", "web", DUMMY),
            ("Location", "web-on-secure", "{resource: web, rules: [{score: -INFINITY, expression: {attribute: secure, operation: Ne, value: 'true'}}]}"),
        ];
        let observed = "nodes:\n  node1: {liveness: Online}\n  node2: {liveness: Online, attributes: {secure: 'true', rack: r2}}\n";
        let cluster = crate::scheduler::unpack::unpack(&crate::scheduler::fixture::snapshot(&[], &objects, observed));
        assert_eq!(scores_of(&cluster, "web"), vec![Some(Score::ZERO), Some(Score::NEG_INFINITY)]);
        let node2 = &cluster.nodes[crate::scheduler::fixture::node(&cluster, "node2")];
        assert_eq!(node2.attribute("secure"), Some("false"));
        // Names the administrator does not set are the agent's to set.
        assert_eq!(node2.attribute("rack"), Some("r2"));
    }

    #[test]
    fn a_node_that_is_down_starts_at_minus_infinity() {
        let cluster = cluster(&["node1", "node2"], &[NO_FENCING, ("Resource", "web", DUMMY)], "nodes:\n  node2: {liveness: Offline}\n");
        assert_eq!(scores_of(&cluster, "web"), vec![Some(Score::ZERO), Some(Score::NEG_INFINITY)]);
    }

    #[test]
    fn migration_threshold_bans_only_the_node_that_reached_it() {
        let cluster = cluster(
            &["node1", "node2"],
            &[NO_FENCING, ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", meta: {migrationThreshold: 3}}"#)],
            "nodes:\n  node1: {liveness: Online, attributes: {fail-count-web#monitor_10000: \"3\"}}\n  node2: {liveness: Online, attributes: {fail-count-web#monitor_10000: \"2\"}}\n",
        );
        assert_eq!(scores_of(&cluster, "web"), vec![Some(Score::NEG_INFINITY), Some(Score::ZERO)]);
    }

    #[test]
    fn a_location_of_a_group_reaches_every_member() {
        let cluster = cluster(
            &["node1", "node2"],
            &[
                NO_FENCING,
                ("Resource", "ip", DUMMY),
                ("Resource", "app", DUMMY),
                ("Group", "stack", "{members: [ip, app]}"),
                ("Location", "stack-prefers-node2", "{resource: stack, node: node2, score: 20}"),
            ],
            "",
        );
        for id in ["stack", "ip", "app"] {
            assert_eq!(scores_of(&cluster, id), vec![Some(Score::ZERO), Some(Score::new(20))], "{id}");
        }
    }
}
