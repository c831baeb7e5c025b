//! `ClusterCache`: the typed reflector of everything under the prefix. Watch events
//! (`store::watch`) go in through a synchronous `apply_event`; decoded records come
//! out, by section of the key layout. One bad value is skipped and remembered
//! (`undecodable`), never fatal: a value that does not decode, and a record whose
//! body disagrees with its key (a status of n1 under n2's prefix, a heartbeat of n1
//! under n3's lease key, a fencing result under another node than the one that ran
//! it) or whose key names an invalid node. The daemon, `pacer status` and the node agent all
//! read the cluster through it, and `runtime::snapshot` turns it into the scheduler's
//! input.
//!
//! Architecture invariant: no IO. What a key means is `store::keys::Section`'s;
//! what a record means is `state`'s and the scheduler's.
//!
//! Architecture invariant: the key decides, never the body. Every record a reader
//! gets from here agrees with the key it is stored under (node, id, target,
//! executor): with per-node write rights in etcd, a node can then only speak of
//! itself, whatever it writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::api::records::{
    FenceAnswerRecord, FenceHistoryRecord, FenceRequestRecord, FenceResultRecord, Leader, NodeActivity, NodeAssignment, NodeAttributeRecord, NodeHeartbeat,
    Reports, RequestRecord, ResourceStatus,
};
use crate::api::{Name, Object, ObjectKey};
use crate::runtime::SharedDecodes;
use crate::runtime::scope::Scope;
use crate::store::keys::Section;
use crate::store::watch::{Entry, WatchEvent};
use crate::store::{Keys, StoredObject, decode_object};

/// The election key as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct ElectionHolder {
    pub leader: Leader,
    /// The key's create revision: the leader's term.
    pub term: i64,
    pub lease: i64,
}

/// A node's heartbeat and the lease that holds its key.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatEntry {
    pub heartbeat: NodeHeartbeat,
    pub lease: i64,
}

/// A fencing result with the revision it was written at: of a target's results (from
/// several executors, and a confirmation), the latest by revision stands.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFenceResult {
    pub result: FenceResultRecord,
    pub revision: i64,
}

/// The answer the leader accepted for a target, with the revision it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFenceAnswer {
    pub answer: FenceAnswerRecord,
    pub revision: i64,
}

/// What an event changed, so a follower can tell whether it matters to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything under a prefix was replaced (a first listing or a relist).
    pub restarted: bool,
    pub sections: Vec<Section>,
    /// Keys whose value this event brought does not decode (skipped, and named in
    /// `ClusterCache::undecodable`): for the follower to report, once per value.
    pub undecodable: Vec<String>,
}

impl Changes {
    /// Whether anything but the given kinds of section changed: `ignore` says which
    /// are the follower's own writes or of no interest to it.
    pub fn any(&self, relevant: impl Fn(&Section) -> bool) -> bool {
        self.restarted || self.sections.iter().any(relevant)
    }
}

/// The typed copy of the cluster's keys.
#[derive(Clone, Debug)]
pub struct ClusterCache {
    keys: Keys,
    /// The revision the copy is current to (the highest seen).
    revision: i64,
    /// The highest revision the watch delivered (`watched_revision`).
    watched: i64,
    /// The mod revision of every key held, so a replayed or older event changes
    /// nothing.
    known: HashMap<String, i64>,
    /// Keys this process deleted itself (`apply_write`), at the deletion's revision,
    /// until the watch delivers the deletion: an earlier put's echo arriving meanwhile
    /// must not bring the key back.
    deleted: HashMap<String, i64>,
    /// Prefixes this process deleted (`forget_reports`), at the deletion's revision:
    /// an agent's put from before it, still on its way, must not bring a key back.
    deleted_prefixes: BTreeMap<String, i64>,
    objects: BTreeMap<ObjectKey, StoredObject>,
    spec_version: i64,
    /// When the spec last changed (the spec-version key's value says), seconds since
    /// the epoch.
    spec_changed_at: Option<i64>,
    committed_intents: BTreeSet<String>,
    /// Whether the version key held says the change it closes is whole (`direct`, or
    /// a large apply's `finish`; not its `commit`). `None`: no version key held.
    version_settled: Option<bool>,
    /// Whether an object changed after the version key last did: a change's objects
    /// come before its version on the watch, so the spec held is half of one until
    /// the version arrives.
    objects_after_version: bool,
    heartbeats: BTreeMap<String, HeartbeatEntry>,
    activities: BTreeMap<String, NodeActivity>,
    /// Shared, not copied, with whoever keeps them too: an agent's `ClusterStatuses`
    /// holds the same statuses (issue 18: every status of the cluster was held twice
    /// by every agent).
    statuses: BTreeMap<(String, String), Arc<ResourceStatus>>,
    attributes: BTreeMap<String, BTreeMap<String, NodeAttributeRecord>>,
    plans: BTreeMap<String, NodeAssignment>,
    election: Option<ElectionHolder>,
    history: BTreeSet<i64>,
    fence_requests: BTreeMap<String, FenceRequestRecord>,
    /// By target: `fencing/<target>/answer`, the leader's.
    fence_answers: BTreeMap<String, StoredFenceAnswer>,
    /// By (target, request id): `fence-history/<target>/<id>`, the leader's.
    fence_history: BTreeMap<(String, i64), FenceHistoryRecord>,
    /// By (executor, target): `fence-results/<executor>/<target>`.
    fence_results: BTreeMap<(String, String), StoredFenceResult>,
    /// By target: `fence-confirmations/<target>`.
    fence_confirmations: BTreeMap<String, StoredFenceResult>,
    /// Cleanups and refreshes asked of the nodes' agents, by (node, id).
    requests: BTreeMap<(String, String), RequestRecord>,
    /// Keys whose value did not decode, with the reason.
    undecodable: BTreeMap<String, String>,
    /// The decoded objects and statuses of the other caches of this process
    /// (`with_shared`): `None`, a copy of its own.
    shared: Option<Arc<SharedDecodes>>,
    /// What a cache that follows one resource keeps (`scoped`); `None`: everything.
    scope: Option<Scope>,
    /// A scoped cache's statuses of resources outside its scope, not decoded: the
    /// node each key names, by key.
    other_statuses: HashMap<String, String>,
}

impl ClusterCache {
    pub fn new(keys: Keys) -> ClusterCache {
        ClusterCache {
            keys,
            revision: 0,
            watched: 0,
            known: HashMap::new(),
            deleted: HashMap::new(),
            deleted_prefixes: BTreeMap::new(),
            objects: BTreeMap::new(),
            spec_version: 0,
            spec_changed_at: None,
            committed_intents: BTreeSet::new(),
            version_settled: None,
            objects_after_version: false,
            heartbeats: BTreeMap::new(),
            activities: BTreeMap::new(),
            statuses: BTreeMap::new(),
            attributes: BTreeMap::new(),
            plans: BTreeMap::new(),
            election: None,
            history: BTreeSet::new(),
            fence_requests: BTreeMap::new(),
            fence_answers: BTreeMap::new(),
            fence_history: BTreeMap::new(),
            fence_results: BTreeMap::new(),
            fence_confirmations: BTreeMap::new(),
            requests: BTreeMap::new(),
            undecodable: BTreeMap::new(),
            shared: None,
            scope: None,
            other_statuses: HashMap::new(),
        }
    }

