//! The scheduler election: a key bound to the candidate's lease, created only if
//! absent. Winning gives a `LeaderGuard`, which every leader write takes: its
//! transaction compares the election key's lease with the guard's, so a deposed
//! leader's write fails (`StoreError::Conflict`) instead of overwriting its
//! successor's.

use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::Serialize;

use super::node::{encode, timeout};
use super::{Store, StoreError};

/// Proof of leadership for writes: the election key held by `lease` since `term`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderGuard {
    key: String,
    lease: i64,
    term: i64,
}

impl LeaderGuard {
    /// The election key's create revision: it grows with every new leader.
    pub fn term(&self) -> i64 {
        self.term
    }

    /// The lease that holds the election key (kept alive by the leader).
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The condition every leader write carries.
    pub(crate) fn compare(&self) -> Compare {
        Compare::lease(self.key.as_str(), CompareOp::Equal, self.lease)
    }
}

impl Store {
    /// The term of whoever leads now (the election key's create revision), `None`
    /// while no one does.
    pub async fn leader_term(&self) -> Result<Option<i64>, StoreError> {
        let mut client = self.kv();
        let response = self.metrics.read(timeout("read the election key", client.get(self.keys().election(), None))).await?;
        Ok(response.kvs().first().map(etcd_client::KeyValue::create_revision))
    }

    /// One attempt at leadership: grants a lease of `ttl` and creates the election key
    /// with `leader` (the value people see) bound to it, if no one holds the key.
    /// Returns the guard and when the lease was granted, or `None` (the lease given
    /// back) when another leads.
    pub async fn campaign<T: Serialize>(&self, leader: &T, ttl: Duration) -> Result<Option<(LeaderGuard, Instant)>, StoreError> {
        let key = self.keys().election();
        let granted_at = Instant::now();
        let lease = self.grant_lease(ttl).await?;
        let value = encode(&key, leader)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value, Some(PutOptions::new().with_lease(lease))), TxnOp::get(key.as_str(), None)]);
        let mut client = self.client();
        let response = self.metrics.write(timeout("campaign", client.txn(txn))).await?;
        if !response.succeeded() {
            let _ = self.revoke_lease(lease).await;
            return Ok(None);
        }
        let term = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().map(etcd_client::KeyValue::create_revision),
                _ => None,
            })
            .unwrap_or_default();
        Ok(Some((LeaderGuard { key, lease, term }, granted_at)))
    }
}
