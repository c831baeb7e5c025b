//! End-to-end harness: a cluster of real processes on one machine — a private etcd,
//! two schedulers, N node agents (each behind a link to etcd that can be cut, each in
//! its own state dir laid out as `pacer up` lays it out, so `fence_pacer_local` can
//! power it off) — faults injected into it, and an observer that audits what the
//! resources themselves testify (the witness agent's log) against the fencing record.
//!
//! Every process it starts it ends, by PID.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pacer::local::etcd::EtcdServer;
use pacer::local::link::Link;
use serde_json::Value;

const PREFIX: &str = "/pacer";

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
}

/// A running cluster.
pub struct Cluster {
    // Field order is drop order: agents, schedulers, links, then etcd, then the dir.
    agents: BTreeMap<String, Process>,
    schedulers: BTreeMap<String, Process>,
    links: BTreeMap<String, Link>,
    etcd: EtcdServer,
    dir: tempfile::TempDir,
    config: ClusterConfig,
}

impl Cluster {
    /// Starts etcd, two schedulers (`s1`, `s2`) and the agents `n1..nN`, registers the
    /// nodes and the local fence device.
    pub async fn start(config: ClusterConfig) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        for sub in ["pids", "nodes", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).context("state layout")?;
        }
        let etcd = EtcdServer::start(&dir.path().join("etcd"), &[]).context("start etcd (scripts/install-deps)")?;
        let mut cluster = Cluster { agents: BTreeMap::new(), schedulers: BTreeMap::new(), links: BTreeMap::new(), etcd, dir, config };
        let names = cluster.node_names();
        let mut objects: Vec<String> = names.iter().map(|node| format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\nspec: {{}}\n")).collect();
        objects.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [{}]\n  params: {{state_dir: {}}}\n",
            names.join(", "),
            cluster.dir.path().display()
        ));
        cluster.apply(&objects.join("---\n"))?;
        for scheduler in ["s1", "s2"] {
            cluster.start_scheduler(scheduler)?;
        }
        for node in names {
            let link = Link::open(&cluster.etcd.endpoint()).await.context("open a link")?;
            cluster.links.insert(node.clone(), link);
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

    pub fn endpoint(&self) -> String {
        self.etcd.endpoint()
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.config.lease_ttl)
    }

    fn spawn(&self, name: &str, endpoint: &str, args: &[String]) -> anyhow::Result<Process> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join(format!("logs/{name}.log"))).context("log file")?;
        let child = Command::new(&self.config.pacer)
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
        let process = self.spawn(name, &self.etcd.endpoint(), &args)?;
        self.schedulers.insert(name.to_string(), process);
        Ok(())
    }

    /// Starts (or restarts, as after a reboot) a node's agent, behind its link.
    pub fn start_agent(&mut self, node: &str) -> anyhow::Result<()> {
        let state_dir = self.dir.path().join(format!("nodes/{node}"));
        std::fs::create_dir_all(&state_dir).context("state dir")?;
        let endpoint = self.links.get(node).map_or_else(|| self.etcd.endpoint(), |link| link.endpoint().to_string());
        let args = vec![
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
        let process = self.spawn(node, &endpoint, &args)?;
        self.agents.insert(node.to_string(), process);
        Ok(())
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

    pub fn cut_link(&self, node: &str, cut: bool) {
        if let Some(link) = self.links.get(node) {
            link.set_cut(cut);
        }
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
        let mut child = Command::new(&self.config.pacer)
            .args(args)
            .env("PACER_ETCD", self.etcd.endpoint())
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

    /// `pacer status -o json`.
    pub fn status(&self) -> anyhow::Result<Value> {
        let output = self.pacer(&["status", "-o", "json"], None)?;
        if !output.status.success() {
            bail!("pacer status: {}", String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).context("status JSON")
    }

    /// The witness log every test resource writes to.
    pub fn witness_log(&self) -> PathBuf {
        self.dir.path().join("witness.log")
    }

    /// The scheduler leader's term: the election key's create revision (`None` while
    /// no one leads).
    pub async fn leader_term(&self) -> anyhow::Result<Option<i64>> {
        let store = pacer::store::Store::connect(&[self.etcd.endpoint()], PREFIX).await?;
        let mut client = store.client();
        let response = client.get(store.keys().election(), None).await.context("read the election key")?;
        Ok(response.kvs().first().map(|kv| kv.create_revision()))
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

    /// Everything that can run does: every node online, and no resource instance
    /// stopped without a reason.
    pub fn settled(&self, resources: &[&str]) -> anyhow::Result<bool> {
        let view = self.status()?;
        let nodes_online = view["nodes"].as_array().is_some_and(|nodes| nodes.iter().all(|node| node["state"] == "online"));
        let running = resources.iter().all(|name| {
            view["resources"].as_array().into_iter().flatten().any(|entry| entry["name"] == *name && entry["role"] != "Stopped" && entry["failed"] == false)
        });
        Ok(nodes_online && running)
    }

    /// Waits until `settled`; the time it took, or `None` after `limit`.
    pub async fn wait_settled(&self, resources: &[&str], limit: Duration) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.settled(resources)? {
                return Ok(Some(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(None)
    }
}

/// One line of the witness log.
#[derive(Clone, Debug)]
pub struct Testimony {
    pub ns: u128,
    pub node: String,
    pub resource: String,
    pub operation: String,
    pub phase: String,
    pub rc: Option<i32>,
}

pub fn read_witness(log: &Path) -> Vec<Testimony> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let field = |name: &str| line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string();
            Testimony { ns: field("ns").parse().unwrap_or(0), node: field("node"), resource: field("rsc"), operation: field("op"), phase: field("phase"), rc: field("rc").parse().ok() }
        })
        .collect()
}

/// The observer's verdict on a whole run: every moment two copies of one resource were
/// active. A copy is active from the beginning of its start until the successful end of
/// its stop, or until its node was powered off (`power_offs`).
pub fn overlaps(testimony: &[Testimony], power_offs: &BTreeMap<String, Vec<u128>>) -> Vec<String> {
    let mut events: Vec<(u128, Option<&Testimony>, Option<&str>)> = testimony.iter().map(|line| (line.ns, Some(line), None)).collect();
    for (node, times) in power_offs {
        events.extend(times.iter().map(|time| (*time, None, Some(node.as_str()))));
    }
    events.sort_by_key(|(time, _, _)| *time);
    let mut active: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (_, line, powered_off) in events {
        if let Some(node) = powered_off {
            for copies in active.values_mut() {
                copies.retain(|other| *other != node);
            }
            continue;
        }
        let Some(line) = line else { continue };
        let copies = active.entry(line.resource.as_str()).or_default();
        match (line.operation.as_str(), line.phase.as_str()) {
            ("start", "begin") => {
                if copies.iter().any(|other| *other != line.node) {
                    problems.push(format!("{} started on {} at {} while active on {copies:?}", line.resource, line.node, line.ns));
                }
                if !copies.contains(&line.node.as_str()) {
                    copies.push(&line.node);
                }
            }
            ("stop", "end") if line.rc == Some(0) => copies.retain(|other| *other != line.node),
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ns: u128, node: &str, operation: &str, phase: &str) -> Testimony {
        Testimony { ns, node: node.into(), resource: "web".into(), operation: operation.into(), phase: phase.into(), rc: (phase == "end").then_some(0) }
    }

    #[test]
    fn the_observer_sees_overlaps_and_forgives_powered_off_nodes() {
        let moved = [line(1, "n1", "start", "begin"), line(2, "n1", "start", "end"), line(3, "n1", "stop", "end"), line(4, "n2", "start", "begin")];
        assert!(overlaps(&moved, &BTreeMap::new()).is_empty());
        let twice = [line(1, "n1", "start", "begin"), line(2, "n2", "start", "begin")];
        assert_eq!(overlaps(&twice, &BTreeMap::new()).len(), 1);
        let fenced = [line(1, "n1", "start", "begin"), line(5, "n2", "start", "begin")];
        let off: BTreeMap<String, Vec<u128>> = [("n1".to_string(), vec![3])].into();
        assert!(overlaps(&fenced, &off).is_empty());
        let too_early: BTreeMap<String, Vec<u128>> = [("n1".to_string(), vec![6])].into();
        assert_eq!(overlaps(&fenced, &too_early).len(), 1);
    }
}
