//! The scheduler daemon (`pacer scheduler`): any number run; one leads, elected
//! through `election/scheduler` bound to its lease. The leader watches what decisions
//! depend on (the spec, node heartbeats, statuses, run-time attributes), debounces,
//! and takes a turn: `decide_once` — read the spec and the reports, `observe`,
//! `schedule`, `node_assignments`, write the assignments that changed and, for a new
//! decision, a history record. Every write compares the election key's lease, so a
//! deposed leader's write fails. An unchanged decision writes nothing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Compare, CompareOp};
use tokio::sync::mpsc;

use crate::api::Spec;
use crate::api::records::{FenceRequestRecord, FenceResultRecord, HistoryRecord, Leader, Reports};
use crate::scheduler::plan::Plan;
use crate::scheduler::schedule;
use crate::scheduler::snapshot::{NodeLiveness, Snapshot};
use crate::state::fencing::choose_executor;
use crate::state::{failures_seen, node_assignments, observe};
use crate::store::lease;
use crate::store::watch::PrefixWatcher;
use crate::store::{Store, StoreError};

/// What one turn decided.
#[derive(Debug)]
pub struct Decision {
    pub plan: Plan,
    /// The etcd revision the reports were read at.
    pub input_revision: i64,
    /// Assignment keys written or deleted (0 when the decision did not change).
    pub written: usize,
    /// How long until a decision is due even without a change
    /// (`ClusterPolicy.clusterRecheckInterval`: time-based rules, failure timeouts).
    pub recheck: Duration,
}

fn epoch_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// One decision: snapshot, schedule, write the per-node assignments that changed and,
/// if any did, a history record (trimmed to `ClusterPolicy.historyLimit`). `guard` is
/// the leader's election comparison (none outside the daemon).
pub async fn decide_once(store: &Store, term: i64, guard: Option<Compare>) -> Result<Decision, StoreError> {
    decide(store, term, guard, false).await
}

/// A turn. `hold_unseen`: configured nodes never heard of are taken as still joining
/// (`Pending`: nothing runs there, nothing fences them) rather than as unclean — the
/// leader's start-up grace, Pacemaker's `dc-deadtime`, so agents starting with the
/// scheduler are not fenced for being late.
async fn decide(store: &Store, term: i64, guard: Option<Compare>, hold_unseen: bool) -> Result<Decision, StoreError> {
    let listing = store.list_objects().await?;
    let (mut input_revision, mut reports) = store.read_reports().await?;
    // Objects come back in key order; definition order is not kept in etcd yet, so
    // ties the scheduler breaks by definition order are broken by kind and name.
    let objects: Vec<_> = listing.objects.into_values().map(|stored| stored.object).collect();
    let (recheck, history_limit, stonith_enabled) = objects
        .iter()
        .find_map(|object| match &object.spec {
            Spec::ClusterPolicy(policy) => {
                Some((Duration::from_millis(policy.cluster_recheck_interval.as_millis()), policy.history_limit, policy.stonith_enabled))
            }
            _ => None,
        })
        .unwrap_or((Duration::from_secs(15 * 60), 1000, true));
    // Without fencing, a lost node is taken as down (Pacemaker's behaviour with
    // stonith-enabled=false): what it reported running is forgotten, so its resources
    // can start elsewhere. With fencing, only a successful fence does that.
    if !stonith_enabled {
        let lost: Vec<String> =
            observe(&reports, true).nodes.into_iter().filter(|(_, node)| node.liveness == NodeLiveness::Unclean).map(|(name, _)| name).collect();
        let mut forgot = false;
        for node in &lost {
            if store.forget_node_reports(node, guard.clone()).await? {
                tracing::warn!(%node, "node lost and fencing is disabled: taking it as down");
                forgot = true;
            }
        }
        if forgot {
            (input_revision, reports) = store.read_reports().await?;
        }
    }
    let now = epoch_now();
    let observed_now = |reports: &Reports| {
        let mut observed = observe(reports, true);
        if hold_unseen {
            for object in &objects {
                if let Spec::Node(_) = object.spec {
                    observed.nodes.entry(object.name().as_str().to_string()).or_insert_with(|| crate::scheduler::snapshot::ObservedNode {
                        liveness: NodeLiveness::Pending,
                        shutdown: false,
                        attributes: Default::default(),
                    });
                }
            }
        }
        observed
    };
    let mut snapshot = Snapshot { objects: objects.clone(), observed: observed_now(&reports), now };
    let mut plan = schedule(&snapshot);
    if stonith_enabled {
        let fenced = drive_fencing(store, &plan, &snapshot, input_revision, guard.clone()).await?;
        if fenced {
            // A node is down for sure now: decide again without what it reported.
            (input_revision, reports) = store.read_reports().await?;
            snapshot.observed = observed_now(&reports);
            plan = schedule(&snapshot);
        }
    }
    let assignments = node_assignments(&plan, &snapshot.objects, &failures_seen(&reports), input_revision.max(listing.revision), term);
    let written = store.write_assignments(&assignments, guard.clone()).await?;
    if written > 0 {
        let record = HistoryRecord {
            input_revision,
            term,
            time: now,
            actions: plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect(),
            not_running: plan.resources.iter().filter_map(|resource| resource.reason.as_ref().map(|reason| format!("{}: {reason}", resource.id))).collect(),
            fencing: plan.fencing.iter().map(|fencing| format!("{} {}: {}", fencing.action, fencing.node, fencing.reason)).collect(),
        };
        store.record_history(record.input_revision, &record, history_limit, guard).await?;
    }
    // Fencing in progress: look again soon (a failed attempt is retried, a dead
    // executor replaced) even if nothing else changes.
    let recheck = if plan.fencing.is_empty() { recheck } else { recheck.min(Duration::from_secs(2)) };
    Ok(Decision { plan, input_revision, written, recheck })
}

