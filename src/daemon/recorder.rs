//! Keeping each new decision's input and history record off the decision's path.
//!
//! Once a turn has written its assignments, the agents act on them; the input archive
//! (`archive`: compare, serialize, hash and compress the snapshot) and the history
//! record are bookkeeping. At 300 nodes × 10,000 resources encoding the input took
//! 145–231 ms of a 410 ms turn whenever the spec changed (each move adds a Location):
//! the next turn — the one that starts a moved resource once its stop is reported —
//! waited for it. So a turn hands them to one task and goes on.
//!
//! Invariants:
//! - one recording at a time, in decision order: a turn with a new decision waits for
//!   the previous recording (after writing its own assignments) before starting its
//!   own, so records and inputs are written in the order of the decisions, and the
//!   archive's reference counts (which it carries from one recording to the next) see
//!   every input;
//! - a record never names an input that is not stored (the input is written first, as
//!   before);
//! - every write is guarded by the election key: a deposed leader's recording fails
//!   with `Conflict`, which ends its term like any other deposed write;
//! - the records kept are counted by the recorder itself (seeded from the leader's
//!   cache at its first recording, then what it writes and trims): the cache learns of
//!   a record only from the watch, and trimming from it would lag a recording behind.
//!
//! The decision's event is not the recorder's: the turn sends it once its assignments
//! are written (it names the plan's actions, nothing the record adds), so it comes
//! before the results of what it decided and is not lost when a recording fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::archive::{Archive, Archived};
use crate::api::records::HistoryRecord;
use crate::scheduler::snapshot::Snapshot;
use crate::store::{LeaderGuard, Store, StoreError};

/// What one recording is given.
pub(crate) struct RecordJob {
    /// The decision's input revision (its record's key).
    pub revision: i64,
    /// What it was decided on.
    pub snapshot: Snapshot,
    /// Its record, without the input's digest (the archive adds it).
    pub record: HistoryRecord,
    /// The revisions of the history records the leader's cache holds: the recorder's
    /// count of kept records at its first recording of a term.
    pub kept: BTreeSet<i64>,
    /// `ClusterPolicy.historyLimit`.
    pub history_limit: u32,
}

/// What one recording hands the next: the archive's state and the records kept.
#[derive(Debug, Default)]
struct Carried {
    archive: Archive,
    /// `None` until the first recording seeds it from its job.
    kept: Option<BTreeSet<i64>>,
}

/// What a recording did.
struct Recorded {
    carried: Carried,
    revision: i64,
    took: Duration,
    outcome: Result<Archived, StoreError>,
}

/// The recording under way, if any, and the state carried between them.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// `None` while a recording holds it.
    carried: Option<Carried>,
    running: Option<JoinHandle<Recorded>>,
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Recorded").field("revision", &self.revision).finish_non_exhaustive()
    }
}

impl Recorder {
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Waits for the recording under way (none: at once). Its errors are logged; only
    /// `Conflict` (deposed) is returned. Cancel-safe: dropped before the recording
    /// ends, it leaves it running.
    pub(crate) async fn finish(&mut self) -> Result<(), StoreError> {
        let Some(running) = self.running.as_mut() else { return Ok(()) };
        let joined = running.await;
        self.running = None;
        let recorded = match joined {
            Ok(recorded) => recorded,
            Err(error) => {
                // A panic in the recording: its state is gone; a fresh one reads the
                // stored inputs again at the next recording.
                tracing::error!(%error, "the decision recording ended abnormally");
                self.carried = Some(Carried::default());
                return Ok(());
            }
        };
        self.carried = Some(recorded.carried);
        match recorded.outcome {
            Ok(archived) => {
                tracing::info!(
                    revision = recorded.revision,
                    took = ?recorded.took,
                    input_bytes = archived.bytes,
                    input_blobs = archived.blobs,
                    input_encode = ?archived.encode,
                    "decision recorded"
                );
                Ok(())
            }
            Err(error @ StoreError::Conflict { .. }) => Err(error),
            Err(error) => {
                tracing::warn!(%error, revision = recorded.revision, "cannot write the decision's record");
                Ok(())
            }
        }
    }

    /// Starts recording `job`, once the recording before it has ended (as `finish`).
    pub(crate) async fn start(&mut self, store: &Store, guard: &LeaderGuard, job: RecordJob) -> Result<(), StoreError> {
        self.finish().await?;
        let mut carried = self.carried.take().unwrap_or_default();
        let (store, guard) = (store.clone(), guard.clone());
        self.running = Some(tokio::spawn(async move {
            let started = Instant::now();
            let revision = job.revision;
            let outcome = record(&store, &guard, &mut carried, job).await;
            Recorded { carried, revision, took: started.elapsed(), outcome }
        }));
        Ok(())
    }

    /// Stops the recording under way (the term is over: its writes would fail).
    pub(crate) fn abort(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// Writes a decision's input, then its record, and trims the oldest records beyond the
/// limit (at most 100 a turn) with their inputs.
async fn record(store: &Store, guard: &LeaderGuard, carried: &mut Carried, job: RecordJob) -> Result<Archived, StoreError> {
    let RecordJob { revision, snapshot, mut record, kept, history_limit } = job;
    let Carried { archive, kept: counted } = carried;
    let kept = counted.get_or_insert(kept);
    let keys = store.keys().clone();
    // Keeping the input is best effort: a failure (but being deposed) loses the
    // replay, never the record.
    let archived = match archive.record(store, guard, revision, &snapshot, kept).await {
        Ok(done) => done,
        Err(error @ StoreError::Conflict { .. }) => return Err(error),
        Err(error) => {
            tracing::warn!(%error, revision, "cannot keep the decision's input; its record is written without it");
            Archived::default()
        }
    };
    drop(snapshot);
    record.input_digest = archived.input_digest.clone();
    let key = keys.history(revision);
    let value = serde_json::to_string(&record).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
    let older: Vec<i64> = kept.iter().copied().filter(|kept| *kept != revision).collect();
    let excess = (older.len() + 1).saturating_sub(history_limit.max(1) as usize).min(100);
    let trimmed: Vec<i64> = older.iter().take(excess).copied().collect();
    let mut writes = vec![(key, Some(value))];
    writes.extend(trimmed.iter().map(|revision| (keys.history(*revision), None)));
    store.write_as_leader("write history", writes, guard).await?;
    kept.insert(revision);
    for trimmed in &trimmed {
        kept.remove(trimmed);
    }
    // The trimmed inputs go after their records; a failure leaves them to the next
    // term's sweep (inputs without a record), and the record stands.
    match archive.forget(store, guard, &trimmed).await {
        Err(error @ StoreError::Conflict { .. }) => return Err(error),
        Err(error) => tracing::warn!(%error, revision, "cannot delete the trimmed decisions' inputs"),
        Ok(()) => {}
    }
    Ok(archived)
}
