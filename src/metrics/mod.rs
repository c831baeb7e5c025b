//! Prometheus metrics (`--metrics-listen ADDR`: `/metrics` on the scheduler and on
//! every node agent).
//!
//! Two kinds, kept apart:
//! - Pacer's own (`pacer_*`): counters and histograms recorded where things happen —
//!   the leader's turns and elections (`SchedulerMetrics`), the agents' operations and
//!   fencing (`AgentMetrics`), etcd round trips and lease renewals (`store::StoreMetrics`).
//!   Counters are atomics, histograms take a lock held for microseconds: recording
//!   costs a decision or an operation nothing measurable.
//! - The cluster's state, under the names and labels of ClusterLabs' ha_cluster_exporter
//!   (`ha_cluster_pacemaker_*`), so its Grafana dashboards work unchanged: computed at
//!   scrape time from what the component already holds, never copied into gauges. The
//!   leader publishes each turn's snapshot and plan (`cluster::ClusterState`, moved, not
//!   copied); an agent is asked for its own node's view (`node::NodeView`) by the scrape.
//!   A standby scheduler exports only its own metrics (`pacer_scheduler_leader 0`).
//!
//! - `server.rs`: the HTTP endpoint (axum), and `render` (prometheus-client's encoders:
//!   OpenMetrics when the scraper asks for it, else the classic text format promtool
//!   reads). Rendering runs on the blocking pool: a scrape never holds a worker the
//!   leader's loop or the agent's needs.
//! - `cluster.rs`, `node.rs`: the ha_cluster families (pure, unit-tested).
//!
//! Alert deliveries (`alerts`) are counted and timed by alert and result on the
//! leading scheduler.

pub mod cluster;
pub mod node;
pub mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::{mpsc, oneshot};

use crate::api::records::ExecStatus;
use crate::scheduler::plan::Action;
use crate::store::Store;
pub use cluster::{ClusterCollector, ClusterState};
pub use node::{NodeCollector, NodeView};
pub use server::{Format, bind, render, serve};

/// A label set of one label whose value is fixed text.
type One = [(&'static str, &'static str); 1];

