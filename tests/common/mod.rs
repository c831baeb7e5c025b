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
}

/// Runs the `pacer` binary against `endpoint` with `prefix`, feeding `stdin`.
pub fn pacer(endpoint: &str, prefix: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .env("PACER_ETCD", endpoint)
        .env("PACER_PREFIX", prefix)
        .env_remove("PACER_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pacer");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for pacer")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}
