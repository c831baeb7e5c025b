//! One decoded copy of each stored value for the watch caches of one process.
//!
//! Every agent keeps every configured object and every status of the cluster in its
//! watch cache (`ClusterCache`). A process that runs many agents (`pacer hollow`)
//! would decode and hold the same bytes once per agent: at 10,000 resources that was
//! about 25 MiB of each hollow node's 70 (issue 18). The caches of such a process
//! share a `SharedDecodes`: the first cache to take a value in decodes it, the others
//! get the same `Arc`. A value is found again only by its key, the revision etcd wrote
//! it at and a hash of its bytes — what etcd stored under one key at one revision is
//! one value, and the hash covers a store restored from a backup, whose revisions
//! start again below ones already seen. Nothing else differs between the caches: a
//! value is decoded with the key alone (the checks that the body agrees with its key
//! are the same for every cache), so a shared copy is exactly what a cache of its own
//! would have decoded.
//!
//! Entries are weak: the value lives as long as one cache holds it. Dead entries are
//! swept when the table has doubled since the last sweep, so it stays proportional to
//! what is held.
//!
//! The agents' probe targets share their definitions the same way (`definition`),
//! found by value: a definition is what the agent derived from the spec, the same on
//! every node (the instances of a globally unique clone differ from one another only
//! by their number) — 3.8 MiB of each hollow node at 10,000 resources (issue 18).
//! The targets themselves, the same for every node, are shared whole
//! (`probe_targets`): the agents that took in the same spec hold one map.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use crate::api::Object;
use crate::api::records::{Definition, ResourceStatus};
use crate::state::ProbeTargets;

/// The decoded objects and statuses shared by the watch caches of one process.
#[derive(Debug, Default)]
pub struct SharedDecodes {
    objects: Mutex<Shelf<Object>>,
    statuses: Mutex<Shelf<ResourceStatus>>,
    /// By a hash of the value; a collision is not shared.
    definitions: Mutex<Shelf<Definition>>,
    /// The probe targets an agent took in last: the same for every node of a spec
    /// (`probe_targets`), so held once by all the agents that took that spec in.
    probe_targets: Mutex<Weak<ProbeTargets>>,
    /// Seeded per process.
    hashing: foldhash::quality::RandomState,
}

impl SharedDecodes {
    pub fn new() -> SharedDecodes {
        SharedDecodes::default()
    }

    /// The object stored under `key` at `mod_revision` with the bytes `value`: the
    /// copy another cache decoded, or `decode`'s, kept for the others.
    pub fn object<E>(&self, key: &str, mod_revision: i64, value: &[u8], decode: impl FnOnce() -> Result<Object, E>) -> Result<Arc<Object>, E> {
        share(&self.objects, (mod_revision, self.fingerprint(key, value)), key, decode)
    }

    /// The status stored under `key` at `mod_revision`, as `object`.
    pub fn status<E>(&self, key: &str, mod_revision: i64, value: &[u8], decode: impl FnOnce() -> Result<ResourceStatus, E>) -> Result<Arc<ResourceStatus>, E> {
        share(&self.statuses, (mod_revision, self.fingerprint(key, value)), key, decode)
    }

    /// The copy of `definition` another agent holds, or `definition` itself, kept
    /// for the others.
    pub fn definition(&self, definition: Arc<Definition>) -> Arc<Definition> {
        let stamp = (0, self.hashing.hash_one(&*definition));
        let mut shelf = lock(&self.definitions);
        match shelf.held.get(&stamp).and_then(|(_, weak)| weak.upgrade()) {
            Some(theirs) if *theirs == *definition => return theirs,
            // Another definition with the same hash: not shared.
            Some(_) => return definition,
            None => {}
        }
        shelf.keep(stamp, Box::from(""), &definition);
        definition
    }

    /// The probe targets another agent holds when they equal `targets`; else
    /// `targets`, their definitions shared (`definition`: a spec that changed one
    /// resource keeps the others'), held for the next agent. Every node derives the
    /// same targets from the same spec: a copy per agent was 2.5–3.7 MiB of each
    /// hollow node at 10,000 resources (issue 18).
    pub fn probe_targets(&self, targets: ProbeTargets) -> Arc<ProbeTargets> {
        // Held while the first agent shares the definitions: the next ones find its
        // result rather than doing the same.
        let mut latest = self.probe_targets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(theirs) = latest.upgrade().filter(|theirs| **theirs == targets) {
            return theirs;
        }
        let mut targets = targets;
        for target in targets.values_mut() {
            target.definition = self.definition(Arc::clone(&target.definition));
        }
        let targets = Arc::new(targets);
        *latest = Arc::downgrade(&targets);
        targets
    }

