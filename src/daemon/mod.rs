//! The scheduler daemon (`pacer scheduler`): any number run; one leads, elected
//! through `election/scheduler` bound to its lease (`store::election`). The leader
//! follows the whole prefix with one watch into a `runtime::ClusterCache`, debounces
//! the changes decisions depend on (the spec, node heartbeats, statuses, run-time
//! attributes, fencing results), and takes a turn: `decide` — the snapshot at the
//! cache's revision (`runtime::build`), `schedule`, `node_assignments`, write the
//! assignments that changed and, for a new decision, its input (`archive`, beside the
//! prefix) and a history record. A turn reads nothing from etcd (but the archive's
//! index, once per term): what the leader writes goes into its cache as etcd
//! acknowledges it. Every write takes the `LeaderGuard`, so a deposed leader's write fails. An
//! unchanged decision writes nothing.

mod archive;
pub(crate) mod events;
mod recorder;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use recorder::{RecordJob, Recorder};

use crate::alerts::{DeliveryContext, deliver};
use crate::api::manifest::{Source, load as load_manifests};
use crate::api::records::{
    EventKind, EventRecord, FenceAnswerRecord, FenceAttemptState, FenceHistoryRecord, FenceRequestRecord, Leader, NodeAssignment, NodeHeartbeat,
};
use crate::api::{Kind, Name, Object, ObjectKey, Spec};
use crate::metrics::{ClusterState, SchedulerMetrics, Stepped, TurnOutcome};
use crate::notify::Watchdog;
use crate::ops::constraints::{KeptMemo, VerbConstraint, next_expiry, review_remembered};
use crate::runtime::{BuildOptions, ClusterCache, Informer, LiveSnapshot, NotReady, build, load};
use crate::scheduler::plan::Plan;
use crate::scheduler::schedule;
use crate::scheduler::snapshot::{NodeLiveness, Snapshot};
use crate::state::fence_history::{FENCE_HISTORY_LIMIT, Kept, history_to_trim};
use crate::state::fencing::choose_executor;
use crate::state::history::history_record;
use crate::state::{failures_seen, node_assignments};
use crate::store::apply::{ApplyOutcome, ApplyRequest, apply};
use crate::store::keys::Section;
use crate::store::lease;
use crate::store::watch::WatchEvent;
use crate::store::{LeaderGuard, Store, StoreError};

/// What one turn decided.
#[derive(Debug)]
pub struct Decision {
    pub plan: Plan,
    /// The etcd revision the snapshot was taken at.
    pub input_revision: i64,
    /// Assignment keys written or deleted (0 when the decision did not change).
    pub written: usize,
    /// How long until a decision is due even without a change
    /// (`ClusterPolicy.clusterRecheckInterval`: time-based rules, failure timeouts;
    /// sooner when a Location expires before that, or fencing is pending).
    pub recheck: Duration,
    /// What it was decided on (what `/metrics` shows of the cluster until the next).
    pub snapshot: Snapshot,
}

/// Why a turn did not decide.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// etcd failed or refused (a `Conflict` means this leader was deposed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cache cannot be decided on yet (a large apply being rolled forward). Retry.
    #[error("not ready to decide: {0}")]
    NotReady(#[from] NotReady),
}

fn epoch_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// One decision outside the daemon (tests, tools): the cluster read at one revision,
/// then a turn under `guard`.
pub async fn decide_once(store: &Store, guard: &LeaderGuard) -> Result<Decision, StoreError> {
    for _ in 0..10 {
        let mut cache = load(store).await?;
        let mut memory = Memory::default();
        match decide(store, &mut cache, &mut memory, guard, false).await {
            Ok(decision) => {
                // Its record written before the caller looks.
                memory.recorder.finish().await?;
                return Ok(decision);
            }
            Err(DecideError::Store(error)) => return Err(error),
            // Listing the objects finishes the pending apply.
            Err(DecideError::NotReady(_)) => drop(store.list_objects().await?),
        }
    }
    Err(StoreError::Contended { attempts: 10 })
}

/// The cluster policy's settings a turn needs.
struct Policy {
    recheck: Duration,
    history_limit: u32,
    event_limit: u32,
    stonith_enabled: bool,
}

fn policy(objects: &[crate::api::Object]) -> Policy {
    let defaults = crate::api::cluster::ClusterPolicySpec::default();
    let policy = objects
        .iter()
        .find_map(|object| match &object.spec {
            Spec::ClusterPolicy(policy) => Some(policy),
            _ => None,
        })
        .unwrap_or(&defaults);
    Policy {
        recheck: Duration::from_millis(policy.cluster_recheck_interval.as_millis()),
        history_limit: policy.history_limit,
        event_limit: policy.event_limit,
        stonith_enabled: policy.stonith_enabled,
    }
}

/// A node without a heartbeat whose statuses say something may run there (Unclean),
/// if any.
fn missing_node(cache: &ClusterCache) -> Option<String> {
    let observed = crate::state::observe(&cache.reports(), true);
    observed.nodes.into_iter().find(|(_, node)| node.liveness == NodeLiveness::Unclean).map(|(name, _)| name)
}