/// Moves every fencing the plan asks for one step on: a request to an executor when
/// there is none (or its executor is gone, or it failed a while ago); once a result
/// says the node is down, its reports are forgotten and its request removed. Returns
/// whether some node was declared down.
async fn drive_fencing(store: &Store, plan: &Plan, snapshot: &Snapshot, revision: i64, guard: Option<Compare>) -> Result<bool, StoreError> {
    let keys = store.keys();
    let mut fenced = false;
    for fencing in &plan.fencing {
        let unfencing = fencing.action == "on";
        let target = fencing.node.as_str();
        let request = store.read_one::<FenceRequestRecord>(&keys.fence_request(target)).await?;
        let result = store.read_one::<FenceResultRecord>(&keys.fence_result(target)).await?;
        let answered = match (&request, &result) {
            (Some(request), Some(result)) if result.request == request.id => Some(result),
            _ => None,
        };
        if let Some(result) = answered.filter(|result| result.succeeded) {
            // Unfenced: the node may run resources (observe marks it `#node-unfenced`).
            // Fenced: its reports are forgotten once its lease is gone too; the lease
            // that held it when fencing was asked for is void and revoked (an agent
            // restarted after the fence could otherwise resume it and keep the node's
            // old reports forever). Until then the answered request stays, so no
            // second fencing is asked for.
            if !unfencing
                && let Some(lease) = request.as_ref().and_then(|request| request.lease)
                && store.node_lease_id(target).await? == Some(lease)
            {
                tracing::warn!(node = %target, lease = format!("{lease:x}"), "revoking the fenced node's lease");
                if let Err(error) = store.revoke_lease(lease).await {
                    tracing::warn!(%error, node = %target, "cannot revoke the fenced node's lease; it lapses by itself");
                }
            }
            let settled = unfencing || store.forget_node_reports(target, guard.clone()).await?;
            if settled {
                if !unfencing {
                    tracing::warn!(node = %target, by = %result.by, "node fenced: its resources may run elsewhere");
                    fenced = true;
                }
                store.delete_guarded(&keys.fence_request(target), guard.clone()).await?;
            }
            continue;
        }
        let executor_alive =
            request.as_ref().is_some_and(|request| snapshot.observed.nodes.get(&request.executor).is_some_and(|node| node.liveness == NodeLiveness::Online));
        let retry_due = answered.is_some_and(|result| snapshot.now - result.finished >= FENCE_RETRY_SECONDS);
        let waiting = request.is_some() && executor_alive && answered.is_none();
        if waiting || (answered.is_some() && !retry_due) {
            continue;
        }
        let Some(executor) = choose_executor(target, &fencing.action, &snapshot.observed) else {
            tracing::error!(node = %target, "no online node can run the fencing");
            continue;
        };
        let lease = if unfencing { None } else { store.node_lease_id(target).await? };
        let record = FenceRequestRecord {
            id: revision,
            target: target.to_string(),
            action: fencing.action.clone(),
            reason: fencing.reason.clone(),
            executor,
            requested: snapshot.now,
            lease,
        };
        if request.as_ref().is_some_and(|previous| previous.id == record.id) {
            continue;
        }
        tracing::warn!(node = %target, executor = %record.executor, reason = %record.reason, "requesting fencing");
        store.put_guarded(&keys.fence_request(target), &record, guard.clone()).await?;
    }
    // A request whose need is gone (the node came back, or was confirmed down) is
    // dropped, so its result can never stand for a later, new need.
    let (_, stored) = store.read_records::<serde_json::Value>(&keys.fencing_prefix()).await?;
    for (key, value, _) in stored.into_iter().filter(|(key, _, _)| key.ends_with("/request")) {
        let Ok(request) = serde_json::from_value::<FenceRequestRecord>(value) else { continue };
        if key == keys.fence_request(&request.target) && !plan.fencing.iter().any(|fencing| fencing.node == request.target) {
            store.delete_guarded(&key, guard.clone()).await?;
        }
    }
    Ok(fenced)
}

