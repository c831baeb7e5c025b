//! List + watch of a key prefix, as kube-runtime's watcher does it: list at a
//! revision, watch from the next one, resume from the last seen revision after a
//! disconnect, and relist when that revision was compacted away. A `Reflector` keeps
//! the resulting view in memory, updated by a synchronous `apply_event`.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};

use super::StoreError;

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
    fn from_kv(kv: &etcd_client::KeyValue) -> Entry {
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
    /// A full listing at `revision`: replaces everything known so far. Sent first, and
    /// again whenever the watch had to start over (its revision was compacted).
    Restarted { revision: i64, entries: Vec<Entry> },
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
    client: Client,
    prefix: String,
    /// The revision everything up to which has been delivered.
    revision: i64,
    state: State,
    pending: std::collections::VecDeque<WatchEvent>,
    failures: u32,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl PrefixWatcher {
    pub fn new(client: Client, prefix: impl Into<String>) -> PrefixWatcher {
        PrefixWatcher { client, prefix: prefix.into(), revision: 0, state: State::NeedsList, pending: Default::default(), failures: 0 }
    }

    /// Starts from `revision` instead of listing: the first events are the changes
    /// after it (or a `Restarted` if it was compacted).
    pub fn from_revision(client: Client, prefix: impl Into<String>, revision: i64) -> PrefixWatcher {
        let mut watcher = PrefixWatcher::new(client, prefix);
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
                let response = self
                    .client
                    .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix()))
                    .await
                    .map_err(StoreError::etcd(format!("list {}", self.prefix)))?;
                let revision = response.header().map(|header| header.revision()).unwrap_or_default();
                let entries = response.kvs().iter().map(Entry::from_kv).collect();
                self.revision = revision;
                self.pending.push_back(WatchEvent::Restarted { revision, entries });
                self.state = State::NeedsWatch;
            }
            State::NeedsWatch => {
                let options = WatchOptions::new().with_prefix().with_start_revision(self.revision + 1).with_progress_notify();
                let stream = self.client.watch(self.prefix.as_str(), Some(options)).await.map_err(StoreError::etcd(format!("watch {}", self.prefix)))?;
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

/// An in-memory copy of a prefix, fed by watch events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reflector {
    entries: BTreeMap<String, Entry>,
    revision: i64,
}

impl Reflector {
    /// Applies one event. Events older than what is known (a replay after a resume)
    /// change nothing.
    pub fn apply_event(&mut self, event: &WatchEvent) {
        match event {
            WatchEvent::Restarted { revision, entries } => {
                self.entries = entries.iter().map(|entry| (entry.key.clone(), entry.clone())).collect();
                self.revision = *revision;
            }
            WatchEvent::Put(entry) => {
                let newer = self.entries.get(&entry.key).is_none_or(|known| known.mod_revision < entry.mod_revision);
                if newer {
                    self.entries.insert(entry.key.clone(), entry.clone());
                }
                self.revision = self.revision.max(entry.mod_revision);
            }
            WatchEvent::Deleted { key, revision } => {
                if self.entries.get(key).is_some_and(|known| known.mod_revision < *revision) {
                    self.entries.remove(key);
                }
                self.revision = self.revision.max(*revision);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The revision the copy is current to.
    pub fn revision(&self) -> i64 {
        self.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, revision: i64) -> Entry {
        Entry { key: key.into(), value: value.as_bytes().to_vec(), mod_revision: revision, create_revision: revision, lease: 0 }
    }

    #[test]
    fn reflector_follows_puts_deletes_and_restarts() {
        let mut reflector = Reflector::default();
        reflector.apply_event(&WatchEvent::Restarted { revision: 5, entries: vec![entry("/a", "1", 3), entry("/b", "2", 4)] });
        assert_eq!((reflector.len(), reflector.revision()), (2, 5));
        reflector.apply_event(&WatchEvent::Put(entry("/a", "updated", 6)));
        reflector.apply_event(&WatchEvent::Deleted { key: "/b".into(), revision: 7 });
        assert_eq!(reflector.get("/a").map(|e| e.value.as_slice()), Some(&b"updated"[..]));
        assert!(reflector.get("/b").is_none());
        assert_eq!(reflector.revision(), 7);
        reflector.apply_event(&WatchEvent::Restarted { revision: 20, entries: vec![entry("/c", "3", 19)] });
        assert_eq!(reflector.entries().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["/c"]);
    }

    #[test]
    fn replayed_events_do_not_roll_the_copy_back() {
        let mut reflector = Reflector::default();
        reflector.apply_event(&WatchEvent::Put(entry("/a", "new", 9)));
        reflector.apply_event(&WatchEvent::Put(entry("/a", "old", 8)));
        reflector.apply_event(&WatchEvent::Deleted { key: "/a".into(), revision: 7 });
        assert_eq!(reflector.get("/a").map(|e| e.value.as_slice()), Some(&b"new"[..]));
    }
}
