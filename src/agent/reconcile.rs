//! The node agent's state machine, without IO: what the node runs and knows
//! (`Local`), what it is told (`NodeAssignment`), what the other nodes report; and the
//! two functions the event loop calls — `decide` (which operations to run now) and
//! `record` (what an operation's result changes). Every decision the agent makes is
//! here, so it is unit-tested without etcd or processes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::ocf;
use crate::api::records::{
    AssignedResource, DEFAULT_TIMEOUT_MS, Definition, ExecStatus, FAIL_COUNT_INFINITY, LocalGate, NodeAssignment, NodeState, Notice, NoticePhase, ObservedRole,
    OperationRecord, RequestKind, RequestRecord, ResourceStatus, split_fail_count_key, start_call,
};
use crate::api::resource::Role;
use crate::exec::OperationResult;
use crate::state::{ProbeTargets, gates};

use super::events::{EVENTS_KEPT_PER_RESOURCE, EventIds, OperationOutcome, PendingEvent, operation_event};
use super::locals::Locals;
use super::statuses::ClusterStatuses;

/// When the second run of a monitor is due: its first runs right after the start (a
/// failed start is found at once, as Pacemaker does), the second between half and one
/// interval later, at a place fixed by the node, the resource and the interval, and
/// every later one an interval after that. Resources started together (a burst of a
/// thousand) so monitor spread over half their interval instead of all at once.
pub fn spread_due(node: &str, id: &str, interval_ms: u64, now: Instant) -> Instant {
    // FNV-1a, a fixed hash (std's is seeded per process): the same place after a
    // restart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(id.bytes()).chain([0]).chain(interval_ms.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let fraction = (hash % 1000) as f64 / 1000.0;
    let interval = Duration::from_millis(interval_ms);
    now + interval.mul_f64(0.5 + fraction / 2.0)
}

/// An operation `decide` chose, before its step is built: the resource, what to run,
/// the notification it carries, the operation an `Intend` announces.
type Chosen<'a> = (&'a String, &'a Local, Action, Option<NotifyEvent>, Option<Action>);

/// The order in which decided operations get a place under the node's limit
/// (`Reconciler::admit`).
fn admission_class(action: Action) -> u8 {
    match action {
        Action::Stop | Action::Demote | Action::MigrateTo | Action::Notify => 0,
        Action::Probe => 1,
        Action::Start | Action::Promote | Action::MigrateFrom => 2,
        Action::Intend => 3,
        Action::Monitor(_) => 4,
        Action::Announce => 5,
    }
}

/// Lookups for one decision (`Reconciler::index`): what the node runs, indexed once
/// per decision (linear in this node's resources); what the other nodes report is
/// looked up in `ClusterStatuses`, indexed as each status arrives.
struct Index<'a> {
    /// This node's assignment, by id.
    assigned: HashMap<&'a str, &'a AssignedResource>,
    /// The other nodes' statuses, with their counts.
    cluster: &'a ClusterStatuses,
    /// This node's statuses by primitive name: built the first time a gate is
    /// evaluated (many nodes have none).
    local_by_name: std::cell::OnceCell<HashMap<&'a str, Vec<&'a ResourceStatus>>>,
    local: &'a Locals,
    /// For a name, the local resources possibly active that were started after it.
    needed_by: HashMap<&'a str, Vec<&'a str>>,
    /// When the decision is made.
    now: Instant,
}

impl<'a> Index<'a> {
    /// This node's statuses by primitive name.
    fn local_by_name(&self) -> &HashMap<&'a str, Vec<&'a ResourceStatus>> {
        self.local_by_name.get_or_init(|| {
            let mut by_name: HashMap<&'a str, Vec<&'a ResourceStatus>> = HashMap::new();
            // A quiet entry (stopped, nothing pending) opens no gate and holds no stop:
            // only the awake ones are looked up.
            for (_, local) in self.local.awake_entries() {
                by_name.entry(local.status.name.as_str()).or_default().push(&local.status);
            }
            by_name
        })
    }

    /// The statuses of every copy of the primitive `name`, on every node.
    fn statuses_named(&self, name: &str) -> impl Iterator<Item = &'a ResourceStatus> + '_ {
        self.cluster.of_name(name).chain(self.local_by_name().get(name).into_iter().flatten().copied())
    }

    /// The statuses gates can depend on: those of their members, on every node.
    fn gate_statuses(&self, gates: &[LocalGate]) -> Vec<&'a ResourceStatus> {
        if gates.is_empty() {
            return Vec::new();
        }
        let mut statuses = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for member in gates.iter().flat_map(|gate| gate.members.iter()) {
            if seen.insert(member.as_str()) {
                statuses.extend(self.statuses_named(member));
            }
        }
        statuses
    }
}

/// An operation the agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// A monitor with interval 0, expecting "not running": what runs here?
    Probe,
    Start,
    Stop,
    Promote,
    Demote,
    /// Live migration, first half: hand the resource over to the target node.
    MigrateTo,
    /// Live migration, second half: take the resource over from the source node.
    MigrateFrom,
    /// A recurring monitor of this interval (milliseconds).
    Monitor(u64),
    /// Clone notifications: publish that an action is about to happen (no agent runs).
    Announce,
    /// Clone notifications: run the agent's `notify` for an action of some instance.
    Notify,
    /// Record in the status that `Step::intent` is about to run (no agent runs).
    Intend,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Probe | Action::Monitor(_) => "monitor",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::MigrateTo => "migrate_to",
            Action::MigrateFrom => "migrate_from",
            Action::Announce => "announce",
            Action::Notify => "notify",
            Action::Intend => "intend",
        }
    }

    pub fn interval_ms(self) -> u64 {
        match self {
            Action::Monitor(interval) => interval,
            _ => 0,
        }
    }
}

/// One operation to run: on which resource, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub id: String,
    pub action: Action,
    /// Shared with the entry's status when it runs as that does (a probe, a
    /// monitor, a stop): copied only to change it.
    pub definition: Arc<Definition>,
    pub timeout: Duration,
    /// For `Announce` and `Notify`: the action notified about.
    pub notify: Option<NotifyEvent>,
    /// For `Intend`: the operation recorded as pending.
    pub intent: Option<Action>,
}

/// An action of a notifying clone's instance, as notifications speak of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyEvent {
    /// The acting instance: its node and id.
    pub node: String,
    pub id: String,
    pub incarnation: i64,
    pub seq: u64,
    /// `start`, `stop`, `promote` or `demote`.
    pub operation: String,
    pub phase: NoticePhase,
}

/// An instance announcing actions: its node and id.
pub type Announcer = (String, String);

/// A notice as notified: incarnation, sequence number and phase.
pub type NoticeMark = (i64, u64, NoticePhase);

/// How long an announced action waits for the other instances' pre notifications
/// (an instance on a node that stopped answering is not waited for longer).
pub const NOTIFY_WAIT: Duration = Duration::from_secs(5);

/// How long a withdrawal decided before the leader saw this node's latest write of a
/// resource's role is held at most (`Reconciler::stale_withdrawal`): the leader
/// rewrites the assignment within a turn of seeing that write.
pub const WITHDRAWAL_HOLD_LIMIT: Duration = Duration::from_secs(10);

/// What the agent does with its resources when asked to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnShutdown {
    /// Stop every resource (in reverse start order), then exit.
    Stop,
    /// Leave them running; the node's lease lapses and the scheduler decides.
    Leave,
}

/// One resource as this node knows it.
#[derive(Clone, Debug)]
pub struct Local {
    /// What the node reports (role, history, failures); written to etcd on change.
    pub status: ResourceStatus,
    /// The operation running now, if any: one at a time per resource.
    pub busy: Option<Action>,
    /// Recurring monitors: interval (ms) → when it is next due.
    pub monitors: BTreeMap<u64, Instant>,
    /// Monitors run once since the resource became active, whose next run is spread
    /// over the interval (`spread_due`).
    pub spread: std::collections::BTreeSet<u64>,
    /// The status changed since it was last written.
    pub dirty: bool,
    /// When the pending pre notice was published (not kept across restarts: a notice
    /// found after a restart is not waited on).
    pub notice_since: Option<Instant>,
    /// Notices of instances of its clone (its own among them) this instance has been
    /// notified of: (node, id) → the last (seq, phase).
    pub handled: BTreeMap<Announcer, NoticeMark>,
    /// Events its results made, written with its status (in the same transaction),
    /// oldest first.
    pub events: Vec<PendingEvent>,
    /// For a promotion's intent not yet written: the other nodes' statuses of its clone
    /// (`Reconciler::promotion_basis`) the decision to promote was made on. The intent
    /// is written only if none changed meanwhile.
    pub promote_basis: Option<PromotionBasis>,
    /// The basis of the last promotion intent refused: not tried again on the same
    /// view (the change that refused it has not arrived yet).
    pub refused_basis: Option<PromotionBasis>,
    /// The etcd revision this agent last wrote a new role or pending operation of the
    /// resource at (0: not since it started), and what it wrote. A decision that has
    /// not seen that write does not take the resource away (`stale_withdrawal`); a
    /// write that changes neither (a monitor's result, a notification's ack) does not
    /// renew the hold.
    pub written_revision: i64,
    pub written_role: Option<(ObservedRole, Option<String>)>,
    /// When `written_revision` was last renewed.
    pub written_at: Option<Instant>,
}

/// Statuses a promotion was decided on: (node, id) and the mod revision of each.
pub type PromotionBasis = Vec<((String, String), i64)>;

impl Local {
    /// Its status was written at `revision`: a new role or pending operation starts a
    /// hold (`Reconciler::stale_withdrawal`).
    pub fn status_written(&mut self, revision: i64, now: Instant) {
        let role = (self.status.role, self.status.pending.clone());
        if self.written_role.as_ref() != Some(&role) {
            self.written_revision = revision;
            self.written_role = Some(role);
            self.written_at = Some(now);
        }
    }

    pub(crate) fn new(status: ResourceStatus) -> Local {
        Local {
            status,
            busy: None,
            monitors: BTreeMap::new(),
            spread: Default::default(),
            dirty: false,
            notice_since: None,
            handled: BTreeMap::new(),
            events: Vec::new(),
            promote_basis: None,
            refused_basis: None,
            written_revision: 0,
            written_at: None,
            written_role: None,
        }
    }
}

/// The agent's whole view.
#[derive(Debug)]
pub struct Reconciler {
    pub node: String,
    /// The latest decision for this node; nothing but probes happen without one.
    pub assignment: Option<NodeAssignment>,
    /// Every configured primitive as this node would run it, by id.
    pub targets: Arc<ProbeTargets>,
    /// What every node reports, by (node, id); this node's entries are superseded by
    /// `local`, which is fresher.
    pub cluster: ClusterStatuses,
    /// The mod revision of each clone instance's status in `cluster`, as etcd gave
    /// it: what a promotion's intent is guarded by (`PromotionBasis`). Only clones'
    /// (nothing else is promoted): a copy of every status's key was a megabyte of
    /// each hollow node at 10,000 resources (issue 18).
    pub revisions: BTreeMap<(String, String), i64>,
    /// This node's resources, with the sets a decision walks (`locals::Locals`).
    pub local: Locals,
    /// Entries no longer configured (not in `targets`): what `unconfigured` looks at.
    orphans: BTreeSet<String>,
    /// Set once shutting down with `OnShutdown::Stop`: everything is to be stopped.
    pub stopping_all: bool,
    /// This node's last unfencing succeeded (the fencing records say so).
    pub unfenced: bool,
    /// A device unfences and fencing is on: nothing starts here before this node is
    /// unfenced under its current lease, whatever an assignment written before its
    /// restart says (`state::fencing::unfencing_required`).
    pub must_unfence: bool,
    /// This node's statuses as an earlier agent left them, with the revision each was
    /// read at, until the node's fencing is known: those older than its last
    /// successful fencing are void (`void_inherited`).
    pub inherited: BTreeMap<String, (i64, ResourceStatus)>,
    /// This agent's session (its lease id), stamped on the notices it publishes.
    pub incarnation: i64,
    /// Cleanups and refreshes asked of this node (`requests/<node>/<id>`) and applied,
    /// by id, until their keys are gone: applied once, deleted once the statuses they
    /// changed are written.
    pub requests: BTreeMap<String, AppliedRequest>,
    /// The ids of the events this agent writes (`pending/<node>/<id>`).
    pub event_ids: EventIds,
    next_call_id: i64,
}

/// A request this node has applied to its statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedRequest {
    /// The resources whose status it changed (each probed again).
    pub touched: Vec<String>,
    /// The resources it names that were not ready when it was applied (busy, an
    /// operation recorded as pending, or a failure no decision has seen yet): applied
    /// to each as soon as it is.
    pub waiting: Vec<String>,
    /// Its deletion is written; it is kept until the key is gone from the cache, so an
    /// echo of the request arriving meanwhile does not apply it a second time.
    pub deleted: bool,
}

/// What `Reconciler::take_request` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestTaken {
    /// Applied before: nothing more to do.
    Known,
    /// No resource it names is ready for it yet (`Reconciler::request_ready`); it is
    /// applied to each once it is.
    Wait,
    /// Applied now to these resources (statuses changed, probed again); others it
    /// names may still wait.
    Applied(Vec<String>),
}

impl Reconciler {
    /// A reconciler that knows nothing yet. `previous` are this node's statuses as
    /// stored (from an earlier run): their failure counters, fail counts and
    /// definitions are kept, and every one is probed again — what ran before a
    /// restart is unknown until probed.
    pub fn new(node: &str, previous: Vec<ResourceStatus>) -> Reconciler {
        let mut next_call_id = 1;
        let mut local = Locals::default();
        let mut orphans = BTreeSet::new();
        for mut status in previous {
            next_call_id = next_call_id.max(status.history.iter().map(|record| record.call_id).max().unwrap_or(0) + 1);
            status.role = ObservedRole::Unknown;
            orphans.insert(status.id.clone());
            local.insert(status.id.clone(), Local::new(status));
        }
        Reconciler {
            node: node.to_string(),
            assignment: None,
            targets: Arc::default(),
            cluster: ClusterStatuses::new(node),
            revisions: BTreeMap::new(),
            local,
            orphans,
            stopping_all: false,
            unfenced: false,
            must_unfence: false,
            inherited: BTreeMap::new(),
            incarnation: 0,
            requests: BTreeMap::new(),
            event_ids: EventIds::default(),
            next_call_id,
        }
    }

    /// Replaces the configured primitives. New ones are probed; one no longer
    /// configured is kept while it may run here (it is stopped), forgotten once stopped.
    pub fn set_targets(&mut self, targets: Arc<ProbeTargets>) {
        self.targets = targets;
        for target in self.targets.values() {
            if let Some(mut local) = self.local.get_mut(&target.id) {
                local.status.name.clone_from(&target.name);
                local.status.group.clone_from(&target.group);
                local.status.clone.clone_from(&target.clone);
                if local.busy.is_none() && !local.status.role.may_be_active() {
                    local.status.definition = Arc::clone(&target.definition);
                }
                continue;
            }
            let status = ResourceStatus {
                id: target.id.clone(),
                name: target.name.clone(),
                group: target.group.clone(),
                clone: target.clone.clone(),
                node: self.node.clone(),
                role: ObservedRole::Unknown,
                definition: Arc::clone(&target.definition),
                history: Vec::new(),
                failures: 0,
                started_after: Vec::new(),
                fail_counts: BTreeMap::new(),
                last_failure: None,
                failure_reason: None,
                pending: None,
                notice: None,
                acks: BTreeMap::new(),
            };
            self.local.insert(target.id.clone(), Local::new(status));
        }
        self.orphans = self.local.keys().filter(|id| !self.targets.contains_key(*id)).cloned().collect();
    }

