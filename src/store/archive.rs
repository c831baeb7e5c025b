//! The archive of decision inputs (`<prefix>.archive/`, see `keys`): reading inputs
//! and their blobs for `pacer history`, and what the leader needs to keep it — every
//! stored input (to count references to blobs) and the names of the stored blobs. The
//! leader writes through `write_bytes_as_leader`, guarded like every leader write.

use std::collections::{BTreeMap, HashMap};

use etcd_client::{GetOptions, Txn, TxnOp, TxnOpResponse};

use super::node::decode;
use super::{PAGE_KEYS, Store, StoreError, prefix_end};
use crate::api::records::{BlobRef, DecisionInput, HistoryRecord};

/// Ranges read in one transaction when fetching blobs.
const BLOBS_PER_TXN: usize = 64;

impl Store {
    /// The decision record `history/<revision>`, if kept.
    pub async fn read_history(&self, revision: i64) -> Result<Option<HistoryRecord>, StoreError> {
        let key = self.keys().history(revision);
        self.get_one(&key).await?.map(|value| decode(&key, &value)).transpose()
    }

    /// The stored input of the decision at `revision`, if kept.
    pub async fn read_input(&self, revision: i64) -> Result<Option<DecisionInput>, StoreError> {
        let key = self.keys().archive_input(revision);
        self.get_one(&key).await?.map(|value| decode(&key, &value)).transpose()
    }

    /// The compressed bytes of each blob named (its pieces joined in order), by
    /// digest; a blob with no stored piece is left out.
    pub async fn read_blobs<'a>(&self, blobs: impl Iterator<Item = &'a BlobRef>) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut digests: Vec<&str> = blobs.map(|blob| blob.0.as_str()).collect();
        digests.sort_unstable();
        digests.dedup();
        let mut found = HashMap::new();
        for batch in digests.chunks(BLOBS_PER_TXN) {
            let reads: Vec<TxnOp> =
                batch.iter().map(|digest| TxnOp::get(self.keys().archive_blob_prefix(digest), Some(GetOptions::new().with_prefix()))).collect();
            let response =
                self.metrics.read(self.kv().txn(Txn::new().and_then(reads))).await.map_err(StoreError::etcd("read the decision input".to_string()))?;
            for (digest, result) in batch.iter().zip(response.op_responses()) {
                let TxnOpResponse::Get(get) = result else { continue };
                let mut pieces: Vec<(&[u8], &[u8])> = get.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
                if pieces.is_empty() {
                    continue;
                }
                pieces.sort();
                found.insert((*digest).to_string(), pieces.into_iter().flat_map(|(_, value)| value.iter().copied()).collect());
            }
        }
        Ok(found)
    }

    /// Every stored input by revision, read at one revision; an input that does not
    /// decode is returned as its key with the reason.
    pub async fn list_inputs(&self) -> Result<(BTreeMap<i64, DecisionInput>, Vec<(String, String)>), StoreError> {
        let (_, entries) = self.list_prefix(&self.keys().archive_inputs_prefix(), None).await?;
        let mut inputs = BTreeMap::new();
        let mut broken = Vec::new();
        for entry in entries {
            match (self.keys().revision_of_archive_input(&entry.key), serde_json::from_slice::<DecisionInput>(&entry.value)) {
                (Some(revision), Ok(input)) => {
                    inputs.insert(revision, input);
                }
                (_, Err(error)) => broken.push((entry.key, error.to_string())),
                (None, Ok(_)) => broken.push((entry.key, "not an input's key".to_string())),
            }
        }
        Ok((inputs, broken))
    }

    /// The revisions of the stored inputs (values not read).
    pub async fn input_revisions(&self) -> Result<Vec<i64>, StoreError> {
        let keys = self.keys_only(&self.keys().archive_inputs_prefix()).await?;
        Ok(keys.iter().filter_map(|key| self.keys().revision_of_archive_input(key)).collect())
    }

    /// The stored blobs: each digest with the keys of its pieces (values not read).
    pub async fn list_blobs(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut blobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in self.keys_only(&self.keys().archive_blobs_prefix()).await? {
            if let Some(digest) = self.keys().digest_of_archive_blob(&key) {
                blobs.entry(digest.to_string()).or_default().push(key.clone());
            }
        }
        Ok(blobs)
    }

    /// The keys under `prefix`, in pages, without their values.
    async fn keys_only(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut keys = Vec::new();
        loop {
            let options = GetOptions::new().with_range(end.clone()).with_limit(PAGE_KEYS * 10).with_keys_only();
            let response = self.metrics.read(self.kv().get(start.clone(), Some(options))).await.map_err(StoreError::etcd(format!("list {prefix}")))?;
            keys.extend(response.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).to_string()));
            match response.kvs().last() {
                Some(last) if response.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok(keys),
            }
        }
    }

    pub(crate) async fn get_one(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let response = self.metrics.read(self.kv().get(key, None)).await.map_err(StoreError::etcd(format!("read {key}")))?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }
}
