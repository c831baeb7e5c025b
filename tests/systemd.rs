//! The systemd units (deploy/systemd/) and the notification protocol the daemons
//! speak to systemd: a real `pacer agent` and `pacer scheduler` against a private etcd,
//! each given a `NOTIFY_SOCKET` this test binds (a `UnixDatagram` in a temporary
//! directory) and a `WATCHDOG_USEC`, as systemd would; and the unit files through
//! `systemd-analyze verify` when the machine has it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestEtcd;

const PREFIX: &str = "/pacer";
const UNITS: [&str; 2] = ["pacer-agent.service", "pacer-scheduler.service"];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd")
}

/// The socket systemd would listen on: datagrams the daemon sends, with when they came.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        NotifySocket { socket, path, _dir: dir }
    }

    /// Every message received within `window`.
    fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + window;
        let mut messages = Vec::new();
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(length) = self.socket.recv(&mut buffer) {
                messages.push((Instant::now(), String::from_utf8_lossy(&buffer[..length]).into_owned()));
            }
        }
        messages
    }

    /// Waits up to `limit` for a message with a line starting with `line`; returns every message
    /// received until then (it included).
    fn wait_for(&self, line: &str, limit: Duration, log: &Path) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(length) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                let found = message.lines().any(|each| each.starts_with(line));
                seen.push(message);
                if found {
                    return seen;
                }
            }
        }
        panic!("no {line} within {limit:?}; received {seen:?}\n{}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

/// The loop's pings: `WATCHDOG=1` alone, not the self-fencing's extension of the
/// watchdog and its restoration (which carry `WATCHDOG_USEC=`).
fn pings(messages: &[(Instant, String)]) -> usize {
    messages.iter().filter(|(_, message)| message.lines().any(|line| line == "WATCHDOG=1") && !message.contains("WATCHDOG_USEC=")).count()
}

/// The values of `WATCHDOG_USEC=` sent, in order.
fn watchdog_changes(messages: &[(Instant, String)]) -> Vec<u64> {
    messages
        .iter()
        .flat_map(|(_, message)| message.lines())
        .filter_map(|line| line.strip_prefix("WATCHDOG_USEC="))
        .map(|value| value.parse().expect("WATCHDOG_USEC is a number"))
        .collect()
}

/// A process this test started, ended by PID when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.0, Duration::from_secs(15));
    }
}

/// etcd stopped with SIGSTOP, resumed when dropped (also when an assertion fails).
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Frozen {
        // SAFETY: SIGSTOP to the etcd this test started.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: SIGCONT to the etcd this test stopped.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

fn daemon(etcd: &TestEtcd, notify: &NotifySocket, watchdog: Duration, args: &[&str], log: &Path) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .env("PACER_ETCD", etcd.endpoint())
        .env("PACER_PREFIX", PREFIX)
        .env("PACER_LOG", "pacer=info")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start pacer");
    Process(child)
}

fn terminate_gently(process: &Process) {
    // SAFETY: SIGTERM to the PID of a child this test started and has not reaped.
    unsafe {
        libc::kill(i32::try_from(process.0.id()).expect("pid"), libc::SIGTERM);
    }
}

