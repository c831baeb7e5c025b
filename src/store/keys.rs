//! The etcd key layout under the prefix (default `/pacer`).
//!
//! - `spec/<plural>/<name>`: desired objects as JSON.
//! - `spec/version`: rewritten by every change of `spec/`, last in the change's
//!   transaction; writers compare its revision to prove nothing changed since they
//!   read. It lives under `spec/` so that one watch of the prefix sees a change's
//!   objects and then its version, in that order: a follower of the watch knows when
//!   its copy of the spec is whole (`ClusterCache::spec_settled`). Stores written
//!   by earlier builds kept it at `meta/spec-version`, which nothing reads now: their
//!   next write starts the new key. Writers of the two builds (the CLI that applies,
//!   schedulers) must not run side by side: neither sees the other's key.
//! - `intents/<id>/chunk/<n>`, `intents/<id>/commit`: a large apply staged in chunks;
//!   the commit key is its point of no return (see `apply`).
//! - `nodes/<node>/lease`: a node agent's heartbeat, bound to its lease (present =
//!   the agent is alive).
//! - `nodes/<node>/activity`: how busy the agent is, its self-fencings (not bound).
//! - `status/<node>/<id>`: a resource on a node as that node's agent saw it.
//! - `attributes/<node>/<name>`: node attributes agents set at run time.
//! - `plans/<node>`: the leading scheduler's assignment for one node.
//! - `election/scheduler`: held by the leading scheduler, bound to its lease.
//! - `history/<revision>`: one record per new decision, by input revision.
//! - `fencing/<node>/request`: the leader's request that `<node>` be fenced (or
//!   unfenced), naming the executor.
//! - `fence-results/<executor>/<target>`: what the executing agent got, under the
//!   executor's own name (an unfencing, run by the target itself, is
//!   `fence-results/<target>/<target>`). Only a proposal: the leader accepts only the
//!   result under the executor its request named, answering that request's id.
//! - `fencing/<node>/answer`: the answer the leader accepted (the leader's only);
//!   the node's fenced or unfenced state is read from it, never from a result.
//! - `fence-history/<node>/<id>`: every fencing attempt of `<node>` (the leader's
//!   only), by request id zero-padded; capped cluster-wide, shown, never read for a
//!   node's state. Outside `fencing/`, which every agent watches: no agent reads it.
//! - `fence-confirmations/<target>`: `pacer fence confirm` (an administrator's key,
//!   never a node's).
//! - `requests/<node>/<id>`: a cleanup or refresh asked of a node's agent (`pacer
//!   cleanup`, `pacer refresh` create it; that agent deletes it once applied).
//!
//! Beside the prefix, the events (`<prefix>.events/`): `pending/<node>/<id>` (an
//! event an agent saw, written with the fact, until the leader sequences it),
//! `log/<sequence>` (the cluster-wide sequence, the leader's), `cursors/<alert>` (how
//! far each `Alert` is delivered) and `nodes` (what the leader last said of each
//! node). Like the archive they are kept out of the prefix so that `pacer status` and
//! the leader's watch do not read ten thousand events.
//!
//! Beside the prefix, not under it, the archive of decision inputs (the leader's):
//! `<prefix>.archive/inputs/<revision>` (a `DecisionInput`) and
//! `<prefix>.archive/blobs/<digest>/<n>` (compressed pieces of a blob). Every reader of
//! the cluster lists and watches the prefix whole; the archive, the bulk of what is
//! stored, is read only by `pacer history`.

