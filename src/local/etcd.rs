//! A private etcd on free loopback ports, started from `etcd` on PATH (or
//! `$PACER_ETCD_BIN`), stopped by PID when dropped: one server (`EtcdServer`: tests,
//! benchmarks, the demo, `pacer up`) or a cluster of N members (`EtcdCluster`: the fault
//! campaign kills one member of three and restarts it while the other two keep quorum).
//!
//! Every etcd started here asks the kernel to SIGKILL it when its parent goes
//! (`PR_SET_PDEATHSIG`), so a crashed test leaves none behind. The kernel sends that
//! signal when the *thread* that spawned the process exits, not the process: start and
//! restart etcd from a thread that lives as long as the etcd should (the main thread, a
//! test's own thread, `tokio::task::block_in_place` on either), never from
//! `tokio::task::spawn_blocking`, whose pool threads end after ten idle seconds and take
//! the etcd with them. A cluster member restarted from another thread is tied to that
//! thread from then on.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::child::terminate;

/// Why a private etcd could not be run.
#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    /// The binary is missing: run scripts/install-deps. Not retryable.
    #[error("start etcd ({binary}): {source}; is etcd-server installed? (scripts/install-deps)")]
    Spawn { binary: String, source: std::io::Error },
    /// It started but never answered /health; its log says why.
    #[error("start etcd: not healthy after {waited:?}; see {log}")]
    NotHealthy { waited: Duration, log: String },
    #[error("prepare etcd data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("find free loopback ports: {0}")]
    Ports(std::io::Error),
}

/// How long a member may take to answer /health after it is (re)started. Members of a
/// new cluster wait for each other and then elect a leader, a restarted one catches up.
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// How long a stopped member may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Raft timing for members on one machine or one LAN, which answer each other within a
/// millisecond (etcd's defaults, 100 ms and 1 s, are for wider networks): a new leader
/// is elected well within half the shortest lease TTL (2 s), after which agents stop
/// their resources. `pacer up --etcd-members 3` and the e2e harness run their members
/// with it.
pub const LAN_TUNING: [&str; 2] = ["--heartbeat-interval=50", "--election-timeout=500"];

/// How often a (re)start is tried with fresh ports: a port found free can be taken
/// before etcd binds it.
const START_ATTEMPTS: usize = 3;

/// A running etcd. Dropping it stops the process (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct EtcdServer {
    // A cluster of one member, named `pacer`, with its data in the caller's directory,
    // so that both are started, probed and stopped by the same code.
    cluster: EtcdCluster,
}

/// A running etcd cluster of N members on loopback, `m1..mN`, each with its own data dir
/// and ports. Dropping it stops every member (SIGTERM, then SIGKILL).
///
/// Members are numbered from 1, as they are named: `kill(1)` kills `m1`. A number out
/// of `1..=N` is a bug of the caller, and panics.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    /// `--initial-cluster-token`: unique per cluster, so that members of two clusters
    /// started on one machine (two campaigns, a port reused) never join each other.
    token: String,
    extra_args: Vec<String>,
    /// Client TLS with client-certificate auth (`EtcdServer::start_secure`), if any.
    tls: Option<ServerTls>,
}

/// etcd's client TLS: its server certificate and key, and the CA client certificates
/// must come from (`--client-cert-auth`: the certificate's CN is the user).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// One etcd process of a cluster: where it listens, where its data is, and the process
/// while it runs.
#[derive(Debug)]
struct Member {
    name: String,
    /// Holds etcd's own data dir (`member-data`); the log is next to it, `<dir>.log`,
    /// so it survives the data being removed.
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Plaintext `/health` and `/metrics` (`--listen-metrics-urls`) when the client
    /// port speaks TLS; the client port otherwise.
    health_port: u16,
    child: Option<Child>,
}

/// Ports free now, all different: every listener is held until all are bound, since a
/// port closed at once may be handed out again by the next bind.
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count).map(|_| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|listener| Ok(listener.local_addr()?.port())).collect()
}

fn etcd_binary() -> String {
    std::env::var("PACER_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn client_url(port: u16, tls: bool) -> String {
    if tls { format!("https://127.0.0.1:{port}") } else { url(port) }
}

/// The response to `GET path` from the etcd listening for clients on `port`, if it
/// answers within a moment.
fn http_get(port: u16, path: &str) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    Some(response)
}

