//! The scheduler's side of the loop, from etcd to etcd: read the desired objects and
//! what the agents report, call the pure `schedule`, cut the plan per node and write
//! what changed. `decide_once` is one turn of it; the leader-elected daemon (next
//! issue) calls it on every change.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::scheduler::plan::Plan;
use crate::scheduler::snapshot::Snapshot;
use crate::scheduler::schedule;
use crate::state::{failures_seen, node_assignments, observe};
use crate::store::{Store, StoreError};

/// What one turn decided.
#[derive(Debug)]
pub struct Decision {
    pub plan: Plan,
    /// The etcd revision the reports were read at.
    pub input_revision: i64,
    /// Assignment keys written or deleted (0 when the decision did not change).
    pub written: usize,
}

/// One decision: snapshot, schedule, write the per-node assignments that changed.
/// `guard` is the leader's election comparison (none outside the daemon).
pub async fn decide_once(store: &Store, term: i64, guard: Option<etcd_client::Compare>) -> Result<Decision, StoreError> {
    let listing = store.list_objects().await?;
    let (input_revision, reports) = store.read_reports().await?;
    // Objects come back in key order; definition order is not kept in etcd yet, so
    // ties the scheduler breaks by definition order are broken by kind and name.
    let objects: Vec<_> = listing.objects.into_values().map(|stored| stored.object).collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    let snapshot = Snapshot { objects, observed: observe(&reports, true), now };
    let plan = schedule(&snapshot);
    let assignments = node_assignments(&plan, &snapshot.objects, &failures_seen(&reports), input_revision.max(listing.revision), term);
    let written = store.write_assignments(&assignments, guard).await?;
    Ok(Decision { plan, input_revision, written })
}