use crate::api::{Kind, Name, ObjectKey};

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix holds, by the layout above: how a watch event is
/// sorted into the cache without every reader parsing keys of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// `spec/<plural>/<name>`.
    Object(ObjectKey),
    /// `spec/version`.
    SpecVersion,
    /// `intents/<id>/commit`: a committed large apply not yet rolled forward.
    IntentCommit(String),
    /// `intents/<id>/chunk/<n>`: staged, invisible to readers.
    IntentChunk,
    /// `nodes/<node>/lease`.
    Heartbeat(String),
    /// `nodes/<node>/activity`.
    Activity(String),
    /// `status/<node>/<id>`.
    Status { node: String, id: String },
    /// `attributes/<node>/<name>`.
    Attribute { node: String, name: String },
    /// `plans/<node>`.
    Plan(String),
    /// `election/scheduler`.
    Election,
    /// `history/<revision>`.
    History(i64),
    /// `fencing/<node>/request`.
    FenceRequest(String),
    /// `fencing/<node>/answer`.
    FenceAnswer(String),
    /// `fence-history/<node>/<id>`.
    FenceHistory { target: String, id: i64 },
    /// `fence-results/<executor>/<target>`.
    FenceResult { executor: String, target: String },
    /// `fence-confirmations/<target>`.
    FenceConfirmation(String),
    /// `requests/<node>/<id>`.
    Request { node: String, id: String },
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') { trimmed.to_string() } else { format!("/{trimmed}") };
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn spec_prefix(&self) -> String {
        format!("{}/spec/", self.prefix)
    }

    pub fn object(&self, key: &ObjectKey) -> String {
        format!("{}/spec/{}/{}", self.prefix, key.kind.plural(), key.name)
    }

    pub fn spec_version(&self) -> String {
        format!("{}/spec/version", self.prefix)
    }

    pub fn intents_prefix(&self) -> String {
        format!("{}/intents/", self.prefix)
    }

    pub fn intent_prefix(&self, id: &str) -> String {
        format!("{}/intents/{id}/", self.prefix)
    }

    pub fn intent_chunk(&self, id: &str, index: usize) -> String {
        format!("{}/intents/{id}/chunk/{index:06}", self.prefix)
    }

    pub fn intent_commit(&self, id: &str) -> String {
        format!("{}/intents/{id}/commit", self.prefix)
    }

    pub fn node_lease(&self, node: &str) -> String {
        format!("{}/nodes/{node}/lease", self.prefix)
    }

    /// A node agent's activity record (operations running and queued, self-fencings).
    pub fn node_activity(&self, node: &str) -> String {
        format!("{}/nodes/{node}/activity", self.prefix)
    }

    pub fn nodes_prefix(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// The node a `nodes/<node>/lease` key belongs to.
    pub fn node_of_lease(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.nodes_prefix())?;
        rest.strip_suffix("/lease").filter(|node| !node.contains('/')).map(str::to_string)
    }

    pub fn statuses_prefix(&self) -> String {
        format!("{}/status/", self.prefix)
    }

    pub fn node_statuses_prefix(&self, node: &str) -> String {
        format!("{}/status/{node}/", self.prefix)
    }

    pub fn status(&self, node: &str, id: &str) -> String {
        format!("{}/status/{node}/{id}", self.prefix)
    }

    pub fn attributes_prefix(&self) -> String {
        format!("{}/attributes/", self.prefix)
    }

    pub fn node_attributes_prefix(&self, node: &str) -> String {
        format!("{}/attributes/{node}/", self.prefix)
    }

    pub fn attribute(&self, node: &str, name: &str) -> String {
        format!("{}/attributes/{node}/{name}", self.prefix)
    }

    pub fn plans_prefix(&self) -> String {
        format!("{}/plans/", self.prefix)
    }

    pub fn plan(&self, node: &str) -> String {
        format!("{}/plans/{node}", self.prefix)
    }

    pub fn election(&self) -> String {
        format!("{}/election/scheduler", self.prefix)
    }

    pub fn history_prefix(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    /// A decision's record, under its input revision zero-padded so keys sort in order.
    pub fn history(&self, revision: i64) -> String {
        format!("{}/history/{revision:020}", self.prefix)
    }

    /// The archive of decision inputs, beside the prefix (see the module comment).
    pub fn archive_prefix(&self) -> String {
        format!("{}.archive/", self.prefix)
    }

    pub fn archive_inputs_prefix(&self) -> String {
        format!("{}.archive/inputs/", self.prefix)
    }

    /// A decision's input, under its input revision zero-padded as `history` is.
    pub fn archive_input(&self, revision: i64) -> String {
        format!("{}.archive/inputs/{revision:020}", self.prefix)
    }

    /// The input revision of an `archive_input` key.
    pub fn revision_of_archive_input(&self, key: &str) -> Option<i64> {
        key.strip_prefix(&self.archive_inputs_prefix())?.parse().ok()
    }

    pub fn archive_blobs_prefix(&self) -> String {
        format!("{}.archive/blobs/", self.prefix)
    }

    pub fn archive_blob_prefix(&self, digest: &str) -> String {
        format!("{}.archive/blobs/{digest}/", self.prefix)
    }

    pub fn archive_blob_chunk(&self, digest: &str, index: u32) -> String {
        format!("{}.archive/blobs/{digest}/{index:04}", self.prefix)
    }

    /// The digest of an `archive_blob_chunk` key.
    pub fn digest_of_archive_blob<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rest = key.strip_prefix(&self.archive_blobs_prefix())?;
        rest.split_once('/').map(|(digest, _)| digest)
    }

    /// The events, beside the prefix as the archive is (see the module comment).
    pub fn events_prefix(&self) -> String {
        format!("{}.events/", self.prefix)
    }

    /// Events agents (and commands) wrote, not yet sequenced by the leader.
    pub fn pending_events_prefix(&self) -> String {
        format!("{}.events/pending/", self.prefix)
    }

    /// What one node's agent writes of events (its own prefix, for per-node rights).
    pub fn node_pending_events_prefix(&self, node: &str) -> String {
        format!("{}.events/pending/{node}/", self.prefix)
    }

    /// A pending event. `id` is unique to its writer and sorts in the order written.
    pub fn pending_event(&self, node: &str, id: &str) -> String {
        format!("{}.events/pending/{node}/{id}", self.prefix)
    }

    pub fn event_log_prefix(&self) -> String {
        format!("{}.events/log/", self.prefix)
    }

    /// A sequenced event, under its sequence zero-padded so keys sort in order.
    pub fn event(&self, sequence: u64) -> String {
        format!("{}.events/log/{sequence:020}", self.prefix)
    }

    /// The sequence of an `event` key.
    pub fn sequence_of_event(&self, key: &str) -> Option<u64> {
        key.strip_prefix(&self.event_log_prefix())?.parse().ok()
    }

    pub fn alert_cursors_prefix(&self) -> String {
        format!("{}.events/cursors/", self.prefix)
    }

    /// How far an `Alert` has been delivered.
    pub fn alert_cursor(&self, alert: &str) -> String {
        format!("{}.events/cursors/{alert}", self.prefix)
    }

    /// What the leader last announced of each node (`AnnouncedNodes`).
    pub fn announced_nodes(&self) -> String {
        format!("{}.events/nodes", self.prefix)
    }

    pub fn fencing_prefix(&self) -> String {
        format!("{}/fencing/", self.prefix)
    }

    pub fn fence_request(&self, node: &str) -> String {
        format!("{}/fencing/{node}/request", self.prefix)
    }

    /// The answer the leader accepted for its request of `node` (the leader's only).
    pub fn fence_answer(&self, node: &str) -> String {
        format!("{}/fencing/{node}/answer", self.prefix)
    }

    /// One fencing attempt of `node`, by its request's id (the leader's only),
    /// zero-padded so a node's attempts sort in order.
    pub fn fence_history_prefix(&self) -> String {
        format!("{}/fence-history/", self.prefix)
    }

    pub fn fence_history(&self, node: &str, id: i64) -> String {
        format!("{}/fence-history/{node}/{id:020}", self.prefix)
    }

    /// A fencing result, under the node that ran it (the executor's own prefix).
    pub fn fence_result(&self, executor: &str, target: &str) -> String {
        format!("{}/fence-results/{executor}/{target}", self.prefix)
    }

    pub fn fence_results_prefix(&self) -> String {
        format!("{}/fence-results/", self.prefix)
    }

    /// What one node's agent writes of fencing results.
    pub fn node_fence_results_prefix(&self, executor: &str) -> String {
        format!("{}/fence-results/{executor}/", self.prefix)
    }

    /// `pacer fence confirm`: an administrator vouches that `target` is down.
    pub fn fence_confirmation(&self, target: &str) -> String {
        format!("{}/fence-confirmations/{target}", self.prefix)
    }

    pub fn fence_confirmations_prefix(&self) -> String {
        format!("{}/fence-confirmations/", self.prefix)
    }

    pub fn requests_prefix(&self) -> String {
        format!("{}/requests/", self.prefix)
    }

    /// What one node's agent follows: the requests addressed to it.
    pub fn node_requests_prefix(&self, node: &str) -> String {
        format!("{}/requests/{node}/", self.prefix)
    }

    pub fn request(&self, node: &str, id: &str) -> String {
        format!("{}/requests/{node}/{id}", self.prefix)
    }

    /// The node and the last segment of a `<section>/<node>/<name>` key
    /// (`status/n1/web`, `attributes/n1/master-db`).
    pub fn node_and_name<'a>(section_prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = key.strip_prefix(section_prefix)?;
        let (node, name) = rest.split_once('/')?;
        (!node.is_empty() && !name.is_empty() && !name.contains('/')).then_some((node, name))
    }

    /// The intent id of a commit key, `None` for any other key.
    pub fn committed_intent_id(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.intents_prefix())?;
        let id = rest.strip_suffix("/commit")?;
        (!id.contains('/')).then(|| id.to_string())
    }

    /// Which part of the layout `key` belongs to; `None` for a key Pacer does not
    /// write (outside the prefix, or of an unknown shape).
    pub fn section(&self, key: &str) -> Option<Section> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let section = match parts.as_slice() {
            ["spec", plural, name] if !name.is_empty() => {
                Section::Object(ObjectKey { kind: *Kind::ALL.iter().find(|kind| kind.plural() == *plural)?, name: Name::from(*name) })
            }
            ["spec", "version"] => Section::SpecVersion,
            ["intents", id, "commit"] if !id.is_empty() => Section::IntentCommit((*id).to_string()),
            ["intents", id, "chunk", _] if !id.is_empty() => Section::IntentChunk,
            ["nodes", node, "lease"] if !node.is_empty() => Section::Heartbeat((*node).to_string()),
            ["nodes", node, "activity"] if !node.is_empty() => Section::Activity((*node).to_string()),
            ["status", node, id] if !node.is_empty() && !id.is_empty() => Section::Status { node: (*node).to_string(), id: (*id).to_string() },
            ["attributes", node, name] if !node.is_empty() && !name.is_empty() => Section::Attribute { node: (*node).to_string(), name: (*name).to_string() },
            ["plans", node] if !node.is_empty() => Section::Plan((*node).to_string()),
            ["election", "scheduler"] => Section::Election,
            ["history", revision] => Section::History(revision.parse().ok()?),
            ["fencing", node, "request"] if !node.is_empty() => Section::FenceRequest((*node).to_string()),
            ["fencing", node, "answer"] if !node.is_empty() => Section::FenceAnswer((*node).to_string()),
            ["fence-history", node, id] if !node.is_empty() => Section::FenceHistory { target: (*node).to_string(), id: id.parse().ok()? },
            ["fence-results", executor, target] if !executor.is_empty() && !target.is_empty() => {
                Section::FenceResult { executor: (*executor).to_string(), target: (*target).to_string() }
            }
            ["fence-confirmations", target] if !target.is_empty() => Section::FenceConfirmation((*target).to_string()),
            ["requests", node, id] if !node.is_empty() && !id.is_empty() => Section::Request { node: (*node).to_string(), id: (*id).to_string() },
            _ => return None,
        };
        Some(section)
    }

    /// The intent id of any key under `intents/`.
    pub fn intent_id(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.intents_prefix())?;
        rest.split('/').next().filter(|id| !id.is_empty()).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_keys_under_the_prefix() {
        let keys = Keys::new("pacer/");
        assert_eq!(keys.prefix(), "/pacer");
        let web = ObjectKey { kind: Kind::Resource, name: Name::from("web") };
        assert_eq!(keys.object(&web), "/pacer/spec/resources/web");
        assert_eq!(keys.intent_commit("42-x"), "/pacer/intents/42-x/commit");
        assert_eq!(keys.committed_intent_id("/pacer/intents/42-x/commit").as_deref(), Some("42-x"));
        assert_eq!(keys.committed_intent_id("/pacer/intents/42-x/chunk/000001"), None);
        assert_eq!(keys.intent_id("/pacer/intents/42-x/chunk/000001").as_deref(), Some("42-x"));
        assert_eq!(keys.node_of_lease("/pacer/nodes/n1/lease").as_deref(), Some("n1"));
        assert_eq!(keys.node_of_lease("/pacer/nodes/n1/other"), None);
        assert_eq!(Keys::node_and_name(&keys.statuses_prefix(), "/pacer/status/n1/db:1"), Some(("n1", "db:1")));
        assert_eq!(Keys::node_and_name(&keys.statuses_prefix(), "/pacer/status/n1/a/b"), None);
    }

    #[test]
    fn sorts_keys_into_sections() {
        let keys = Keys::new("/pacer");
        let web = ObjectKey { kind: Kind::Resource, name: Name::from("web") };
        assert_eq!(keys.section(&keys.object(&web)), Some(Section::Object(web)));
        assert_eq!(keys.section(&keys.status("n1", "db:1")), Some(Section::Status { node: "n1".into(), id: "db:1".into() }));
        assert_eq!(keys.section(&keys.attribute("n2", "master-db")), Some(Section::Attribute { node: "n2".into(), name: "master-db".into() }));
        assert_eq!(keys.section(&keys.node_lease("n3")), Some(Section::Heartbeat("n3".into())));
        assert_eq!(keys.section(&keys.node_activity("n3")), Some(Section::Activity("n3".into())));
        assert_eq!(keys.section(&keys.plan("n10")), Some(Section::Plan("n10".into())));
        assert_eq!(keys.section(&keys.history(42)), Some(Section::History(42)));
        assert_eq!(keys.section(&keys.fence_request("n1")), Some(Section::FenceRequest("n1".into())));
        assert_eq!(keys.section(&keys.fence_answer("n1")), Some(Section::FenceAnswer("n1".into())));
        assert_eq!(keys.fence_history("n1", 42), "/pacer/fence-history/n1/00000000000000000042");
        assert_eq!(keys.section(&keys.fence_history("n1", 42)), Some(Section::FenceHistory { target: "n1".into(), id: 42 }));
        assert_eq!(keys.section("/pacer/fence-history/n1/x"), None);
        assert_eq!(keys.section(&keys.fence_result("n3", "n1")), Some(Section::FenceResult { executor: "n3".into(), target: "n1".into() }));
        assert!(keys.fence_result("n3", "n1").starts_with(&keys.node_fence_results_prefix("n3")));
        assert_eq!(keys.section(&keys.fence_confirmation("n1")), Some(Section::FenceConfirmation("n1".into())));
        // The old place of results is no longer read.
        assert_eq!(keys.section("/pacer/fencing/n1/result"), None);
        assert_eq!(keys.section(&keys.request("n1", "17-cleanup")), Some(Section::Request { node: "n1".into(), id: "17-cleanup".into() }));
        assert!(keys.request("n1", "x").starts_with(&keys.node_requests_prefix("n1")));
        assert!(!keys.request("n10", "x").starts_with(&keys.node_requests_prefix("n1")));
        assert_eq!(keys.section(&keys.intent_commit("7-x")), Some(Section::IntentCommit("7-x".into())));
        assert_eq!(keys.section(&keys.intent_chunk("7-x", 3)), Some(Section::IntentChunk));
        assert_eq!(keys.section(&keys.spec_version()), Some(Section::SpecVersion));
        assert_eq!(keys.section(&keys.election()), Some(Section::Election));
        // Unknown shapes and other prefixes are not Pacer's.
        assert_eq!(keys.section("/pacer/spec/widgets/a"), None);
        assert_eq!(keys.section("/pacer/status/n1/a/b"), None);
        assert_eq!(keys.section("/pacerx/plans/n1"), None);
        assert_eq!(keys.section("/other/plans/n1"), None);
    }
}
