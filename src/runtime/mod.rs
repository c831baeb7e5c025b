//! The runtime layer (DESIGN.md's `runtime`): how a component follows the cluster.
//! A watch pump (`Informer`: `store::watch::PrefixWatcher`s feeding one channel) →
//! the typed reflector (`cache::ClusterCache`, updated by a synchronous
//! `apply_event`) → the one snapshot builder (`snapshot::build`). The scheduler daemon
//! and the node agent follow their caches; `pacer status` loads one at a single
//! revision (`load`).
//!
//! Architecture invariant: the cache and the builder do no IO; the pump and `load`
//! reach etcd only through `store`.

pub mod cache;
pub mod scope;
pub mod share;
pub mod snapshot;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::watch::{PrefixWatcher, WatchEvent};
use crate::store::{Store, StoreError};

pub use cache::{Changes, ClusterCache};
pub use scope::Scope;
pub use share::SharedDecodes;
pub use snapshot::{BuildOptions, LiveSnapshot, NotReady, build};

/// Microseconds since the epoch by this host's clock: the time events are stamped
/// with (by the agents, the leader and commands alike).
pub fn now_usec() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
}

/// Events of one or more prefix watches, in one channel. The first event of each
/// prefix is its listing (`WatchEvent::Restarted`); an error is a failed attempt (the
/// watch resumes by itself). Dropping the informer ends its watches.
///
/// The channel is unbounded: a watch is always read as fast as etcd sends it. With a
/// bounded one, a consumer that waits for an etcd answer while its channel is full
/// leaves its watch data unread in the HTTP/2 connection, whose flow-control window
/// is shared by every stream on it; once the unread data fills that window, the
/// answer itself can no longer arrive, and the consumer waits for ever (issue 18: 100
/// hollow nodes sharing a connection all stopped, idle, after an apply of 10,000
/// resources). The queue holds what etcd sent and the consumer has yet to take in;
/// a consumer that stops taking in (a `pacer status --watch` whose terminal is
/// paused) lets it grow while that lasts.
pub struct Informer {
    tasks: Vec<JoinHandle<()>>,
    pub events: mpsc::UnboundedReceiver<Result<WatchEvent, StoreError>>,
}

impl Informer {
    /// Follows every prefix given. One prefix gives a cache at one revision; several
    /// give each its own (a node agent follows only what it needs).
    pub fn start(store: &Store, prefixes: Vec<String>) -> Informer {
        let (sender, events) = mpsc::unbounded_channel();
        let tasks = prefixes
            .into_iter()
            .map(|prefix| {
                let sender = sender.clone();
                let mut watcher = PrefixWatcher::new(store, prefix);
                tokio::spawn(async move {
                    loop {
                        let event = watcher.next().await;
                        if sender.send(event).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Informer { tasks, events }
    }
}

impl Informer {
    /// Ends the watches now (dropping the informer does too).
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The `Scope` of the resource `name` as the stored spec has it now: reads the
/// groups only (a handful of keys, where the resources are thousands).
pub async fn read_scope(store: &Store, name: &str) -> Result<Scope, StoreError> {
    let groups = format!("{}{}/", store.keys().spec_prefix(), crate::api::Kind::Group.plural());
    let (_, entries) = store.list_prefix(&groups, None).await?;
    // A group that does not decode is no family of anything here: the follower's
    // snapshot, which `wait` checks the name against, does not hold it either.
    let objects: Vec<_> = entries.iter().filter_map(|entry| store.decode_object(&entry.key, &entry.value, entry.mod_revision).ok()).collect();
    Ok(Scope::of(&objects, name))
}

/// Everything under the prefix at one revision, read in pages: what a one-shot
/// command (`pacer status`) builds its snapshot from.
pub async fn load(store: &Store) -> Result<ClusterCache, StoreError> {
    let prefix = format!("{}/", store.keys().prefix());
    let (revision, entries) = store.list_prefix(&prefix, None).await?;
    let mut cache = ClusterCache::new(store.keys().clone());
    cache.apply_event(&WatchEvent::Restarted { prefix, revision, entries });
    Ok(cache)
}