/// A turn on the cache. `hold_unseen`: configured nodes never heard of are taken as
/// still joining (`Pending`: nothing runs there, nothing fences them) rather than as
/// unclean — the leader's start-up grace, Pacemaker's `dc-deadtime`, so agents
/// starting with the scheduler are not fenced for being late.
async fn decide(store: &Store, cache: &mut ClusterCache, memory: &mut Memory, guard: &LeaderGuard, hold_unseen: bool) -> Result<Decision, DecideError> {
    let Memory { recorder, kept, events } = memory;
    let now = epoch_now();
    let options = BuildOptions { now, hold_unseen };
    let mut live = build(cache, options)?;
    let Policy { recheck, history_limit, stonith_enabled, .. } = policy(&live.snapshot.objects);
    // Without fencing, a lost node is taken as down (Pacemaker's behaviour with
    // stonith-enabled=false): what it reported running is forgotten, so its resources
    // can start elsewhere. With fencing, only a successful fence does that.
    if !stonith_enabled {
        let lost: Vec<String> =
            live.snapshot.observed.nodes.iter().filter(|(_, node)| node.liveness == NodeLiveness::Unclean).map(|(name, _)| name.clone()).collect();
        let mut forgot = false;
        for node in &lost {
            if let Some(revision) = store.forget_node_reports(node, guard).await? {
                tracing::warn!(%node, "node lost and fencing is disabled: taking it as down");
                cache.forget_reports(node, revision);
                forgot = true;
            }
        }
        if forgot {
            live = build(cache, options)?;
        }
    }
    let mut plan = schedule(&live.snapshot);
    if stonith_enabled {
        let changed = drive_fencing(store, cache, &plan, &live.snapshot, guard, events).await?;
        if changed {
            // A node is down for sure now, or unfenced: decide again without what it
            // reported, or with it let in.
            live = build(cache, options)?;
            plan = schedule(&live.snapshot);
        }
    }
    let LiveSnapshot { revision: input_revision, snapshot, reports } = live;
    let mut assignments = node_assignments(&plan, &snapshot.objects, &failures_seen(&reports), input_revision, guard.term());
    // What the watch had delivered: the statuses this decision saw (its own writes of
    // this turn do not count; nothing is taken from the watch during a turn).
    let seen_revision = cache.watched_revision();
    for assignment in assignments.values_mut() {
        assignment.seen_revision = seen_revision;
    }
    let keys = cache.keys().clone();
    let mut writes: Vec<(String, Option<String>)> = Vec::new();
    for (node, assignment) in &assignments {
        // The input revision and term alone changing is not a new decision, unless the
        // agent holds a withdrawal the stored one made before it saw the status.
        if cache.plans().get(node).is_some_and(|stored: &NodeAssignment| stored.same_decision(assignment) && !withdrawal_unseen(cache, stored)) {
            continue;
        }
        let value = serde_json::to_string(assignment).map_err(|error| StoreError::Corrupt { key: keys.plan(node), reason: format!("encode: {error}") })?;
        writes.push((keys.plan(node), Some(value)));
    }
    writes.extend(cache.plans().keys().filter(|node| !assignments.contains_key(*node)).map(|node| (keys.plan(node), None)));
    let written = writes.len();
    write(store, cache, "write assignments", writes, guard).await?;
    if written > 0 {
        let record = history_record(&plan, input_revision, guard.term(), now);
        // Its event now that its assignments are written: before the results of what
        // it decided, and whatever becomes of its record.
        if !record.actions.is_empty() {
            events.push(events::decision_event(&record.actions, input_revision, events::now_usec()));
        }
        // Its input and record are written by the recorder, off the decision's path
        // (`recorder`), once the recording before it has ended.
        let job = RecordJob { revision: input_revision, snapshot: snapshot.clone(), record, kept: cache.history().clone(), history_limit };
        recorder.start(store, guard, job).await?;
    }
    let tidied = tidy_constraints(store, &snapshot, &plan, cache.spec_version(), kept, guard).await;
    let registered = register_nodes(store, cache, guard).await;
    // Fencing in progress: look again soon (a failed attempt is retried, a dead
    // executor replaced) even if nothing else changes.
    let recheck = recheck.max(Duration::from_secs(1));
    let mut recheck = if plan.fencing.is_empty() { recheck } else { recheck.min(Duration::from_secs(2)) };
    // A Location expiring: decide again at the expiry itself, not at the next recheck
    // (Pacemaker checks lifetimes only every recheck interval).
    if let Some(expires) = next_expiry(&snapshot.objects, now) {
        recheck = recheck.min(until_epoch(expires));
    }
    if !tidied || !registered {
        recheck = recheck.min(Duration::from_secs(1));
    }
    Ok(Decision { plan, input_revision, written, recheck, snapshot })
}

/// The node shown as Pacemaker's DC in `/metrics` (ha_cluster_exporter's dashboards
/// select the cluster by it): the first node, by name, whose agent runs on the
/// leader's host (heartbeats name their host), else the host name itself. Pacer has
/// no DC; the leader's node is the nearest thing.
fn dc_node(cache: &ClusterCache, host: &str) -> String {
    cache.heartbeats().iter().find(|(_, entry)| entry.heartbeat.host == host).map_or_else(|| host.to_string(), |(node, _)| node.clone())
}

/// Each configured node's liveness as the event log should judge membership: a node
/// is a member while its agent's heartbeat is there, so a node held as Pending in the
/// start-up grace without one (never heard of) is not announced as joining.
fn membership(snapshot: &Snapshot, cache: &ClusterCache) -> std::collections::BTreeMap<String, NodeLiveness> {
    snapshot
        .observed
        .nodes
        .iter()
        .map(|(name, node)| {
            let liveness = match node.liveness {
                NodeLiveness::Pending if !cache.heartbeats().contains_key(name) => NodeLiveness::Unseen,
                liveness => liveness,
            };
            (name.clone(), liveness)
        })
        .collect()
}

