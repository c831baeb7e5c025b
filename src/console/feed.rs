//! The console's one view of the cluster: a watch of the whole prefix
//! (`ops::live::Follower`), turned into the status view and its HTML fragment after
//! each burst of changes, published on a watch channel every page stream reads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ops::OpsError;
use crate::ops::live::Follower;
use crate::ops::status::view_of;
use crate::state::view::StatusView;
use crate::store::Store;

use super::page;

/// Changes within this long of the first are shown together: a burst of a thousand
/// status writes is one frame, and a single change shows within this delay.
const COALESCE: Duration = Duration::from_millis(100);
/// Time alone changes the view (failure timeouts, a constraint's expiry): without a
/// change it is built again this often, and published only if it differs. Each build
/// runs the scheduler on the snapshot: at 10,000 resources that is the cost of a
/// decision, so not too often.
const RECHECK: Duration = Duration::from_secs(5);
/// How many of the latest decisions the status shows.
const DECISIONS: usize = 5;

/// One published view.
pub struct Frame {
    /// Counts frames from 1 (the event id of the stream).
    pub version: u64,
    /// The etcd revision the view was built at.
    pub revision: i64,
    pub view: StatusView,
    /// Why the view is older than the cluster (the watch broke, etcd out of reach).
    pub error: Option<String>,
    /// The status fragment the pages show.
    pub html: String,
    /// Its parts (to make the next frame's patch).
    pub parts: page::Parts,
    /// What changed since the frame before (`version - 1`), as the JSON of a `patch`
    /// event: a page showing that frame applies it instead of redrawing everything.
    pub patch: Option<String>,
}

/// Starts following the cluster; returns once the first frame is built.
pub async fn start(store: Store, read_only: bool) -> Result<(JoinHandle<()>, watch::Receiver<Arc<Frame>>), OpsError> {
    let mut follower = Follower::start(&store).await?;
    let (revision, view) = loop {
        // A large apply being rolled forward: its writer or the scheduler finishes it.
        if let Some(built) = build(&store, &follower).await? {
            break built;
        }
        follower.changed(RECHECK).await?;
    };
    let first = frame(1, revision, view, None, read_only, None);
    let (sender, receiver) = watch::channel(Arc::new(first));
    let task = tokio::spawn(async move {
        loop {
            match follow(&store, &mut follower, &sender, read_only).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "console: following the cluster failed; starting again");
                    publish_error(&sender, &error.to_string(), read_only);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match Follower::start(&store).await {
                        Ok(restarted) => follower = restarted,
                        Err(error) => publish_error(&sender, &error.to_string(), read_only),
                    }
                }
            }
        }
    });
    Ok((task, receiver))
}

/// Publishes a new frame after each burst of changes (and when time alone changed
/// the view), until every receiver is gone.
async fn follow(store: &Store, follower: &mut Follower, sender: &watch::Sender<Arc<Frame>>, read_only: bool) -> Result<(), OpsError> {
    loop {
        if sender.is_closed() {
            return Ok(());
        }
        if follower.changed(RECHECK).await? {
            tokio::time::sleep(COALESCE).await;
            follower.changed(Duration::ZERO).await?;
        }
        let Some((revision, view)) = build(store, follower).await? else { continue };
        let last = sender.borrow().clone();
        if last.view != view || last.error.is_some() {
            sender.send_replace(Arc::new(frame(last.version + 1, revision, view, None, read_only, Some(&last))));
        }
    }
}

/// The view at the follower's revision; None while a large apply is rolled forward.
async fn build(store: &Store, follower: &Follower) -> Result<Option<(i64, StatusView)>, OpsError> {
    let Some(live) = follower.snapshot() else { return Ok(None) };
    let view = view_of(store, follower.cache(), &live, DECISIONS).await?;
    Ok(Some((live.revision, view)))
}

fn frame(version: u64, revision: i64, view: StatusView, error: Option<String>, read_only: bool, previous: Option<&Frame>) -> Frame {
    let parts = page::status_parts(&view, revision, error.as_deref(), read_only);
    let html = parts.html();
    let patch = previous.map(|previous| parts.patch(&previous.parts).to_string());
    Frame { version, revision, view, error, html, parts, patch }
}

/// The last view again, marked as out of date with `error` (not again for the same
/// error: every page would redraw its whole status each time).
fn publish_error(sender: &watch::Sender<Arc<Frame>>, error: &str, read_only: bool) {
    let last = sender.borrow().clone();
    if last.error.as_deref() == Some(error) {
        return;
    }
    let next = frame(last.version + 1, last.revision, last.view.clone(), Some(error.to_string()), read_only, Some(&last));
    sender.send_replace(Arc::new(next));
}
