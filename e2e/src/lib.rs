//! End-to-end harness: a cluster of real processes on one machine — a private etcd,
//! two schedulers, N node agents (each behind a link to etcd that can be cut, each in
//! its own state dir laid out as `pacer up` lays it out, so `fence_pacer_local` can
//! power it off) — faults injected into it, and an observer that audits what the
//! resources themselves testify (the witness agent's log) against the fencing record.
//!
//! Every process it starts it ends, by PID.

pub mod netns;

pub use pacer::local::witness::{Replay, Rules, Testimony, audit, disagreements, migrations, read_witness};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pacer::local::etcd::EtcdCluster;
use pacer::local::link::Link;
use pacer::store::rights::Identity;
use serde_json::Value;

use crate::netns::Network;

const PREFIX: &str = "/pacer";

/// How long a settled cluster must stay so (`Cluster::wait_quiet`): longer than the
/// scheduler's batching of changes (1 s at most), so no decision is still to come.
pub const QUIET: Duration = Duration::from_millis(1500);

/// What an agent logs when it self-fences: its lease was not renewed in time, so it
/// stops every resource before the lease could expire for the others.
pub const SELF_FENCING: &str = pacer::agent::SELF_FENCING_LOG;

/// The self-fencings no fault excuses: per node, how many more times it self-fenced
/// in `after` than in `before` (counts of `SELF_FENCING` in its agent's log), unless
/// it is `excused` — a node whose link to etcd was cut, or whose agent was frozen past
/// its lease, has reason to. Any other node could reach etcd: its self-fencing stopped
/// its resources for nothing, a problem like two active copies. Sorted by node.
pub fn unexpected_self_fencings(before: &BTreeMap<String, usize>, after: &BTreeMap<String, usize>, excused: &BTreeSet<String>) -> Vec<String> {
    after
        .iter()
        .filter(|(node, _)| !excused.contains(*node))
        .filter_map(|(node, count)| {
            let new = count.saturating_sub(before.get(node).copied().unwrap_or(0));
            (new > 0).then(|| format!("{node} self-fenced {new} time(s) ({SELF_FENCING}) though it could reach etcd"))
        })
        .collect()
}

/// Wall-clock nanoseconds, as the witness agent and the fence agent write them.
pub fn epoch_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos())
}

/// The sample at `fraction` (0.5 for the median) of sorted samples; zero for none.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A process of the cluster.
struct Process {
    child: Child,
}

impl Process {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(0)
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the PID of a child this harness started and has not reaped.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn end(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        // A frozen process must be woken to act on SIGTERM.
        self.signal(libc::SIGCONT);
        pacer::local::child::terminate(&mut self.child, grace);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.end(Duration::from_secs(15));
    }
}

/// How a cluster is made.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub nodes: usize,
    pub lease_ttl: u64,
    /// The `pacer` binary.
    pub pacer: PathBuf,
    /// The project's `agents/` directory.
    pub agents: PathBuf,
    /// Each node in a network namespace of its own (`netns`), reaching etcd over a
    /// veth pair: cutting a node drops its packets (TCP hangs) rather than closing
    /// its connections. Needs root; without it, nodes share the loopback and a cut
    /// closes the node's connections (`Link`).
    pub namespaces: bool,
    /// Members of the etcd cluster: 1, or 3 to lose one without losing quorum.
    pub etcd_members: usize,
    /// etcd with mutual TLS, client-certificate auth and the roles of
    /// `pacer::store::rights`: each node's agent, the schedulers and the harness (the
    /// administrator) as their own identities, as `pacer up --secure` runs them.
    pub secure: bool,
}

impl ClusterConfig {
    /// `nodes` nodes with `lease_ttl` seconds, sharing the loopback.
    pub fn new(nodes: usize, lease_ttl: u64, pacer: PathBuf, agents: PathBuf) -> ClusterConfig {
        ClusterConfig { nodes, lease_ttl, pacer, agents, namespaces: false, etcd_members: 1, secure: false }
    }
}