/// What a leader keeps from turn to turn besides its cache: the recording of the
/// last new decision (`recorder`, with the archive's index of stored inputs), the
/// moves it found kept (`ops::constraints::KeptMemo`), and the events a turn saw
/// (fencing asked for, a new decision) until the event log takes them.
#[derive(Default)]
struct Memory {
    recorder: Recorder,
    kept: KeptMemo,
    events: Vec<EventRecord>,
}

/// How long until `secs` since the epoch has passed on the system clock (a few
/// milliseconds over, so a decision then sees it as past).
fn until_epoch(secs: i64) -> Duration {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO) + Duration::from_millis(20)
}

/// Deletes the Locations `pacer move` and `pacer ban` made that have expired, or whose
/// move is done (the resource runs where asked and would stay without it): through
/// `store::apply` like any spec change, each only while it is still the object the
/// snapshot holds (its revision) and this leader still leads, so two leaders racing
/// delete it once and a constraint made again meanwhile stays. Locations without the
/// owner annotation are never touched. Costs nothing without such constraints.
/// Returns false when the deletion failed and should be tried again soon (etcd did
/// not answer); a conflict or a refusal needs no quick retry: the change that caused
/// it, or the one that fixes it, brings a new turn.
async fn tidy_constraints(store: &Store, snapshot: &Snapshot, plan: &Plan, spec_version: i64, kept: &mut KeptMemo, guard: &LeaderGuard) -> bool {
    if !snapshot.objects.iter().any(|object| VerbConstraint::of(object).is_some()) {
        return true;
    }
    let removable: Vec<(VerbConstraint, String)> = review_remembered(snapshot, plan, spec_version, kept)
        .into_iter()
        .filter(|(_, verdict)| verdict.removable())
        .map(|(constraint, verdict)| {
            let why = if verdict == crate::ops::constraints::Verdict::Expired { "expired" } else { "done" };
            (constraint, why.to_string())
        })
        .collect();
    if removable.is_empty() {
        return true;
    }
    let key = |constraint: &VerbConstraint| ObjectKey { kind: Kind::Location, name: constraint.name.clone() };
    let request = ApplyRequest {
        delete: removable.iter().map(|(constraint, _)| key(constraint)).collect(),
        expect_revisions: removable.iter().map(|(constraint, _)| (key(constraint), constraint.revision)).collect(),
        leader: Some(guard.clone()),
        ..ApplyRequest::default()
    };
    match apply(store, &request).await {
        Ok(ApplyOutcome::Planned(report)) => {
            for (constraint, why) in &removable {
                tracing::info!(constraint = %constraint.name, resource = %constraint.resource, node = %constraint.node, owner = constraint.owner.as_str(), why = %why, revision = report.revision.unwrap_or_default(), "deleted a constraint a command made");
            }
            true
        }
        Ok(ApplyOutcome::Invalid(diagnostics)) => {
            let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            // The stored spec does not pass the whole-set checks: retrying will not
            // help before it changes (which brings a new turn), or the recheck.
            tracing::warn!(problems = %problems.join("; "), "cannot delete the constraints commands made that are done or expired; trying again when the spec changes");
            true
        }
        Err(StoreError::Conflict { objects }) => {
            tracing::debug!(objects = %objects.join(", "), "constraints changed meanwhile (or leadership moved); the next turn looks again");
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot delete the constraints commands made that are done or expired; retrying");
            false
        }
    }
}

/// Creates the `Node` object of every node whose agent holds its lease and that has
/// none, from what its agent's heartbeat proposes (`--attribute`, `--capacity`),
/// annotated `pacer.io/created-by: scheduler`. Agents never write the spec: this is
/// the one place a node's object is made for it, through `store::apply` like any spec
/// change, only while the object is still absent and this leader still leads. An
/// existing `Node` is the administrator's and is never changed here. A node is usable
/// before its object exists (the scheduler takes a node it has a heartbeat of with a
/// default spec). Returns false when the write failed and should be tried again soon.
async fn register_nodes(store: &Store, cache: &ClusterCache, guard: &LeaderGuard) -> bool {
    let node_key = |name: &str| ObjectKey { kind: Kind::Node, name: Name::from(name) };
    // Each node's manifest on its own: one agent's invalid proposal (capacity) holds
    // up no other node's object.
    let missing: Vec<(&String, &NodeHeartbeat)> = cache
        .heartbeats()
        .iter()
        .filter(|(name, entry)| entry.lease != 0 && !cache.objects().contains_key(&node_key(name)))
        .filter(|(name, entry)| {
            let loaded = load_manifests(&[Source { name: format!("heartbeat of {name}"), text: node_manifest(name, &entry.heartbeat) }]);
            // The object's own checks too (a Node refers to nothing else).
            let alone: crate::api::ObjectSet = loaded.manifests.iter().map(|manifest| (manifest.object.key(), manifest.object.clone())).collect();
            let problem = loaded
                .diagnostics
                .first()
                .map(ToString::to_string)
                .or_else(|| crate::api::validate::check_objects(&alone).first().map(|problem| format!("{}: {}", problem.path, problem.message)));
            match problem {
                Some(problem) => {
                    tracing::warn!(node = %name, %problem, "cannot create the Node object of a node whose agent runs: its agent's capacity is invalid");
                    false
                }
                None => true,
            }
        })
        .map(|(name, entry)| (name, &entry.heartbeat))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let text: String = missing.iter().map(|(name, heartbeat)| node_manifest(name, heartbeat)).collect();
    let loaded = load_manifests(&[Source { name: "heartbeats".into(), text }]);
    let request = ApplyRequest {
        expect_revisions: missing.iter().map(|(name, _)| (node_key(name), 0)).collect(),
        loaded,
        leader: Some(guard.clone()),
        ..ApplyRequest::default()
    };
    let names: Vec<&str> = missing.iter().map(|(name, _)| name.as_str()).collect();
    match apply(store, &request).await {
        Ok(ApplyOutcome::Planned(_)) => {
            tracing::info!(nodes = %names.join(", "), "created the Node objects of nodes whose agents run");
            true
        }
        Ok(ApplyOutcome::Invalid(diagnostics)) => {
            let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            tracing::warn!(nodes = %names.join(", "), problems = %problems.join("; "), "cannot create the Node objects of nodes whose agents run; trying again when the spec changes");
            true
        }
        Err(StoreError::Conflict { .. }) => true,
        Err(error) => {
            tracing::warn!(%error, nodes = %names.join(", "), "cannot create the Node objects of nodes whose agents run; retrying");
            false
        }
    }
}

