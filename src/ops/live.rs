//! The live cluster as the verbs read it: once, at one revision (`Live::read`), or
//! followed by a watch (`Follower`), both through `runtime`'s cache and its one
//! snapshot builder.

use std::time::Duration;

use crate::runtime::{BuildOptions, ClusterCache, Informer, LiveSnapshot, NotReady, Scope, build, load};
use crate::scheduler::{Plan, schedule};
use crate::store::Store;
use crate::store::watch::WatchEvent;

use super::{OpsError, now_secs};

/// The cluster read at one revision, and its snapshot.
pub struct Live {
    pub cache: ClusterCache,
    pub live: LiveSnapshot,
}

impl Live {
    /// Reads everything under the prefix at one revision and builds the snapshot the
    /// scheduler would. A large apply committed but not rolled forward (its writer
    /// died) is finished first (`list_objects` does that), then the cluster is read again.
    pub async fn read(store: &Store) -> Result<Live, OpsError> {
        let options = BuildOptions { now: now_secs(), hold_unseen: false };
        let mut cache = load(store).await?;
        for _ in 0..10 {
            match build(&cache, options) {
                Ok(live) => return Ok(Live { cache, live }),
                Err(NotReady::IntentPending(_)) => {
                    store.list_objects().await?;
                    cache = load(store).await?;
                }
            }
        }
        Err(OpsError::NotReached("a large apply is still being rolled forward; try again".to_string()))
    }

    /// The decision the scheduler would make now.
    pub fn plan(&self) -> Plan {
        schedule(&self.live.snapshot)
    }
}

/// The cluster followed by one watch of the whole prefix: for `wait`, `status
/// --watch` and every verb's `--wait`.
pub struct Follower {
    informer: Informer,
    cache: ClusterCache,
}

impl Follower {
    /// Starts the watch and returns once its first listing is in.
    pub async fn start(store: &Store) -> Result<Follower, OpsError> {
        Follower::start_with(store, ClusterCache::new(store.keys().clone())).await
    }

    /// `start`, keeping only what shows where `scope`'s family runs
    /// (`ClusterCache::scoped`): for a wait on one resource.
    pub async fn start_scoped(store: &Store, scope: Scope) -> Result<Follower, OpsError> {
        Follower::start_with(store, ClusterCache::scoped(store.keys().clone(), scope)).await
    }

    async fn start_with(store: &Store, cache: ClusterCache) -> Result<Follower, OpsError> {
        let prefix = format!("{}/", store.keys().prefix());
        let informer = Informer::start(store, vec![prefix]);
        let mut follower = Follower { informer, cache };
        loop {
            let event = follower.next_event().await?;
            let restarted = matches!(event, WatchEvent::Restarted { .. });
            follower.cache.apply_event(&event);
            if restarted {
                return Ok(follower);
            }
        }
    }

    async fn next_event(&mut self) -> Result<WatchEvent, OpsError> {
        match self.informer.events.recv().await {
            Some(event) => Ok(event?),
            None => Err(OpsError::NotReached("the watch of the cluster ended".to_string())),
        }
    }

    /// Waits for the next change (at most `limit`), then applies every event already
    /// queued, so the cache is at the latest revision seen. Returns false on timeout.
    pub async fn changed(&mut self, limit: Duration) -> Result<bool, OpsError> {
        let event = match tokio::time::timeout(limit, self.next_event()).await {
            Ok(event) => event?,
            Err(_) => return Ok(false),
        };
        self.cache.apply_event(&event);
        while let Ok(event) = self.informer.events.try_recv() {
            self.cache.apply_event(&event?);
        }
        Ok(true)
    }

    pub fn cache(&self) -> &ClusterCache {
        &self.cache
    }

    /// The snapshot at the cache's revision, or None while a large apply is rolled forward.
    pub fn snapshot(&self) -> Option<LiveSnapshot> {
        build(&self.cache, BuildOptions { now: now_secs(), hold_unseen: false }).ok()
    }
}
