//! `pacer up`: a local cluster in the foreground. Today it runs the private etcd the
//! other commands talk to; the scheduler and node agents join it as they are built.

use std::path::Path;

use anyhow::Context;

use crate::local::etcd::EtcdServer;

pub async fn run(state_dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(state_dir.join("pids")).with_context(|| format!("create {}", state_dir.display()))?;
    let data_dir = state_dir.join("etcd");
    let server = tokio::task::spawn_blocking(move || EtcdServer::start(&data_dir, &[]))
        .await
        .context("start etcd")??;
    let endpoint = server.endpoint();
    std::fs::write(state_dir.join("endpoint"), format!("{endpoint}\n")).context("write endpoint file")?;
    if let Some(pid) = server.pid() {
        std::fs::write(state_dir.join("pids").join("etcd"), format!("{pid}\n")).context("write pid file")?;
    }
    println!("etcd running at {endpoint}");
    println!("use it with: export PACER_ETCD={endpoint}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping");
    drop(server);
    let _ = std::fs::remove_file(state_dir.join("pids").join("etcd"));
    let _ = std::fs::remove_file(state_dir.join("endpoint"));
    Ok(0)
}