    /// Ids of resources no longer configured and known stopped: their statuses are to
    /// be deleted, and then `forget`ed.
    pub fn unconfigured(&self) -> Vec<String> {
        let assigned: BTreeSet<&str> = self.assignment.iter().flat_map(|assignment| assignment.resources.iter().map(|resource| resource.id.as_str())).collect();
        self.orphans
            .iter()
            .filter_map(|id| self.local.get_key_value(id))
            .filter(|(id, local)| !assigned.contains(id.as_str()) && local.busy.is_none() && local.status.role == ObservedRole::Stopped)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Drops a resource from the view, once its status is deleted.
    pub fn forget(&mut self, id: &str) {
        self.orphans.remove(id);
        self.local.remove(id);
    }

    /// The resources whose start elsewhere waits for their probe on this joining node
    /// (`NodeAssignment::probe_first`): probed before the rest, and reported even when
    /// found not running.
    pub fn probe_first(&self) -> impl Iterator<Item = &str> {
        self.assignment.iter().flat_map(|assignment| assignment.probe_first.iter().map(String::as_str))
    }

    /// Whether every resource this node knows of has been probed.
    pub fn probed(&self) -> bool {
        self.local.unknown().is_empty()
    }

    /// Whether nothing may be running here any more.
    pub fn all_stopped(&self) -> bool {
        // A quiet entry is stopped and idle.
        self.local.awake_entries().all(|(_, local)| local.busy.is_none() && !local.status.role.may_be_active())
    }

    fn assigned(&self, id: &str) -> Option<&AssignedResource> {
        self.assignment.as_ref()?.resources.iter().find(|resource| resource.id == id)
    }

    /// Every status of an instance of `clone` in the cluster, this node's from
    /// `local`: the other nodes' looked up in their index, not scanned.
    fn clone_statuses<'a>(&'a self, clone: &'a str) -> impl Iterator<Item = &'a ResourceStatus> + Clone + 'a {
        self.cluster.of_clone(clone).chain(self.local.values().map(|local| &local.status).filter(move |status| status.clone.as_deref() == Some(clone)))
    }