/// The `Node` object the leader creates for `name` from its agent's heartbeat: its
/// capacity, never its attributes. What an agent proposes of its node's attributes
/// stays run-time (its agent writes them under its own prefix), below the
/// administrator's `Node.spec.attributes`; copied here they would outrank them.
fn node_manifest(name: &str, heartbeat: &NodeHeartbeat) -> String {
    let mut spec = serde_json::Map::new();
    if !heartbeat.capacity.is_empty() {
        spec.insert("utilization".into(), serde_json::json!(heartbeat.capacity));
    }
    let node = serde_json::json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": "Node",
        "metadata": { "name": name, "annotations": { crate::ops::edit::annotations::CREATED_BY: "scheduler" } },
        "spec": spec,
    });
    format!("---\n{}", crate::api::yaml::to_yaml_string(&node))
}

/// Writes as the leader and puts what was written into the cache at once.
async fn write(store: &Store, cache: &mut ClusterCache, action: &str, writes: Vec<(String, Option<String>)>, guard: &LeaderGuard) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let revisions = store.write_as_leader(action, writes.clone(), guard).await?;
    for ((key, value), revision) in writes.iter().zip(revisions) {
        cache.apply_write(key, value.as_ref().map(String::as_bytes), revision);
    }
    Ok(())
}

/// Whether the node reports a resource possibly active that `stored` does not list,
/// with a status written after what `stored`'s decision saw (`seen_revision`). Its
/// agent may hold its stop (`Reconciler::stale_withdrawal`: the decision may have
/// taken away a start in flight), and an unchanged decision is not rewritten: this
/// is when it must be, with a revision that has seen the status. (A status written
/// for a monitor's result, whose role did not change, also rewrites it: once per such
/// write, each a new decision with its history record and archived input.)
fn withdrawal_unseen(cache: &ClusterCache, stored: &NodeAssignment) -> bool {
    let node = stored.node.as_str();
    let listed: std::collections::HashSet<&str> = stored.resources.iter().map(|entry| entry.id.as_str()).collect();
    cache
        .statuses()
        .range((node.to_string(), String::new())..)
        .take_while(|((owner, _), _)| owner == node)
        .filter(|((owner, id), status)| status.may_be_active() && !listed.contains(id.as_str()) && !cache.is_void_status(owner, id))
        .any(|((owner, id), _)| cache.mod_revision(&cache.keys().status(owner, id)).is_some_and(|revision| revision > stored.seen_revision))
}

