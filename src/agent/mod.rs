//! The node agent (`pacer agent --node NAME`): holds the node's lease, follows the
//! scheduler's assignment for the node and makes the node match it by running the
//! real agents through `exec`, then reports what it saw under `status/<node>/`.
//!
//! - `reconcile.rs`: every decision, without IO (what to run next, what a result
//!   means).
//! - `hollow.rs`: many hollow nodes in one process (`pacer hollow`): this agent with
//!   a simulated executor, powered off through a file.
//! - this file: the event loop — watches, operations in flight, status writes, the
//!   self-fencing deadline and shutdown.
//!
//! One session per lease: claim the node's key, probe everything, converge; if the
//! lease cannot be renewed, stop everything before it could expire for the others
//! (killing what does not stop in time), forget what runs, and start a new session.

pub mod events;
pub mod failsafe;
pub mod hollow;
pub mod locals;
pub mod reconcile;
pub mod statuses;
pub mod throttle;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::api::records::{
    ExecStatus, FenceRequestRecord, FenceResultRecord, NodeActivity, NodeHeartbeat, ObservedRole, PROBE_FIRST_MAX, RequestRecord, ResourceStatus,
    SELF_FENCINGS_KEPT, SelfFencing,
};
use crate::api::{Kind, ObjectKey};
use crate::exec::{AttributeLifetime, AttributeUpdate, ExecConfig, ExecError, Executor, FenceRequest, OperationRequest, OperationResult};
use crate::metrics::node::{NodeFacts, node_view};
use crate::metrics::{AgentMetrics, NodeView, ViewRequest};
use crate::runtime::cache::in_definition_order;
use crate::runtime::{ClusterCache, Informer};
use crate::state::probe_targets_by_id;
use crate::store::keys::Section;
use crate::store::lease::{self, LeaseState};
use crate::store::node::{GuardedWriteError, NodeSession, Reclaim};
use crate::store::watch::WatchEvent;
use crate::store::{Keys, Store, StoreError};
use events::{PendingEvent, attribute_event, fencing_event};
pub use reconcile::{Action, OnShutdown, PromotionBasis, Reconciler, RequestTaken, Step};

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node: String,
    /// The node's own directory: agents' `HA_RSCTMP`/`HA_VARRUN` and the executor's
    /// work files live under it.
    pub state_dir: PathBuf,
    /// The node's lease; the node counts as lost this long after its agent stops
    /// renewing. etcd counts whole seconds.
    pub lease_ttl: Duration,
    pub on_shutdown: OnShutdown,
    pub exec: ExecConfig,
    /// Attributes the agent proposes for its node (`--attribute`): written as run-time
    /// attributes under its own prefix, where the administrator's `Node.spec.attributes`
    /// outrank them; never copied into the `Node` object. The capacity is what the
    /// `Node` object created when none exists gets.
    pub attributes: BTreeMap<String, String>,
    pub capacity: BTreeMap<String, u64>,
    /// Where operations, fencing and self-fencings are counted, and scrapes ask for
    /// the node's view (`/metrics`).
    pub metrics: Arc<AgentMetrics>,
    /// systemd's notifications (`READY=1` once claimed and probed, `WATCHDOG=1` from
    /// the session's loop while the lease is healthy, `STOPPING=1`); disabled when
    /// not run by systemd.
    pub notifier: Arc<crate::notify::Notifier>,
    /// The lease renewal thread shared by the agents of one process (hollow nodes);
    /// `None`: a thread and a connection of this agent's own.
    pub renewals: Option<Arc<lease::Renewals>>,
    /// The decoded objects and statuses shared by the agents of one process (hollow
    /// nodes: `runtime::SharedDecodes`); `None`: a watch cache of this agent's own.
    pub shared_decodes: Option<Arc<crate::runtime::SharedDecodes>>,
    /// Where the peer endpoint listens (`--peer-listen`): the other agents ask it,
    /// while etcd cannot be reached, whether this one can (`failsafe`). `None`: no
    /// endpoint, and no failsafe — the lease's old rule alone.
    pub peer_listen: Option<std::net::SocketAddr>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state dir cannot be used, or another agent runs with it.
    #[error("state dir {path}: {reason}")]
    StateDir { path: String, reason: String },
    /// The shared lease renewal thread of hollow nodes could not be started.
    #[error("start the lease renewal thread: {0}")]
    Renewals(std::io::Error),
    /// The peer endpoint cannot listen (`--peer-listen`).
    #[error("listen for peers on {address}: {error}")]
    PeerEndpoint { address: std::net::SocketAddr, error: std::io::Error },
    #[error(transparent)]
    PeerTls(#[from] failsafe::PeerTlsError),
}

/// The agent's peer endpoint: what it answers from, and where it listens (published
/// in the heartbeat).
struct Peers {
    state: Arc<failsafe::PeerState>,
    address: String,
    tls: Option<Arc<failsafe::PeerTls>>,
}

/// The file in the state dir naming the lease the agent holds: a restarted agent
/// resumes that lease if it still holds the node (`Store::renew_if_holding`).
const LEASE_FILE: &str = "lease";
/// Locked (flock) for the agent's life: two agents acting on one node's resources
/// would each believe it owns them.
const LOCK_FILE: &str = "agent.lock";
/// The agent's log message when it self-fences: tests, benchmarks and the fault
/// campaign count self-fencings by it.
pub const SELF_FENCING_LOG: &str = "lease not renewed: stopping every resource before it could expire";

/// The node's self-fencings, one JSON record a line: written when it happens (the
/// lease is gone, nothing can be reported), published in the activity record once the
/// node is claimed again.
const SELF_FENCINGS_FILE: &str = "self-fencings";
/// The activity record is rewritten at most this often.
const ACTIVITY_PERIOD: Duration = Duration::from_secs(2);

/// Whether the activity record as it stands now is worth writing over `written`: while
/// operations wait for a place (and once they stop waiting), when the node has gone
/// quiet, and when it self-fenced again. Not for a monitor's comings and goings on an
/// idle node, which would cost a write every few seconds where an idle cluster writes
/// nothing but lease keep-alives.
fn activity_worth_writing(written: &NodeActivity, now: &NodeActivity) -> bool {
    written != now && (now.queued > 0 || written.queued > 0 || (now.running == 0 && written.running > 0) || written.self_fencings != now.self_fencings)
}

/// The latest self-fencings recorded in the state dir, oldest first. A line that does
/// not decode is skipped (the file is only informative).
fn recorded_self_fencings(dir: &std::path::Path) -> Vec<SelfFencing> {
    let text = std::fs::read_to_string(dir.join(SELF_FENCINGS_FILE)).unwrap_or_default();
    let all: Vec<SelfFencing> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    all[all.len().saturating_sub(SELF_FENCINGS_KEPT)..].to_vec()
}

/// Appends a self-fencing to the state dir's record; failing to is logged, not fatal.
fn record_self_fencing(dir: &std::path::Path, fencing: &SelfFencing) {
    use std::io::Write;
    let appended = serde_json::to_string(fencing).map_err(std::io::Error::other).and_then(|line| {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(SELF_FENCINGS_FILE))?;
        writeln!(file, "{line}")
    });
    if let Err(error) = appended {
        tracing::warn!(%error, "cannot record the self-fencing in the state dir");
    }
}

/// Makes the state dir 0700 when it is missing, and refuses one that is a symlink,
/// another user's, or writable by group or others: what is in it (the shims' work
/// dir, agents' HA_RSCTMP) runs as root. `pacer agent` calls it before resolving the
/// path (so a symlink is seen), `run` again.
pub fn prepare_state_dir(dir: &std::path::Path) -> Result<(), AgentError> {
    use crate::exec::private_dir::{Loose, PrivateDirError, ensure_private_dir};
    let failed = |reason: String| AgentError::StateDir { path: dir.display().to_string(), reason };
    ensure_private_dir(dir, Loose::RefuseWritable).map_err(|error| match error {
        PrivateDirError::NotPrivate { reason, .. } => failed(format!("refused: {reason}")),
        other => failed(other.to_string()),
    })
}

/// Takes the state dir's lock; the open file holds it until the process ends.
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, AgentError> {
    let failed = |reason: String| AgentError::StateDir { path: dir.display().to_string(), reason };
    prepare_state_dir(dir)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE)).map_err(|error| failed(error.to_string()))?;
    // SAFETY: flock(2) on a descriptor owned by `file`, which outlives the call.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return Err(failed(format!("another pacer agent holds {}", dir.join(LOCK_FILE).display())));
    }
    Ok(file)
}

fn remembered_lease(dir: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(LEASE_FILE)).ok()?;
    i64::from_str_radix(text.trim(), 16).ok()
}

/// Writes (or, for `None`, removes) the lease file. Losing it only costs a restart
/// the resumption of its lease, so failures are logged, not fatal.
fn remember_lease(dir: &std::path::Path, lease: Option<i64>) {
    let path = dir.join(LEASE_FILE);
    let result = match lease {
        Some(lease) => {
            let temporary = dir.join(format!("{LEASE_FILE}.new"));
            std::fs::write(&temporary, format!("{lease:x}\n")).and_then(|()| std::fs::rename(&temporary, &path))
        }
        None => std::fs::remove_file(&path).or_else(|error| if error.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(error) }),
    };
    if let Err(error) = result {
        tracing::warn!(%error, path = %path.display(), "cannot record the node's lease");
    }
}