    /// A hash of a key and a value.
    fn fingerprint(&self, key: &str, value: &[u8]) -> u64 {
        let mut hasher = self.hashing.build_hasher();
        key.hash(&mut hasher);
        value.hash(&mut hasher);
        hasher.finish()
    }

    /// How many values are held by some cache (for tests and figures).
    pub fn held(&self) -> (usize, usize) {
        (live(&self.objects), live(&self.statuses))
    }
}

/// The values of one type, by (revision, hash of key and bytes), with the key itself
/// to tell two keys apart that a hash would confuse.
#[derive(Debug)]
struct Shelf<T> {
    held: HashMap<(i64, u64), (Box<str>, Weak<T>)>,
    /// The table's size after the last sweep.
    swept_at: usize,
}

impl<T> Default for Shelf<T> {
    fn default() -> Shelf<T> {
        Shelf { held: HashMap::new(), swept_at: 0 }
    }
}

/// Sweeping is not worth it below this many entries.
const SWEEP_FLOOR: usize = 1024;

fn share<T, E>(shelf: &Mutex<Shelf<T>>, stamp: (i64, u64), key: &str, decode: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
    if let Some(found) = lock(shelf).held.get(&stamp).filter(|(held_key, _)| **held_key == *key).and_then(|(_, weak)| weak.upgrade()) {
        return Ok(found);
    }
    // Decoded outside the lock: the other caches' lookups do not wait for it.
    let decoded = Arc::new(decode()?);
    let mut shelf = lock(shelf);
    match shelf.held.get(&stamp) {
        // Another cache decoded it meanwhile: one copy is kept, theirs.
        Some((held_key, weak)) if **held_key == *key => {
            if let Some(theirs) = weak.upgrade() {
                return Ok(theirs);
            }
        }
        // Another key with the same stamp (a hash collision): not shared.
        Some(_) => return Ok(decoded),
        None => {}
    }
    shelf.keep(stamp, Box::from(key), &decoded);
    Ok(decoded)
}

impl<T> Shelf<T> {
    /// Holds `value` (weakly) under `stamp`, sweeping the dead entries once the table
    /// has doubled since the last sweep.
    fn keep(&mut self, stamp: (i64, u64), key: Box<str>, value: &Arc<T>) {
        self.held.insert(stamp, (key, Arc::downgrade(value)));
        if self.held.len() >= SWEEP_FLOOR.max(2 * self.swept_at) {
            self.held.retain(|_, (_, weak)| weak.strong_count() > 0);
            self.swept_at = self.held.len();
        }
    }
}

