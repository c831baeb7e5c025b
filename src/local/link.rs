//! A network link to etcd that can be cut: a TCP forwarder on a free loopback port.
//! While cut, open connections are dropped and new ones closed at once — a node
//! losing its network to etcd, without network namespaces. Tests and the e2e fault
//! campaign point an agent at it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The link; the forwarder stops when it is dropped.
pub struct Link {
    endpoint: String,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Opens a link to `target` (`http://host:port`) on a free loopback port. Must run
    /// inside a tokio runtime.
    pub async fn open(target: &str) -> std::io::Result<Link> {
        Link::open_on(std::net::Ipv4Addr::LOCALHOST, target).await
    }

    /// Opens a link listening on `address` (a free port), for a node that reaches this
    /// host over a network of its own (the e2e harness's network namespaces).
    pub async fn open_on(address: std::net::Ipv4Addr, target: &str) -> std::io::Result<Link> {
        let listener = tokio::net::TcpListener::bind((address, 0)).await?;
        // A TCP relay: TLS passes through it end to end, so the link speaks the
        // target's scheme.
        let scheme = if target.starts_with("https://") { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr()?);
        let target = target.trim_start_matches("http://").trim_start_matches("https://").to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            let mut connections: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        if flag.load(Ordering::SeqCst) {
                            continue;
                        }
                        let target = target.clone();
                        connections.push(tokio::spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        }));
                    }
                    _ = ticker.tick() => {
                        if flag.load(Ordering::SeqCst) {
                            for connection in connections.drain(..) {
                                connection.abort();
                            }
                        }
                        connections.retain(|connection| !connection.is_finished());
                    }
                }
            }
        });
        Ok(Link { endpoint, cut, task })
    }

    /// The endpoint to give the agent instead of etcd's.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Cuts (true) or heals (false) the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
