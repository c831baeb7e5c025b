//! Keeping a lease alive (a node agent's, the scheduler leader's), and telling its
//! holder how long it can still be sure of it.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Store;
use super::node::AGENT_REQUEST_TIMEOUT;

/// What the agent knows of its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// etcd confirmed a renewal requested at `renewed_at`: the lease lasts at least
    /// until `renewed_at + ttl` (etcd counts from when it received the request, which
    /// was later).
    Held { renewed_at: Instant },
    /// etcd said the lease is gone (expired or revoked).
    Lost,
}

/// Renews `lease` every quarter of `ttl` until the task is aborted or etcd says the lease
/// is gone. Failed renewals are retried at once (a fresh keep-alive stream); the agent
/// watches the published state and acts on the deadline itself.
pub fn keep_alive(store: Store, lease: i64, ttl: Duration, granted_at: Instant) -> (JoinHandle<()>, watch::Receiver<LeaseState>) {
    let (sender, receiver) = watch::channel(LeaseState::Held { renewed_at: granted_at });
    let task = tokio::spawn(async move {
        let period = ttl / 4;
        let mut stream = None;
        loop {
            let sent = Instant::now();
            if stream.is_none() {
                let mut client = store.client();
                match tokio::time::timeout(AGENT_REQUEST_TIMEOUT, client.lease_keep_alive(lease)).await {
                    Ok(Ok(pair)) => stream = Some(pair),
                    Ok(Err(error)) => tracing::warn!(%error, "cannot open the lease keep-alive stream"),
                    Err(_) => tracing::warn!("no answer opening the lease keep-alive stream"),
                }
            }
            if let Some((keeper, responses)) = stream.as_mut() {
                let renewal = async {
                    keeper.keep_alive().await?;
                    responses.message().await
                };
                match tokio::time::timeout(period.max(Duration::from_millis(200)), renewal).await {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => {
                        let _ = sender.send(LeaseState::Held { renewed_at: sent });
                    }
                    Ok(Ok(Some(_))) => {
                        let _ = sender.send(LeaseState::Lost);
                        return;
                    }
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                        tracing::warn!("lease renewal failed; retrying");
                        stream = None;
                        continue;
                    }
                }
            }
            let elapsed = sent.elapsed();
            tokio::time::sleep(period.saturating_sub(elapsed).max(Duration::from_millis(50))).await;
        }
    });
    (task, receiver)
}

/// Completes when the lease has gone half its time without a confirmed renewal, or
/// etcd said it is gone: the moment for its holder to act as if it had lost it
/// (an agent stops its resources, a leader stops writing) while there is time.
pub async fn expiring(mut state: watch::Receiver<LeaseState>, ttl: Duration) {
    loop {
        let renewed_at = match *state.borrow_and_update() {
            LeaseState::Held { renewed_at } => renewed_at,
            LeaseState::Lost => return,
        };
        tokio::select! {
            () = tokio::time::sleep_until((renewed_at + ttl / 2).into()) => return,
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