    /// A cache that holds one copy of each object and status with the other caches
    /// of this process that share `shared` (the agents of `pacer hollow`).
    pub fn with_shared(keys: Keys, shared: Arc<SharedDecodes>) -> ClusterCache {
        ClusterCache { shared: Some(shared), ..ClusterCache::new(keys) }
    }

    /// A cache that keeps only what the snapshot builder needs to show where `scope`'s
    /// family runs (`Scope`): the other resources' objects and statuses, and the
    /// nodes' plans, are not decoded or held, as if absent — but for the node each
    /// such status names, which `reports` counts as seen.
    pub fn scoped(keys: Keys, scope: Scope) -> ClusterCache {
        ClusterCache { scope: Some(scope), ..ClusterCache::new(keys) }
    }

    /// Whether this cache keeps what `section` names (`scoped`).
    fn keeps(&self, section: &Section) -> bool {
        match (&self.scope, section) {
            (None, _) => true,
            (Some(scope), Section::Object(key)) => scope.keeps_object(key),
            (Some(scope), Section::Status { id, .. }) => scope.keeps_status(id),
            (Some(_), Section::Plan(_)) => false,
            (Some(_), _) => true,
        }
    }

    /// Applies one watch event. Events older than what is known (a replay after a
    /// resume, or the echo of a write already applied with `apply_write`) change
    /// nothing.
    pub fn apply_event(&mut self, event: &WatchEvent) -> Changes {
        let mut changes = Changes::default();
        match event {
            WatchEvent::Restarted { prefix, revision, entries } => {
                // Keys written by this process after the listing was taken stay: the
                // listing is older than they are.
                let listed: std::collections::HashSet<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
                let stale: Vec<String> = self
                    .known
                    .iter()
                    .filter(|(key, known)| key.starts_with(prefix.as_str()) && **known <= *revision && !listed.contains(key.as_str()))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in stale {
                    self.remove(&key);
                    self.undecodable.remove(&key);
                }
                // An unchanged key keeps its mark: a value that did not decode still
                // does not (and a follower keeps acting on that).
                self.deleted.retain(|key, deleted| !key.starts_with(prefix.as_str()) || *deleted > *revision);
                self.other_statuses.retain(|key, _| !key.starts_with(prefix.as_str()));
                self.deleted_prefixes.retain(|deleted, at| !deleted.starts_with(prefix.as_str()) || *at > *revision);
                for entry in entries {
                    if !self.is_newer(&entry.key, entry.mod_revision) {
                        continue;
                    }
                    self.insert(entry);
                    if self.undecodable.contains_key(&entry.key) {
                        changes.undecodable.push(entry.key.clone());
                    }
                }
                // A listing is one revision: whatever of the spec it holds is whole.
                if self.keys.spec_prefix().starts_with(prefix.as_str()) {
                    self.objects_after_version = false;
                }
                self.revision = self.revision.max(*revision);
                self.watched = self.watched.max(*revision);
                changes.restarted = true;
            }
            WatchEvent::Put(entry) => {
                if self.is_newer(&entry.key, entry.mod_revision)
                    && let Some(section) = self.insert(entry)
                {
                    self.objects_after_version |= matches!(section, Section::Object(_));
                    changes.sections.push(section);
                    if self.undecodable.contains_key(&entry.key) {
                        changes.undecodable.push(entry.key.clone());
                    }
                }
                self.revision = self.revision.max(entry.mod_revision);
                self.watched = self.watched.max(entry.mod_revision);
            }
            WatchEvent::Deleted { key, revision } => {
                // The echo of this process's own deletion: the key is settled.
                if self.deleted.get(key).is_some_and(|deleted| *deleted <= *revision) {
                    self.deleted.remove(key);
                }
                self.other_statuses.remove(key);
                let held = self.known.get(key).is_some_and(|known| *known < *revision);
                let bad = self.undecodable.remove(key).is_some();
                if held && let Some(section) = self.remove(key) {
                    self.objects_after_version |= matches!(section, Section::Object(_));
                    changes.sections.push(section);
                } else if bad && let Some(section) = self.keys.section(key) {
                    changes.sections.push(section);
                }
                self.revision = self.revision.max(*revision);
                self.watched = self.watched.max(*revision);
            }
        }
        changes
    }

    /// Applies a write this process made itself and etcd acknowledged at `revision`,
    /// before its watch event arrives (which then changes nothing): a follower that
    /// writes and then reads its own cache sees its write. Not for keys whose create
    /// revision or lease matter (the election key, heartbeats): their watch event,
    /// with the same revision, would be taken for an echo and those kept wrong.
    pub fn apply_write(&mut self, key: &str, value: Option<&[u8]>, revision: i64) {
        if matches!(self.keys.section(key), Some(Section::Election | Section::Heartbeat(_))) {
            debug_assert!(false, "apply_write of {key}: its create revision and lease come only from etcd");
            return;
        }
        // Not from the watch: what came before it on the watch may still be on its way.
        let watched = self.watched;
        match value {
            Some(value) => {
                self.apply_event(&WatchEvent::Put(Entry {
                    key: key.to_string(),
                    value: value.to_vec(),
                    mod_revision: revision,
                    create_revision: revision,
                    lease: 0,
                }));
            }
            None => {
                self.apply_event(&WatchEvent::Deleted { key: key.to_string(), revision });
                // After applying: the tombstone waits for the deletion's echo.
                self.deleted.insert(key.to_string(), revision);
            }
        }
        self.watched = watched;
    }

    /// Whether a value written at `revision` is newer than what is known of `key`
    /// (held, or deleted by this process).
    fn is_newer(&self, key: &str, revision: i64) -> bool {
        self.known.get(key).is_none_or(|known| *known < revision)
            && self.deleted.get(key).is_none_or(|deleted| *deleted < revision)
            && self.deleted_prefixes.iter().all(|(prefix, deleted)| !key.starts_with(prefix.as_str()) || *deleted < revision)
    }

    /// Applies the deletion of everything a node reported (statuses, run-time
    /// attributes), acknowledged at `revision`: `Store::forget_node_reports`.
    pub fn forget_reports(&mut self, node: &str, revision: i64) {
        let prefixes = [self.keys.node_statuses_prefix(node), self.keys.node_attributes_prefix(node)];
        let keys: Vec<String> = self.known.keys().filter(|key| prefixes.iter().any(|prefix| key.starts_with(prefix.as_str()))).cloned().collect();
        // This process's own deletion, not the watch's (`watched_revision`).
        let watched = self.watched;
        for key in keys {
            self.apply_event(&WatchEvent::Deleted { key, revision });
        }
        self.watched = watched;
        for prefix in prefixes {
            let at = self.deleted_prefixes.entry(prefix).or_default();
            *at = (*at).max(revision);
        }
    }