    /// The statuses of instances of `clone` with a notice, in the cluster: this node's
    /// among the awake entries only (a quiet one has no notice).
    fn clone_notices<'a>(&'a self, clone: &'a str) -> impl Iterator<Item = &'a ResourceStatus> + 'a {
        let local = self.local.awake_entries().map(|(_, local)| &local.status).filter(move |status| status.clone.as_deref() == Some(clone));
        self.cluster.of_clone(clone).chain(local).filter(|status| status.notice.is_some())
    }

    /// An index with nothing of the assignment or the stop order in it: what a probe
    /// or a monitor needs (they run as the resource last ran).
    fn bare_index(&self, now: Instant) -> Index<'_> {
        Index {
            assigned: HashMap::new(),
            cluster: &self.cluster,
            local_by_name: std::cell::OnceCell::new(),
            local: &self.local,
            needed_by: HashMap::new(),
            now,
        }
    }

    /// What a decision looks up per resource, built once per decision: looked up by
    /// scanning, a decision over n resources would cost n², and a burst of a thousand
    /// would stall the agent between operations.
    fn index(&self, now: Instant) -> Index<'_> {
        let mut index = self.bare_index(now);
        if let Some(assignment) = &self.assignment {
            index.assigned = assignment.resources.iter().map(|entry| (entry.id.as_str(), entry)).collect();
        }
        // A stopped, idle entry is quiet: only awake ones may be active.
        for (id, local) in self.local.awake_entries() {
            if local.status.role.may_be_active() {
                for after in &local.status.started_after {
                    index.needed_by.entry(after.as_str()).or_default().push(id.as_str());
                }
            }
        }
        index
    }

    /// The operations to run now, at most one per resource, none for a resource that
    /// is busy. Order: probes first (nothing else happens until every resource has
    /// been probed), then what the assignment asks, then due monitors.
    pub fn decide(&self, now: Instant) -> Vec<Step> {
        self.decide_within(now, usize::MAX).0
    }

    /// `decide`, held to `capacity` operations (`admit`'s order), building only the
    /// steps that will run: with a thousand resources waiting and room for four,
    /// copying a thousand definitions per decision would be most of the agent's work.
    /// Also returns how many operations were held back.
    ///
    /// Only the entries that may act are walked (`Locals`): until every resource is
    /// probed, the first `capacity` not probed and the awake ones (a monitor may be
    /// due); then the awake ones and those the assignment names. A quiet entry the
    /// assignment does not name converges to nothing (`locals::is_quiet`).
    pub fn decide_within(&self, now: Instant, capacity: usize) -> (Vec<Step>, usize) {
        if !self.probed() {
            return self.decide_probing(now, capacity);
        }
        let index = self.index(now);
        let mut chosen: Vec<Chosen<'_>> = Vec::new();
        let maintenance = self.assignment.as_ref().is_some_and(|assignment| assignment.state == NodeState::Maintenance);
        let mut walk: BTreeSet<&str> = self.local.awake().iter().map(String::as_str).collect();
        if let Some(assignment) = &self.assignment {
            walk.extend(assignment.resources.iter().map(|entry| entry.id.as_str()));
        }
        for (id, local) in walk.into_iter().filter_map(|id| self.local.get_key_value(id)) {
            if local.busy.is_some() {
                continue;
            }
            let mut notify = None;
            let action = if local.status.role == ObservedRole::Unknown {
                Some(Action::Probe)
            } else if maintenance || (self.assignment.is_none() && !self.stopping_all) {
                None
            } else if let Some(event) = self.pending_notification(local) {
                // Notifications first: other instances may be waiting for them.
                notify = Some(event);
                Some(Action::Notify)
            } else {
                match self.converge(id, local, &index) {
                    Some(action) if notifying(local) && matches!(action, Action::Start | Action::Stop | Action::Promote | Action::Demote) => {
                        self.announced(id, local, action, now, &mut notify)
                    }
                    other => other,
                }
            };
            // An operation that may leave the resource running is recorded (and written)
            // before it runs, so a node lost meanwhile counts as possibly running it.
            let mut intent = None;
            let action = match action {
                Some(action @ (Action::Start | Action::Promote | Action::MigrateFrom)) => {
                    if local.status.pending.as_deref() != Some(action.verb()) {
                        // A promotion refused on this very view waits for news.
                        let refused = action == Action::Promote && local.refused_basis.as_ref().is_some_and(|refused| *refused == self.promotion_basis(local));
                        intent = (!refused).then_some(action);
                        intent.map(|_| Action::Intend)
                    } else if local.dirty {
                        None
                    } else {
                        Some(action)
                    }
                }
                other => other,
            };
            let action = action.or_else(|| self.due_monitor(local, now));
            if let Some(action) = action {
                chosen.push((id, local, action, notify, intent));
            }
        }
        let (free, mut limited): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|(_, _, action, _, _)| *action == Action::Announce);
        // With room for everything, everything runs in `decide`'s order.
        if limited.len() > capacity {
            limited.sort_by_key(|(_, _, action, _, _)| admission_class(*action));
        }
        let held = limited.len().saturating_sub(capacity);
        limited.truncate(capacity);
        let steps = limited.into_iter().chain(free).map(|(id, local, action, notify, intent)| self.step(id, local, action, notify, intent, &index)).collect();
        (steps, held)
    }

    /// `decide_within` before every resource is probed: probes (those the assignment's
    /// `probe_first` names first, then id order), then due monitors (of resources
    /// found running by an earlier agent), nothing else. Walks only the first
    /// `capacity` entries not probed, so probing R resources costs the node R steps,
    /// not R².
    fn decide_probing(&self, now: Instant, capacity: usize) -> (Vec<Step>, usize) {
        let index = &self.bare_index(now);
        let unknown = self.local.unknown();
        let busy = self.local.busy().iter().filter(|id| unknown.contains(*id)).count();
        let probes = unknown.len() - busy;
        // What the scheduler waits for comes first (`probe_first`), then id order. Lazy:
        // the scheduler drops a name once it has seen its probe, so the list is short
        // by the time most of it is probed.
        let idle = |id: &&str| self.local.get(id).is_some_and(|local| local.busy.is_none());
        let first: Vec<&str> = self.probe_first().filter(|id| unknown.contains(*id)).filter(idle).take(capacity).collect();
        let mut steps: Vec<Step> = first
            .iter()
            .copied()
            .chain(unknown.iter().map(String::as_str).filter(|id| !first.contains(id)))
            .filter_map(|id| self.local.get_key_value(id))
            .filter(|(_, local)| local.busy.is_none())
            .take(capacity)
            .map(|(id, local)| self.step(id, local, Action::Probe, None, None, index))
            .collect();
        let monitors: Vec<(&String, &Local, Action)> = self
            .local
            .awake_known_entries()
            .filter(|(_, local)| local.busy.is_none())
            .filter_map(|(id, local)| self.due_monitor(local, now).map(|action| (id, local, action)))
            .collect();
        let held = (probes + monitors.len()).saturating_sub(capacity);
        let room = capacity.saturating_sub(steps.len());
        steps.extend(monitors.into_iter().take(room).map(|(id, local, action)| self.step(id, local, action, None, None, index)));
        (steps, held)
    }

    /// The step for an operation `decide` chose: its timeout and the definition it
    /// runs with.
    fn step(&self, id: &str, local: &Local, action: Action, notify: Option<NotifyEvent>, intent: Option<Action>, index: &Index<'_>) -> Step {
        let timeout = match action {
            Action::Monitor(interval) => local
                .status
                .definition
                .operations
                .iter()
                .find(|operation| operation.name == "monitor" && operation.interval_ms == interval)
                .map_or(DEFAULT_TIMEOUT_MS, |operation| operation.timeout_ms),
            Action::Probe => local.status.definition.timeout_ms("monitor"),
            other => local.status.definition.timeout_ms(other.verb()),
        };
        // A start runs as the decision says (its clone instance number among
        // it); everything else as the resource last ran.
        let mut definition = match (action, index.assigned.get(id).copied()) {
            // The probe target's copy when the decision's is the same (a plain
            // primitive, a unique instance): kept once the start is recorded.
            (Action::Start | Action::MigrateFrom, Some(entry)) => match self.targets.get(id) {
                Some(target) if *target.definition == entry.definition => Arc::clone(&target.definition),
                _ => Arc::new(entry.definition.clone()),
            },
            _ => Arc::clone(&local.status.definition),
        };
        // Both halves of a migration are told both ends.
        let ends = match action {
            Action::MigrateTo => self.migration_target(id).map(|target| (self.node.clone(), target.to_string())),
            Action::MigrateFrom => index.assigned.get(id).and_then(|entry| entry.migrate_from.clone()).map(|source| (source, self.node.clone())),
            _ => None,
        };
        if let Some((source, target)) = ends {
            let meta = &mut Arc::make_mut(&mut definition).meta;
            meta.insert("migrate_source".into(), source);
            meta.insert("migrate_target".into(), target);
        }
        if let (Action::Notify, Some(event), Some(clone)) = (action, &notify, &local.status.clone) {
            Arc::make_mut(&mut definition).meta.extend(self.notify_meta(clone, event));
        }
        Step { id: id.to_string(), action, definition, timeout: Duration::from_millis(timeout), notify, intent }
    }

    /// The one step towards what the assignment wants for a probed, idle resource.
    fn converge(&self, id: &str, local: &Local, index: &Index<'_>) -> Option<Action> {
        let entry = if self.stopping_all { None } else { index.assigned.get(id).copied() };
        if entry.is_some_and(|entry| !entry.managed) {
            return None;
        }
        let role = local.status.role;
        if role == ObservedRole::Failed {
            // A stop that failed is not retried: the scheduler fences the node or
            // leaves the resource blocked.
            if local
                .status
                .history
                .iter()
                .filter(|record| record.interval_ms == 0)
                .max_by_key(|record| record.call_id)
                .is_some_and(|record| record.operation == "stop")
            {
                return None;
            }
            // Recovery is the scheduler's call: a resource still assigned here is only
            // touched once a decision has seen its latest failure.
            return match entry {
                Some(entry) if entry.failures_seen < local.status.failures => None,
                _ => self.may_stop(id, index).then_some(Action::Stop),
            };
        }
        if role == ObservedRole::Migrating {
            // What is left here goes once the target runs it, or once the decision no
            // longer migrates it (a failed migrate_from: it is stopped everywhere).
            let waiting = self.migration_target(id).is_some_and(|target| !self.active_on(target, id));
            return (!waiting).then_some(Action::Stop);
        }
        let desired = entry.map_or(Role::Stopped, |entry| entry.role);
        // A decision that has not seen this node's latest status of the resource (its
        // start in flight, say) does not take it away: the next one, made on that
        // status, decides (the leader rewrites an unchanged assignment for it).
        if entry.is_none() && role.is_active() && self.stale_withdrawal(local, index.now) {
            return None;
        }
        // A restart the decision asks for (the `first` of an order this one is the
        // `then` of moves or recovers): the copy it names goes, before that first
        // stops; it starts again once its gates open.
        if let Some(call) = entry.and_then(|entry| entry.restart)
            && role.is_active()
            && start_call(&local.status.history) == Some(call)
        {
            return match role {
                ObservedRole::Promoted => Some(Action::Demote),
                _ => self.may_stop(id, index).then_some(Action::Stop),
            };
        }
        match (role, desired) {
            (ObservedRole::Promoted, Role::Stopped) => Some(Action::Demote),
            (ObservedRole::Started, Role::Stopped) if self.migration_target(id).is_some() => Some(Action::MigrateTo),
            (_, Role::Stopped) if role.is_active() => self.may_stop(id, index).then_some(Action::Stop),
            (ObservedRole::Promoted, Role::Started | Role::Unpromoted) => Some(Action::Demote),
            (ObservedRole::Started | ObservedRole::Unpromoted, Role::Promoted) => {
                let entry = entry?;
                let open = gates::all_open(&entry.promote_after, &self.node, index.gate_statuses(&entry.promote_after).into_iter());
                (open && self.room_to_promote(entry, index)).then_some(Action::Promote)
            }
            (ObservedRole::Stopped, Role::Started | Role::Unpromoted | Role::Promoted) => {
                let entry = entry?;
                // Nothing starts on a node still to be unfenced.
                if (self.must_unfence || self.assignment.as_ref().is_some_and(|assignment| assignment.unfence_first)) && !self.unfenced {
                    return None;
                }
                let open = gates::all_open(&entry.start_after, &self.node, index.gate_statuses(&entry.start_after).into_iter());
                if let Some(source) = &entry.migrate_from {
                    // Take over once the source has handed over; start plainly if it
                    // reports the resource stopped; otherwise wait.
                    match self.cluster.get(&(source.clone(), id.to_string())).map(|status| status.role) {
                        Some(ObservedRole::Migrating) => return open.then_some(Action::MigrateFrom),
                        Some(ObservedRole::Stopped) | None => {}
                        Some(_) => return None,
                    }
                }
                let alone = !entry.exclusive || !index.cluster.active_elsewhere(id);
                (open && alone).then_some(Action::Start)
            }
            _ => None,
        }
    }

    /// Whether the assignment was decided before the leader had seen this node's last
    /// write of a new role of `local` (its start in flight, say): Pacemaker's DC waits
    /// for the actions in flight before deciding again. Not while stopping everything,
    /// nor on an assignment that says nothing of what it saw, nor for longer than
    /// `WITHDRAWAL_HOLD_LIMIT` after that write: a leader rewrites such an assignment
    /// within a turn, and one that never does (an older build, say) must not keep a
    /// resource here for good.
    fn stale_withdrawal(&self, local: &Local, now: Instant) -> bool {
        !self.stopping_all
            && local.written_at.is_some_and(|at| now < at + WITHDRAWAL_HOLD_LIMIT)
            && self.assignment.as_ref().is_some_and(|assignment| assignment.seen_revision > 0 && assignment.seen_revision < local.written_revision)
    }

    /// When the first withdrawal held now stops being held (`stale_withdrawal`).
    fn next_hold_expiry(&self, now: Instant) -> Option<Instant> {
        let assignment = self.assignment.as_ref()?;
        self.local
            .awake_known_entries()
            // The cheap test first: a hold is rare, the assignment's list long.
            .filter(|(_, local)| local.status.role.is_active() && self.stale_withdrawal(local, now))
            .filter(|(id, _)| !assignment.resources.iter().any(|entry| entry.id == **id))
            .filter_map(|(_, local)| local.written_at.map(|at| at + WITHDRAWAL_HOLD_LIMIT))
            .min()
    }

    /// The first notice of an instance of this one's clone (its own included) it has
    /// not been notified of — only an active instance is notified.
    fn pending_notification(&self, local: &Local) -> Option<NotifyEvent> {
        if !notifying(local) || !local.status.role.is_active() {
            return None;
        }
        let clone = local.status.clone.as_deref()?;
        self.clone_notices(clone)
            .filter_map(|status| status.notice.as_ref().map(|notice| (status, notice)))
            .find(|(status, notice)| {
                // Each notice is notified once: any change of it is a new one.
                local.handled.get(&(status.node.clone(), status.id.clone())).copied() != Some((notice.incarnation, notice.seq, notice.phase))
            })
            .map(|(status, notice)| NotifyEvent {
                node: status.node.clone(),
                id: status.id.clone(),
                incarnation: notice.incarnation,
                seq: notice.seq,
                operation: notice.operation.clone(),
                phase: notice.phase,
            })
    }

    /// An action of a notifying instance goes through its announcement: publish a pre
    /// notice (`Announce`), then run the action once every other active instance has
    /// acknowledged it (run its pre notification) or `NOTIFY_WAIT` has passed.
    fn announced(&self, id: &str, local: &Local, action: Action, now: Instant, notify: &mut Option<NotifyEvent>) -> Option<Action> {
        let verb = action.verb();
        let clone = local.status.clone.as_deref()?;
        match &local.status.notice {
            Some(notice) if notice.phase == NoticePhase::Pre && notice.operation == verb => {
                let key = format!("{}/{id}", self.node);
                let acknowledged = self
                    .clone_statuses(clone)
                    .filter(|status| !(status.node == self.node && status.id == id) && status.role.is_active())
                    .all(|status| status.acks.get(&key) == Some(&(notice.incarnation, notice.seq)));
                let waited = local.notice_since.is_none_or(|since| now >= since + NOTIFY_WAIT);
                (acknowledged || waited).then_some(action)
            }
            _ => {
                let seq = local.status.notice.as_ref().map_or(0, |notice| notice.seq) + 1;
                *notify = Some(NotifyEvent {
                    node: self.node.clone(),
                    id: id.to_string(),
                    incarnation: self.incarnation,
                    seq,
                    operation: verb.to_string(),
                    phase: NoticePhase::Pre,
                });
                Some(Action::Announce)
            }
        }
    }

    /// Records an `Intend` step's operation as pending (written before it runs). A
    /// promotion's keeps the view it was decided on (`promote_basis`): the intent is
    /// written only if that view still holds (`promotion_guard`), so two nodes that
    /// each saw room under promotedMax cannot both promote.
    pub fn intend(&mut self, step: &Step) {
        let basis = match (step.intent, self.local.get(&step.id)) {
            (Some(Action::Promote), Some(local)) => Some(self.promotion_basis(local)),
            _ => None,
        };
        let (Some(mut local), Some(intent)) = (self.local.get_mut(&step.id), step.intent) else { return };
        local.status.pending = Some(intent.verb().to_string());
        local.promote_basis = basis;
        local.dirty = true;
    }

    /// The mod revision the status of `cluster` under `key` was read at, kept while it
    /// is a clone instance's (a promotion's guard compares only those) and known;
    /// otherwise any revision held for the key is dropped.
    pub fn note_revision(&mut self, key: (String, String), revision: Option<i64>) {
        let clone = self.cluster.get(&key).is_some_and(|status| status.clone.is_some());
        match revision.filter(|_| clone) {
            Some(revision) => self.revisions.insert(key, revision),
            None => self.revisions.remove(&key),
        };
    }

    /// The other nodes' statuses of the primitive's clone (same clone, same primitive:
    /// what `room_to_promote` counts), with their mod revisions.
    pub fn promotion_basis(&self, local: &Local) -> PromotionBasis {
        let Some(clone) = local.status.clone.as_deref() else { return Vec::new() };
        self.cluster
            .of_clone(clone)
            .filter(|status| status.name == local.status.name)
            .map(|status| {
                let key = (status.node.clone(), status.id.clone());
                let revision = self.revisions.get(&key).copied().unwrap_or(0);
                (key, revision)
            })
            .collect()
    }

    /// For a status about to be written with a promotion's intent: the statuses (by
    /// node and id) and revisions the write must find unchanged.
    pub fn promotion_guard(&self, id: &str) -> Option<&PromotionBasis> {
        let local = self.local.get(id)?;
        local.promote_basis.as_ref().filter(|_| local.dirty && local.status.pending.as_deref() == Some("promote"))
    }

    /// A promotion's intent was not written: a status it was decided on changed. The
    /// intent is dropped (the status is written without it) and decided again once
    /// the change is seen.
    pub fn intent_refused(&mut self, id: &str) {
        let Some(mut local) = self.local.get_mut(id) else { return };
        local.status.pending = None;
        local.refused_basis = local.promote_basis.take();
    }

    /// A promotion's intent was written.
    pub fn intent_written(&mut self, id: &str, revision: i64, now: Instant) {
        if let Some(mut local) = self.local.get_mut(id) {
            local.status_written(revision, now);
            local.promote_basis = None;
            local.refused_basis = None;
            local.dirty = false;
            local.events = Vec::new();
        }
    }

    /// Publishes an `Announce` step's pre notice.
    pub fn announce(&mut self, step: &Step, now: Instant) {
        let (Some(mut local), Some(event)) = (self.local.get_mut(&step.id), &step.notify) else { return };
        local.status.notice = Some(Notice { incarnation: event.incarnation, seq: event.seq, operation: event.operation.clone(), phase: NoticePhase::Pre });
        local.notice_since = Some(now);
        local.dirty = true;
    }

    /// The `OCF_RESKEY_CRM_meta_notify_*` values of a notification, as Pacemaker sets
    /// them: the type and operation, the instance acting (and its node), and the
    /// instances active, promoted, unpromoted and inactive by the reports.
    fn notify_meta(&self, clone: &str, event: &NotifyEvent) -> BTreeMap<String, String> {
        let instances: Vec<&ResourceStatus> = self.clone_statuses(clone).collect();
        let list = |keep: &dyn Fn(&ResourceStatus) -> bool, field: &dyn Fn(&ResourceStatus) -> String| -> String {
            instances.iter().filter(|status| keep(status)).map(|status| field(status)).collect::<Vec<_>>().join(" ")
        };
        let id = |status: &ResourceStatus| status.id.clone();
        let node = |status: &ResourceStatus| status.node.clone();
        let active = |status: &ResourceStatus| status.role.is_active();
        let promoted = |status: &ResourceStatus| status.role == ObservedRole::Promoted;
        let unpromoted = |status: &ResourceStatus| matches!(status.role, ObservedRole::Started | ObservedRole::Unpromoted);
        let inactive = |status: &ResourceStatus| !status.role.is_active();
        let mut meta = BTreeMap::new();
        meta.insert("notify_type".to_string(), event.phase.as_str().to_string());
        meta.insert("notify_operation".to_string(), event.operation.clone());
        for operation in ["start", "stop", "promote", "demote"] {
            let (resource, uname) = if operation == event.operation { (event.id.clone(), event.node.clone()) } else { (String::new(), String::new()) };
            meta.insert(format!("notify_{operation}_resource"), resource);
            meta.insert(format!("notify_{operation}_uname"), uname);
        }
        meta.insert("notify_active_resource".into(), list(&active, &id));
        meta.insert("notify_active_uname".into(), list(&active, &node));
        for (name, old) in [("promoted", "master"), ("unpromoted", "slave")] {
            let keep: &dyn Fn(&ResourceStatus) -> bool = if name == "promoted" { &promoted } else { &unpromoted };
            for suffix in ["resource", "uname"] {
                let field: &dyn Fn(&ResourceStatus) -> String = if suffix == "resource" { &id } else { &node };
                let value = list(keep, field);
                meta.insert(format!("notify_{name}_{suffix}"), value.clone());
                meta.insert(format!("notify_{old}_{suffix}"), value);
            }
        }
        meta.insert("notify_inactive_resource".into(), list(&inactive, &id));
        let mut nodes: Vec<String> = instances.iter().map(|status| status.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        meta.insert("notify_all_uname".into(), nodes.join(" "));
        meta.insert("notify_available_uname".into(), nodes.join(" "));
        meta
    }

    /// A resource stops after those started after it on this node have stopped
    /// (stops run in the reverse order of starts).
    ///
    /// Across nodes, the decision's stop gates (`NodeAssignment::stop_after`): a copy of
    /// a `then` that started after this resource and may still run, wherever it is,
    /// must be seen stopped first (Pacemaker stops the then before the first). Not when
    /// shutting down with everything stopping: no decision may come to stop the then.
    fn may_stop(&self, id: &str, index: &Index<'_>) -> bool {
        let Some(name) = self.local.get(id).map(|local| local.status.name.as_str()) else { return true };
        if index.needed_by.get(name).is_some_and(|others| others.iter().any(|other| *other != id)) {
            return false;
        }
        if self.stopping_all {
            return true;
        }
        let Some(thens) = self.assignment.as_ref().and_then(|assignment| assignment.stop_after.get(name)) else { return true };
        !thens
            .iter()
            .flat_map(|then| index.statuses_named(then))
            .any(|status| !(status.node == self.node && status.id == id) && status.may_be_active() && status.started_after.iter().any(|after| after == name))
    }

    /// Where the assignment migrates this resource to, if it does.
    fn migration_target(&self, id: &str) -> Option<&str> {
        self.assignment.as_ref()?.migrations.iter().find(|migration| migration.id == id).map(|migration| migration.target.as_str())
    }

    /// Whether `node` reports the resource running.
    fn active_on(&self, node: &str, id: &str) -> bool {
        self.cluster.get(&(node.to_string(), id.to_string())).is_some_and(|status| status.role.is_active())
    }

    /// Whether the clone has fewer instances possibly promoted on other nodes than its
    /// `promoted_max`: an instance is promoted only once another has demoted or its
    /// node has been fenced (the fenced node's statuses are then forgotten). The
    /// decision may already place the promotion elsewhere while a lost node's instance
    /// is still promoted; found by the fault campaign (a promotion on n2 ran 200 ms
    /// before the fencing of n1, whose instance was promoted, had succeeded).
    fn room_to_promote(&self, entry: &AssignedResource, index: &Index<'_>) -> bool {
        let Some(clone) = &entry.clone else { return true };
        let most = entry.definition.meta.get("promoted_max").and_then(|max| max.parse::<usize>().ok()).unwrap_or(1);
        // Counted per primitive: the members of a cloned group each count their own.
        let promoted = index.cluster.promoted_elsewhere(clone, &entry.name);
        promoted < most
    }

    fn due_monitor(&self, local: &Local, now: Instant) -> Option<Action> {
        if !local.status.role.is_active() {
            return None;
        }
        local.monitors.iter().filter(|(_, due)| **due <= now).min_by_key(|(_, due)| **due).map(|(interval, _)| Action::Monitor(*interval))
    }

    /// When the next recurring monitor is due, if any is scheduled.
    pub fn next_monitor_due(&self) -> Option<Instant> {
        self.local
            .awake_known_entries()
            .filter(|(_, local)| local.busy.is_none() && local.status.role.is_active())
            .flat_map(|(_, local)| local.monitors.values().copied())
            .min()
    }

    /// When something is due without any event: a recurring monitor, the end of an
    /// announced action's wait for acknowledgements, or of a withdrawal's hold.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let notices = self
            .local
            .awake_known_entries()
            .map(|(_, local)| local)
            .filter(|local| local.busy.is_none() && local.status.notice.as_ref().is_some_and(|notice| notice.phase == NoticePhase::Pre))
            .filter_map(|local| local.notice_since.map(|since| since + NOTIFY_WAIT));
        self.next_monitor_due().into_iter().chain(notices).chain(self.next_hold_expiry(now)).min()
    }

    /// Which of `steps` (from `decide`) to run now, when at most `capacity` more
    /// operations may run on this node (Pacemaker's node-action-limit): stops, demotes,
    /// hand-overs and notifications first (they free the node and others wait on them),
    /// then probes, then starts and promotions whose intent is recorded, then new
    /// intents, then monitors; in `decide`'s order within each. Announcements run no
    /// agent and always pass; an intent takes a place, since its operation follows at
    /// once. What is left out is decided again when an operation ends.
    pub fn admit(steps: Vec<Step>, capacity: usize) -> Vec<Step> {
        let (free, mut limited): (Vec<Step>, Vec<Step>) = steps.into_iter().partition(|step| step.action == Action::Announce);
        limited.sort_by_key(|step| admission_class(step.action));
        limited.truncate(capacity);
        limited.extend(free);
        limited
    }

    /// Marks a step as running.
    pub fn begin(&mut self, step: &Step) {
        if let Some(mut local) = self.local.get_mut(&step.id) {
            local.busy = Some(step.action);
        }
    }

    /// Takes in what an operation did. `epoch_usec` is the time now in microseconds
    /// since the epoch (for the history and the event). Returns whether the status
    /// changed and must be written; the event it makes, if any (`events`), is written
    /// with it.
    pub fn record(&mut self, step: &Step, result: &OperationResult, now: Instant, epoch_usec: i64) -> bool {
        let epoch = epoch_usec.div_euclid(1_000_000);
        let start_failure_is_fatal = self.assignment.as_ref().is_none_or(|assignment| assignment.start_failure_is_fatal);
        let started_after: Vec<String> =
            self.assigned(&step.id).map(|entry| entry.start_after.iter().flat_map(|gate| gate.members.iter().cloned()).collect()).unwrap_or_default();
        if step.action == Action::Notify {
            return self.record_notification(step, result);
        }
        // Notices of the other instances of this one's clone, as they stand now: only
        // for a start, the one action that makes an instance active and so takes
        // them in (a probe of a clone instance costs no walk of the clone). Not judged
        // by `notifying` yet: a start takes the decision's definition, which may
        // notify where the one held does not.
        let clone = self.local.get(&step.id).filter(|_| step.action == Action::Start).and_then(|local| local.status.clone.clone());
        let notices_now: Vec<(Announcer, NoticeMark)> = clone
            .as_deref()
            .into_iter()
            .flat_map(|clone| self.clone_notices(clone))
            .filter(|status| !(status.node == self.node && status.id == step.id))
            .filter_map(|status| {
                status.notice.as_ref().map(|notice| ((status.node.clone(), status.id.clone()), (notice.incarnation, notice.seq, notice.phase)))
            })
            .collect();
        let call_id = self.next_call_id;
        self.next_call_id += 1;
        let event_id = self.event_ids.next(epoch_usec, self.incarnation);
        let Some(mut guard) = self.local.get_mut(&step.id) else { return false };
        let local: &mut Local = &mut guard;
        local.busy = None;
        // Whatever was under way has ended (or, for a probe, what runs is now known).
        if local.status.pending.take().is_some() {
            local.dirty = true;
        }
        let promotable = step.definition.meta.get("promotable").is_some_and(|value| value == "true");
        let before = local.status.role;
        let expected_rc = match step.action {
            Action::Probe => ocf::NOT_RUNNING,
            Action::Monitor(_) if before == ObservedRole::Promoted => ocf::RUNNING_PROMOTED,
            _ => ocf::OK,
        };
        let done = result.status == ExecStatus::Done;
        let rc = result.rc;
        // The role the result shows, or `None` for a failure.
        let outcome: Option<ObservedRole> = match step.action {
            Action::Probe if done => match rc {
                ocf::NOT_RUNNING => Some(ObservedRole::Stopped),
                ocf::OK | ocf::DEGRADED => Some(if promotable { ObservedRole::Unpromoted } else { ObservedRole::Started }),
                ocf::RUNNING_PROMOTED | ocf::DEGRADED_PROMOTED => Some(ObservedRole::Promoted),
                _ => None,
            },
            // Not installed here: certainly not running here.
            Action::Probe if result.status == ExecStatus::NotInstalled => Some(ObservedRole::Stopped),
            Action::Start if done && rc == ocf::OK => Some(if promotable { ObservedRole::Unpromoted } else { ObservedRole::Started }),
            Action::Stop if done && rc == ocf::OK => Some(ObservedRole::Stopped),
            Action::Promote if done && rc == ocf::OK => Some(ObservedRole::Promoted),
            Action::Demote if done && rc == ocf::OK => Some(ObservedRole::Unpromoted),
            Action::MigrateTo if done && rc == ocf::OK => Some(ObservedRole::Migrating),
            Action::MigrateFrom if done && rc == ocf::OK => Some(ObservedRole::Started),
            // Degraded is still running, in the same role.
            Action::Monitor(_) if done && (rc == expected_rc || rc == degraded(expected_rc)) => Some(before),
            _ => None,
        };
        // The latest of its kind: a kept last failure may be an older one.
        let status_changed_result = local
            .status
            .history
            .iter()
            .filter(|record| record.operation == step.action.verb() && record.interval_ms == step.action.interval_ms())
            .max_by_key(|record| record.call_id)
            .is_none_or(|record| record.rc != rc || record.status != result.status);
        // A recurring monitor that keeps answering the same is not news (an idle
        // cluster writes nothing).
        if matches!(step.action, Action::Monitor(_)) && outcome.is_some() && !status_changed_result {
            if let Some(due) = local.monitors.get_mut(&step.action.interval_ms()) {
                *due = now + Duration::from_millis(step.action.interval_ms());
            }
            return false;
        }
        // This monitor's previous answer since the resource last became what it is (a
        // start, promotion, probe…): a kept failure from before a restart is not it.
        let period_start = local.status.history.iter().filter(|record| record.interval_ms == 0).map(|record| record.call_id).max();
        let previous = local
            .status
            .history
            .iter()
            .filter(|record| record.operation == step.action.verb() && record.interval_ms == step.action.interval_ms() && record.interval_ms > 0)
            .filter(|record| period_start.is_none_or(|start| record.call_id > start))
            .max_by_key(|record| record.call_id)
            .map(|record| (record.rc, record.status));
        let outcome_facts = OperationOutcome {
            node: &self.node,
            resource: &step.id,
            action: step.action,
            rc,
            expected_rc,
            status: result.status,
            exec_time: result.duration,
            previous,
            time_usec: epoch_usec,
        };
        if let Some(event) = operation_event(&outcome_facts) {
            if local.events.len() >= EVENTS_KEPT_PER_RESOURCE {
                local.events.remove(0);
            }
            local.events.push(PendingEvent { id: event_id, event });
        }
        let entry = OperationRecord {
            operation: step.action.verb().to_string(),
            interval_ms: step.action.interval_ms(),
            call_id,
            rc,
            expected_rc,
            status: result.status,
            last_rc_change: Some(epoch),
            migrate_source: step.definition.meta.get("migrate_source").filter(|_| matches!(step.action, Action::MigrateTo | Action::MigrateFrom)).cloned(),
            migrate_target: step.definition.meta.get("migrate_target").filter(|_| matches!(step.action, Action::MigrateTo | Action::MigrateFrom)).cloned(),
            digest: None,
            restart_digest: None,
        };
        let history = &mut local.status.history;
        let failed = outcome.is_none();
        // As Pacemaker keeps it: the last one-shot operation, the last result of each
        // recurring monitor, and the last failure of any kind (until a newer one).
        let last_failure = if failed { None } else { history.iter().filter(|record| record.is_failure()).max_by_key(|record| record.call_id).cloned() };
        if step.action.interval_ms() == 0 {
            history.retain(|record| record.interval_ms != 0);
        } else {
            history.retain(|record| record.interval_ms != entry.interval_ms);
        }
        history.push(entry);
        if let Some(last_failure) = last_failure.filter(|kept| !history.contains(kept)) {
            history.push(last_failure);
        }
        history.sort_by_key(|record| record.call_id);
        // A few records, kept for as long as the resource is configured, on every node
        // for every resource: room for four (what a push leaves) is 0.6 KB per entry
        // when one probe is all it holds.
        history.shrink_to_fit();
        match outcome {
            Some(role) => {
                local.status.role = role;
                if matches!(step.action, Action::Start | Action::MigrateFrom) {
                    local.status.started_after = started_after;
                    local.status.definition = Arc::clone(&step.definition);
                    for key in ["migrate_source", "migrate_target"] {
                        if local.status.definition.meta.contains_key(key) {
                            Arc::make_mut(&mut local.status.definition).meta.remove(key);
                        }
                    }
                }
            }
            None => {
                local.status.role = ObservedRole::Failed;
                local.status.failure_reason =
                    result.exit_reason.clone().or_else(|| Some(format!("{} returned {rc} ({:?})", step.action.verb(), result.status)));
                // A failed probe or stop is no ordinary failure: the scheduler reads
                // it from the history (a failed stop may call for fencing).
                if !matches!(step.action, Action::Probe | Action::Stop) {
                    local.status.failures = local.status.failures.saturating_add(1);
                    local.status.last_failure = Some(epoch);
                    let key = format!("{}_{}", step.action.verb(), step.action.interval_ms());
                    let count = local.status.fail_counts.entry(key).or_insert(0);
                    *count = if matches!(step.action, Action::Start) && start_failure_is_fatal {
                        FAIL_COUNT_INFINITY
                    } else {
                        count.saturating_add(1).min(FAIL_COUNT_INFINITY)
                    };
                }
            }
        }
        // Once certainly stopped it runs as configured now: the definition it ran with
        // was kept only to probe and stop it (`new`, `set_targets`).
        if let Some(target) = self.targets.get(&step.id).filter(|_| !local.status.role.may_be_active()) {
            local.status.definition = Arc::clone(&target.definition);
        }
        let role = local.status.role;
        if notifying(local) && matches!(step.action, Action::Start | Action::Stop | Action::Promote | Action::Demote) {
            // Just active: notified from now on, not of what happened before.
            if role.is_active() && !before.is_active() {
                local.handled.extend(notices_now);
            }
            // Done: the other instances run their post notifications (a failed action
            // is not notified as done).
            let (incarnation, seq) = local.status.notice.as_ref().map_or((self.incarnation, 1), |notice| (notice.incarnation, notice.seq));
            local.status.notice = (!failed).then(|| Notice { incarnation, seq, operation: step.action.verb().to_string(), phase: NoticePhase::Post });
            local.notice_since = None;
        }
        if role != before || failed {
            // Recurring monitors follow the role: the first runs at once.
            local.monitors.clear();
            // A stop cancels the recurring monitors: their results go, but not the
            // last failure.
            if role == ObservedRole::Stopped {
                let keep = local.status.history.iter().filter(|record| record.is_failure()).map(|record| record.call_id).max();
                local.status.history.retain(|record| record.interval_ms == 0 || Some(record.call_id) == keep);
            }
            if role.is_active() {
                let wanted = match role {
                    ObservedRole::Promoted => Role::Promoted,
                    ObservedRole::Unpromoted => Role::Unpromoted,
                    _ => Role::Started,
                };
                for monitor in local.status.definition.monitors_for(wanted) {
                    local.monitors.insert(monitor.interval_ms, now);
                    local.spread.insert(monitor.interval_ms);
                }
            }
        } else if let Action::Monitor(interval) = step.action {
            let due = if local.spread.remove(&interval) { spread_due(&self.node, &step.id, interval, now) } else { now + Duration::from_millis(interval) };
            local.monitors.insert(interval, due);
        }
        local.dirty = true;
        true
    }

    /// Takes in a notification's end: remembered as handled; a pre notification for
    /// another instance is acknowledged in this one's status. A failed notification is
    /// logged by the caller and otherwise ignored, as Pacemaker does.
    fn record_notification(&mut self, step: &Step, result: &OperationResult) -> bool {
        let node = self.node.clone();
        let (Some(mut local), Some(event)) = (self.local.get_mut(&step.id), &step.notify) else { return false };
        local.busy = None;
        let _ = result;
        local.handled.insert((event.node.clone(), event.id.clone()), (event.incarnation, event.seq, event.phase));
        if event.phase == NoticePhase::Pre && !(event.node == node && event.id == step.id) {
            local.status.acks.insert(format!("{}/{}", event.node, event.id), (event.incarnation, event.seq));
            local.dirty = true;
            return true;
        }
        false
    }

    /// Applies a cleanup or refresh asked of this node, once. Cleanup (Pacemaker's
    /// `crm_resource --cleanup`) touches only the resources with a failure it covers:
    /// their fail counts and failed results go (one operation's, or all), and with
    /// them the last failure once no fail count is left. Refresh (`--refresh`)
    /// forgets the whole history and every fail count. Either way each touched
    /// resource is probed again — the stored status keeps its old, true content until
    /// the probe's result replaces it (a status is not written while unknown), so the
    /// scheduler never sees a resource that may run with no history.
    ///
    /// The `failures` counter is not reset: it is the number a decision echoes in
    /// `failures_seen` (the agent never recovers on its own). Reset, a later failure
    /// would count 1 while the assignment still said it had seen more, and the agent
    /// would act on that failure before any decision saw it; kept, every failure after
    /// the cleanup is still newer than what the decision saw, and nothing waits on a
    /// count that cannot be reached.
    pub fn take_request(&mut self, id: &str, request: &RequestRecord) -> RequestTaken {
        let names: Vec<String> = match self.requests.get(id) {
            Some(applied) if applied.waiting.is_empty() => return RequestTaken::Known,
            Some(applied) => applied.waiting.clone(),
            None => {
                let mut names = request.resources.clone();
                names.dedup();
                names
            }
        };
        let (ready, waiting): (Vec<String>, Vec<String>) = names.into_iter().partition(|name| self.request_ready(name));
        let mut touched = Vec::new();
        for resource in &ready {
            let Some(mut local) = self.local.get_mut(resource) else { continue };
            let changed = match request.kind {
                RequestKind::Cleanup => clear_failures(&mut local.status, request),
                RequestKind::Refresh => {
                    forget_history(&mut local.status);
                    true
                }
            };
            if changed && !touched.contains(resource) {
                local.status.role = ObservedRole::Unknown;
                local.monitors.clear();
                local.spread.clear();
                local.dirty = true;
                touched.push(resource.clone());
            }
        }
        let applied = self.requests.entry(id.to_string()).or_insert_with(|| AppliedRequest { touched: Vec::new(), waiting: Vec::new(), deleted: false });
        applied.touched.extend(touched.iter().cloned());
        let all_done = waiting.is_empty();
        applied.waiting = waiting;
        if touched.is_empty() && !all_done { RequestTaken::Wait } else { RequestTaken::Applied(touched) }
    }

    /// Whether a request may be applied to a resource now: it is idle, has no
    /// operation recorded as pending (its result would land on a forgotten state), and
    /// — while it is assigned here — every failure it recorded has been seen by a
    /// decision (`failures_seen`). A cleanup erasing a failure no decision has seen
    /// would let the agent start the resource again on its own, skipping the
    /// scheduler's recovery (and the restart of what is ordered after it).
    fn request_ready(&self, id: &str) -> bool {
        let Some(local) = self.local.get(id) else { return true };
        local.busy.is_none() && local.status.pending.is_none() && self.assigned(id).is_none_or(|entry| entry.failures_seen >= local.status.failures)
    }

    /// Applied requests whose touched resources have all been probed again: their
    /// deletion goes with the next write of statuses (after them, in the same
    /// transaction when it fits).
    pub fn finished_requests(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|(_, applied)| !applied.deleted && applied.waiting.is_empty())
            .filter(|(_, applied)| applied.touched.iter().all(|id| self.local.get(id).is_none_or(|local| local.status.role != ObservedRole::Unknown)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks a request's deletion as written.
    pub fn request_deleted(&mut self, id: &str) {
        if let Some(applied) = self.requests.get_mut(id) {
            applied.deleted = true;
        }
    }

    /// Forgets applied requests whose keys are gone (`stored` says which still exist).
    pub fn keep_requests(&mut self, stored: impl Fn(&str) -> bool) {
        self.requests.retain(|id, _| stored(id));
    }

    /// Forgets what an earlier agent recorded of the resources here before this
    /// node's last successful fencing (`fenced`, a revision): the inherited statuses
    /// read at an older revision lose their history, fail counts and last failure, as
    /// Pacemaker wipes a fenced node's history — written back, they would fence the
    /// node again. What this agent recorded itself stays, and so does the failure
    /// counter (it only grows: `failures_seen`). Returns the resources changed.
    pub fn void_inherited(&mut self, fenced: i64) -> Vec<String> {
        let void: Vec<String> = self.inherited.iter().filter(|(_, (read, _))| *read < fenced).map(|(id, _)| id.clone()).collect();
        for id in &void {
            let Some((_, old)) = self.inherited.remove(id) else { continue };
            let Some(mut local) = self.local.get_mut(id) else { continue };
            let status = &mut local.status;
            status.history.retain(|record| !old.history.contains(record));
            for (operation, count) in &old.fail_counts {
                if let Some(now) = status.fail_counts.get_mut(operation) {
                    *now = now.saturating_sub(*count);
                }
            }
            status.fail_counts.retain(|_, count| *count > 0);
            if status.last_failure == old.last_failure {
                status.last_failure = None;
                status.failure_reason = None;
            }
            local.dirty = true;
        }
        void
    }

    /// Forgets what runs here (after the lease was lost and everything was stopped or
    /// killed): every resource is probed again before anything else.
    pub fn forget_roles(&mut self) {
        self.local.for_each_mut(|_, local| {
            local.status.role = ObservedRole::Unknown;
            local.busy = None;
            local.monitors.clear();
            // Their facts were never written (the lease was gone): neither are they.
            local.events = Vec::new();
        });
    }
}

/// Whether an instance takes part in clone notifications (`clone.notify`).
fn notifying(local: &Local) -> bool {
    local.status.clone.is_some() && local.status.definition.meta.get("notify").is_some_and(|value| value == "true")
}

/// Clears the failures `request` covers from `status`; whether there were any.
fn clear_failures(status: &mut ResourceStatus, request: &RequestRecord) -> bool {
    if !request.finds_failures(status) {
        return false;
    }
    status.fail_counts.retain(|key, _| !split_fail_count_key(key).is_some_and(|(operation, interval)| request.covers(operation, interval)));
    status.history.retain(|record| !(record.is_failure() && request.covers(&record.operation, record.interval_ms)));
    if status.fail_counts.is_empty() {
        status.last_failure = None;
        status.failure_reason = None;
    }
    true
}

/// Forgets everything recorded of a resource but how to run it (a refresh).
fn forget_history(status: &mut ResourceStatus) {
    status.history.clear();
    status.fail_counts.clear();
    status.last_failure = None;
    status.failure_reason = None;
}

/// The "running, but degraded" answer that goes with an expected exit code.
fn degraded(expected_rc: i32) -> i32 {
    if expected_rc == ocf::RUNNING_PROMOTED { ocf::DEGRADED_PROMOTED } else { ocf::DEGRADED }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::constraint::OrderAction;
    use crate::api::records::{EventKind, EventRecord, OperationDef};
    use crate::state::ProbeTarget;

    const NODE: &str = "n1";
    const OTHER: &str = "n2";
    const EPOCH: i64 = 1_700_000_000;
    const EPOCH_USEC: i64 = EPOCH * 1_000_000;

    fn definition(operations: Vec<OperationDef>) -> Definition {
        Definition {
            agent: "ocf:heartbeat:Dummy".parse().expect("agent"),
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            operations,
        }
    }

    fn promotable(mut definition: Definition) -> Definition {
        definition.meta.insert("promotable".into(), "true".into());
        definition
    }

    fn monitor(interval_ms: u64, role: Option<Role>) -> OperationDef {
        OperationDef { name: "monitor".into(), interval_ms, timeout_ms: 5_000, role }
    }

    fn by_id(targets: Vec<ProbeTarget>) -> Arc<ProbeTargets> {
        Arc::new(targets.into_iter().map(|target| (target.id.clone(), target)).collect())
    }

    fn target(id: &str, definition: Definition) -> ProbeTarget {
        ProbeTarget { id: id.into(), name: id.into(), group: None, clone: None, definition: Arc::new(definition) }
    }

    fn entry(id: &str, role: Role) -> AssignedResource {
        AssignedResource {
            id: id.into(),
            instance: id.into(),
            name: id.into(),
            group: None,
            clone: None,
            role,
            managed: true,
            exclusive: true,
            definition: definition(vec![]),
            failures_seen: 0,
            migrate_from: None,
            start_after: vec![],
            promote_after: vec![],
            restart: None,
        }
    }

    fn assignment(resources: Vec<AssignedResource>) -> NodeAssignment {
        NodeAssignment {
            node: NODE.into(),
            input_revision: 1,
            term: 1,
            seen_revision: 0,
            state: NodeState::Online,
            start_failure_is_fatal: true,
            unfence_first: false,
            attributes: BTreeMap::new(),
            resources,
            migrations: Vec::new(),
            stop_after: BTreeMap::new(),
            probe_first: Vec::new(),
        }
    }

    /// Sets the assignment; entries without a definition of their own run the probe
    /// target's, as the scheduler's entries and the probe targets come from one spec.
    fn assign(r: &mut Reconciler, mut assignment: NodeAssignment) {
        for entry in &mut assignment.resources {
            if let Some(target) = r.targets.get(&entry.id).filter(|_| entry.definition == definition(vec![])) {
                entry.definition = (*target.definition).clone();
            }
        }
        r.assignment = Some(assignment);
    }

    fn gate(member: &str, action: OrderAction) -> LocalGate {
        LocalGate { resource: member.into(), members: vec![member.into()], action, same_node: false, on_nodes: None, at_least: 1, any_of: None }
    }

    fn status(id: &str, node: &str, role: ObservedRole) -> ResourceStatus {
        ResourceStatus {
            id: id.into(),
            name: id.into(),
            group: None,
            clone: None,
            node: node.into(),
            role,
            definition: Arc::new(definition(vec![])),
            history: vec![],
            failures: 0,
            started_after: vec![],
            fail_counts: BTreeMap::new(),
            last_failure: None,
            failure_reason: None,
            pending: None,
            notice: None,
            acks: BTreeMap::new(),
        }
    }

    fn result(status: ExecStatus, rc: i32) -> OperationResult {
        OperationResult { status, rc, exit_reason: None, stdout: String::new(), stderr: String::new(), duration: Duration::ZERO, attributes: Vec::new() }
    }

    fn done(rc: i32) -> OperationResult {
        result(ExecStatus::Done, rc)
    }

    fn reconciler(targets: Vec<ProbeTarget>) -> Reconciler {
        let mut reconciler = Reconciler::new(NODE, Vec::new());
        reconciler.set_targets(by_id(targets));
        reconciler
    }

    /// What `decide` wants, as (id, action).
    fn decided(reconciler: &mut Reconciler, now: Instant) -> Vec<(String, Action)> {
        settled_steps(reconciler, now).into_iter().map(|step| (step.id, step.action)).collect()
    }

    /// What `decide` wants once the agent loop has done its part: statuses written,
    /// and the pending operations it records before running them recorded and written.
    fn settled_steps(reconciler: &mut Reconciler, now: Instant) -> Vec<Step> {
        reconciler.local.for_each_mut(|_, local| local.dirty = false);
        let steps = reconciler.decide(now);
        if !steps.iter().any(|step| step.action == Action::Intend) {
            return steps;
        }
        for step in steps.iter().filter(|step| step.action == Action::Intend) {
            reconciler.intend(step);
        }
        reconciler.local.for_each_mut(|_, local| local.dirty = false);
        reconciler.decide(now)
    }

    fn one(id: &str, action: Action) -> Vec<(String, Action)> {
        vec![(id.to_string(), action)]
    }

    /// Runs the step decided now for `id`, which must be `action`, to `result`; what
    /// `record` returned.
    fn run(reconciler: &mut Reconciler, now: Instant, id: &str, action: Action, result: OperationResult) -> bool {
        let step = settled_steps(reconciler, now).into_iter().find(|step| step.id == id).unwrap_or_else(|| panic!("nothing decided for {id}"));
        assert_eq!(step.action, action, "the step decided for {id}");
        reconciler.begin(&step);
        reconciler.record(&step, &result, now, EPOCH_USEC)
    }

    fn probe(reconciler: &mut Reconciler, now: Instant, id: &str, rc: i32) {
        assert!(run(reconciler, now, id, Action::Probe, done(rc)));
    }

    fn role(reconciler: &Reconciler, id: &str) -> ObservedRole {
        reconciler.local[id].status.role
    }

    fn local<'a>(reconciler: &'a Reconciler, id: &str) -> &'a ResourceStatus {
        &reconciler.local[id].status
    }

    #[test]
    fn everything_is_probed_before_anything_starts() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started), entry("b", Role::Started)]));
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Probe), ("b".to_string(), Action::Probe)]);
        let steps = settled_steps(&mut r, now);
        for step in &steps {
            r.begin(step);
        }
        assert!(decided(&mut r, now).is_empty(), "nothing while probes run");
        assert!(r.record(&steps[0], &done(ocf::NOT_RUNNING), now, EPOCH_USEC));
        assert_eq!(role(&r, "a"), ObservedRole::Stopped);
        assert!(!r.probed());
        assert!(decided(&mut r, now).is_empty(), "a does not start while b's probe runs");
        assert!(r.record(&steps[1], &done(ocf::NOT_RUNNING), now, EPOCH_USEC));
        assert!(r.probed());
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Start), ("b".to_string(), Action::Start)]);
    }

    #[test]
    fn a_joining_node_probes_first_what_the_scheduler_waits_for() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![])), target("c", definition(vec![]))]);
        let probes = |r: &Reconciler| -> Vec<(String, Action)> { r.decide_within(now, 2).0.into_iter().map(|step| (step.id, step.action)).collect() };
        // In id order while nothing is awaited.
        assign(&mut r, NodeAssignment { state: NodeState::Pending, ..assignment(vec![]) });
        assert_eq!(probes(&r), vec![("a".to_string(), Action::Probe), ("b".to_string(), Action::Probe)]);
        // The awaited one first, then id order; one already probed is not probed again.
        assign(&mut r, NodeAssignment { state: NodeState::Pending, probe_first: vec!["c".into(), "gone".into()], ..assignment(vec![]) });
        assert_eq!(probes(&r), vec![("c".to_string(), Action::Probe), ("a".to_string(), Action::Probe)]);
        let steps = r.decide_within(now, 1).0;
        r.begin(&steps[0]);
        assert!(r.record(&steps[0], &done(ocf::NOT_RUNNING), now, EPOCH_USEC));
        assert_eq!(probes(&r), vec![("a".to_string(), Action::Probe), ("b".to_string(), Action::Probe)]);
        assert_eq!(r.probe_first().collect::<Vec<_>>(), vec!["c", "gone"]);
    }

    #[test]
    fn a_withdrawal_decided_before_the_latest_status_was_written_waits_for_one_that_saw_it() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::OK);
        probe(&mut r, now, "b", ocf::OK);
        // `a`'s role was last written at revision 50 (its start, say); `b`'s at 10.
        r.local.get_mut("a").expect("a").status_written(50, now);
        r.local.get_mut("b").expect("b").status_written(10, now);
        // A monitor's result written later, the role unchanged, renews nothing.
        r.local.get_mut("b").expect("b").status_written(60, now + Duration::from_secs(1));
        assert_eq!(r.local["b"].written_revision, 10);
        assert_eq!(r.local["b"].written_at, Some(now));
        // Decided having seen up to revision 40, neither listed: `b` goes, `a` is held.
        assign(&mut r, NodeAssignment { seen_revision: 40, ..assignment(vec![]) });
        assert_eq!(decided(&mut r, now), one("b", Action::Stop));
        // Not for longer than the limit: the agent wakes then, and `a` goes too.
        assert_eq!(r.next_wake(now), Some(now + WITHDRAWAL_HOLD_LIMIT));
        let later = now + WITHDRAWAL_HOLD_LIMIT;
        assert_eq!(decided(&mut r, later), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Stop)]);
        assert_eq!(r.next_wake(later), None);
        // Decided having seen `a`'s status: it goes too.
        assign(&mut r, NodeAssignment { seen_revision: 50, ..assignment(vec![]) });
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Stop)]);
        // An assignment that says nothing of what it saw holds nothing.
        assign(&mut r, NodeAssignment { seen_revision: 0, ..assignment(vec![]) });
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Stop)]);
        // Stopping everything (the node leaves) waits for no decision.
        assign(&mut r, NodeAssignment { seen_revision: 40, ..assignment(vec![]) });
        r.stopping_all = true;
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Stop)]);
    }

    #[test]
    fn without_an_assignment_only_probes_and_monitors_run() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)])), target("b", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::OK);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        // `a` runs unassigned and `b` is stopped: neither is touched, `a` is monitored.
        assert_eq!(decided(&mut r, now), one("a", Action::Monitor(10_000)));
        assert!(run(&mut r, now, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert!(decided(&mut r, now).is_empty());
        assert!(decided(&mut r, now + Duration::from_secs(3600)).iter().all(|(_, action)| matches!(action, Action::Monitor(_))));
    }

    #[test]
    fn probe_results_give_the_role() {
        let cases = [
            (done(ocf::NOT_RUNNING), false, ObservedRole::Stopped),
            (done(ocf::OK), false, ObservedRole::Started),
            (done(ocf::OK), true, ObservedRole::Unpromoted),
            (done(ocf::DEGRADED), false, ObservedRole::Started),
            (done(ocf::RUNNING_PROMOTED), true, ObservedRole::Promoted),
            (done(ocf::DEGRADED_PROMOTED), true, ObservedRole::Promoted),
            (result(ExecStatus::NotInstalled, ocf::NOT_INSTALLED), false, ObservedRole::Stopped),
            (done(ocf::ERR_GENERIC), false, ObservedRole::Failed),
            (result(ExecStatus::Timeout, ocf::ERR_GENERIC), false, ObservedRole::Failed),
        ];
        let now = Instant::now();
        for (outcome, is_promotable, expected) in cases {
            let definition = if is_promotable { promotable(definition(vec![])) } else { definition(vec![]) };
            let mut r = reconciler(vec![target("a", definition)]);
            assert!(run(&mut r, now, "a", Action::Probe, outcome.clone()));
            let status = local(&r, "a");
            assert_eq!(status.role, expected, "{outcome:?} promotable={is_promotable}");
            assert_eq!(status.history.len(), 1);
            assert_eq!((status.history[0].operation.as_str(), status.history[0].interval_ms, status.history[0].expected_rc), ("monitor", 0, ocf::NOT_RUNNING));
            // A failed probe is reported (role, reason, history), but is no failure
            // counted against the resource.
            assert_eq!(status.failure_reason.is_some(), expected == ObservedRole::Failed);
            assert_eq!(status.failures, 0);
            assert!(status.fail_counts.is_empty());
            assert!(r.local["a"].dirty);
        }
    }

    #[test]
    fn start_waits_for_its_start_after_gates() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![]))]);
        let mut b = entry("b", Role::Started);
        b.start_after = vec![gate("a", OrderAction::Start)];
        assign(&mut r, assignment(vec![b]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        r.cluster.insert((OTHER.into(), "a".into()), status("a", OTHER, ObservedRole::Stopped));
        // Not assigned, `a` stays stopped here; `b` waits for it.
        assert!(decided(&mut r, now).is_empty());
        // Another node's report opens the gate.
        r.cluster.insert((OTHER.into(), "a".into()), status("a", OTHER, ObservedRole::Started));
        assert_eq!(decided(&mut r, now), one("b", Action::Start));
        // So does this node's own copy; a stale report of this node in `cluster` does not.
        r.cluster.clear();
        r.cluster.insert((NODE.into(), "a".into()), status("a", NODE, ObservedRole::Started));
        assert!(decided(&mut r, now).is_empty());
        r.local.get_mut("a").expect("a").status.role = ObservedRole::Started;
        let b_steps: Vec<Action> = decided(&mut r, now).into_iter().filter(|(id, _)| id == "b").map(|(_, action)| action).collect();
        assert_eq!(b_steps, vec![Action::Start]);
    }

    #[test]
    fn a_restart_stops_the_copy_it_names_once_then_starts_when_the_gate_opens() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("web", definition(vec![]))]);
        probe(&mut r, now, "web", ocf::NOT_RUNNING);
        // web runs here after db (on OTHER).
        r.cluster.insert((OTHER.into(), "db".into()), status("db", OTHER, ObservedRole::Started));
        let mut web = entry("web", Role::Started);
        web.start_after = vec![gate("db", OrderAction::Start)];
        assign(&mut r, assignment(vec![web.clone()]));
        assert!(run(&mut r, now, "web", Action::Start, done(ocf::OK)));
        let started = start_call(&local(&r, "web").history).expect("a start call");
        assert!(decided(&mut r, now).is_empty(), "running as assigned");
        // db moves to a third node: the decision restarts this copy of web, whose gate
        // only db there opens.
        web.restart = Some(started);
        web.start_after[0].on_nodes = Some(vec!["n3".into()]);
        assign(&mut r, assignment(vec![web.clone()]));
        assert!(run(&mut r, now, "web", Action::Stop, done(ocf::OK)));
        assert!(decided(&mut r, now).is_empty(), "db does not run on n3 yet");
        r.cluster.insert((OTHER.into(), "db".into()), status("db", OTHER, ObservedRole::Stopped));
        r.cluster.insert(("n3".into(), "db".into()), status("db", "n3", ObservedRole::Started));
        assert!(run(&mut r, now, "web", Action::Start, done(ocf::OK)));
        // The same decision, written again, restarts nothing more: another copy runs.
        assign(&mut r, assignment(vec![web]));
        assert!(decided(&mut r, now).is_empty());
    }

    #[test]
    fn a_stop_waits_for_the_thens_started_after_it_on_other_nodes() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("db", definition(vec![]))]);
        probe(&mut r, now, "db", ocf::OK);
        // db leaves this node; web runs on OTHER, started after db.
        let mut leaving = assignment(vec![]);
        leaving.stop_after = BTreeMap::from([("db".to_string(), vec!["web".to_string()])]);
        assign(&mut r, leaving.clone());
        let mut web = status("web", OTHER, ObservedRole::Started);
        web.started_after = vec!["db".into()];
        r.cluster.insert((OTHER.into(), "web".into()), web.clone());
        assert!(decided(&mut r, now).is_empty(), "web must be seen stopped first");
        // A copy that did not start after db does not hold it, nor does one stopped.
        web.started_after.clear();
        r.cluster.insert((OTHER.into(), "web".into()), web.clone());
        assert_eq!(decided(&mut r, now), one("db", Action::Stop));
        web.started_after = vec!["db".into()];
        web.role = ObservedRole::Stopped;
        r.cluster.insert((OTHER.into(), "web".into()), web.clone());
        assert_eq!(decided(&mut r, now), one("db", Action::Stop));
        // Without the decision's stop gate (an asymmetric order), nothing is waited for.
        web.role = ObservedRole::Started;
        r.cluster.insert((OTHER.into(), "web".into()), web);
        leaving.stop_after.clear();
        assign(&mut r, leaving);
        assert_eq!(decided(&mut r, now), one("db", Action::Stop));
    }

    #[test]
    fn an_exclusive_resource_starts_only_when_every_other_node_reports_it_stopped() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
        for elsewhere in [ObservedRole::Unknown, ObservedRole::Started, ObservedRole::Failed, ObservedRole::Promoted] {
            r.cluster.insert((OTHER.into(), "a".into()), status("a", OTHER, elsewhere));
            assert!(decided(&mut r, now).is_empty(), "{elsewhere:?} elsewhere");
        }
        // A resource that is not exclusive (an anonymous clone instance) starts anyway.
        r.assignment.as_mut().expect("assignment").resources[0].exclusive = false;
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
        r.assignment.as_mut().expect("assignment").resources[0].exclusive = true;
        r.cluster.insert((OTHER.into(), "a".into()), status("a", OTHER, ObservedRole::Stopped));
        // This node's own entry in `cluster` is superseded by `local`.
        r.cluster.insert((NODE.into(), "a".into()), status("a", NODE, ObservedRole::Started));
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
    }

    #[test]
    fn stops_run_in_the_reverse_order_of_starts() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![]))]);
        let mut b = entry("b", Role::Started);
        b.start_after = vec![gate("a", OrderAction::Start)];
        assign(&mut r, assignment(vec![entry("a", Role::Started), b]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
        assert!(run(&mut r, now, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, now, "b", Action::Start, done(ocf::OK)));
        assert_eq!(local(&r, "b").started_after, vec!["a".to_string()]);
        assert!(local(&r, "a").started_after.is_empty());
        assign(&mut r, assignment(vec![]));
        assert_eq!(decided(&mut r, now), one("b", Action::Stop));
        // Still stopping: `a` waits.
        let step = settled_steps(&mut r, now).remove(0);
        r.begin(&step);
        assert!(decided(&mut r, now).is_empty());
        assert!(r.record(&step, &done(ocf::OK), now, EPOCH_USEC));
        assert_eq!(role(&r, "b"), ObservedRole::Stopped);
        assert_eq!(decided(&mut r, now), one("a", Action::Stop));
        assert!(run(&mut r, now, "a", Action::Stop, done(ocf::OK)));
        assert!(r.all_stopped());
        assert!(decided(&mut r, now).is_empty());
    }

    #[test]
    fn a_failed_monitor_is_recovered_only_once_a_decision_has_seen_it() {
        let t0 = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, t0, "a", ocf::NOT_RUNNING);
        assert!(run(&mut r, t0, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, t0, "a", Action::Monitor(10_000), done(ocf::OK)));
        let t1 = t0 + Duration::from_secs(10);
        let mut failure = done(ocf::NOT_RUNNING);
        failure.exit_reason = Some("gone".into());
        assert!(run(&mut r, t1, "a", Action::Monitor(10_000), failure));
        let status = local(&r, "a");
        assert_eq!(status.role, ObservedRole::Failed);
        assert_eq!(status.failures, 1);
        assert_eq!(status.fail_counts.get("monitor_10000"), Some(&1));
        assert_eq!(status.last_failure, Some(EPOCH));
        assert_eq!(status.failure_reason.as_deref(), Some("gone"));
        // The assignment has not seen the failure: no stop, no monitor.
        let t2 = t1 + Duration::from_secs(60);
        assert!(decided(&mut r, t2).is_empty());
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 1;
        assert!(run(&mut r, t2, "a", Action::Stop, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Stopped);
        assert!(run(&mut r, t2, "a", Action::Start, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Started);
        // Counters are kept: only a decision clears them.
        assert_eq!(local(&r, "a").failures, 1);
        assert_eq!(local(&r, "a").fail_counts.get("monitor_10000"), Some(&1));
    }

    /// The events queued for `id` since last asked, as `task interval rc desc`, and
    /// forgotten as the status write does once they are written with it.
    fn take_events(reconciler: &mut Reconciler, id: &str) -> Vec<String> {
        let mut local = reconciler.local.get_mut(id).expect("the resource");
        let events = std::mem::take(&mut local.events);
        events
            .into_iter()
            .map(|pending| {
                let event = pending.event;
                format!("{} {} rc={} {}", event.task.unwrap_or_default(), event.interval_ms, event.rc.unwrap_or(-1), event.desc)
            })
            .collect()
    }

    #[test]
    fn results_make_events_only_when_they_are_news() {
        let t0 = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)]))]);
        r.incarnation = 3;
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, t0, "a", ocf::NOT_RUNNING);
        assert_eq!(take_events(&mut r, "a"), Vec::<String>::new(), "a probe finding it stopped is not news");
        assert!(run(&mut r, t0, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, t0, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert!(!run(&mut r, t0 + Duration::from_secs(10), "a", Action::Monitor(10_000), done(ocf::OK)));
        assert_eq!(take_events(&mut r, "a"), ["start 0 rc=0 ok"], "the monitor answering as expected is not news");
        assert!(run(&mut r, t0 + Duration::from_secs(20), "a", Action::Monitor(10_000), done(ocf::NOT_RUNNING)));
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 1;
        let t1 = t0 + Duration::from_secs(30);
        assert!(run(&mut r, t1, "a", Action::Stop, done(ocf::OK)));
        assert!(run(&mut r, t1, "a", Action::Start, done(ocf::OK)));
        // The first monitor after the recovery: the failure kept from before the
        // restart is not its previous answer.
        assert!(run(&mut r, t1, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert_eq!(take_events(&mut r, "a"), ["monitor 10000 rc=7 not running", "stop 0 rc=0 ok", "start 0 rc=0 ok"]);
        // Degraded, then recovered.
        let t2 = t1 + Duration::from_secs(15);
        assert!(run(&mut r, t2, "a", Action::Monitor(10_000), done(ocf::DEGRADED)));
        assert!(!run(&mut r, t2 + Duration::from_secs(10), "a", Action::Monitor(10_000), done(ocf::DEGRADED)));
        assert!(run(&mut r, t2 + Duration::from_secs(20), "a", Action::Monitor(10_000), done(ocf::OK)));
        assert_eq!(take_events(&mut r, "a"), ["monitor 10000 rc=190 degraded", "monitor 10000 rc=0 ok"]);
        // A timed-out stop says how it did not run, as Pacemaker does.
        assign(&mut r, assignment(vec![]));
        assert!(run(&mut r, t2 + Duration::from_secs(30), "a", Action::Stop, result(ExecStatus::Timeout, ocf::ERR_GENERIC)));
        assert_eq!(take_events(&mut r, "a"), ["stop 0 rc=1 Timed Out"]);
    }

    #[test]
    fn an_event_carries_the_result_and_a_unique_id() {
        let t0 = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        r.incarnation = 3;
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, t0, "a", ocf::NOT_RUNNING);
        let mut started = done(ocf::OK);
        started.duration = Duration::from_millis(1234);
        assert!(run(&mut r, t0, "a", Action::Start, started));
        let events = std::mem::take(&mut r.local.get_mut("a").expect("a").events);
        let [pending] = events.as_slice() else { panic!("one event: {events:?}") };
        let mut expected = EventRecord::new(EventKind::Resource, NODE, EPOCH_USEC, "ok");
        expected.node = Some(NODE.into());
        expected.resource = Some("a".into());
        expected.task = Some("start".into());
        expected.rc = Some(ocf::OK);
        expected.target_rc = Some(ocf::OK);
        expected.status = Some(ExecStatus::Done);
        expected.exec_time_ms = Some(1234);
        assert_eq!(pending.event, expected);
        // The probe before took an id too (every result does): they differ and sort.
        assert!(pending.id.ends_with("-00000001-0000000000000003"), "{}", pending.id);
    }

    #[test]
    fn a_probe_finding_a_resource_running_is_news_and_a_lost_lease_forgets_unwritten_events() {
        let t0 = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        probe(&mut r, t0, "a", ocf::OK);
        assert_eq!(r.local["a"].events.len(), 1);
        r.forget_roles();
        assert!(r.local["a"].events.is_empty(), "its fact was never written");
    }

    #[test]
    fn a_failed_resource_no_longer_assigned_is_stopped_at_once() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assert!(run(&mut r, now, "a", Action::Start, done(ocf::ERR_GENERIC)));
        assert!(decided(&mut r, now).is_empty());
        assign(&mut r, assignment(vec![]));
        assert_eq!(decided(&mut r, now), one("a", Action::Stop));
    }

    #[test]
    fn a_failed_monitor_stays_in_the_history_and_monitors_are_quiet_again_once_recovered() {
        let t0 = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, t0, "a", ocf::NOT_RUNNING);
        assert!(run(&mut r, t0, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, t0, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert!(run(&mut r, t0 + Duration::from_secs(10), "a", Action::Monitor(10_000), done(ocf::NOT_RUNNING)));
        // The scheduler learns of the failure (and its `on-fail`) from the history.
        let failed = local(&r, "a").history.iter().find(|record| record.interval_ms == 10_000).expect("the failed monitor in the history");
        assert_eq!((failed.operation.as_str(), failed.rc, failed.expected_rc), ("monitor", ocf::NOT_RUNNING, ocf::OK));
        assert_eq!(local(&r, "a").history.iter().filter(|record| record.interval_ms == 0).count(), 1, "the start");
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 1;
        let t1 = t0 + Duration::from_secs(20);
        assert!(run(&mut r, t1, "a", Action::Stop, done(ocf::OK)));
        // The stop ends the monitor's results but the failure stays, as Pacemaker's
        // last failure.
        let summary = |r: &Reconciler| -> Vec<(String, u64, i32)> {
            local(r, "a").history.iter().map(|record| (record.operation.clone(), record.interval_ms, record.rc)).collect()
        };
        assert_eq!(summary(&r), vec![("monitor".to_string(), 10_000, ocf::NOT_RUNNING), ("stop".to_string(), 0, ocf::OK)]);
        assert!(run(&mut r, t1, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, t1, "a", Action::Monitor(10_000), done(ocf::OK)));
        // Running again: the old failure is kept beside the new result, and the same
        // result again is not news.
        assert_eq!(summary(&r).iter().filter(|(_, interval, _)| *interval == 10_000).count(), 2);
        assert!(!run(&mut r, t1 + Duration::from_secs(10), "a", Action::Monitor(10_000), done(ocf::OK)));
    }

    #[test]
    fn a_failed_start_bans_at_once_when_start_failure_is_fatal() {
        let now = Instant::now();
        for (fatal, outcome, expected) in [
            (true, done(ocf::ERR_GENERIC), FAIL_COUNT_INFINITY),
            (true, result(ExecStatus::Timeout, ocf::ERR_GENERIC), FAIL_COUNT_INFINITY),
            (false, done(ocf::ERR_GENERIC), 1),
        ] {
            let mut r = reconciler(vec![target("a", definition(vec![]))]);
            let mut decision = assignment(vec![entry("a", Role::Started)]);
            decision.start_failure_is_fatal = fatal;
            assign(&mut r, decision);
            probe(&mut r, now, "a", ocf::NOT_RUNNING);
            assert!(run(&mut r, now, "a", Action::Start, outcome));
            let status = local(&r, "a");
            assert_eq!(status.role, ObservedRole::Failed);
            assert_eq!(status.fail_counts.get("start_0"), Some(&expected), "start_failure_is_fatal={fatal}");
            assert_eq!(status.failures, 1);
            assert_eq!(status.last_failure, Some(EPOCH));
            assert!(status.failure_reason.is_some());
        }
        assert_eq!(FAIL_COUNT_INFINITY, 1_000_000);
    }

    #[test]
    fn a_failed_stop_is_not_retried() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        assign(&mut r, assignment(vec![]));
        probe(&mut r, now, "a", ocf::OK);
        assert!(run(&mut r, now, "a", Action::Stop, result(ExecStatus::Timeout, ocf::ERR_GENERIC)));
        let status = local(&r, "a");
        assert_eq!(status.role, ObservedRole::Failed);
        // Read by the scheduler from the history (it may fence), not counted.
        assert_eq!(status.failures, 0);
        assert!(status.fail_counts.is_empty());
        assert_eq!(status.history.last().map(|record| record.operation.as_str()), Some("stop"));
        assert!(decided(&mut r, now + Duration::from_secs(600)).is_empty());
        r.stopping_all = true;
        assert!(decided(&mut r, now + Duration::from_secs(600)).is_empty());
        assert!(!r.all_stopped());
    }

    #[test]
    fn recurring_monitors_start_at_once_and_repeat_quietly() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(10);
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, t0, "a", ocf::NOT_RUNNING);
        assert!(decided(&mut r, t0 + interval * 10).iter().all(|(_, action)| *action == Action::Start), "no monitor while stopped");
        assert!(run(&mut r, t0, "a", Action::Start, done(ocf::OK)));
        assert_eq!(r.next_monitor_due(), Some(t0));
        let steps = settled_steps(&mut r, t0);
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].action, steps[0].timeout), (Action::Monitor(10_000), Duration::from_millis(5_000)));
        // The first result is news; the same again is not. The second run is spread
        // over the interval (between a half and a whole one later), later ones come an
        // interval apart.
        assert!(run(&mut r, t0, "a", Action::Monitor(10_000), done(ocf::OK)));
        let second = spread_due(&r.node, "a", 10_000, t0);
        assert!(second >= t0 + interval / 2 && second < t0 + interval, "{:?}", second - t0);
        assert_eq!(r.next_monitor_due(), Some(second));
        assert!(decided(&mut r, second - Duration::from_millis(1)).is_empty());
        assert_eq!(decided(&mut r, second), one("a", Action::Monitor(10_000)));
        let t1 = second;
        r.local.get_mut("a").expect("a").dirty = false;
        assert!(!run(&mut r, t1, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert!(!r.local["a"].dirty);
        assert_eq!(r.next_monitor_due(), Some(t1 + interval));
        assert!(decided(&mut r, t1 + interval - Duration::from_millis(1)).is_empty());
        assert_eq!(decided(&mut r, t1 + interval), one("a", Action::Monitor(10_000)));
        // Degraded is still running, but a change worth writing.
        let t2 = t1 + interval;
        assert!(run(&mut r, t2, "a", Action::Monitor(10_000), done(ocf::DEGRADED)));
        assert_eq!(role(&r, "a"), ObservedRole::Started);
        assert_eq!(r.next_monitor_due(), Some(t2 + interval));
    }

    #[test]
    fn role_monitors_run_only_in_their_role_and_promoted_ones_expect_8() {
        let t0 = Instant::now();
        let operations = vec![monitor(10_000, Some(Role::Unpromoted)), monitor(11_000, Some(Role::Promoted))];
        let mut r = reconciler(vec![target("a", promotable(definition(operations)))]);
        probe(&mut r, t0, "a", ocf::OK);
        assert_eq!(role(&r, "a"), ObservedRole::Unpromoted);
        assert_eq!(decided(&mut r, t0), one("a", Action::Monitor(10_000)));
        assert!(run(&mut r, t0, "a", Action::Monitor(10_000), done(ocf::OK)));
        assign(&mut r, assignment(vec![entry("a", Role::Promoted)]));
        assert!(run(&mut r, t0, "a", Action::Promote, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Promoted);
        // The unpromoted monitor is gone; the promoted one is due at once.
        assert_eq!(decided(&mut r, t0), one("a", Action::Monitor(11_000)));
        assert!(run(&mut r, t0, "a", Action::Monitor(11_000), done(ocf::RUNNING_PROMOTED)));
        assert_eq!(role(&r, "a"), ObservedRole::Promoted);
        let record = local(&r, "a").history.iter().find(|record| record.interval_ms == 11_000).expect("monitor record");
        assert_eq!((record.rc, record.expected_rc), (ocf::RUNNING_PROMOTED, ocf::RUNNING_PROMOTED));
        let second = spread_due(&r.node, "a", 11_000, t0);
        assert!(decided(&mut r, second - Duration::from_millis(1)).is_empty());
        // A promoted instance answering "running" has lost its promotion: a failure.
        let t1 = second;
        assert!(run(&mut r, t1, "a", Action::Monitor(11_000), done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Failed);
        assert_eq!(local(&r, "a").fail_counts.get("monitor_11000"), Some(&1));
    }

    #[test]
    fn promotion_waits_for_its_promote_after_gates() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", promotable(definition(vec![])))]);
        probe(&mut r, now, "a", ocf::OK);
        let mut a = entry("a", Role::Promoted);
        a.promote_after = vec![gate("db", OrderAction::Promote)];
        assign(&mut r, assignment(vec![a]));
        assert!(decided(&mut r, now).is_empty());
        r.cluster.insert((OTHER.into(), "db".into()), status("db", OTHER, ObservedRole::Unpromoted));
        assert!(decided(&mut r, now).is_empty(), "db runs but is not promoted");
        r.cluster.insert((OTHER.into(), "db".into()), status("db", OTHER, ObservedRole::Promoted));
        assert!(run(&mut r, now, "a", Action::Promote, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Promoted);
        assert!(decided(&mut r, now).is_empty());
    }

    fn one_shot(operation: &str, call_id: i64) -> OperationRecord {
        OperationRecord {
            operation: operation.into(),
            interval_ms: 0,
            call_id,
            rc: ocf::OK,
            expected_rc: ocf::OK,
            status: ExecStatus::Done,
            last_rc_change: None,
            migrate_source: None,
            migrate_target: None,
            digest: None,
            restart_digest: None,
        }
    }

    #[test]
    fn promotion_waits_until_no_other_node_may_have_the_clone_promoted() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("db", promotable(definition(vec![])))]);
        probe(&mut r, now, "db", ocf::OK);
        let mut db = entry("db", Role::Promoted);
        db.clone = Some("db".into());
        db.exclusive = false;
        assign(&mut r, assignment(vec![db]));
        let mut elsewhere = status("db", OTHER, ObservedRole::Promoted);
        elsewhere.clone = Some("db".into());
        r.cluster.insert((OTHER.into(), "db".into()), elsewhere.clone());
        assert!(decided(&mut r, now).is_empty(), "the other instance is promoted (or its node not yet fenced)");
        elsewhere.role = ObservedRole::Unpromoted;
        elsewhere.pending = Some("promote".into());
        r.cluster.insert((OTHER.into(), "db".into()), elsewhere.clone());
        assert!(decided(&mut r, now).is_empty(), "a promotion under way elsewhere counts");
        elsewhere.pending = None;
        elsewhere.role = ObservedRole::Failed;
        elsewhere.history = vec![one_shot("promote", 4)];
        r.cluster.insert((OTHER.into(), "db".into()), elsewhere.clone());
        assert!(decided(&mut r, now).is_empty(), "failed after a promotion: nothing proves it demoted");
        elsewhere.history.push(one_shot("demote", 5));
        r.cluster.insert((OTHER.into(), "db".into()), elsewhere);
        assert!(run(&mut r, now, "db", Action::Promote, done(ocf::OK)));
    }

    #[test]
    fn a_promoted_resource_assigned_unpromoted_is_demoted() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", promotable(definition(vec![])))]);
        probe(&mut r, now, "a", ocf::RUNNING_PROMOTED);
        assign(&mut r, assignment(vec![entry("a", Role::Unpromoted)]));
        assert!(run(&mut r, now, "a", Action::Demote, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Unpromoted);
        assert!(decided(&mut r, now).is_empty());
    }

    #[test]
    fn a_promoted_resource_not_assigned_is_demoted_then_stopped() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", promotable(definition(vec![])))]);
        probe(&mut r, now, "a", ocf::RUNNING_PROMOTED);
        assign(&mut r, assignment(vec![]));
        assert!(run(&mut r, now, "a", Action::Demote, done(ocf::OK)));
        assert!(run(&mut r, now, "a", Action::Stop, done(ocf::OK)));
        assert_eq!(role(&r, "a"), ObservedRole::Stopped);
        assert!(decided(&mut r, now).is_empty());
    }

    #[test]
    fn in_maintenance_only_monitors_run() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)])), target("b", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::OK);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        let mut decision = assignment(vec![entry("b", Role::Started)]);
        decision.state = NodeState::Maintenance;
        assign(&mut r, decision);
        // `a` (unassigned) is not stopped, `b` is not started; `a` is monitored.
        assert_eq!(decided(&mut r, now), one("a", Action::Monitor(10_000)));
        assert!(run(&mut r, now, "a", Action::Monitor(10_000), done(ocf::OK)));
        assert!(decided(&mut r, now).is_empty());
        r.assignment.as_mut().expect("assignment").state = NodeState::Online;
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Start)]);
    }

    #[test]
    fn unmanaged_entries_are_neither_started_nor_stopped() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("b", definition(vec![])), target("c", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::OK);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        probe(&mut r, now, "c", ocf::ERR_GENERIC);
        let entries = vec![entry("a", Role::Stopped), entry("b", Role::Started), entry("c", Role::Started)];
        assign(&mut r, assignment(entries.iter().cloned().map(|entry| AssignedResource { managed: false, ..entry }).collect()));
        assert!(decided(&mut r, now).is_empty());
        assign(&mut r, assignment(entries));
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("b".to_string(), Action::Start), ("c".to_string(), Action::Stop)]);
    }

    #[test]
    fn stopping_all_stops_even_what_is_assigned() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![])), target("p", promotable(definition(vec![])))]);
        probe(&mut r, now, "a", ocf::OK);
        probe(&mut r, now, "p", ocf::RUNNING_PROMOTED);
        assign(&mut r, assignment(vec![entry("a", Role::Started), entry("p", Role::Promoted)]));
        assert!(decided(&mut r, now).is_empty());
        r.stopping_all = true;
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Stop), ("p".to_string(), Action::Demote)]);
        assert!(run(&mut r, now, "a", Action::Stop, done(ocf::OK)));
        assert!(run(&mut r, now, "p", Action::Demote, done(ocf::OK)));
        assert!(run(&mut r, now, "p", Action::Stop, done(ocf::OK)));
        assert!(r.all_stopped());
        // Without any assignment too.
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::OK);
        assert!(decided(&mut r, now).is_empty());
        r.stopping_all = true;
        assert_eq!(decided(&mut r, now), one("a", Action::Stop));
    }

    #[test]
    fn previous_statuses_are_probed_again_and_call_ids_continue() {
        let now = Instant::now();
        let mut previous = status("a", NODE, ObservedRole::Started);
        previous.failures = 2;
        previous.fail_counts.insert("monitor_10000".into(), 2);
        for (call_id, interval_ms) in [(41, 0), (5, 10_000)] {
            previous.history.push(OperationRecord { interval_ms, ..one_shot(if interval_ms == 0 { "start" } else { "monitor" }, call_id) });
        }
        let mut r = Reconciler::new(NODE, vec![previous, status("b", NODE, ObservedRole::Stopped)]);
        assert_eq!(role(&r, "a"), ObservedRole::Unknown);
        assert_eq!(role(&r, "b"), ObservedRole::Unknown);
        assert!(!r.probed());
        assert_eq!(local(&r, "a").failures, 2);
        assert_eq!(local(&r, "a").fail_counts.get("monitor_10000"), Some(&2));
        assign(&mut r, assignment(vec![]));
        assert_eq!(decided(&mut r, now), vec![("a".to_string(), Action::Probe), ("b".to_string(), Action::Probe)]);
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        let call_ids: Vec<i64> = ["a", "b"].iter().map(|id| local(&r, id).history.iter().map(|record| record.call_id).max().unwrap_or(0)).collect();
        assert_eq!(call_ids, vec![42, 43]);
    }

    #[test]
    fn a_changed_configuration_is_run_once_the_resource_is_stopped() {
        let now = Instant::now();
        let old = Definition { params: [("ip".to_string(), "10.0.0.1".to_string())].into(), ..definition(vec![]) };
        let new = Definition { params: [("ip".to_string(), "10.0.0.2".to_string())].into(), ..definition(vec![]) };
        let mut previous = status("a", NODE, ObservedRole::Started);
        previous.definition = Arc::new(old.clone());
        let mut r = Reconciler::new(NODE, vec![previous]);
        r.set_targets(by_id(vec![target("a", new.clone())]));
        // What may run is probed as it was run.
        assert_eq!(*settled_steps(&mut r, now)[0].definition, old);
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        let start = settled_steps(&mut r, now).remove(0);
        assert_eq!((start.action, &*start.definition), (Action::Start, &new));
        // A running resource keeps its definition until stopped.
        r.begin(&start);
        assert!(r.record(&start, &done(ocf::OK), now, EPOCH_USEC));
        // Run as configured: one copy, the probe target's.
        assert!(Arc::ptr_eq(&local(&r, "a").definition, &r.targets["a"].definition));
        r.set_targets(by_id(vec![target("a", old.clone())]));
        assign(&mut r, assignment(vec![]));
        let stop = settled_steps(&mut r, now).remove(0);
        assert_eq!((stop.action, &*stop.definition), (Action::Stop, &new));
    }

    #[test]
    fn the_source_hands_over_by_migrate_to_and_cleans_up_once_the_target_runs_it() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("vm", definition(vec![]))]);
        probe(&mut r, now, "vm", ocf::OK);
        let mut leaving = assignment(vec![]);
        leaving.migrations.push(crate::api::records::Migration { id: "vm".into(), target: OTHER.into() });
        assign(&mut r, leaving);
        let step = settled_steps(&mut r, now).remove(0);
        assert_eq!(step.action, Action::MigrateTo);
        assert_eq!(
            (step.definition.meta.get("migrate_source").map(String::as_str), step.definition.meta.get("migrate_target").map(String::as_str)),
            (Some(NODE), Some(OTHER))
        );
        r.begin(&step);
        assert!(r.record(&step, &done(ocf::OK), now, EPOCH_USEC));
        assert_eq!(role(&r, "vm"), ObservedRole::Migrating);
        assert_eq!(local(&r, "vm").history.last().and_then(|record| record.migrate_target.as_deref()), Some(OTHER));
        // Nothing more until the target runs it.
        assert_eq!(decided(&mut r, now), vec![]);
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Started));
        assert_eq!(decided(&mut r, now), one("vm", Action::Stop));
    }

    #[test]
    fn a_source_handing_over_stops_and_starts_again_when_the_decision_keeps_it_there() {
        // A partial migration placed back on its source (Pacemaker aborts it: both
        // halves stop, then it starts on the source): the decision assigns it here
        // without the migration; what migrate_to left is stopped, then started again
        // once the target reports it stopped.
        let now = Instant::now();
        let mut r = reconciler(vec![target("vm", definition(vec![]))]);
        probe(&mut r, now, "vm", ocf::OK);
        let mut leaving = assignment(vec![]);
        leaving.migrations.push(crate::api::records::Migration { id: "vm".into(), target: OTHER.into() });
        assign(&mut r, leaving);
        assert!(run(&mut r, now, "vm", Action::MigrateTo, done(ocf::OK)));
        assert_eq!(role(&r, "vm"), ObservedRole::Migrating);
        assign(&mut r, assignment(vec![entry("vm", Role::Started)]));
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Started));
        assert!(run(&mut r, now, "vm", Action::Stop, done(ocf::OK)));
        assert_eq!(decided(&mut r, now), vec![], "not while the target may run it");
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Stopped));
        assert_eq!(decided(&mut r, now), one("vm", Action::Start));
        // A finished migration (the target runs it) whose source is left to stop
        // (Pacemaker's dangling migration): the decision assigns it nowhere here.
        let mut r = reconciler(vec![target("vm", definition(vec![]))]);
        probe(&mut r, now, "vm", ocf::OK);
        let mut leaving = assignment(vec![]);
        leaving.migrations.push(crate::api::records::Migration { id: "vm".into(), target: OTHER.into() });
        assign(&mut r, leaving);
        assert!(run(&mut r, now, "vm", Action::MigrateTo, done(ocf::OK)));
        assign(&mut r, assignment(vec![]));
        assert_eq!(decided(&mut r, now), one("vm", Action::Stop));
    }

    #[test]
    fn the_target_takes_over_by_migrate_from_only_after_the_hand_over() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("vm", definition(vec![]))]);
        probe(&mut r, now, "vm", ocf::NOT_RUNNING);
        let mut arriving = entry("vm", Role::Started);
        arriving.migrate_from = Some(OTHER.into());
        assign(&mut r, assignment(vec![arriving]));
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Started));
        assert_eq!(decided(&mut r, now), vec![], "the source still runs it");
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Migrating));
        let step = settled_steps(&mut r, now).remove(0);
        assert_eq!(step.action, Action::MigrateFrom);
        assert_eq!(step.definition.meta.get("migrate_source").map(String::as_str), Some(OTHER));
        r.begin(&step);
        assert!(r.record(&step, &done(ocf::OK), now, EPOCH_USEC));
        assert_eq!(role(&r, "vm"), ObservedRole::Started);
        assert!(!local(&r, "vm").definition.meta.contains_key("migrate_source"), "the migration's ends are not kept for later operations");
        // Had the source stopped it instead, a plain start would do.
        let mut r = reconciler(vec![target("vm", definition(vec![]))]);
        probe(&mut r, now, "vm", ocf::NOT_RUNNING);
        let mut arriving = entry("vm", Role::Started);
        arriving.migrate_from = Some(OTHER.into());
        assign(&mut r, assignment(vec![arriving]));
        r.cluster.insert((OTHER.into(), "vm".into()), status("vm", OTHER, ObservedRole::Stopped));
        assert_eq!(decided(&mut r, now), one("vm", Action::Start));
    }

    #[test]
    fn nothing_starts_before_the_node_is_unfenced() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        let mut waiting = assignment(vec![entry("a", Role::Started)]);
        waiting.unfence_first = true;
        assign(&mut r, waiting);
        assert_eq!(decided(&mut r, now), vec![]);
        r.unfenced = true;
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
    }

    #[test]
    fn a_node_that_must_be_unfenced_starts_nothing_on_an_assignment_from_before_its_restart() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        // Written while the node was unfenced under its previous lease.
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        r.must_unfence = true;
        assert_eq!(decided(&mut r, now), vec![]);
        r.unfenced = true;
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
    }

    #[test]
    fn what_an_earlier_agent_recorded_before_the_nodes_fencing_is_forgotten() {
        let now = Instant::now();
        let mut old = status("a", NODE, ObservedRole::Failed);
        old.history.push(OperationRecord {
            operation: "stop".into(),
            interval_ms: 0,
            call_id: 3,
            rc: ocf::ERR_GENERIC,
            expected_rc: ocf::OK,
            status: ExecStatus::Done,
            last_rc_change: Some(100),
            migrate_source: None,
            migrate_target: None,
            digest: None,
            restart_digest: None,
        });
        old.fail_counts.insert("stop_0".into(), FAIL_COUNT_INFINITY);
        old.last_failure = Some(100);
        old.failure_reason = Some("stop failed".into());
        old.failures = 1;
        let mut kept = status("b", NODE, ObservedRole::Stopped);
        kept.fail_counts.insert("start_0".into(), 1);
        let mut r = Reconciler::new(NODE, vec![old.clone(), kept.clone()]);
        r.inherited = [("a".to_string(), (5, old)), ("b".to_string(), (12, kept))].into_iter().collect();
        r.set_targets(by_id(vec![target("a", definition(vec![])), target("b", definition(vec![]))]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        // The node was fenced at revision 10: "a" was read from before, "b" after.
        assert_eq!(r.void_inherited(10), ["a"]);
        let a = local(&r, "a");
        assert!(a.history.iter().all(|record| record.operation != "stop"), "{:?}", a.history);
        assert_eq!(a.history.len(), 1, "the probe this agent ran stays");
        assert!(a.fail_counts.is_empty() && a.last_failure.is_none() && a.failure_reason.is_none());
        assert_eq!(a.failures, 1, "the failure counter only grows");
        assert!(r.local["a"].dirty, "written again, without the failed stop");
        assert_eq!(local(&r, "b").fail_counts.get("start_0"), Some(&1));
        assert!(r.void_inherited(10).is_empty(), "once");
    }

    /// A notifying instance of clone `c` and its probe target.
    fn notifying_target(id: &str) -> ProbeTarget {
        let mut definition = definition(vec![]);
        definition.meta.insert("notify".into(), "true".into());
        ProbeTarget { id: id.into(), name: id.into(), group: None, clone: Some("c".into()), definition: Arc::new(definition) }
    }

    fn peer(id: &str, node: &str, role: ObservedRole) -> ResourceStatus {
        let mut peer = status(id, node, role);
        peer.clone = Some("c".into());
        peer
    }

    #[test]
    fn a_notifying_stop_is_announced_notified_acknowledged_then_run() {
        let now = Instant::now();
        let mut r = reconciler(vec![notifying_target("x")]);
        probe(&mut r, now, "x", ocf::OK);
        r.cluster.insert((OTHER.into(), "x".into()), peer("x", OTHER, ObservedRole::Started));
        assign(&mut r, assignment(vec![]));
        let announce = settled_steps(&mut r, now).remove(0);
        assert_eq!(announce.action, Action::Announce);
        r.announce(&announce, now);
        let notice = local(&r, "x").notice.clone().expect("a notice");
        assert_eq!((notice.seq, notice.operation.as_str(), notice.phase), (1, "stop", NoticePhase::Pre));
        // Its own pre notification first (it is active), with Pacemaker's variables.
        let own = settled_steps(&mut r, now).remove(0);
        assert_eq!(own.action, Action::Notify);
        let meta = &own.definition.meta;
        assert_eq!(meta.get("notify_type").map(String::as_str), Some("pre"));
        assert_eq!(meta.get("notify_operation").map(String::as_str), Some("stop"));
        assert_eq!(meta.get("notify_stop_uname").map(String::as_str), Some(NODE));
        assert_eq!(meta.get("notify_start_uname").map(String::as_str), Some(""));
        assert_eq!(meta.get("notify_active_uname").map(String::as_str), Some("n2 n1"));
        r.begin(&own);
        assert!(!r.record(&own, &done(ocf::OK), now, EPOCH_USEC), "notifying itself writes nothing");
        // Waits for the other active instance's acknowledgement...
        assert_eq!(decided(&mut r, now), vec![]);
        assert_eq!(r.next_wake(now), Some(now + NOTIFY_WAIT));
        let mut acknowledged = peer("x", OTHER, ObservedRole::Started);
        acknowledged.acks.insert(format!("{NODE}/x"), (0, 1));
        r.cluster.insert((OTHER.into(), "x".into()), acknowledged);
        assert_eq!(decided(&mut r, now), one("x", Action::Stop));
        assert!(run(&mut r, now, "x", Action::Stop, done(ocf::OK)));
        let notice = local(&r, "x").notice.clone().expect("a notice");
        assert_eq!((notice.seq, notice.phase), (1, NoticePhase::Post));
        assert_eq!(decided(&mut r, now), vec![], "stopped: no post notification of its own");
    }

    #[test]
    fn an_unanswered_announcement_proceeds_after_the_wait() {
        let now = Instant::now();
        let mut r = reconciler(vec![notifying_target("x")]);
        probe(&mut r, now, "x", ocf::NOT_RUNNING);
        r.cluster.insert((OTHER.into(), "x".into()), peer("x", OTHER, ObservedRole::Started));
        let mut started = entry("x", Role::Started);
        started.exclusive = false;
        assign(&mut r, assignment(vec![started]));
        let announce = settled_steps(&mut r, now).remove(0);
        r.announce(&announce, now);
        assert_eq!(decided(&mut r, now), vec![], "not active: no own pre notification; the peer has not answered");
        assert_eq!(decided(&mut r, now + NOTIFY_WAIT), one("x", Action::Start));
        assert!(run(&mut r, now + NOTIFY_WAIT, "x", Action::Start, done(ocf::OK)));
        // Now active: its own post notification, and nothing about the past.
        let post = settled_steps(&mut r, now + NOTIFY_WAIT).remove(0);
        assert_eq!((post.action, post.notify.as_ref().map(|event| event.phase)), (Action::Notify, Some(NoticePhase::Post)));
    }

    #[test]
    fn another_instance_s_notices_are_notified_and_pre_ones_acknowledged() {
        let now = Instant::now();
        let mut r = reconciler(vec![notifying_target("x")]);
        probe(&mut r, now, "x", ocf::OK);
        let mut started = entry("x", Role::Started);
        started.exclusive = false;
        assign(&mut r, assignment(vec![started]));
        let mut announcing = peer("x", OTHER, ObservedRole::Unpromoted);
        announcing.notice = Some(Notice { incarnation: 7, seq: 3, operation: "promote".into(), phase: NoticePhase::Pre });
        r.cluster.insert((OTHER.into(), "x".into()), announcing.clone());
        let pre = settled_steps(&mut r, now).remove(0);
        assert_eq!(pre.action, Action::Notify);
        assert_eq!(pre.definition.meta.get("notify_promote_uname").map(String::as_str), Some(OTHER));
        r.begin(&pre);
        assert!(r.record(&pre, &done(ocf::OK), now, EPOCH_USEC), "the acknowledgement is written");
        assert_eq!(local(&r, "x").acks.get(&format!("{OTHER}/x")), Some(&(7, 3)));
        assert_eq!(decided(&mut r, now), vec![]);
        announcing.notice = Some(Notice { incarnation: 7, seq: 3, operation: "promote".into(), phase: NoticePhase::Post });
        announcing.role = ObservedRole::Promoted;
        r.cluster.insert((OTHER.into(), "x".into()), announcing);
        let post = settled_steps(&mut r, now).remove(0);
        assert_eq!(post.definition.meta.get("notify_type").map(String::as_str), Some("post"));
        assert_eq!(post.definition.meta.get("notify_promoted_uname").map(String::as_str), Some(OTHER));
        r.begin(&post);
        assert!(!r.record(&post, &done(ocf::OK), now, EPOCH_USEC), "a post notification writes nothing");
        assert_eq!(decided(&mut r, now), vec![]);
    }

    #[test]
    fn a_start_is_recorded_as_pending_and_written_before_it_runs() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![]))]);
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        r.local.get_mut("a").expect("a").dirty = false;
        let intend = r.decide(now).remove(0);
        assert_eq!((intend.action, intend.intent), (Action::Intend, Some(Action::Start)));
        r.intend(&intend);
        assert_eq!(local(&r, "a").pending.as_deref(), Some("start"));
        assert!(local(&r, "a").may_be_active(), "a pending start counts as possibly running");
        assert_eq!(r.decide(now), vec![], "not before the pending start is written");
        r.local.get_mut("a").expect("a").dirty = false;
        let start = r.decide(now).remove(0);
        assert_eq!(start.action, Action::Start);
        r.begin(&start);
        assert!(r.record(&start, &done(ocf::OK), now, EPOCH_USEC));
        assert_eq!(local(&r, "a").pending, None);
    }

    fn step(id: &str, action: Action) -> Step {
        Step { id: id.into(), action, definition: Arc::new(definition(vec![])), timeout: Duration::from_secs(1), notify: None, intent: None }
    }

    #[test]
    fn a_burst_is_held_to_the_limit_stops_first() {
        let steps = vec![
            step("a", Action::Monitor(10_000)),
            step("b", Action::Intend),
            step("c", Action::Start),
            step("d", Action::Probe),
            step("e", Action::Stop),
            step("f", Action::Announce),
            step("g", Action::Demote),
        ];
        let admitted = |capacity| Reconciler::admit(steps.clone(), capacity).into_iter().map(|step| (step.id, step.action)).collect::<Vec<_>>();
        assert_eq!(admitted(0), [("f".to_string(), Action::Announce)], "an announcement runs no agent");
        assert_eq!(
            admitted(3),
            [("e".to_string(), Action::Stop), ("g".to_string(), Action::Demote), ("d".to_string(), Action::Probe), ("f".to_string(), Action::Announce)]
        );
        assert_eq!(admitted(5).len(), 6);
        assert_eq!(admitted(5)[3], ("c".to_string(), Action::Start), "a start whose intent is written before a new intent");
        assert_eq!(admitted(100).len(), 7);
    }

    #[test]
    fn a_decision_within_a_capacity_builds_only_what_runs_and_counts_the_rest() {
        let r = reconciler((0..5).map(|index| target(&format!("r{index}"), definition(vec![]))).collect());
        let (steps, held) = r.decide_within(Instant::now(), 2);
        assert_eq!(steps.iter().map(|step| (step.id.as_str(), step.action)).collect::<Vec<_>>(), [("r0", Action::Probe), ("r1", Action::Probe)]);
        assert_eq!(held, 3);
        assert_eq!(r.decide_within(Instant::now(), 10).1, 0);
    }

    #[test]
    fn monitors_of_resources_started_together_spread_out() {
        let now = Instant::now();
        let offsets: std::collections::BTreeSet<u128> =
            (0..100).map(|index| (spread_due("n1", &format!("r{index}"), 60_000, now) - now).as_millis() / 1000).collect();
        // A hundred resources fall into many different seconds of the 30 s window.
        assert!(offsets.len() > 20, "{offsets:?}");
        assert!(offsets.iter().all(|second| (30..60).contains(second)), "{offsets:?}");
    }

    fn request(kind: RequestKind, resources: &[&str], operation: Option<&str>) -> RequestRecord {
        RequestRecord {
            kind,
            resources: resources.iter().map(|id| id.to_string()).collect(),
            operation: operation.map(str::to_string),
            interval_ms: None,
            requested: EPOCH,
            by: "test".into(),
        }
    }

    /// `a` started, its monitor failed, the decision saw it and recovered it in place:
    /// running, with one failure counted and recorded.
    fn recovered_after_a_monitor_failure(now: Instant) -> Reconciler {
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)])), target("b", definition(vec![]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started), entry("b", Role::Started)]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        assert!(run(&mut r, now, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, now, "b", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, now, "a", Action::Monitor(10_000), done(ocf::NOT_RUNNING)));
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 1;
        assert!(run(&mut r, now, "a", Action::Stop, done(ocf::OK)));
        assert!(run(&mut r, now, "a", Action::Start, done(ocf::OK)));
        assert_eq!(local(&r, "a").fail_counts.get("monitor_10000"), Some(&1));
        assert!(local(&r, "a").history.iter().any(OperationRecord::is_failure));
        r
    }

    #[test]
    fn a_cleanup_clears_the_failures_of_the_failed_only_and_probes_them_again() {
        let now = Instant::now();
        let mut r = recovered_after_a_monitor_failure(now);
        let b_before = local(&r, "b").clone();
        assert_eq!(r.take_request("1", &request(RequestKind::Cleanup, &["a", "b", "gone"], None)), RequestTaken::Applied(vec!["a".into()]));
        let a = local(&r, "a");
        assert_eq!(a.role, ObservedRole::Unknown, "probed again");
        assert!(a.fail_counts.is_empty() && a.last_failure.is_none() && a.failure_reason.is_none());
        assert!(!a.history.iter().any(OperationRecord::is_failure), "{:?}", a.history);
        assert_eq!(a.failures, 1, "the counter decisions echo is never reset");
        assert_eq!(local(&r, "b"), &b_before, "nothing to clean on b: untouched");
        // Applied once: the same request seen again changes nothing.
        assert_eq!(r.take_request("1", &request(RequestKind::Cleanup, &["a"], None)), RequestTaken::Known);
        // Not finished (not deleted) before the probe's result replaces the stored status.
        assert!(r.finished_requests().is_empty());
        assert_eq!(decided(&mut r, now), one("a", Action::Probe));
        probe(&mut r, now, "a", ocf::OK);
        assert_eq!(role(&r, "a"), ObservedRole::Started);
        assert!(!local(&r, "a").history.iter().any(OperationRecord::is_failure));
        assert_eq!(r.finished_requests(), ["1"]);
        r.request_deleted("1");
        assert!(r.finished_requests().is_empty());
        r.keep_requests(|_| false);
        assert!(r.requests.is_empty());
    }

    #[test]
    fn a_request_waits_for_a_resource_that_is_busy_or_has_an_operation_pending() {
        let now = Instant::now();
        let mut r = recovered_after_a_monitor_failure(now);
        let step = settled_steps(&mut r, now).into_iter().find(|step| step.id == "a").expect("a monitor of a");
        r.begin(&step);
        let cleanup = request(RequestKind::Cleanup, &["a"], None);
        assert_eq!(r.take_request("1", &cleanup), RequestTaken::Wait);
        assert_eq!(r.requests.get("1").map(|applied| applied.waiting.clone()), Some(vec!["a".to_string()]));
        assert!(r.finished_requests().is_empty(), "not done while a waits");
        r.record(&step, &done(ocf::OK), now, EPOCH_USEC);
        r.local.get_mut("a").expect("a").status.pending = Some("start".into());
        assert_eq!(r.take_request("1", &cleanup), RequestTaken::Wait);
        r.local.get_mut("a").expect("a").status.pending = None;
        assert_eq!(r.take_request("1", &cleanup), RequestTaken::Applied(vec!["a".into()]));
    }

    #[test]
    fn a_cleanup_of_one_operation_keeps_the_other_failures() {
        let now = Instant::now();
        let mut r = recovered_after_a_monitor_failure(now);
        r.local.get_mut("a").expect("a").status.fail_counts.insert("start_0".into(), 2);
        assert_eq!(r.take_request("1", &request(RequestKind::Cleanup, &["a"], Some("start"))), RequestTaken::Applied(vec!["a".into()]));
        let a = local(&r, "a");
        assert_eq!(a.fail_counts.keys().collect::<Vec<_>>(), ["monitor_10000"]);
        assert!(a.last_failure.is_some(), "a failure is left: its time stays");
        assert!(a.history.iter().any(OperationRecord::is_failure), "the monitor's failure stays");
        // Nothing of that operation left: nothing to clean, nothing touched.
        assert_eq!(r.take_request("2", &request(RequestKind::Cleanup, &["a"], Some("start"))), RequestTaken::Applied(vec![]));
        assert_eq!(r.finished_requests(), ["2"], "a request that touched nothing is done at once");
    }

    #[test]
    fn a_refresh_forgets_every_history_it_names_and_probes_again() {
        let now = Instant::now();
        let mut r = recovered_after_a_monitor_failure(now);
        assert_eq!(r.take_request("1", &request(RequestKind::Refresh, &["a", "b"], None)), RequestTaken::Applied(vec!["a".into(), "b".into()]));
        for id in ["a", "b"] {
            let status = local(&r, id);
            assert_eq!(status.role, ObservedRole::Unknown);
            assert!(status.history.is_empty() && status.fail_counts.is_empty() && status.last_failure.is_none());
        }
        assert_eq!(local(&r, "a").failures, 1);
        // Probes first, nothing else on the node until both answered.
        let mut probes = decided(&mut r, now);
        probes.sort();
        assert_eq!(probes, [("a".to_string(), Action::Probe), ("b".to_string(), Action::Probe)]);
        probe(&mut r, now, "a", ocf::OK);
        assert!(r.finished_requests().is_empty(), "b is not probed yet");
        probe(&mut r, now, "b", ocf::NOT_RUNNING);
        assert_eq!(r.finished_requests(), ["1"]);
        // b is assigned and found stopped: started again; a, found running, is monitored.
        assert_eq!(decided(&mut r, now), [("a".to_string(), Action::Monitor(10_000)), ("b".to_string(), Action::Start)]);
    }

    #[test]
    fn a_failure_after_a_cleanup_is_still_recovered_only_once_a_decision_has_seen_it() {
        let t0 = Instant::now();
        let mut r = recovered_after_a_monitor_failure(t0);
        r.take_request("1", &request(RequestKind::Cleanup, &["a"], None));
        probe(&mut r, t0, "a", ocf::OK);
        // The assignment still says it has seen one failure: the counter did not go
        // back to 0, so the next failure is the second, not a first one it covers.
        let t1 = t0 + Duration::from_secs(10);
        assert!(run(&mut r, t1, "a", Action::Monitor(10_000), done(ocf::OK)));
        let t2 = t1 + Duration::from_secs(10);
        assert!(run(&mut r, t2, "a", Action::Monitor(10_000), done(ocf::NOT_RUNNING)));
        assert_eq!(local(&r, "a").failures, 2);
        assert!(decided(&mut r, t2 + Duration::from_secs(60)).is_empty(), "not touched before a decision sees it");
        // Nor wedged: the decision that sees it lets the agent recover.
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 2;
        assert_eq!(decided(&mut r, t2), one("a", Action::Stop));
    }

    #[test]
    fn a_cleanup_waits_until_a_decision_has_seen_the_failure_it_erases() {
        let now = Instant::now();
        let mut r = reconciler(vec![target("a", definition(vec![monitor(10_000, None)]))]);
        assign(&mut r, assignment(vec![entry("a", Role::Started)]));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assert!(run(&mut r, now, "a", Action::Start, done(ocf::OK)));
        assert!(run(&mut r, now, "a", Action::Monitor(10_000), done(ocf::ERR_GENERIC)));
        assert_eq!(role(&r, "a"), ObservedRole::Failed);
        assert!(decided(&mut r, now).is_empty(), "the decision has not seen the failure");
        // Erasing the failure now would let the probe find it stopped and the agent
        // start it on its own: the request waits for the decision.
        assert_eq!(r.take_request("1", &request(RequestKind::Cleanup, &["a"], None)), RequestTaken::Wait);
        assert_eq!(role(&r, "a"), ObservedRole::Failed);
        assert!(decided(&mut r, now).is_empty(), "still the scheduler's call");
        r.assignment.as_mut().expect("assignment").resources[0].failures_seen = 1;
        assert_eq!(r.take_request("1", &request(RequestKind::Cleanup, &["a"], None)), RequestTaken::Applied(vec!["a".into()]));
        // What runs is asked again, and nothing else happens until it answers; found
        // stopped, it is started as the decision (which has seen the failure) says.
        assert_eq!(decided(&mut r, now), one("a", Action::Probe));
        probe(&mut r, now, "a", ocf::NOT_RUNNING);
        assert_eq!(r.finished_requests(), ["1"]);
        assert_eq!(decided(&mut r, now), one("a", Action::Start));
    }

    #[test]
    fn a_request_is_applied_to_the_ready_resources_while_the_others_wait() {
        let now = Instant::now();
        let mut r = recovered_after_a_monitor_failure(now);
        // b busy (an operation of its own running, a stop say).
        r.local.get_mut("b").expect("b").busy = Some(Action::Stop);
        let refresh = request(RequestKind::Refresh, &["a", "b"], None);
        assert_eq!(r.take_request("1", &refresh), RequestTaken::Applied(vec!["a".into()]), "b is busy");
        probe(&mut r, now, "a", ocf::OK);
        assert!(r.finished_requests().is_empty(), "b still waits");
        assert_eq!(r.take_request("1", &refresh), RequestTaken::Wait);
        r.local.get_mut("b").expect("b").busy = None;
        assert_eq!(r.take_request("1", &refresh), RequestTaken::Applied(vec!["b".into()]));
        assert_eq!(r.take_request("1", &refresh), RequestTaken::Known);
        probe(&mut r, now, "b", ocf::OK);
        assert_eq!(r.finished_requests(), ["1"]);
    }
}
