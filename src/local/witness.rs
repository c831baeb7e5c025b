//! The witness agent's testimony (`agents/ocf/pacer/witness` logs every start, stop,
//! promote and demote with node and time to a file the nodes share) and the observer
//! that audits it: replayed against the nodes' power-off times, it proves that no two
//! copies of an exclusive resource and no more than `promotedMax` promoted instances
//! were ever active, and that a status agrees with what ran. The agent tests, the
//! cluster tests and the e2e fault campaign all judge by it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// One line of the witness log.
#[derive(Clone, Debug)]
pub struct Testimony {
    pub ns: u128,
    pub node: String,
    pub resource: String,
    pub operation: String,
    pub phase: String,
    pub rc: Option<i32>,
}

pub fn read_witness(log: &Path) -> Vec<Testimony> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let field = |name: &str| line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string();
            Testimony {
                ns: field("ns").parse().unwrap_or(0),
                node: field("node"),
                resource: field("rsc"),
                operation: field("op"),
                phase: field("phase"),
                rc: field("rc").parse().ok(),
            }
        })
        .collect()
}

/// What the observer holds the cluster to.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Resources (the witness's `rsc=`) that may be active on one node at a time:
    /// everything that is not a clone.
    pub exclusive: BTreeSet<String>,
    /// Promotable clones: the most instances promoted at once (`promotedMax`).
    pub promoted_max: BTreeMap<String, usize>,
}

/// Where every resource is active and promoted, replaying the witness log with the
/// nodes' power-offs. A copy is active from the beginning of its start (or migration
/// in) until the successful end of its stop, or until its node was powered off;
/// promoted from the beginning of its promote until the successful end of its demote
/// or stop, or the power-off. Beginnings count, not ends: an operation under way may
/// already have done its harm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub active: BTreeMap<String, BTreeSet<String>>,
    pub promoted: BTreeMap<String, BTreeSet<String>>,
    /// Copies handing over by live migration (`migrate_to` done, not yet stopped).
    pub migrating: BTreeMap<String, BTreeSet<String>>,
}

impl Replay {
    fn power_off(&mut self, node: &str) {
        for copies in self.active.values_mut().chain(self.promoted.values_mut()).chain(self.migrating.values_mut()) {
            copies.remove(node);
        }
    }

    fn testify(&mut self, line: &Testimony) {
        let resource = line.resource.clone();
        let node = line.node.clone();
        match (line.operation.as_str(), line.phase.as_str()) {
            ("start" | "migrate_from", "begin") => {
                self.active.entry(resource).or_default().insert(node);
            }
            ("promote", "begin") => {
                self.promoted.entry(resource).or_default().insert(node);
            }
            // The target may take over only once the source has handed over.
            ("migrate_to", "end") if line.rc == Some(0) => {
                self.migrating.entry(resource).or_default().insert(node);
            }
            ("demote", "end") if line.rc == Some(0) => {
                self.promoted.entry(resource).or_default().remove(&node);
            }
            ("stop", "end") if line.rc == Some(0) => {
                self.active.entry(resource.clone()).or_default().remove(&node);
                self.promoted.entry(resource.clone()).or_default().remove(&node);
                self.migrating.entry(resource).or_default().remove(&node);
            }
            _ => {}
        }
    }

    /// The state at the end of the log.
    pub fn of(testimony: &[Testimony], power_offs: &BTreeMap<String, Vec<u128>>) -> Replay {
        let mut replay = Replay::default();
        replay.run(testimony, power_offs, |_, _| {});
        replay
    }

    /// Replays every line and power-off in time order; `check` sees the state and each
    /// line just before it is applied.
    fn run(&mut self, testimony: &[Testimony], power_offs: &BTreeMap<String, Vec<u128>>, mut check: impl FnMut(&Replay, &Testimony)) {
        let mut events: Vec<(u128, Option<&Testimony>, Option<&str>)> = testimony.iter().map(|line| (line.ns, Some(line), None)).collect();
        for (node, times) in power_offs {
            events.extend(times.iter().map(|time| (*time, None, Some(node.as_str()))));
        }
        events.sort_by_key(|(time, _, _)| *time);
        for (_, line, powered_off) in events {
            if let Some(node) = powered_off {
                self.power_off(node);
            }
            if let Some(line) = line {
                check(self, line);
                self.testify(line);
            }
        }
    }
}

