//! Lease renewals against a real etcd (`store::lease`): a renewal etcd answers late
//! (after the attempt's patience ran out and another attempt joined it) still counts,
//! toward the time it was sent — never the time of the answer (issue 19, item 9). A
//! reclaim whose answer was lost, and a lease whose TTL etcd raised, are still the
//! agent's own (`Store::reclaim_node`, `Store::renew_holding`).

mod common;

use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::store::Store;
use pacer::store::lease::{self, LeaseState};
use pacer::store::node::Reclaim;

/// etcd stopped with SIGSTOP, resumed when dropped (also when an assertion fails).
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Frozen {
        // SAFETY: SIGSTOP to the etcd this test started.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: SIGCONT to the etcd this test stopped.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

fn renewed_at(state: &tokio::sync::watch::Receiver<LeaseState>) -> Instant {
    match *state.borrow() {
        LeaseState::Held { renewed_at } => renewed_at,
        LeaseState::Lost => panic!("the lease was lost"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_answered_late_counts_from_when_it_was_sent() {
    let etcd = TestEtcd::start();
    let store = Store::connect(&[etcd.endpoint()], "/pacer").await.expect("connect");
    // Renewals every second; an attempt's patience is 0.75 s; the holder acts at 3 s.
    let ttl = Duration::from_secs(6);
    let granted_at = Instant::now();
    let lease_id = store.grant_lease(ttl).await.expect("grant");
    let (_keeper, state) = lease::keep_alive(store.clone(), lease_id, ttl, granted_at);
    let started = Instant::now();
    while renewed_at(&state) == granted_at {
        assert!(started.elapsed() < Duration::from_secs(5), "no renewal confirmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // etcd answers nothing for 1.8 s (past the patience, before the holder's deadline):
    // the renewals sent meanwhile are answered late, all at once, when it resumes.
    let pid = i32::try_from(etcd.server.pid().expect("etcd pid")).expect("pid");
    let frozen = Frozen::freeze(pid);
    let frozen_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let thawed_at = Instant::now();
    drop(frozen);
    let started = Instant::now();
    while renewed_at(&state) <= frozen_at {
        assert!(started.elapsed() < Duration::from_secs(2), "no renewal sent while etcd was frozen counted once it answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let renewed = renewed_at(&state);
    // Sent while etcd was frozen, so answered at least after its patience: counted,
    // and from its sending, not from its late answer.
    assert!(renewed > frozen_at && renewed < thawed_at, "renewed {:?} after the freeze began, which lasted {:?}", renewed - frozen_at, thawed_at - frozen_at);
    assert!(state.borrow().healthy(ttl));
}

/// A reclaim (after etcd let the lease expire during failsafe) whose claim etcd applied
/// but whose answer was lost: the key is bound to the lease that attempt granted. The
/// next attempt takes that lease — renewed — instead of granting another, finding the
/// key held and self-fencing while the key waits for a lease nobody renews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaim_whose_answer_was_lost_takes_its_own_lease() {
    let etcd = TestEtcd::start();
    let store = Store::connect(&[etcd.endpoint()], "/pacer").await.expect("connect");
    let ttl = Duration::from_secs(6);
    let heartbeat = serde_json::json!({"probed": true});
    // The state such an attempt leaves: the lease it granted is among the agent's own
    // (recorded before the claim was sent), and the claim landed.
    let lost = store.grant_lease(ttl).await.expect("grant");
    assert!(store.claim_node("n1", lost, &heartbeat).await.expect("claim"));
    let mut own = vec![lost];
    let before = Instant::now();
    match store.reclaim_node("n1", ttl, &heartbeat, &mut own).await.expect("reclaim") {
        Reclaim::Claimed { lease, renewed_at } => {
            assert_eq!(lease, lost, "the lease on the key is taken, no other granted");
            assert!(renewed_at >= before, "renewed now, so the lease lasts its TTL from now");
        }
        Reclaim::HeldByAnother => panic!("the agent's own lease on its key was taken for another agent's"),
    }
    assert_eq!(store.node_lease_id("n1").await.expect("read"), Some(lost));
    assert!(own.is_empty());

    // Another agent's lease on the key is not taken: the node is held by another.
    let other = store.grant_lease(ttl).await.expect("grant");
    assert!(store.claim_node("n2", other, &heartbeat).await.expect("claim"));
    let mut own = vec![lost];
    assert_eq!(store.reclaim_node("n2", ttl, &heartbeat, &mut own).await.expect("reclaim"), Reclaim::HeldByAnother);
    assert_eq!(store.node_lease_id("n2").await.expect("read"), Some(other));

    // The key absent: claimed with a new lease.
    let mut own = vec![lost];
    let Reclaim::Claimed { lease, .. } = store.reclaim_node("n3", ttl, &heartbeat, &mut own).await.expect("reclaim") else { panic!("n3 is free") };
    assert_ne!(lease, lost);
    assert_eq!(store.node_lease_id("n3").await.expect("read"), Some(lease));
}

/// etcd raises a TTL below its minimum (1.5 election timeouts, 2 s by default) and
/// answers renewals with its own: such a lease still holds the node. The failsafe asks
/// this when its renewals go unconfirmed; taking the answer for "lost" made the agent
/// reclaim a key its own lease held, and self-fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_ttl_etcd_raised_still_holds_the_node() {
    let etcd = TestEtcd::start();
    let store = Store::connect(&[etcd.endpoint()], "/pacer").await.expect("connect");
    let asked = Duration::from_secs(1);
    let lease = store.grant_lease(asked).await.expect("grant");
    assert!(store.claim_node("n1", lease, &serde_json::json!({})).await.expect("claim"));
    let renewal = store.renew_holding("n1", lease).await.expect("renew").expect("the lease holds the node");
    assert!(renewal.ttl_seconds > 1, "etcd raised the TTL to its minimum ({} s)", renewal.ttl_seconds);
    // Resuming at start-up still wants the agent's own TTL (its deadlines count from it).
    assert_eq!(store.renew_if_holding("n1", lease, asked).await.expect("renew"), None);
    // And a reclaim finds the key its own.
    let mut own = vec![lease];
    assert!(
        matches!(store.reclaim_node("n1", asked, &serde_json::json!({}), &mut own).await.expect("reclaim"), Reclaim::Claimed { lease: taken, .. } if taken == lease)
    );
}
