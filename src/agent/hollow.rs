//! Hollow nodes (`pacer hollow`): many nodes in one process, each the real agent
//! (`agent::run`: its own etcd lease, watches, reconciler, gates, status and attribute
//! writes, monitors, the fencing it is asked to run) with a simulated executor
//! (`exec::hollow`: no resource agent runs). They share the process's runtime, one
//! lease renewal thread (`lease::Renewals`) and one decoded copy of each object and
//! status (`runtime::SharedDecodes`), so a thousand fit on a small machine: what is
//! measured with them is the cluster's control plane. Each has an etcd connection of
//! its own, as a real node has.
//!
//! Power, per node, through files in its state dir (`fence_pacer_local` speaks it):
//! - `hollow`: written at start with this process's PID — the node is hollow;
//! - `powered-off`: while it exists the node is off. Seen (polled every
//!   `POWER_POLL`), the node's agent is stopped dead (its task aborted: no stop, no
//!   write, its lease left to lapse, its simulated state lost), then the file's
//!   content is copied to `halted`, which the fence agent waits for before it reports
//!   the node off. Removed (`fence_pacer_local -o on`, by `pacer up` a while after a
//!   `reboot` — `<node dir>/power-on` —, or by hand), the node boots: a fresh agent
//!   with nothing running.
//!
//! A stale `powered-off` from an earlier run is removed at start: `pacer up` starts
//! every node powered on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::{AgentConfig, AgentError, OnShutdown, prepare_state_dir};
use crate::exec::ExecConfig;
use crate::exec::hollow::{FAIL_FILE, Simulation};
use crate::metrics::AgentMetrics;
use crate::store::Store;
use crate::store::lease::Renewals;

/// The marker of a hollow node's state dir (holds the PID of its process).
pub const HOLLOW_FILE: &str = "hollow";
/// While this file exists the node is powered off.
pub const POWERED_OFF_FILE: &str = "powered-off";
/// The content of `powered-off` the process acted on: the node is off.
pub const HALTED_FILE: &str = "halted";
/// How often each node's power file is looked at.
const POWER_POLL: Duration = Duration::from_millis(200);

/// What `pacer hollow` runs.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    pub nodes: Vec<String>,
    /// Each node's state dir is `<nodes_dir>/<node>`.
    pub nodes_dir: PathBuf,
    pub lease_ttl: Duration,
    pub on_shutdown: OnShutdown,
    /// Where fence agents are found (fencing runs for real); resource operations take
    /// `latency`.
    pub exec: ExecConfig,
    pub latency: Duration,
}

/// Parses `h1..h50` (a range of numbered names) or a comma-separated list.
pub fn parse_nodes(text: &str) -> Result<Vec<String>, String> {
    if let Some((first, last)) = text.split_once("..") {
        let split = |name: &str| -> Option<(String, u64)> {
            let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let (stem, number) = name.split_at(name.len() - digits);
            Some((stem.to_string(), number.parse().ok()?))
        };
        let ((stem, from), (last_stem, to)) =
            split(first).zip(split(last)).ok_or_else(|| format!("{text:?}: a range is NAME<first>..NAME<last>, both ending in a number (h1..h50)"))?;
        if stem != last_stem || from > to {
            return Err(format!("{text:?}: a range is NAME<first>..NAME<last> with one name and first <= last"));
        }
        return Ok((from..=to).map(|number| format!("{stem}{number}")).collect());
    }
    let nodes: Vec<String> = text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect();
    if nodes.is_empty() {
        return Err(format!("{text:?}: no node named"));
    }
    Ok(nodes)
}

