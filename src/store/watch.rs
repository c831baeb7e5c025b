//! List + watch of a key prefix, as kube-runtime's watcher does it: list at a
//! revision (in pages, all at that revision), watch from the next one, resume from the
//! last seen revision after a disconnect, and relist when that revision was compacted
//! away. `runtime::cache::ClusterCache` keeps the resulting view in memory, updated by
//! a synchronous `apply_event`.

use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream};

use super::{Store, StoreError};

/// A key and its value as last written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub create_revision: i64,
    /// The lease the key is attached to (0 for none).
    pub lease: i64,
}

impl Entry {
    pub(crate) fn from_kv(kv: &etcd_client::KeyValue) -> Entry {
        Entry {
            key: String::from_utf8_lossy(kv.key()).to_string(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
            lease: kv.lease(),
        }
    }
}

/// What happened under the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A full listing of `prefix` at `revision`: replaces everything known under it.
    /// Sent first, and again whenever the watch had to start over (its revision was
    /// compacted).
    Restarted { prefix: String, revision: i64, entries: Vec<Entry> },
    /// A key was created or changed.
    Put(Entry),
    /// A key was deleted (or its lease expired) at `revision`.
    Deleted { key: String, revision: i64 },
}

enum State {
    NeedsList,
    NeedsWatch,
    Watching(Box<WatchStream>),
}

/// Follows every change under a prefix, across disconnects and compactions.
pub struct PrefixWatcher {
    store: Store,
    prefix: String,
    /// The revision everything up to which has been delivered.
    revision: i64,
    state: State,
    pending: std::collections::VecDeque<WatchEvent>,
    failures: u32,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl PrefixWatcher {
    pub fn new(store: &Store, prefix: impl Into<String>) -> PrefixWatcher {
        PrefixWatcher { store: store.clone(), prefix: prefix.into(), revision: 0, state: State::NeedsList, pending: Default::default(), failures: 0 }
    }

    /// Starts from `revision` instead of listing: the first events are the changes
    /// after it (or a `Restarted` if it was compacted).
    pub fn from_revision(store: &Store, prefix: impl Into<String>, revision: i64) -> PrefixWatcher {
        let mut watcher = PrefixWatcher::new(store, prefix);
        watcher.revision = revision;
        watcher.state = State::NeedsWatch;
        watcher
    }

    /// The revision up to which events have been delivered.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The next event. An error is returned for each failed attempt to reach etcd
    /// (after a growing pause); calling again resumes where the watch left off.
    pub async fn next(&mut self) -> Result<WatchEvent, StoreError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            match self.step().await {
                Ok(()) => self.failures = 0,
                Err(error) => {
                    self.failures = self.failures.saturating_add(1);
                    let backoff = Duration::from_millis(50u64.saturating_mul(1 << self.failures.min(6))).min(MAX_BACKOFF);
                    tokio::time::sleep(backoff).await;
                    return Err(error);
                }
            }
        }
    }

    async fn step(&mut self) -> Result<(), StoreError> {
        match &mut self.state {
            State::NeedsList => {
                let (revision, entries) = self.store.list_prefix(&self.prefix, None).await?;
                self.revision = revision;
                self.pending.push_back(WatchEvent::Restarted { prefix: self.prefix.clone(), revision, entries });
                self.state = State::NeedsWatch;
            }
            State::NeedsWatch => {
                let options = WatchOptions::new().with_prefix().with_start_revision(self.revision + 1).with_progress_notify();
                let stream =
                    self.store.watch_client().watch(self.prefix.as_str(), Some(options)).await.map_err(StoreError::etcd(format!("watch {}", self.prefix)))?;
                self.state = State::Watching(Box::new(stream));
            }
            State::Watching(stream) => {
                let message = stream.message().await;
                let response = match message {
                    Ok(Some(response)) => response,
                    Ok(None) => {
                        self.state = State::NeedsWatch;
                        return Err(StoreError::Etcd {
                            action: format!("watch {}", self.prefix),
                            source: etcd_client::Error::WatchError("stream ended".into()),
                        });
                    }
                    Err(source) => {
                        self.state = State::NeedsWatch;
                        return Err(StoreError::Etcd { action: format!("watch {}", self.prefix), source });
                    }
                };
                if response.compact_revision() > 0 {
                    tracing::info!(prefix = %self.prefix, revision = self.revision, compacted = response.compact_revision(), "watch revision compacted; listing again");
                    self.state = State::NeedsList;
                    return Ok(());
                }
                if response.canceled() {
                    self.state = State::NeedsWatch;
                    return Err(StoreError::Etcd {
                        action: format!("watch {}", self.prefix),
                        source: etcd_client::Error::WatchError(format!("canceled: {}", response.cancel_reason())),
                    });
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let entry = Entry::from_kv(kv);
                    self.revision = self.revision.max(entry.mod_revision);
                    self.pending.push_back(match event.event_type() {
                        EventType::Put => WatchEvent::Put(entry),
                        EventType::Delete => WatchEvent::Deleted { key: entry.key, revision: entry.mod_revision },
                    });
                }
                // Progress notifications carry no events but a newer header revision:
                // nothing happened under the prefix up to it.
                if response.events().is_empty()
                    && let Some(header) = response.header()
                    && !response.created()
                {
                    self.revision = self.revision.max(header.revision());
                }
            }
        }
        Ok(())
    }
}