/// A running cluster.
pub struct Cluster {
    // Field order is drop order: agents, schedulers, links, the network, etcd, the dir.
    agents: BTreeMap<String, Process>,
    schedulers: BTreeMap<String, Process>,
    /// Each node's links, one per etcd member.
    links: BTreeMap<String, Vec<Link>>,
    network: Option<Network>,
    /// The harness's own client, for what `pacer status` does not show.
    store: pacer::store::Store,
    etcd: EtcdCluster,
    /// With `secure`: the CA and every identity's certificate and key.
    pki: Option<PathBuf>,
    dir: tempfile::TempDir,
    config: ClusterConfig,
}

impl Cluster {
    /// Starts etcd, two schedulers (`s1`, `s2`) and the agents `n1..nN`, registers the
    /// nodes and the local fence device.
    pub async fn start(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        for sub in ["pids", "nodes", "logs", "bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).context("state layout")?;
        }
        // A copy of the binary: every process of a long campaign runs the same build,
        // whatever is rebuilt meanwhile.
        let copy = dir.path().join("bin/pacer");
        std::fs::copy(&config.pacer, &copy).with_context(|| format!("copy {}", config.pacer.display()))?;
        let mut config = config;
        config.pacer = copy;
        let names: Vec<String> = (1..=config.nodes).map(|index| format!("n{index}")).collect();
        let network = if config.namespaces {
            netns::available().map_err(|reason| anyhow::anyhow!("network namespaces: {reason}"))?;
            Some(Network::create(&names)?)
        } else {
            None
        };
        // Members on one machine answer each other within a millisecond: elections are
        // tuned as for a LAN (`LAN_TUNING`), to end well within the half lease after
        // which agents self-fence.
        let tuning: &[&str] = if config.etcd_members > 1 { &pacer::local::etcd::LAN_TUNING } else { &[] };
        let pki = if config.secure {
            let pki = dir.path().join("pki");
            make_pki(&pki, &names, network.as_ref())?;
            Some(pki)
        } else {
            None
        };
        let etcd = match &pki {
            Some(pki) => {
                let tls = pacer::local::etcd::ServerTls { cert: pki.join("etcd-server.crt"), key: pki.join("etcd-server.key"), ca: pki.join("ca.crt") };
                EtcdCluster::start_secure(&dir.path().join("etcd"), config.etcd_members.max(1), tuning, tls)
            }
            None => EtcdCluster::start(&dir.path().join("etcd"), config.etcd_members.max(1), tuning),
        }
        .context("start etcd (scripts/install-deps)")?;
        let connect = pacer::store::tls::ConnectConfig {
            endpoints: etcd.endpoints(),
            prefix: PREFIX.to_string(),
            tls: pki.as_ref().map(|pki| identity_files(pki, "admin")),
        };
        let store = pacer::store::Store::connect_with(&connect).await.context("connect to etcd")?;
        let mut cluster = Cluster { agents: BTreeMap::new(), schedulers: BTreeMap::new(), links: BTreeMap::new(), network, store, etcd, pki, dir, config };
        let mut objects: Vec<String> =
            names.iter().map(|node| format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\nspec: {{}}\n")).collect();
        // One fence device per node, as the brief's clusters have (a UPS, a BMC), never
        // run by the node it fences.
        for node in &names {
            objects.push(format!(
                "apiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: power-{node}}}\nspec:\n  agent: fence_pacer_local\n  hostList: [{node}]\n  params: {{state_dir: {}, fail_file: {}}}\n",
                cluster.dir.path().display(),
                cluster.fence_fail_file().display()
            ));
            objects.push(format!("apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: power-{node}-not-on-{node}}}\nspec: {{resource: power-{node}, node: {node}, score: -INFINITY}}\n"));
        }
        cluster.apply(&objects.join("---\n"))?;
        if cluster.pki.is_some() {
            // The Node objects exist (applied above, as the administrator): agents may
            // not write the spec.
            let mut identities: Vec<Identity> = names.iter().map(|node| Identity::Node(node.clone())).collect();
            identities.extend([Identity::Scheduler, Identity::Reader]);
            cluster.store.bootstrap_auth(&identities).await.context("bootstrap etcd auth")?;
        }
        for scheduler in ["s1", "s2"] {
            cluster.start_scheduler(scheduler)?;
        }
        for node in names {
            // A node in a namespace reaches etcd at its veth's host address.
            let address = cluster.network.as_ref().and_then(|network| network.host_address(&node)).unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            let mut links = Vec::new();
            for member in cluster.etcd.endpoints() {
                links.push(Link::open_on(address, &member).await.context("open a link")?);
            }
            cluster.links.insert(node.clone(), links);
            cluster.start_agent(&node)?;
        }
        Ok(cluster)
    }

    pub fn node_names(&self) -> Vec<String> {
        (1..=self.config.nodes).map(|index| format!("n{index}")).collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every etcd member's client URL, comma-separated (as `PACER_ETCD` takes them).
    pub fn endpoint(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    /// While this file exists, every fence device fails (`fence_pacer_local`'s
    /// `fail_file`).
    pub fn fence_fail_file(&self) -> PathBuf {
        self.dir.path().join("fence-fails")
    }

    /// Makes every fence device fail (a power switch that does not answer), or work.
    pub fn set_fencing_fails(&self, fails: bool) -> anyhow::Result<()> {
        if fails {
            std::fs::write(self.fence_fail_file(), "").context("make fencing fail")
        } else {
            match std::fs::remove_file(self.fence_fail_file()) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error).context("heal fencing"),
                _ => Ok(()),
            }
        }
    }

    /// kill -9 every agent and scheduler at once and start them all again: a
    /// restart of the whole control plane (an upgrade gone wrong). Agents resume their
    /// leases, so their resources run on untouched.
    pub fn restart_all(&mut self) -> anyhow::Result<()> {
        for process in self.agents.values_mut().chain(self.schedulers.values_mut()) {
            process.signal(libc::SIGKILL);
        }
        for process in self.agents.values_mut().chain(self.schedulers.values_mut()) {
            let _ = process.child.wait();
        }
        let schedulers: Vec<String> = self.schedulers.keys().cloned().collect();
        for scheduler in schedulers {
            self.start_scheduler(&scheduler)?;
        }
        for node in self.node_names() {
            self.start_agent(&node)?;
        }
        Ok(())
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.config.lease_ttl)
    }

