//! Keeping a lease alive (a node agent's, the scheduler leader's), and telling its
//! holder how long it can still be sure of it.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Store;

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

/// Renews `lease` every sixth of `ttl` until the task is aborted or etcd says the
/// lease is gone. An attempt that gets no answer within an eighth of `ttl` (0.25 to 1 s)
/// fails, and a failed one is retried 100 ms later on a fresh keep-alive stream, which
/// the client may route to another member. Losing etcd's leader is the case this is
/// built for (measured by the fault campaign's `KillEtcdMember`): a stream through a
/// follower hangs until a new leader is elected (about a second) and through the dead
/// member fails at once; either way the holder must get a renewal through the new
/// leader before half its lease is gone, when it self-fences. The agent watches the
/// published state and acts on the deadline itself.
pub fn keep_alive(store: Store, lease: i64, ttl: Duration, granted_at: Instant) -> (JoinHandle<()>, watch::Receiver<LeaseState>) {
    let (sender, receiver) = watch::channel(LeaseState::Held { renewed_at: granted_at });
    let task = tokio::spawn(async move {
        let period = (ttl / 6).max(Duration::from_millis(50));
        let patience = (ttl / 8).clamp(Duration::from_millis(250), Duration::from_secs(1));
        let mut stream = None;
        loop {
            let sent = Instant::now();
            let attempt = async {
                if stream.is_none() {
                    let mut client = store.client();
                    stream = Some(client.lease_keep_alive(lease).await?);
                }
                let Some((keeper, responses)) = stream.as_mut() else { return Ok(None) };
                keeper.keep_alive().await?;
                responses.message().await
            };
            match tokio::time::timeout(patience, attempt).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => {
                    let _ = sender.send(LeaseState::Held { renewed_at: sent });
                    tokio::time::sleep(period.saturating_sub(sent.elapsed()).max(Duration::from_millis(50))).await;
                }
                Ok(Ok(Some(_))) => {
                    let _ = sender.send(LeaseState::Lost);
                    return;
                }
                outcome => {
                    match outcome {
                        Ok(Err(error)) => tracing::warn!(%error, "lease renewal failed; retrying on a fresh stream"),
                        Err(_) => tracing::warn!(waited = ?patience, "no answer to a lease renewal; retrying on a fresh stream"),
                        _ => tracing::warn!("the lease keep-alive stream ended; retrying on a fresh stream"),
                    }
                    stream = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
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
