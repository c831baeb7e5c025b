//! Alert delivery (the leading scheduler's): every event of the log that an enabled
//! `Alert` selects is delivered to its receiver — an exec receiver run as Pacemaker
//! runs alert agents, or a webhook — at least once, across leader changes.
//!
//! - `deliver` (IO): one worker per enabled alert, so a slow receiver holds up no
//!   other alert and nothing of the cluster (decisions never wait for deliveries).
//!   Each worker resumes from its `AlertCursor` (`<events>/cursors/<alert>`), reads the
//!   events after it in windows, delivers a window concurrently (bounded), then writes
//!   the cursor, guarded by the leader's lease: a new leader repeats at most the
//!   window in flight, never loses one. A failure (after the receiver's retries) is
//!   recorded as a `Delivery` event, in the cursor (`last_failure`, kept until a later
//!   success) and in `/metrics`.
//! - `select.rs` (pure): the alerts that run and Pacemaker's `select` filters.
//! - `cursor.rs` (pure): where a worker starts, trimmed events, a window's outcomes.
//! - `environment.rs` (pure): the `CRM_alert_*` environment of an exec receiver.
//! - `webhook.rs` (IO): the HTTP POST (reqwest, rustls).
//!
//! Processes are started by `exec::alert`; etcd is reached through `store`.

pub mod cursor;
pub mod environment;
pub mod select;
pub mod webhook;

use crate::runtime::now_usec;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::api::Object;
use crate::api::records::{AlertCursor, DeliveryFailure, EventRecord};
use crate::daemon::events::LeaderEvent;
use crate::exec::alert::run_alert_agent;
use crate::metrics::SchedulerMetrics;
use crate::store::{LeaderGuard, Store, StoreError};
use cursor::{Outcome, failure_event, record_window, skip_trimmed, starting_cursor};
use environment::{Call, alert_environment};
use select::{AlertConfig, node_ids};

/// Events read (and delivered) per window; the cursor is written once a window, so a
/// new leader repeats at most this many.
const WINDOW: usize = 16;
/// Deliveries (events) of one alert at once; each exec delivery runs one agent per
/// recipient besides.
const CONCURRENCY: usize = 8;
/// How long a worker waits for news of the log before it looks anyway.
const IDLE_LOOK: Duration = Duration::from_secs(5);

/// What the delivery loop runs on.
pub struct DeliveryContext {
    pub store: Store,
    pub guard: LeaderGuard,
    /// The spec's Alert objects — and its Node objects, whose creation sequence is
    /// `CRM_alert_nodeid` (objects of other kinds are ignored) — sent anew when the
    /// spec changes.
    pub alerts: watch::Receiver<Arc<Vec<Object>>>,
    /// The last sequence in the log; changes after each append.
    pub sequenced: watch::Receiver<u64>,
    /// Where failed deliveries are recorded (`EventKind::Delivery` events; the
    /// leader's event task sequences them).
    pub record: mpsc::UnboundedSender<LeaderEvent>,
    pub metrics: Arc<SchedulerMetrics>,
}

