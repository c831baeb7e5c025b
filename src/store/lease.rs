//! Keeping a lease alive (a node agent's, the scheduler leader's), and telling its
//! holder how long it can still be sure of it.
//!
//! The renewals run on a thread of their own, with their own runtime and their own
//! connection to etcd: a node busy with a thousand operations (its runtime's threads
//! taken by process output, status writes and watch events; its connection's streams
//! queued behind large reads) must not look dead because a renewal waited behind that
//! work. sbd keeps its watchdog away from the busy daemon for the same reason.
//!
//! Many leases in one process (the hollow nodes of `pacer hollow`) share one such
//! thread and one connection (`Renewals`): a thread and a connection per lease would
//! be a thousand of each.

use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

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

impl LeaseState {
    /// Whether the holder can count on the lease now: etcd confirmed a renewal less
    /// than half the TTL ago (past that, `expiring` has completed and the holder acts
    /// as if it had lost it). What the systemd watchdog's pings require.
    pub fn healthy(&self, ttl: Duration) -> bool {
        match self {
            LeaseState::Held { renewed_at } => renewed_at.elapsed() < ttl / 2,
            LeaseState::Lost => false,
        }
    }
}

/// The renewal thread; dropping it (or `abort`) ends the renewals. The lease then
/// lapses unless revoked.
pub struct LeaseKeeper {
    stop: Option<oneshot::Sender<()>>,
}

impl LeaseKeeper {
    pub fn abort(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.abort();
    }
}

/// How often renewal round trips are summarised in the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Renews `lease` every sixth of `ttl` from a thread of its own until stopped or etcd
/// says the lease is gone. Every attempt runs on a fresh keep-alive stream (which the
/// client may route to another member) and is never abandoned while the lease could
/// still hold: a slow answer that arrives before the deadline still counts, and
/// attempts overlap when answers are slow. Losing etcd's leader is the case the
/// overlap is for (measured by the fault campaign's `KillEtcdMember`): a stream
/// through a follower hangs until a new leader is elected, through the dead member it
/// fails at once; either way a renewal must get through the new leader before half the
/// lease is gone, when the holder self-fences. The holder watches the published state
/// and acts on the deadline itself (`expiring`).
pub fn keep_alive(store: Store, lease: i64, ttl: Duration, granted_at: Instant) -> (LeaseKeeper, watch::Receiver<LeaseState>) {
    keep_alive_on(None, store, lease, ttl, granted_at)
}

/// `keep_alive`, on the shared thread of `renewals` when given (one thread and one
/// connection for every lease of the process), else on a thread of its own.
pub fn keep_alive_on(renewals: Option<&Renewals>, store: Store, lease: i64, ttl: Duration, granted_at: Instant) -> (LeaseKeeper, watch::Receiver<LeaseState>) {
    let (sender, receiver) = watch::channel(LeaseState::Held { renewed_at: granted_at });
    let (stop, stopped) = oneshot::channel();
    if let Some(renewals) = renewals {
        let connection = renewals.connection.clone();
        renewals.runtime.spawn(async move {
            let own = connection.get_or_init(|| own_connection(&store)).await.clone();
            tokio::select! {
                () = renew(own, &store, lease, ttl, sender) => {}
                _ = stopped => {}
            }
        });
        return (LeaseKeeper { stop: Some(stop) }, receiver);
    }
    let spawned = std::thread::Builder::new().name(format!("lease-{lease:x}")).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot start the lease renewal thread's runtime; the lease will lapse");
                return;
            }
        };
        runtime.block_on(async move {
            tokio::select! {
                () = async { renew(own_connection(&store).await, &store, lease, ttl, sender).await } => {}
                _ = stopped => {}
            }
        });
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the lease renewal thread; the lease will lapse");
    }
    (LeaseKeeper { stop: Some(stop) }, receiver)
}

/// One renewal thread (its own runtime) and one connection for many leases. Dropping
/// it ends the thread and every renewal on it.
pub struct Renewals {
    runtime: tokio::runtime::Handle,
    connection: std::sync::Arc<tokio::sync::OnceCell<Store>>,
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for Renewals {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Renewals")
    }
}

