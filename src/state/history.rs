//! Decision inputs as stored: a scheduler `Snapshot` cut into content-addressed,
//! compressed blobs (`DecisionInput`) and back, and the digest of a decision that
//! `pacer history replay` compares with.
//!
//! The cut follows what changes between decisions: the spec (one blob, the same
//! until the spec changes) and each node's observed state (its liveness, attributes
//! and the histories of the resources on it: one blob per node). A blob is named by
//! the SHA-256 of its JSON (128 bits, in hex) and stored zstd-compressed, so a decision
//! that changed one node's state adds one small blob and a list of names. The encoder
//! remembers what it encoded last (`InputEncoder`): an unchanged node or spec is
//! compared, not serialized again, which keeps the leader's turn cheap.
//!
//! Pure: no IO. `daemon` writes what it encodes, `ops::history` reads and decodes.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::api::Object;
use crate::api::records::{BlobRef, DecisionInput, HistoryRecord};
use crate::scheduler::Snapshot;
use crate::scheduler::plan::Plan;
use crate::scheduler::snapshot::{Observed, ObservedNode, ResourceHistory};

/// The largest piece of a blob under one key: etcd refuses requests over 1.5 MiB.
pub const BLOB_CHUNK_BYTES: usize = 1_000_000;

/// zstd's level: fast, and about as small as deflate's best on this JSON.
const ZSTD_LEVEL: i32 = 3;

/// Why an input cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A blob is missing from what was read (the input is incomplete; not retryable).
    #[error("blob {0} of the input is missing")]
    Missing(String),
    /// A blob's content does not match its name: it was changed or damaged.
    #[error("blob {0} does not match its digest: the stored input was changed or damaged")]
    Tampered(String),
    /// A blob does not decompress or decode.
    #[error("blob {digest} cannot be read: {reason}")]
    Corrupt { digest: String, reason: String },
}

/// One node's part of the observed state: what a node blob holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeChunk {
    name: String,
    /// None for a node only histories mention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<ObservedNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<ResourceHistory>,
}

/// What the encoder made of one part last time: compared before anything is
/// serialized again.
#[derive(Clone, Debug)]
struct Encoded<T> {
    content: T,
    blob: BlobRef,
    compressed: Vec<u8>,
}

/// Encodes decision inputs, remembering the last spec and each node's last state so
/// that only what changed is serialized, hashed and compressed again.
#[derive(Debug, Default)]
pub struct InputEncoder {
    spec: Option<Encoded<Vec<Object>>>,
    nodes: HashMap<String, Encoded<NodeChunk>>,
    history: Option<Encoded<Vec<ResourceHistory>>>,
}

impl InputEncoder {
    /// The input record of `snapshot`. The blobs it names are available from `blob`
    /// until the next `encode`.
    pub fn encode(&mut self, snapshot: &Snapshot) -> DecisionInput {
        let observed = &snapshot.observed;
        if self.spec.as_ref().is_none_or(|spec| spec.content != snapshot.objects) {
            let values: Vec<serde_json::Value> = snapshot.objects.iter().map(Object::to_value).collect();
            self.spec = Some(encode_part(snapshot.objects.clone(), &values));
        }
        let spec = self.spec.as_ref().map(|spec| spec.blob.clone()).unwrap_or_else(|| BlobRef(String::new(), 0));
        let by_node = observed.history.windows(2).all(|pair| pair[0].node <= pair[1].node);
        let names: BTreeSet<&str> = observed.nodes.keys().map(String::as_str).chain(observed.history.iter().map(|history| history.node.as_str())).collect();
        let mut nodes = Vec::with_capacity(names.len());
        let mut start = 0;
        for name in names {
            let histories: &[ResourceHistory] = if by_node {
                let end = start + observed.history[start..].iter().take_while(|history| history.node == name).count();
                let slice = &observed.history[start..end];
                start = end;
                slice
            } else {
                &[]
            };
            let node = observed.nodes.get(name);
            let unchanged = self.nodes.get(name).is_some_and(|last| last.content.node.as_ref() == node && last.content.history == histories);
            if !unchanged {
                let chunk = NodeChunk { name: name.to_string(), node: node.cloned(), history: histories.to_vec() };
                let encoded = encode_part(chunk.clone(), &chunk);
                self.nodes.insert(name.to_string(), encoded);
            }
            if let Some(last) = self.nodes.get(name) {
                nodes.push(last.blob.clone());
            }
        }
        // Nodes gone from the cluster are forgotten.
        if self.nodes.len() > nodes.len() {
            let kept: BTreeSet<&BlobRef> = nodes.iter().collect();
            self.nodes.retain(|_, last| kept.contains(&last.blob));
        }
        let history = if by_node {
            self.history = None;
            None
        } else {
            if self.history.as_ref().is_none_or(|last| last.content != observed.history) {
                self.history = Some(encode_part(observed.history.clone(), &observed.history));
            }
            self.history.as_ref().map(|last| last.blob.clone())
        };
        DecisionInput { now: snapshot.now, quorum: observed.quorum, dc: observed.dc.clone(), spec, nodes, history }
    }

