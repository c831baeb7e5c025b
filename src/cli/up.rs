//! `pacer up`: a whole local cluster in the foreground — a private etcd (one member,
//! or `--etcd-members N`: `m1..mN`, `mK` standing for the etcd of node `nK` and the
//! members beyond the nodes for witnesses on other machines), one scheduler
//! and N node agents (`n1`..`nN`), each a process of its own with its state under
//! `DIR/nodes/<node>`, its log in `DIR/logs/` and `/metrics` on a free loopback port
//! it writes to `DIR/metrics/<component>` (`host:port`) once listening. Stops
//! everything it started, by PID, on SIGINT/SIGTERM (agents first, so they stop their
//! resources). With `--hollow-nodes M`, also M hollow nodes (`h1`..`hM`, state under
//! `DIR/nodes/<node>` too) in one more process, `pacer hollow` (`DIR/pids/hollow`).
//! SIGUSR1 restarts etcd, one member at a time (`EtcdCluster::rolling_restart`): an
//! upgrade of the embedded etcd under a running cluster. A node the local fence
//! device rebooted (`fence_pacer_local` leaves `DIR/nodes/<node>/power-on`) is started
//! again once its agent is gone and `--reboot-delay` has passed (`power_on_due`); a
//! node powered off stays off, as does an agent that died by itself.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::local::etcd::{EtcdCluster, EtcdServer, ServerTls};
use crate::pki::{IssueRequest, Role, Validity};
use crate::store::rights::Identity;
use crate::store::tls::{ConnectConfig, TlsFiles};

/// What `pacer up` starts.
pub struct UpRequest<'a> {
    pub state_dir: &'a Path,
    pub nodes: usize,
    /// Hollow nodes (`h1`..) in one `pacer hollow` process, and their operations'
    /// latency.
    pub hollow_nodes: usize,
    pub hollow_latency: Duration,
    /// How long a node rebooted by `fence_pacer_local` stays down before its agent is
    /// started again (`POWER_ON_MARKER`).
    pub reboot_delay: Duration,
    /// etcd members: 1 (one private etcd, as always), or an odd number, `m1..mN` with
    /// their data under `DIR/etcd-cluster/` and every component given every member.
    pub etcd_members: usize,
    pub lease_ttl: u64,
    pub agents_dir: Option<&'a Path>,
    pub prefix: &'a str,
    /// Register `fence_pacer_local` for the nodes (true), or turn fencing off.
    pub fencing: bool,
    /// etcd with TLS, client-certificate auth and the roles of `store::rights`; each
    /// component connects as its own identity (`DIR/pki/NAME.{crt,key}`).
    pub secure: bool,
}

/// The certificate authority and identities of a secure local cluster: `DIR/pki/`.
struct LocalPki {
    dir: PathBuf,
}

impl LocalPki {
    /// The CA and every certificate, made once: an earlier run's are kept (its etcd
    /// data already has these users).
    fn prepare(state_dir: &Path, nodes: &[String]) -> anyhow::Result<LocalPki> {
        let dir = state_dir.join("pki");
        if !dir.join(crate::pki::CA_CERT).exists() {
            crate::pki::init(&dir)?;
        }
        let issue = |name: &str, role: Role, hosts: &[String]| -> anyhow::Result<()> {
            if !dir.join(format!("{name}.crt")).exists() {
                crate::pki::issue(&dir, &IssueRequest { name, role, hosts, validity: Validity::Years(crate::pki::CERT_YEARS) })?;
            }
            Ok(())
        };
        issue("etcd-server", Role::Node, &["127.0.0.1".to_string(), "localhost".to_string()])?;
        for node in nodes {
            issue(node, Role::Node, &[])?;
        }
        issue("scheduler", Role::Scheduler, &[])?;
        issue("admin", Role::Admin, &[])?;
        issue("reader", Role::Reader, &[])?;
        Ok(LocalPki { dir })
    }

    fn server(&self) -> ServerTls {
        ServerTls { cert: self.dir.join("etcd-server.crt"), key: self.dir.join("etcd-server.key"), ca: self.dir.join(crate::pki::CA_CERT) }
    }

    /// The TLS files of an identity (`NAME.crt`, `NAME.key`).
    fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            ca: Some(self.dir.join(crate::pki::CA_CERT)),
            cert: Some(self.dir.join(format!("{name}.crt"))),
            key: Some(self.dir.join(format!("{name}.key"))),
        }
    }
}