/// Seconds after a failed fencing before it is requested again.
const FENCE_RETRY_SECONDS: i64 = 5;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Who this instance is, for the election key and logs (`host:pid` by default).
    pub identity: String,
    /// The leader's lease: a standby takes over this long after the leader stops
    /// renewing it.
    pub lease_ttl: Duration,
    /// Quiet time after a change before deciding (changes come in bursts).
    pub debounce: Duration,
    /// Longest a decision waits while changes keep coming.
    pub max_delay: Duration,
}

/// How long a new leader takes configured nodes it has never heard of as joining
/// rather than lost (Pacemaker's `dc-deadtime`).
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);

enum Term {
    Shutdown,
    Deposed,
}

/// Runs a scheduler instance until `shutdown`: campaigns, leads while elected, and
/// steps down (giving up the lease) on shutdown.
pub async fn run(config: SchedulerConfig, store: Store, shutdown: impl std::future::Future<Output = ()>) -> Result<(), StoreError> {
    tokio::pin!(shutdown);
    loop {
        let campaign = campaign(&store, &config);
        let elected = tokio::select! {
            elected = campaign => elected,
            () = &mut shutdown => return Ok(()),
        };
        let (lease, term, granted_at) = elected;
        tracing::info!(identity = %config.identity, term, "elected scheduler leader");
        let outcome = lead(&store, &config, lease, term, granted_at, &mut shutdown).await;
        match outcome {
            Term::Shutdown => {
                let _ = store.revoke_lease(lease).await;
                return Ok(());
            }
            Term::Deposed => {
                tracing::warn!(identity = %config.identity, term, "no longer the leader");
                let _ = store.revoke_lease(lease).await;
            }
        }
    }
}

