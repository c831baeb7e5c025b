//! The one snapshot builder: from the `ClusterCache` to the scheduler's `Snapshot`, at
//! the cache's revision. The daemon decides on it, `pacer status` shows it; later
//! `pacer why`, `simulate --live` and the console read the cluster the same way.
//!
//! Architecture invariant: pure. The clock is an input (`now`), and nothing is read
//! from etcd: a caller that needs a fresh snapshot refreshes its cache first.

use crate::api::Spec;
use crate::api::records::Reports;
use crate::scheduler::snapshot::{NodeLiveness, ObservedNode, Snapshot};
use crate::state::observe;

use super::cache::ClusterCache;

/// How to build a snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    /// Seconds since the epoch.
    pub now: i64,
    /// Configured nodes never heard of count as still joining (`Pending`: nothing runs
    /// there, nothing fences them) rather than as lost — a new leader's start-up grace,
    /// Pacemaker's `dc-deadtime`.
    pub hold_unseen: bool,
}

/// A snapshot and what it was built from.
#[derive(Clone, Debug)]
pub struct LiveSnapshot {
    /// The etcd revision everything in it was read at (for a cache fed by one watch).
    pub revision: i64,
    pub snapshot: Snapshot,
    /// The agents' reports it was observed from.
    pub reports: Reports,
}

/// Why no snapshot can be built now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// A large apply committed and is being rolled forward: the spec in the cache is
    /// the one before it. Retry once it is done (`Store::list_objects` finishes it).
    #[error("apply {0} is committed but not yet rolled forward")]
    IntentPending(String),
}

/// Builds the scheduler's input from the cache: the objects in definition order, the
/// nodes and histories `state::observe` makes of the reports, and `now`.
pub fn build(cache: &ClusterCache, options: BuildOptions) -> Result<LiveSnapshot, NotReady> {
    if let Some(intent) = cache.committed_intents().iter().next() {
        return Err(NotReady::IntentPending(intent.clone()));
    }
    let objects = cache.objects_in_order();
    let reports = cache.reports();
    let mut observed = observe(&reports, true);
    if options.hold_unseen {
        for object in &objects {
            if let Spec::Node(_) = object.spec {
                observed.nodes.entry(object.name().as_str().to_string()).or_insert_with(|| ObservedNode {
                    liveness: NodeLiveness::Pending,
                    shutdown: false,
                    attributes: Default::default(),
                });
            }
        }
    }
    Ok(LiveSnapshot { revision: cache.revision(), snapshot: Snapshot { objects, observed, now: options.now }, reports })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Keys;
    use crate::store::watch::{Entry, WatchEvent};

    fn put(cache: &mut ClusterCache, key: &str, value: &str, revision: i64) {
        cache.apply_event(&WatchEvent::Put(Entry {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: revision,
            create_revision: revision,
            lease: 1,
        }));
    }

    fn node(name: &str, sequence: i64) -> String {
        format!(r#"{{"apiVersion":"pacer.io/v1alpha1","kind":"Node","metadata":{{"name":"{name}","creationSequence":{sequence}}},"spec":{{}}}}"#)
    }

    #[test]
    fn objects_come_in_definition_order_and_unseen_nodes_can_be_held() {
        let mut cache = ClusterCache::new(Keys::new("/pacer"));
        put(&mut cache, "/pacer/spec/nodes/a", &node("a", 20), 5);
        put(&mut cache, "/pacer/spec/nodes/b", &node("b", 10), 6);
        let heartbeat = r#"{"node":"a","pid":1,"host":"h","started":0,"leaseTtlMs":5000,"probed":true}"#;
        put(&mut cache, "/pacer/nodes/a/lease", heartbeat, 7);
        let held = build(&cache, BuildOptions { now: 100, hold_unseen: true }).expect("ready");
        assert_eq!(held.snapshot.objects.iter().map(|object| object.name().as_str().to_string()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(held.snapshot.observed.nodes["a"].liveness, NodeLiveness::Online);
        assert_eq!(held.snapshot.observed.nodes["b"].liveness, NodeLiveness::Pending);
        assert_eq!((held.revision, held.snapshot.now), (7, 100));
        let plain = build(&cache, BuildOptions { now: 100, hold_unseen: false }).expect("ready");
        assert!(!plain.snapshot.observed.nodes.contains_key("b"));
    }

    #[test]
    fn nothing_is_built_on_a_pending_apply() {
        let mut cache = ClusterCache::new(Keys::new("/pacer"));
        put(&mut cache, "/pacer/intents/7-x/commit", "{}", 3);
        assert_eq!(build(&cache, BuildOptions::default()).err(), Some(NotReady::IntentPending("7-x".into())));
    }
}
