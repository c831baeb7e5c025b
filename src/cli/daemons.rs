//! `pacer agent`, `pacer scheduler` and `pacer up`: the long-running processes, each
//! in the foreground until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;

use super::{Global, up};

#[derive(clap::Args, Debug)]
pub(super) struct AgentArgs {
    /// The node this agent stands for (its `Node` object is created if missing).
    #[arg(long)]
    node: String,
    /// The node's own directory (agents' HA_RSCTMP/HA_VARRUN, work files).
    #[arg(long)]
    state_dir: PathBuf,
    /// Seconds the node's lease lasts without renewal (etcd counts whole seconds).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_ttl: u64,
    /// On SIGTERM: stop every resource (in reverse start order) and give up the
    /// lease, or leave them running and the lease to lapse (an agent started again
    /// within it resumes it; otherwise the node counts as lost and is fenced).
    #[arg(long, value_enum, default_value = "stop")]
    on_shutdown: ShutdownMode,
    /// A directory laid out like Pacer's `agents/` (`ocf/<provider>/<type>`, `lsb/`,
    /// `fence/`) searched after the system's; repeatable.
    #[arg(long = "agents-dir")]
    agents_dirs: Vec<PathBuf>,
    /// A run-time attribute of the node (the Node object's `attributes` outrank it):
    /// NAME=VALUE; repeatable.
    #[arg(long = "attribute", value_parser = parse_key_value)]
    attributes: Vec<(String, String)>,
    /// Capacity of the Node object created when none exists: NAME=NUMBER; repeatable.
    #[arg(long = "capacity", value_parser = parse_capacity)]
    capacity: Vec<(String, u64)>,
    /// Serve the peer endpoint here (port 0: any), published in the heartbeat: while
    /// etcd cannot be reached, the agents ask each other whether they can, and keep
    /// their resources running if none can (failsafe; needs fencing). Mutual TLS with
    /// the agent's certificate where it reaches etcd with one; else plain TCP: use an
    /// address only the cluster's nodes reach. Without it: no failsafe.
    #[arg(long, value_name = "IP:PORT")]
    peer_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// Where a daemon serves `/metrics`.
#[derive(clap::Args, Debug)]
pub(super) struct MetricsArgs {
    /// Serve Prometheus metrics on http://IP:PORT/metrics (port 0: any free port).
    /// An address that cannot be listened on is refused at start.
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Once listening, write the address (IP:PORT) to this file — with port 0, how
    /// others learn which (`pacer up` writes `DIR/metrics/<component>` this way).
    #[arg(long, value_name = "FILE", requires = "metrics_listen")]
    metrics_address_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// Listens on the metrics address, if one is given, and writes the address file:
    /// before anything else starts, so a busy address is refused at once.
    async fn listen(&self) -> anyhow::Result<Option<tokio::net::TcpListener>> {
        let Some(address) = self.metrics_listen else { return Ok(None) };
        let listener = crate::metrics::bind(address).await.with_context(|| format!("listen for metrics on {address}"))?;
        if let Some(file) = &self.metrics_address_file {
            let bound = listener.local_addr().context("read the metrics address")?;
            let temporary = file.with_extension("new");
            std::fs::write(&temporary, format!("{bound}\n"))
                .and_then(|()| std::fs::rename(&temporary, file))
                .with_context(|| format!("write {}", file.display()))?;
        }
        Ok(Some(listener))
    }
}

#[derive(clap::Args, Debug)]
pub(super) struct HollowArgs {
    /// The nodes: a range (`h1..h50`) or a comma-separated list.
    #[arg(long, value_parser = crate::agent::hollow::parse_nodes)]
    nodes: std::vec::Vec<String>,
    /// The directory of the nodes' state dirs (`DIR/<node>`).
    #[arg(long)]
    nodes_dir: PathBuf,
    /// Seconds each node's lease lasts without renewal.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_ttl: u64,
    /// How long every simulated operation takes (`50ms`, `1s`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// On SIGTERM: stop every (simulated) resource and give up the leases, or leave
    /// them and the leases to lapse.
    #[arg(long, value_enum, default_value = "stop")]
    on_shutdown: ShutdownMode,
    /// Where fence agents are found besides the system's (fencing runs for real);
    /// repeatable.
    #[arg(long = "agents-dir")]
    agents_dirs: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(super) struct SchedulerArgs {
    /// Seconds the leader's lease lasts without renewal: a standby takes over
    /// after about this long.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_ttl: u64,
    /// Milliseconds of quiet after a change before deciding.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// How this instance names itself in the election (default host:pid).
    #[arg(long)]
    identity: Option<String>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct UpArgs {
    #[arg(long)]
    state_dir: PathBuf,
    /// Node agents to start (0: etcd only).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Hollow nodes to start beside them (`h1`..): the real agent with a simulated
    /// executor, all in one process (`pacer hollow`), for scale tests.
    #[arg(long, default_value_t = 0)]
    hollow_nodes: usize,
    /// How long a hollow node's operations take (`50ms`, `1s`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    hollow_latency: Duration,
    /// Lease TTL of the agents and the scheduler, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
    lease_ttl: u64,
    /// etcd members (odd): 1, or 3 for two nodes and a witness (`--nodes 2`: m1 and m2
    /// stand for the nodes' members, m3 for the witness's), each component given them
    /// all. SIGUSR1 to pacer up restarts them one at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=7))]
    etcd_members: u64,
    /// Pacer's own agents (`ocf/`, `lsb/`, `fence/`). Default: /usr/lib/pacer/agents
    /// (the package's), else `agents/` of the source tree the binary was built in;
    /// never the current directory.
    #[arg(long)]
    agents_dir: Option<PathBuf>,
    /// `on`: register fence_pacer_local, which powers the local nodes off (kills a
    /// node's agent and its resources' processes); `off`: stonithEnabled false.
    #[arg(long, value_enum, default_value = "on")]
    fencing: Switch,
    /// How long a node stays down after fence_pacer_local rebooted it (`reboot`, or
    /// `on` of a node that is down) before pacer up starts its agent again; a node
    /// powered `off` stays off.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    reboot_delay: Duration,
    /// etcd with mutual TLS, client-certificate auth and a role per identity: writes
    /// DIR/pki/ (ca.crt, NAME.crt and NAME.key for n1.., scheduler, admin, reader) and
    /// DIR/config.yaml (the admin's: `pacer --config DIR/config.yaml status`).
    #[arg(long)]
    secure: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ShutdownMode {
    Stop,
    Leave,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected NAME=VALUE"))?;
    if key.is_empty() {
        return Err(format!("{text:?}: the name is empty"));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_capacity(text: &str) -> Result<(String, u64), String> {
    let (key, value) = parse_key_value(text)?;
    let number = value.parse().map_err(|_| format!("{text:?}: the capacity must be a whole number"))?;
    Ok((key, number))
}

/// systemd's notifications when run by systemd (`NOTIFY_SOCKET`), else none.
fn notifier() -> anyhow::Result<std::sync::Arc<crate::notify::Notifier>> {
    Ok(std::sync::Arc::new(crate::notify::Notifier::from_environment()?))
}

/// Completes on SIGTERM or SIGINT, having told systemd `STOPPING=1`.
fn termination_notified(notifier: std::sync::Arc<crate::notify::Notifier>) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let signalled = termination()?;
    Ok(async move {
        signalled.await;
        notifier.stopping("shutting down");
    })
}

/// Completes on SIGTERM or SIGINT.
pub(super) fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// `pacer agent`: the node agent of one node (`agent::run`).
pub(super) async fn agent(global: &Global, args: &AgentArgs) -> anyhow::Result<u8> {
    let node = &args.node;
    anyhow::ensure!(
        crate::api::Name::is_valid(node),
        "--node {node:?}: a node name is letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"
    );
    crate::agent::prepare_state_dir(&args.state_dir)?;
    // Agents run with / as their working directory: every path they get is absolute.
    let state_dir = std::fs::canonicalize(&args.state_dir).with_context(|| format!("resolve {}", args.state_dir.display()))?;
    let mut exec = crate::exec::ExecConfig::default();
    for dir in &args.agents_dirs {
        exec = exec.with_agents_dir(&std::fs::canonicalize(dir).with_context(|| format!("resolve --agents-dir {}", dir.display()))?);
    }
    let notifier = notifier()?;
    let listener = args.metrics.listen().await?;
    let metrics = std::sync::Arc::new(crate::metrics::AgentMetrics::default());
    let config = crate::agent::AgentConfig {
        node: node.clone(),
        state_dir,
        lease_ttl: Duration::from_secs(args.lease_ttl),
        on_shutdown: match args.on_shutdown {
            ShutdownMode::Stop => crate::agent::OnShutdown::Stop,
            ShutdownMode::Leave => crate::agent::OnShutdown::Leave,
        },
        exec,
        attributes: args.attributes.iter().cloned().collect(),
        capacity: args.capacity.iter().cloned().collect(),
        metrics: metrics.clone(),
        notifier: notifier.clone(),
        renewals: None,
        shared_decodes: None,
        peer_listen: args.peer_listen,
    };
    let store = global.connect().await?;
    warn_of_old_etcd(&store).await;
    if let Some(listener) = listener {
        let registry = metrics.registry(&store);
        crate::metrics::serve(listener, crate::metrics::Exporter::Agent { registry, metrics });
    }
    crate::agent::run(config, store, termination_notified(notifier)?).await?;
    Ok(0)
}

/// `pacer hollow`: many hollow nodes in this process (`agent::hollow::run`).
pub(super) async fn hollow(global: &Global, args: &HollowArgs) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&args.nodes_dir).with_context(|| format!("create {}", args.nodes_dir.display()))?;
    let nodes_dir = std::fs::canonicalize(&args.nodes_dir).with_context(|| format!("resolve {}", args.nodes_dir.display()))?;
    let mut exec = crate::exec::ExecConfig::default();
    for dir in &args.agents_dirs {
        exec = exec.with_agents_dir(&std::fs::canonicalize(dir).with_context(|| format!("resolve --agents-dir {}", dir.display()))?);
    }
    let config = crate::agent::hollow::HollowConfig {
        nodes: args.nodes.clone(),
        nodes_dir,
        lease_ttl: Duration::from_secs(args.lease_ttl),
        on_shutdown: match args.on_shutdown {
            ShutdownMode::Stop => crate::agent::OnShutdown::Stop,
            ShutdownMode::Leave => crate::agent::OnShutdown::Leave,
        },
        exec,
        latency: args.latency,
    };
    let store = global.connect().await?;
    crate::agent::hollow::run(config, store, termination()?).await?;
    Ok(0)
}

/// With identities (TLS), logs a warning when etcd lets any user renew any lease
/// (`Store::lease_renewal_warning`): per-node rights do not hold there.
async fn warn_of_old_etcd(store: &crate::store::Store) {
    if store.identity().is_some()
        && let Some(warning) = store.lease_renewal_warning().await
    {
        tracing::warn!("{warning}");
    }
}

/// `pacer scheduler`: one scheduler instance (`daemon::run`), named host:pid unless
/// given `--identity`.
pub(super) async fn scheduler(global: &Global, args: &SchedulerArgs) -> anyhow::Result<u8> {
    let notifier = notifier()?;
    let listener = args.metrics.listen().await?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default();
    let metrics = std::sync::Arc::new(crate::metrics::SchedulerMetrics::new(host.clone()));
    let config = crate::daemon::SchedulerConfig {
        metrics: metrics.clone(),
        identity: args.identity.clone().unwrap_or_else(|| format!("{host}:{}", std::process::id())),
        lease_ttl: Duration::from_secs(args.lease_ttl),
        debounce: Duration::from_millis(args.debounce_ms),
        max_delay: Duration::from_millis(args.debounce_ms.saturating_mul(10).max(1000)),
        notifier: notifier.clone(),
    };
    let store = global.connect().await?;
    warn_of_old_etcd(&store).await;
    if let Some(listener) = listener {
        let registry = metrics.registry(&store);
        crate::metrics::serve(listener, crate::metrics::Exporter::Scheduler { registry, metrics });
    }
    crate::daemon::run(config, store, termination_notified(notifier)?).await?;
    Ok(0)
}

/// `pacer up`: a whole local cluster (`up::run`), under the global `--prefix`.
pub(super) async fn up(global: &Global, args: &UpArgs) -> anyhow::Result<u8> {
    let prefix = global.prefix()?;
    let request = up::UpRequest {
        state_dir: &args.state_dir,
        nodes: args.nodes,
        hollow_nodes: args.hollow_nodes,
        hollow_latency: args.hollow_latency,
        reboot_delay: args.reboot_delay,
        etcd_members: usize::try_from(args.etcd_members).unwrap_or(1),
        lease_ttl: args.lease_ttl,
        agents_dir: args.agents_dir.as_deref(),
        prefix: &prefix,
        fencing: args.fencing == Switch::On,
        secure: args.secure,
    };
    up::run(&request).await
}