/// Moves every fencing the plan asks for one step on: a request to an executor when
/// there is none (or its executor is gone, or it failed a while ago); once a result
/// says the node is down, its reports are forgotten and its request removed. The
/// answer it accepts is recorded (`fencing/<target>/answer`). Returns whether some
/// node's fencing state changed (an answer recorded, a node declared down).
async fn drive_fencing(
    store: &Store,
    cache: &mut ClusterCache,
    plan: &Plan,
    snapshot: &Snapshot,
    guard: &LeaderGuard,
    events: &mut Vec<EventRecord>,
) -> Result<bool, StoreError> {
    let keys = cache.keys().clone();
    let revision = cache.revision();
    let mut changed = false;
    for fencing in &plan.fencing {
        let unfencing = fencing.action == "on";
        let target = fencing.node.as_str();
        let request = cache.fence_requests().get(target).cloned();
        // Only the executor the request named answers it, under its own prefix: a
        // result any other node wrote (a forged success) is no answer.
        let answered = request.as_ref().and_then(|request| cache.fence_answer(request)).cloned();
        let answered = answered.as_ref();
        // What it accepted is recorded under a key only the scheduler writes: the
        // target's fenced or unfenced state, its `#node-unfenced` and what `pacer
        // status` shows are read from that record, never from a result.
        let fenced = answered.is_some_and(|result| result.succeeded && !unfencing);
        // The lease that held the node when its fencing was asked for is void once the
        // fencing succeeded, and revoked before the answer is recorded: whatever that
        // lease's holder wrote is then older than the answer, so it is void with the
        // rest of the node's history (`ClusterCache::fenced_revision`) — an agent
        // restarted after the fence could otherwise resume it and write its old
        // failures again.
        if fenced
            && let Some(lease) = request.as_ref().and_then(|request| request.lease)
            && cache.node_lease(target) == Some(lease)
        {
            tracing::warn!(node = %target, lease = format!("{lease:x}"), "revoking the fenced node's lease");
            if let Err(error) = store.revoke_lease(lease).await {
                tracing::warn!(%error, node = %target, "cannot revoke the fenced node's lease; it lapses by itself");
            }
        }
        if let Some(result) = answered
            && cache.fence_answers().get(target).is_none_or(|stored| stored.answer.result != *result)
        {
            let key = keys.fence_answer(target);
            let answer = FenceAnswerRecord {
                result: result.clone(),
                accepted: snapshot.now,
                lease: request.as_ref().and_then(|request| request.lease),
                // A successful fencing is its own mark; anything else carries the last one.
                fenced_revision: if fenced { None } else { cache.fenced_revision(target) },
            };
            let value = serde_json::to_string(&answer).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
            tracing::info!(node = %target, by = %result.by, action = %result.action, succeeded = result.succeeded, "accepting the fencing's answer");
            let mut writes = vec![(key, Some(value))];
            // The attempt's history entry is completed in the same transaction.
            if let Some(request) = &request {
                let attempt = attempt_of(cache, request).answered(result);
                writes.push(history_write(&keys, &attempt)?);
            }
            write(store, cache, "record a fencing answer", writes, guard).await?;
            changed = true;
        }
        if let Some(result) = answered.filter(|result| result.succeeded) {
            // Unfenced: the node may run resources (observe marks it `#node-unfenced`).
            // Fenced: its reports are forgotten once its lease is gone too (revoked
            // above when it is the one that held it). Until then the answered request
            // stays, so no second fencing is asked for.
            let settled = unfencing
                || match store.forget_node_reports(target, guard).await? {
                    Some(revision) => {
                        cache.forget_reports(target, revision);
                        true
                    }
                    None => false,
                };
            if settled {
                if !unfencing {
                    tracing::warn!(node = %target, by = %result.by, "node fenced: its resources may run elsewhere");
                    changed = true;
                }
                write(store, cache, "delete a fencing request", vec![(keys.fence_request(target), None)], guard).await?;
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
        // After a failure, another node that may run it is asked first.
        let last = request.as_ref().filter(|_| answered.is_some()).map(|request| request.executor.as_str());
        let Some(executor) = choose_executor(target, &fencing.action, &snapshot.observed, plan, &snapshot.objects, last) else {
            tracing::error!(node = %target, "no online node may run the fencing (none online, or its devices are banned from every one)");
            continue;
        };
        // For an unfencing, the lease the node is unfenced under.
        let lease = cache.node_lease(target);
        let record = FenceRequestRecord {
            id: revision,
            target: target.to_string(),
            action: fencing.action.clone(),
            reason: fencing.reason.clone(),
            executor: executor.node,
            requested: snapshot.now,
            lease,
            devices: executor.devices,
        };
        if request.as_ref().is_some_and(|previous| previous.id == record.id) {
            continue;
        }
        tracing::warn!(node = %target, executor = %record.executor, reason = %record.reason, "requesting fencing");
        let key = keys.fence_request(target);
        let value = serde_json::to_string(&record).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
        // The attempt is in the history from its request on; one it replaces without
        // an answer (its executor was lost) is given up.
        let mut writes = vec![(key, Some(value)), history_write(&keys, &FenceHistoryRecord::pending(&record, &requester(cache)))?];
        if let Some(previous) = request.as_ref().filter(|_| answered.is_none())
            && let Some(cancelled) = give_up(cache, previous, snapshot.now, &format!("executor {} lost; asked {} instead", previous.executor, record.executor))
        {
            writes.push(history_write(&keys, &cancelled)?);
        }
        write(store, cache, "request fencing", writes, guard).await?;
        let mut event = EventRecord::new(
            EventKind::Fencing,
            events::REPORTER,
            events::now_usec(),
            format!("Operation {} of {} requested from {}: {}", record.action, record.target, record.executor, record.reason),
        );
        event.node = Some(record.target.clone());
        event.task = Some(record.action.clone());
        events.push(event);
    }
    // A request whose need is gone (the node came back, or was confirmed down) is
    // dropped, so its result can never stand for a later, new need.
    let stale: Vec<FenceRequestRecord> = cache
        .fence_requests()
        .iter()
        .filter(|(node, request)| request.target == **node && !plan.fencing.iter().any(|fencing| fencing.node == request.target))
        .map(|(_, request)| request.clone())
        .collect();
    let mut writes = Vec::new();
    for request in &stale {
        writes.push((keys.fence_request(&request.target), None));
        if let Some(cancelled) = give_up(cache, request, snapshot.now, "no longer needed") {
            writes.push(history_write(&keys, &cancelled)?);
        }
    }
    write(store, cache, "drop fencing requests", writes, guard).await?;
    // The history is capped (never a node's last success, never a pending attempt).
    let kept = Kept {
        open: cache.fence_requests().values().map(|request| (request.target.as_str(), request.id)).collect(),
        nodes: snapshot.objects.iter().filter(|object| matches!(object.spec, crate::api::Spec::Node(_))).map(|object| object.name().as_str()).collect(),
    };
    let trimmed: Vec<(String, Option<String>)> =
        history_to_trim(cache.fence_history(), FENCE_HISTORY_LIMIT, &kept).into_iter().map(|(target, id)| (keys.fence_history(&target, id), None)).collect();
    write(store, cache, "trim the fencing history", trimmed, guard).await?;
    Ok(changed)
}

/// Who asks for fencing, as the history records it: the leader's identity.
fn requester(cache: &ClusterCache) -> String {
    cache.election().map_or_else(|| "scheduler".to_string(), |holder| holder.leader.identity.clone())
}

/// The history entry of `request`: as recorded, or pending as of the request (one
/// made by a leader that kept no history).
fn attempt_of(cache: &ClusterCache, request: &FenceRequestRecord) -> FenceHistoryRecord {
    cache.fence_history().get(&(request.target.clone(), request.id)).cloned().unwrap_or_else(|| FenceHistoryRecord::pending(request, &requester(cache)))
}

/// `request`'s attempt given up without an answer, if it is still pending.
fn give_up(cache: &ClusterCache, request: &FenceRequestRecord, now: i64, why: &str) -> Option<FenceHistoryRecord> {
    let attempt = attempt_of(cache, request);
    (attempt.state == FenceAttemptState::Pending && cache.fence_answer(request).is_none()).then(|| attempt.cancelled(now, why))
}

/// The put of a history entry.
fn history_write(keys: &crate::store::keys::Keys, attempt: &FenceHistoryRecord) -> Result<(String, Option<String>), StoreError> {
    let key = keys.fence_history(&attempt.target, attempt.id);
    let value = serde_json::to_string(attempt).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: format!("encode: {error}") })?;
    Ok((key, Some(value)))
}

