//! What node agents and the scheduler write besides the spec: node leases, resource
//! statuses, run-time node attributes and per-node assignments. Every agent write
//! requires the agent's lease still to hold the node's key, so an agent that lost its
//! lease (and may have been replaced) cannot overwrite fresh state.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Keys, Store, StoreError};
use crate::api::records::{FenceResultRecord, NodeAssignment, NodeAttributeRecord, NodeHeartbeat, Reports, ResourceStatus};

/// How long a single request of the agent's may take before it counts as failed: the
/// lease logic must notice an unreachable etcd well within a lease.
pub const AGENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a guarded write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum GuardedWriteError {
    /// The node's key is no longer held by this lease (it expired, or another agent
    /// took the node). Not retryable with this lease.
    #[error("lease {lease:x} no longer holds node {node}")]
    LeaseLost { node: String, lease: i64 },
    /// etcd did not answer in time or refused. Retryable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A node agent's handle for its writes: the node and the lease that holds its key.
#[derive(Clone, Debug)]
pub struct NodeSession {
    pub node: String,
    pub lease: i64,
}

impl Store {
    /// Grants a lease of `ttl` (whole seconds, at least 1).
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64, StoreError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut client = self.client();
        let response = timeout("grant lease", client.lease_grant(seconds, None)).await?;
        Ok(response.id())
    }

    /// Revokes a lease: every key bound to it is deleted at once.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        let mut client = self.client();
        timeout("revoke lease", client.lease_revoke(lease)).await?;
        Ok(())
    }

    /// Renews `lease` once if it still holds `node`'s key and was granted for `ttl`:
    /// the instant the renewal was sent (the lease lasts its full TTL from then) when
    /// the key exists bound to it and etcd renewed it. An agent that restarts within
    /// its lease resumes it this way — its resources go on running and the scheduler
    /// sees nothing change — instead of waiting for it to lapse and having the node
    /// fenced. A lease of another TTL is not resumed: the agent's self-fencing
    /// deadline is reckoned from its own.
    pub async fn renew_if_holding(&self, node: &str, lease: i64, ttl: Duration) -> Result<Option<std::time::Instant>, StoreError> {
        if self.node_lease_id(node).await? != Some(lease) {
            return Ok(None);
        }
        let mut client = self.client();
        let mut sent = std::time::Instant::now();
        let renewal = async {
            let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
            sent = std::time::Instant::now();
            keeper.keep_alive().await?;
            responses.message().await
        };
        let answer = timeout("renew lease", renewal).await?;
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        Ok(answer.filter(|answer| answer.ttl() == seconds).map(|_| sent))
    }

    /// The lease holding `node`'s key, if the key exists.
    pub async fn node_lease_id(&self, node: &str) -> Result<Option<i64>, StoreError> {
        let mut client = self.client();
        let key = self.keys().node_lease(node);
        let response = timeout("read node lease", client.get(key.as_str(), None)).await?;
        Ok(response.kvs().first().map(etcd_client::KeyValue::lease).filter(|lease| *lease != 0))
    }

    /// Claims `node` for the agent holding `lease`: creates `nodes/<node>/lease` bound
    /// to it. Returns `false` when another live agent holds the node (its key exists).
    pub async fn claim_node<T: Serialize>(&self, node: &str, lease: i64, heartbeat: &T) -> Result<bool, StoreError> {
        self.claim(&self.keys().node_lease(node), lease, heartbeat).await
    }

    /// Creates `key` bound to `lease` if it does not exist; `false` when someone else
    /// holds it. The building block of node claims and the scheduler election.
    pub async fn claim<T: Serialize>(&self, key: &str, lease: i64, value: &T) -> Result<bool, StoreError> {
        let key = key.to_string();
        let value = encode(&key, value)?;
        let txn = Txn::new().when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
            key.as_str(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
        let mut client = self.client();
        let response = timeout("claim node", client.txn(txn)).await?;
        Ok(response.succeeded())
    }

    /// Writes `key` (or deletes it, for `None`) if `session`'s lease still holds the
    /// node. `bind_to_lease`: the key vanishes with the lease. Returns the revision of
    /// the write.
    pub async fn guarded_write(&self, session: &NodeSession, key: &str, value: Option<String>, bind_to_lease: bool) -> Result<i64, GuardedWriteError> {
        let guard = Compare::lease(self.keys().node_lease(&session.node), CompareOp::Equal, session.lease);
        let operation = match value {
            Some(value) => {
                let options = bind_to_lease.then(|| PutOptions::new().with_lease(session.lease));
                TxnOp::put(key, value, options)
            }
            None => TxnOp::delete(key, None),
        };
        let txn = Txn::new().when([guard]).and_then([operation]);
        let mut client = self.client();
        let response = timeout("write node state", client.txn(txn)).await?;
        if !response.succeeded() {
            return Err(GuardedWriteError::LeaseLost { node: session.node.clone(), lease: session.lease });
        }
        Ok(response.header().map(|header| header.revision()).unwrap_or_default())
    }

    /// Reads every key under `prefix`, decoded, with the revision of the read. A value
    /// that does not decode (written by hand, or by another version) is skipped with a
    /// warning naming its key: one bad record must not stop an agent or the scheduler.
    pub async fn read_records<T: DeserializeOwned>(&self, prefix: &str) -> Result<(i64, Vec<(String, T, i64)>), StoreError> {
        let mut client = self.client();
        let response = timeout("read records", client.get(prefix, Some(GetOptions::new().with_prefix()))).await?;
        let revision = response.header().map(|header| header.revision()).unwrap_or_default();
        let mut records = Vec::new();
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key()).to_string();
            match decode(&key, kv.value()) {
                Ok(record) => records.push((key, record, kv.mod_revision())),
                Err(error) => tracing::warn!(%error, "skipping a record that does not decode"),
            }
        }
        Ok((revision, records))
    }

    /// Reads every heartbeat, status and run-time attribute at one revision. A record
    /// that does not decode is skipped with a warning (one bad key must not blind the
    /// scheduler to the rest).
    pub async fn read_reports(&self) -> Result<(i64, Reports), StoreError> {
        let keys = self.keys();
        let prefixes = [keys.nodes_prefix(), keys.statuses_prefix(), keys.attributes_prefix(), keys.fencing_prefix()];
        let txn = Txn::new().and_then(prefixes.iter().map(|prefix| TxnOp::get(prefix.as_str(), Some(GetOptions::new().with_prefix()))).collect::<Vec<_>>());
        let mut client = self.client();
        let response = timeout("read node reports", client.txn(txn)).await?;
        let revision = response.header().map(|header| header.revision()).unwrap_or_default();
        let mut reports = Reports::default();
        for (index, op) in response.op_responses().into_iter().enumerate() {
            let TxnOpResponse::Get(get) = op else { continue };
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key()).to_string();
                let skip = |error: StoreError| tracing::warn!(%error, "skipping a record that does not decode");
                match index {
                    0 => {
                        if keys.node_of_lease(&key).is_some() {
                            match decode::<NodeHeartbeat>(&key, kv.value()) {
                                Ok(heartbeat) => {
                                    reports.heartbeats.insert(heartbeat.node.clone(), heartbeat);
                                }
                                Err(error) => skip(error),
                            }
                        }
                    }
                    1 => match decode::<ResourceStatus>(&key, kv.value()) {
                        Ok(status) => reports.statuses.push(status),
                        Err(error) => skip(error),
                    },
                    3 => {
                        if Keys::node_and_name(&prefixes[3], &key).is_some_and(|(_, kind)| kind == "result") {
                            match decode::<FenceResultRecord>(&key, kv.value()) {
                                Ok(result) if result.succeeded && result.action == "on" => {
                                    reports.unfenced.insert(result.target);
                                }
                                Ok(result) if result.succeeded => {
                                    reports.fenced.insert(result.target);
                                }
                                Ok(_) => {}
                                Err(error) => skip(error),
                            }
                        }
                    }
                    _ => {
                        let Some((node, name)) = Keys::node_and_name(&prefixes[2], &key) else { continue };
                        match decode::<NodeAttributeRecord>(&key, kv.value()) {
                            Ok(record) => {
                                reports.attributes.entry(node.to_string()).or_default().insert(name.to_string(), record);
                            }
                            Err(error) => skip(error),
                        }
                    }
                }
            }
        }
        Ok((revision, reports))
    }

    /// Forgets what a lost node reported (its statuses and run-time attributes): it
    /// runs nothing any more — it was fenced, or fencing is disabled and the cluster
    /// takes it as down. Only while the node has no live agent (its lease key is
    /// absent), so fresh reports of an agent that came back are never erased; and only
    /// under `guard` (the leader's). Returns whether it happened.
    pub async fn forget_node_reports(&self, node: &str, guard: Option<Compare>) -> Result<bool, StoreError> {
        let keys = self.keys();
        let mut conditions = vec![Compare::create_revision(keys.node_lease(node), CompareOp::Equal, 0)];
        conditions.extend(guard);
        let txn = Txn::new().when(conditions).and_then([
            TxnOp::delete(keys.node_statuses_prefix(node), Some(DeleteOptions::new().with_prefix())),
            TxnOp::delete(keys.node_attributes_prefix(node), Some(DeleteOptions::new().with_prefix())),
        ]);
        let mut client = self.client();
        let response = timeout("forget a lost node", client.txn(txn)).await?;
        Ok(response.succeeded())
    }

    /// Writes the assignments that differ from what is stored (an unchanged decision
    /// writes nothing) and deletes those of nodes no longer in the plan, in
    /// transactions of at most the store's operation limit, each guarded by `guard`
    /// when given (the leader's election key). Returns the number of keys written or
    /// deleted.
    pub async fn write_assignments(&self, assignments: &BTreeMap<String, NodeAssignment>, guard: Option<Compare>) -> Result<usize, StoreError> {
        let prefix = self.keys().plans_prefix();
        let (_, stored) = self.read_records::<serde_json::Value>(&prefix).await?;
        let stored: BTreeMap<String, serde_json::Value> = stored.into_iter().map(|(key, value, _)| (key, value)).collect();
        let mut operations = Vec::new();
        for (node, assignment) in assignments {
            let key = self.keys().plan(node);
            // The input revision alone changing is not a new decision. A stored plan that
            // does not decode is different, so it is rewritten.
            let unchanged =
                stored.get(&key).and_then(|previous| NodeAssignment::deserialize(previous).ok()).is_some_and(|previous| previous.same_decision(assignment));
            if unchanged {
                continue;
            }
            let value = serde_json::to_value(assignment).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: error.to_string() })?;
            operations.push(TxnOp::put(key, value.to_string(), None));
        }
        for key in stored.keys() {
            let node = key.strip_prefix(&prefix).unwrap_or_default();
            if !assignments.contains_key(node) {
                operations.push(TxnOp::delete(key.as_str(), None));
            }
        }
        let written = operations.len();
        let mut remaining = operations;
        while !remaining.is_empty() {
            let batch: Vec<TxnOp> = remaining.drain(..remaining.len().min(self.max_txn_ops.saturating_sub(1).max(1))).collect();
            self.write_guarded("write assignments", batch, guard.clone()).await?;
        }
        Ok(written)
    }

    /// One transaction of the leader's: `operations`, if `guard` (its election
    /// comparison) still holds. A failed guard is `Conflict`: the writer was deposed.
    pub async fn write_guarded(&self, action: &str, operations: Vec<TxnOp>, guard: Option<Compare>) -> Result<(), StoreError> {
        let mut txn = Txn::new();
        if let Some(guard) = guard {
            txn = txn.when([guard]);
        }
        let mut client = self.client();
        let response = timeout(action, client.txn(txn.and_then(operations))).await?;
        if !response.succeeded() {
            return Err(StoreError::Conflict { objects: vec!["the scheduler's election key".into()] });
        }
        Ok(())
    }

    /// Puts a JSON record under `guard`.
    pub async fn put_guarded<T: Serialize>(&self, key: &str, value: &T, guard: Option<Compare>) -> Result<(), StoreError> {
        let value = encode(key, value)?;
        self.write_guarded("write a record", vec![TxnOp::put(key, value, None)], guard).await
    }

    /// Deletes a key under `guard`.
    pub async fn delete_guarded(&self, key: &str, guard: Option<Compare>) -> Result<(), StoreError> {
        self.write_guarded("delete a record", vec![TxnOp::delete(key, None)], guard).await
    }

    /// The record stored exactly under `key`, if any (and if it decodes).
    pub async fn read_one<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let (_, records) = self.read_records::<T>(key).await?;
        Ok(records.into_iter().find(|(found, _, _)| found == key).map(|(_, record, _)| record))
    }

    /// Writes a decision's record under `history/<revision>` and deletes the oldest
    /// beyond `limit` (at most 100 per call), under `guard`.
    pub async fn record_history<T: Serialize>(&self, revision: i64, record: &T, limit: u32, guard: Option<Compare>) -> Result<(), StoreError> {
        let key = self.keys().history(revision);
        let value = encode(&key, record)?;
        let mut client = self.client();
        let existing = timeout("read history", client.get(self.keys().history_prefix(), Some(GetOptions::new().with_prefix().with_keys_only()))).await?;
        let mut keys: Vec<String> = existing.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).to_string()).filter(|existing| *existing != key).collect();
        keys.sort();
        let excess = (keys.len() + 1).saturating_sub(limit.max(1) as usize);
        let mut operations = vec![TxnOp::put(key.as_str(), value, None)];
        operations.extend(keys.iter().take(excess.min(100)).map(|old| TxnOp::delete(old.as_str(), None)));
        self.write_guarded("write history", operations, guard).await
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt { key: key.to_string(), reason: format!("encode: {error}") })
}

/// Decodes a JSON record, naming its key when it does not decode.
pub fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|error| StoreError::Corrupt { key: key.to_string(), reason: format!("not a valid record: {error}") })
}

async fn timeout<T>(action: &str, request: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, StoreError> {
    match tokio::time::timeout(AGENT_REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|source| StoreError::Etcd { action: action.to_string(), source }),
        Err(_) => {
            Err(StoreError::Etcd { action: action.to_string(), source: etcd_client::Error::InvalidArgs(format!("no answer within {AGENT_REQUEST_TIMEOUT:?}")) })
        }
    }
}