/// Delivers until deposed (`Conflict`, from a worker's guarded write) or aborted (the
/// workers and the receivers they run end with it), or until the sender of `alerts`
/// is gone (`Ok`).
pub async fn deliver(mut context: DeliveryContext) -> Result<(), StoreError> {
    let mut workers: JoinSet<Result<(), StoreError>> = JoinSet::new();
    let mut running: BTreeMap<String, (AlertConfig, AbortHandle)> = BTreeMap::new();
    let (node_ids_sender, node_ids_receiver) = watch::channel(Arc::new(BTreeMap::new()));
    loop {
        let objects = context.alerts.borrow_and_update().clone();
        // Disabled alerts run too: their worker keeps the cursor at the end of the log,
        // so an alert enabled again is not sent what happened while it was off (a
        // disabled Pacemaker alert gets nothing).
        let wanted = AlertConfig::all(&objects);
        node_ids_sender.send_replace(node_ids(&objects));
        running.retain(|name, (config, handle)| {
            let keep = wanted.get(name) == Some(config) && !handle.is_finished();
            if !keep {
                tracing::info!(alert = %name, "stopping the alert's deliveries");
                handle.abort();
            }
            keep
        });
        for (name, config) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            if config.spec.enabled {
                tracing::info!(alert = %name, "delivering the alert's events");
            }
            let worker = Worker {
                store: context.store.clone(),
                guard: context.guard.clone(),
                alert: Arc::new(config.clone()),
                node_ids: node_ids_receiver.clone(),
                sequenced: context.sequenced.clone(),
                record: context.record.clone(),
                metrics: Arc::clone(&context.metrics),
            };
            let handle = workers.spawn(worker.run());
            running.insert(name, (config, handle));
        }
        tokio::select! {
            changed = context.alerts.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            Some(joined) = workers.join_next() => match joined {
                Ok(Err(error @ StoreError::Conflict { .. })) => return Err(error),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an alert worker stopped; starting it again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(Ok(())) => {}
                Err(error) if error.is_cancelled() => {}
                Err(error) => {
                    // Started again in a second, not at once: a worker that panics
                    // every time must not spin.
                    tracing::error!(%error, "an alert worker panicked; starting it again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// One alert's deliveries.
struct Worker {
    store: Store,
    guard: LeaderGuard,
    alert: Arc<AlertConfig>,
    node_ids: watch::Receiver<Arc<BTreeMap<String, i64>>>,
    sequenced: watch::Receiver<u64>,
    record: mpsc::UnboundedSender<LeaderEvent>,
    metrics: Arc<SchedulerMetrics>,
}

/// A gap in the log seen once: given up on if it is still there next time.
struct Hole {
    after: u64,
    seen: Instant,
}

impl Worker {
    /// Until deposed: etcd failures are retried with a backoff.
    async fn run(mut self) -> Result<(), StoreError> {
        // A client that cannot be set up (no CA certificates on the host) fails each
        // delivery with the reason, so status and check say it.
        let client = match &self.alert.spec.receiver.webhook {
            Some(_) => webhook::client().inspect_err(|reason| tracing::error!(alert = %self.alert.name, %reason, "cannot deliver the alert's events")),
            None => Err("the alert has no webhook".to_string()),
        };
        let mut cursor: Option<AlertCursor> = None;
        let mut hole: Option<Hole> = None;
        let mut failures: u32 = 0;
        loop {
            let step = if self.alert.spec.enabled { self.step(&mut cursor, &mut hole, client.as_ref()).await } else { self.skip(&mut cursor).await };
            match step {
                Ok(()) => failures = 0,
                Err(error @ StoreError::Conflict { .. }) => return Err(error),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(alert = %self.alert.name, %error, "alert delivery: etcd failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)))).await;
                }
            }
        }
    }

    /// Where the cursor stands: as last written, or read (a new alert's written first).
    async fn cursor(&self, cursor: &mut Option<AlertCursor>) -> Result<AlertCursor, StoreError> {
        if let Some(cursor) = cursor {
            return Ok(cursor.clone());
        }
        let stored = self.store.read_alert_cursor(&self.alert.name).await?;
        let last = self.store.last_event_sequence().await?;
        let (start, new) = starting_cursor(stored, &self.alert.uid, last);
        if new {
            tracing::info!(alert = %self.alert.name, after = start.delivered, "a new alert: delivering the events after the current end of the log");
            self.write_cursor(&start).await?;
        }
        *cursor = Some(start.clone());
        Ok(start)
    }

    /// A disabled alert: its cursor follows the end of the log, nothing is delivered.
    async fn skip(&mut self, cursor: &mut Option<AlertCursor>) -> Result<(), StoreError> {
        let mut next = self.cursor(cursor).await?;
        let last = self.store.last_event_sequence().await?;
        if last > next.delivered {
            next.delivered = last;
            self.write_cursor(&next).await?;
            *cursor = Some(next.clone());
        }
        self.wait_for_events(next.delivered).await;
        Ok(())
    }

    /// One window: read, deliver, write the cursor; or wait for events.
    async fn step(&mut self, cursor: &mut Option<AlertCursor>, hole: &mut Option<Hole>, client: Result<&reqwest::Client, &String>) -> Result<(), StoreError> {
        let name = self.alert.name.clone();
        let mut next = self.cursor(cursor).await?;
        let events = self.store.read_events(next.delivered, WINDOW).await?;
        let Some(first) = events.first() else {
            self.wait_for_events(next.delivered).await;
            return Ok(());
        };
        if first.sequence > next.delivered + 1 {
            // Trimmed before we got there, or unreadable (skipped by the read), or —
            // for a moment — not written yet: given up on only when the log's start
            // is past it, or when it is still missing a second later.
            let first_kept = self.store.first_event_sequence().await?;
            let trimmed = first_kept.is_some_and(|kept| kept > next.delivered + 1);
            let persistent = hole.as_ref().is_some_and(|hole| hole.after == next.delivered && hole.seen.elapsed() >= Duration::from_secs(1));
            if !trimmed && !persistent {
                if hole.as_ref().is_none_or(|hole| hole.after != next.delivered) {
                    *hole = Some(Hole { after: next.delivered, seen: Instant::now() });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                return Ok(());
            }
            *hole = None;
            let skip_to = if trimmed { first_kept } else { Some(first.sequence) };
            if let Some(failure) = skip_trimmed(&mut next, skip_to, now_usec()) {
                self.metrics.alert_delivery(&name, false, Duration::ZERO);
                self.report(&failure, None);
            }
            self.write_cursor(&next).await?;
            *cursor = Some(next);
            return Ok(());
        }
        let window_end = events.last().map_or(next.delivered, |event| event.sequence);
        let outcomes = self.deliver_window(&events, client).await;
        let failures = record_window(&mut next, window_end, outcomes, now_usec());
        // One `Delivery` event a window however many failed (a receiver down must
        // not fill the log with its failures), naming the first.
        if let Some(first) = failures.first() {
            let about = events.iter().find(|event| event.sequence == first.sequence);
            if failures.len() > 1 {
                let last = failures.last().map_or(first.sequence, |failure| failure.sequence);
                let summary = DeliveryFailure { reason: format!("{} (and {} more up to event {last})", first.reason, failures.len() - 1), ..first.clone() };
                self.report(&summary, about);
            } else {
                self.report(first, about);
            }
        }
        // Kept even if writing it fails: the write is retried, not the deliveries.
        *cursor = Some(next.clone());
        self.write_cursor(&next).await
    }

    /// Delivers the events of a window the alert selects, at most `CONCURRENCY` at
    /// once; returns each one's outcome.
    async fn deliver_window(&self, events: &[EventRecord], client: Result<&reqwest::Client, &String>) -> Vec<(u64, Outcome)> {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut deliveries: JoinSet<(u64, Outcome, Duration)> = JoinSet::new();
        let node_ids = self.node_ids.borrow().clone();
        let selected: Vec<u64> = events.iter().filter(|event| self.alert.selects(event)).map(|event| event.sequence).collect();
        for event in events.iter().filter(|event| self.alert.selects(event)) {
            let alert = Arc::clone(&self.alert);
            let event = event.clone();
            let client = client.cloned().map_err(Clone::clone);
            let permits = Arc::clone(&permits);
            let node_ids = Arc::clone(&node_ids);
            deliveries.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let started = Instant::now();
                // Everything a delivery may do is bounded (a header file on a hung
                // mount, a webhook's retries): the window always ends.
                let limit = delivery_limit(&alert);
                let outcome = match tokio::time::timeout(limit, deliver_one(&alert, &event, client.as_ref(), &node_ids)).await {
                    Ok(Ok(())) => Outcome::Delivered,
                    Ok(Err(reason)) => Outcome::Failed(reason),
                    Err(_) => Outcome::Failed(format!("gave up after {}", humantime::format_duration(limit))),
                };
                (event.sequence, outcome, started.elapsed())
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = deliveries.join_next().await {
            match joined {
                Ok((sequence, outcome, took)) => {
                    self.metrics.alert_delivery(&self.alert.name, outcome == Outcome::Delivered, took);
                    match &outcome {
                        Outcome::Delivered => tracing::debug!(alert = %self.alert.name, sequence, took = ?took, "alert delivered"),
                        Outcome::Failed(reason) => tracing::warn!(alert = %self.alert.name, sequence, %reason, "alert delivery failed"),
                    }
                    outcomes.push((sequence, outcome));
                }
                Err(error) => tracing::error!(alert = %self.alert.name, %error, "an alert delivery panicked"),
            }
        }
        // A delivery that panicked is a failure, not a success the cursor skips.
        for sequence in selected {
            if !outcomes.iter().any(|(done, _)| *done == sequence) {
                outcomes.push((sequence, Outcome::Failed("the delivery failed unexpectedly (see the scheduler's log)".to_string())));
            }
        }
        outcomes
    }

    /// Records a failure as a `Delivery` event (the leader's event task sequences it).
    fn report(&self, failure: &DeliveryFailure, about: Option<&EventRecord>) {
        if self.record.send(failure_event(&self.alert.name, failure, about).into()).is_err() {
            tracing::debug!(alert = %self.alert.name, "the event task is gone; the failure is kept in the cursor only");
        }
    }

    async fn write_cursor(&self, cursor: &AlertCursor) -> Result<(), StoreError> {
        let key = self.store.keys().alert_cursor(&self.alert.name);
        let value = serde_json::to_string(cursor).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
        self.store.write_as_leader("write an alert cursor", vec![(key, Some(value))], &self.guard).await?;
        Ok(())
    }

    /// Until the log has an event after `delivered` (or a while has passed).
    async fn wait_for_events(&mut self, delivered: u64) {
        let deadline = tokio::time::Instant::now() + IDLE_LOOK;
        while *self.sequenced.borrow_and_update() <= delivered {
            tokio::select! {
                changed = self.sequenced.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// The longest one event's delivery may take: every attempt's timeout and the pauses
/// between (a webhook), plus a few seconds for the rest.
fn delivery_limit(alert: &AlertConfig) -> Duration {
    let attempts = if alert.spec.receiver.webhook.is_some() { webhook::ATTEMPTS } else { 1 };
    alert.timeout.saturating_mul(attempts) + webhook::BACKOFF.iter().sum::<Duration>() + Duration::from_secs(5)
}

/// One event to one alert's receiver. `Err`: why it was given up on.
async fn deliver_one(
    alert: &AlertConfig,
    event: &EventRecord,
    client: Result<&reqwest::Client, &String>,
    node_ids: &BTreeMap<String, i64>,
) -> Result<(), String> {
    match (&alert.spec.receiver.exec, &alert.spec.receiver.webhook) {
        (Some(exec), _) => run_exec(alert, Path::new(&exec.path), event, node_ids).await,
        (None, Some(receiver)) => webhook::deliver(client.map_err(Clone::clone)?, alert, receiver, event).await,
        (None, None) => Err("the alert has no receiver".to_string()),
    }
}

/// Pacemaker's way: one call per recipient (one with an empty recipient when there
/// are none), all at once, each killed at the alert's timeout. Delivered when every
/// call exited 0; else the first failure, naming its recipient.
async fn run_exec(alert: &AlertConfig, path: &Path, event: &EventRecord, node_ids: &BTreeMap<String, i64>) -> Result<(), String> {
    let time = local_time(event.time_usec);
    let node_id = event.node.as_ref().and_then(|node| node_ids.get(node)).copied().unwrap_or(0);
    let recipients: Vec<Option<&str>> =
        if alert.spec.recipients.is_empty() { vec![None] } else { alert.spec.recipients.iter().map(|recipient| Some(recipient.as_str())).collect() };
    // Parameters kept in files on this host, read now, just before the runs.
    let secret_files = crate::api::params::secret_files(&alert.spec.parameters);
    let secrets = std::sync::Arc::new(crate::exec::secret::read_secret_files(&secret_files)?);
    let mut calls = JoinSet::new();
    for recipient in recipients {
        let mut env = alert_environment(&Call { event, alert, recipient, node_id, time });
        env.extend(secrets.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        let path = path.to_path_buf();
        let timeout = alert.timeout;
        let recipient = recipient.map(str::to_string);
        let secrets = secrets.clone();
        calls.spawn(async move {
            let mut outcome = run_alert_agent(&path, env, timeout).await;
            // The reason quotes the agent's output: never a secret it printed.
            if let Err(reason) = outcome.as_mut() {
                secrets.scrub(reason);
            }
            (recipient, outcome)
        });
    }
    let mut failure = None;
    while let Some(joined) = calls.join_next().await {
        let failed = match joined {
            Ok((_, Ok(()))) => None,
            Ok((Some(recipient), Err(reason))) => Some(format!("recipient {recipient}: {reason}")),
            Ok((None, Err(reason))) => Some(reason),
            Err(error) => Some(format!("the agent's task failed: {error}")),
        };
        if failure.is_none() {
            failure = failed;
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The event's time in the scheduler's local zone (what Pacemaker's timestamps use).
fn local_time(time_usec: i64) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Local.timestamp_micros(time_usec).single().map_or_else(|| chrono::DateTime::UNIX_EPOCH.fixed_offset(), |time| time.fixed_offset())
}
