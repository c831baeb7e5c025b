//! The leader's archive of decision inputs: for each decision it records under
//! `history/`, the snapshot the decision was made from (`state::history` cuts it into
//! content-addressed blobs) under `<prefix>.archive/`, so `pacer history replay` can
//! run the scheduler on it again; and, as records are trimmed, their inputs and the
//! blobs no kept input names any more.
//!
//! The leader counts references to blobs in memory: at the first decision of its term
//! it reads every stored input (their blob names only; blobs are not read) and the
//! names of the stored blobs, and deletes what a crash may have left behind — inputs
//! without a kept record, blobs no input names. Every write is guarded by the
//! election key, like every leader write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::api::records::{BlobRef, DecisionInput};
use crate::scheduler::Snapshot;
use crate::state::history::{InputEncoder, chunks};
use crate::store::{LeaderGuard, Store, StoreError};

/// What recording one input cost.
#[derive(Clone, Debug, Default)]
pub struct Archived {
    /// Bytes written: the input record and the blobs not stored before.
    pub bytes: usize,
    /// Blobs written.
    pub blobs: usize,
    /// Time to encode (compare, serialize what changed, hash, compress).
    pub encode: Duration,
    /// The digest of the input record's bytes, for the history record.
    pub input_digest: Option<String>,
}

/// The kept inputs and how many of them name each blob.
#[derive(Debug, Default)]
struct References {
    inputs: BTreeMap<i64, Vec<BlobRef>>,
    /// Per digest: the inputs naming it, and its number of pieces.
    counts: HashMap<String, (u32, u32)>,
}

impl References {
    fn add(&mut self, revision: i64, input: &DecisionInput) {
        let blobs: BTreeSet<BlobRef> = input.blobs().cloned().collect();
        for blob in &blobs {
            self.counts.entry(blob.0.clone()).or_insert((0, blob.1)).0 += 1;
        }
        self.inputs.insert(revision, blobs.into_iter().collect());
    }

    /// Forgets an input; returns the blobs nothing names any more.
    fn remove(&mut self, revision: i64) -> Vec<BlobRef> {
        let mut unnamed = Vec::new();
        for blob in self.inputs.remove(&revision).unwrap_or_default() {
            if let Some((count, _)) = self.counts.get_mut(&blob.0) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&blob.0);
                    unnamed.push(blob);
                }
            }
        }
        unnamed
    }
}

/// One term's archive state.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    encoder: InputEncoder,
    references: Option<References>,
}

impl Archive {
    /// Records the input of the decision at `revision` (before its history record is
    /// written, so a record never names an input that is not there). `kept`: the
    /// revisions of the history records kept.
    pub(crate) async fn record(
        &mut self,
        store: &Store,
        guard: &LeaderGuard,
        revision: i64,
        snapshot: &Snapshot,
        kept: &BTreeSet<i64>,
    ) -> Result<Archived, StoreError> {
        let keys = store.keys().clone();
        if self.references.is_none() {
            self.references = Some(load(store, guard, kept).await?);
        }
        let started = Instant::now();
        let input = self.encoder.encode(snapshot);
        let encode = started.elapsed();
        let references = self.references.get_or_insert_with(References::default);
        let mut writes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut blobs = 0;
        let mut written: BTreeSet<&str> = BTreeSet::new();
        for blob in input.blobs() {
            if references.counts.contains_key(&blob.0) || !written.insert(blob.0.as_str()) {
                continue;
            }
            let Some(compressed) = self.encoder.blob(blob) else {
                return Err(StoreError::Corrupt { key: keys.archive_blob_prefix(&blob.0), reason: "the encoder lost a blob it named".to_string() });
            };
            blobs += 1;
            for (index, piece) in chunks(compressed).enumerate() {
                writes.push((keys.archive_blob_chunk(&blob.0, u32::try_from(index).unwrap_or(u32::MAX)), Some(piece.to_vec())));
            }
        }
        let key = keys.archive_input(revision);
        let value = serde_json::to_vec(&input).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
        let input_digest = Some(crate::state::history::digest_of(&value));
        writes.push((key, Some(value)));
        let bytes = writes.iter().map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len)).sum();
        store.write_bytes_as_leader("write the decision input", writes, guard).await?;
        // A decision decided again at the same revision has replaced its input: the
        // old one's references go only now that the new one is stored (a failed write
        // leaves the old input, whose blobs must stay counted).
        let replaced = references.remove(revision);
        references.add(revision, &input);
        let orphans: Vec<(String, Option<Vec<u8>>)> =
            replaced.into_iter().filter(|blob| !references.counts.contains_key(&blob.0)).flat_map(|blob| blob_keys(store, &blob)).collect();
        store.write_bytes_as_leader("delete unnamed decision blobs", orphans, guard).await?;
        Ok(Archived { bytes, blobs, encode, input_digest })
    }

    /// Deletes the inputs of the trimmed decisions and the blobs only they named.
    pub(crate) async fn forget(&mut self, store: &Store, guard: &LeaderGuard, revisions: &[i64]) -> Result<(), StoreError> {
        let Some(references) = self.references.as_mut() else { return Ok(()) };
        let mut deletes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for &revision in revisions {
            deletes.push((store.keys().archive_input(revision), None));
            for blob in references.remove(revision) {
                deletes.extend(blob_keys(store, &blob));
            }
        }
        store.write_bytes_as_leader("delete trimmed decision inputs", deletes, guard).await?;
        Ok(())
    }
}