    /// The compressed bytes of a blob the last `encode` named.
    pub fn blob(&self, blob: &BlobRef) -> Option<&[u8]> {
        let spec = self.spec.iter().map(|spec| (&spec.blob, &spec.compressed));
        let nodes = self.nodes.values().map(|node| (&node.blob, &node.compressed));
        let history = self.history.iter().map(|history| (&history.blob, &history.compressed));
        spec.chain(nodes).chain(history).find(|(name, _)| *name == blob).map(|(_, bytes)| bytes.as_slice())
    }
}

/// Serializes `value`, names it by digest and compresses it.
fn encode_part<T, S: Serialize + ?Sized>(content: T, value: &S) -> Encoded<T> {
    // Serializing our own types to JSON cannot fail (string keys, no non-finite floats).
    let json = serde_json::to_vec(value).unwrap_or_default();
    let digest = digest_of(&json);
    let compressed = zstd::bulk::compress(&json, ZSTD_LEVEL).unwrap_or_default();
    let chunks = u32::try_from(compressed.len().div_ceil(BLOB_CHUNK_BYTES).max(1)).unwrap_or(u32::MAX);
    Encoded { content, blob: BlobRef(digest, chunks), compressed }
}

/// The first 128 bits of SHA-256, in hex.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
}

/// A blob's compressed bytes cut into the pieces stored under one key each.
pub fn chunks(compressed: &[u8]) -> impl Iterator<Item = &[u8]> {
    let pieces: Box<dyn Iterator<Item = &[u8]>> =
        if compressed.is_empty() { Box::new(std::iter::once(compressed)) } else { Box::new(compressed.chunks(BLOB_CHUNK_BYTES)) };
    pieces
}

/// Decompresses a blob, checks it against its name and decodes it.
fn open<T: for<'de> Deserialize<'de>>(blob: &BlobRef, blobs: &HashMap<String, Vec<u8>>) -> Result<T, CodecError> {
    let digest = &blob.0;
    let compressed = blobs.get(digest).ok_or_else(|| CodecError::Missing(digest.clone()))?;
    let json = zstd::stream::decode_all(compressed.as_slice()).map_err(|error| CodecError::Corrupt { digest: digest.clone(), reason: error.to_string() })?;
    if &digest_of(&json) != digest {
        return Err(CodecError::Tampered(digest.clone()));
    }
    serde_json::from_slice(&json).map_err(|error| CodecError::Corrupt { digest: digest.clone(), reason: error.to_string() })
}

/// The snapshot an input was encoded from, given its blobs' compressed bytes by digest.
pub fn decode_input(input: &DecisionInput, blobs: &HashMap<String, Vec<u8>>) -> Result<Snapshot, CodecError> {
    let values: Vec<serde_json::Value> = open(&input.spec, blobs)?;
    let objects = values
        .into_iter()
        .map(|value| Object::from_value(value).map_err(|error| CodecError::Corrupt { digest: input.spec.0.clone(), reason: error.to_string() }))
        .collect::<Result<Vec<Object>, CodecError>>()?;
    let mut observed = Observed { quorum: input.quorum, dc: input.dc.clone(), ..Observed::default() };
    for blob in &input.nodes {
        let chunk: NodeChunk = open(blob, blobs)?;
        if let Some(node) = chunk.node {
            observed.nodes.insert(chunk.name, node);
        }
        observed.history.extend(chunk.history);
    }
    if let Some(blob) = &input.history {
        observed.history = open(blob, blobs)?;
    }
    Ok(Snapshot { objects, observed, now: input.now })
}

/// How many of the resources that cannot run a history record names (the first in the
/// plan's order; the rest are counted): every decision during a large apply has
/// thousands, and at 300 nodes × 10,000 resources a record naming them all was
/// 636 KB, written at every decision, a thousand of them kept (issue 18). The
/// decision's digest still covers every one.
pub const NOT_RUNNING_NAMED: usize = 100;

