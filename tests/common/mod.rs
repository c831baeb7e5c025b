//! Shared by the integration tests: a private etcd per test, and running the binary.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use pacer::local::etcd::EtcdServer;
use tempfile::TempDir;

/// A private etcd in a temporary directory; both go away when dropped.
pub struct TestEtcd {
    pub server: EtcdServer,
    // Dropped after the server (fields drop in order), so etcd stops before its data goes.
    pub dir: TempDir,
}

impl TestEtcd {
    pub fn start() -> TestEtcd {
        TestEtcd::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> TestEtcd {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let server = EtcdServer::start(&dir.path().join("etcd"), args).expect("start etcd (run scripts/install-deps)");
        TestEtcd { server, dir }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None).await.expect("connect to the test etcd")
    }

    /// Every key under `prefix`, with its value.
    pub async fn dump(&self, prefix: &str) -> Vec<(String, String)> {
        let mut client = self.client().await;
        let response = client.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())).await.expect("read etcd");
        response.kvs().iter().map(|kv| (String::from_utf8_lossy(kv.key()).to_string(), String::from_utf8_lossy(kv.value()).to_string())).collect()
    }

    /// The stored objects under `prefix` (a store prefix such as `/pacer`): its
    /// `spec/` without the version key every write bumps.
    pub async fn objects(&self, prefix: &str) -> Vec<(String, String)> {
        let version = format!("{prefix}/spec/version");
        self.dump(&format!("{prefix}/spec/")).await.into_iter().filter(|(key, _)| *key != version).collect()
    }
}

/// Runs the `pacer` binary against `endpoint` with `prefix`, feeding `stdin`.
pub fn pacer(endpoint: &str, prefix: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
    command.args(args).env("PACER_ETCD", endpoint).env("PACER_PREFIX", prefix).env_remove("PACER_LOG");
    run(&mut command, stdin)
}

/// Runs `command` to its end, feeding `stdin`, and returns what it printed.
pub fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run pacer");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for pacer")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// A local cluster as `pacer up` starts it (private etcd, a scheduler, N agents with
/// the project's agent directory), for tests that operate a live cluster. Its
/// processes are ended by PID when dropped.
pub struct LocalCluster {
    child: std::process::Child,
    pub endpoint: String,
    pub state_dir: std::path::PathBuf,
    // Dropped last: the processes stop before their directories go.
    pub dir: TempDir,
}

pub const LOCAL_PREFIX: &str = "/pacer";

impl LocalCluster {
    /// Starts `pacer up --nodes N` with `extra` arguments (`--fencing off`, ...) and a
    /// 2 s lease TTL; returns once every component runs.
    pub fn start(nodes: usize, extra: &[&str]) -> LocalCluster {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("up");
        let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["up", "--lease-ttl", "2", "--nodes", &nodes.to_string(), "--state-dir"])
            .arg(&state_dir)
            .arg("--agents-dir")
            .arg(root.join("agents"))
            .args(extra)
            .env("PACER_PREFIX", LOCAL_PREFIX)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pacer up");
        let mut components = vec!["etcd".to_string(), "scheduler".to_string()];
        components.extend((1..=nodes).map(|n| format!("n{n}")));
        let started = Instant::now();
        while !components.iter().all(|component| state_dir.join("pids").join(component).exists()) {
            if started.elapsed() > Duration::from_secs(30) || !matches!(child.try_wait(), Ok(None)) {
                pacer::local::child::terminate(&mut child, Duration::from_secs(30));
                panic!("pacer up did not start: {}", std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let endpoint = std::fs::read_to_string(state_dir.join("endpoint")).expect("endpoint").trim().to_string();
        LocalCluster { child, endpoint, state_dir, dir }
    }

    /// Runs `pacer ARGS` against this cluster.
    pub fn pacer(&self, args: &[&str], stdin: Option<&str>) -> Output {
        pacer(&self.endpoint, LOCAL_PREFIX, args, stdin)
    }

    /// The etcd revision now (from `pacer`'s own view: a read that writes nothing).
    pub async fn revision(&self) -> i64 {
        let mut client = etcd_client::Client::connect([self.endpoint.clone()], None).await.expect("connect");
        let response = client.get(LOCAL_PREFIX, None).await.expect("read");
        response.header().map(|header| header.revision()).unwrap_or_default()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        pacer::local::child::terminate(&mut self.child, std::time::Duration::from_secs(60));
    }
}
