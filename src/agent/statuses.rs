//! What every other node reports, as the agent's decisions look it up: the statuses by
//! (node, id), with the counts a decision asks for kept up to date as each status
//! arrives — ids another node reports possibly active, copies another node reports
//! possibly promoted, the statuses of each primitive name. A decision then costs what
//! the node runs, not what the cluster runs: with a thousand nodes each reporting ten
//! thousand resources, a scan per decision was the agent's whole CPU.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::api::records::ResourceStatus;

type Key = (String, String);

/// The cluster's statuses, this node's own entries kept but not counted (the
/// reconciler's `local` supersedes them).
#[derive(Debug, Default)]
pub struct ClusterStatuses {
    node: String,
    /// Shared with the agent's watch cache (`ClusterCache::statuses`), not copied.
    by_key: BTreeMap<Key, Arc<ResourceStatus>>,
    /// Per id, how many other nodes report it possibly active.
    active_elsewhere: HashMap<String, usize>,
    /// Per (clone, primitive name), how many other nodes report a copy possibly
    /// promoted.
    promoted_elsewhere: HashMap<String, HashMap<String, usize>>,
    /// Per primitive name, the keys of other nodes' statuses of it, sorted. Vectors,
    /// not sets: most names have one status, and a set of one is a whole tree node
    /// (half a kilobyte; 5 MiB of each hollow node at 10,000 resources, issue 18).
    by_name: HashMap<String, Vec<Key>>,
    /// Per clone, the keys of other nodes' statuses of its instances, sorted.
    by_clone: HashMap<String, Vec<Key>>,
}

impl ClusterStatuses {
    pub fn new(node: &str) -> ClusterStatuses {
        ClusterStatuses { node: node.to_string(), ..ClusterStatuses::default() }
    }

    pub fn get(&self, key: &Key) -> Option<&ResourceStatus> {
        self.by_key.get(key).map(Arc::as_ref)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &ResourceStatus)> + Clone {
        self.by_key.iter().map(|(key, status)| (key, status.as_ref()))
    }

    /// The statuses as held: shared, for a caller that keeps them.
    pub fn iter_shared(&self) -> impl Iterator<Item = (&Key, &Arc<ResourceStatus>)> {
        self.by_key.iter()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn insert(&mut self, key: Key, status: impl Into<Arc<ResourceStatus>>) {
        let status = status.into();
        self.remove(&key);
        if key.0 != self.node {
            self.count(&key, &status, true);
        }
        self.by_key.insert(key, status);
    }

    pub fn remove(&mut self, key: &Key) -> Option<Arc<ResourceStatus>> {
        let old = self.by_key.remove(key)?;
        if key.0 != self.node {
            self.count(key, &old, false);
        }
        Some(old)
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
        self.active_elsewhere.clear();
        self.promoted_elsewhere.clear();
        self.by_name.clear();
        self.by_clone.clear();
    }

    /// Keeps only the statuses `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key, &ResourceStatus) -> bool) {
        let dropped: Vec<Key> = self.by_key.iter().filter(|(key, status)| !keep(key, status)).map(|(key, _)| key.clone()).collect();
        for key in dropped {
            self.remove(&key);
        }
    }

    /// Keeps only the statuses of `node` that `keep` accepts (given their ids); the
    /// other nodes' are not looked at.
    pub fn retain_of_node(&mut self, node: &str, mut keep: impl FnMut(&str, &ResourceStatus) -> bool) {
        let dropped: Vec<Key> = self
            .by_key
            .range((node.to_string(), String::new())..)
            .take_while(|((owner, _), _)| owner == node)
            .filter(|((_, id), status)| !keep(id, status))
            .map(|(key, _)| key.clone())
            .collect();
        for key in dropped {
            self.remove(&key);
        }
    }

    /// Everything replaced by `statuses` (a relist).
    pub fn replace_all(&mut self, statuses: impl IntoIterator<Item = (Key, Arc<ResourceStatus>)>) {
        self.clear();
        for (key, status) in statuses {
            self.insert(key, status);
        }
    }

    /// Whether another node reports `id` possibly active.
    pub fn active_elsewhere(&self, id: &str) -> bool {
        self.active_elsewhere.contains_key(id)
    }

    /// How many other nodes report a copy of `name` in `clone` possibly promoted.
    pub fn promoted_elsewhere(&self, clone: &str, name: &str) -> usize {
        self.promoted_elsewhere.get(clone).and_then(|names| names.get(name)).copied().unwrap_or(0)
    }

