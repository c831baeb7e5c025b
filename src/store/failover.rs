//! A channel to etcd that fails over from member to member. etcd-client's own channel
//! spreads requests over every endpoint at random (tonic's balancer, whose load is a
//! constant), and an endpoint whose member is down stays in it: with one member of
//! three down, a third of all requests failed, and a `pacer` command about half the
//! time. Here requests go to one member, the current one; a request that fails below
//! gRPC (connection refused or reset, timed out) or that the member answers
//! `UNAVAILABLE` (no leader: it is cut off from the majority; the request timed out
//! inside etcd) moves the current member on to the next, so the requests after it go
//! elsewhere. The failed request itself is not sent again (its body may be a stream):
//! callers retry as they always did, and `Store::connect` tries each member once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt};

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;
type Uri = http::Uri;

/// gRPC's `UNAVAILABLE`, as etcd answers `no leader` and `request timed out`.
const UNAVAILABLE: &str = "14";

/// Builds the failover channel for `etcd_client::Client::connect_with_balanced_channel`.
pub(crate) struct Failover;

impl etcd_client::BalancedChannelBuilder for Failover {
    type Error = etcd_client::Error;

    fn balanced_channel(self, buffer_size: usize) -> Result<(etcd_client::Channel, tokio::sync::mpsc::Sender<Change<Uri, Endpoint>>), Self::Error> {
        let (sender, receiver) = tokio::sync::mpsc::channel(buffer_size.max(1));
        let shared = Arc::new(Shared { changes: Mutex::new(receiver), members: Mutex::new(Vec::new()), current: AtomicUsize::new(0) });
        let channel = etcd_client::Channel::Custom(tower::util::BoxCloneSyncService::new(FailoverChannel { shared }));
        Ok((channel, sender))
    }
}

/// The members, in the order given, and which one requests go to.
struct Shared {
    /// Endpoints added (all of them, before the first request) or removed by the client.
    changes: Mutex<tokio::sync::mpsc::Receiver<Change<Uri, Endpoint>>>,
    members: Mutex<Vec<(Uri, Channel)>>,
    current: AtomicUsize,
}

impl Shared {
    /// The current member (its index and channel), after taking in the endpoints the
    /// client added or removed since the last request.
    fn pick(&self) -> Option<(usize, Channel)> {
        let mut members = self.members.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(mut changes) = self.changes.lock() {
            while let Ok(change) = changes.try_recv() {
                match change {
                    Change::Insert(uri, endpoint) => {
                        members.retain(|(known, _)| *known != uri);
                        members.push((uri, endpoint.connect_lazy()));
                    }
                    Change::Remove(uri) => members.retain(|(known, _)| *known != uri),
                }
            }
        }
        if members.is_empty() {
            return None;
        }
        let index = self.current.load(Ordering::Relaxed) % members.len();
        Some((index, members[index].1.clone()))
    }

    /// Moves on from the member at `index`, unless another failed request already did.
    fn fail_over(&self, index: usize) {
        let count = self.members.lock().map_or(0, |members| members.len());
        if count > 1 {
            let _ = self.current.compare_exchange(index, (index + 1) % count, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

#[derive(Clone)]
struct FailoverChannel {
    shared: Arc<Shared>,
}

impl Service<Request> for FailoverChannel {
    type Response = Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each request waits for its member's channel in its own future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let Some((index, channel)) = shared.pick() else { return Err("no etcd endpoint".into()) };
            // A caller that gives up before the member answers (its deadline: 2 s for a
            // write, the lease's patience for a renewal) drops this future: the member
            // hangs rather than refuses (a machine lost, packets dropped), and the next
            // requests go elsewhere.
            let mut pending = GaveUp { shared: Some(shared.clone()), index };
            let result = channel.oneshot(request).await;
            pending.shared = None;
            let unavailable = match &result {
                Err(_) => true,
                Ok(response) => response.headers().get("grpc-status").is_some_and(|status| status.as_bytes() == UNAVAILABLE.as_bytes()),
            };
            if unavailable {
                shared.fail_over(index);
            }
            result.map_err(Into::into)
        })
    }
}

/// Fails over from `index` when dropped with `shared` still set: the request's caller
/// gave up waiting for the member's answer.
struct GaveUp {
    shared: Option<Arc<Shared>>,
    index: usize,
}

impl Drop for GaveUp {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.fail_over(self.index);
        }
    }
}