/// Whether the etcd listening for clients on `port` says it is healthy: it has a leader
/// and a quorum read went through, so it can serve requests.
fn healthy(port: u16) -> bool {
    http_get(port, "/health").is_some_and(|response| response.contains("\"health\":\"true\""))
}

/// How many peers the etcd listening for clients on `port` takes for reachable, if it
/// answers.
fn active_peers(port: u16) -> Option<usize> {
    http_get(port, "/metrics").map(|metrics| count_active_peers(&metrics))
}

/// The `etcd_network_active_peers` gauges (one per peer, 1 while connected) above 0.
fn count_active_peers(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| line.starts_with("etcd_network_active_peers{"))
        .filter(|line| line.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()).is_some_and(|value| value > 0.0))
        .count()
}

fn data_dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> EtcdServerError + '_ {
    move |source| EtcdServerError::DataDir { path: path.display().to_string(), source }
}

impl Member {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("member-data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    fn peer(&self) -> String {
        format!("{}={}", self.name, url(self.peer_port))
    }

    /// Starts etcd as this member of the cluster `initial_cluster` (`name=peer URL,...`).
    /// `state` is `new` for a cluster being formed, `existing` for a member joining a
    /// running one; etcd reads neither, nor the cluster and token, once its data dir
    /// holds a write-ahead log: it then restarts as the member it was.
    fn spawn(&mut self, initial_cluster: &str, state: &str, token: &str, extra_args: &[String], tls: Option<&ServerTls>) -> Result<(), EtcdServerError> {
        let binary = etcd_binary();
        let client_url = client_url(self.client_port, tls.is_some());
        let peer_url = url(self.peer_port);
        let log_path = self.log_path();
        let log = File::options().create(true).append(true).open(&log_path).map_err(data_dir_error(&log_path))?;
        let log_err = log.try_clone().map_err(data_dir_error(&log_path))?;
        let mut command = Command::new(&binary);
        command
            .arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={token}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            // Old revisions go after 5 minutes: the quota counts them, and the leader's
            // decision inputs (`pacer history`) are written often (watchers that fall
            // further behind list again).
            .arg("--auto-compaction-mode=periodic")
            .arg("--auto-compaction-retention=5m")
            .args(extra_args)
            .args(
                tls.map(|tls| {
                    vec![
                        format!("--cert-file={}", tls.cert.display()),
                        format!("--key-file={}", tls.key.display()),
                        format!("--trusted-ca-file={}", tls.ca.display()),
                        "--client-cert-auth".to_string(),
                        format!("--listen-metrics-urls={}", url(self.health_port)),
                    ]
                })
                .unwrap_or_default(),
            )
            .env_remove("ETCD_NAME")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child
        // if the thread that spawned it dies, so no etcd outlives a crashed test (see the
        // module's note on which thread that is).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| EtcdServerError::Spawn { binary: binary.clone(), source })?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process was started and has not exited (it is reaped if it has).
    fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` to the process, if it runs.
    fn signal(&mut self, signal: i32) {
        if self.running()
            && let Some(pid) = self.pid().and_then(|pid| i32::try_from(pid).ok())
        {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGTERM, then SIGKILL after `STOP_GRACE`; reaped either way. A frozen member is
    /// woken first, so that it can act on the SIGTERM.
    fn stop(&mut self) {
        self.signal(libc::SIGCONT);
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, STOP_GRACE);
        }
    }

    /// SIGKILL at once, as a crash would; reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until every one of `members` answers /health. Fails as soon as one exits (a
/// port was taken, its data is bad), or after `HEALTHY_WITHIN`, naming the log of the
/// first member not healthy.
fn wait_healthy(members: &mut [Member]) -> Result<(), EtcdServerError> {
    let mut members: Vec<&mut Member> = members.iter_mut().collect();
    wait_healthy_each(&mut members)
}

/// `wait_healthy` of members that need not be neighbours in one slice.
fn wait_healthy_each(members: &mut [&mut Member]) -> Result<(), EtcdServerError> {
    let started = Instant::now();
    loop {
        let pending: Vec<usize> = (0..members.len()).filter(|&index| !healthy(members[index].health_port)).collect();
        let Some(&first) = pending.first() else { return Ok(()) };
        let exited = pending.iter().copied().find(|&index| !members[index].running());
        if exited.is_some() || started.elapsed() >= HEALTHY_WITHIN {
            let log = members[exited.unwrap_or(first)].log_path().display().to_string();
            return Err(EtcdServerError::NotHealthy { waited: started.elapsed(), log });
        }
        sleep(Duration::from_millis(25));
    }
}

impl EtcdCluster {
    /// Starts a new cluster of `members` members, `m1..mN`, with their data in `dir/m1`,
    /// ... (created if missing; each log next to it, `dir/m1.log`), and waits until every
    /// member is healthy. `extra_args` go to every member as they are
    /// (`--heartbeat-interval=50`, ...).
    ///
    /// The members are started together, since a new member waits for the others
    /// before the cluster has a leader. The member dirs must not hold an earlier
    /// cluster's data: etcd would restart that cluster, whose members listened on other
    /// ports. Panics if `members` is 0.
    pub fn start(dir: &Path, members: usize, extra_args: &[&str]) -> Result<EtcdCluster, EtcdServerError> {
        assert!(members > 0, "an etcd cluster has at least one member");
        let dirs: Vec<(String, PathBuf)> = (1..=members).map(|index| (format!("m{index}"), dir.join(format!("m{index}")))).collect();
        if members > 1 {
            for (_, member_dir) in &dirs {
                let data = member_dir.join("member-data");
                if data.exists() {
                    let error = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "holds an earlier cluster's data");
                    return Err(EtcdServerError::DataDir { path: data.display().to_string(), source: error });
                }
            }
        }
        EtcdCluster::start_members(dirs, extra_args, None)
    }

    /// Like `start`, every member with client TLS and client-certificate auth
    /// (`EtcdServer::start_secure`); peers talk plaintext on loopback.
    pub fn start_secure(dir: &Path, members: usize, extra_args: &[&str], tls: ServerTls) -> Result<EtcdCluster, EtcdServerError> {
        assert!(members > 0, "an etcd cluster has at least one member");
        let dirs: Vec<(String, PathBuf)> = (1..=members).map(|index| (format!("m{index}"), dir.join(format!("m{index}")))).collect();
        EtcdCluster::start_members(dirs, extra_args, Some(tls))
    }

    /// Starts the members named in `dirs`, each with its data in its dir, as a new
    /// cluster, trying fresh ports when a start fails for any reason but a missing
    /// binary. A member's data made by a failed start is removed (it names the ports
    /// that failed); data that was there before is not.
    fn start_members(dirs: Vec<(String, PathBuf)>, extra_args: &[&str], tls: Option<ServerTls>) -> Result<EtcdCluster, EtcdServerError> {
        for (_, member_dir) in &dirs {
            fs::create_dir_all(member_dir).map_err(data_dir_error(member_dir))?;
        }
        let mut cluster = EtcdCluster {
            members: dirs.into_iter().map(|(name, dir)| Member { name, dir, client_port: 0, peer_port: 0, health_port: 0, child: None }).collect(),
            token: format!("pacer-{}", uuid::Uuid::new_v4()),
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            tls,
        };
        let had_data: Vec<bool> = cluster.members.iter().map(|member| member.data_dir().exists()).collect();
        let mut last_error = None;
        for _attempt in 0..START_ATTEMPTS {
            let ports = free_ports(3 * cluster.members.len()).map_err(EtcdServerError::Ports)?;
            let secure = cluster.tls.is_some();
            for (member, ports) in cluster.members.iter_mut().zip(ports.chunks(3)) {
                member.client_port = ports[0];
                member.peer_port = ports[1];
                member.health_port = if secure { ports[2] } else { ports[0] };
            }
            match cluster.spawn_all().and_then(|()| wait_healthy(&mut cluster.members)) {
                Ok(()) => return Ok(cluster),
                Err(error) => {
                    cluster.stop_all();
                    for (member, had_data) in cluster.members.iter().zip(&had_data) {
                        if !had_data {
                            let _ = fs::remove_dir_all(member.data_dir());
                        }
                    }
                    match error {
                        EtcdServerError::Spawn { .. } => return Err(error),
                        error => last_error = Some(error),
                    }
                }
            }
        }
        Err(last_error.unwrap_or(EtcdServerError::NotHealthy { waited: Duration::ZERO, log: String::new() }))
    }

    /// `--initial-cluster`: every member's name and peer URL.
    fn initial_cluster(&self) -> String {
        self.members.iter().map(Member::peer).collect::<Vec<_>>().join(",")
    }

    fn spawn_all(&mut self) -> Result<(), EtcdServerError> {
        let initial_cluster = self.initial_cluster();
        for member in &mut self.members {
            member.spawn(&initial_cluster, "new", &self.token, &self.extra_args, self.tls.as_ref())?;
        }
        Ok(())
    }

    /// Stops the member at `index` (SIGTERM, then SIGKILL after `STOP_GRACE`).
    ///
    /// A leader told to stop first hands its leadership to the peer it has been
    /// connected to longest, and waits for that peer to take it for etcd's request
    /// timeout (7 s by default). If that peer has just been stopped or killed and the
    /// leader has not noticed yet (it notices within a few heartbeats), it waits in vain
    /// and is killed after the grace: seen with three members stopped in a row. So the
    /// member is first given up to a second to take no more peers for reachable than
    /// still run.
    fn stop_member(&mut self, index: usize) {
        if self.members.len() > 1 && self.members[index].running() {
            let running_peers = (0..self.members.len()).filter(|&other| other != index && self.members[other].running()).count();
            let port = self.members[index].health_port;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(1) && active_peers(port).is_some_and(|active| active > running_peers) {
                sleep(Duration::from_millis(20));
            }
        }
        self.members[index].stop();
    }

    fn stop_all(&mut self) {
        for index in 0..self.members.len() {
            self.stop_member(index);
        }
    }

    /// The index in `members` of member number `member`; panics when there is none.
    fn index(&self, member: usize) -> usize {
        let count = self.members.len();
        match member.checked_sub(1) {
            Some(index) if index < count => index,
            _ => panic!("no etcd member {member}: the members are 1..={count}"),
        }
    }

    fn member(&self, member: usize) -> &Member {
        &self.members[self.index(member)]
    }

    fn member_mut(&mut self, member: usize) -> &mut Member {
        let index = self.index(member);
        &mut self.members[index]
    }

    /// How many members the cluster has (running or not).
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The client URLs of all members, `http://127.0.0.1:PORT`, in member order: what
    /// a client given the whole cluster connects to.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|member| client_url(member.client_port, self.tls.is_some())).collect()
    }