/// Runs every hollow node until `shutdown` completes; then each stops or leaves its
/// (simulated) resources as `on_shutdown` says and gives up its lease.
pub async fn run(config: HollowConfig, store: Store, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    for node in &config.nodes {
        if !crate::api::Name::is_valid(node) {
            return Err(AgentError::StateDir { path: config.nodes_dir.join(node).display().to_string(), reason: format!("{node:?} is not a node name") });
        }
        let dir = config.nodes_dir.join(node);
        std::fs::create_dir_all(&config.nodes_dir)
            .map_err(|error| AgentError::StateDir { path: config.nodes_dir.display().to_string(), reason: error.to_string() })?;
        prepare_state_dir(&dir)?;
        let failed = |error: std::io::Error| AgentError::StateDir { path: dir.display().to_string(), reason: error.to_string() };
        for stale in [POWERED_OFF_FILE, HALTED_FILE] {
            match std::fs::remove_file(dir.join(stale)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(failed(error)),
                _ => {}
            }
        }
        std::fs::write(dir.join(HOLLOW_FILE), format!("{}\n", std::process::id())).map_err(failed)?;
    }
    raise_open_files_limit(config.nodes.len());
    let renewals = Arc::new(Renewals::start().map_err(AgentError::Renewals)?);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut nodes = tokio::task::JoinSet::new();
    // One decoded copy of each object and status for all of them.
    let shared = Arc::new(crate::runtime::SharedDecodes::new());
    for node in &config.nodes {
        let agent = agent_config(&config, node, renewals.clone(), shared.clone());
        let span = tracing::info_span!("hollow", node = %node);
        nodes.spawn(power_cycle(agent, store.clone(), stopping.clone()).instrument(span));
    }
    tracing::info!(nodes = config.nodes.len(), latency = ?config.latency, "hollow nodes started");
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        // Every node ended by itself (none can start): nothing left to run.
        () = async { while nodes.join_next().await.is_some() {} } => return Ok(()),
    }
    let _ = stop.send(true);
    while nodes.join_next().await.is_some() {}
    Ok(())
}

fn agent_config(config: &HollowConfig, node: &str, renewals: Arc<Renewals>, shared: Arc<crate::runtime::SharedDecodes>) -> AgentConfig {
    let state_dir = config.nodes_dir.join(node);
    let exec = ExecConfig { simulate: Some(Simulation { latency: config.latency, fail_file: state_dir.join(FAIL_FILE) }), ..config.exec.clone() };
    AgentConfig {
        node: node.to_string(),
        state_dir,
        lease_ttl: config.lease_ttl,
        on_shutdown: config.on_shutdown,
        exec,
        attributes: BTreeMap::new(),
        capacity: BTreeMap::new(),
        metrics: Arc::new(AgentMetrics::default()),
        notifier: Arc::new(crate::notify::Notifier::disabled()),
        renewals: Some(renewals),
        shared_decodes: Some(shared),
        peer_listen: None,
    }
}