/// Seconds after a failed fencing before it is requested again.
const FENCE_RETRY_SECONDS: i64 = 5;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Where it records its turns and elections, and publishes the state it decided
    /// on while it leads (`/metrics`).
    pub metrics: Arc<SchedulerMetrics>,
    /// Who this instance is, for the election key and logs (`host:pid` by default).
    pub identity: String,
    /// The leader's lease: a standby takes over this long after the leader stops
    /// renewing it.
    pub lease_ttl: Duration,
    /// Quiet time after a change before deciding (changes come in bursts).
    pub debounce: Duration,
    /// Longest a decision waits while changes keep coming.
    pub max_delay: Duration,
    /// systemd's notifications: `READY=1` once the loop runs, `WATCHDOG=1` from the
    /// campaign's loop and from the leader's while its lease is healthy.
    pub notifier: Arc<crate::notify::Notifier>,
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
    let mut watchdog = Watchdog::new(config.notifier.clone()).with_progress(config.metrics.progress());
    config.notifier.ready("campaigning");
    loop {
        let campaign = campaign(&store, &config, &mut watchdog);
        let elected = tokio::select! {
            elected = campaign => elected,
            () = &mut shutdown => return Ok(()),
        };
        let (guard, granted_at) = elected;
        let term = guard.term();
        tracing::info!(identity = %config.identity, term, "elected scheduler leader");
        config.metrics.elected(term);
        config.notifier.status(&format!("leading, term {term}"));
        let outcome = lead(&store, &config, &guard, granted_at, &mut watchdog, &mut shutdown).await;
        match outcome {
            Term::Shutdown => {
                config.metrics.stepped_down(Stepped::Resigned);
                let _ = store.revoke_lease(guard.lease()).await;
                return Ok(());
            }
            Term::Deposed => {
                config.metrics.stepped_down(Stepped::Deposed);
                tracing::warn!(identity = %config.identity, term, "no longer the leader");
                let _ = store.revoke_lease(guard.lease()).await;
            }
        }
    }
}