/// Live migrations of exclusive resources in the log: each `migrate_from` that began,
/// the moments the migration rule of `audit` judges (a campaign prints how many, so a
/// run shows the rule was exercised).
pub fn migrations(testimony: &[Testimony], rules: &Rules) -> usize {
    testimony.iter().filter(|line| line.operation == "migrate_from" && line.phase == "begin" && rules.exclusive.contains(&line.resource)).count()
}

/// The observer's verdict on a whole run: every moment an exclusive resource began to
/// run while active on another node, and every promotion beyond `promotedMax`. A live
/// migration's target (`migrate_from`) may overlap only the source, and only once the
/// source's `migrate_to` succeeded; the window ends with the source's stop.
pub fn audit(testimony: &[Testimony], power_offs: &BTreeMap<String, Vec<u128>>, rules: &Rules) -> Vec<String> {
    let mut problems = Vec::new();
    Replay::default().run(testimony, power_offs, |replay, line| {
        let others = |copies: Option<&BTreeSet<String>>| copies.into_iter().flatten().filter(|other| **other != line.node).cloned().collect::<Vec<_>>();
        match (line.operation.as_str(), line.phase.as_str()) {
            ("start" | "migrate_from", "begin") if rules.exclusive.contains(&line.resource) => {
                let active = others(replay.active.get(&line.resource));
                // A live migration runs two copies by design: the target's migrate_from
                // may overlap only copies that handed over (migrate_to succeeded).
                let handing_over = replay.migrating.get(&line.resource);
                let excused = line.operation == "migrate_from" && active.iter().all(|node| handing_over.is_some_and(|nodes| nodes.contains(node)));
                if !active.is_empty() && !excused {
                    problems.push(format!("{} started on {} at {} while active on {active:?}", line.resource, line.node, line.ns));
                }
            }
            ("promote", "begin") => {
                if let Some(max) = rules.promoted_max.get(&line.resource) {
                    let promoted = others(replay.promoted.get(&line.resource));
                    if promoted.len() + 1 > *max {
                        problems.push(format!("{} promoted on {} at {} while promoted on {promoted:?} (promotedMax {max})", line.resource, line.node, line.ns));
                    }
                }
            }
            _ => {}
        }
    });
    problems
}