/// A child process, ended by PID when dropped.
struct Component {
    name: String,
    child: Child,
    pid_file: PathBuf,
    metrics_file: PathBuf,
}

impl Component {
    fn stop(&mut self, grace: Duration) {
        if !crate::local::child::terminate(&mut self.child, grace) {
            eprintln!("{} did not stop within {grace:?}; killed it", self.name);
        }
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.metrics_file);
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Where the Debian package installs Pacer's own agents (`scripts/deb`).
const PACKAGED_AGENTS_DIR: &str = "/usr/lib/pacer/agents";

/// Pacer's own agents when `--agents-dir` is not given: the package's directory, else
/// the `agents/` of the source tree the binary was built in (`<repo>/target/<profile>/pacer`
/// → `<repo>/agents`). Never the current directory: agents run as root, and whoever
/// controls the directory `pacer up` is started from would choose them.
pub(crate) fn default_agents_dir(binary: &Path, packaged: &Path) -> Option<PathBuf> {
    if packaged.is_dir() {
        return Some(packaged.to_path_buf());
    }
    let binary = std::fs::canonicalize(binary).ok()?;
    let profile_dir = binary.parent()?;
    let target_dir = profile_dir.parent()?;
    if target_dir.file_name()? != "target" {
        return None;
    }
    let agents = target_dir.parent()?.join("agents");
    agents.is_dir().then_some(agents)
}

/// The objects `pacer up` starts with: its nodes and, with fencing, the local fence
/// device that powers them off (`agents/fence/fence_pacer_local`); without, a policy
/// that turns fencing off.
async fn register(request: &UpRequest<'_>, store: &crate::store::Store) -> anyhow::Result<()> {
    let mut nodes: Vec<String> = (1..=request.nodes).map(|index| format!("n{index}")).collect();
    nodes.extend(hollow_names(request.hollow_nodes));
    let mut documents: Vec<String> =
        nodes.iter().map(|node| format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\nspec: {{}}\n")).collect();
    if request.fencing && !nodes.is_empty() {
        let state_dir = std::fs::canonicalize(request.state_dir).context("resolve the state directory")?;
        let state_dir = serde_json::Value::String(state_dir.display().to_string());
        documents.push(format!(
            "apiVersion: pacer.io/v1alpha1\nkind: FenceDevice\nmetadata: {{name: local-power}}\nspec:\n  agent: fence_pacer_local\n  hostList: [{}]\n  params: {{state_dir: {state_dir}}}\n  timeout: 20s\n",
            nodes.join(", ")
        ));
    } else if !request.fencing {
        documents.push("apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n".to_string());
    }
    let loaded = crate::api::manifest::load(&[crate::api::manifest::Source { name: "pacer up".into(), text: documents.join("---\n") }]);
    anyhow::ensure!(loaded.diagnostics.is_empty(), "the objects of pacer up are invalid: {:?}", loaded.diagnostics);
    match crate::store::apply::apply(store, &crate::store::apply::ApplyRequest { loaded, ..Default::default() }).await? {
        crate::store::apply::ApplyOutcome::Planned(_) => Ok(()),
        crate::store::apply::ApplyOutcome::Invalid(diagnostics) => anyhow::bail!("the objects of pacer up were refused: {diagnostics:?}"),
    }
}

/// How much nicer than `pacer up` the hollow process runs (`spawn`).
const HOLLOW_NICENESS: libc::c_int = 10;

/// The hollow nodes' names.
fn hollow_names(count: usize) -> impl Iterator<Item = String> {
    (1..=count).map(|index| format!("h{index}"))
}

pub async fn run(request: &UpRequest<'_>) -> anyhow::Result<u8> {
    // One process holds every hollow node, so it cannot connect as each node's
    // identity: per-node rights and hollow nodes do not mix.
    anyhow::ensure!(!(request.secure && request.hollow_nodes > 0), "--secure and --hollow-nodes cannot be combined: one process runs every hollow node");
    for dir in ["pids", "logs", "nodes", "metrics"] {
        std::fs::create_dir_all(request.state_dir.join(dir)).with_context(|| format!("create {}", request.state_dir.join(dir).display()))?;
    }
    let state_dir = &std::fs::canonicalize(request.state_dir).with_context(|| format!("resolve {}", request.state_dir.display()))?;
    let nodes: Vec<String> = (1..=request.nodes).map(|index| format!("n{index}")).collect();
    let pki = if request.secure { Some(LocalPki::prepare(state_dir, &nodes)?) } else { None };
    // On this thread, not a blocking-pool one: etcd dies with the thread that started
    // it (PR_SET_PDEATHSIG), and pool threads end when idle.
    let mut etcd = tokio::task::block_in_place(|| start_etcd(state_dir, request.etcd_members, pki.as_ref()))?;
    let endpoint = etcd.endpoints().join(",");
    std::fs::write(state_dir.join("endpoint"), format!("{endpoint}\n")).context("write endpoint file")?;
    write_etcd_pids(state_dir, &mut etcd)?;
    std::fs::write(state_dir.join("pids").join("up"), format!("{}\n", std::process::id())).context("write pid file")?;
    let admin = ConnectConfig { endpoints: etcd.endpoints(), prefix: request.prefix.to_string(), tls: pki.as_ref().map(|pki| pki.files("admin")) };
    let store = crate::store::Store::connect_with(&admin).await?;
    // The administrator creates the Node objects: agents may not write the spec.
    register(request, &store).await?;
    if pki.is_some() {
        let mut identities: Vec<Identity> = nodes.iter().map(|node| Identity::Node(node.clone())).collect();
        identities.extend([Identity::Scheduler, Identity::Reader]);
        if let Some(warning) = store.lease_renewal_warning().await {
            eprintln!("warning: {warning}");
        }
        store.bootstrap_auth(&identities).await.context("bootstrap etcd auth")?;
        write_config(&state_dir.join("config.yaml"), &admin)?;
    }
    drop(store);
    let binary = std::env::current_exe().context("find the pacer binary")?;
    let agents_dir = match request.agents_dir {
        Some(dir) => Some(dir.to_path_buf()),
        None => default_agents_dir(&binary, Path::new(PACKAGED_AGENTS_DIR)),
    };
    match &agents_dir {
        Some(dir) => println!("Pacer's own agents from {}", dir.display()),
        None => println!(
            "no --agents-dir, {PACKAGED_AGENTS_DIR} or agents/ beside a build tree: Pacer's own agents (ocf:pacer:witness, fence_pacer_local) are unavailable"
        ),
    }
    let spawn = |name: &str, mut args: Vec<String>| -> anyhow::Result<Component> {
        let log_path = state_dir.join("logs").join(format!("{name}.log"));
        // The component writes its address once it listens: a file left by an earlier
        // run must not name a port nobody serves.
        let metrics_file = state_dir.join("metrics").join(name);
        let _ = std::fs::remove_file(&metrics_file);
        // The hollow process serves no /metrics (its nodes' families would collide).
        if args.first().is_none_or(|command| command != "hollow") {
            args.extend(["--metrics-listen".to_string(), "127.0.0.1:0".to_string(), "--metrics-address-file".to_string(), metrics_file.display().to_string()]);
        }
        let log = std::fs::File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let mut command = Command::new(&binary);
        command
            .args(&args)
            .env("PACER_ETCD", &endpoint)
            .env("PACER_PREFIX", request.prefix)
            // Everything is given: no config file (not even /etc/pacer's) adds to it.
            .env("PACER_CONFIG", "/dev/null")
            .env_remove("PACER_ETCD_CA")
            .env_remove("PACER_ETCD_CERT")
            .env_remove("PACER_ETCD_KEY");
        if let Some(pki) = &pki {
            // Each component connects as itself: a node as its node, the scheduler
            // as `scheduler`.
            let files = pki.files(name);
            for (variable, path) in [("PACER_ETCD_CA", files.ca), ("PACER_ETCD_CERT", files.cert), ("PACER_ETCD_KEY", files.key)] {
                command.env(variable, path.unwrap_or_default());
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            // Its own process group: a Ctrl-C at the terminal reaches `pacer up`, which
            // stops the components in order.
            .process_group(0);
        // The hollow nodes stand for other machines: their work must not take the CPU
        // etcd and the scheduler need on this one. At 1,000 hollow nodes probing 25,000
        // resources a second beside them on 2 cores, etcd's applies fell seconds behind,
        // every lease renewal failed ("waiting for the applied index took too long") and
        // every node self-fenced (issue 18). Ten steps nicer weighs about a tenth.
        let niceness = if name == "hollow" { HOLLOW_NICENESS } else { 0 };
        // SAFETY: prctl and nice are async-signal-safe; prctl asks the kernel to send
        // SIGTERM to the child if `pacer up` dies, so no component outlives it
        // unattended; nice, in the child before it starts any thread, lowers the
        // priority of the whole process (relative to `pacer up`'s).
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if niceness != 0 {
                    libc::nice(niceness);
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        let pid_file = state_dir.join("pids").join(name);
        std::fs::write(&pid_file, format!("{}\n", child.id())).context("write pid file")?;
        Ok(Component { name: name.to_string(), child, pid_file, metrics_file })
    };
    let ttl = request.lease_ttl.to_string();
    let mut components = vec![spawn("scheduler", vec!["scheduler".into(), "--lease-ttl".into(), ttl.clone()])?];
    // Each node agent's arguments, to start it again after a reboot.
    let mut agent_args: Vec<(String, Vec<String>)> = Vec::new();
    for index in 1..=request.nodes {
        let node = format!("n{index}");
        let node_dir = state_dir.join("nodes").join(&node);
        let mut args =
            vec!["agent".into(), "--node".into(), node.clone(), "--lease-ttl".into(), ttl.clone(), "--state-dir".into(), node_dir.display().to_string()];
        // The agents ask each other, while etcd is down, whether it is down for all.
        args.extend(["--peer-listen".into(), "127.0.0.1:0".into()]);
        if let Some(dir) = &agents_dir {
            args.push("--agents-dir".into());
            args.push(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()).display().to_string());
        }
        agent_args.push((node.clone(), args.clone()));
        components.push(spawn(&node, args)?);
    }
    if request.hollow_nodes > 0 {
        let mut args = vec![
            "hollow".into(),
            "--nodes".into(),
            format!("h1..h{}", request.hollow_nodes),
            "--nodes-dir".into(),
            state_dir.join("nodes").display().to_string(),
            "--lease-ttl".into(),
            ttl.clone(),
            "--latency".into(),
            humantime::format_duration(request.hollow_latency).to_string(),
        ];
        if let Some(dir) = &agents_dir {
            args.push("--agents-dir".into());
            args.push(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()).display().to_string());
        }
        components.push(spawn("hollow", args)?);
    }
    if etcd.members() > 1 {
        let roles: Vec<String> = (1..=etcd.members())
            .map(|member| match member <= request.nodes {
                true => format!("{} (n{member}'s)", etcd.name(member)),
                false => format!("{} (a witness)", etcd.name(member)),
            })
            .collect();
        println!("etcd members {}; SIGUSR1 to pacer up (DIR/pids/up) restarts them one at a time", roles.join(", "));
    }
    println!(
        "etcd running at {endpoint}; scheduler, {} node agents and {} hollow nodes started (logs in {})",
        request.nodes,
        request.hollow_nodes,
        state_dir.join("logs").display()
    );
    if pki.is_some() {
        println!("use it with: export PACER_CONFIG={} (the admin identity)", state_dir.join("config.yaml").display());
    } else {
        println!("use it with: export PACER_ETCD={endpoint}");
    }
    println!("metrics: http://HOST:PORT/metrics, each component's address in {}/<component>", state_dir.join("metrics").display());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("listen for SIGINT")?;
    let mut restart = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).context("listen for SIGUSR1")?;
    let mut power = tokio::time::interval(Duration::from_millis(500));
    power.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = power.tick() => {
                for (node, args) in &agent_args {
                    // A node whose restart failed has no component: it is tried again
                    // while its marker stays.
                    let index = components.iter().position(|component| component.name == *node);
                    let marker = state_dir.join("nodes").join(node).join(POWER_ON_MARKER);
                    let exited = index.is_none_or(|index| !matches!(components[index].child.try_wait(), Ok(None)));
                    let powered_on = std::fs::metadata(&marker).and_then(|metadata| metadata.modified()).ok();
                    match power_on_due(exited, powered_on, std::time::SystemTime::now(), request.reboot_delay) {
                        PowerOn::Wait => {}
                        PowerOn::Stale => {
                            let _ = std::fs::remove_file(&marker);
                        }
                        PowerOn::Now => {
                            // The old component first: dropping it removes its pid file.
                            let at = index.map_or(components.len(), |index| {
                                drop(components.remove(index));
                                index
                            });
                            println!("starting {node} again: its fence device rebooted it");
                            match spawn(node, args.clone()) {
                                Ok(component) => {
                                    let _ = std::fs::remove_file(&marker);
                                    components.insert(at, component);
                                }
                                // Not the end of the cluster: the next tick tries again.
                                Err(error) => eprintln!("cannot start {node} again: {error:#}; trying again"),
                            }
                        }
                    }
                }
                // A hollow node boots when its `powered-off` goes (its process is
                // still running: the fence agent waited until the node halted).
                for node in hollow_names(request.hollow_nodes) {
                    let node_dir = state_dir.join("nodes").join(&node);
                    let marker = node_dir.join(POWER_ON_MARKER);
                    let powered_on = std::fs::metadata(&marker).and_then(|metadata| metadata.modified()).ok();
                    if power_on_due(true, powered_on, std::time::SystemTime::now(), request.reboot_delay) == PowerOn::Now {
                        let _ = std::fs::remove_file(node_dir.join(crate::agent::hollow::POWERED_OFF_FILE));
                        let _ = std::fs::remove_file(&marker);
                        println!("powering {node} on again: its fence device rebooted it");
                    }
                }
            }
            _ = restart.recv() => {
                // On this thread, which owns the members (PR_SET_PDEATHSIG).
                println!("restarting etcd, one member at a time");
                let restarted = tokio::task::block_in_place(|| etcd.rolling_restart(|_, name| println!("restarting etcd member {name}")));
                match restarted {
                    Ok(()) => println!("etcd restarted"),
                    Err(error) => eprintln!("restart etcd: {error}"),
                }
                write_etcd_pids(state_dir, &mut etcd)?;
            }
        }
    }
    println!("stopping");
    // Agents first (they stop their resources), then the scheduler, then etcd.
    let mut agents: Vec<Component> = components.drain(1..).collect();
    tokio::task::spawn_blocking(move || {
        for agent in &mut agents {
            // SAFETY: SIGTERM to a child this process started and has not reaped.
            unsafe {
                libc::kill(agent.child.id() as i32, libc::SIGTERM);
            }
        }
        for agent in &mut agents {
            agent.stop(Duration::from_secs(30));
        }
        for component in &mut components {
            component.stop(Duration::from_secs(10));
        }
    })
    .await
    .context("stop the cluster")?;
    tokio::task::block_in_place(|| drop(etcd));
    for name in etcd_pid_names(state_dir) {
        let _ = std::fs::remove_file(state_dir.join("pids").join(name));
    }
    let _ = std::fs::remove_file(state_dir.join("pids").join("up"));
    let _ = std::fs::remove_file(state_dir.join("endpoint"));
    Ok(0)
}