/// Waits until this instance holds the election key: (lease, term, when granted).
/// The term is the key's create revision, which grows with every new leader.
async fn campaign(store: &Store, config: &SchedulerConfig) -> (i64, i64, Instant) {
    let key = store.keys().election();
    let mut announced = false;
    loop {
        let attempt = async {
            let granted_at = Instant::now();
            let lease = store.grant_lease(config.lease_ttl).await?;
            let leader = Leader { identity: config.identity.clone(), since: epoch_now() };
            if store.claim(&key, lease, &leader).await? {
                let mut client = store.client();
                let response = client.get(key.as_str(), None).await.map_err(|source| StoreError::Etcd { action: "read election key".into(), source })?;
                let term = response.kvs().first().map_or(0, |kv| kv.create_revision());
                return Ok::<_, StoreError>(Some((lease, term, granted_at)));
            }
            let _ = store.revoke_lease(lease).await;
            Ok(None)
        };
        match attempt.await {
            Ok(Some(elected)) => return elected,
            Ok(None) if !announced => {
                tracing::info!(identity = %config.identity, "standing by: another scheduler leads");
                announced = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot campaign; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Leads until deposed or shut down.
async fn lead(
    store: &Store,
    config: &SchedulerConfig,
    lease: i64,
    term: i64,
    granted_at: Instant,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Term {
    let (lease_task, lease_state) = lease::keep_alive(store.clone(), lease, config.lease_ttl, granted_at);
    let keys = store.keys().clone();
    let (events, mut changes) = mpsc::channel::<()>(1024);
    let mut watchers = Vec::new();
    for prefix in [keys.spec_prefix(), keys.nodes_prefix(), keys.statuses_prefix(), keys.attributes_prefix(), keys.fencing_prefix()] {
        let events = events.clone();
        let client = store.client();
        watchers.push(tokio::spawn(async move {
            let mut watcher = PrefixWatcher::new(client, prefix);
            loop {
                if let Err(error) = watcher.next().await {
                    tracing::debug!(%error, "watch interrupted; resuming");
                }
                if events.send(()).await.is_err() {
                    return;
                }
            }
        }));
    }
    let guard = Compare::lease(keys.election(), CompareOp::Equal, lease);
    let elected_at = Instant::now();
    let mut dirty_since: Option<Instant> = Some(Instant::now());
    let mut last_change = Instant::now();
    let mut next_recheck = Instant::now() + Duration::from_secs(15 * 60);
    let mut failures: u32 = 0;
    let outcome = loop {
        let due = dirty_since.map(|since| (last_change + config.debounce).min(since + config.max_delay));
        let wake = due.unwrap_or(next_recheck).min(next_recheck);
        tokio::select! {
            Some(()) = changes.recv() => {
                last_change = Instant::now();
                dirty_since.get_or_insert(last_change);
                continue;
            }
            () = tokio::time::sleep_until(wake.into()) => {}
            () = lease::expiring(lease_state.clone(), config.lease_ttl) => break Term::Deposed,
            () = shutdown.as_mut() => break Term::Shutdown,
        }
        if Instant::now() >= next_recheck {
            dirty_since.get_or_insert(Instant::now());
        }
        if dirty_since.is_none() {
            continue;
        }
        let started = Instant::now();
        let hold_unseen = elected_at.elapsed() < STARTUP_GRACE;
        let turn = tokio::select! {
            turn = decide(store, term, Some(guard.clone()), hold_unseen) => turn,
            () = lease::expiring(lease_state.clone(), config.lease_ttl) => break Term::Deposed,
        };
        match turn {
            Ok(decision) => {
                failures = 0;
                dirty_since = None;
                next_recheck = Instant::now() + decision.recheck.max(Duration::from_secs(1));
                if hold_unseen {
                    // Decide again once the grace is over, for nodes still unseen.
                    next_recheck = next_recheck.min(elected_at + STARTUP_GRACE);
                }
                if decision.written > 0 {
                    tracing::info!(term, revision = decision.input_revision, written = decision.written, actions = decision.plan.actions.len(), took = ?started.elapsed(), "new decision");
                } else {
                    tracing::debug!(term, revision = decision.input_revision, took = ?started.elapsed(), "decision unchanged");
                }
            }
            Err(StoreError::Conflict { .. }) => break Term::Deposed,
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "decision failed; retrying");
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(5)));
                tokio::time::sleep(backoff).await;
            }
        }
    };
    lease_task.abort();
    for watcher in watchers {
        watcher.abort();
    }
    outcome
}