    fn insert(&mut self, entry: &Entry) -> Option<Section> {
        let section = self.keys.section(&entry.key)?;
        if !self.keeps(&section) {
            if let Section::Status { node, .. } = &section
                && Name::is_valid(node)
            {
                self.other_statuses.insert(entry.key.clone(), node.clone());
            }
            return None;
        }
        self.undecodable.remove(&entry.key);
        // A key whose new value does not decode loses its old one too: acting on a
        // value the writer has replaced would be acting on a lie.
        self.remove(&entry.key);
        self.known.insert(entry.key.clone(), entry.mod_revision);
        let decoded = match Self::trusted_key(&section) {
            Err(reason) => Err(reason),
            Ok(()) => self.insert_record(&section, entry),
        };
        // Reported by the follower (`Changes::undecodable`), not here: `pacer status`
        // names it on stderr, where a log line would say it twice.
        if let Err(reason) = decoded {
            tracing::debug!(key = %entry.key, %reason, "skipping a stored value that does not decode or disagrees with its key");
            self.undecodable.insert(entry.key.clone(), reason);
        }
        Some(section)
    }

    /// Whether the names a key carries are valid (a node's, a status id's): a key
    /// with another shape is no record of Pacer's to act on.
    fn trusted_key(section: &Section) -> Result<(), String> {
        let nodes: Vec<&str> = match section {
            Section::Heartbeat(node)
            | Section::Activity(node)
            | Section::Plan(node)
            | Section::FenceRequest(node)
            | Section::FenceAnswer(node)
            | Section::FenceHistory { target: node, .. }
            | Section::FenceConfirmation(node) => {
                vec![node]
            }
            Section::Attribute { node, .. } | Section::Request { node, .. } => vec![node],
            Section::Status { node, id } => {
                let (name, _) = crate::api::names::split_instance(id);
                if !Name::is_valid(name) {
                    return Err(format!("its key names an invalid resource id {id:?}"));
                }
                vec![node]
            }
            Section::FenceResult { executor, target } => vec![executor, target],
            _ => Vec::new(),
        };
        match nodes.into_iter().find(|node| !Name::is_valid(node)) {
            Some(node) => Err(format!("its key names an invalid node {node:?}")),
            None => Ok(()),
        }
    }

    /// Decodes and keeps one record; `Err` with the reason when its value does not
    /// decode or its body disagrees with its key.
    fn insert_record(&mut self, section: &Section, entry: &Entry) -> Result<(), String> {
        match section {
            Section::Object(_) => {
                let decode = || decode_object(&self.keys, &entry.key, &entry.value, entry.mod_revision).map_err(|error| error.reason());
                let object = match &self.shared {
                    Some(shared) => shared.object(&entry.key, entry.mod_revision, &entry.value, decode)?,
                    None => Arc::new(decode()?),
                };
                self.objects.insert(object.key(), StoredObject { object, mod_revision: entry.mod_revision });
                Ok(())
            }
            Section::SpecVersion => {
                self.spec_version = entry.mod_revision;
                self.spec_changed_at = crate::store::apply::spec_changed_at(&entry.value);
                self.version_settled = Some(!crate::store::apply::spec_version_is_commit(&entry.value));
                self.objects_after_version = false;
                Ok(())
            }
            Section::IntentCommit(id) => {
                self.committed_intents.insert(id.clone());
                Ok(())
            }
            Section::IntentChunk => Ok(()),
            Section::Heartbeat(node) => {
                let heartbeat = decode::<NodeHeartbeat>(&entry.value)?;
                agree("node", &heartbeat.node, node)?;
                self.heartbeats.insert(node.clone(), HeartbeatEntry { heartbeat, lease: entry.lease });
                Ok(())
            }
            Section::Activity(node) => {
                let activity = decode::<NodeActivity>(&entry.value)?;
                agree("node", &activity.node, node)?;
                self.activities.insert(node.clone(), activity);
                Ok(())
            }
            Section::Status { node, id } => {
                let decode = || {
                    let mut status = decode::<ResourceStatus>(&entry.value)?;
                    agree("node", &status.node, node)?;
                    agree("id", &status.id, id)?;
                    // Decoding leaves room for four records; every copy held counts.
                    status.history.shrink_to_fit();
                    Ok::<_, String>(status)
                };
                let status = match &self.shared {
                    Some(shared) => shared.status(&entry.key, entry.mod_revision, &entry.value, decode)?,
                    None => Arc::new(decode()?),
                };
                self.statuses.insert((node.clone(), id.clone()), status);
                Ok(())
            }
            Section::Attribute { node, name } => decode::<NodeAttributeRecord>(&entry.value).map(|record| {
                self.attributes.entry(node.clone()).or_default().insert(name.clone(), record);
            }),
            Section::Plan(node) => {
                let assignment = decode::<NodeAssignment>(&entry.value)?;
                agree("node", &assignment.node, node)?;
                self.plans.insert(node.clone(), assignment);
                Ok(())
            }
            Section::Election => decode::<Leader>(&entry.value).map(|leader| {
                self.election = Some(ElectionHolder { leader, term: entry.create_revision, lease: entry.lease });
            }),
            Section::History(revision) => {
                self.history.insert(*revision);
                Ok(())
            }
            Section::FenceRequest(target) => {
                let request = decode::<FenceRequestRecord>(&entry.value)?;
                agree("target", &request.target, target)?;
                if !Name::is_valid(&request.executor) {
                    return Err(format!("it names an invalid executor {:?}", request.executor));
                }
                self.fence_requests.insert(target.clone(), request);
                Ok(())
            }
            Section::FenceAnswer(target) => {
                let answer = decode::<FenceAnswerRecord>(&entry.value)?;
                agree("target", &answer.result.target, target)?;
                self.fence_answers.insert(target.clone(), StoredFenceAnswer { answer, revision: entry.mod_revision });
                Ok(())
            }
            Section::FenceHistory { target, id } => {
                let record = decode::<FenceHistoryRecord>(&entry.value)?;
                agree("target", &record.target, target)?;
                if record.id != *id {
                    return Err(format!("it names request {} under the key of request {id}", record.id));
                }
                self.fence_history.insert((target.clone(), *id), record);
                Ok(())
            }
            Section::FenceResult { executor, target } => {
                let result = decode::<FenceResultRecord>(&entry.value)?;
                agree("target", &result.target, target)?;
                agree("executor", &result.by, executor)?;
                self.fence_results.insert((executor.clone(), target.clone()), StoredFenceResult { result, revision: entry.mod_revision });
                Ok(())
            }
            Section::FenceConfirmation(target) => {
                let result = decode::<FenceResultRecord>(&entry.value)?;
                agree("target", &result.target, target)?;
                if !result.succeeded {
                    return Err("a confirmation that is not a success".to_string());
                }
                self.fence_confirmations.insert(target.clone(), StoredFenceResult { result, revision: entry.mod_revision });
                Ok(())
            }
            Section::Request { node, id } => decode::<RequestRecord>(&entry.value).map(|request| {
                self.requests.insert((node.clone(), id.clone()), request);
            }),
        }
    }