/// One node: its agent while powered on, nothing while powered off, until the process
/// stops.
async fn power_cycle(config: AgentConfig, store: Store, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let dir = config.state_dir.clone();
    let mut acknowledged: Option<String> = None;
    loop {
        // Off: wait for the power to come back (or the end), acknowledging every
        // further power-off (a fencing of a node already off is answered at once).
        while let Some(content) = powered_off(&dir) {
            if acknowledged.as_ref() != Some(&content) {
                acknowledge(&dir, &content);
                acknowledged = Some(content);
            }
            tokio::select! {
                () = tokio::time::sleep(POWER_POLL) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
        tracing::info!("powered on");
        // A connection of its own, as a real node has (a reboot reconnects). One shared
        // by hundreds of agents is one HTTP/2 connection: its flow-control window, and
        // h2's count of the requests cancelled on it (a timeout cancels one; after
        // 1,024 the client closes the connection with `too_many_internal_resets`, and
        // every watch on it ends), are then all of theirs. At 300 nodes an overloaded
        // etcd's timeouts did that every few seconds: every agent relisted at once.
        let own = match connect_own(&store, &dir, &mut stopping).await {
            Connect::Connected(own) => *own,
            Connect::PoweredOff => continue,
            Connect::Stopping => return,
        };
        let mut shutdown = stopping.clone();
        let mut agent = tokio::spawn(
            super::run(config.clone(), own, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .in_current_span(),
        );
        let halted = loop {
            tokio::select! {
                ended = &mut agent => {
                    match ended {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(%error, "the hollow node's agent stopped"),
                        Err(error) => tracing::error!(%error, "the hollow node's agent failed"),
                    }
                    return;
                }
                () = tokio::time::sleep(POWER_POLL) => {
                    if let Some(content) = powered_off(&dir) {
                        break content;
                    }
                }
            }
        };
        // Powered off: the agent stops dead, as a machine without power does.
        agent.abort();
        let _ = agent.await;
        tracing::warn!("powered off");
        acknowledge(&dir, &halted);
        acknowledged = Some(halted);
    }
}

/// How a node's attempt to connect ended.
enum Connect {
    Connected(Box<Store>),
    /// Powered off meanwhile (a fencing does not wait for etcd to answer).
    PoweredOff,
    /// The process stops.
    Stopping,
}

/// A connection like `store`'s for one node, tried until it answers, the node is
/// powered off or the process stops.
async fn connect_own(store: &Store, dir: &Path, stopping: &mut tokio::sync::watch::Receiver<bool>) -> Connect {
    loop {
        let attempt = store.reconnect();
        tokio::pin!(attempt);
        let result = loop {
            tokio::select! {
                result = &mut attempt => break result,
                () = tokio::time::sleep(POWER_POLL) => {
                    if powered_off(dir).is_some() {
                        return Connect::PoweredOff;
                    }
                }
                _ = stopping.wait_for(|stop| *stop) => return Connect::Stopping,
            }
        };
        match result {
            Ok(own) => return Connect::Connected(Box::new(own)),
            Err(error) => tracing::warn!(%error, "cannot connect to etcd; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(POWER_POLL) => {}
            _ = stopping.wait_for(|stop| *stop) => return Connect::Stopping,
        }
    }
}

/// Raises the soft limit of open files to the hard one: each node holds its own etcd
/// connection (and the agent's files), and a common soft limit of 1,024 would leave
/// the last of a thousand nodes unable to connect.
fn raise_open_files_limit(nodes: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit write and read only the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            limit.rlim_cur == limit.rlim_max || libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
        }
    };
    let needed = (nodes as u64).saturating_mul(4).saturating_add(256);
    if !raised || limit.rlim_max < needed {
        tracing::warn!(nodes, hard_limit = limit.rlim_max, needed, "the open-file limit may be too low for this many hollow nodes (ulimit -n)");
    }
}

/// Tells the fence agent the node is off: `halted` gets the `powered-off` content
/// acted on.
fn acknowledge(dir: &Path, content: &str) {
    let temporary = dir.join(format!("{HALTED_FILE}.new"));
    if let Err(error) = std::fs::write(&temporary, content).and_then(|()| std::fs::rename(&temporary, dir.join(HALTED_FILE))) {
        tracing::error!(%error, "cannot record that the node is powered off");
    }
}

/// The content of the node's `powered-off` file, if it exists.
fn powered_off(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(POWERED_OFF_FILE)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_and_ranges() {
        assert_eq!(parse_nodes("h1..h3"), Ok(vec!["h1".to_string(), "h2".to_string(), "h3".to_string()]));
        assert_eq!(parse_nodes("h9..h10"), Ok(vec!["h9".to_string(), "h10".to_string()]));
        assert_eq!(parse_nodes("a, b"), Ok(vec!["a".to_string(), "b".to_string()]));
        assert!(parse_nodes("h3..h1").is_err());
        assert!(parse_nodes("h1..x3").is_err());
        assert!(parse_nodes("h..h3").is_err());
        assert!(parse_nodes("").is_err());
    }
}