/// The history record of a decision (what `history/<revision>` holds): its actions
/// (`Plan::live_actions`: not the fence devices' starts, which the fencer runs on
/// demand), what cannot run and why, fencing, and the decision's digest (of every
/// action).
pub fn history_record(plan: &Plan, input_revision: i64, term: i64, time: i64) -> HistoryRecord {
    let mut cannot_run = plan.resources.iter().filter_map(not_running_line);
    let not_running: Vec<String> = cannot_run.by_ref().take(NOT_RUNNING_NAMED).collect();
    HistoryRecord {
        input_revision,
        term,
        time,
        actions: plan.live_actions().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect(),
        not_running,
        not_running_more: cannot_run.count(),
        fencing: plan.fencing.iter().map(|fencing| format!("{} {}: {}", fencing.action, fencing.node, fencing.reason)).collect(),
        digest: Some(decision_digest(plan)),
        input_digest: None,
    }
}

/// Every resource of the plan that cannot run, as a record names it.
pub fn not_running_lines(plan: &Plan) -> Vec<String> {
    plan.resources.iter().filter_map(not_running_line).collect()
}

fn not_running_line(resource: &crate::scheduler::plan::ResourcePlan) -> Option<String> {
    resource.reason.as_ref().map(|reason| format!("{}: {reason}", resource.id))
}