/// What `fence_pacer_local` leaves in a node's directory when it reboots the node (or
/// powers on one that is down): the file's time is when. `off` removes it.
pub(crate) const POWER_ON_MARKER: &str = "power-on";

/// What to do with a node agent's process, `pacer up`'s power switch.
#[derive(Debug, PartialEq, Eq)]
enum PowerOn {
    /// Nothing (no marker, or the delay is not over).
    Wait,
    /// Start the node's agent again.
    Now,
    /// A marker the running agent outlived (written by an `on` while it ran): removed,
    /// so that a later crash of its own does not start it again.
    Stale,
}

/// Whether a node's agent is started again: only once it is gone (`exited`) and the
/// fence device asked for power at `powered_on`, `delay` ago or more — a machine takes
/// a while to boot, and the cluster sees the node lost first, as it would a real one.
fn power_on_due(exited: bool, powered_on: Option<std::time::SystemTime>, now: std::time::SystemTime, delay: Duration) -> PowerOn {
    let Some(powered_on) = powered_on else { return PowerOn::Wait };
    let age = now.duration_since(powered_on).unwrap_or_default();
    match exited {
        true if age >= delay => PowerOn::Now,
        true => PowerOn::Wait,
        // The fence agent kills the agent before it writes the marker: one still
        // running long after is not the one powered off.
        false if age >= Duration::from_secs(30) => PowerOn::Stale,
        false => PowerOn::Wait,
    }
}

