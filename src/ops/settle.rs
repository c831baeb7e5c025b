//! Waiting for the cluster: until it has settled (the decision the scheduler would
//! make now changes nothing — Pacemaker's `crm_resource --wait`), or until a
//! condition of the live snapshot holds (`pacer wait`). Both follow a watch; nothing
//! polls etcd.

use std::time::{Duration, Instant};

use crate::runtime::LiveSnapshot;
use crate::scheduler::{Plan, schedule};
use crate::store::Store;

use super::OpsError;
use super::live::Follower;

/// Whether a plan leaves everything as it is: no action (`Plan::live_actions`) and no
/// fencing pending.
pub fn settled(plan: &Plan) -> bool {
    plan.live_actions().next().is_none() && plan.fencing.is_empty()
}

/// What `until` saw last, for a timeout message.
pub struct Waited {
    pub elapsed: Duration,
}

/// Follows the cluster until `done(snapshot, plan)` holds for a snapshot taken at or
/// after `from_revision` (the revision of the change waited for; 0 for any), or
/// `timeout` passes (`OpsError::NotReached` with `describe`'s account of what is
/// still missing). Rechecks at least every second, since time alone (expiries,
/// failure timeouts) changes the plan.
pub async fn until<F, D>(store: &Store, from_revision: i64, timeout: Duration, done: F, describe: D) -> Result<Waited, OpsError>
where
    F: FnMut(&LiveSnapshot, &Plan) -> bool,
    D: Fn(&LiveSnapshot, &Plan) -> String,
{
    let started = Instant::now();
    let follower = Follower::start(store).await?;
    until_on(follower, started, from_revision, timeout, |live| schedule(&live.snapshot), done, describe).await
}

/// `until` on a follower already started (at `started`), whose first listing the
/// caller has looked at (one listing of the cluster, not two), with the conditions
/// judged on `view` of each snapshot: the plan (`until`), or only what a wait needs
/// (`pacer wait`: where resources run now, not a whole schedule per change).
pub async fn until_on<V, W, F, D>(
    mut follower: Follower,
    started: Instant,
    from_revision: i64,
    timeout: Duration,
    view: W,
    mut done: F,
    describe: D,
) -> Result<Waited, OpsError>
where
    W: Fn(&LiveSnapshot) -> V,
    F: FnMut(&LiveSnapshot, &V) -> bool,
    D: Fn(&LiveSnapshot, &V) -> String,
{
    let deadline = started + timeout;
    let mut last: Option<(LiveSnapshot, V)> = None;
    loop {
        if follower.cache().revision() >= from_revision
            && let Some(live) = follower.snapshot()
        {
            let seen = view(&live);
            if done(&live, &seen) {
                return Ok(Waited { elapsed: started.elapsed() });
            }
            last = Some((live, seen));
        }
        let now = Instant::now();
        if now >= deadline {
            let missing = last.as_ref().map(|(live, seen)| describe(live, seen)).unwrap_or_else(|| "the cluster could not be read".to_string());
            return Err(OpsError::NotReached(format!("not reached within {}: {missing}", humantime::format_duration(timeout))));
        }
        follower.changed((deadline - now).min(Duration::from_secs(1))).await?;
    }
}

/// Waits until the cluster has settled after the change at `from_revision`.
pub async fn settle(store: &Store, from_revision: i64, timeout: Duration) -> Result<Waited, OpsError> {
    until(store, from_revision, timeout, |_, plan| settled(plan), |_, plan| pending(plan)).await
}

/// The actions a plan still has, in words.
pub fn pending(plan: &Plan) -> String {
    let mut parts: Vec<String> =
        plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail).trim().to_string()).collect();
    parts.extend(plan.fencing.iter().map(|fencing| format!("fence {}", fencing.node)));
    if parts.is_empty() { "nothing pending".to_string() } else { format!("still pending: {}", parts.join("; ")) }
}
