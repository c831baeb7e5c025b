//! A private etcd server on free loopback ports, started from `etcd` on PATH (or
//! `$PACER_ETCD_BIN`), stopped by PID when dropped.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

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

/// A running etcd. Dropping it stops the process (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    extra_args: Vec<String>,
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(listener.local_addr()?.port())
}

fn etcd_binary() -> String {
    std::env::var("PACER_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

fn healthy(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

impl EtcdServer {
    /// Starts etcd with its data in `data_dir` (created if missing) and waits until it
    /// is healthy. `extra_args` go to etcd as they are (`--max-txn-ops=64`, ...).
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Result<EtcdServer, EtcdServerError> {
        fs::create_dir_all(data_dir).map_err(|source| EtcdServerError::DataDir { path: data_dir.display().to_string(), source })?;
        let mut last_error = None;
        // A port found free can be taken before etcd binds it; try fresh ones.
        for _attempt in 0..3 {
            let client_port = free_port().map_err(EtcdServerError::Ports)?;
            let peer_port = free_port().map_err(EtcdServerError::Ports)?;
            let mut server = EtcdServer {
                child: None,
                client_port,
                peer_port,
                data_dir: data_dir.to_path_buf(),
                extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            };
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error @ EtcdServerError::Spawn { .. }) => return Err(error),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(EtcdServerError::NotHealthy { waited: Duration::ZERO, log: String::new() }))
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), EtcdServerError> {
        let binary = etcd_binary();
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| EtcdServerError::DataDir { path: log_path.display().to_string(), source })?;
        let log_err = log.try_clone().map_err(|source| EtcdServerError::DataDir { path: log_path.display().to_string(), source })?;
        let mut command = Command::new(&binary);
        command
            .arg("--name=pacer")
            .arg(format!("--data-dir={}", self.data_dir.join("member-data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=pacer={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .args(&self.extra_args)
            .env_remove("ETCD_NAME")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child
        // if the thread that spawned it dies, so no etcd outlives a crashed test.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| EtcdServerError::Spawn { binary: binary.clone(), source })?;
        self.child = Some(child);
        let started = Instant::now();
        let deadline = Duration::from_secs(20);
        while started.elapsed() < deadline {
            if healthy(self.client_port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_status)) = child.try_wait()
            {
                break;
            }
            sleep(Duration::from_millis(25));
        }
        self.stop();
        Err(EtcdServerError::NotHealthy { waited: started.elapsed(), log: log_path.display().to_string() })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server: SIGTERM, then SIGKILL after five seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped
            // yet (we hold the Child), so the PID cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports with the same data, after `stop` or
    /// `kill`.
    pub fn restart(&mut self) -> Result<(), EtcdServerError> {
        self.stop();
        self.spawn_and_wait()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