/// Starts etcd: one member with its data in `DIR/etcd` (kept from run to run), or
/// `members` members `m1..mN` in `DIR/etcd-cluster/` with the LAN's raft timing.
fn start_etcd(state_dir: &Path, members: usize, pki: Option<&LocalPki>) -> anyhow::Result<EtcdCluster> {
    anyhow::ensure!(members % 2 == 1, "--etcd-members {members}: use an odd number (an even one tolerates no more lost members than one fewer)");
    if members == 1 {
        let data_dir = state_dir.join("etcd");
        let server = match pki {
            Some(pki) => EtcdServer::start_secure(&data_dir, pki.server(), &[]),
            None => EtcdServer::start(&data_dir, &[]),
        };
        return Ok(server.context("start etcd")?.into_cluster());
    }
    let dir = state_dir.join("etcd-cluster");
    // The members' data names the ports they listened on, which are gone: a cluster of
    // several members cannot be restarted from an earlier run's.
    anyhow::ensure!(
        !dir.join("m1").join("member-data").exists(),
        "{} holds the etcd members of an earlier run, which cannot be started on new ports: remove it, or use another --state-dir",
        dir.display()
    );
    let cluster = match pki {
        Some(pki) => EtcdCluster::start_secure(&dir, members, &crate::local::etcd::LAN_TUNING, pki.server()),
        None => EtcdCluster::start(&dir, members, &crate::local::etcd::LAN_TUNING),
    };
    cluster.with_context(|| format!("start {members} etcd members"))
}