/// READY=1 once the agent has claimed its node and probed its resource; WATCHDOG=1 at
/// half of WATCHDOG_USEC while its lease is renewed; none while etcd is frozen (the
/// lease cannot be renewed: the agent self-fences, and systemd would restart it);
/// pings again once etcd answers and the node is claimed anew; STOPPING=1 on SIGTERM.
#[test]
fn agent_is_ready_once_probed_and_pings_the_watchdog_only_while_its_lease_holds() {
    let etcd = TestEtcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let resource = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {{name: cluster}}\nspec: {{stonithEnabled: false}}\n---\n\
         apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  params: {{state: {}}}\n",
        dir.path().join("web.state").display()
    );
    let applied = common::pacer(&etcd.endpoint(), PREFIX, &["apply", "-f", "-"], Some(&resource));
    assert!(applied.status.success(), "{}", common::text(&applied.stderr));
    let notify = NotifySocket::bind();
    let log = dir.path().join("agent.log");
    let ttl = Duration::from_secs(4);
    let watchdog = Duration::from_secs(1);
    let state_arg = state.display().to_string();
    let agent = daemon(&etcd, &notify, watchdog, &["agent", "--node", "n1", "--lease-ttl", "4", "--state-dir", &state_arg], &log);

    let started = Instant::now();
    let before_ready = notify.wait_for("READY=1", Duration::from_secs(30), &log);
    println!("READY=1 after {:?}; before it: {before_ready:?}", started.elapsed());
    let ready = before_ready.last().expect("the ready message");
    assert!(ready.contains("STATUS=node n1 claimed, 1 resources probed"), "{ready:?}");
    assert!(std::fs::read_to_string(&log).unwrap_or_default().contains("every resource probed"), "READY before the probe pass");
    // Before READY the watchdog is not counting yet; pings may come, but READY only
    // after the probe: the heartbeat says probed.
    let healthy = notify.collect(Duration::from_secs(3));
    println!("healthy: {} pings in 3 s (one expected every {:?})", pings(&healthy), watchdog / 2);
    assert!(pings(&healthy) >= 3, "too few pings while healthy: {healthy:?}");

    let etcd_pid = i32::try_from(etcd.server.pid().expect("etcd pid")).expect("pid");
    let frozen = Frozen::freeze(etcd_pid);
    // The lease counts as healthy until half its TTL has passed without a renewal:
    // pings may come for up to that long (plus one interval), none after.
    let settling = notify.collect(ttl / 2 + watchdog);
    let cut = notify.collect(Duration::from_secs(3));
    println!("etcd frozen: {} pings while the lease ran out, {} in the 3 s after", pings(&settling), pings(&cut));
    assert_eq!(pings(&cut), 0, "pings while the lease cannot be renewed: {cut:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(cut.iter().chain(&settling).any(|(_, message)| message.contains("STATUS=lease lost")), "the status says the lease was lost: {settling:?} {cut:?}");
    // The self-fencing ran off the loop with the watchdog extended for its known
    // length (at least the usual timeout more), then put back.
    let both: Vec<(Instant, String)> = settling.iter().chain(&cut).cloned().collect();
    let changes = watchdog_changes(&both);
    println!("self-fencing: WATCHDOG_USEC {changes:?}");
    let usual = u64::try_from(watchdog.as_micros()).expect("usec");
    assert_eq!(changes.len(), 2, "one extension, one restoration: {both:?}");
    assert!(changes[0] > usual, "the self-fencing extends the watchdog: {changes:?}");
    assert_eq!(changes[1], usual, "and puts it back: {changes:?}");
    drop(frozen);

    let back = Instant::now();
    let mut resumed = Vec::new();
    while back.elapsed() < Duration::from_secs(30) && pings(&resumed) < 2 {
        resumed.extend(notify.collect(Duration::from_millis(500)));
    }
    println!("etcd back: pings again after {:?}", back.elapsed());
    assert!(pings(&resumed) >= 2, "no pings after etcd came back: {resumed:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default());

    terminate_gently(&agent);
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(20), &log);
    assert!(stopping.iter().all(|message| !message.contains("READY=1")), "READY is sent once: {stopping:?}");
}

/// The scheduler is READY once its loop runs, pings while it leads with a healthy
/// lease, says so in its status, and says STOPPING=1 on SIGTERM.
#[test]
fn scheduler_is_ready_once_its_loop_runs_and_pings_while_it_leads() {
    let etcd = TestEtcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = NotifySocket::bind();
    let log = dir.path().join("scheduler.log");
    let scheduler = daemon(&etcd, &notify, Duration::from_secs(1), &["scheduler", "--lease-ttl", "4"], &log);
    notify.wait_for("READY=1", Duration::from_secs(30), &log);
    notify.wait_for("STATUS=leading, term ", Duration::from_secs(30), &log);
    let leading = notify.collect(Duration::from_secs(3));
    assert!(pings(&leading) >= 3, "too few pings while leading: {leading:?}");
    terminate_gently(&scheduler);
    notify.wait_for("STOPPING=1", Duration::from_secs(20), &log);
}