/// The deletions of a blob's pieces.
fn blob_keys(store: &Store, blob: &BlobRef) -> Vec<(String, Option<Vec<u8>>)> {
    (0..blob.1.max(1)).map(|index| (store.keys().archive_blob_chunk(&blob.0, index), None)).collect()
}

/// Reads what the archive holds, deletes what no kept record needs, and counts
/// references.
async fn load(store: &Store, guard: &LeaderGuard, kept: &BTreeSet<i64>) -> Result<References, StoreError> {
    let (inputs, broken) = store.list_inputs().await?;
    let mut references = References::default();
    let mut deletes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for (key, reason) in broken {
        tracing::warn!(%key, %reason, "deleting a decision input that does not decode");
        deletes.push((key, None));
    }
    for (revision, input) in &inputs {
        if kept.contains(revision) {
            references.add(*revision, input);
        } else {
            deletes.push((store.keys().archive_input(*revision), None));
        }
    }
    for (digest, keys) in store.list_blobs().await? {
        if !references.counts.contains_key(&digest) {
            deletes.extend(keys.into_iter().map(|key| (key, None)));
        }
    }
    if !deletes.is_empty() {
        tracing::info!(keys = deletes.len(), "deleting decision inputs and blobs no kept decision names");
    }
    store.write_bytes_as_leader("sweep the decision archive", deletes, guard).await?;
    Ok(references)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(spec: &str, nodes: &[&str]) -> DecisionInput {
        DecisionInput {
            now: 0,
            quorum: true,
            dc: None,
            spec: BlobRef(spec.into(), 1),
            nodes: nodes.iter().map(|digest| BlobRef((*digest).into(), 1)).collect(),
            history: None,
        }
    }

    #[test]
    fn a_blob_goes_only_when_no_kept_input_names_it() {
        let mut references = References::default();
        references.add(1, &input("spec-a", &["n1-a", "n2-a"]));
        references.add(2, &input("spec-a", &["n1-b", "n2-a"]));
        references.add(3, &input("spec-b", &["n1-b", "n2-a"]));
        let names = |blobs: Vec<BlobRef>| blobs.into_iter().map(|blob| blob.0).collect::<Vec<_>>();
        assert_eq!(names(references.remove(1)), vec!["n1-a".to_string()]);
        assert_eq!(names(references.remove(2)), vec!["spec-a".to_string()]);
        let mut last = names(references.remove(3));
        last.sort();
        assert_eq!(last, vec!["n1-b".to_string(), "n2-a".to_string(), "spec-b".to_string()]);
        assert!(references.counts.is_empty() && references.inputs.is_empty());
    }
}