/// The PID files of etcd's members: `etcd` for a single one, else `etcd-m1`, ...
fn etcd_pid_name(etcd: &EtcdCluster, member: usize) -> String {
    if etcd.members() == 1 { "etcd".to_string() } else { format!("etcd-{}", etcd.name(member)) }
}

/// Every etcd PID file in `DIR/pids/`.
fn etcd_pid_names(state_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(state_dir.join("pids")).into_iter().flatten().flatten();
    entries.filter_map(|entry| entry.file_name().into_string().ok()).filter(|name| name == "etcd" || name.starts_with("etcd-")).collect()
}

/// Writes each running member's PID file (`DIR/pids/etcd`, or `etcd-m1`...) and
/// removes those of members that do not run.
fn write_etcd_pids(state_dir: &Path, etcd: &mut EtcdCluster) -> anyhow::Result<()> {
    for member in 1..=etcd.members() {
        let path = state_dir.join("pids").join(etcd_pid_name(etcd, member));
        match etcd.running(member).then(|| etcd.pid(member)).flatten() {
            Some(pid) => std::fs::write(&path, format!("{pid}\n")).with_context(|| format!("write {}", path.display()))?,
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(())
}

/// Writes a config file for `config` (`pacer --config FILE`), readable by its owner
/// only: it names the administrator's key.
fn write_config(path: &Path, config: &ConnectConfig) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut fields = serde_json::Map::new();
    fields.insert("endpoints".into(), serde_json::json!(config.endpoints));
    fields.insert("prefix".into(), serde_json::json!(config.prefix));
    if let Some(tls) = &config.tls {
        for (name, file) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            if let Some(file) = file {
                fields.insert(name.into(), serde_json::json!(file.display().to_string()));
            }
        }
    }
    let text = crate::api::yaml::to_yaml_string(&serde_json::Value::Object(fields));
    let temporary = path.with_extension("new");
    // A leftover file would keep its old mode: made anew, it is 0600.
    if let Err(error) = std::fs::remove_file(&temporary)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        return Err(error).with_context(|| format!("remove {}", temporary.display()));
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary).with_context(|| format!("write {}", temporary.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{PowerOn, power_on_due};

    #[test]
    fn a_rebooted_node_starts_again_once_gone_and_after_the_delay() {
        let now = SystemTime::now();
        let delay = Duration::from_secs(3);
        // Powered off, or died by itself: no marker, never started again.
        assert_eq!(power_on_due(true, None, now, delay), PowerOn::Wait);
        // Rebooted: after the delay, not before.
        assert_eq!(power_on_due(true, Some(now - Duration::from_secs(1)), now, delay), PowerOn::Wait);
        assert_eq!(power_on_due(true, Some(now - Duration::from_secs(3)), now, delay), PowerOn::Now);
        // A marker the running agent outlived is forgotten.
        assert_eq!(power_on_due(false, Some(now - Duration::from_secs(5)), now, delay), PowerOn::Wait);
        assert_eq!(power_on_due(false, Some(now - Duration::from_secs(31)), now, delay), PowerOn::Stale);
    }
}