/// A poisoned lock holds a table that is still whole (no code panics while it holds
/// it in a half-written state): its contents are used.
fn lock<T>(shelf: &Mutex<Shelf<T>>) -> std::sync::MutexGuard<'_, Shelf<T>> {
    shelf.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn live<T>(shelf: &Mutex<Shelf<T>>) -> usize {
    lock(shelf).held.values().filter(|(_, weak)| weak.strong_count() > 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_count(shared: &SharedDecodes, key: &str, revision: i64, value: &str, decodes: &mut u32) -> Arc<ResourceStatus> {
        shared
            .status::<String>(key, revision, value.as_bytes(), || {
                *decodes += 1;
                serde_json::from_str(value).map_err(|error| error.to_string())
            })
            .expect("decodes")
    }

    fn status(node: &str, id: &str) -> String {
        format!(r#"{{"id":"{id}","name":"{id}","node":"{node}","role":"Started","definition":{{"agent":"ocf:heartbeat:Dummy"}},"history":[]}}"#)
    }

    #[test]
    fn a_value_is_decoded_once_while_some_cache_holds_it() {
        let shared = SharedDecodes::new();
        let mut decodes = 0;
        let value = status("n1", "a");
        let first = decode_count(&shared, "/p/status/n1/a", 7, &value, &mut decodes);
        let second = decode_count(&shared, "/p/status/n1/a", 7, &value, &mut decodes);
        assert_eq!(decodes, 1);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(shared.held(), (0, 1));
        // Once nobody holds it, it is decoded again.
        drop((first, second));
        assert_eq!(shared.held(), (0, 0));
        decode_count(&shared, "/p/status/n1/a", 7, &value, &mut decodes);
        assert_eq!(decodes, 2);
    }

    #[test]
    fn another_revision_key_or_value_is_another_copy() {
        let shared = SharedDecodes::new();
        let mut decodes = 0;
        let held = [
            decode_count(&shared, "/p/status/n1/a", 7, &status("n1", "a"), &mut decodes),
            decode_count(&shared, "/p/status/n1/a", 8, &status("n1", "a"), &mut decodes),
            decode_count(&shared, "/p/status/n2/a", 7, &status("n2", "a"), &mut decodes),
            // Same key and revision, other bytes: a store restored from a backup.
            decode_count(&shared, "/p/status/n1/a", 7, &status("n1", "a").replace("Started", "Stopped"), &mut decodes),
        ];
        assert_eq!(decodes, 4);
        assert_eq!(held[3].role, crate::api::records::ObservedRole::Stopped);
        assert_eq!(held[0].role, crate::api::records::ObservedRole::Started);
    }

    #[test]
    fn a_value_that_does_not_decode_is_not_kept() {
        let shared = SharedDecodes::new();
        let refused = shared.status::<String>("/p/status/n1/a", 3, b"{", || Err("truncated".to_string()));
        assert_eq!(refused.err().as_deref(), Some("truncated"));
        assert_eq!(lock(&shared.statuses).held.len(), 0);
    }

    #[test]
    fn dead_entries_are_swept_as_the_table_grows() {
        let shared = SharedDecodes::new();
        let mut decodes = 0;
        for revision in 0..(3 * SWEEP_FLOOR as i64) {
            // Each dropped at once: nothing stays held.
            decode_count(&shared, "/p/status/n1/a", revision, &status("n1", "a"), &mut decodes);
        }
        assert!(lock(&shared.statuses).held.len() <= SWEEP_FLOOR, "{}", lock(&shared.statuses).held.len());
    }

    fn definition(agent: &str) -> Arc<Definition> {
        Arc::new(serde_json::from_value(serde_json::json!({"agent": agent, "params": {"ip": "10.0.0.1"}})).expect("a definition"))
    }

    /// Equal definitions from two agents are one copy; a different one is not
    /// confused with it; once nobody holds it, a new one takes its place.
    #[test]
    fn equal_definitions_are_one_copy_while_held() {
        let shared = SharedDecodes::new();
        let first = shared.definition(definition("ocf:heartbeat:Dummy"));
        let second = shared.definition(definition("ocf:heartbeat:Dummy"));
        assert!(Arc::ptr_eq(&first, &second), "the second agent's copy is the first's");
        let other = shared.definition(definition("ocf:heartbeat:IPaddr2"));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.agent.to_string(), "ocf:heartbeat:IPaddr2");
        drop((first, second));
        let again = definition("ocf:heartbeat:Dummy");
        let kept = shared.definition(Arc::clone(&again));
        assert!(Arc::ptr_eq(&kept, &again), "nobody held the old copy: the new one is kept");
    }

    #[test]
    fn agents_that_took_in_the_same_spec_hold_one_map_of_targets() {
        use crate::state::ProbeTarget;
        let targets = |agents: &[&str]| -> ProbeTargets {
            agents
                .iter()
                .enumerate()
                .map(|(index, agent)| {
                    let id = format!("r{index}");
                    (id.clone(), ProbeTarget { id: id.clone(), name: id, group: None, clone: None, definition: definition(agent) })
                })
                .collect()
        };
        let shared = SharedDecodes::new();
        let first = shared.probe_targets(targets(&["ocf:heartbeat:Dummy", "ocf:heartbeat:IPaddr2"]));
        let second = shared.probe_targets(targets(&["ocf:heartbeat:Dummy", "ocf:heartbeat:IPaddr2"]));
        assert!(Arc::ptr_eq(&first, &second), "the second agent holds the first's map");
        // Another spec: its own map, whose unchanged definitions are the first's.
        let changed = shared.probe_targets(targets(&["ocf:heartbeat:Dummy", "ocf:heartbeat:apache"]));
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed["r1"].definition.agent.to_string(), "ocf:heartbeat:apache");
        assert!(Arc::ptr_eq(&first["r0"].definition, &changed["r0"].definition));
        let third = shared.probe_targets(targets(&["ocf:heartbeat:Dummy", "ocf:heartbeat:apache"]));
        assert!(Arc::ptr_eq(&changed, &third));
    }
}