/// A broken NOTIFY_SOCKET or WATCHDOG_USEC is refused at start, in one line.
#[test]
fn bad_notification_settings_are_refused_at_start() {
    let etcd = TestEtcd::start();
    let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["scheduler"])
        .env("PACER_ETCD", etcd.endpoint())
        .env("NOTIFY_SOCKET", "/tmp/x")
        .env("WATCHDOG_USEC", "soon")
        .env_remove("WATCHDOG_PID")
        .output()
        .expect("run pacer");
    assert_eq!(output.status.code(), Some(2));
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("read WATCHDOG_USEC \"soon\": expected a positive number of microseconds"), "{stderr}");
}

/// The directives the design relies on are in the units (a unit edited carelessly
/// loses none of them).
#[test]
fn units_carry_the_required_directives() {
    let read = |name: &str| std::fs::read_to_string(units_dir().join(name)).expect("read unit");
    let has = |text: &str, line: &str| text.lines().any(|each| each.trim() == line);
    let agent = read("pacer-agent.service");
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "KillMode=process",
        "SendSIGKILL=no",
        "TimeoutStopSec=30min",
        "Restart=on-failure",
        "After=network-online.target time-sync.target resource-agents-deps.target",
        // time-sync.target is passive: ordered after, never pulled in.
        "Wants=network-online.target resource-agents-deps.target",
        // Back within the lease, so a crashed agent resumes it.
        "RestartSec=1s",
        // Bounded: an unreachable etcd never holds up boot.
        "TimeoutStartSec=10min",
    ] {
        assert!(has(&agent, line), "pacer-agent.service lacks {line}");
    }
    assert!(!agent.lines().any(|line| line.starts_with("User=")), "the agent runs as root");
    let scheduler = read("pacer-scheduler.service");
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "User=pacer",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "Environment=PACER_CONFIG=/etc/pacer/scheduler.yaml",
        "LogsDirectory=pacer",
        "SystemCallErrorNumber=EPERM",
    ] {
        assert!(has(&scheduler, line), "pacer-scheduler.service lacks {line}");
    }
}

/// `systemd-analyze verify` (systemd need not run) says nothing about either unit —
/// any line it prints is a finding. The units name /usr/bin/pacer, which verify
/// requires to exist: copies name the binary this test built. A broken copy is
/// reported, so the check can fail.
#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("skipped: systemd-analyze is not installed (Debian's systemd package provides it)");
        return;
    }
    let copies = tempfile::tempdir().expect("tempdir");
    for unit in UNITS {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read unit");
        std::fs::write(copies.path().join(unit), text.replace("/usr/bin/pacer", env!("CARGO_BIN_EXE_pacer"))).expect("write copy");
    }
    let verify = |paths: &[PathBuf]| {
        let output = Command::new("systemd-analyze").args(["verify", "--man=no"]).args(paths).output().expect("run systemd-analyze");
        (output.status.success(), format!("{}{}", common::text(&output.stdout), common::text(&output.stderr)))
    };
    let paths: Vec<PathBuf> = UNITS.iter().map(|unit| copies.path().join(unit)).collect();
    let (success, said) = verify(&paths);
    assert!(success && said.trim().is_empty(), "systemd-analyze verify: {said}");

    let broken = copies.path().join("pacer-broken.service");
    let text = std::fs::read_to_string(&paths[0]).expect("read copy").replace("Type=notify", "Type=notifi");
    std::fs::write(&broken, text).expect("write broken copy");
    let (_, said) = verify(&[broken]);
    assert!(said.contains("Failed to parse service type"), "a broken unit passes: {said:?}");
}
