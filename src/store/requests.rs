//! `requests/<node>/<id>`: cleanups and refreshes asked of a node's agent. The
//! command creates them (never overwrites one); the node's agent deletes each once
//! applied, with its own guarded writes (`node::guarded_writes`).

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use crate::api::records::RequestRecord;

use super::node::{encode, timeout};
use super::{Store, StoreError};

/// One request to create: the node it is addressed to, its id, the record.
pub type NewRequest = (String, String, RequestRecord);

impl Store {
    /// Creates each request, only if its key is absent, in as few transactions as
    /// etcd's operation and byte limits allow (one for a handful of nodes). Returns the
    /// revision of the last write. A key that exists already (an id reused) is
    /// `Conflict`, and nothing of that batch is written — but batches before it stay
    /// written: several batches are not one change (each request stands alone, and
    /// its node's agent applies it whether or not the others exist).
    pub async fn create_requests(&self, requests: &[NewRequest]) -> Result<i64, StoreError> {
        let mut encoded = Vec::with_capacity(requests.len());
        for (node, id, record) in requests {
            let key = self.keys().request(node, id);
            let value = encode(&key, record)?;
            encoded.push((key, value));
        }
        // Two operations per request (the comparison and the put).
        let per_batch = (self.max_txn_ops / 2).max(1);
        let mut batches: Vec<Vec<(String, String)>> = Vec::new();
        let mut bytes = 0;
        for (key, value) in encoded {
            let size = key.len() * 2 + value.len();
            let full = batches.last().is_none_or(|batch| batch.len() >= per_batch || (!batch.is_empty() && bytes + size > self.max_txn_bytes));
            if full {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(batch) = batches.last_mut() {
                batch.push((key, value));
            }
        }
        let mut revision = 0;
        for batch in batches {
            let conditions: Vec<Compare> = batch.iter().map(|(key, _)| Compare::create_revision(key.as_str(), CompareOp::Equal, 0)).collect();
            let operations: Vec<TxnOp> = batch.iter().map(|(key, value)| TxnOp::put(key.as_str(), value.as_str(), None)).collect();
            let txn = Txn::new().when(conditions).and_then(operations);
            let mut client = self.client();
            let response = self.metrics.write(timeout("write a request", client.txn(txn))).await?;
            if !response.succeeded() {
                return Err(StoreError::Conflict { objects: batch.into_iter().map(|(key, _)| key).collect() });
            }
            revision = response.header().map(|header| header.revision()).unwrap_or_default();
        }
        Ok(revision)
    }
}
