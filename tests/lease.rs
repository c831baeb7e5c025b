//! Lease renewals against a real etcd (`store::lease`): a renewal etcd answers late
//! (after the attempt's patience ran out and another attempt joined it) still counts,
//! toward the time it was sent — never the time of the answer (issue 19, item 9).

mod common;

use std::time::{Duration, Instant};

use common::TestEtcd;
use pacer::store::Store;
use pacer::store::lease::{self, LeaseState};

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