/// A number no earlier session of this node used: notices carry it, so that another
/// instance never takes a restarted agent's notice for one it has already handled.
fn fresh_incarnation() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs the agent until `shutdown` completes; then stops or leaves the resources as
/// `config.on_shutdown` says and gives up the node's lease.
pub async fn run(config: AgentConfig, store: Store, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    let mut exec = config.exec.clone();
    exec.work_dir = Some(config.state_dir.join("exec"));
    // Killing what ignores SIGTERM must fit in the self-fencing window.
    exec.kill_grace = (config.lease_ttl / 8).clamp(Duration::from_millis(100), exec.kill_grace);
    let _lock = lock_state_dir(&config.state_dir)?;
    let executor = Arc::new(Executor::new(exec)?);
    // Daemons the agents start stay this node's descendants, and are reaped. A hollow
    // node starts none.
    if config.exec.simulate.is_none() {
        crate::exec::reaper::adopt_orphans();
    }
    tokio::pin!(shutdown);
    let keys = store.keys().clone();
    let own_statuses = keys.node_statuses_prefix(&config.node);
    let (_, previous) = tokio::select! {
        read = read_with_retry::<ResourceStatus>(&store, &own_statuses) => read,
        () = &mut shutdown => return Ok(()),
    };
    // Kept with the revision each was read at: what predates the node's last
    // successful fencing is void (`Reconciler::void_inherited`) once the fencing
    // records are known.
    let inherited: BTreeMap<String, (i64, ResourceStatus)> =
        previous.iter().map(|(_, status, revision)| (status.id.clone(), (*revision, status.clone()))).collect();
    let previous: Vec<ResourceStatus> = previous.into_iter().map(|(_, status, _)| status).collect();
    // An operation the previous agent had under way (recorded as pending) may still
    // be running, orphaned, and its probe cannot tell: a start whose agent has not yet
    // made it visible probes as stopped. Its lease is then not resumed: the node is
    // lost with a pending operation and fenced, as it would be had it crashed.
    let in_flight: Vec<&str> = previous.iter().filter(|status| status.pending.is_some()).map(|status| status.id.as_str()).collect();
    if !in_flight.is_empty() {
        tracing::warn!(node = %config.node, resources = ?in_flight, "the previous agent died during operations that may still run: not resuming its lease");
    }
    let mut resumable = in_flight.is_empty();
    let mut reconciler = Reconciler::new(&config.node, previous);
    reconciler.inherited = inherited;
    let peers = match config.peer_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await.map_err(|error| AgentError::PeerEndpoint { address, error })?;
            let bound = listener.local_addr().map_err(|error| AgentError::PeerEndpoint { address, error })?;
            // The address is published for the other nodes to dial: 0.0.0.0 or [::] would
            // have each of them ask itself.
            if bound.ip().is_unspecified() {
                let error = std::io::Error::other("an unspecified address (0.0.0.0, [::]) cannot be published; give the address the other nodes reach");
                return Err(AgentError::PeerEndpoint { address, error });
            }
            let state = failsafe::PeerState::new(&config.node, config.lease_ttl);
            // Mutual TLS with the agent's own certificate where it reaches etcd so.
            let tls = failsafe::PeerTls::from_store(&store)?;
            failsafe::serve(listener, state.clone(), tls.clone());
            tracing::info!(node = %config.node, address = %bound, tls = tls.is_some(), "peer endpoint listening");
            Some(Peers { state, address: bound.to_string(), tls })
        }
        None => None,
    };
    // Scrapes ask the session's loop for the node's view; none is answered between
    // sessions.
    let mut views = config.metrics.take_view_requests();
    loop {
        config.metrics.set_claimed(false);
        config.notifier.status(&format!("claiming node {}", config.node));
        if let Some(peers) = &peers {
            peers.state.set_lease(None);
        }
        let peer_address = peers.as_ref().map(|peers| peers.address.clone());
        let Some((session, granted_at)) = claim(&store, &config, peer_address.as_deref(), resumable, &mut shutdown).await else { return Ok(()) };
        config.metrics.set_claimed(true);
        // After a self-fencing everything here is stopped: a lease that still holds
        // the node may be resumed.
        resumable = true;
        remember_lease(&config.state_dir, Some(session.lease));
        reconciler.incarnation = fresh_incarnation();
        tracing::info!(node = %config.node, lease = format!("{:x}", session.lease), "node claimed");
        config.notifier.status(&format!("node {} claimed, probing", config.node));
        let mut run = Session::new(&config, store.clone(), executor.clone(), session, granted_at, peers.as_ref());
        match run.run(&mut reconciler, &mut shutdown, &mut views).await {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::LeaseLost => {
                tracing::error!(node = %config.node, "lease lost: every resource was stopped; probing again once the node is claimed anew");
                config.notifier.status("lease lost: every resource was stopped; claiming the node anew");
                reconciler.forget_roles();
            }
        }
    }
}