/// A label set of three labels with values from the data.
type Three = [(&'static str, String); 3];

/// Histograms by label set, each with the buckets its constructor gives.
type Histograms<S> = Family<S, Histogram, fn() -> Histogram>;

/// Buckets for how long a scheduler turn takes, in seconds: a millisecond for a small
/// cluster to tens of seconds for 10,000 resources on 1,000 nodes.
fn decision_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// Buckets for how long an agent operation takes, in seconds: a probe of a Dummy
/// takes milliseconds, a database's start minutes.
fn operation_buckets() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
}

/// Buckets for how long one alert delivery takes, in seconds: a webhook on the LAN
/// answers in milliseconds, a mail agent may take seconds, a receiver that hangs its
/// whole timeout (30 s by default).
fn delivery_buckets() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

/// The build, as an info metric (`pacer_build_info{version}`).
fn register_build(registry: &mut Registry) {
    registry.register("pacer_build", "The Pacer build this process runs", Info::new([("version", env!("CARGO_PKG_VERSION"))]));
}

/// What a scheduler instance measures, and the cluster state it exports while it leads.
#[derive(Debug)]
pub struct SchedulerMetrics {
    leader: Gauge,
    term: Gauge,
    leadership: Family<One, Counter>,
    decisions: Family<One, Counter>,
    decision_duration: Histogram,
    actions: Family<[(&'static str, String); 1], Counter>,
    last_actions: Gauge,
    alert_deliveries: Family<[(&'static str, String); 2], Counter>,
    alert_delivery_duration: Histograms<[(&'static str, String); 1]>,
    /// The latest turn's snapshot and plan while this instance leads; `None` otherwise.
    /// Held for a pointer swap only: scrapes render from their own `Arc`.
    state: Mutex<Option<Arc<ClusterState>>>,
    /// The host this instance runs on: the node of that name is the DC while it leads.
    host: String,
    /// The decision loop's last healthy turn (`/healthz`).
    progress: Arc<crate::notify::Progress>,
}

/// How a scheduler turn ended, for `pacer_scheduler_decisions_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnOutcome {
    /// A decision that changed assignments (written, and recorded in the history).
    New,
    /// The same decision as before: nothing written.
    Unchanged,
    /// etcd failed; retried.
    Failed,
}

impl TurnOutcome {
    fn as_str(self) -> &'static str {
        match self {
            TurnOutcome::New => "new",
            TurnOutcome::Unchanged => "unchanged",
            TurnOutcome::Failed => "failed",
        }
    }
}

/// Why an instance stopped leading, for `pacer_scheduler_leadership_changes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// Its lease went half its TTL unrenewed, or a guarded write failed.
    Deposed,
    /// Shut down (SIGTERM): it gave the lease up.
    Resigned,
}

impl Default for SchedulerMetrics {
    fn default() -> SchedulerMetrics {
        SchedulerMetrics {
            leader: Gauge::default(),
            term: Gauge::default(),
            leadership: Family::default(),
            decisions: Family::default(),
            decision_duration: decision_buckets(),
            actions: Family::default(),
            last_actions: Gauge::default(),
            alert_deliveries: Family::default(),
            alert_delivery_duration: Family::new_with_constructor(delivery_buckets),
            state: Mutex::new(None),
            host: String::new(),
            progress: Arc::default(),
        }
    }
}

impl SchedulerMetrics {
    /// The metrics of an instance running on `host`.
    pub fn new(host: String) -> SchedulerMetrics {
        SchedulerMetrics { host, ..SchedulerMetrics::default() }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The loop's progress, which its `Watchdog` marks and `/healthz` reads.
    pub fn progress(&self) -> Arc<crate::notify::Progress> {
        self.progress.clone()
    }

    /// This instance won the election for `term`.
    pub fn elected(&self, term: i64) {
        self.leader.set(1);
        self.term.set(term);
        self.leadership.get_or_create(&[("change", "elected")]).inc();
    }

    /// This instance no longer leads: it stops exporting the cluster's state.
    pub fn stepped_down(&self, why: Stepped) {
        self.leader.set(0);
        self.term.set(0);
        let change = match why {
            Stepped::Deposed => "deposed",
            Stepped::Resigned => "resigned",
        };
        self.leadership.get_or_create(&[("change", change)]).inc();
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// A turn took `took` and ended `outcome`; a new decision's actions are counted by
    /// verb (`Plan::live_actions`).
    pub fn turn<'a>(&self, took: Duration, outcome: TurnOutcome, actions: impl Iterator<Item = &'a Action>) {
        self.decision_duration.observe(took.as_secs_f64());
        self.decisions.get_or_create(&[("outcome", outcome.as_str())]).inc();
        if outcome == TurnOutcome::New {
            let mut count = 0;
            for action in actions {
                self.actions.get_or_create(&[("action", action.verb.to_lowercase())]).inc();
                count += 1;
            }
            self.last_actions.set(count);
        }
    }

    /// One alert delivery ended (`delivered` or given up on) after `took`.
    pub fn alert_delivery(&self, alert: &str, delivered: bool, took: Duration) {
        let result = if delivered { "success" } else { "failure" };
        self.alert_deliveries.get_or_create(&[("alert", alert.to_string()), ("result", result.to_string())]).inc();
        if !took.is_zero() {
            self.alert_delivery_duration.get_or_create(&[("alert", alert.to_string())]).observe(took.as_secs_f64());
        }
    }

    /// The state the leader's latest turn decided on, for the next scrapes. The one
    /// it replaces is dropped here, or by the last scrape still rendering it.
    pub fn publish(&self, state: ClusterState) {
        let state = Arc::new(state);
        let previous = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(state);
        drop(previous);
    }

    /// The cluster-state families of this scrape: the latest published state, if
    /// this instance leads.
    fn collector(&self) -> Option<Box<dyn Collector>> {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()?;
        Some(Box::new(ClusterCollector(state)))
    }

    /// The registry of a scheduler process: its own metrics and its store's.
    pub fn registry(self: &Arc<Self>, store: &Store) -> Registry {
        let mut registry = Registry::default();
        register_build(&mut registry);
        registry.register("pacer_scheduler_leader", "Whether this scheduler instance leads (1) or stands by (0)", self.leader.clone());
        registry.register(
            "pacer_scheduler_term",
            "The election term this instance leads in (the election key's create revision); 0 when standing by",
            self.term.clone(),
        );
        registry.register(
            "pacer_scheduler_leadership_changes",
            "Times this instance became leader (elected) or stopped leading (deposed: its lease ran out or a guarded write failed; resigned: shut down)",
            self.leadership.clone(),
        );
        registry.register(
            "pacer_scheduler_decisions",
            "Scheduler turns by outcome: new (assignments written), unchanged (nothing to write), failed (etcd failed; retried)",
            self.decisions.clone(),
        );
        registry.register_with_unit(
            "pacer_scheduler_decision_duration",
            "How long a scheduler turn took: snapshot, schedule, fencing, writes",
            Unit::Seconds,
            self.decision_duration.clone(),
        );
        registry.register("pacer_scheduler_actions", "Actions of new decisions, by verb (start, stop, move, recover, promote, ...); an action still pending is counted again by each new decision that carries it", self.actions.clone());
        registry.register("pacer_scheduler_last_decision_actions", "Actions in the latest new decision", self.last_actions.clone());
        registry.register(
            "pacer_alert_deliveries",
            "Alert deliveries by alert and result: success, or failure (given up after the receiver's retries and timeout, or events trimmed before delivery)",
            self.alert_deliveries.clone(),
        );
        registry.register_with_unit(
            "pacer_alert_delivery_duration",
            "How long one alert delivery took, by alert (all the calls of an exec receiver; all the attempts of a webhook)",
            Unit::Seconds,
            self.alert_delivery_duration.clone(),
        );
        store.metrics().register(&mut registry);
        registry
    }
}

/// A scrape's request for the agent's view of its node, answered by the agent's loop.
pub type ViewRequest = oneshot::Sender<NodeView>;

/// How long a scrape waits for the agent's loop to describe its node. The loop answers
/// between two of its steps; it is away longer only while it claims its node again or
/// self-fences, and then the node's families are left out of that scrape.
const VIEW_WAIT: Duration = Duration::from_secs(2);

/// What a node agent measures.
#[derive(Debug)]
pub struct AgentMetrics {
    operations: Histograms<Three>,
    fencing: Family<Three, Counter>,
    self_fencings: Counter,
    claimed: Gauge,
    views: mpsc::Sender<ViewRequest>,
    /// Taken once by the agent (`take_view_requests`).
    view_requests: Mutex<Option<mpsc::Receiver<ViewRequest>>>,
    /// The agent loop's last healthy turn (`/healthz`).
    progress: Arc<crate::notify::Progress>,
}

impl Default for AgentMetrics {
    fn default() -> AgentMetrics {
        let (views, view_requests) = mpsc::channel(4);
        AgentMetrics {
            operations: Family::new_with_constructor(operation_buckets),
            fencing: Family::default(),
            self_fencings: Counter::default(),
            claimed: Gauge::default(),
            views,
            view_requests: Mutex::new(Some(view_requests)),
            progress: Arc::default(),
        }
    }
}

impl AgentMetrics {
    /// The loop's progress, which its `Watchdog` marks and `/healthz` reads.
    pub fn progress(&self) -> Arc<crate::notify::Progress> {
        self.progress.clone()
    }

    /// An agent operation ended: its duration by agent (`ocf:heartbeat:Dummy`),
    /// operation (`probe`, `monitor`, `start`, ...) and result (`result_label`).
    pub fn operation(&self, agent: &str, operation: &str, status: ExecStatus, rc: i32, took: Duration) {
        let labels = [("agent", agent.to_string()), ("operation", operation.to_string()), ("result", result_label(status, rc).to_string())];
        self.operations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A fencing this node ran ended.
    pub fn fencing(&self, target: &str, action: &str, succeeded: bool) {
        let result = if succeeded { "succeeded" } else { "failed" };
        self.fencing.get_or_create(&[("target", target.to_string()), ("action", action.to_string()), ("result", result.to_string())]).inc();
    }

    /// The agent stopped everything for want of a lease renewal.
    pub fn self_fenced(&self) {
        self.self_fencings.inc();
    }

    /// Whether the agent holds its node (a session runs).
    pub fn set_claimed(&self, claimed: bool) {
        self.claimed.set(i64::from(claimed));
    }

    /// The channel the agent's loop answers scrapes on; `None` after the first call.
    pub fn take_view_requests(&self) -> Option<mpsc::Receiver<ViewRequest>> {
        self.view_requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// The node's families of this scrape, if the agent's loop answers in time.
    async fn collector(&self) -> Option<Box<dyn Collector>> {
        let (reply, answer) = oneshot::channel();
        self.views.try_send(reply).ok()?;
        let view = tokio::time::timeout(VIEW_WAIT, answer).await.ok()?.ok()?;
        Some(Box::new(NodeCollector(view)))
    }

    /// The registry of an agent process: its own metrics and its store's.
    pub fn registry(self: &Arc<Self>, store: &Store) -> Registry {
        let mut registry = Registry::default();
        register_build(&mut registry);
        registry.register_with_unit(
            "pacer_agent_operation_duration",
            "How long the resource agents' operations this node ran took, by agent, operation and result (ok, not_running, err_generic, ..., or timeout, cancelled, not_installed, error)",
            Unit::Seconds,
            self.operations.clone(),
        );
        registry.register("pacer_agent_fencing", "Fencing this node ran for the leader, by target, action and result", self.fencing.clone());
        registry.register(
            "pacer_agent_self_fencings",
            "Times this agent stopped every resource because its lease went half its TTL without a renewal",
            self.self_fencings.clone(),
        );
        registry.register("pacer_agent_node_claimed", "Whether this agent holds its node's lease (1) or is claiming it (0)", self.claimed.clone());
        store.metrics().register(&mut registry);
        registry
    }
}

/// The result label of an operation: the OCF exit code's name when the agent ran to
/// the end, else how it did not (Pacemaker's two axes, folded into one label with a
/// bounded set of values).
pub fn result_label(status: ExecStatus, rc: i32) -> &'static str {
    use crate::api::ocf;
    match status {
        ExecStatus::Done => match rc {
            ocf::OK => "ok",
            ocf::ERR_GENERIC => "err_generic",
            ocf::ERR_ARGS => "err_args",
            ocf::UNIMPLEMENTED => "unimplemented",
            ocf::INSUFFICIENT_PRIV => "insufficient_priv",
            ocf::NOT_INSTALLED => "not_installed",
            ocf::NOT_CONFIGURED => "not_configured",
            ocf::NOT_RUNNING => "not_running",
            ocf::RUNNING_PROMOTED => "running_promoted",
            ocf::FAILED_PROMOTED => "failed_promoted",
            ocf::DEGRADED => "degraded",
            ocf::DEGRADED_PROMOTED => "degraded_promoted",
            _ => "other",
        },
        ExecStatus::Timeout => "timeout",
        ExecStatus::Cancelled => "cancelled",
        ExecStatus::NotInstalled => "agent_not_installed",
        _ => "error",
    }
}

/// What a `/metrics` endpoint exports: the process's registry, and the state its
/// component computes at scrape time.
pub enum Exporter {
    Scheduler { registry: Registry, metrics: Arc<SchedulerMetrics> },
    Agent { registry: Registry, metrics: Arc<AgentMetrics> },
}

impl Exporter {
    fn registry(&self) -> &Registry {
        match self {
            Exporter::Scheduler { registry, .. } | Exporter::Agent { registry, .. } => registry,
        }
    }

    fn progress(&self) -> Arc<crate::notify::Progress> {
        match self {
            Exporter::Scheduler { metrics, .. } => metrics.progress(),
            Exporter::Agent { metrics, .. } => metrics.progress(),
        }
    }

    async fn collector(&self) -> Option<Box<dyn Collector>> {
        match self {
            Exporter::Scheduler { metrics, .. } => metrics.collector(),
            Exporter::Agent { metrics, .. } => metrics.collector().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_a_bounded_set_of_names() {
        assert_eq!(result_label(ExecStatus::Done, 0), "ok");
        assert_eq!(result_label(ExecStatus::Done, 7), "not_running");
        assert_eq!(result_label(ExecStatus::Done, 8), "running_promoted");
        assert_eq!(result_label(ExecStatus::Done, 42), "other");
        assert_eq!(result_label(ExecStatus::Timeout, 1), "timeout");
        assert_eq!(result_label(ExecStatus::NotInstalled, 5), "agent_not_installed");
        assert_eq!(result_label(ExecStatus::ErrorHard, 1), "error");
    }

    #[test]
    fn a_scheduler_exports_its_own_metrics_and_the_state_only_while_it_leads() {
        let metrics = Arc::new(SchedulerMetrics::default());
        assert!(metrics.collector().is_none());
        metrics.elected(7);
        metrics.publish(cluster::tests::state());
        assert!(metrics.collector().is_some());
        metrics.stepped_down(Stepped::Deposed);
        assert!(metrics.collector().is_none());
        assert_eq!(metrics.leader.get(), 0);
        assert_eq!(metrics.leadership.get_or_create(&[("change", "elected")]).get(), 1);
        assert_eq!(metrics.leadership.get_or_create(&[("change", "deposed")]).get(), 1);
    }
}