/// Where the status disagrees with the replayed witness log (`Replay::of`), for the
/// resources `rules` names: an exclusive resource must be reported Started exactly
/// where it is active, a promotable clone's instances where they are active, Promoted
/// where promoted. Meant for a settled cluster, after healing.
pub fn disagreements(status: &Value, replay: &Replay, rules: &Rules) -> Vec<String> {
    let entries: Vec<&Value> = status["resources"].as_array().into_iter().flatten().collect();
    let nodes_where = |resource: &str, roles: &[&str]| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|entry| entry["name"].as_str().is_some_and(|name| name == resource || name.split_once(':').is_some_and(|(base, _)| base == resource)))
            .filter(|entry| entry["role"].as_str().is_some_and(|role| roles.contains(&role)))
            .filter_map(|entry| entry["node"].as_str().map(str::to_string))
            .collect()
    };
    let mut problems = Vec::new();
    let mut compare = |what: String, reported: BTreeSet<String>, testified: Option<&BTreeSet<String>>| {
        let testified = testified.cloned().unwrap_or_default();
        if reported != testified {
            problems.push(format!("{what}: status says {reported:?}, the witness log {testified:?}"));
        }
    };
    for resource in &rules.exclusive {
        compare(
            format!("{resource} running"),
            nodes_where(resource, &["Started", "Promoted", "Unpromoted", "Migrating", "Failed"]),
            replay.active.get(resource),
        );
    }
    for resource in rules.promoted_max.keys() {
        compare(format!("{resource} running"), nodes_where(resource, &["Started", "Promoted", "Unpromoted", "Failed"]), replay.active.get(resource));
        compare(format!("{resource} promoted"), nodes_where(resource, &["Promoted"]), replay.promoted.get(resource));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ns: u128, node: &str, operation: &str, phase: &str) -> Testimony {
        Testimony { ns, node: node.into(), resource: "web".into(), operation: operation.into(), phase: phase.into(), rc: (phase == "end").then_some(0) }
    }

    #[test]
    fn the_observer_sees_overlaps_and_forgives_powered_off_nodes() {
        let rules = Rules { exclusive: ["web".to_string()].into(), promoted_max: BTreeMap::new() };
        let moved = [line(1, "n1", "start", "begin"), line(2, "n1", "start", "end"), line(3, "n1", "stop", "end"), line(4, "n2", "start", "begin")];
        assert!(audit(&moved, &BTreeMap::new(), &rules).is_empty());
        let twice = [line(1, "n1", "start", "begin"), line(2, "n2", "start", "begin")];
        assert_eq!(audit(&twice, &BTreeMap::new(), &rules).len(), 1);
        // A clone runs everywhere: not exclusive.
        assert!(audit(&twice, &BTreeMap::new(), &Rules::default()).is_empty());
        let fenced = [line(1, "n1", "start", "begin"), line(5, "n2", "start", "begin")];
        let off: BTreeMap<String, Vec<u128>> = [("n1".to_string(), vec![3])].into();
        assert!(audit(&fenced, &off, &rules).is_empty());
        let too_early: BTreeMap<String, Vec<u128>> = [("n1".to_string(), vec![6])].into();
        assert_eq!(audit(&fenced, &too_early, &rules).len(), 1);
    }

    #[test]
    fn only_a_copy_handing_over_may_overlap_a_migration() {
        let rules = Rules { exclusive: ["web".to_string()].into(), promoted_max: BTreeMap::new() };
        let migrated = [
            line(1, "n1", "start", "begin"),
            line(2, "n1", "migrate_to", "begin"),
            line(3, "n1", "migrate_to", "end"),
            line(4, "n2", "migrate_from", "begin"),
            line(5, "n1", "stop", "end"),
        ];
        assert!(audit(&migrated, &BTreeMap::new(), &rules).is_empty());
        assert_eq!(migrations(&migrated, &rules), 1);
        let unannounced = [line(1, "n1", "start", "begin"), line(3, "n2", "migrate_from", "begin")];
        assert_eq!(audit(&unannounced, &BTreeMap::new(), &rules).len(), 1);
        // Out of order: the target began before the source had handed over.
        let early = [line(1, "n1", "start", "begin"), line(2, "n1", "migrate_to", "begin"), line(3, "n2", "migrate_from", "begin")];
        assert_eq!(audit(&early, &BTreeMap::new(), &rules).len(), 1);
        let mut failed = migrated.clone();
        failed[2].rc = Some(1);
        assert_eq!(audit(&failed, &BTreeMap::new(), &rules).len(), 1);
        // The window closed with the source's stop: a new copy there overlaps the target.
        let back = [migrated.as_slice(), &[line(6, "n1", "start", "begin")]].concat();
        assert_eq!(audit(&back, &BTreeMap::new(), &rules).len(), 1);
    }

    #[test]
    fn the_observer_counts_promotions_against_promoted_max() {
        let rules = Rules { exclusive: BTreeSet::new(), promoted_max: [("web".to_string(), 1)].into() };
        let handed_over = [
            line(1, "n1", "start", "begin"),
            line(2, "n2", "start", "begin"),
            line(3, "n1", "promote", "begin"),
            line(4, "n1", "demote", "end"),
            line(5, "n2", "promote", "begin"),
        ];
        assert!(audit(&handed_over, &BTreeMap::new(), &rules).is_empty());
        let both = [line(1, "n1", "promote", "begin"), line(2, "n2", "promote", "begin")];
        assert_eq!(audit(&both, &BTreeMap::new(), &rules).len(), 1);
        // The promoted node was powered off first: its promotion ended with it.
        let off: BTreeMap<String, Vec<u128>> = [("n1".to_string(), vec![1])].into();
        let after_fencing = [line(0, "n1", "promote", "begin"), line(2, "n2", "promote", "begin")];
        assert!(audit(&after_fencing, &off, &rules).is_empty());
    }

    #[test]
    fn the_status_must_agree_with_the_witness_log() {
        let rules = Rules { exclusive: ["web".to_string()].into(), promoted_max: BTreeMap::new() };
        let replay = Replay::of(&[line(1, "n1", "start", "begin"), line(2, "n1", "start", "end")], &BTreeMap::new());
        let agrees = serde_json::json!({"resources": [{"name": "web", "node": "n1", "role": "Started"}]});
        assert!(disagreements(&agrees, &replay, &rules).is_empty());
        let elsewhere = serde_json::json!({"resources": [{"name": "web", "node": "n2", "role": "Started"}]});
        assert_eq!(disagreements(&elsewhere, &replay, &rules).len(), 1);
        let stopped = serde_json::json!({"resources": [{"name": "web", "node": null, "role": "Stopped"}]});
        assert_eq!(disagreements(&stopped, &replay, &rules).len(), 1);
    }
}
