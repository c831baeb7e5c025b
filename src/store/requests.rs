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
    /// etcd's operation limit allows (one for a handful of nodes). Returns the revision
    /// of the last write. A key that exists already (an id reused) is `Conflict`, and
    /// nothing of that batch is written.
    pub async fn create_requests(&self, requests: &[NewRequest]) -> Result<i64, StoreError> {
        let mut revision = 0;
        // Two operations per request (the comparison and the put).
        let per_batch = (self.max_txn_ops / 2).max(1);
        for batch in requests.chunks(per_batch) {
            let mut conditions = Vec::new();
            let mut operations = Vec::new();
            for (node, id, record) in batch {
                let key = self.keys().request(node, id);
                conditions.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
                operations.push(TxnOp::put(key.as_str(), encode(&key, record)?, None));
            }
            let txn = Txn::new().when(conditions).and_then(operations);
            let mut client = self.client();
            self.counts.write();
            let response = timeout("write a request", client.txn(txn)).await?;
            if !response.succeeded() {
                return Err(StoreError::Conflict { objects: batch.iter().map(|(node, id, _)| self.keys().request(node, id)).collect() });
            }
            revision = response.header().map(|header| header.revision()).unwrap_or_default();
        }
        Ok(revision)
    }
}
