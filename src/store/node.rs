//! What node agents and the scheduler write besides the spec: node leases, resource
//! statuses, run-time node attributes and per-node assignments. Every agent write
//! requires the agent's lease still to hold the node's key, so an agent that lost its
//! lease (and may have been replaced) cannot overwrite fresh state.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{LeaderGuard, Store, StoreError};

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

/// A renewal etcd confirmed: when it was sent (the lease lasts its TTL from then) and
/// the TTL etcd answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    pub sent: std::time::Instant,
    pub ttl_seconds: i64,
}

/// How claiming a node's key again ended (`Store::reclaim_node`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// `lease` holds the key, renewed (or granted) at `renewed_at`.
    Claimed { lease: i64, renewed_at: std::time::Instant },
    /// Another lease holds the key: another agent has the node.
    HeldByAnother,
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
        let response = self.metrics.write(timeout("grant lease", client.lease_grant(seconds, None))).await?;
        Ok(response.id())
    }

    /// Revokes a lease: every key bound to it is deleted at once.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        let mut client = self.client();
        self.metrics.write(timeout("revoke lease", client.lease_revoke(lease))).await?;
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
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        Ok(self.renew_holding(node, lease).await?.filter(|renewal| renewal.ttl_seconds == seconds).map(|renewal| renewal.sent))
    }

    /// Renews `lease` once if it still holds `node`'s key, whatever its TTL: `None` when
    /// the key is absent or bound to another lease, or etcd answers that the lease is
    /// gone. The TTL etcd answers may differ from the one asked for (etcd raises a TTL
    /// below its minimum): that says nothing about whether the lease holds the node.
    pub async fn renew_holding(&self, node: &str, lease: i64) -> Result<Option<Renewal>, StoreError> {
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
        match timeout("renew lease", renewal).await? {
            Some(answer) if answer.ttl() > 0 => Ok(Some(Renewal { sent, ttl_seconds: answer.ttl() })),
            Some(_) => Ok(None),
            None => {
                Err(StoreError::Etcd { action: "renew lease".into(), source: etcd_client::Error::InvalidArgs("the keep-alive stream ended unanswered".into()) })
            }
        }
    }

    /// Claims `node`'s key again with a new lease if it is absent (after etcd let the
    /// session's lease expire), idempotently: `own` are this agent's leases that may hold
    /// the key — the session's, and every lease granted by an earlier attempt whose
    /// claim got no answer (a lost answer, a timeout: etcd may have applied it). A key
    /// found bound to one of them is this agent's: that lease is renewed and taken, not
    /// mistaken for another agent's (which would make the node self-fence, and leave
    /// its key to a lease nobody renews). The lease granted here is added to `own`
    /// before its claim is sent, so a caller that gives up waiting keeps it; `own` is
    /// emptied once the key is known.
    pub async fn reclaim_node<T: Serialize>(&self, node: &str, ttl: Duration, heartbeat: &T, own: &mut Vec<i64>) -> Result<Reclaim, StoreError> {
        if let Some(taken) = self.take_own(node, own).await? {
            return Ok(taken);
        }
        let granted_at = std::time::Instant::now();
        let lease = self.grant_lease(ttl).await?;
        own.push(lease);
        if self.claim_node(node, lease, heartbeat).await? {
            own.clear();
            return Ok(Reclaim::Claimed { lease, renewed_at: granted_at });
        }
        own.retain(|other| *other != lease);
        let _ = self.revoke_lease(lease).await;
        // The key exists: perhaps an earlier attempt's claim landed since the check.
        if let Some(taken) = self.take_own(node, own).await? {
            return Ok(taken);
        }
        own.clear();
        Ok(Reclaim::HeldByAnother)
    }

    /// The key of `node`, if bound to one of `own` and that lease renewed: taken.
    async fn take_own(&self, node: &str, own: &mut Vec<i64>) -> Result<Option<Reclaim>, StoreError> {
        let Some(holder) = self.node_lease_id(node).await?.filter(|holder| own.contains(holder)) else { return Ok(None) };
        let Some(renewal) = self.renew_holding(node, holder).await? else { return Ok(None) };
        own.clear();
        Ok(Some(Reclaim::Claimed { lease: holder, renewed_at: renewal.sent }))
    }

    /// The lease holding `node`'s key, if the key exists.
    pub async fn node_lease_id(&self, node: &str) -> Result<Option<i64>, StoreError> {
        let mut client = self.client();
        let key = self.keys().node_lease(node);
        let response = self.metrics.read(timeout("read node lease", client.get(key.as_str(), None))).await?;
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
        let response = self.metrics.write(timeout("claim node", client.txn(txn))).await?;
        Ok(response.succeeded())
    }

    /// Writes `key` (or deletes it, for `None`) if `session`'s lease still holds the
    /// node. `bind_to_lease`: the key vanishes with the lease. Returns the revision of
    /// the write.
    pub async fn guarded_write(&self, session: &NodeSession, key: &str, value: Option<String>, bind_to_lease: bool) -> Result<i64, GuardedWriteError> {
        self.guarded_write_with(session, key, value, bind_to_lease, Vec::new()).await
    }

    /// `guarded_write`, with `also` (unbound puts: the events the write's fact makes)
    /// in the same transaction: both happen or neither does.
    pub async fn guarded_write_with(
        &self,
        session: &NodeSession,
        key: &str,
        value: Option<String>,
        bind_to_lease: bool,
        also: Vec<(String, String)>,
    ) -> Result<i64, GuardedWriteError> {
        let guard = Compare::lease(self.keys().node_lease(&session.node), CompareOp::Equal, session.lease);
        let operation = match value {
            Some(value) => {
                let options = bind_to_lease.then(|| PutOptions::new().with_lease(session.lease));
                TxnOp::put(key, value, options)
            }
            None => TxnOp::delete(key, None),
        };
        let operations: Vec<TxnOp> = std::iter::once(operation).chain(also.into_iter().map(|(key, value)| TxnOp::put(key, value, None))).collect();
        let txn = Txn::new().when([guard]).and_then(operations);
        let mut client = self.client();
        let response = self.metrics.write(timeout("write node state", client.txn(txn))).await?;
        if !response.succeeded() {
            return Err(GuardedWriteError::LeaseLost { node: session.node.clone(), lease: session.lease });
        }
        Ok(response.header().map(|header| header.revision()).unwrap_or_default())
    }

    /// `guarded_write_with` (unbound), and only if every key of `unchanged` still has the
    /// mod revision given (0: the key does not exist): a write decided on a view of
    /// other keys fails when any of them changed meanwhile. `Ok(None)` when one did
    /// (not an error: the caller decides again on a fresher view); `LeaseLost` when the
    /// lease no longer holds the node. The lease is compared in an outer transaction
    /// and the revisions in a nested one, so the two refusals are told apart.
    pub async fn guarded_write_unless_changed(
        &self,
        session: &NodeSession,
        key: &str,
        value: String,
        also: Vec<(String, String)>,
        unchanged: &[(String, i64)],
    ) -> Result<Option<i64>, GuardedWriteError> {
        let guard = Compare::lease(self.keys().node_lease(&session.node), CompareOp::Equal, session.lease);
        let compares: Vec<Compare> = unchanged.iter().map(|(key, revision)| Compare::mod_revision(key.as_str(), CompareOp::Equal, *revision)).collect();
        let operations: Vec<TxnOp> = std::iter::once((key.to_string(), value)).chain(also).map(|(key, value)| TxnOp::put(key, value, None)).collect();
        let inner = Txn::new().when(compares).and_then(operations);
        let txn = Txn::new().when([guard]).and_then([TxnOp::txn(inner)]);
        let mut client = self.client();
        let response = self.metrics.write(timeout("write node state", client.txn(txn))).await?;
        if !response.succeeded() {
            return Err(GuardedWriteError::LeaseLost { node: session.node.clone(), lease: session.lease });
        }
        let written = response.op_responses().into_iter().any(|answer| matches!(answer, etcd_client::TxnOpResponse::Txn(inner) if inner.succeeded()));
        Ok(written.then(|| response.header().map(|header| header.revision()).unwrap_or_default()))
    }

    /// Writes (or deletes, for `None`) several unbound keys if `session`'s lease still
    /// holds the node, in as few transactions as etcd's limits allow (operations and
    /// bytes): a node reporting a thousand probes writes them in a handful of requests,
    /// not a thousand. The writes come in groups, each written whole in one
    /// transaction (a status with the events its result made: an event exists exactly
    /// when its fact was written); a group must fit in one. Returns the revision each
    /// group was written at, in order, for the groups written before any failure, and
    /// the failure: what was written stays written (each group is whole). A key must
    /// appear once: etcd refuses a transaction that writes one key twice, or writes
    /// and deletes it.
    pub async fn guarded_writes(&self, session: &NodeSession, groups: Vec<Vec<(String, Option<String>)>>) -> (Vec<i64>, Result<(), GuardedWriteError>) {
        let size = |group: &[(String, Option<String>)]| group.iter().map(|(key, value)| key.len() + value.as_ref().map_or(0, String::len)).sum::<usize>();
        let mut done: Vec<i64> = Vec::new();
        let mut batch: Vec<TxnOp> = Vec::new();
        let mut batch_groups = 0;
        let mut batch_bytes = 0;
        let mut iter = groups.into_iter().peekable();
        while let Some(group) = iter.next() {
            batch_bytes += size(&group);
            batch_groups += 1;
            for (key, value) in group {
                batch.push(match value {
                    Some(value) => TxnOp::put(key, value, None),
                    None => TxnOp::delete(key, None),
                });
            }
            let full = iter.peek().is_none_or(|next| batch.len() + next.len() + 1 > self.max_txn_ops || batch_bytes + size(next) > self.max_txn_bytes);
            if !full {
                continue;
            }
            let count = std::mem::take(&mut batch_groups);
            let guard = Compare::lease(self.keys().node_lease(&session.node), CompareOp::Equal, session.lease);
            let txn = Txn::new().when([guard]).and_then(std::mem::take(&mut batch));
            batch_bytes = 0;
            let mut client = self.client();
            match self.metrics.write(timeout("write node state", client.txn(txn))).await {
                Ok(response) if response.succeeded() => {
                    let revision = response.header().map(|header| header.revision()).unwrap_or_default();
                    done.extend(std::iter::repeat_n(revision, count));
                }
                Ok(_) => return (done, Err(GuardedWriteError::LeaseLost { node: session.node.clone(), lease: session.lease })),
                Err(error) => return (done, Err(error.into())),
            }
        }
        (done, Ok(()))
    }

    /// Reads every key under `prefix`, decoded, with the revision of the read. A value
    /// that does not decode (written by hand, or by another version) is skipped with a
    /// warning naming its key: one bad record must not stop an agent or the scheduler.
    pub async fn read_records<T: DeserializeOwned>(&self, prefix: &str) -> Result<(i64, Vec<(String, T, i64)>), StoreError> {
        let mut client = self.client();
        let response = self.metrics.read(timeout("read records", client.get(prefix, Some(GetOptions::new().with_prefix())))).await?;
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

    /// Forgets what a lost node reported (its statuses and run-time attributes): it
    /// runs nothing any more — it was fenced, or fencing is disabled and the cluster
    /// takes it as down. Only while the node has no live agent (its lease key is
    /// absent), so fresh reports of an agent that came back are never erased; and only
    /// while `guard` holds. Returns the revision of the deletion, `None` when the node
    /// has an agent again.
    pub async fn forget_node_reports(&self, node: &str, guard: &LeaderGuard) -> Result<Option<i64>, StoreError> {
        self.forget_node(node, vec![guard.compare()], Vec::new(), "forget a lost node").await
    }

    /// `pacer fence confirm`: a person vouches that `node` is down. In one
    /// transaction, only while the node has no live agent: its reports are forgotten
    /// and `result` is recorded under `fence-confirmations/<node>` (a key only an
    /// administrator may write), with `also` (the event it makes, as key and value).
    /// Returns whether it happened (`false`: the node is alive).
    pub async fn confirm_fenced<T: Serialize>(&self, node: &str, result: &T, also: Vec<(String, String)>) -> Result<bool, StoreError> {
        let key = self.keys().fence_confirmation(node);
        let value = encode(&key, result)?;
        let mut operations = vec![TxnOp::put(key, value, None)];
        operations.extend(also.into_iter().map(|(key, value)| TxnOp::put(key, value, None)));
        Ok(self.forget_node(node, Vec::new(), operations, "confirm a node down").await?.is_some())
    }

    async fn forget_node(&self, node: &str, mut conditions: Vec<Compare>, extra: Vec<TxnOp>, action: &str) -> Result<Option<i64>, StoreError> {
        let keys = self.keys();
        conditions.push(Compare::create_revision(keys.node_lease(node), CompareOp::Equal, 0));
        let mut operations = vec![
            TxnOp::delete(keys.node_statuses_prefix(node), Some(DeleteOptions::new().with_prefix())),
            TxnOp::delete(keys.node_attributes_prefix(node), Some(DeleteOptions::new().with_prefix())),
        ];
        operations.extend(extra);
        let txn = Txn::new().when(conditions).and_then(operations);
        let mut client = self.client();
        let response = self.metrics.write(timeout(action, client.txn(txn))).await?;
        Ok(response.succeeded().then(|| response.header().map(|header| header.revision()).unwrap_or_default()))
    }

    /// Writes (`Some`) or deletes (`None`) each key, in transactions of at most the
    /// store's operation and byte limits, each while `guard` holds. Returns, for each
    /// write in order, the revision it was written at. A failed guard is `Conflict`:
    /// the writer was deposed (the batches before it stay written).
    pub async fn write_as_leader(&self, action: &str, writes: Vec<(String, Option<String>)>, guard: &LeaderGuard) -> Result<Vec<i64>, StoreError> {
        let writes = writes.into_iter().map(|(key, value)| (key, value.map(String::into_bytes))).collect();
        self.write_bytes_as_leader(action, writes, guard).await
    }

    /// `write_as_leader` with values as bytes (the archive's compressed blobs).
    pub async fn write_bytes_as_leader(&self, action: &str, writes: Vec<(String, Option<Vec<u8>>)>, guard: &LeaderGuard) -> Result<Vec<i64>, StoreError> {
        let mut revisions = Vec::new();
        // Batches under both of etcd's limits: operations, and bytes (ten nodes' large
        // assignments would pass the first and fail the second on every turn).
        let mut batches: Vec<Vec<TxnOp>> = Vec::new();
        let mut bytes = 0;
        for (key, value) in writes {
            let size = key.len() + value.as_ref().map_or(0, Vec::len);
            let full = batches.last().is_none_or(|batch| batch.len() + 1 >= self.max_txn_ops || (!batch.is_empty() && bytes + size > self.max_txn_bytes));
            if full {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(batch) = batches.last_mut() {
                batch.push(match value {
                    Some(value) => TxnOp::put(key, value, None),
                    None => TxnOp::delete(key, None),
                });
            }
        }
        for batch in batches {
            let count = batch.len();
            let txn = Txn::new().when([guard.compare()]).and_then(batch);
            let mut client = self.client();
            let response = self.metrics.write(timeout(action, client.txn(txn))).await?;
            if !response.succeeded() {
                return Err(StoreError::Conflict { objects: vec!["the scheduler's election key".into()] });
            }
            let revision = response.header().map(|header| header.revision()).unwrap_or_default();
            revisions.extend(std::iter::repeat_n(revision, count));
        }
        Ok(revisions)
    }

    /// The newest `limit` decision records, newest first; records that do not decode
    /// are skipped.
    pub async fn latest_history<T: DeserializeOwned>(&self, limit: usize) -> Result<Vec<T>, StoreError> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Descend)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut client = self.kv();
        let response = self.metrics.read(timeout("read the decision history", client.get(self.keys().history_prefix(), Some(options)))).await?;
        Ok(response.kvs().iter().filter_map(|kv| serde_json::from_slice(kv.value()).ok()).collect())
    }
}

pub(crate) fn encode<T: Serialize>(key: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt { key: key.to_string(), reason: format!("encode: {error}") })
}

/// Decodes a JSON record, naming its key when it does not decode.
pub fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|error| StoreError::Corrupt { key: key.to_string(), reason: format!("not a valid record: {error}") })
}

pub(crate) async fn timeout<T>(action: &str, request: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, StoreError> {
    match tokio::time::timeout(AGENT_REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|source| StoreError::Etcd { action: action.to_string(), source }),
        Err(_) => {
            Err(StoreError::Etcd { action: action.to_string(), source: etcd_client::Error::InvalidArgs(format!("no answer within {AGENT_REQUEST_TIMEOUT:?}")) })
        }
    }
}