/// The digest of what a plan decides: every instance's next placements, reason
/// code, whether it is left alone or failed, its start and promote gates, the
/// fencing, the actions. Two runs of the scheduler that decide alike have
/// the same digest; scores are left out (they are the reasons, not the decision), and
/// so is what a joining node is told to probe first (`NodePlan::probe_first`: an order
/// of work, not a placement).
pub fn decision_digest(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for resource in &plan.resources {
        let _ = write!(text, "R {}", resource.id);
        for placement in &resource.next {
            let _ = write!(text, " {}={}", placement.node, placement.role.as_str());
        }
        if let Some(reason) = &resource.reason {
            let _ = write!(text, " !{:?}", reason.code);
        }
        // What the agents act on besides the placement (`NodeAssignment::same_decision`
        // compares them too): left alone, failed, and the gates of starts and promotions.
        let _ = write!(text, " frozen={} failed={}", resource.frozen, resource.failed);
        for (kind, gates) in [("start", &resource.start_after), ("promote", &resource.promote_after)] {
            for gate in gates {
                let _ = write!(text, " {kind}-after={}:{:?}:{}:{}:{:?}", gate.resource, gate.action, gate.same_node, gate.at_least, gate.any_of);
            }
        }
        text.push('\n');
    }
    for fencing in &plan.fencing {
        let _ = writeln!(text, "F {} {}", fencing.node, fencing.action);
    }
    for action in &plan.actions {
        let _ = writeln!(text, "A {} {} {}", action.verb, action.resource, action.detail);
    }
    digest_of(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::{ExecStatus, OperationRecord};
    use crate::scheduler::schedule;
    use crate::scheduler::snapshot::NodeLiveness;

    fn snapshot() -> Snapshot {
        let text = "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n---\n\
            apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web, annotations: {pacer.io/owner: test}}\nspec: {agent: \"ocf:heartbeat:Dummy\"}\n---\n\
            apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: db}\nspec: {agent: \"ocf:heartbeat:Dummy\"}\n";
        let loaded = crate::api::manifest::load(&[crate::api::manifest::Source { name: "t.yaml".into(), text: text.into() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let mut objects: Vec<Object> = loaded.manifests.into_iter().map(|manifest| manifest.object).collect();
        objects[1].metadata.resource_version = Some("42".into());
        objects[1].metadata.creation_sequence = Some(7);
        let operation = |operation: &str, rc: i32| OperationRecord {
            operation: operation.into(),
            interval_ms: 0,
            call_id: 1,
            rc,
            expected_rc: 7,
            status: ExecStatus::Done,
            last_rc_change: Some(5),
            migrate_source: None,
            migrate_target: None,
            digest: None,
            restart_digest: None,
        };
        let mut observed = Observed { quorum: true, dc: Some("n1".into()), ..Observed::default() };
        for name in ["n1", "n2"] {
            let node = ObservedNode {
                liveness: NodeLiveness::Online,
                shutdown: false,
                attributes: [("fail-count-web#monitor_10000".to_string(), "2".to_string())].into(),
            };
            observed.nodes.insert(name.into(), node);
        }
        for (resource, node, rc) in [("db", "n1", 7), ("web", "n1", 0), ("web", "n2", 7), ("ghost", "n9", 7)] {
            observed.history.push(ResourceHistory {
                resource: resource.into(),
                node: node.into(),
                agent: Some("ocf:heartbeat:Dummy".into()),
                operations: vec![operation("monitor", rc)],
            });
        }
        Snapshot { objects, observed, now: 1_700_000_000 }
    }

    fn stored(encoder: &InputEncoder, input: &DecisionInput) -> HashMap<String, Vec<u8>> {
        input.blobs().map(|blob| (blob.0.clone(), encoder.blob(blob).expect("named blob").to_vec())).collect()
    }

    #[test]
    fn an_input_decodes_to_the_snapshot_it_was_encoded_from() {
        let snapshot = snapshot();
        let mut encoder = InputEncoder::default();
        let input = encoder.encode(&snapshot);
        assert_eq!(input.nodes.len(), 3, "n1, n2 and n9 (a node only a history names)");
        assert!(input.history.is_none());
        let decoded = decode_input(&input, &stored(&encoder, &input)).expect("decodes");
        assert_eq!(decoded, snapshot);
        assert_eq!(decision_digest(&schedule(&decoded)), decision_digest(&schedule(&snapshot)));
    }

    #[test]
    fn histories_out_of_node_order_keep_their_order() {
        let mut snapshot = snapshot();
        snapshot.observed.history.reverse();
        let mut encoder = InputEncoder::default();
        let input = encoder.encode(&snapshot);
        assert!(input.history.is_some());
        assert_eq!(decode_input(&input, &stored(&encoder, &input)).expect("decodes"), snapshot);
    }

    #[test]
    fn only_what_changed_gets_a_new_blob() {
        let mut snapshot = snapshot();
        let mut encoder = InputEncoder::default();
        let first = encoder.encode(&snapshot);
        snapshot.observed.nodes.get_mut("n2").expect("n2").attributes.insert("master-db".into(), "5".into());
        snapshot.now += 10;
        let second = encoder.encode(&snapshot);
        assert_eq!(first.spec, second.spec);
        assert_eq!(first.nodes[0], second.nodes[0]);
        assert_ne!(first.nodes[1], second.nodes[1]);
        assert_eq!(decode_input(&second, &stored(&encoder, &second)).expect("decodes"), snapshot);
        // Back to the first state: the same names as the first time.
        snapshot.observed.nodes.get_mut("n2").expect("n2").attributes.remove("master-db");
        assert_eq!(encoder.encode(&snapshot).nodes, first.nodes);
    }

    #[test]
    fn a_changed_or_missing_blob_is_named() {
        let snapshot = snapshot();
        let mut encoder = InputEncoder::default();
        let input = encoder.encode(&snapshot);
        let mut blobs = stored(&encoder, &input);
        let forged = zstd::bulk::compress(br#"{"name":"n1","node":{"liveness":"Offline"}}"#, 3).expect("compress");
        blobs.insert(input.nodes[0].0.clone(), forged);
        assert!(matches!(decode_input(&input, &blobs), Err(CodecError::Tampered(_))));
        blobs.remove(&input.nodes[0].0);
        assert!(matches!(decode_input(&input, &blobs), Err(CodecError::Missing(_))));
    }

    #[test]
    fn a_record_names_the_first_resources_that_cannot_run_and_counts_the_rest() {
        let mut plan = schedule(&snapshot());
        let template = plan.resources.first().cloned().expect("a resource");
        plan.resources = (0..NOT_RUNNING_NAMED + 50)
            .map(|n| crate::scheduler::plan::ResourcePlan {
                id: format!("r{n}"),
                reason: Some(crate::scheduler::plan::Reason { code: crate::scheduler::plan::ReasonCode::NoAllowedNode, text: "no node can run it".into() }),
                ..template.clone()
            })
            .collect();
        let record = history_record(&plan, 1, 1, 1);
        assert_eq!(record.not_running.len(), NOT_RUNNING_NAMED);
        assert_eq!(record.not_running.first().map(String::as_str), Some("r0: no node can run it"));
        assert_eq!(record.not_running_more, 50);
        plan.resources.truncate(3);
        let record = history_record(&plan, 1, 1, 1);
        assert_eq!((record.not_running.len(), record.not_running_more), (3, 0));
    }

    #[test]
    fn a_different_decision_has_a_different_digest() {
        let snapshot = snapshot();
        let plan = schedule(&snapshot);
        let mut other = plan.clone();
        other.actions.pop();
        assert_ne!(decision_digest(&plan), decision_digest(&other));
        assert_eq!(decision_digest(&plan), decision_digest(&schedule(&snapshot)));
    }
}
