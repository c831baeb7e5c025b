//! The status view of the live cluster — what `pacer status` prints and the console
//! shows — read once (`read`) or from a followed cache (`view_of`). The view itself
//! is `state::view`'s, pure; this adds what lives beside the snapshot: the leader,
//! the latest decisions, fencing, the verbs' constraints, pending requests and the
//! alerts' delivery failures.

use crate::api::records::HistoryRecord;
use crate::runtime::{ClusterCache, LiveSnapshot};
use crate::scheduler::schedule;
use crate::state::fence_history::status_history_view;
use crate::state::view::{DecisionView, StatusView, Surroundings, alerts_view, fencing_view, requests_view, status_view};
use crate::store::Store;

use super::OpsError;
use super::constraints::constraint_views;
use super::live::Live;

/// The view at one revision, with the keys whose values did not decode (key, reason),
/// which the view leaves out.
pub struct Read {
    pub view: StatusView,
    pub revision: i64,
    pub skipped: Vec<(String, String)>,
}

/// Reads the cluster at one revision and builds its view with the `decisions` latest
/// decisions.
pub async fn read(store: &Store, decisions: usize) -> Result<Read, OpsError> {
    let live = Live::read(store).await?;
    let view = view_of(store, &live.cache, &live.live, decisions).await?;
    let skipped = live.cache.undecodable().iter().map(|(key, reason)| (key.to_string(), reason.to_string())).collect();
    Ok(Read { view, revision: live.live.revision, skipped })
}

/// The view of a cache and the snapshot built from it, with the latest decisions (a
/// read of the decision history and of the alerts' cursors, which live beside the prefix).
pub async fn view_of(store: &Store, cache: &ClusterCache, live: &LiveSnapshot, decisions: usize) -> Result<StatusView, OpsError> {
    let plan = schedule(&live.snapshot);
    let leader = cache.election().map(|holder| holder.leader.identity.clone());
    let decisions = store
        .latest_history::<HistoryRecord>(decisions)
        .await?
        .into_iter()
        .map(|record| DecisionView { time: record.time, input_revision: record.input_revision, actions: record.actions })
        .collect();
    let requests: Vec<_> = cache.fence_requests().values().cloned().collect();
    let results: Vec<_> = cache.fence_outcomes();
    let fencing = fencing_view(&requests, &results);
    let constraints = constraint_views(&live.snapshot, &plan);
    let around = Surroundings { leader, decisions, fencing, activities: cache.activities(), constraints };
    let mut view = status_view(&live.snapshot.objects, &live.snapshot.observed, &live.reports.statuses, &plan, around);
    view.fencing_history = status_history_view(cache.fence_history().values());
    view.requests = requests_view(cache.requests());
    let cursors = store.read_alert_cursors().await?;
    view.alerts = alerts_view(&live.snapshot.objects, &cursors);
    Ok(view)
}