    fn remove(&mut self, key: &str) -> Option<Section> {
        self.known.remove(key)?;
        let section = self.keys.section(key)?;
        match &section {
            Section::Object(object) => {
                self.objects.remove(object);
            }
            Section::SpecVersion => {
                self.spec_version = 0;
                self.spec_changed_at = None;
                self.version_settled = None;
            }
            Section::IntentCommit(id) => {
                self.committed_intents.remove(id);
            }
            Section::IntentChunk => {}
            Section::Heartbeat(node) => {
                self.heartbeats.remove(node);
            }
            Section::Activity(node) => {
                self.activities.remove(node);
            }
            Section::Status { node, id } => {
                self.statuses.remove(&(node.clone(), id.clone()));
            }
            Section::Attribute { node, name } => {
                if let Some(attributes) = self.attributes.get_mut(node) {
                    attributes.remove(name);
                    if attributes.is_empty() {
                        self.attributes.remove(node);
                    }
                }
            }
            Section::Plan(node) => {
                self.plans.remove(node);
            }
            Section::Election => self.election = None,
            Section::History(revision) => {
                self.history.remove(revision);
            }
            Section::FenceRequest(node) => {
                self.fence_requests.remove(node);
            }
            Section::FenceAnswer(target) => {
                self.fence_answers.remove(target);
            }
            Section::FenceHistory { target, id } => {
                self.fence_history.remove(&(target.clone(), *id));
            }
            Section::FenceResult { executor, target } => {
                self.fence_results.remove(&(executor.clone(), target.clone()));
            }
            Section::FenceConfirmation(target) => {
                self.fence_confirmations.remove(target);
            }
            Section::Request { node, id } => {
                self.requests.remove(&(node.clone(), id.clone()));
            }
        }
        Some(section)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The revision the copy is current to.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The highest revision the watch has delivered. Unlike `revision`, this process's
    /// own writes (`apply_write`, `forget_reports`) do not advance it. Whatever was
    /// written before it has been taken in, and so, nearly always, has what was written
    /// at it: the informer hands over one event at a time, so a turn may start between
    /// two events of one revision (one agent transaction of many statuses). What a
    /// decision saw of the agents' statuses (`NodeAssignment::seen_revision`).
    pub fn watched_revision(&self) -> i64 {
        self.watched
    }

    /// The stored objects, by key.
    pub fn objects(&self) -> &BTreeMap<ObjectKey, StoredObject> {
        &self.objects
    }

    /// The objects in definition order: by creation sequence (the order they were
    /// first applied in), objects stored before sequences existed first by kind and
    /// name. The scheduler breaks its last ties by this order.
    pub fn objects_in_order(&self) -> Vec<Object> {
        in_definition_order(self.objects.values().map(|stored| (*stored.object).clone()).collect())
    }

    pub fn spec_version(&self) -> i64 {
        self.spec_version
    }

    /// When the spec last changed, seconds since the epoch by its writer's clock
    /// (`None` before any change that recorded it).
    pub fn spec_changed_at(&self) -> Option<i64> {
        self.spec_changed_at
    }

    /// Whether the spec held is whole, for a follower of the `spec/` watch alone (a
    /// node agent, which does not follow `intents/`): the last change's objects and
    /// then its version key have arrived, and that version is not a large apply's
    /// commit (whose objects are still being rolled forward). `None` while no version
    /// key is held (an empty store, or one written only by earlier builds): ask etcd.
    pub fn spec_settled(&self) -> Option<bool> {
        self.version_settled.map(|settled| settled && !self.objects_after_version)
    }

    /// Whether the version key held is a large apply's commit: its objects are being
    /// rolled forward and its finish is to come on the watch.
    pub fn spec_rolling_forward(&self) -> bool {
        self.version_settled == Some(false)
    }

    /// Large applies committed but not yet rolled forward: while there is one, the
    /// spec shown is the old one and nothing may be built on it.
    pub fn committed_intents(&self) -> &BTreeSet<String> {
        &self.committed_intents
    }

    pub fn heartbeats(&self) -> &BTreeMap<String, HeartbeatEntry> {
        &self.heartbeats
    }

    /// How busy each node's agent is, and its self-fencings, by node.
    pub fn activities(&self) -> &BTreeMap<String, NodeActivity> {
        &self.activities
    }

    /// The lease holding `node`'s key, if the key exists.
    pub fn node_lease(&self, node: &str) -> Option<i64> {
        self.heartbeats.get(node).map(|entry| entry.lease).filter(|lease| *lease != 0)
    }

    /// The mod revision of `key` as this copy holds it (`None`: not held).
    pub fn mod_revision(&self, key: &str) -> Option<i64> {
        self.known.get(key).copied()
    }

    /// Statuses by (node, id).
    pub fn statuses(&self) -> &BTreeMap<(String, String), Arc<ResourceStatus>> {
        &self.statuses
    }

    /// Run-time attributes by node, then name.
    pub fn attributes(&self) -> &BTreeMap<String, BTreeMap<String, NodeAttributeRecord>> {
        &self.attributes
    }

    /// Assignments by node.
    pub fn plans(&self) -> &BTreeMap<String, NodeAssignment> {
        &self.plans
    }

    pub fn election(&self) -> Option<&ElectionHolder> {
        self.election.as_ref()
    }

    /// The input revisions of the decisions kept under `history/`, oldest first.
    pub fn history(&self) -> &BTreeSet<i64> {
        &self.history
    }

    pub fn fence_requests(&self) -> &BTreeMap<String, FenceRequestRecord> {
        &self.fence_requests
    }

    /// Fencing results by (executor, target), each as its executor wrote it: proposals
    /// to the leader, which says nothing of a target's state until the leader accepted
    /// one (`fence_outcome`).
    pub fn fence_results(&self) -> &BTreeMap<(String, String), StoredFenceResult> {
        &self.fence_results
    }

    /// `pacer fence confirm`'s records, by target.
    pub fn fence_confirmations(&self) -> &BTreeMap<String, StoredFenceResult> {
        &self.fence_confirmations
    }

    /// Every fencing attempt kept (`fence-history/<target>/<id>`), by (target, id).
    pub fn fence_history(&self) -> &BTreeMap<(String, i64), FenceHistoryRecord> {
        &self.fence_history
    }

    /// The answers the leader accepted, by target (`fencing/<target>/answer`).
    pub fn fence_answers(&self) -> &BTreeMap<String, StoredFenceAnswer> {
        &self.fence_answers
    }

    /// What answers `request`, for the leader to accept: the result under the executor
    /// it named, for that request, or an administrator's confirmation (`pacer fence
    /// confirm`) of it. A result written by any other node is no answer, whatever it
    /// says. The agents use it too, so as not to run a request again.
    pub fn fence_answer(&self, request: &FenceRequestRecord) -> Option<&FenceResultRecord> {
        let executed = self.fence_results.get(&(request.executor.clone(), request.target.clone()));
        let confirmed = self.fence_confirmations.get(&request.target);
        [executed, confirmed]
            .into_iter()
            .flatten()
            .filter(|stored| stored.result.request == request.id)
            .max_by_key(|stored| stored.revision)
            .map(|stored| &stored.result)
    }

    /// `target`'s last fencing outcome: the later, by revision, of the answer the
    /// leader accepted and an administrator's confirmation. Only these two are trusted
    /// (keys only the scheduler and the administrator may write); a result a node
    /// wrote under `fence-results/` counts only once the leader accepted it.
    pub fn fence_outcome(&self, target: &str) -> Option<&FenceResultRecord> {
        let accepted = self.fence_answers.get(target).map(|stored| (&stored.answer.result, stored.revision));
        let confirmed = self.fence_confirmations.get(target).map(|stored| (&stored.result, stored.revision));
        [accepted, confirmed].into_iter().flatten().max_by_key(|(_, revision)| *revision).map(|(result, _)| result)
    }

    /// The revision of `target`'s last successful fencing (`off` or `reboot`) the
    /// leader accepted, or of an administrator's confirmation: what the node reported
    /// before it is void (Pacemaker wipes a fenced node's history). An answer that
    /// replaced it (an unfencing, a failed attempt) carries it forward.
    pub fn fenced_revision(&self, target: &str) -> Option<i64> {
        let answered = self.fence_answers.get(target).and_then(|stored| {
            let result = &stored.answer.result;
            if result.succeeded && result.action != "on" { Some(stored.revision) } else { stored.answer.fenced_revision }
        });
        let confirmed = self.fence_confirmations.get(target).map(|stored| stored.revision);
        answered.max(confirmed)
    }

    /// The nodes with a fencing on record that voids what they wrote before it
    /// (`fenced_revision`), with its revision: the only nodes whose statuses can be void.
    pub fn fenced_nodes(&self) -> Vec<(&str, i64)> {
        let targets: BTreeSet<&str> = self.fence_answers.keys().chain(self.fence_confirmations.keys()).map(String::as_str).collect();
        targets.into_iter().filter_map(|target| Some((target, self.fenced_revision(target)?))).collect()
    }

    /// Whether `node`'s status of `id` was written before the node's last successful
    /// fencing (`fenced_revision`): void, whatever it says. A restarted agent that
    /// wrote back what it had read before the fencing, or a node fenced while an
    /// agent held it again, leaves such statuses; nobody reads them (`reports`, the
    /// agents' view of the cluster).
    pub fn is_void_status(&self, node: &str, id: &str) -> bool {
        let Some(fenced) = self.fenced_revision(node) else { return false };
        self.known.get(&self.keys.status(node, id)).is_some_and(|written| *written < fenced)
    }

    /// Whether `target` is unfenced under `lease`: its last fencing outcome is a
    /// successful unfencing asked for while it held that lease. A node that lost its
    /// lease since (its agent restarted without resuming it, the lease lapsed) must
    /// be unfenced again before anything that requires it starts there.
    pub fn unfenced_under(&self, target: &str, lease: i64) -> bool {
        let unfenced = self.fence_outcome(target).is_some_and(|result| result.succeeded && result.action == "on");
        unfenced && self.fence_answers.get(target).is_some_and(|stored| stored.answer.lease == Some(lease))
    }

    /// The last fencing outcome of every target (`fence_outcome`), by target.
    pub fn fence_outcomes(&self) -> Vec<FenceResultRecord> {
        let targets: BTreeSet<&str> = self.fence_answers.keys().chain(self.fence_confirmations.keys()).map(String::as_str).collect();
        targets.into_iter().filter_map(|target| self.fence_outcome(target).cloned()).collect()
    }

    /// Cleanups and refreshes not yet consumed by their node's agent, by (node, id).
    pub fn requests(&self) -> &BTreeMap<(String, String), RequestRecord> {
        &self.requests
    }

    /// Keys skipped because their value does not decode, with the reason.
    pub fn undecodable(&self) -> &BTreeMap<String, String> {
        &self.undecodable
    }

    /// What the agents have written, as `state::observe` reads it.
    pub fn reports(&self) -> Reports {
        let mut reports = Reports::default();
        for (node, entry) in &self.heartbeats {
            reports.heartbeats.insert(node.clone(), entry.heartbeat.clone());
        }
        reports.statuses =
            self.statuses.iter().filter(|((node, id), _)| !self.is_void_status(node, id)).map(|(_, status)| ResourceStatus::clone(status)).collect();
        reports.seen = self.activities.keys().cloned().collect();
        // A scoped cache's nodes known only by statuses it did not decode: seen, and
        // down unless something else says otherwise (whole, the cache would know
        // whether they may run something: not what the scope's family is placed by).
        reports.seen.extend(self.other_statuses.values().cloned());
        reports.attributes = self.attributes.clone();
        for result in self.fence_outcomes().into_iter().filter(|result| result.succeeded) {
            if result.action == "on" {
                if self.node_lease(&result.target).is_some_and(|lease| self.unfenced_under(&result.target, lease)) {
                    reports.unfenced.insert(result.target.clone());
                }
            } else {
                reports.fenced.insert(result.target.clone());
            }
        }
        reports
    }
}

/// Objects (given in kind and name order, as etcd lists them) in definition order: by
/// creation sequence; objects stored before sequences existed keep kind and name
/// order, first.
pub fn in_definition_order(mut objects: Vec<Object>) -> Vec<Object> {
    objects.sort_by_key(|object| object.metadata.creation_sequence.unwrap_or(0));
    objects
}

/// `Ok` when a record's body names what its key does; the reason otherwise.
fn agree(field: &str, body: &str, key: &str) -> Result<(), String> {
    if body == key { Ok(()) } else { Err(format!("its body's {field} {body:?} is not its key's {key:?}")) }
}

fn decode<T: DeserializeOwned>(value: &[u8]) -> Result<T, String> {
    serde_json::from_slice(value).map_err(|error| format!("not a valid record: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, revision: i64) -> Entry {
        Entry { key: key.into(), value: value.as_bytes().to_vec(), mod_revision: revision, create_revision: revision, lease: 7 }
    }

    fn status(node: &str, id: &str) -> String {
        serde_json::json!({"id": id, "name": id, "node": node, "role": "Started", "definition": {"agent": "ocf:heartbeat:Dummy"}, "history": []}).to_string()
    }

    fn keys() -> Keys {
        Keys::new("/pacer")
    }

    #[test]
    fn sorts_records_by_section_and_follows_puts_and_deletes() {
        let mut cache = ClusterCache::new(keys());
        let resource = r#"{"apiVersion":"pacer.io/v1alpha1","kind":"Resource","metadata":{"name":"web"},"spec":{"agent":"ocf:heartbeat:Dummy"}}"#;
        let changes = cache.apply_event(&WatchEvent::Restarted {
            prefix: "/pacer/".into(),
            revision: 10,
            entries: vec![entry("/pacer/spec/resources/web", resource, 3), entry("/pacer/status/n1/web", &status("n1", "web"), 5)],
        });
        assert!(changes.restarted);
        assert_eq!(cache.objects().len(), 1);
        assert_eq!(cache.objects_in_order()[0].metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(cache.statuses().keys().collect::<Vec<_>>(), [&("n1".to_string(), "web".to_string())]);
        let changes = cache.apply_event(&WatchEvent::Deleted { key: "/pacer/status/n1/web".into(), revision: 11 });
        assert_eq!(changes.sections, [Section::Status { node: "n1".into(), id: "web".into() }]);
        assert!(cache.statuses().is_empty());
        assert_eq!(cache.revision(), 11);
    }

    #[test]
    fn caches_that_share_decodes_hold_one_copy_of_what_each_would_hold() {
        let shared = Arc::new(SharedDecodes::new());
        let resource = r#"{"apiVersion":"pacer.io/v1alpha1","kind":"Resource","metadata":{"name":"web"},"spec":{"agent":"ocf:heartbeat:Dummy"}}"#;
        let listing = WatchEvent::Restarted {
            prefix: "/pacer/".into(),
            revision: 10,
            entries: vec![entry("/pacer/spec/resources/web", resource, 3), entry("/pacer/status/n1/web", &status("n1", "web"), 5)],
        };
        let mut caches = [ClusterCache::with_shared(keys(), shared.clone()), ClusterCache::with_shared(keys(), shared.clone()), ClusterCache::new(keys())];
        for cache in &mut caches {
            cache.apply_event(&listing);
        }
        let [first, second, alone] = &caches;
        let web = ObjectKey { kind: crate::api::Kind::Resource, name: "web".into() };
        let status_key = ("n1".to_string(), "web".to_string());
        assert!(Arc::ptr_eq(&first.objects()[&web].object, &second.objects()[&web].object));
        assert!(Arc::ptr_eq(&first.statuses()[&status_key], &second.statuses()[&status_key]));
        assert!(!Arc::ptr_eq(&first.statuses()[&status_key], &alone.statuses()[&status_key]));
        // What is shared equals what a cache of its own decoded.
        assert_eq!(first.objects(), alone.objects());
        assert_eq!(first.statuses(), alone.statuses());
        // A newer value is a copy of its own, and so is one that disagrees with its key.
        first_put(&mut caches, "/pacer/status/n1/web", &status("n1", "web").replace("Started", "Stopped"), 12);
        assert_eq!(caches[0].statuses()[&status_key].role, crate::api::records::ObservedRole::Stopped);
        assert_eq!(caches[1].statuses()[&status_key].role, crate::api::records::ObservedRole::Started);
        for cache in &mut caches {
            cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n1", "web"), 13)));
            assert!(!cache.statuses().contains_key(&("n2".to_string(), "web".to_string())));
        }
        // One object; two statuses (the first cache's newer one, the second's older).
        assert_eq!(shared.held(), (1, 2));
    }

    /// A put taken in by the first cache only.
    fn first_put(caches: &mut [ClusterCache], key: &str, value: &str, revision: i64) {
        caches[0].apply_event(&WatchEvent::Put(entry(key, value, revision)));
    }

    #[test]
    fn keeps_requests_by_node_and_id_until_deleted() {
        let mut cache = ClusterCache::new(keys());
        let request = r#"{"kind":"cleanup","resources":["web"],"requested":1,"by":"me"}"#;
        let changes = cache.apply_event(&WatchEvent::Put(entry("/pacer/requests/n1/5-x", request, 4)));
        assert_eq!(changes.sections, [Section::Request { node: "n1".into(), id: "5-x".into() }]);
        let key = ("n1".to_string(), "5-x".to_string());
        assert_eq!(cache.requests()[&key].resources, ["web"]);
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/requests/n1/5-x".into(), revision: 5 });
        assert!(cache.requests().is_empty());
    }

    #[test]
    fn a_value_that_does_not_decode_is_skipped_and_named() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 4)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/spec/nodes/n9", "not json", 5)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", "{broken", 6)));
        // The bad spec key does not hide the rest, and a status replaced by garbage
        // is not kept in its old form.
        assert!(cache.objects().is_empty());
        assert!(cache.statuses().is_empty());
        assert_eq!(cache.undecodable().keys().collect::<Vec<_>>(), ["/pacer/spec/nodes/n9", "/pacer/status/n1/web"]);
        assert!(cache.undecodable()["/pacer/spec/nodes/n9"].starts_with("not JSON"), "the reason does not repeat the key");
        // The event that brings a bad value says so, for the follower to report once.
        let changes = cache.apply_event(&WatchEvent::Put(entry("/pacer/attributes/n1/x", "{", 7)));
        assert_eq!(changes.undecodable, ["/pacer/attributes/n1/x"]);
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/attributes/n1/x".into(), revision: 8 });
        // Deleting the bad key forgets it.
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/spec/nodes/n9".into(), revision: 9 });
        assert_eq!(cache.undecodable().keys().collect::<Vec<_>>(), ["/pacer/status/n1/web"]);
    }

    #[test]
    fn only_the_watch_advances_the_watched_revision() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/db", &status("n1", "db"), 4)));
        // This process's own writes (a leader's assignments) come before the watch
        // has delivered what others wrote in between.
        cache.apply_write("/pacer/plans/n1", Some(b"{}"), 9);
        cache.apply_write("/pacer/status/n1/web", None, 10);
        assert_eq!((cache.revision(), cache.watched_revision()), (10, 4));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n2", "web"), 7)));
        assert_eq!(cache.watched_revision(), 7);
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/status/n1/web".into(), revision: 10 });
        assert_eq!(cache.watched_revision(), 10);
        cache.apply_event(&WatchEvent::Restarted { prefix: "/pacer/".into(), revision: 12, entries: Vec::new() });
        assert_eq!(cache.watched_revision(), 12);
        // A fenced node's reports, forgotten by the leader itself.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n3/db", &status("n3", "db"), 13)));
        cache.forget_reports("n3", 20);
        assert!(cache.statuses().is_empty());
        assert_eq!(cache.watched_revision(), 13);
    }

    #[test]
    fn replayed_events_and_echoes_of_own_writes_do_not_roll_back() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_write("/pacer/status/n1/web", Some(status("n1", "web").as_bytes()), 9);
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "old"), 8)));
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/status/n1/web".into(), revision: 7 });
        assert_eq!(cache.statuses().get(&("n1".to_string(), "web".to_string())).map(|status| status.id.as_str()), Some("web"));
    }

    #[test]
    fn an_own_deletion_is_not_undone_by_an_earlier_echo_or_an_older_listing() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_write("/pacer/status/n1/web", Some(status("n1", "web").as_bytes()), 5);
        cache.apply_write("/pacer/status/n1/web", None, 8);
        // The put's echo (5) arrives after the deletion was applied.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 5)));
        assert!(cache.statuses().is_empty());
        // A listing taken before writes of this process's does not undo them.
        cache.apply_write("/pacer/status/n1/db", Some(status("n1", "db").as_bytes()), 12);
        cache.apply_event(&WatchEvent::Restarted {
            prefix: "/pacer/status/".into(),
            revision: 7,
            entries: vec![entry("/pacer/status/n1/web", &status("n1", "web"), 5)],
        });
        assert_eq!(cache.statuses().keys().map(|(_, id)| id.as_str()).collect::<Vec<_>>(), ["db"]);
        // The deletion's own echo settles it; a later recreation is taken.
        cache.apply_event(&WatchEvent::Deleted { key: "/pacer/status/n1/web".into(), revision: 8 });
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 20)));
        assert_eq!(cache.statuses().len(), 2);
    }

    #[test]
    fn a_relist_keeps_the_mark_of_a_value_that_still_does_not_decode() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/db", "{broken", 4)));
        cache.apply_event(&WatchEvent::Restarted { prefix: "/pacer/status/".into(), revision: 10, entries: vec![entry("/pacer/status/n2/db", "{broken", 4)] });
        assert!(cache.undecodable().contains_key("/pacer/status/n2/db"));
        // Gone from etcd: gone from the marks too.
        cache.apply_event(&WatchEvent::Restarted { prefix: "/pacer/status/".into(), revision: 12, entries: vec![] });
        assert!(cache.undecodable().is_empty());
    }

    #[test]
    fn a_forgotten_node_is_not_brought_back_by_a_put_from_before() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/db", &status("n2", "db"), 4)));
        cache.forget_reports("n2", 9);
        // A status the node wrote at 7 (before it was forgotten) arrives late.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n2", "web"), 7)));
        assert!(cache.statuses().is_empty());
        // What it writes once back counts.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n2", "web"), 15)));
        assert_eq!(cache.statuses().len(), 1);
    }

    #[test]
    fn a_key_that_decodes_again_is_no_longer_named_undecodable() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", "{broken", 4)));
        assert_eq!(cache.undecodable().len(), 1);
        let changes = cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 5)));
        assert!(cache.undecodable().is_empty());
        assert!(changes.undecodable.is_empty());
    }

    #[test]
    fn a_restart_replaces_only_its_prefix() {
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 4)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/attributes/n1/master-db", r#"{"value":"5","forever":false}"#, 5)));
        cache.apply_event(&WatchEvent::Restarted {
            prefix: "/pacer/status/".into(),
            revision: 20,
            entries: vec![entry("/pacer/status/n2/db", &status("n2", "db"), 18)],
        });
        assert_eq!(cache.statuses().keys().map(|(node, _)| node.as_str()).collect::<Vec<_>>(), ["n2"]);
        assert_eq!(cache.attributes()["n1"]["master-db"].value, "5");
    }

    #[test]
    fn leases_terms_and_fencing_come_out_typed() {
        let mut cache = ClusterCache::new(keys());
        let heartbeat = r#"{"node":"n1","pid":1,"host":"h","started":0,"leaseTtlMs":5000,"probed":true}"#;
        cache.apply_event(&WatchEvent::Put(entry("/pacer/nodes/n1/lease", heartbeat, 3)));
        cache.apply_event(&WatchEvent::Put(Entry {
            key: "/pacer/election/scheduler".into(),
            value: br#"{"identity":"s1","since":0}"#.to_vec(),
            mod_revision: 9,
            create_revision: 6,
            lease: 99,
        }));
        let result = r#"{"request":4,"target":"n2","action":"reboot","succeeded":true,"by":"n1","finished":0,"attempts":[]}"#;
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n1/n2", result, 10)));
        assert!(!cache.reports().fenced.contains("n2"), "a result is only a proposal");
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n2/answer", &format!(r#"{{"result":{result},"accepted":1}}"#), 11)));
        assert_eq!(cache.node_lease("n1"), Some(7));
        assert_eq!(cache.election().map(|holder| (holder.term, holder.lease)), Some((6, 99)));
        let reports = cache.reports();
        assert!(reports.heartbeats["n1"].probed);
        assert!(reports.fenced.contains("n2"));
    }

    #[test]
    fn a_record_whose_body_disagrees_with_its_key_is_dropped_and_named() {
        let mut cache = ClusterCache::new(keys());
        // A failed-stop status of web on n1, written under n2's prefix.
        let mut forged: serde_json::Value = serde_json::from_str(&status("n1", "web")).unwrap();
        forged["role"] = "Failed".into();
        let changes = cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &forged.to_string(), 4)));
        assert_eq!(changes.undecodable, ["/pacer/status/n2/web"]);
        assert!(cache.statuses().is_empty());
        assert!(cache.reports().statuses.is_empty());
        // The id counts too.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/db", &status("n1", "web"), 5)));
        assert!(cache.statuses().is_empty());
        // A lease key of n3 whose body says n1 shows neither online.
        let heartbeat = r#"{"node":"n1","pid":1,"host":"h","started":0,"leaseTtlMs":5000,"probed":true}"#;
        cache.apply_event(&WatchEvent::Put(entry("/pacer/nodes/n3/lease", heartbeat, 6)));
        assert!(cache.reports().heartbeats.is_empty());
        let activity = r#"{"node":"n1","running":0,"queued":0,"limit":1}"#;
        cache.apply_event(&WatchEvent::Put(entry("/pacer/nodes/n3/activity", activity, 7)));
        assert!(cache.activities().is_empty());
        // A fencing request whose key is not its target's.
        let request = r#"{"id":4,"target":"n3","action":"off","reason":"x","executor":"n2","requested":0}"#;
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/zz/request", request, 8)));
        assert!(cache.fence_requests().is_empty());
        // Invalid names in keys.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/attributes/-bad/x", r#"{"value":"1","forever":false}"#, 9)));
        assert!(cache.attributes().is_empty());
        let named: Vec<&str> = cache.undecodable().keys().map(String::as_str).collect();
        assert_eq!(
            named,
            [
                "/pacer/attributes/-bad/x",
                "/pacer/fencing/zz/request",
                "/pacer/nodes/n3/activity",
                "/pacer/nodes/n3/lease",
                "/pacer/status/n1/db",
                "/pacer/status/n2/web"
            ]
        );
        assert!(cache.undecodable()["/pacer/status/n2/web"].contains(r#"node "n1" is not its key's "n2""#), "{:?}", cache.undecodable());
        // A record that agrees is taken, and the key's mark is gone.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n2", "web"), 10)));
        assert_eq!(cache.reports().statuses.len(), 1);
        assert!(!cache.undecodable().contains_key("/pacer/status/n2/web"));
    }

    #[test]
    fn only_the_requests_executor_answers_it() {
        let mut cache = ClusterCache::new(keys());
        let request: FenceRequestRecord =
            serde_json::from_str(r#"{"id":4,"target":"n1","action":"reboot","reason":"x","executor":"n2","requested":0}"#).unwrap();
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/request", &serde_json::to_string(&request).unwrap(), 5)));
        let success = |by: &str| format!(r#"{{"request":4,"target":"n1","action":"reboot","succeeded":true,"by":"{by}","finished":0}}"#);
        // n3 forges a success under its own prefix: kept (it is n3's to say) but no
        // answer to a request n2 was asked to run.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n3/n1", &success("n3"), 6)));
        assert!(cache.fence_answer(&request).is_none());
        // Under n2's prefix with another executor in the body: dropped.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n2/n1", &success("n3"), 7)));
        assert!(cache.fence_answer(&request).is_none());
        assert!(cache.undecodable().contains_key("/pacer/fence-results/n2/n1"));
        // The executor's own answer counts.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n2/n1", &success("n2"), 8)));
        assert_eq!(cache.fence_answer(&request).map(|result| result.by.as_str()), Some("n2"));
        // An administrator's confirmation answers it too.
        let mut cache = ClusterCache::new(keys());
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/request", &serde_json::to_string(&request).unwrap(), 5)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-confirmations/n1", &success("confirmed by root"), 9)));
        assert_eq!(cache.fence_answer(&request).map(|result| result.by.as_str()), Some("confirmed by root"));
        assert!(cache.reports().fenced.contains("n1"));
    }

    #[test]
    fn only_the_accepted_answer_sets_a_targets_state() {
        let mut cache = ClusterCache::new(keys());
        let result = |action: &str, by: &str| format!(r#"{{"request":4,"target":"n1","action":"{action}","succeeded":true,"by":"{by}","finished":0}}"#);
        let answer = |action: &str, by: &str| format!(r#"{{"result":{},"accepted":1,"lease":7}}"#, result(action, by));
        cache.apply_event(&WatchEvent::Put(entry(
            "/pacer/nodes/n1/lease",
            r#"{"node":"n1","pid":1,"host":"h","started":0,"leaseTtlMs":2000,"probed":true}"#,
            3,
        )));
        // Results under any executor's prefix, the target's own unfencing included,
        // are proposals: nothing is fenced or unfenced by them.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n2/n1", &result("reboot", "n2"), 5)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-results/n1/n1", &result("on", "n1"), 6)));
        assert!(cache.reports().fenced.is_empty() && cache.reports().unfenced.is_empty());
        assert!(cache.fence_outcomes().is_empty());
        // The leader's record of what it accepted decides; the latest of it and a
        // confirmation stands.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer("on", "n1"), 7)));
        assert!(cache.reports().unfenced.contains("n1"));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fence-confirmations/n1", &result("off", "confirmed by root"), 8)));
        assert!(!cache.reports().unfenced.contains("n1"));
        assert!(cache.reports().fenced.contains("n1"));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer("on", "n1"), 9)));
        assert!(cache.reports().unfenced.contains("n1"));
        assert_eq!(cache.fence_outcomes().len(), 1);
        // An answer whose body names another target is dropped.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n2/answer", &answer("off", "n3"), 10)));
        assert!(cache.fence_answers().get("n2").is_none());
        assert!(cache.undecodable().contains_key("/pacer/fencing/n2/answer"));
    }

    fn heartbeat(node: &str, lease: i64, revision: i64) -> WatchEvent {
        let value = format!(r#"{{"node":"{node}","pid":1,"host":"h","started":0,"leaseTtlMs":2000,"probed":true}}"#);
        WatchEvent::Put(Entry {
            key: format!("/pacer/nodes/{node}/lease"),
            value: value.into_bytes(),
            mod_revision: revision,
            create_revision: revision,
            lease,
        })
    }

    #[test]
    fn an_unfencing_holds_only_under_the_lease_it_was_asked_for() {
        let mut cache = ClusterCache::new(keys());
        let answer = r#"{"result":{"request":4,"target":"n1","action":"on","succeeded":true,"by":"n1","finished":0},"accepted":1,"lease":7}"#;
        cache.apply_event(&heartbeat("n1", 7, 3));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", answer, 5)));
        assert!(cache.reports().unfenced.contains("n1"));
        assert!(cache.unfenced_under("n1", 7));
        // The node restarted without resuming its lease: it is unfenced again.
        cache.apply_event(&heartbeat("n1", 8, 6));
        assert!(!cache.reports().unfenced.contains("n1"));
        assert!(!cache.unfenced_under("n1", 8));
        // An answer of a version that did not record the lease unfences nobody.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer.replace(r#","lease":7"#, ""), 9)));
        assert!(!cache.unfenced_under("n1", 8));
    }

    #[test]
    fn statuses_written_before_a_nodes_last_fencing_are_void() {
        let mut cache = ClusterCache::new(keys());
        let answer = |action: &str, succeeded: bool, fenced: Option<i64>| {
            let carried = fenced.map(|revision| format!(r#","fencedRevision":{revision}"#)).unwrap_or_default();
            format!(r#"{{"result":{{"request":4,"target":"n1","action":"{action}","succeeded":{succeeded},"by":"n2","finished":0}},"accepted":1{carried}}}"#)
        };
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 5)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n2/web", &status("n2", "web"), 6)));
        // A failed fencing voids nothing.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer("reboot", false, None), 7)));
        assert_eq!(cache.fenced_revision("n1"), None);
        assert_eq!(cache.fenced_nodes(), []);
        assert_eq!(cache.reports().statuses.len(), 2);
        // A successful one voids what n1 wrote before it, and only that.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer("reboot", true, None), 8)));
        assert_eq!(cache.fenced_revision("n1"), Some(8));
        assert_eq!(cache.fenced_nodes(), [("n1", 8)]);
        assert!(cache.is_void_status("n1", "web") && !cache.is_void_status("n2", "web"));
        let nodes: Vec<String> = cache.reports().statuses.into_iter().map(|status| status.node).collect();
        assert_eq!(nodes, ["n2"]);
        // Written after it (the node's agent back): read again.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/web", &status("n1", "web"), 9)));
        assert!(!cache.is_void_status("n1", "web"));
        // An unfencing that replaces the answer carries the mark forward.
        cache.apply_event(&WatchEvent::Put(entry("/pacer/status/n1/db", &status("n1", "db"), 10)));
        cache.apply_event(&WatchEvent::Put(entry("/pacer/fencing/n1/answer", &answer("on", true, Some(8)), 11)));
        assert_eq!(cache.fenced_revision("n1"), Some(8));
        assert!(!cache.is_void_status("n1", "db"));
        // A confirmation is a fencing too.
        cache.apply_event(&WatchEvent::Put(entry(
            "/pacer/fence-confirmations/n1",
            r#"{"request":0,"target":"n1","action":"off","succeeded":true,"by":"confirmed by root","finished":0}"#,
            12,
        )));
        assert!(cache.is_void_status("n1", "db"));
        assert_eq!(cache.fenced_nodes(), [("n1", 12)]);
    }
}