    /// Other nodes' statuses of the primitive `name`.
    pub fn of_name<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a ResourceStatus> + 'a {
        self.by_name.get(name).into_iter().flatten().filter_map(|key| self.get(key))
    }

    /// Other nodes' statuses of instances of `clone`.
    pub fn of_clone<'a>(&'a self, clone: &str) -> impl Iterator<Item = &'a ResourceStatus> + Clone + 'a {
        self.by_clone.get(clone).into_iter().flatten().filter_map(|key| self.get(key))
    }

    fn count(&mut self, key: &Key, status: &ResourceStatus, add: bool) {
        fn step<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, add: bool) {
            if add {
                *map.entry(key).or_default() += 1;
            } else if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        if status.may_be_active() {
            step(&mut self.active_elsewhere, key.1.clone(), add);
        }
        if let Some(clone) = &status.clone
            && status.may_be_promoted()
        {
            let names = self.promoted_elsewhere.entry(clone.clone()).or_default();
            step(names, status.name.clone(), add);
            if names.is_empty() {
                self.promoted_elsewhere.remove(clone);
            }
        }
        fn member(map: &mut HashMap<String, Vec<Key>>, name: &str, key: &Key, add: bool) {
            if add {
                // Room for one: most names have one status, and a vector's first
                // push makes room for four (150 bytes more per status, issue 18).
                let keys = map.entry(name.to_string()).or_insert_with(|| Vec::with_capacity(1));
                if let Err(at) = keys.binary_search(key) {
                    keys.insert(at, key.clone());
                }
            } else if let Some(keys) = map.get_mut(name) {
                if let Ok(at) = keys.binary_search(key) {
                    keys.remove(at);
                }
                if keys.is_empty() {
                    map.remove(name);
                }
            }
        }
        member(&mut self.by_name, &status.name, key, add);
        if let Some(clone) = &status.clone {
            member(&mut self.by_clone, clone, key, add);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::ObservedRole;

    fn status(node: &str, id: &str, clone: Option<&str>, role: ObservedRole) -> ResourceStatus {
        let name = crate::api::names::split_instance(id).0.to_string();
        let value = serde_json::json!({
            "id": id, "name": name, "clone": clone, "node": node, "role": role,
            "definition": {"agent": "ocf:pacer:Dummy"}, "history": [],
        });
        serde_json::from_value(value).expect("a status")
    }

    /// `retain_of_node` looks at one node's statuses only (not at a node whose name
    /// starts with it) and keeps the counts as `retain` would.
    #[test]
    fn retaining_one_nodes_statuses_leaves_the_others_and_the_counts_right() {
        let mut statuses = ClusterStatuses::new("n9");
        for (node, id) in [("n1", "a"), ("n1", "b"), ("n10", "a"), ("n2", "a")] {
            statuses.insert((node.to_string(), id.to_string()), status(node, id, None, ObservedRole::Started));
        }
        let mut seen = Vec::new();
        statuses.retain_of_node("n1", |id, _| {
            seen.push(id.to_string());
            id != "a"
        });
        assert_eq!(seen, ["a", "b"]);
        let left: Vec<String> = statuses.iter().map(|((node, id), _)| format!("{node}/{id}")).collect();
        assert_eq!(left, ["n1/b", "n10/a", "n2/a"]);
        assert!(statuses.active_elsewhere("a") && statuses.active_elsewhere("b"));
        statuses.retain_of_node("n10", |_, _| false);
        statuses.retain_of_node("n2", |_, _| false);
        assert!(!statuses.active_elsewhere("a"));
        assert_eq!(statuses.of_name("a").count(), 0);
    }

    /// The counts after any sequence of inserts and removals are those a scan of what
    /// is left gives.
    #[test]
    fn counts_follow_every_change() {
        let mut statuses = ClusterStatuses::new("n1");
        let roles = [ObservedRole::Stopped, ObservedRole::Started, ObservedRole::Promoted, ObservedRole::Unpromoted, ObservedRole::Failed];
        let mut seed: u64 = 7;
        for round in 0..2000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let node = format!("n{}", (seed >> 33) % 4 + 1);
            let id = if (seed >> 20) % 2 == 0 { "a".to_string() } else { format!("db:{}", (seed >> 40) % 3) };
            let clone = id.starts_with("db").then_some("db-clone");
            let key = (node.clone(), id.clone());
            if (seed >> 50) % 5 == 0 {
                statuses.remove(&key);
            } else {
                statuses.insert(key, status(&node, &id, clone, roles[(round + (seed >> 45) as usize) % roles.len()]));
            }
            let others: Vec<&ResourceStatus> = statuses.iter().filter(|((node, _), _)| node != "n1").map(|(_, status)| status).collect();
            for id in ["a", "db:0", "db:1", "db:2"] {
                let scanned = others.iter().any(|status| status.id == id && status.may_be_active());
                assert_eq!(statuses.active_elsewhere(id), scanned, "{id} after round {round}");
            }
            let promoted = others.iter().filter(|status| status.clone.as_deref() == Some("db-clone") && status.may_be_promoted()).count();
            assert_eq!(statuses.promoted_elsewhere("db-clone", "db"), promoted, "after round {round}");
            let named = others.iter().filter(|status| status.name == "db").count();
            assert_eq!(statuses.of_name("db").count(), named, "after round {round}");
            let instances = others.iter().filter(|status| status.clone.as_deref() == Some("db-clone")).count();
            assert_eq!(statuses.of_clone("db-clone").count(), instances, "after round {round}");
        }
    }
}