    /// The environment that makes `pacer` connect as `identity` (`PACER_ETCD_CA`…),
    /// and no config file.
    fn identity_env(&self, command: &mut Command, identity: &str) {
        command.env("PACER_CONFIG", "/dev/null");
        if let Some(pki) = &self.pki {
            let files = identity_files(pki, identity);
            for (variable, path) in [("PACER_ETCD_CA", files.ca), ("PACER_ETCD_CERT", files.cert), ("PACER_ETCD_KEY", files.key)] {
                command.env(variable, path.unwrap_or_default());
            }
        }
    }

    /// Options for a raw etcd client as the administrator (TLS when secure).
    fn client_options(&self) -> Option<etcd_client::ConnectOptions> {
        let pki = self.pki.as_ref()?;
        let read = |name: &str| std::fs::read(pki.join(name)).unwrap_or_default();
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read("ca.crt")))
            .identity(etcd_client::Identity::from_pem(read("admin.crt"), read("admin.key")));
        Some(etcd_client::ConnectOptions::new().with_tls(tls))
    }

    /// Whether etcd runs with TLS and auth.
    pub fn secure(&self) -> bool {
        self.pki.is_some()
    }

    fn spawn(&self, name: &str, endpoint: &str, args: &[String]) -> anyhow::Result<Process> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join(format!("logs/{name}.log"))).context("log file")?;
        let mut command = Command::new(&self.config.pacer);
        if let Some(network) = &self.network
            && self.links.contains_key(name)
        {
            network.command_in(name, &mut command)?;
        }
        // Schedulers connect as `scheduler`, agents as their node.
        let identity = if args.first().is_some_and(|command| command == "scheduler") { "scheduler" } else { name };
        self.identity_env(&mut command, identity);
        let child = command
            .args(args)
            .env("PACER_ETCD", endpoint)
            .env("PACER_PREFIX", PREFIX)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {name} ({})", self.config.pacer.display()))?;
        std::fs::write(self.dir.path().join(format!("pids/{name}")), format!("{}\n", child.id())).context("pid file")?;
        Ok(Process { child })
    }

    pub fn start_scheduler(&mut self, name: &str) -> anyhow::Result<()> {
        let args = vec!["scheduler".into(), "--lease-ttl".into(), self.config.lease_ttl.to_string(), "--identity".into(), name.into()];
        let process = self.spawn(name, &self.endpoint(), &args)?;
        self.schedulers.insert(name.to_string(), process);
        Ok(())
    }

    /// Starts (or restarts, as after a reboot) a node's agent, behind its link.
    pub fn start_agent(&mut self, node: &str) -> anyhow::Result<()> {
        let state_dir = self.dir.path().join(format!("nodes/{node}"));
        std::fs::create_dir_all(&state_dir).context("state dir")?;
        let endpoint = self.links.get(node).map_or_else(|| self.endpoint(), |links| links.iter().map(Link::endpoint).collect::<Vec<_>>().join(","));
        let mut args = vec![
            "agent".into(),
            "--node".into(),
            node.into(),
            "--lease-ttl".into(),
            self.config.lease_ttl.to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--agents-dir".into(),
            self.config.agents.display().to_string(),
        ];
        // The failsafe's peer endpoint (issue 20): on loopback every node reaches every
        // other. Namespaced nodes have no routes to each other, so they keep the old
        // rule (self-fence when etcd is gone), which the campaign then shows.
        if self.network.is_none() {
            args.extend(["--peer-listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        let process = self.spawn(node, &endpoint, &args)?;
        self.agents.insert(node.to_string(), process);
        Ok(())
    }

    /// Whether every node's heartbeat is its current agent's (its PID) and says it
    /// has probed everything: each agent started since a restart has caught up.
    pub async fn agents_caught_up(&self) -> anyhow::Result<bool> {
        let store = &self.store;
        let (_, heartbeats) = store.read_records::<pacer::api::records::NodeHeartbeat>(&store.keys().nodes_prefix()).await?;
        Ok(self.agents.iter().all(|(node, process)| {
            heartbeats.iter().any(|(_, heartbeat, _)| heartbeat.node == *node && heartbeat.probed && heartbeat.pid == process.child.id())
        }))
    }

    /// Whether a node's agent process is alive.
    pub fn agent_running(&mut self, node: &str) -> bool {
        self.agents.get_mut(node).is_some_and(Process::running)
    }

    pub fn kill_agent(&mut self, node: &str) {
        if let Some(agent) = self.agents.get_mut(node) {
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
    }

    pub fn signal_agent(&self, node: &str, signal: i32) {
        if let Some(agent) = self.agents.get(node) {
            agent.signal(signal);
        }
    }

    /// Cuts a node off from etcd (or heals it): its veth goes down in namespaces,
    /// else its link closes every connection.
    pub fn cut_link(&self, node: &str, cut: bool) -> anyhow::Result<()> {
        if let Some(network) = &self.network {
            return network.set_cut(node, cut);
        }
        for link in self.links.get(node).into_iter().flatten() {
            link.set_cut(cut);
        }
        Ok(())
    }

    /// kill -9 etcd member `member` (numbered from 1).
    pub fn kill_etcd_member(&mut self, member: usize) {
        self.etcd.kill(member);
    }

    /// Starts a killed etcd member again with its data; waits until it is healthy.
    pub fn restart_etcd_member(&mut self, member: usize) -> anyhow::Result<()> {
        self.etcd.restart(member).with_context(|| format!("restart etcd member {member}"))
    }

    pub fn etcd_members(&self) -> usize {
        self.etcd.members()
    }

    /// kill -9 every etcd member at once: etcd is gone for everyone.
    pub fn kill_etcd(&mut self) {
        self.etcd.kill_all();
    }

    /// Starts every etcd member that does not run again, with its data; waits until
    /// all are healthy.
    pub fn restart_etcd(&mut self) -> anyhow::Result<()> {
        self.etcd.start_stopped().map(drop).context("restart etcd")
    }

    /// SIGSTOP (true) or SIGCONT (false) every etcd member: etcd hangs for everyone,
    /// connections open and silent.
    pub fn freeze_etcd(&mut self, frozen: bool) {
        for member in 1..=self.etcd.members() {
            if frozen { self.etcd.freeze(member) } else { self.etcd.thaw(member) }
        }
    }

    /// The etcd member that stands for `node`'s own (`nK` → member K, as `pacer up
    /// --etcd-members` pairs them), if there is one.
    pub fn etcd_member_of(&self, node: &str) -> Option<usize> {
        let index: usize = node.strip_prefix('n')?.parse().ok()?;
        (self.etcd.members() > 1 && (1..=self.etcd.members()).contains(&index)).then_some(index)
    }

    /// The witness: the last etcd member, when there are more members than nodes
    /// (two nodes and a witness).
    pub fn etcd_witness(&self) -> Option<usize> {
        (self.etcd.members() > self.config.nodes).then_some(self.etcd.members())
    }

    /// The etcd member that says it leads (numbered from 1), asked one by one.
    pub async fn etcd_leader(&self) -> Option<usize> {
        for member in 1..=self.etcd.members() {
            let attempt = async {
                let mut client = etcd_client::Client::connect([self.etcd.endpoint(member)], self.client_options()).await.ok()?;
                client.status().await.ok()
            };
            if let Ok(Some(status)) = tokio::time::timeout(Duration::from_secs(2), attempt).await
                && status.header().is_some_and(|header| header.member_id() == status.leader())
            {
                return Some(member);
            }
        }
        None
    }

    /// Whether nodes run in network namespaces of their own.
    pub fn namespaces(&self) -> bool {
        self.network.is_some()
    }

    /// Kills the leading scheduler (by its identity in the election) and starts it
    /// again as a standby. Returns its name.
    pub fn kill_leader(&mut self) -> anyhow::Result<Option<String>> {
        let Some(leader) = self.status()?["leader"].as_str().map(str::to_string) else { return Ok(None) };
        if let Some(process) = self.schedulers.get_mut(&leader) {
            let _ = process.child.kill();
            let _ = process.child.wait();
            self.start_scheduler(&leader)?;
        }
        Ok(Some(leader))
    }

    fn pacer(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<std::process::Output> {
        let mut command = Command::new(&self.config.pacer);
        self.identity_env(&mut command, "admin");
        let mut child = command
            .args(args)
            .env("PACER_ETCD", self.endpoint())
            .env("PACER_PREFIX", PREFIX)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run pacer")?;
        if let Some(mut input) = child.stdin.take() {
            std::io::Write::write_all(&mut input, stdin.unwrap_or_default().as_bytes()).context("write stdin")?;
        }
        child.wait_with_output().context("wait for pacer")
    }

    pub fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        let output = self.pacer(&["apply", "-f", "-"], Some(yaml))?;
        if !output.status.success() {
            bail!("apply refused: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    /// Any other verb as the administrator (`pacer node standby n1`, `pacer move vm n2`):
    /// an error if it exits other than 0.
    pub fn verb(&self, args: &[&str]) -> anyhow::Result<()> {
        let output = self.pacer(args, None)?;
        if !output.status.success() {
            bail!("pacer {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }

    /// `pacer delete KIND NAMES...`.
    pub fn delete(&self, kind: &str, names: &[String]) -> anyhow::Result<()> {
        let mut args = vec!["delete", kind];
        args.extend(names.iter().map(String::as_str));
        let output = self.pacer(&args, None)?;
        if !output.status.success() {
            bail!("delete refused: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    /// `pacer status -o json`.
    pub fn status(&self) -> anyhow::Result<Value> {
        let output = self.pacer(&["status", "-o", "json"], None)?;
        if !output.status.success() {
            bail!("pacer status: {}", String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).context("status JSON")
    }

    /// Copies what a failure is diagnosed from — the witness log, every process's log,
    /// the power-off markers — into `destination`, since the cluster's own directory
    /// goes with it.
    pub fn save_logs(&self, destination: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(destination).with_context(|| format!("create {}", destination.display()))?;
        let mut files = vec![(self.witness_log(), "witness.log".to_string())];
        for entry in std::fs::read_dir(self.dir.path().join("logs")).context("list logs")?.flatten() {
            files.push((entry.path(), entry.file_name().to_string_lossy().into_owned()));
        }
        for node in self.node_names() {
            files.push((self.dir.path().join(format!("nodes/{node}/powered-off")), format!("{node}.powered-off")));
        }
        for (source, name) in files {
            if source.exists() {
                std::fs::copy(&source, destination.join(&name)).with_context(|| format!("copy {}", source.display()))?;
            }
        }
        Ok(())
    }

    /// A process's log (`n1`, `s1`), its colour codes stripped, line by line.
    pub fn log_lines(&self, name: &str) -> Vec<String> {
        let bytes = std::fs::read(self.dir.path().join(format!("logs/{name}.log"))).unwrap_or_default();
        String::from_utf8_lossy(&bytes).lines().map(pacer::local::logs::strip_ansi).collect()
    }

    /// How many times each node's agents (every one started on it, their logs
    /// appended) have self-fenced so far.
    pub fn self_fencings(&self) -> BTreeMap<String, usize> {
        self.node_names()
            .into_iter()
            .map(|node| {
                let count = self.log_lines(&node).iter().filter(|line| line.contains(SELF_FENCING)).count();
                (node, count)
            })
            .collect()
    }

    /// The `skip`-th self-fencing in `node`'s log with the `context` lines before it.
    pub fn self_fencing_excerpt(&self, node: &str, skip: usize, context: usize) -> Vec<String> {
        let lines = self.log_lines(node);
        let Some(at) = lines.iter().enumerate().filter(|(_, line)| line.contains(SELF_FENCING)).nth(skip).map(|(at, _)| at) else { return Vec::new() };
        lines[at.saturating_sub(context)..=at].to_vec()
    }

    /// The witness log every test resource writes to.
    pub fn witness_log(&self) -> PathBuf {
        self.dir.path().join("witness.log")
    }

    /// Whether every node runs exactly what its assignment says — each assigned
    /// resource in its role with nothing under way, nothing else possibly active —
    /// read from etcd. A moment's convergence can precede a new decision (the
    /// scheduler waits up to a second to batch changes); callers wait for it to last.
    pub async fn converged(&self) -> anyhow::Result<bool> {
        Ok(self.unconverged(1).await?.is_empty())
    }

    /// What keeps the cluster from being `converged`, up to `most` reasons (for
    /// people: which resource on which node is not as assigned).
    pub async fn unconverged(&self, most: usize) -> anyhow::Result<Vec<String>> {
        let store = &self.store;
        let keys = store.keys().clone();
        let (_, plans) = store.read_records::<pacer::api::records::NodeAssignment>(&keys.plans_prefix()).await?;
        let (_, statuses) = store.read_records::<pacer::api::records::ResourceStatus>(&keys.statuses_prefix()).await?;
        let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
        for (_, assignment, _) in plans {
            for resource in assignment.resources {
                wanted.insert((assignment.node.clone(), resource.id), format!("{:?}", resource.role));
            }
        }
        let mut reasons = Vec::new();
        for (_, status, _) in statuses {
            if reasons.len() >= most {
                return Ok(reasons);
            }
            let pending = status.pending.as_deref().map(|pending| format!(", {pending} pending")).unwrap_or_default();
            match wanted.remove(&(status.node.clone(), status.id.clone())) {
                Some(role) if role == status.role.as_str() && status.pending.is_none() => {}
                Some(role) => reasons.push(format!("{} on {}: {}{pending}, assigned {role}", status.id, status.node, status.role.as_str())),
                None if status.may_be_active() => reasons.push(format!("{} on {}: {}{pending}, not assigned", status.id, status.node, status.role.as_str())),
                None => {}
            }
        }
        reasons.extend(wanted.into_iter().map(|((node, id), role)| format!("{id} on {node}: no status, assigned {role}")));
        reasons.truncate(most);
        Ok(reasons)
    }

    /// The scheduler leader's term: the election key's create revision (`None` while
    /// no one leads).
    pub async fn leader_term(&self) -> anyhow::Result<Option<i64>> {
        self.store.leader_term().await.context("read the election key")
    }

    /// Power-off times of every node (nanoseconds), from the fence agent's markers.
    pub fn power_offs(&self) -> BTreeMap<String, Vec<u128>> {
        self.node_names()
            .into_iter()
            .map(|node| {
                let marker = self.dir.path().join(format!("nodes/{node}/powered-off"));
                let times = std::fs::read_to_string(marker).unwrap_or_default().lines().filter_map(|line| line.trim().parse().ok()).collect();
                (node, times)
            })
            .collect()
    }

    /// Waits until every node is online, `running` holds of `pacer status -o json`,
    /// every node runs what its assignment says (`converged`: no move under way), and
    /// all that has lasted `QUIET`; `false` after `bound`.
    pub async fn wait_quiet(&self, bound: Duration, running: impl Fn(&Value) -> bool) -> anyhow::Result<bool> {
        let started = Instant::now();
        let mut since: Option<Instant> = None;
        while started.elapsed() < bound {
            let view = self.status()?;
            let online = view["nodes"].as_array().is_some_and(|nodes| nodes.iter().all(|node| node["state"] == "online"));
            // etcd may be missing a member: a failed read only means "not yet".
            let converged = self.converged().await.unwrap_or(false);
            if online && running(&view) && converged {
                let since = *since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    return Ok(true);
                }
            } else {
                since = None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(false)
    }
}

/// The CA, etcd's server certificate (loopback and every namespace's host address) and
/// a certificate per identity: the nodes, `scheduler`, `admin`, `reader`.
fn make_pki(dir: &Path, nodes: &[String], network: Option<&Network>) -> anyhow::Result<()> {
    use pacer::pki::{IssueRequest, Role, Validity};
    pacer::pki::init(dir)?;
    let mut hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    if let Some(network) = network {
        hosts.extend(nodes.iter().filter_map(|node| network.host_address(node)).map(|address| address.to_string()));
    }
    let validity = Validity::Years(1);
    pacer::pki::issue(dir, &IssueRequest { name: "etcd-server", role: Role::Node, hosts: &hosts, validity })?;
    for node in nodes {
        pacer::pki::issue(dir, &IssueRequest { name: node, role: Role::Node, hosts: &[], validity })?;
    }
    for (name, role) in [("scheduler", Role::Scheduler), ("admin", Role::Admin), ("reader", Role::Reader)] {
        pacer::pki::issue(dir, &IssueRequest { name, role, hosts: &[], validity })?;
    }
    Ok(())
}

fn identity_files(pki: &Path, name: &str) -> pacer::store::tls::TlsFiles {
    pacer::store::tls::TlsFiles { ca: Some(pki.join("ca.crt")), cert: Some(pki.join(format!("{name}.crt"))), key: Some(pki.join(format!("{name}.key"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(node, count)| (node.to_string(), *count)).collect()
    }

    fn nodes(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_node_that_could_reach_etcd_must_not_self_fence() {
        let before = counts(&[("n1", 0), ("n2", 1), ("n3", 0)]);
        let after = counts(&[("n1", 0), ("n2", 2), ("n3", 0)]);
        let problems = unexpected_self_fencings(&before, &after, &BTreeSet::new());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("n2 self-fenced 1 time(s)"), "{problems:?}");
        // Another node excused does not excuse it.
        assert_eq!(unexpected_self_fencings(&before, &after, &nodes(&["n1", "n3"])).len(), 1);
        // A node not counted before (its log did not exist yet) counts from zero.
        let problems = unexpected_self_fencings(&counts(&[]), &counts(&[("n1", 2), ("n3", 1)]), &BTreeSet::new());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("n1 self-fenced 2 time(s)") && problems[1].starts_with("n3 "), "{problems:?}");
    }

    #[test]
    fn an_excused_node_or_an_old_self_fencing_is_not_a_problem() {
        // The frozen or cut-off node self-fences, as it must.
        let before = counts(&[("n1", 0), ("n2", 3), ("n3", 0)]);
        let after = counts(&[("n1", 1), ("n2", 3), ("n3", 0)]);
        assert!(unexpected_self_fencings(&before, &after, &nodes(&["n1"])).is_empty());
        // What an earlier fault excused is not counted again.
        assert!(unexpected_self_fencings(&before, &before, &BTreeSet::new()).is_empty());
        // A log that shrank (cannot happen: logs are appended) is no self-fencing.
        assert!(unexpected_self_fencings(&before, &counts(&[("n2", 1)]), &BTreeSet::new()).is_empty());
    }
}