async fn read_with_retry<T: serde::de::DeserializeOwned>(store: &Store, prefix: &str) -> (i64, Vec<(String, T, i64)>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match store.read_records(prefix).await {
            Ok(records) => return records,
            Err(error) => {
                tracing::warn!(%error, "cannot read {prefix}; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Resumes the lease of this node's previous agent if it still holds the node (a
/// restart within the lease: nothing is lost, nothing fenced), or else grants a lease
/// and claims the node's key with it, waiting while another agent (or this one's
/// previous life) still holds it. `None` when shut down meanwhile.
async fn claim(
    store: &Store,
    config: &AgentConfig,
    peer: Option<&str>,
    resumable: bool,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Option<(NodeSession, Instant)> {
    let mut warned = false;
    let mut previous = remembered_lease(&config.state_dir).filter(|_| resumable);
    // A lease this agent granted for a claim whose answer was lost.
    let mut own: Option<i64> = None;
    loop {
        let attempt = async {
            if let Some(lease) = previous {
                if let Some(renewed_at) = store.renew_if_holding(&config.node, lease, config.lease_ttl).await? {
                    tracing::info!(node = %config.node, lease = format!("{lease:x}"), "resuming the lease of this node's previous agent: its resources were left running");
                    return Ok(Some((NodeSession { node: config.node.clone(), lease }, renewed_at)));
                }
                previous = None;
            }
            // A claim etcd applied but whose answer was lost left the key bound to this
            // agent's own lease: it is taken back (whatever TTL etcd answers) rather
            // than waited out.
            if let Some(lease) = own {
                if let Some(renewal) = store.renew_holding(&config.node, lease).await? {
                    return Ok(Some((NodeSession { node: config.node.clone(), lease }, renewal.sent)));
                }
                own = None;
                let _ = store.revoke_lease(lease).await;
            }
            let granted_at = Instant::now();
            let lease = store.grant_lease(config.lease_ttl).await?;
            let heartbeat = NodeHeartbeat { peer: peer.map(str::to_string), ..heartbeat(config, false, false) };
            own = Some(lease);
            if store.claim_node(&config.node, lease, &heartbeat).await? {
                return Ok::<_, StoreError>(Some((NodeSession { node: config.node.clone(), lease }, granted_at)));
            }
            own = None;
            let _ = store.revoke_lease(lease).await;
            Ok(None)
        };
        tokio::select! {
            result = attempt => match result {
                Ok(Some(claimed)) => return Some(claimed),
                Ok(None) if !warned => {
                    tracing::warn!(node = %config.node, "another agent holds this node's lease; waiting for it to end");
                    warned = true;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot claim the node; retrying"),
            },
            () = shutdown.as_mut() => return None,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.as_mut() => return None,
        }
    }
}

fn heartbeat(config: &AgentConfig, probed: bool, shutdown: bool) -> NodeHeartbeat {
    NodeHeartbeat {
        node: config.node.clone(),
        pid: std::process::id(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default(),
        started: epoch_now(),
        lease_ttl_ms: u64::try_from(config.lease_ttl.as_millis()).unwrap_or(u64::MAX),
        probed,
        shutdown,
        attributes: config.attributes.clone(),
        capacity: config.capacity.clone(),
        peer: None,
        probed_ahead: Vec::new(),
    }
}

/// Whether `local`'s result need not be written: it says only "not running here"
/// (`says_only_not_running`), carries no event, and nothing of it is stored — no
/// status, not even one that does not decode (issue 18: a probe that finds nothing
/// writes nothing, and a joining node lists the awaited ones in its heartbeat).
fn unreported_not_running(cache: &ClusterCache, keys: &Keys, node: &str, id: &str, local: &reconcile::Local) -> bool {
    let stored = cache.statuses().contains_key(&(node.to_string(), id.to_string())) || cache.undecodable().contains_key(&keys.status(node, id));
    !stored && local.events.is_empty() && says_only_not_running(&local.status)
}

/// A status that says no more than "probed here and not running": nothing failed,
/// nothing counted, pending or announced, and no operation but probes finding it
/// stopped in its history.
fn says_only_not_running(status: &ResourceStatus) -> bool {
    // A clone instance's status is written anyway: a promotion's intent compares the
    // statuses of the clone's other instances it has seen (`promotion_basis`), and a
    // key that exists from the probe on is one it can see before it is promoted.
    status.clone.is_none()
        && status.role == ObservedRole::Stopped
        && status.failures == 0
        && status.fail_counts.is_empty()
        && status.last_failure.is_none()
        && status.pending.is_none()
        && status.notice.is_none()
        && status.acks.is_empty()
        && status.history.iter().all(|record| {
            record.operation == "monitor"
                && record.interval_ms == 0
                && record.rc == crate::api::ocf::NOT_RUNNING
                && record.status == crate::api::records::ExecStatus::Done
        })
}

fn epoch_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// A pending event as its key (under this node's pending events) and value.
fn event_write(keys: &Keys, node: &str, pending: &PendingEvent) -> Result<(String, String), StoreError> {
    let key = keys.pending_event(node, &pending.id);
    let value = serde_json::to_string(&pending.event).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: error.to_string() })?;
    Ok((key, value))
}

enum SessionEnd {
    Shutdown,
    LeaseLost,
}

/// Runs `work` unless the lease reaches its self-fencing point first (`None`): every
/// wait of the agent's on etcd goes through this, so a hung etcd never delays
/// self-fencing.
async fn within_lease<T>(lease: (tokio::sync::watch::Receiver<LeaseState>, Duration), work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = lease::expiring(lease.0, lease.1) => None,
    }
}

/// One lease's worth of work.
struct Session<'a> {
    config: &'a AgentConfig,
    store: Store,
    keys: Keys,
    executor: Arc<Executor>,
    session: NodeSession,
    lease_state: tokio::sync::watch::Receiver<LeaseState>,
    lease_task: lease::LeaseKeeper,
    /// What the agent follows (its own plan and attributes, every status, the spec,
    /// fencing), one watch each, into `cache`.
    informer: Informer,
    /// The prefixes whose watch has delivered its first listing: nothing is decided
    /// before all have.
    listed: std::collections::HashSet<String>,
    watched: usize,
    cache: ClusterCache,
    results: mpsc::UnboundedReceiver<(Step, OperationResult)>,
    result_sender: mpsc::UnboundedSender<(Step, OperationResult)>,
    /// Cancels the operation running on a resource (dropping it cancels too).
    running: HashMap<String, oneshot::Sender<()>>,
    /// Attribute changes agents made, not yet written.
    pending_attributes: Vec<AttributeUpdate>,
    /// The configuration as last taken in, of the kinds the agent reads only
    /// (`AGENT_READS`), resources left out (the probe targets have what the agent
    /// needs of them; the scrape looks up the few running in the cache): fence
    /// devices and topology for fencing, groups, nodes and the policy.
    objects: Vec<crate::api::Object>,
    /// Targets this node is fencing now.
    fencing_running: std::collections::BTreeSet<String>,
    /// Finished fencing runs, to be written.
    fence_done: mpsc::UnboundedReceiver<FenceResultRecord>,
    fence_done_sender: mpsc::UnboundedSender<FenceResultRecord>,
    spec_stale: bool,
    /// Whether the settled spec must be taken in again (`take_spec`): a kind the agent
    /// reads changed (`AGENT_READS`), or everything may have. A change of other kinds
    /// (constraints, alerts) only settles.
    spec_retake: bool,
    /// Since when the spec on the watch has not been whole (`spec_settled`) and no
    /// change of it arrived: a large apply whose events take a while to arrive is
    /// not an object written by hand.
    spec_unsettled_since: Option<Instant>,
    /// Since when the spec on the watch has not been whole, changes or not.
    spec_unsettled_first: Option<Instant>,
    /// The spec version of the last listing from etcd: the watch's copy, until it has
    /// caught up with it, is older and not taken in.
    spec_listed_version: i64,
    /// How many operations may run at once (`throttle`).
    limits: throttle::Limits,
    /// The load average as last read, and when (read at most once a second).
    load: Option<(Instant, Option<f64>)>,
    /// Operations decided but held back by the limit, at the last decision.
    queued: usize,
    /// The activity record as last written, and when.
    activity_written: Option<(NodeActivity, Instant)>,
    /// The node's latest self-fencings, from the state dir.
    self_fencings: Vec<SelfFencing>,
    /// Whether the heartbeat says the node has probed everything.
    heartbeat_probed: bool,
    /// Until then: the probes the scheduler waits for (`probe_first`) that found
    /// nothing, for the heartbeat, and whether it says them all yet.
    probed_ahead: BTreeSet<String>,
    probed_ahead_unwritten: bool,
    /// A new assignment arrived: its `probe_first` is compared with the probes done.
    probed_ahead_recheck: bool,
    /// The peer endpoint, when there is one (else no failsafe).
    peers: Option<&'a Peers>,
    /// In failsafe: etcd cannot be reached, every member said it cannot either.
    failsafe: Option<FailsafeRun>,
    /// Rounds of questions to the peers: their answers come back here.
    rounds: mpsc::UnboundedReceiver<Round>,
    round_sender: mpsc::UnboundedSender<Round>,
    round_running: bool,
    last_round: Option<Instant>,
    /// The latest round's verdict before failsafe: (when it started, whom it asked, what).
    verdict: Option<(Instant, failsafe::Membership, failsafe::Verdict)>,
    /// Why a round in failsafe failed (the self-fencing's cause).
    failsafe_failed: Option<String>,
    /// Leases of this agent's that may hold the node's key while a reclaim is under
    /// way: the session's, and those of claims that got no answer (`reclaim`).
    own_leases: Vec<i64>,
}

/// A session in failsafe (`failsafe`): since when, the membership every round asks,
/// and the node's run-time attributes bound to its lease, written again if etcd lost
/// the lease meanwhile.
struct FailsafeRun {
    since: Instant,
    /// When etcd was last asked whether the lease still holds the node.
    checked: Option<Instant>,
    membership: failsafe::Membership,
    attributes: Vec<AttributeUpdate>,
}

/// One round's answers.
struct Round {
    started: Instant,
    membership: failsafe::Membership,
    answers: BTreeMap<String, failsafe::PeerAnswer>,
}

/// How long the spec on the watch may stay unsettled, with no change of it arriving,
/// before the agent lists it from etcd instead (an object written by hand has no
/// version key after it).
const SPEC_SETTLE_WAIT: Duration = Duration::from_secs(5);

/// How long the spec on the watch may stay unsettled however many changes arrive.
const SPEC_SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Whether the spec on the watch has been unsettled long enough to list it from etcd:
/// no change of it for `SPEC_SETTLE_WAIT` (an object written by hand), or unsettled
/// for `SPEC_SETTLE_LIMIT` whatever arrived. Not the first while the version key says
/// a large apply is being rolled forward: its objects are on their way (a gap in them
/// is the writer's pace, not a hand's write), and a listing taken before its finish
/// is refused anyway. At 300 nodes × 10,000 resources, every agent listed the whole
/// spec every five seconds of a slow roll-forward: a quarter of the hollow nodes'
/// CPU, and etcd's answers to all of them (issue 18).
fn unsettled_too_long(rolling_forward: bool, quiet_since: Option<Instant>, first: Option<Instant>, now: Instant) -> bool {
    let waited = |since: Option<Instant>, wait: Duration| since.is_some_and(|since| now.saturating_duration_since(since) >= wait);
    (!rolling_forward && waited(quiet_since, SPEC_SETTLE_WAIT)) || waited(first, SPEC_SETTLE_LIMIT)
}

/// The kinds of object an agent reads: what to probe and how (`probe_targets`:
/// resources, groups, nodes, the policy), whether to unfence (fence devices), its
/// operation limit (its node, the policy), fencing (devices, topology) and its scrape.
/// A change of any other kind (constraints, alerts, ...) reaches it through its plan.
const AGENT_READS: &[Kind] = &[Kind::Resource, Kind::Group, Kind::Node, Kind::ClusterPolicy, Kind::FenceDevice, Kind::FencingTopology];

/// The agent's log message when it enters failsafe (tests count them).
pub const FAILSAFE_LOG: &str = "etcd cannot be reached and every member confirms it: failsafe, keeping every resource running";
/// The agent's log message when it leaves failsafe.
pub const FAILSAFE_OVER_LOG: &str = "etcd reached again: leaving failsafe";

impl<'a> Session<'a> {
    fn new(config: &'a AgentConfig, store: Store, executor: Arc<Executor>, session: NodeSession, granted_at: Instant, peers: Option<&'a Peers>) -> Session<'a> {
        let (lease_task, lease_state) = lease::keep_alive_on(config.renewals.as_deref(), store.clone(), session.lease, config.lease_ttl, granted_at);
        if let Some(peers) = peers {
            peers.state.set_lease(Some(lease_state.clone()));
        }
        let (round_sender, rounds) = mpsc::unbounded_channel();
        let keys = store.keys().clone();
        let mut prefixes = vec![
            keys.spec_prefix(),
            keys.plan(&config.node),
            keys.statuses_prefix(),
            keys.node_attributes_prefix(&config.node),
            keys.fencing_prefix(),
            // The answers to the requests it runs (its own results: a request already
            // answered is not run again after a restart) and the administrators'.
            keys.node_fence_results_prefix(&config.node),
            keys.fence_confirmations_prefix(),
            keys.node_requests_prefix(&config.node),
        ];
        if peers.is_some() {
            // The heartbeats: the last known membership and its peer endpoints.
            prefixes.push(keys.nodes_prefix());
        }
        let watched = prefixes.len();
        let informer = Informer::start(&store, prefixes);
        let (result_sender, results) = mpsc::unbounded_channel();
        let (fence_done_sender, fence_done) = mpsc::unbounded_channel();
        Session {
            keys: store.keys().clone(),
            config,
            store,
            executor,
            session,
            lease_state,
            lease_task,
            informer,
            listed: Default::default(),
            watched,
            cache: match &config.shared_decodes {
                Some(shared) => ClusterCache::with_shared(keys.clone(), shared.clone()),
                None => ClusterCache::new(keys.clone()),
            },
            results,
            result_sender,
            running: HashMap::new(),
            pending_attributes: proposed_attributes(config),
            objects: Vec::new(),
            fencing_running: Default::default(),
            fence_done,
            fence_done_sender,
            spec_stale: true,
            spec_retake: true,
            spec_unsettled_since: None,
            spec_unsettled_first: None,
            spec_listed_version: 0,
            limits: throttle::limits(&[], &config.node, cores()),
            load: None,
            queued: 0,
            activity_written: None,
            self_fencings: recorded_self_fencings(&config.state_dir),
            heartbeat_probed: false,
            probed_ahead: BTreeSet::new(),
            probed_ahead_unwritten: false,
            probed_ahead_recheck: false,
            peers,
            failsafe: None,
            rounds,
            round_sender,
            round_running: false,
            last_round: None,
            verdict: None,
            failsafe_failed: None,
            own_leases: Vec::new(),
        }
    }

    async fn run(
        &mut self,
        reconciler: &mut Reconciler,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        views: &mut Option<mpsc::Receiver<ViewRequest>>,
    ) -> SessionEnd {
        let node = self.config.node.clone();
        // Everything this node reported before is rewritten once probed.
        reconciler.local.for_each_mut(|_, local| local.dirty = true);
        let ttl = self.config.lease_ttl;
        let mut shutting_down = false;
        let mut retry_writes: Option<Instant> = None;
        // systemd's watchdog is pinged from this loop only, and only while the lease
        // is healthy: a loop stuck, or a node cut off from etcd, stops the pings.
        let mut watchdog = crate::notify::Watchdog::new(self.config.notifier.clone()).with_progress(self.config.metrics.progress());
        let end = loop {
            if self.round_due().is_some_and(|due| due <= Instant::now()) {
                self.start_round();
            }
            if self.failsafe.is_some() {
                match self.failsafe_over(reconciler).await {
                    Err(cause) => {
                        self.failsafe_failed = Some(cause);
                        break SessionEnd::LeaseLost;
                    }
                    Ok(false) => {
                        // Still without etcd: monitors only, their results kept here.
                        let (steps, _) = reconciler.decide_within(Instant::now(), self.capacity());
                        for step in steps.into_iter().filter(|step| matches!(step.action, Action::Monitor(_))) {
                            self.spawn(reconciler, step);
                        }
                    }
                    Ok(true) => {}
                }
            }
            // After `failsafe_over`, which may have claimed the node with a new lease.
            let lease = (self.lease_state.clone(), ttl);
            // Nothing is decided before every watch has delivered its first listing: an
            // empty spec would look like nothing to probe, an empty status map like
            // nothing running elsewhere. Nothing but monitors in failsafe.
            let ready = self.listed.len() >= self.watched && self.failsafe.is_none();
            let mut recorded = false;
            let settled = self.cache.spec_settled();
            if settled != Some(false) {
                self.spec_unsettled_since = None;
                self.spec_unsettled_first = None;
            } else if self.spec_stale {
                self.spec_unsettled_since.get_or_insert_with(Instant::now);
                self.spec_unsettled_first.get_or_insert_with(Instant::now);
            }
            // An object written straight into etcd (by hand, not by an apply) never has
            // its version key follow: after a while without a change arriving, etcd is
            // asked — and after a minute in any case (objects written by hand every few
            // seconds would otherwise keep the agent from ever taking the spec in).
            let unsettled_long = unsettled_too_long(self.cache.spec_rolling_forward(), self.spec_unsettled_since, self.spec_unsettled_first, Instant::now());
            if ready && self.spec_stale && settled.is_some() && !unsettled_long {
                // The spec watch brings a change's objects, then its version key: the
                // copy is taken in once that has arrived and is no large apply's commit
                // (whose batches arrive one by one; nothing may be built on half of
                // it). Until then the rest is on its way, or the leader is rolling the
                // apply forward. Nothing is read from etcd: a change costs each agent
                // the change, not a listing of the whole spec.
                if settled == Some(true) {
                    // Behind a listing taken meanwhile: nothing newer to take in yet.
                    if self.spec_retake && self.cache.spec_version() >= self.spec_listed_version {
                        let read =
                            self.cache.objects().values().filter(|stored| AGENT_READS.contains(&stored.object.kind())).map(|stored| (*stored.object).clone());
                        self.take_spec(reconciler, in_definition_order(read.collect()));
                    }
                    self.spec_stale = false;
                }
            } else if ready && self.spec_stale {
                // No version key on the watch (an empty store, or one written only by
                // earlier builds), or none for a while: the spec is listed once no large
                // apply is committed but not yet rolled forward. An agent never writes the spec, not even
                // to finish an apply: the leader does (the wake below retries meanwhile).
                match within_lease(lease.clone(), self.store.list_objects_read_only()).await {
                    None if self.enter_failsafe(reconciler).await => continue,
                    None => break SessionEnd::LeaseLost,
                    // Listed again after another wait, not on every wake.
                    Some(Err(error)) => {
                        tracing::warn!(%error, "cannot read the configuration; retrying");
                        self.spec_unsettled_since = Some(Instant::now());
                        self.spec_unsettled_first = Some(Instant::now());
                    }
                    Some(Ok(None)) => {
                        tracing::debug!("a large apply is not rolled forward yet; reading the configuration again soon");
                        self.spec_unsettled_since = Some(Instant::now());
                        self.spec_unsettled_first = Some(Instant::now());
                    }
                    Some(Ok(Some(listing))) => {
                        for skipped in &listing.undecodable {
                            tracing::warn!(key = %skipped.key, reason = %skipped.reason, "skipping a stored object that does not decode");
                        }
                        let listed_version = listing.spec_version;
                        let read = listing.into_objects().filter(|object| AGENT_READS.contains(&object.kind())).collect();
                        self.take_spec(reconciler, in_definition_order(read));
                        self.spec_stale = false;
                        self.spec_unsettled_since = None;
                        self.spec_unsettled_first = None;
                        self.spec_listed_version = listed_version;
                    }
                }
            }
            if ready && !self.spec_stale {
                self.take_requests(reconciler);
            }
            // When this pass decided: a hold that ended after it is still to be woken for.
            let mut decided_at = None;
            if ready {
                match within_lease(lease.clone(), self.flush(reconciler)).await {
                    None if self.enter_failsafe(reconciler).await => continue,
                    None | Some(Err(GuardedWriteError::LeaseLost { .. })) => break SessionEnd::LeaseLost,
                    // What was not written stays dirty and is tried again.
                    Some(Err(error)) => tracing::warn!(%error, "cannot write this node's statuses; retrying"),
                    Some(Ok(())) => {}
                }
                if shutting_down && reconciler.all_stopped() && self.running.is_empty() {
                    break SessionEnd::Shutdown;
                }
                let deciding = Instant::now();
                decided_at = Some(deciding);
                let (steps, held) = reconciler.decide_within(deciding, self.capacity());
                self.queued = held;
                if shutting_down && steps.is_empty() && self.running.is_empty() {
                    let left: Vec<&str> = reconciler.local.iter().filter(|(_, local)| local.status.role.may_be_active()).map(|(id, _)| id.as_str()).collect();
                    tracing::error!(?left, "shutting down with resources that could not be stopped");
                    break SessionEnd::Shutdown;
                }
                // Recording a pending operation or a notice changes only the status:
                // write it and decide again at once, without waiting for an event.
                recorded = steps.iter().any(|step| matches!(step.action, Action::Intend | Action::Announce));
                for step in steps {
                    self.spawn(reconciler, step);
                }
                if !shutting_down {
                    self.start_fencing();
                }
            }
            if recorded {
                continue;
            }
            let now = Instant::now();
            // At the limit, a due monitor waits for an operation to end (which wakes the
            // loop), not for its time.
            let next_monitor = if self.capacity() == 0 { None } else { reconciler.next_wake(decided_at.unwrap_or(now)) };
            // In failsafe, the lease is looked at every sixteenth of the TTL: etcd back?
            let failsafe_wake = self.failsafe.as_ref().map(|_| now + ttl / 16);
            let wake = [next_monitor, retry_writes, self.spec_stale.then(|| now + Duration::from_millis(500)), self.round_due(), failsafe_wake]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                Some(event) = self.informer.events.recv() => {
                    // Take in whatever else is queued before deciding again.
                    let mut next = Some(event);
                    while let Some(event) = next {
                        match event {
                            Ok(event) => self.take_event(reconciler, event),
                            Err(error) => tracing::warn!(%error, "watch interrupted; resuming"),
                        }
                        next = self.informer.events.try_recv().ok();
                    }
                }
                Some(result) = self.fence_done.recv() => {
                    let target = result.target.clone();
                    self.fencing_running.remove(&target);
                    if self.failsafe.is_some() {
                        // Nothing can be written: the request stays unanswered and runs again.
                        tracing::warn!(node = %target, "a fencing ended in failsafe: its result cannot be written");
                        continue;
                    }
                    let value = match serde_json::to_string(&result) {
                        Ok(value) => value,
                        Err(error) => {
                            tracing::error!(%error, "cannot encode a fencing result");
                            continue;
                        }
                    };
                    // Under this node's own prefix: the leader takes a result only from
                    // the executor its request named.
                    let key = self.keys.fence_result(&node, &target);
                    // Its event in the same transaction: the leader asked for it.
                    let time = crate::runtime::now_usec();
                    let event = PendingEvent { id: reconciler.event_ids.next(time, reconciler.incarnation), event: fencing_event(&result, &node, &node, "pacer@scheduler", time) };
                    let also = match event_write(&self.keys, &node, &event) {
                        Ok(write) => vec![write],
                        Err(error) => {
                            tracing::error!(%error, "cannot encode a fencing event");
                            Vec::new()
                        }
                    };
                    let write = self.store.guarded_write_with(&self.session, &key, Some(value.clone()), false, also);
                    let Some(written) = within_lease(lease.clone(), write).await else {
                        if self.enter_failsafe(reconciler).await {
                            continue;
                        }
                        break SessionEnd::LeaseLost;
                    };
                    match written {
                        Ok(revision) => {
                            self.cache.apply_write(&key, Some(value.as_bytes()), revision);
                            reconciler.unfenced = self.unfenced();
                        }
                        Err(GuardedWriteError::LeaseLost { .. }) => break SessionEnd::LeaseLost,
                        // The request stays unanswered: fencing runs again.
                        Err(error) => tracing::error!(%error, node = %target, "cannot record a fencing result"),
                    }
                }
                Some((step, result)) = self.results.recv() => {
                    self.finish(reconciler, step, result);
                    while let Ok((step, result)) = self.results.try_recv() {
                        self.finish(reconciler, step, result);
                    }
                }
                () = lease::expiring(self.lease_state.clone(), ttl), if self.failsafe.is_none() => {
                    if !self.enter_failsafe(reconciler).await {
                        break SessionEnd::LeaseLost;
                    }
                }
                Some(round) = self.rounds.recv() => {
                    self.round_running = false;
                    let verdict = self.judge(&round);
                    if self.failsafe.is_some() {
                        if let failsafe::Verdict::SelfFence(cause) = verdict {
                            self.failsafe_failed = Some(cause);
                            break SessionEnd::LeaseLost;
                        }
                    } else {
                        self.verdict = Some((round.started, round.membership, verdict));
                    }
                }
                Some(reply) = next_view_request(views) => {
                    // Scrapes: the node's view, built here once for every scrape waiting
                    // (linear in the node's resources, no IO) and rendered by each off
                    // this loop; a scrape that gave up already gets nothing.
                    let mut replies = vec![reply];
                    if let Some(receiver) = views.as_mut() {
                        while let Ok(more) = receiver.try_recv() {
                            replies.push(more);
                        }
                    }
                    replies.retain(|reply| !reply.is_closed());
                    if !replies.is_empty() {
                        let view = self.node_view(reconciler, shutting_down);
                        for reply in replies {
                            let _ = reply.send(view.clone());
                        }
                    }
                }
                () = sleep_until_opt(wake) => {
                    retry_writes = None;
                }
                () = watchdog.due() => {
                    watchdog.ping(self.lease_state.borrow().healthy(ttl) || self.failsafe.is_some());
                }
                () = shutdown.as_mut(), if !shutting_down => {
                    shutting_down = true;
                    self.config.notifier.status(match self.config.on_shutdown {
                        OnShutdown::Stop => "shutting down: stopping every resource",
                        OnShutdown::Leave => "shutting down: leaving resources running",
                    });
                    match self.config.on_shutdown {
                        OnShutdown::Stop => {
                            tracing::info!(%node, "shutting down: stopping every resource");
                            reconciler.stopping_all = true;
                            // In failsafe nothing can be written: everything is stopped as
                            // when the failsafe ends, with the old rule's time from now
                            // (not from the last renewal, long past: every stop would get
                            // 100 ms and be killed).
                            if self.failsafe.is_some() {
                                self.failsafe_failed = Some("asked to shut down".to_string());
                                break SessionEnd::LeaseLost;
                            }
                            let heartbeat = self.heartbeat(reconciler.probed(), true);
                            if within_lease(lease.clone(), self.write_heartbeat(&heartbeat)).await.is_none() {
                                break SessionEnd::LeaseLost;
                            }
                        }
                        OnShutdown::Leave => {
                            tracing::info!(%node, "shutting down: leaving resources as they are");
                            for (_, cancel) in self.running.drain() {
                                let _ = cancel.send(());
                            }
                            break SessionEnd::Shutdown;
                        }
                    }
                }
            }
            let activity_changed = self.activity_written.as_ref().is_some_and(|(written, _)| {
                let now = NodeActivity {
                    running: u32::try_from(self.running.len()).unwrap_or(u32::MAX),
                    queued: u32::try_from(self.queued).unwrap_or(u32::MAX),
                    ..written.clone()
                };
                activity_worth_writing(written, &now)
            });
            let unwritten = !reconciler.local.dirty().is_empty()
                || !self.pending_attributes.is_empty()
                || !reconciler.finished_requests().is_empty()
                || (reconciler.probed() && !self.heartbeat_probed)
                || self.probed_ahead_unwritten
                || activity_changed;
            if unwritten {
                retry_writes = Some(Instant::now() + Duration::from_millis(500));
            }
        };
        self.informer.stop();
        match end {
            SessionEnd::LeaseLost => {
                self.lease_task.abort();
                if let Some(peers) = self.peers {
                    peers.state.set_failsafe(false);
                    peers.state.set_lease(None);
                }
                let state = *self.lease_state.borrow();
                let (deadline, cause) = match (state, self.failsafe_failed.take()) {
                    // Failsafe ends: the stops get the old rule's time from now.
                    (_, Some(why)) => (
                        Instant::now() + failsafe::Timing::for_ttl(ttl).stop_within,
                        format!("failsafe ended ({why}) after {} ms without etcd", self.failsafe.as_ref().map_or(0, |run| run.since.elapsed().as_millis())),
                    ),
                    (LeaseState::Held { renewed_at }, None) => (
                        renewed_at + ttl - self_fence_margin(ttl),
                        format!("no lease renewal confirmed for {} ms (half the lease is {} ms)", renewed_at.elapsed().as_millis(), (ttl / 2).as_millis()),
                    ),
                    (LeaseState::Lost, None) => (Instant::now(), "etcd answered that the lease is gone".to_string()),
                };
                self.failsafe = None;
                record_self_fencing(&self.config.state_dir, &SelfFencing { time: epoch_now(), cause });
                self.config.metrics.self_fenced();
                // The self-fencing runs off this loop, so no ping comes meanwhile: with a
                // long lease it outlasts systemd's watchdog, which would kill the agent
                // halfway (its resources left running). Its length is known now; the
                // watchdog is extended for it, and still fires if it hangs beyond.
                let budget = self.self_fence_budget(deadline);
                self.config.notifier.extend_watchdog(budget);
                // `/healthz` (a Kubernetes liveness probe) is told the same.
                self.config.metrics.progress().excuse_until(std::time::Instant::now() + budget);
                self.self_fence(reconciler, deadline).await;
                self.config.notifier.restore_watchdog();
                self.config.metrics.progress().end_excuse();
                // Asked to shut down meanwhile: everything is stopped; do not claim again.
                if shutting_down { SessionEnd::Shutdown } else { SessionEnd::LeaseLost }
            }
            SessionEnd::Shutdown => {
                // Wait for cancelled operations to end before giving up the lease.
                while !self.running.is_empty() {
                    match tokio::time::timeout(Duration::from_secs(5), self.results.recv()).await {
                        Ok(Some((step, result))) => self.finish(reconciler, step, result),
                        _ => break,
                    }
                }
                let _ = self.flush(reconciler).await;
                self.lease_task.abort();
                if self.config.on_shutdown == OnShutdown::Leave {
                    // Resources left running: the lease lapses by itself unless an agent
                    // started within it resumes it (a restart that disturbs nothing).
                    tracing::info!(node = %node, lease = format!("{:x}", self.session.lease), "lease left to lapse; an agent restarted within it resumes it");
                } else if let Err(error) = self.store.revoke_lease(self.session.lease).await {
                    tracing::warn!(%error, "cannot give up the lease; it lapses by itself");
                } else {
                    remember_lease(&self.config.state_dir, None);
                }
                SessionEnd::Shutdown
            }
        }
    }

    /// Stops everything that may run here before `deadline` (when the lease could
    /// expire for the others), cancelling what runs and killing what does not stop in
    /// time. Nothing can be reported: the lease is gone.
    async fn self_fence(&mut self, reconciler: &mut Reconciler, deadline: Instant) {
        let active = reconciler.local.values().filter(|local| local.status.role.may_be_active() || local.busy.is_some()).count();
        // What was being started (or promoted, or taken over) may be running whatever
        // its cancelled operation reports: it is stopped too.
        let starting: std::collections::BTreeSet<String> = reconciler
            .local
            .iter()
            .filter(|(_, local)| {
                matches!(local.busy, Some(Action::Start | Action::Promote | Action::Demote | Action::MigrateFrom | Action::MigrateTo | Action::Stop))
            })
            .map(|(id, _)| id.clone())
            .collect();
        tracing::error!(node = %self.config.node, active, "{SELF_FENCING_LOG}");
        for (_, cancel) in self.running.drain() {
            let _ = cancel.send(());
        }
        // Cancelled operations end within the kill grace.
        let drain_until = Instant::now() + self.executor_grace();
        while !reconciler.local.busy().is_empty() {
            match tokio::time::timeout_at(drain_until.into(), self.results.recv()).await {
                Ok(Some((step, result))) => {
                    record_operation(&self.config.metrics, &step, &result);
                    reconciler.record(&step, &result, Instant::now(), crate::runtime::now_usec());
                }
                _ => break,
            }
        }
        let mut stops = tokio::task::JoinSet::new();
        for (id, local) in &reconciler.local {
            if !local.status.role.may_be_active() && !starting.contains(id) {
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let step = Step {
                id: id.clone(),
                action: Action::Stop,
                definition: local.status.definition.clone(),
                timeout: remaining.max(Duration::from_millis(100)),
                notify: None,
                intent: None,
            };
            let request = self.request(reconciler, &step);
            let executor = self.executor.clone();
            stops.spawn(async move {
                let result = executor.run(&request).await;
                (step, result)
            });
        }
        while let Some(joined) = stops.join_next().await {
            let Ok((step, result)) = joined else { continue };
            record_operation(&self.config.metrics, &step, &result);
            if result.status != ExecStatus::Done || result.rc != 0 {
                tracing::error!(resource = %step.id, status = ?result.status, rc = result.rc, "stop failed while self-fencing; its process group was killed");
            } else {
                tracing::info!(resource = %step.id, "stopped while self-fencing");
            }
        }
        // Nothing runs here any more: let the node's key go now rather than at expiry,
        // if etcd can still be reached.
        if self.store.revoke_lease(self.session.lease).await.is_ok() {
            remember_lease(&self.config.state_dir, None);
        }
    }

    /// The heartbeat, with the peer endpoint's address and, until probed, what was
    /// probed ahead.
    fn heartbeat(&self, probed: bool, shutdown: bool) -> NodeHeartbeat {
        let probed_ahead = if probed { Vec::new() } else { self.probed_ahead.iter().cloned().collect() };
        NodeHeartbeat { peer: self.peers.map(|peers| peers.address.clone()), probed_ahead, ..heartbeat(self.config, probed, shutdown) }
    }

    /// Keeps `probed_ahead` (until the node has probed everything) to what is true
    /// now: adds `found` (probes that found nothing, just done) and, after a new
    /// assignment, what its `probe_first` names that was probed before; drops what no
    /// longer says "probed here, found nothing, never reported" (probed again, refreshed,
    /// deleted and configured anew, found running), so the heartbeat never speaks for a
    /// probe that has not happened. At most `PROBE_FIRST_MAX`; walks that many at most.
    fn note_probed_ahead(&mut self, reconciler: &Reconciler, found: Vec<String>) {
        let node = &self.config.node;
        let cache = &self.cache;
        let keys = &self.keys;
        let found_nothing =
            |id: &str| reconciler.local.get(id).is_some_and(|local| local.busy.is_none() && unreported_not_running(cache, keys, node, id, local));
        let before = self.probed_ahead.len();
        self.probed_ahead.retain(|id| found_nothing(id));
        let mut changed = self.probed_ahead.len() != before;
        let earlier: Vec<String> = if std::mem::take(&mut self.probed_ahead_recheck) {
            reconciler.probe_first().filter(|id| !self.probed_ahead.contains(*id) && found_nothing(id)).map(str::to_string).collect()
        } else {
            Vec::new()
        };
        for id in found.into_iter().chain(earlier) {
            if self.probed_ahead.len() < PROBE_FIRST_MAX && self.probed_ahead.insert(id) {
                changed = true;
            }
        }
        self.probed_ahead_unwritten |= changed;
    }

    /// Whether the cluster fences (`ClusterPolicy.stonithEnabled`, on by default):
    /// failsafe needs it.
    fn fencing_enabled(&self) -> bool {
        self.objects
            .iter()
            .find_map(|object| match &object.spec {
                crate::api::Spec::ClusterPolicy(policy) => Some(policy.stonith_enabled),
                _ => None,
            })
            .unwrap_or(true)
    }

    /// The last known membership: every other node with a heartbeat in the cache (as
    /// of the last store access), with its peer endpoint.
    fn membership(&self) -> failsafe::Membership {
        self.cache
            .heartbeats()
            .iter()
            .filter(|(node, _)| **node != self.config.node)
            .map(|(node, entry)| (node.clone(), entry.heartbeat.peer.clone()))
            .collect()
    }

    /// When the next round of questions is due: in failsafe every `round_every`;
    /// before, from `first_round_after` without a confirmed renewal on; never without
    /// a peer endpoint or while a round runs.
    fn round_due(&self) -> Option<Instant> {
        self.peers?;
        if self.round_running {
            return None;
        }
        let timing = failsafe::Timing::for_ttl(self.config.lease_ttl);
        if self.failsafe.is_some() {
            return Some(self.last_round.map_or_else(Instant::now, |last| last + timing.round_every));
        }
        match *self.lease_state.borrow() {
            LeaseState::Held { renewed_at } => {
                let first = renewed_at + timing.first_round_after;
                Some(self.last_round.map_or(first, |last| first.max(last + timing.retry_every)))
            }
            LeaseState::Lost => None,
        }
    }

    /// A round's verdict (`failsafe::judge`); one that finds every member holding is an
    /// outage of everyone seen, which the peer endpoint keeps answering for a while
    /// once this node is back (`PeerState::saw_outage`).
    fn judge(&self, round: &Round) -> failsafe::Verdict {
        let verdict = failsafe::judge(self.fencing_enabled(), &round.membership, &round.answers);
        if verdict == failsafe::Verdict::Failsafe
            && let Some(peers) = self.peers
        {
            peers.state.saw_outage();
        }
        verdict
    }

    /// Asks every member (the failsafe's membership, else the last known one) in a
    /// task of its own; the answers come back on `rounds`.
    fn start_round(&mut self) {
        let membership = self.failsafe.as_ref().map_or_else(|| self.membership(), |run| run.membership.clone());
        let timeout = failsafe::Timing::for_ttl(self.config.lease_ttl).round_timeout;
        let started = Instant::now();
        self.round_running = true;
        self.last_round = Some(started);
        let from = self.config.node.clone();
        let sender = self.round_sender.clone();
        let tls = self.peers.and_then(|peers| peers.tls.clone());
        tokio::spawn(async move {
            let answers = failsafe::ask_all(&from, &membership, timeout, tls).await;
            let _ = sender.send(Round { started, membership, answers });
        });
    }

    /// At the self-fencing point: enters failsafe if the latest round, started since
    /// the last confirmed renewal, found every member holding (a round under way is
    /// waited for, one not begun is run now); else `false`, and the old rule holds.
    async fn enter_failsafe(&mut self, reconciler: &Reconciler) -> bool {
        if self.peers.is_none() || self.failsafe.is_some() {
            return self.failsafe.is_some();
        }
        // Failsafe keeps what etcd says may run here: a resource found running, or an
        // operation that may have left it so, whose status was not written before etcd
        // went away is unknown to the others, and could be started elsewhere while this
        // node keeps it. Then the old rule holds.
        let unreported: Vec<&str> = reconciler
            .local
            .dirty()
            .iter()
            .filter(|id| reconciler.local.get(id).is_some_and(|local| local.status.may_be_active()))
            .map(String::as_str)
            .collect();
        if !unreported.is_empty() {
            tracing::warn!(resources = ?unreported, "etcd cannot be reached and these may run here unreported: no failsafe");
            return false;
        }
        let LeaseState::Held { renewed_at } = *self.lease_state.borrow() else { return false };
        let fresh =
            |verdict: &Option<(Instant, failsafe::Membership, failsafe::Verdict)>| verdict.as_ref().is_some_and(|(started, _, _)| *started > renewed_at);
        if !fresh(&self.verdict) {
            if !self.round_running {
                self.start_round();
            }
            let timeout = failsafe::Timing::for_ttl(self.config.lease_ttl).round_timeout + Duration::from_millis(50);
            if let Ok(Some(round)) = tokio::time::timeout(timeout, self.rounds.recv()).await {
                self.round_running = false;
                let verdict = self.judge(&round);
                self.verdict = Some((round.started, round.membership, verdict));
            }
        }
        let Some((started, membership, verdict)) = self.verdict.clone() else { return false };
        if started <= renewed_at {
            return false;
        }
        if let failsafe::Verdict::SelfFence(why) = verdict {
            tracing::warn!(%why, "etcd cannot be reached and failsafe does not hold");
            return false;
        }
        let node = self.config.node.clone();
        let attributes = self
            .cache
            .attributes()
            .get(&node)
            .map(|attributes| {
                attributes
                    .iter()
                    .filter(|(_, record)| !record.forever)
                    .map(|(name, record)| AttributeUpdate {
                        name: name.clone(),
                        node: node.clone(),
                        lifetime: AttributeLifetime::Reboot,
                        value: Some(record.value.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        tracing::warn!(%node, members = ?membership.keys().collect::<Vec<_>>(), unconfirmed_ms = renewed_at.elapsed().as_millis(), "{FAILSAFE_LOG}");
        self.config.notifier.status("failsafe: etcd cannot be reached by any member; keeping every resource running");
        if let Some(peers) = self.peers {
            peers.state.set_failsafe(true);
        }
        self.failsafe = Some(FailsafeRun { since: Instant::now(), checked: None, membership, attributes });
        true
    }

    /// In failsafe: whether etcd is reached again (`true`, failsafe left: the lease
    /// renewed, or re-claimed if etcd let it expire); `Err` when the node cannot be
    /// claimed again (another lease holds it: self-fence).
    async fn failsafe_over(&mut self, reconciler: &mut Reconciler) -> Result<bool, String> {
        let ttl = self.config.lease_ttl;
        let mut state = *self.lease_state.borrow();
        if !state.healthy(ttl) && self.failsafe.as_ref().is_some_and(|run| run.checked.is_none_or(|checked| checked.elapsed() >= ttl / 8)) {
            // etcd answers a renewal of a lease it let expire with an error the renewals
            // retry: ask whether the lease still holds the node.
            if let Some(run) = self.failsafe.as_mut() {
                run.checked = Some(Instant::now());
            }
            // Whatever TTL etcd answers: a lease etcd raised to its minimum still holds.
            let check = self.store.renew_holding(&self.config.node, self.session.lease);
            if let Ok(Ok(None)) = tokio::time::timeout((ttl / 8).max(Duration::from_millis(100)), check).await {
                state = LeaseState::Lost;
            }
        }
        match state {
            LeaseState::Held { .. } if !state.healthy(ttl) => return Ok(false),
            LeaseState::Held { .. } => {}
            LeaseState::Lost => match tokio::time::timeout(crate::store::node::AGENT_REQUEST_TIMEOUT * 2, self.reclaim(reconciler)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err("etcd let the lease expire and another lease holds the node".into()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot claim the node again after failsafe; retrying");
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            },
        }
        let Some(run) = self.failsafe.take() else { return Ok(true) };
        if let Some(peers) = self.peers {
            peers.state.set_failsafe(false);
        }
        // What the monitors found meanwhile is written now; the plan is read again.
        reconciler.local.for_each_mut(|_, local| local.dirty = true);
        self.spec_stale = true;
        self.spec_retake = true;
        self.verdict = None;
        tracing::warn!(node = %self.config.node, lease = format!("{:x}", self.session.lease), failsafe_ms = run.since.elapsed().as_millis(), "{FAILSAFE_OVER_LOG}");
        self.config.notifier.status(&format!("node {} claimed", self.config.node));
        Ok(true)
    }

    /// etcd let the lease expire during failsafe: a new lease claims the node again
    /// (only if no other lease holds it), with the heartbeat as it was, and every
    /// status and lease-bound attribute is written again under it — the node is not
    /// lost, nothing stops or starts. Idempotent (`Store::reclaim_node`): a claim whose
    /// answer was lost is recognised by its lease on the key, as is the session's own.
    async fn reclaim(&mut self, reconciler: &Reconciler) -> Result<bool, StoreError> {
        let ttl = self.config.lease_ttl;
        let heartbeat = self.heartbeat(reconciler.probed(), false);
        if !self.own_leases.contains(&self.session.lease) {
            self.own_leases.push(self.session.lease);
        }
        let (lease, granted_at) = match self.store.reclaim_node(&self.config.node, ttl, &heartbeat, &mut self.own_leases).await? {
            Reclaim::Claimed { lease, renewed_at } => (lease, renewed_at),
            Reclaim::HeldByAnother => return Ok(false),
        };
        let (task, state) = lease::keep_alive_on(self.config.renewals.as_deref(), self.store.clone(), lease, ttl, granted_at);
        self.lease_task = task;
        self.lease_state = state;
        self.session.lease = lease;
        remember_lease(&self.config.state_dir, Some(lease));
        if let Some(peers) = self.peers {
            peers.state.set_lease(Some(self.lease_state.clone()));
        }
        self.heartbeat_probed = reconciler.probed();
        if let Some(run) = &self.failsafe {
            self.pending_attributes.extend(run.attributes.iter().cloned());
        }
        tracing::info!(node = %self.config.node, lease = format!("{lease:x}"), "etcd let the lease expire during failsafe: node claimed again");
        Ok(true)
    }

    /// How many more operations may start now.
    fn capacity(&mut self) -> usize {
        let fresh = self.load.is_some_and(|(read, _)| read.elapsed() < Duration::from_secs(1));
        // A hollow node's operations cost the machine nothing: its load says nothing
        // of them (and a thousand hollow nodes would read it a thousand times a second).
        if self.config.exec.simulate.is_some() {
            self.load = Some((Instant::now(), None));
        } else if !fresh {
            self.load = Some((Instant::now(), load_percent()));
        }
        let load = self.load.and_then(|(_, load)| load);
        throttle::effective(self.limits, load).saturating_sub(self.running.len())
    }

    /// Whether this node's last fencing outcome (the answer the leader accepted) is a
    /// successful unfencing asked for while this session's lease held the node: after
    /// a restart that did not resume the lease, the node is unfenced again.
    fn unfenced(&self) -> bool {
        self.cache.unfenced_under(&self.config.node, self.session.lease)
    }

    /// Takes in this node's fencing: what an earlier agent recorded before the node's
    /// last successful fencing is void — forgotten, not written back — and so are the
    /// statuses of any node written before its own.
    fn take_fencing(&self, reconciler: &mut Reconciler, named: Option<&[String]>) {
        if let Some(fenced) = self.cache.fenced_revision(&self.config.node) {
            let void = reconciler.void_inherited(fenced);
            if !void.is_empty() {
                tracing::warn!(node = %self.config.node, resources = ?void, "forgetting what was recorded here before this node was fenced");
            }
        }
        // Only a fenced node's statuses can be void, and only a node whose fencing
        // records changed (`named`; all after a relist) can have new void ones: its
        // few are looked at, not the cluster's (at 1,000 nodes × 10,000 resources,
        // every agent scanning them all on each fencing record held the hollow process
        // for most of a second, issue 18).
        let fenced = self.cache.fenced_nodes().into_iter().filter(|(node, _)| named.is_none_or(|named| named.iter().any(|target| target == node)));
        for (node, _) in fenced {
            reconciler.cluster.retain_of_node(node, |id, _| !self.cache.is_void_status(node, id));
            let void: Vec<(String, String)> = reconciler
                .revisions
                .range((node.to_string(), String::new())..)
                .take_while(|((owner, _), _)| owner == node)
                .filter(|((_, id), _)| self.cache.is_void_status(node, id))
                .map(|(key, _)| key.clone())
                .collect();
            for key in void {
                reconciler.revisions.remove(&key);
            }
        }
        reconciler.unfenced = self.unfenced();
    }

    /// Starts the fencing requests addressed to this node that have no answer yet and
    /// are not running: levels in order, each device with its attempts, until a level
    /// succeeds entirely.
    fn start_fencing(&mut self) {
        let node = self.config.node.clone();
        let due: Vec<FenceRequestRecord> = self
            .cache
            .fence_requests()
            .iter()
            // Only a request whose key names its target (the cache drops any other) and
            // that names this node as executor.
            .filter(|(target, request)| request.target == **target && request.executor == node && (request.target != node || request.action == "on"))
            .map(|(_, request)| request)
            .filter(|request| self.cache.fence_answer(request).is_none())
            .filter(|request| !self.fencing_running.contains(&request.target))
            .cloned()
            .collect();
        for request in due {
            // Only the levels whose devices the leader allowed here (their location rules).
            let levels = crate::state::fencing::usable_levels(crate::state::fencing::fence_levels(&request.target, &self.objects), &request.devices);
            self.fencing_running.insert(request.target.clone());
            let executor = self.executor.clone();
            let done = self.fence_done_sender.clone();
            let by = node.clone();
            let metrics = self.config.metrics.clone();
            tracing::warn!(target = %request.target, action = %request.action, levels = levels.len(), "fencing");
            tokio::spawn(async move {
                let result = run_fencing(&executor, &request, &levels, &by).await;
                metrics.fencing(&result.target, &result.action, result.succeeded);
                let _ = done.send(result);
            });
        }
    }

    /// Applies the cleanups and refreshes asked of this node (`requests/<node>/`)
    /// that it has not applied yet; forgets those whose keys are gone.
    fn take_requests(&self, reconciler: &mut Reconciler) {
        let own = self.config.node.as_str();
        let stored: Vec<(&String, &RequestRecord)> =
            self.cache.requests().iter().filter(|((node, _), _)| node == own).map(|((_, id), request)| (id, request)).collect();
        reconciler.keep_requests(|id| stored.iter().any(|(stored, _)| stored.as_str() == id));
        for (id, request) in stored {
            if let RequestTaken::Applied(touched) = reconciler.take_request(id, request) {
                tracing::info!(request = %id, kind = request.kind.as_str(), by = %request.by, ?touched, "request applied");
            }
        }
    }

    /// Writes what changed: attributes agents set, statuses, statuses of resources no
    /// longer configured (deleted), the deletion of requests whose statuses are
    /// written, and the heartbeat once everything is probed. A
    /// write that fails for etcd is retried later; one refused for the lease ends the
    /// session.
    async fn flush(&mut self, reconciler: &mut Reconciler) -> Result<(), GuardedWriteError> {
        let node = self.config.node.clone();
        while let Some(update) = self.pending_attributes.first().cloned() {
            let key = self.keys.attribute(&node, &update.name);
            let forever = update.lifetime == AttributeLifetime::Forever;
            let value = update.value.as_ref().map(|value| serde_json::json!({ "value": value, "forever": forever }).to_string());
            if update.name.is_empty() || update.name.contains('/') {
                tracing::warn!(attribute = %update.name, "attribute names may not be empty or contain '/'; ignored");
            } else {
                // Its event, if the value changes, in the same transaction.
                let before = self.cache.attributes().get(&node).and_then(|attributes| attributes.get(&update.name)).map(|record| record.value.clone());
                let time = crate::runtime::now_usec();
                let mut also = Vec::new();
                if let Some(event) = attribute_event(&node, &update.name, before.as_deref(), update.value.as_deref(), time) {
                    also.push(event_write(&self.keys, &node, &PendingEvent { id: reconciler.event_ids.next(time, reconciler.incarnation), event })?);
                }
                let revision = self.store.guarded_write_with(&self.session, &key, value.clone(), !forever, also).await?;
                // Agents read their own update back at once (the next operation may
                // query it), before its watch event arrives.
                self.cache.apply_write(&key, value.as_ref().map(String::as_bytes), revision);
            }
            self.pending_attributes.remove(0);
        }
        // A status to delete is not written first: etcd refuses a transaction that puts
        // and deletes one key ("duplicate key given in txn request"), and a stop of a
        // deleted resource makes its status both dirty and gone.
        // Not while the spec is being read again: a resource just added back is not in
        // the targets yet.
        let gone: BTreeSet<String> = if self.spec_stale { BTreeSet::new() } else { reconciler.unconfigured().into_iter().collect() };
        self.write_promotion_intents(reconciler, &gone).await?;
        // The dirty ones only: a write costs the node what changed, not its every resource.
        let mut dirty: Vec<String> = reconciler
            .local
            .dirty()
            .iter()
            .filter_map(|id| reconciler.local.get_key_value(id))
            .filter(|(id, local)| local.status.role != ObservedRole::Unknown && !gone.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        // A probe that found nothing, where nothing was ever reported, is not written:
        // no status means "not running here" to every reader, and a thousand nodes each
        // writing a thousand such statuses were most of the store (issue 18). On a
        // joining node, the scheduler knows nothing of its resources until it has
        // probed them all: those it waits for (`probe_first`) are listed in the
        // heartbeat instead (`probed_ahead`), below.
        let awaited: BTreeSet<String> = if reconciler.probed() { BTreeSet::new() } else { reconciler.probe_first().map(str::to_string).collect() };
        let mut ahead = Vec::new();
        dirty.retain(|id| match reconciler.local.get_mut(id) {
            Some(mut local) if unreported_not_running(&self.cache, &self.keys, &node, id, &local) => {
                local.dirty = false;
                if awaited.contains(id) {
                    ahead.push(id.clone());
                }
                false
            }
            _ => true,
        });
        if !self.heartbeat_probed {
            self.note_probed_ahead(reconciler, ahead);
        }
        // Every changed status in as few requests as etcd allows, each with the events
        // its results made in its own transaction.
        let mut groups = Vec::new();
        let mut ids = Vec::new();
        for id in dirty.iter().chain(gone.iter()) {
            let Some(local) = reconciler.local.get(id) else { continue };
            let key = self.keys.status(&node, id);
            let value = if gone.contains(id) {
                None
            } else {
                Some(serde_json::to_string(&local.status).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: error.to_string() })?)
            };
            let mut group = vec![(key, value)];
            for event in &local.events {
                let (key, value) = event_write(&self.keys, &node, event)?;
                group.push((key, Some(value)));
            }
            groups.push(group);
            ids.push(id.clone());
        }
        // A request is deleted after the statuses it changed, in the same transaction
        // when they fit in one: once it is gone, its effect is in etcd.
        let finished = reconciler.finished_requests();
        groups.extend(finished.iter().map(|id| vec![(self.keys.request(&node, id), None)]));
        let (written, result) = self.store.guarded_writes(&self.session, groups).await;
        for id in finished.iter().take(written.len().saturating_sub(ids.len())) {
            reconciler.request_deleted(id);
            tracing::info!(request = %id, "request done");
        }
        for (id, revision) in ids.iter().zip(&written) {
            if gone.contains(id) {
                reconciler.forget(id);
            } else if let Some(mut local) = reconciler.local.get_mut(id) {
                local.dirty = false;
                // Dropped, not cleared: the room a start's events took stayed with
                // every started resource (1 KB each, issue 18).
                local.events = Vec::new();
                local.status_written(*revision, Instant::now());
            }
        }
        // A deletion not written is tried again (the retry waits for something dirty).
        for id in ids.iter().skip(written.len()).filter(|id| gone.contains(*id)) {
            if let Some(mut local) = reconciler.local.get_mut(id) {
                local.dirty = true;
            }
        }
        result?;
        let probed = reconciler.probed() && !self.spec_stale;
        self.write_activity(probed).await?;
        // What was probed ahead, while the rest is probed: the scheduler may start those
        // resources elsewhere now.
        if !probed && !self.heartbeat_probed && self.probed_ahead_unwritten {
            let heartbeat = self.heartbeat(false, reconciler.stopping_all);
            self.write_heartbeat(&heartbeat).await?;
            self.probed_ahead_unwritten = false;
            tracing::debug!(%node, probed_ahead = self.probed_ahead.len(), "heartbeat: probes the scheduler waits for, done");
        }
        if probed && !self.heartbeat_probed {
            let heartbeat = self.heartbeat(true, reconciler.stopping_all);
            self.write_heartbeat(&heartbeat).await?;
            self.heartbeat_probed = true;
            self.probed_ahead.clear();
            self.probed_ahead_unwritten = false;
            tracing::info!(%node, resources = reconciler.local.len(), "every resource probed");
            // Start-up is complete (systemd's watchdog starts counting now); after a
            // self-fencing, the status says the node is back.
            self.config.notifier.ready(&format!("node {node} claimed, {} resources probed", reconciler.local.len()));
        }
        Ok(())
    }

    /// Writes each status carrying a promotion's intent on its own, guarded by the
    /// mod revisions of the other nodes' statuses of its clone that the promotion was
    /// decided on: if one changed (another node may have promoted meanwhile), the
    /// intent is dropped and decided again on the fresher view. Promotion is thus a
    /// compare-and-set across nodes, not a check-then-act.
    async fn write_promotion_intents(&mut self, reconciler: &mut Reconciler, gone: &BTreeSet<String>) -> Result<(), GuardedWriteError> {
        let node = self.config.node.clone();
        // An intent to write is dirty.
        let guarded: Vec<(String, PromotionBasis)> = reconciler
            .local
            .dirty()
            .iter()
            .filter(|id| !gone.contains(*id))
            .filter_map(|id| reconciler.promotion_guard(id).map(|basis| (id.clone(), basis.clone())))
            .collect();
        for (id, basis) in guarded {
            let Some(local) = reconciler.local.get(&id) else { continue };
            let key = self.keys.status(&node, &id);
            let value = serde_json::to_string(&local.status).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: error.to_string() })?;
            let also = local.events.iter().map(|event| event_write(&self.keys, &node, event)).collect::<Result<Vec<_>, _>>()?;
            let unchanged: Vec<(String, i64)> = basis.iter().map(|((other, other_id), revision)| (self.keys.status(other, other_id), *revision)).collect();
            match self.store.guarded_write_unless_changed(&self.session, &key, value, also, &unchanged).await? {
                Some(revision) => reconciler.intent_written(&id, revision, Instant::now()),
                None => {
                    tracing::info!(resource = %id, "promotion not recorded: another node's status of the clone changed; deciding again");
                    reconciler.intent_refused(&id);
                }
            }
        }
        Ok(())
    }

    /// Rewrites the node's activity record when it changed, at most every
    /// `ACTIVITY_PERIOD` (a burst changes the counts with every operation).
    async fn write_activity(&mut self, probed: bool) -> Result<(), GuardedWriteError> {
        // The first record marks the node as seen by the cluster (`Reports::seen`): not
        // before the node has said what runs on it.
        if self.activity_written.is_none() && !probed {
            return Ok(());
        }
        let load = self.load.and_then(|(_, load)| load);
        let activity = NodeActivity {
            node: self.config.node.clone(),
            running: u32::try_from(self.running.len()).unwrap_or(u32::MAX),
            queued: u32::try_from(self.queued).unwrap_or(u32::MAX),
            limit: u32::try_from(throttle::effective(self.limits, load)).unwrap_or(u32::MAX),
            self_fencings: self.self_fencings.clone(),
        };
        let due = match &self.activity_written {
            None => true,
            Some((written, at)) => activity_worth_writing(written, &activity) && at.elapsed() >= ACTIVITY_PERIOD,
        };
        if !due {
            return Ok(());
        }
        let key = self.keys.node_activity(&self.config.node);
        let value = serde_json::to_string(&activity).map_err(|error| StoreError::Corrupt { key: key.clone(), reason: error.to_string() })?;
        self.store.guarded_write(&self.session, &key, Some(value), false).await?;
        self.activity_written = Some((activity, Instant::now()));
        Ok(())
    }

    async fn write_heartbeat(&self, heartbeat: &NodeHeartbeat) -> Result<i64, GuardedWriteError> {
        let value = serde_json::to_string(heartbeat)
            .map_err(|error| StoreError::Corrupt { key: self.keys.node_lease(&self.config.node), reason: error.to_string() })?;
        self.store.guarded_write(&self.session, &self.keys.node_lease(&self.config.node), Some(value), true).await
    }

    /// The longest `self_fence` takes when nothing hangs: cancelled operations drain
    /// within the kill grace, the stops run until `deadline` (at least 100 ms) and are
    /// killed within the grace, and the lease's revocation is one etcd request.
    fn self_fence_budget(&self, deadline: Instant) -> Duration {
        let stops = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        self.executor_grace() + stops + self.executor_grace() + crate::store::node::AGENT_REQUEST_TIMEOUT
    }

    /// Takes in a whole spec: what to probe, whether to unfence, the operation limit,
    /// and the fence devices and topology.
    fn take_spec(&mut self, reconciler: &mut Reconciler, objects: Vec<crate::api::Object>) {
        let targets = probe_targets_by_id(&objects);
        let targets = match &self.config.shared_decodes {
            Some(shared) => shared.probe_targets(targets),
            None => Arc::new(targets),
        };
        reconciler.set_targets(targets);
        reconciler.must_unfence = crate::state::fencing::unfencing_required(&objects);
        self.limits = throttle::limits(&objects, &self.config.node, cores());
        // The resources live on in the probe targets (and the cache): a copy of every
        // one here was a tenth of a hollow node's memory at 10,000 resources. Shrunk
        // once collected: collected in place, the few objects left kept the whole
        // listing's buffer (8 MB per hollow node at 10,000 resources, issue 18).
        let mut kept: Vec<crate::api::Object> = objects.into_iter().filter(|object| object.kind() != Kind::Resource).collect();
        kept.shrink_to_fit();
        self.objects = kept;
        self.spec_retake = false;
    }

    fn executor_grace(&self) -> Duration {
        (self.config.lease_ttl / 8).clamp(Duration::from_millis(100), Duration::from_secs(2)) + Duration::from_millis(200)
    }

    /// Takes in one watch event: the cache first, then what the reconciler keeps of
    /// it (its assignment, the statuses of the cluster, whether this node is
    /// unfenced), and whether the spec must be taken in again.
    fn take_event(&mut self, reconciler: &mut Reconciler, event: WatchEvent) {
        if let WatchEvent::Restarted { prefix, .. } = &event {
            self.listed.insert(prefix.clone());
        }
        let changes = self.cache.apply_event(&event);
        for key in &changes.undecodable {
            let reason = self.cache.undecodable().get(key).map_or("", String::as_str);
            tracing::warn!(%key, %reason, "skipping a stored value that does not decode");
        }
        let own = self.config.node.clone();
        let everything = changes.restarted;
        let mut plan = everything;
        let mut fencing = everything;
        let mut fenced_targets: Vec<String> = Vec::new();
        for section in &changes.sections {
            match section {
                Section::Object(key) => {
                    self.spec_stale = true;
                    self.spec_retake |= AGENT_READS.contains(&key.kind);
                    self.spec_unsettled_since = None;
                }
                Section::SpecVersion | Section::IntentCommit(_) => {
                    self.spec_stale = true;
                    self.spec_unsettled_since = None;
                }
                // The watch is on a prefix: `plans/n1` also sees `plans/n10`. Only this
                // node's own key counts.
                Section::Plan(node) if *node == own => plan = true,
                Section::Status { node, id } => {
                    let key = (node.clone(), id.clone());
                    match self.cache.statuses().get(&key) {
                        // Written before its node's last fencing: void.
                        Some(_) if self.cache.is_void_status(node, id) => {
                            reconciler.revisions.remove(&key);
                            reconciler.cluster.remove(&key);
                        }
                        Some(status) => {
                            reconciler.cluster.insert(key.clone(), Arc::clone(status));
                            reconciler.note_revision(key, self.cache.mod_revision(&self.keys.status(node, id)));
                        }
                        // A status replaced by one this agent cannot read (a newer
                        // version's, say) keeps its last readable form: forgetting it
                        // would let an exclusive resource start, or a promotion pass
                        // promotedMax, beside a copy that may still run.
                        // Its revision follows (a promotion's intent compares it).
                        None if self.cache.undecodable().contains_key(&self.keys.status(node, id)) => {
                            reconciler.note_revision(key, self.cache.mod_revision(&self.keys.status(node, id)));
                        }
                        None => {
                            reconciler.revisions.remove(&key);
                            reconciler.cluster.remove(&key);
                        }
                    }
                }
                // Only an answer or a confirmation moves a node's fenced revision.
                Section::FenceAnswer(target) | Section::FenceConfirmation(target) => {
                    fencing = true;
                    fenced_targets.push(target.clone());
                }
                Section::FenceRequest(_) | Section::FenceResult { .. } => fencing = true,
                _ => {}
            }
        }
        if everything {
            self.spec_stale = true;
            self.spec_retake = true;
            // Statuses that do not decode keep their last readable form (as above).
            let unreadable: Vec<((String, String), Arc<ResourceStatus>)> = reconciler
                .cluster
                .iter_shared()
                .filter(|((node, id), _)| self.cache.undecodable().contains_key(&self.keys.status(node, id)))
                .map(|(key, status)| (key.clone(), Arc::clone(status)))
                .collect();
            let readable = self.cache.statuses().iter().map(|(key, status)| (key.clone(), Arc::clone(status)));
            reconciler.cluster.replace_all(readable.chain(unreadable));
            reconciler.revisions.clear();
            let read: Vec<((String, String), Option<i64>)> =
                reconciler.cluster.iter().map(|((node, id), _)| ((node.clone(), id.clone()), self.cache.mod_revision(&self.keys.status(node, id)))).collect();
            for (key, revision) in read {
                reconciler.note_revision(key, revision);
            }
        }
        if plan {
            let key = self.keys.plan(&own);
            match self.cache.plans().get(&own) {
                Some(assignment) if assignment.node == own => {
                    reconciler.assignment = Some(assignment.clone());
                    // Probes done before the scheduler waited for them count too.
                    self.probed_ahead_recheck = true;
                }
                Some(assignment) => tracing::error!(node = %assignment.node, "ignoring an assignment for another node under this node's key"),
                // A value that does not decode is not a decision to stop everything:
                // the previous assignment stands (the cache logged the key).
                None if self.cache.undecodable().contains_key(&key) => {}
                None => reconciler.assignment = None,
            }
        }
        if fencing || everything {
            // After a relist every fenced node is looked at; otherwise those the
            // event's answers and confirmations name.
            self.take_fencing(reconciler, (!everything).then_some(fenced_targets.as_slice()));
        }
    }

    /// Node attributes set at run time on this node, by name.
    fn attributes(&self) -> BTreeMap<String, String> {
        self.cache
            .attributes()
            .get(&self.config.node)
            .map(|attributes| attributes.iter().map(|(name, record)| (name.clone(), record.value.clone())).collect())
            .unwrap_or_default()
    }

    /// The request for a step: the node's attributes are what agents set at run
    /// time, then the configured ones (`Node.spec.attributes` via the assignment, then
    /// the agent's command line).
    fn request(&self, reconciler: &Reconciler, step: &Step) -> OperationRequest {
        let mut node_attributes = self.attributes();
        let configured = reconciler.assignment.iter().flat_map(|assignment| assignment.attributes.iter()).chain(self.config.attributes.iter());
        for (key, value) in configured {
            node_attributes.entry(key.clone()).or_insert_with(|| value.clone());
        }
        OperationRequest {
            resource: step.id.clone(),
            agent: step.definition.agent.clone(),
            action: step.action.verb().to_string(),
            interval_ms: step.action.interval_ms(),
            timeout: step.timeout,
            params: step.definition.params.clone(),
            secret_files: step.definition.secret_files.clone(),
            meta: step.definition.meta.clone(),
            node: self.config.node.clone(),
            node_attributes,
            state_dir: self.config.state_dir.clone(),
        }
    }

    fn spawn(&mut self, reconciler: &mut Reconciler, step: Step) {
        if step.action == Action::Announce {
            // Not an agent run: the notice is published with the next status write.
            reconciler.announce(&step, Instant::now());
            return;
        }
        if step.action == Action::Intend {
            // Not an agent run: the pending operation is written before it runs.
            reconciler.intend(&step);
            return;
        }
        let request = self.request(reconciler, &step);
        tracing::debug!(resource = %step.id, action = ?step.action, "running");
        reconciler.begin(&step);
        let (cancel, cancelled) = oneshot::channel::<()>();
        self.running.insert(step.id.clone(), cancel);
        let executor = self.executor.clone();
        let results = self.result_sender.clone();
        tokio::spawn(async move {
            let result = executor
                .run_until(&request, async {
                    // A dropped sender (the session ended) cancels as well.
                    let _ = cancelled.await;
                })
                .await;
            let _ = results.send((step, result));
        });
    }

    /// The node as a scrape shows it (`metrics::node`).
    fn node_view(&self, reconciler: &Reconciler, shutting_down: bool) -> NodeView {
        let resource = |name: &str| self.cache.objects().get(&ObjectKey { kind: Kind::Resource, name: name.into() }).map(|stored| &*stored.object);
        let facts = NodeFacts {
            node: &self.config.node,
            probed: self.heartbeat_probed,
            shutting_down,
            assignment: reconciler.assignment.as_ref(),
            objects: &self.objects,
            resource: &resource,
        };
        node_view(facts, reconciler.local.values().map(|local| (&local.status, local.busy.map(Action::verb))))
    }

    fn finish(&mut self, reconciler: &mut Reconciler, step: Step, result: OperationResult) {
        self.running.remove(&step.id);
        record_operation(&self.config.metrics, &step, &result);
        if result.status != ExecStatus::Done {
            tracing::warn!(resource = %step.id, action = ?step.action, status = ?result.status, rc = result.rc, reason = ?result.exit_reason, "operation did not complete");
        } else {
            tracing::info!(resource = %step.id, action = ?step.action, rc = result.rc, took = ?result.duration, "operation done");
        }
        for update in &result.attributes {
            if update.node != self.config.node {
                tracing::warn!(attribute = %update.name, node = %update.node, "an agent set an attribute of another node; ignored");
                continue;
            }
            self.pending_attributes.push(update.clone());
        }
        reconciler.record(&step, &result, Instant::now(), crate::runtime::now_usec());
    }
}

/// The agent's `--attribute`s as run-time attributes of its node, bound to its lease:
/// proposals, below the administrator's. A `#` name (the cluster's) other than
/// `#health…` is left out with a warning: the scheduler would ignore it.
fn proposed_attributes(config: &AgentConfig) -> Vec<AttributeUpdate> {
    config
        .attributes
        .iter()
        .filter(|(name, _)| {
            let reserved = name.starts_with('#') && !name.starts_with("#health");
            if reserved {
                tracing::warn!(attribute = %name, "the cluster's attribute names (starting with '#') are not an agent's to set; ignored");
            }
            !reserved
        })
        .map(|(name, value)| AttributeUpdate { name: name.clone(), node: config.node.clone(), lifetime: AttributeLifetime::Reboot, value: Some(value.clone()) })
        .collect()
}

/// Runs one fencing request through its levels.
async fn run_fencing(executor: &Executor, request: &FenceRequestRecord, levels: &[Vec<crate::state::fencing::DeviceStep>], by: &str) -> FenceResultRecord {
    let mut attempts = Vec::new();
    let mut succeeded = false;
    if levels.is_empty() {
        attempts.push("no fence device can fence this node".to_string());
    }
    'levels: for (index, level) in levels.iter().enumerate() {
        for step in level {
            if !step.delay.is_zero() {
                tokio::time::sleep(step.delay).await;
            }
            let fence = FenceRequest {
                device: step.device.clone(),
                agent: step.agent.clone(),
                action: request.action.clone(),
                target: Some(request.target.clone()),
                plug: Some(step.plug.clone()),
                params: step.params.clone(),
                secret_files: step.secret_files.clone(),
                timeout: step.timeout,
            };
            let mut device_ok = false;
            for attempt in 1..=step.attempts {
                let result = executor.fence(&fence).await;
                let ok = result.succeeded(&request.action);
                attempts.push(format!(
                    "level {} device {} attempt {attempt}: {}",
                    index + 1,
                    step.device,
                    if ok {
                        "ok".to_string()
                    } else {
                        format!("failed ({:?}, rc {}) {}", result.status, result.rc, result.stderr.lines().last().unwrap_or_default())
                    }
                ));
                if ok {
                    device_ok = true;
                    break;
                }
            }
            if !device_ok {
                continue 'levels;
            }
        }
        succeeded = true;
        break;
    }
    let finished = epoch_now();
    if succeeded {
        tracing::warn!(target = %request.target, "fencing succeeded");
    } else {
        tracing::error!(target = %request.target, ?attempts, "fencing failed");
    }
    FenceResultRecord { request: request.id, target: request.target.clone(), action: request.action.clone(), succeeded, by: by.to_string(), finished, attempts }
}

/// The machine's cores, for the default action limit.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The 1-minute load average in percent of the cores, if `/proc/loadavg` can be read.
fn load_percent() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(load * 100.0 / cores() as f64)
}

/// How long before the lease could expire the agent must be done stopping.
fn self_fence_margin(ttl: Duration) -> Duration {
    ttl / 4
}

/// The next scrape asking for the node's view; never, without a channel (or once it
/// is closed).
async fn next_view_request(views: &mut Option<mpsc::Receiver<ViewRequest>>) -> Option<ViewRequest> {
    match views {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Counts an agent operation that ran (`pacer_agent_operation_duration_seconds`).
fn record_operation(metrics: &AgentMetrics, step: &Step, result: &OperationResult) {
    let operation = if step.action == Action::Probe { "probe" } else { step.action.verb() };
    metrics.operation(&step.definition.agent.to_string(), operation, result.status, result.rc, result.duration);
}

async fn sleep_until_opt(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_listed_after_a_quiet_wait_unless_an_apply_rolls_forward() {
        let now = Instant::now();
        let ago = |secs: u64| now.checked_sub(Duration::from_secs(secs));
        // A quiet gap of six seconds: listed for an object written by hand, not during
        // a large apply's roll-forward.
        assert!(unsettled_too_long(false, ago(6), ago(6), now));
        assert!(!unsettled_too_long(true, ago(6), ago(6), now));
        // Neither before the wait; both after the limit.
        assert!(!unsettled_too_long(false, ago(4), ago(30), now));
        assert!(unsettled_too_long(true, ago(1), ago(61), now));
        assert!(!unsettled_too_long(false, None, None, now));
    }

    fn activity(running: u32, queued: u32) -> NodeActivity {
        NodeActivity { node: "n1".into(), running, queued, limit: 4, self_fencings: Vec::new() }
    }

    /// Only a probe that found nothing, of a primitive outside any clone, with nothing
    /// else to tell, goes unwritten.
    #[test]
    fn only_an_empty_probe_of_a_plain_primitive_goes_unwritten() {
        let probe = |rc: i32| serde_json::json!({"operation": "monitor", "intervalMs": 0, "callId": 1, "rc": rc, "expectedRc": 7, "status": "Done"});
        let status = |clone: Option<&str>, role: &str, history: Vec<serde_json::Value>, failures: u32| -> ResourceStatus {
            let value = serde_json::json!({
                "id": "a", "name": "a", "clone": clone, "node": "n1", "role": role,
                "definition": {"agent": "ocf:heartbeat:Dummy"}, "history": history, "failures": failures,
            });
            serde_json::from_value(value).expect("a status")
        };
        assert!(says_only_not_running(&status(None, "Stopped", vec![probe(7)], 0)));
        assert!(!says_only_not_running(&status(Some("a-clone"), "Stopped", vec![probe(7)], 0)), "a clone instance's probe is written");
        assert!(!says_only_not_running(&status(None, "Stopped", vec![probe(5)], 0)), "not installed is written");
        assert!(!says_only_not_running(&status(None, "Stopped", vec![probe(7)], 1)), "a failure is written");
        assert!(!says_only_not_running(&status(None, "Started", vec![probe(0)], 0)), "running is written");
        let stop = serde_json::json!({"operation": "stop", "intervalMs": 0, "callId": 2, "rc": 0, "expectedRc": 0, "status": "Done"});
        assert!(!says_only_not_running(&status(None, "Stopped", vec![stop], 0)), "a stop is written");
    }

    #[test]
    fn an_idle_node_does_not_rewrite_its_activity_for_every_monitor() {
        // A monitor starting and ending on an idle node: nothing worth a write.
        assert!(!activity_worth_writing(&activity(0, 0), &activity(1, 0)));
        assert!(!activity_worth_writing(&activity(0, 0), &activity(0, 0)));
        // A burst waiting, draining, and the node going quiet: each is written.
        assert!(activity_worth_writing(&activity(0, 0), &activity(4, 96)));
        assert!(activity_worth_writing(&activity(4, 96), &activity(4, 0)));
        assert!(activity_worth_writing(&activity(4, 0), &activity(0, 0)));
        // A new self-fencing is news.
        let mut fenced = activity(0, 0);
        fenced.self_fencings.push(SelfFencing { time: 1, cause: "no lease renewal confirmed".into() });
        assert!(activity_worth_writing(&activity(0, 0), &fenced));
    }
}