impl Renewals {
    pub fn start() -> std::io::Result<Renewals> {
        let (handle_sender, handle) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("lease-renewals".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = handle_sender.send(Err(error));
                    return;
                }
            };
            let _ = handle_sender.send(Ok(runtime.handle().clone()));
            runtime.block_on(async move {
                let _ = stopped.await;
            });
        })?;
        let runtime = handle.recv().map_err(std::io::Error::other)??;
        Ok(Renewals { runtime, connection: Default::default(), _stop: stop })
    }
}

/// A connection of the renewals' own, retried until made.
async fn own_connection(store: &Store) -> Store {
    loop {
        match store.reconnect().await {
            Ok(own) => return own,
            Err(error) => {
                tracing::warn!(%error, "cannot connect the lease renewal; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `own` is the renewals' connection; `store` the caller's, whose metrics count them.
async fn renew(own: Store, store: &Store, lease: i64, ttl: Duration, sender: watch::Sender<LeaseState>) {
    let period = (ttl / 6).max(Duration::from_millis(50));
    // A fresh attempt joins one still unanswered after this long.
    let patience = (ttl / 8).clamp(Duration::from_millis(250), Duration::from_secs(1));
    // Past this an answer cannot help: the holder has self-fenced.
    let useless = ttl;
    // Recorded in the caller's store (the one `/metrics` exports), not this thread's own.
    let metrics = store.metrics.clone();
    let mut attempts = tokio::task::JoinSet::new();
    let mut last_sent: Option<Instant> = None;
    // The send time of the newest attempt answered.
    let mut confirmed = Instant::now();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut reported = Instant::now();
    loop {
        let answered_since_sent = last_sent.is_none_or(|sent| confirmed >= sent);
        let due = match last_sent {
            None => Instant::now(),
            Some(sent) if answered_since_sent => sent + period,
            Some(sent) => sent + patience.min(period),
        };
        tokio::select! {
            () = tokio::time::sleep_until(due.into()) => {
                let sent = Instant::now();
                last_sent = Some(sent);
                let mut client = own.client();
                attempts.spawn(async move {
                    let attempt = async {
                        let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
                        keeper.keep_alive().await?;
                        responses.message().await
                    };
                    (sent, tokio::time::timeout(useless, attempt).await)
                });
            }
            Some(joined) = attempts.join_next() => {
                let Ok((sent, outcome)) = joined else { continue };
                match outcome {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => {
                        let round_trip = sent.elapsed();
                        metrics.lease.renewal_duration.observe(round_trip.as_secs_f64());
                        if round_trip > patience.min(period) {
                            metrics.lease.late.inc();
                        }
                        latencies.push(round_trip);
                        confirmed = confirmed.max(sent);
                        sender.send_if_modified(|state| match state {
                            LeaseState::Held { renewed_at } if *renewed_at < sent => {
                                *renewed_at = sent;
                                true
                            }
                            _ => false,
                        });
                    }
                    Ok(Ok(Some(_))) => {
                        let _ = sender.send(LeaseState::Lost);
                        return;
                    }
                    Ok(Err(error)) => {
                        metrics.lease.missed.inc();
                        tracing::warn!(%error, "lease renewal failed; retrying on a fresh stream");
                    }
                    Ok(Ok(None)) => {
                        metrics.lease.missed.inc();
                        tracing::warn!("the lease keep-alive stream ended; retrying on a fresh stream");
                    }
                    Err(_) => {
                        metrics.lease.missed.inc();
                        tracing::warn!(waited = ?useless, "no answer to a lease renewal");
                    }
                }
            }
        }
        if reported.elapsed() >= REPORT_EVERY && !latencies.is_empty() {
            latencies.sort();
            // Milliseconds to a tenth, as numbers (log readers parse them).
            let millis = |fraction: f64| {
                let index = ((latencies.len() - 1) as f64 * fraction).round() as usize;
                (latencies[index.min(latencies.len() - 1)].as_secs_f64() * 10_000.0).round() / 10.0
            };
            tracing::info!(
                lease = format!("{lease:x}"),
                count = latencies.len(),
                p50_ms = millis(0.5),
                p99_ms = millis(0.99),
                max_ms = millis(1.0),
                "lease renewals"
            );
            latencies.clear();
            reported = Instant::now();
        }
    }
}

/// Completes when the lease has gone half its time without a confirmed renewal, or
/// etcd said it is gone: the moment for its holder to act as if it had lost it
/// (an agent stops its resources, a leader stops writing) while there is time.
///
/// The deadline is judged on the latest state when the timer fires, not on the one it
/// was set from: a holder whose runtime was too busy to poll this for seconds finds
/// the timer and a newer renewal ready together, and `select!` would pick either at
/// random. At 300 hollow nodes taking in 10,000 resources, nearly every node
/// self-fenced that way while etcd answered every renewal within 0.8 s (issue 18).
pub async fn expiring(mut state: watch::Receiver<LeaseState>, ttl: Duration) {
    loop {
        let renewed_at = match *state.borrow_and_update() {
            LeaseState::Held { renewed_at } => renewed_at,
            LeaseState::Lost => return,
        };
        tokio::select! {
            () = tokio::time::sleep_until((renewed_at + ttl / 2).into()) => {
                if !renewed_since(&state, renewed_at) {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether a renewal newer than `renewed_at` has been confirmed (the loop then waits
/// on its deadline instead).
fn renewed_since(state: &watch::Receiver<LeaseState>, renewed_at: Instant) -> bool {
    matches!(*state.borrow(), LeaseState::Held { renewed_at: newer } if newer > renewed_at)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    /// A state whose deadline (half the TTL after the renewal) is `left` from now.
    fn renewed_with(left: Duration) -> LeaseState {
        LeaseState::Held { renewed_at: Instant::now() - (TTL / 2 - left) }
    }

    /// A renewal confirmed while the holder was not polled keeps the lease: the timer
    /// set from the older renewal and the newer state are ready together when the
    /// holder is polled again, and the newer state decides. (`select!` picks among
    /// ready branches at random, so without the re-reading each round fails one time
    /// in two; twenty rounds cannot pass by chance.) The test's own sleep drives the
    /// runtime's timers while the holder is not polled, as a busy runtime leaves it.
    #[tokio::test]
    async fn a_renewal_seen_late_keeps_the_lease() {
        let mut context = Context::from_waker(std::task::Waker::noop());
        for _ in 0..20 {
            let (sender, receiver) = watch::channel(renewed_with(Duration::from_millis(20)));
            let mut holder = pin!(expiring(receiver, TTL));
            assert_eq!(holder.as_mut().poll(&mut context), Poll::Pending);
            sender.send_replace(LeaseState::Held { renewed_at: Instant::now() });
            // Past the first deadline; the second is five seconds away.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(holder.as_mut().poll(&mut context), Poll::Pending, "the lease was renewed just now");
        }
    }

    #[tokio::test]
    async fn half_the_ttl_without_a_renewal_ends_the_wait() {
        let mut context = Context::from_waker(std::task::Waker::noop());
        let (_sender, receiver) = watch::channel(renewed_with(Duration::from_millis(20)));
        let mut holder = pin!(expiring(receiver, TTL));
        assert_eq!(holder.as_mut().poll(&mut context), Poll::Pending);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(holder.as_mut().poll(&mut context), Poll::Ready(()));
    }

    #[tokio::test]
    async fn a_lost_lease_ends_the_wait_at_once() {
        let mut context = Context::from_waker(std::task::Waker::noop());
        let (sender, receiver) = watch::channel(LeaseState::Held { renewed_at: Instant::now() });
        let mut holder = pin!(expiring(receiver, TTL));
        assert_eq!(holder.as_mut().poll(&mut context), Poll::Pending);
        sender.send_replace(LeaseState::Lost);
        assert_eq!(holder.as_mut().poll(&mut context), Poll::Ready(()));
    }
}