    /// The client URL of one member (numbered from 1), `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, member: usize) -> String {
        client_url(self.member(member).client_port, self.tls.is_some())
    }

    /// The member's name in the cluster, `m1`, ... (etcd's `--name`).
    pub fn name(&self, member: usize) -> &str {
        &self.member(member).name
    }

    /// The PID of the member's process, unless it was killed or stopped since it was
    /// last started. It may have exited on its own: see `running`.
    pub fn pid(&self, member: usize) -> Option<u32> {
        self.member(member).pid()
    }

    /// The PIDs of the members' processes, as `pid` gives them, members killed or
    /// stopped left out (what a harness records in its PID files).
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(Member::pid).collect()
    }

    /// Whether the member's process runs: started, not killed or stopped, not exited.
    pub fn running(&mut self, member: usize) -> bool {
        self.member_mut(member).running()
    }

    /// Kills the member at once (SIGKILL, reaped), as a crash or a power-off would. Its
    /// data stays for `restart`.
    pub fn kill(&mut self, member: usize) {
        self.member_mut(member).kill();
    }

    /// Stops the member: SIGTERM, then SIGKILL after five seconds.
    pub fn stop(&mut self, member: usize) {
        let index = self.index(member);
        self.stop_member(index);
    }

    /// Freezes the member (SIGSTOP): it holds its connections and answers nothing, as
    /// a machine that hangs or a process stalled on its disk.
    pub fn freeze(&mut self, member: usize) {
        self.member_mut(member).signal(libc::SIGSTOP);
    }

    /// Wakes a frozen member (SIGCONT).
    pub fn thaw(&mut self, member: usize) {
        self.member_mut(member).signal(libc::SIGCONT);
    }

    /// Whether the member answers `/health` now: it has a leader and can serve a quorum
    /// read.
    pub fn healthy(&self, member: usize) -> bool {
        healthy(self.member(member).health_port)
    }

    /// Kills every member at once (SIGKILL, reaped): etcd lost whole. Their data stays
    /// for `start_stopped`.
    pub fn kill_all(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }

    /// Starts every member that does not run (killed, stopped or exited) again on its
    /// ports with its data, all together — a member waits for a quorum before it is
    /// healthy, so members of a cluster that lost its quorum cannot be restarted one
    /// by one — and waits until each is healthy. Returns how many were started.
    ///
    /// Call it from the thread that should own them (see the module's note).
    pub fn start_stopped(&mut self) -> Result<usize, EtcdServerError> {
        let state = if self.members.len() == 1 { "new" } else { "existing" };
        let initial_cluster = self.initial_cluster();
        let mut started = Vec::new();
        for (index, member) in self.members.iter_mut().enumerate() {
            if !member.running() {
                member.child = None;
                member.spawn(&initial_cluster, state, &self.token, &self.extra_args, self.tls.as_ref())?;
                started.push(index);
            }
        }
        let count = started.len();
        let mut members: Vec<&mut Member> =
            self.members.iter_mut().enumerate().filter(|(index, _)| started.contains(index)).map(|(_, member)| member).collect();
        let result = wait_healthy_each(&mut members);
        if result.is_err() {
            for member in members {
                member.stop();
            }
        }
        result.map(|()| count)
    }

    /// Restarts every member, one at a time, as an upgrade of etcd does: members that
    /// do not run are started first (`start_stopped`); then each member in turn is
    /// stopped (SIGTERM: a leader hands its leadership over first) and started again
    /// with its data, and the next one only once it is healthy again — never while
    /// another member is unhealthy, so a quorum is never lost by the restart itself
    /// (with one member, the cluster is down while it restarts). `report` is told of
    /// each member as it is restarted (its number and name).
    ///
    /// Call it from the thread that should own the members (see the module's note).
    pub fn rolling_restart(&mut self, mut report: impl FnMut(usize, &str)) -> Result<(), EtcdServerError> {
        self.start_stopped()?;
        for member in 1..=self.members.len() {
            let others: Vec<usize> = (1..=self.members.len()).filter(|&other| other != member).collect();
            let waiting = Instant::now();
            while !others.iter().all(|&other| self.healthy(other)) {
                if waiting.elapsed() >= HEALTHY_WITHIN {
                    let other = others.iter().copied().find(|&other| !self.healthy(other)).unwrap_or(member);
                    return Err(EtcdServerError::NotHealthy { waited: waiting.elapsed(), log: self.member(other).log_path().display().to_string() });
                }
                sleep(Duration::from_millis(25));
            }
            report(member, &self.member(member).name);
            self.restart(member)?;
        }
        Ok(())
    }

    /// Starts the member again on the same ports with the same data, after `kill` or
    /// `stop` (stopping it first if it runs), and waits until it is healthy: it has
    /// rejoined, found the leader and can serve a quorum read.
    ///
    /// With the write-ahead log in its data dir, etcd restarts as the member it was
    /// and ignores `--initial-cluster`, its token and `--initial-cluster-state` (etcd
    /// 3.4 restarts alike with `new` and `existing`). It is told `existing` (`new` for a
    /// cluster of one, which bootstraps alone as it always did), which is what etcd
    /// expects of a member of a running cluster. A member whose data is gone cannot come
    /// back this way: the others send it entries past its empty log and etcd panics
    /// ("raft log corrupted, truncated, or lost?"), so this returns `NotHealthy`; such a
    /// member has to be removed and added again, which this does not do.
    ///
    /// Call it from the thread that should own the member (see the module's note on
    /// `PR_SET_PDEATHSIG`).
    pub fn restart(&mut self, member: usize) -> Result<(), EtcdServerError> {
        let index = self.index(member);
        let state = if self.members.len() == 1 { "new" } else { "existing" };
        let initial_cluster = self.initial_cluster();
        self.stop_member(index);
        let target = &mut self.members[index];
        target.spawn(&initial_cluster, state, &self.token, &self.extra_args, self.tls.as_ref())?;
        let result = wait_healthy(std::slice::from_mut(target));
        if result.is_err() {
            self.members[index].stop();
        }
        result
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl EtcdServer {
    /// Starts etcd with its data in `data_dir` (created if missing) and waits until it
    /// is healthy. `extra_args` go to etcd as they are (`--max-txn-ops=64`, ...).
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Result<EtcdServer, EtcdServerError> {
        let cluster = EtcdCluster::start_members(vec![("pacer".to_string(), data_dir.to_path_buf())], extra_args, None)?;
        Ok(EtcdServer { cluster })
    }

    /// Like `start`, with client TLS and client-certificate auth: the endpoint is
    /// `https://127.0.0.1:PORT`, and only clients with a certificate from `tls.ca` are
    /// served (health is probed on a plaintext metrics port).
    pub fn start_secure(data_dir: &Path, tls: ServerTls, extra_args: &[&str]) -> Result<EtcdServer, EtcdServerError> {
        let cluster = EtcdCluster::start_members(vec![("pacer".to_string(), data_dir.to_path_buf())], extra_args, Some(tls))?;
        Ok(EtcdServer { cluster })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.cluster.endpoint(1)
    }

    /// The cluster of one member underneath (named `pacer`), for code that runs one
    /// member or several alike (`pacer up`).
    pub fn into_cluster(self) -> EtcdCluster {
        self.cluster
    }

    pub fn pid(&self) -> Option<u32> {
        self.cluster.pid(1)
    }

    /// Stops the server: SIGTERM, then SIGKILL after five seconds.
    pub fn stop(&mut self) {
        self.cluster.stop(1);
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.cluster.kill(1);
    }

    /// Starts the server again on the same ports with the same data, after `stop` or
    /// `kill`.
    pub fn restart(&mut self) -> Result<(), EtcdServerError> {
        self.cluster.restart(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_all_different() {
        let mut ports = free_ports(12).expect("bind loopback ports");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 12);
    }

    #[test]
    fn active_peers_are_counted_from_the_gauges() {
        let metrics = "# HELP etcd_network_active_peers The current number of active peer connections.\n\
            # TYPE etcd_network_active_peers gauge\n\
            etcd_network_active_peers{Local=\"6c56\",Remote=\"b453\"} 1\n\
            etcd_network_active_peers{Local=\"6c56\",Remote=\"c4f2\"} 0\n\
            etcd_network_disconnected_peers_total{Local=\"6c56\",Remote=\"c4f2\"} 3\n";
        assert_eq!(count_active_peers(metrics), 1);
        assert_eq!(count_active_peers(""), 0);
    }

    fn gone(pid: u32) -> bool {
        let Ok(pid) = i32::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
        let result = unsafe { libc::kill(pid, 0) };
        result == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    /// EtcdServer, now a cluster of one: its layout, kill, restart with its data, stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_restarts_with_its_data_and_leaves_no_process() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let data = dir.path().join("etcd");
        let mut server = tokio::task::block_in_place(|| EtcdServer::start(&data, &[])).expect("start etcd (scripts/install-deps)");
        assert!(data.join("member-data").is_dir());
        assert!(dir.path().join("etcd.log").is_file());
        let endpoint = server.endpoint();
        let mut client = etcd_client::Client::connect([&endpoint], None).await.expect("connect");
        client.put("/k", "v", None).await.expect("put");
        let mut pids: Vec<u32> = server.pid().into_iter().collect();
        tokio::task::block_in_place(|| server.kill());
        assert!(server.pid().is_none());
        tokio::task::block_in_place(|| server.restart()).expect("restart etcd");
        assert_eq!(server.endpoint(), endpoint, "same ports");
        pids.extend(server.pid());
        let mut client = etcd_client::Client::connect([&endpoint], None).await.expect("connect");
        let response = client.get("/k", None).await.expect("get");
        assert_eq!(response.kvs().first().map(|kv| kv.value().to_vec()), Some(b"v".to_vec()), "the restarted etcd kept its data");
        tokio::task::block_in_place(|| server.stop());
        tokio::task::block_in_place(|| server.restart()).expect("restart etcd after stop");
        pids.extend(server.pid());
        tokio::task::block_in_place(|| drop(server));
        assert_eq!(pids.len(), 3);
        for pid in pids {
            assert!(gone(pid), "etcd {pid} still runs");
        }
    }

    #[test]
    fn clusters_have_their_own_token() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let first = EtcdCluster::start(&dir.path().join("a"), 1, &[]).expect("start etcd (scripts/install-deps)");
        let second = EtcdCluster::start(&dir.path().join("b"), 1, &[]).expect("start etcd");
        assert_ne!(first.token, second.token);
        assert_eq!(first.name(1), "m1");
        assert_eq!(first.endpoints(), vec![first.endpoint(1)]);
    }

    #[test]
    fn a_new_cluster_refuses_an_earlier_clusters_data() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        fs::create_dir_all(dir.path().join("m2/member-data")).expect("create a data dir");
        let error = EtcdCluster::start(dir.path(), 3, &[]).expect_err("earlier data refused");
        assert!(matches!(error, EtcdServerError::DataDir { .. }), "{error}");
    }

    #[test]
    #[should_panic(expected = "no etcd member 0")]
    fn members_are_numbered_from_one() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let cluster = EtcdCluster::start(dir.path(), 1, &[]).expect("start etcd (scripts/install-deps)");
        let _ = cluster.endpoint(0);
    }
}