/// Waits until this instance holds the election key. Each attempt etcd answered
/// (either way) is the loop turning: systemd's watchdog is pinged.
async fn campaign(store: &Store, config: &SchedulerConfig, watchdog: &mut Watchdog) -> (LeaderGuard, Instant) {
    let mut announced = false;
    loop {
        let leader = Leader { identity: config.identity.clone(), since: epoch_now() };
        match store.campaign(&leader, config.lease_ttl).await {
            Ok(Some(elected)) => return elected,
            Ok(None) if !announced => {
                tracing::info!(identity = %config.identity, "standing by: another scheduler leads");
                config.notifier.status("standing by: another scheduler leads");
                announced = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot campaign; retrying"),
        }
        watchdog.ping_if_due(true);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether a change in this part of the layout can change a decision. The leader's
/// own writes (plans, history, fencing requests) and staged chunks cannot.
fn decision_input(section: &Section) -> bool {
    matches!(
        section,
        Section::Object(_)
            | Section::SpecVersion
            | Section::IntentCommit(_)
            | Section::Heartbeat(_)
            | Section::Status { .. }
            | Section::Attribute { .. }
            | Section::FenceResult { .. }
            | Section::FenceAnswer(_)
            | Section::FenceConfirmation(_)
    )
}

/// Leads until deposed or shut down.
async fn lead(
    store: &Store,
    config: &SchedulerConfig,
    guard: &LeaderGuard,
    granted_at: Instant,
    watchdog: &mut Watchdog,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Term {
    let term = guard.term();
    let (mut lease_task, lease_state) = lease::keep_alive(store.clone(), guard.lease(), config.lease_ttl, granted_at);
    let mut informer = Informer::start(store, vec![format!("{}/", store.keys().prefix())]);
    let mut cache = ClusterCache::new(store.keys().clone());
    let mut synced = false;
    let elected_at = Instant::now();
    let mut dirty_since: Option<Instant> = Some(Instant::now());
    let mut last_change = Instant::now();
    let mut next_recheck = Instant::now() + Duration::from_secs(15 * 60);
    let mut failures: u32 = 0;
    let mut memory = Memory::default();
    let mut event_log = events::spawn(store.clone(), guard.clone());
    // Alert delivery: its own task (a worker per alert), fed the spec's Alert and Node
    // objects after each turn; it never holds up a decision.
    let (alerts_sender, alerts_receiver) = tokio::sync::watch::channel(Arc::new(Vec::new()));
    let start_delivery = |event_log: &events::EventTask| {
        let context = DeliveryContext {
            store: store.clone(),
            guard: guard.clone(),
            alerts: alerts_receiver.clone(),
            sequenced: event_log.sequenced.clone(),
            record: event_log.events.clone(),
            metrics: Arc::clone(&config.metrics),
        };
        tokio::spawn(async move {
            match deliver(context).await {
                Err(StoreError::Conflict { .. }) => tracing::debug!("alert delivery: no longer the leader"),
                Err(error) => tracing::warn!(%error, "alert delivery stopped"),
                Ok(()) => {}
            }
        })
    };
    let mut delivery = start_delivery(&event_log);
    let outcome = loop {
        let due = dirty_since.filter(|_| synced).map(|since| (last_change + config.debounce).min(since + config.max_delay));
        let wake = due.unwrap_or(next_recheck).min(next_recheck);
        tokio::select! {
            Some(event) = informer.events.recv() => {
                // Take in everything queued before deciding.
                let mut next = Some(event);
                while let Some(event) = next {
                    match event {
                        Ok(event) => {
                            synced |= matches!(event, WatchEvent::Restarted { .. });
                            let changes = cache.apply_event(&event);
                            for key in &changes.undecodable {
                                let reason = cache.undecodable().get(key).map_or("", String::as_str);
                                tracing::warn!(%key, %reason, "skipping a stored value that does not decode");
                            }
                            if changes.any(decision_input) {
                                last_change = Instant::now();
                                dirty_since.get_or_insert(last_change);
                            }
                        }
                        Err(error) => tracing::debug!(%error, "watch interrupted; resuming"),
                    }
                    next = informer.events.try_recv().ok();
                }
                continue;
            }
            () = tokio::time::sleep_until(wake.into()) => {}
            () = watchdog.due() => {
                // Only while the leader's lease is healthy: a leader cut off from etcd
                // is deposed here anyway, a stuck one restarted by systemd.
                watchdog.ping(lease_state.borrow().healthy(config.lease_ttl));
                continue;
            }
            () = lease::expiring(lease_state.clone(), config.lease_ttl) => break Term::Deposed,
            () = shutdown.as_mut() => break Term::Shutdown,
            // The last new decision's record written (its failures logged), or deposed.
            recorded = memory.recorder.finish(), if memory.recorder.is_running() => {
                if let Err(StoreError::Conflict { .. }) = recorded {
                    break Term::Deposed;
                }
                continue;
            }
        }
        if Instant::now() >= next_recheck {
            dirty_since.get_or_insert(Instant::now());
        }
        if dirty_since.is_none() || !synced {
            continue;
        }
        let started = Instant::now();
        let requests_before = store.requests();
        let hold_unseen = elected_at.elapsed() < STARTUP_GRACE;
        if hold_unseen && let Some(node) = missing_node(&cache) {
            // A node whose heartbeat is missing while its statuses say something may run
            // there: after an etcd outage its agent rode out in failsafe it claims the
            // node again within a few renewals. A decision now would move what it runs
            // (and fence it); none is made until it is back or the grace is over.
            tracing::info!(%node, "a node's heartbeat is missing at the start of the term: deciding once it is back or the grace is over");
            dirty_since = None;
            next_recheck = next_recheck.min(elected_at + STARTUP_GRACE);
            continue;
        }
        // What the turn finds of the nodes happened by now (before what it does).
        let turn_time_usec = events::now_usec();
        let turn = tokio::select! {
            turn = decide(store, &mut cache, &mut memory, guard, hold_unseen) => turn,
            () = lease::expiring(lease_state.clone(), config.lease_ttl) => break Term::Deposed,
        };
        match turn {
            Ok(decision) => {
                failures = 0;
                dirty_since = None;
                // `decide` floors the policy's interval at a second; an expiry may be sooner.
                next_recheck = Instant::now() + decision.recheck.max(Duration::from_millis(20));
                if hold_unseen {
                    // Decide again once the grace is over, for nodes still unseen.
                    next_recheck = next_recheck.min(elected_at + STARTUP_GRACE);
                }
                let requests = store.requests().since(requests_before);
                let took = started.elapsed();
                if decision.written > 0 {
                    tracing::info!(term, revision = decision.input_revision, written = decision.written, actions = decision.plan.actions.len(), took = ?took, reads = requests.reads, writes = requests.writes, "new decision");
                } else {
                    tracing::debug!(term, revision = decision.input_revision, took = ?took, reads = requests.reads, writes = requests.writes, "decision unchanged");
                }
                let outcome = if decision.written > 0 { TurnOutcome::New } else { TurnOutcome::Unchanged };
                config.metrics.turn(took, outcome, decision.plan.live_actions());
                // Moved, not copied: scrapes render this turn's snapshot and plan until
                // the next turn replaces them.
                if event_log.handle.is_finished() {
                    // It stops only when deposed or after etcd failed it for long; a
                    // leader still leading starts it again.
                    event_log = events::spawn(store.clone(), guard.clone());
                    // Delivery follows the new task's sequence and records through it.
                    delivery.abort();
                    delivery = start_delivery(&event_log);
                }
                if delivery.is_finished() {
                    delivery = start_delivery(&event_log);
                }
                let alerting: Vec<Object> =
                    decision.snapshot.objects.iter().filter(|object| matches!(object.spec, Spec::Alert(_) | Spec::Node(_))).cloned().collect();
                alerts_sender.send_if_modified(|last| {
                    let changed = last.as_slice() != alerting.as_slice();
                    if changed {
                        *last = Arc::new(alerting);
                    }
                    changed
                });
                let view = events::TurnView {
                    nodes: membership(&decision.snapshot, &cache),
                    limit: policy(&decision.snapshot.objects).event_limit,
                    revision: decision.input_revision,
                    time_usec: turn_time_usec,
                };
                event_log.turns.send_if_modified(|last| {
                    let changed = *last != view;
                    *last = view;
                    changed
                });
                for event in memory.events.drain(..) {
                    let _ = event_log.events.send(events::LeaderEvent { event, after_revision: decision.input_revision });
                }
                let dc = dc_node(&cache, config.metrics.host());
                config.metrics.publish(ClusterState::new(decision.snapshot, decision.plan, cache.spec_changed_at(), dc));
            }
            Err(DecideError::Store(StoreError::Conflict { .. })) => break Term::Deposed,
            Err(DecideError::NotReady(reason)) => {
                // Finishing the apply is anyone's job: listing the objects does it.
                tracing::info!(%reason, "waiting for a large apply to be rolled forward");
                if let Err(error) = store.list_objects().await {
                    tracing::warn!(%error, "cannot finish the pending apply; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(DecideError::Store(error)) => {
                config.metrics.turn(started.elapsed(), TurnOutcome::Failed, std::iter::empty());
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "decision failed; retrying");
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << failures.min(5)));
                tokio::time::sleep(backoff).await;
            }
        }
    };
    // A leader stepping down writes its last decision's record if it can; a deposed
    // one's writes would fail.
    if matches!(outcome, Term::Shutdown)
        && memory.recorder.is_running()
        && tokio::time::timeout(Duration::from_secs(2), memory.recorder.finish()).await.is_err()
    {
        tracing::warn!("the last decision's record was not written within 2 s");
    }
    lease_task.abort();
    memory.recorder.abort();
    delivery.abort();
    event_log.handle.abort();
    drop(informer);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_assignment_is_written_again_once_a_withdrawn_resource_reports_after_it() {
        let status = |node: &str, id: &str, role: &str| {
            serde_json::json!({"id": id, "name": id, "node": node, "role": role, "definition": {"agent": "ocf:heartbeat:Dummy"}, "history": []}).to_string()
        };
        let stored: NodeAssignment = serde_json::from_value(serde_json::json!({
            "node": "n1", "inputRevision": 20, "seenRevision": 10, "state": "online", "startFailureIsFatal": true, "unfenceFirst": false, "attributes": {},
            "resources": [{"id": "db", "instance": "db", "name": "db", "role": "Started", "managed": true, "exclusive": true,
                           "definition": {"agent": "ocf:heartbeat:Dummy"}, "failuresSeen": 0}],
            "migrations": [], "stopAfter": {}
        }))
        .expect("an assignment");
        let mut cache = ClusterCache::new(crate::store::Keys::new("/pacer"));
        // Seen by the decision (written at 9), listed, stopped, or another node's
        // (`n10` sorts right after `n1`): nothing to write.
        cache.apply_write("/pacer/status/n1/web", Some(status("n1", "web", "Started").as_bytes()), 9);
        cache.apply_write("/pacer/status/n1/db", Some(status("n1", "db", "Started").as_bytes()), 12);
        cache.apply_write("/pacer/status/n1/old", Some(status("n1", "old", "Stopped").as_bytes()), 13);
        cache.apply_write("/pacer/status/n10/web", Some(status("n10", "web", "Started").as_bytes()), 14);
        assert!(!withdrawal_unseen(&cache, &stored));
        // `web` written again after the decision, running and not listed: the agent
        // holds its stop until an assignment decided on that status arrives.
        cache.apply_write("/pacer/status/n1/web", Some(status("n1", "web", "Started").as_bytes()), 15);
        assert!(withdrawal_unseen(&cache, &stored));
        assert!(!withdrawal_unseen(&cache, &NodeAssignment { seen_revision: 15, ..stored.clone() }));
    }

    #[test]
    fn the_node_object_made_for_a_running_agent_is_valid_marked_and_without_its_attributes() {
        let heartbeat = NodeHeartbeat {
            node: "n1".into(),
            attributes: [("rack".to_string(), "r1".to_string())].into(),
            capacity: [("cpu".to_string(), 4)].into(),
            ..NodeHeartbeat::default()
        };
        let loaded = load_manifests(&[Source { name: "heartbeats".into(), text: node_manifest("n1", &heartbeat) }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let object = &loaded.manifests[0].object;
        assert_eq!(object.metadata.annotations.get("pacer.io/created-by").map(String::as_str), Some("scheduler"));
        let Spec::Node(spec) = &object.spec else { panic!("not a Node: {object:?}") };
        // The agent's proposed attributes stay run-time: here they would outrank them.
        assert!(spec.attributes.is_empty(), "{spec:?}");
        assert_eq!(spec.utilization.get("cpu"), Some(&4));
    }
}
