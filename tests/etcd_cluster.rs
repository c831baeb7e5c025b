//! EtcdCluster against real etcd: three members, one killed (member 1, or whichever is
//! the leader), the other two keep quorum and serve reads and writes through a client
//! given all three endpoints, the killed member restarts with its data and sees what was
//! written while it was down, and every process started is gone once the cluster is
//! dropped.
//!
//! Along the way the tests print what etcd-client does when one of its endpoints dies
//! (requests through the dead member, a lease keep-alive stream opened through it).
//!
//! Every wait is bounded; members are started and restarted on the test's own thread
//! (`block_in_place`), which lives as long as they should (see `pacer::local::etcd`).

use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use pacer::local::etcd::EtcdCluster;
use tempfile::TempDir;
use tokio::time::timeout;

/// The longest the cluster may take to serve again after a member is killed (a new
/// leader is elected within about two election timeouts, 1 s each by default).
const BOUND: Duration = Duration::from_secs(10);
/// The longest one request may take before it counts as hanging.
const ATTEMPT: Duration = Duration::from_secs(3);

/// Three members in a temporary directory; `cluster` is declared first so it is dropped
/// (stopped) before its data directory is removed.
struct Three {
    cluster: EtcdCluster,
    dir: TempDir,
}

fn start() -> Three {
    let dir = TempDir::new().expect("create a temporary directory");
    let started = Instant::now();
    let cluster =
        tokio::task::block_in_place(|| EtcdCluster::start(&dir.path().join("etcd"), 3, &[])).expect("start three etcd members (scripts/install-deps)");
    eprintln!("three members healthy after {:?}: {:?}", started.elapsed(), cluster.endpoints());
    Three { cluster, dir }
}

async fn connect(endpoints: &[String]) -> Client {
    // As pacer::store::Store connects, less its 30 s request timeout: the tests time
    // each request themselves, to tell a failure from a hang.
    let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(3));
    timeout(ATTEMPT, Client::connect(endpoints, Some(options))).await.expect("connect timed out").expect("connect to etcd")
}

/// Tries `attempt` until it succeeds, each try bounded by `ATTEMPT`, all of them by
/// `BOUND`. Returns the value and what each failed try said, with when it ended.
async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> (T, Vec<String>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let started = Instant::now();
    let mut failures = Vec::new();
    loop {
        let tried = Instant::now();
        let allowed = ATTEMPT.min(BOUND.saturating_sub(started.elapsed()));
        match timeout(allowed, attempt()).await {
            Ok(Ok(value)) => {
                eprintln!("{what}: ok at {:?} after {} failed tries: {failures:?}", started.elapsed(), failures.len());
                return (value, failures);
            }
            Ok(Err(error)) => failures.push(format!("{:?}: error after {:?}: {error}", started.elapsed(), tried.elapsed())),
            Err(_) => failures.push(format!("{:?}: no answer within {allowed:?}", started.elapsed())),
        }
        assert!(started.elapsed() < BOUND, "{what}: no success within {BOUND:?}: {failures:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Puts `key` and reads it back, both through `client`.
async fn put_and_get(mut client: Client, key: &str, value: &str) -> Result<String, etcd_client::Error> {
    client.put(key, value, None).await?;
    let response = client.get(key, None).await?;
    Ok(response.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).to_string()).unwrap_or_default())
}

/// Reads `key` through `client`; serializable reads answer from the member's own data.
async fn read(mut client: Client, key: &str, serializable: bool) -> Result<Option<String>, etcd_client::Error> {
    let options = serializable.then(|| GetOptions::new().with_serializable());
    let response = client.get(key, options).await?;
    Ok(response.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).to_string()))
}

/// The member (numbered from 1) that says it is the leader, asked one by one through
/// its own endpoint, within `BOUND`.
async fn leader(cluster: &EtcdCluster) -> usize {
    let started = Instant::now();
    loop {
        for member in 1..=cluster.members() {
            let mut client = connect(&[cluster.endpoint(member)]).await;
            if let Ok(Ok(status)) = timeout(ATTEMPT, client.status()).await
                && status.header().is_some_and(|header| header.member_id() == status.leader())
            {
                return member;
            }
        }
        assert!(started.elapsed() < BOUND, "no member says it is the leader within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether no process has `pid` any more (kill(pid, 0) fails with ESRCH).
fn gone(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
    let result = unsafe { libc::kill(pid, 0) };
    result == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Drops the cluster and its directory, and asserts every PID it ever had is gone.
fn drop_and_check(three: Three, pids: Vec<u32>) {
    let Three { cluster, dir } = three;
    let started = Instant::now();
    tokio::task::block_in_place(|| drop(cluster));
    eprintln!("cluster dropped in {:?}", started.elapsed());
    drop(dir);
    for pid in pids {
        assert!(gone(pid), "etcd {pid} still runs after the cluster was dropped");
    }
}

/// Puts a key through `victim` alone, kills it, and checks the other two serve a put
/// and a get through `everyone` (the client given all three endpoints). Prints what a
/// client of the dead member alone gets, and how later reads through `everyone` fare.
async fn kill_and_check(three: &mut Three, everyone: &Client, victim: usize, label: &str) {
    let cluster = &mut three.cluster;
    let alone = connect(&[cluster.endpoint(victim)]).await;
    let (value, _) = retry(&format!("{label}: put and get through the victim alone"), || put_and_get(alone.clone(), "/before", "1")).await;
    assert_eq!(value, "1");

    tokio::task::block_in_place(|| cluster.kill(victim));
    assert!(!cluster.running(victim));
    assert!(cluster.pid(victim).is_none());
    eprintln!("{label}: killed {} ({})", cluster.name(victim), cluster.endpoint(victim));

    // What a client of the dead member alone gets: observed, not asserted.
    let tried = Instant::now();
    match timeout(ATTEMPT, read(alone.clone(), "/before", false)).await {
        Ok(Ok(value)) => panic!("{label}: a dead member answered {value:?}"),
        Ok(Err(error)) => eprintln!("{label}: client of the dead member alone: error after {:?}: {error}", tried.elapsed()),
        Err(_) => eprintln!("{label}: client of the dead member alone: no answer within {ATTEMPT:?}"),
    }

    // One patient request through the two survivors alone, sent at once: does a write
    // arriving while the cluster may have no leader fail, wait, or hang? Observed.
    let survivors: Vec<String> = (1..=cluster.members()).filter(|&member| member != victim).map(|member| cluster.endpoint(member)).collect();
    let survivors = connect(&survivors).await;
    let patient = tokio::spawn(async move {
        let tried = Instant::now();
        match timeout(Duration::from_secs(9), put_and_get(survivors, "/patient", "p")).await {
            Ok(Ok(_)) => format!("ok in {:?}", tried.elapsed()),
            Ok(Err(error)) => format!("error in {:?}: {error}", tried.elapsed()),
            Err(_) => "no answer within 9 s".to_string(),
        }
    });

    // The other two keep quorum: the client given all three endpoints writes and reads.
    let (value, failures) = retry(&format!("{label}: put and get through all three"), || put_and_get(everyone.clone(), "/while-down", "2")).await;
    assert_eq!(value, "2");
    eprintln!("{label}: {} failed tries before the first success", failures.len());
    // Later requests: does the client keep sending some to the dead member?
    let mut later = Vec::new();
    for round in 0..12 {
        let tried = Instant::now();
        let outcome = match timeout(ATTEMPT, read(everyone.clone(), "/while-down", false)).await {
            Ok(Ok(_)) => format!("ok in {:?}", tried.elapsed()),
            Ok(Err(error)) => format!("error in {:?}: {error}", tried.elapsed()),
            Err(_) => "no answer".to_string(),
        };
        later.push(format!("{round}: {outcome}"));
    }
    eprintln!("{label}: 12 more reads through all three: {later:?}");
    assert!(later.iter().any(|outcome| outcome.contains(": ok")), "no read succeeded: {later:?}");
    let patient = patient.await.expect("the patient request's task");
    eprintln!("{label}: one put and get through the two survivors alone, sent right after the kill: {patient}");
}

/// Restarts `victim` and checks it is healthy and sees, through its own endpoint alone,
/// the key written while it was down; then a put and get through `everyone` again.
/// Returns the restarted member's PID.
async fn restart_and_check(three: &mut Three, everyone: &Client, victim: usize, label: &str) -> u32 {
    let cluster = &mut three.cluster;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.restart(victim)).expect("restart the killed member");
    eprintln!("{label}: {} healthy again after {:?}", cluster.name(victim), restarted.elapsed());
    assert!(cluster.running(victim));
    let own = connect(&[cluster.endpoint(victim)]).await;
    let (value, _) = retry(&format!("{label}: linearizable read through the restarted member alone"), || read(own.clone(), "/while-down", false)).await;
    assert_eq!(value.as_deref(), Some("2"), "the restarted member sees the key written while it was down");
    let (value, _) = retry(&format!("{label}: serializable read through the restarted member alone"), || read(own.clone(), "/while-down", true)).await;
    assert_eq!(value.as_deref(), Some("2"), "the restarted member holds the key written while it was down");
    let (value, _) = retry(&format!("{label}: put and get through all three, member back"), || put_and_get(everyone.clone(), "/after", "3")).await;
    assert_eq!(value, "3");
    cluster.pid(victim).expect("the restarted member has a PID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_member_one_and_restart_it() {
    let mut three = start();
    assert!(three.dir.path().join("etcd/m1/member-data").is_dir());
    assert!(three.dir.path().join("etcd/m3.log").is_file());
    let mut pids = three.cluster.pids();
    assert_eq!(pids.len(), 3);
    let everyone = connect(&three.cluster.endpoints()).await;
    eprintln!("m1: the leader is m{}", leader(&three.cluster).await);
    kill_and_check(&mut three, &everyone, 1, "m1").await;
    pids.push(restart_and_check(&mut three, &everyone, 1, "m1").await);
    drop_and_check(three, pids);
}

/// Renews through one keep-alive stream, bounded by `ATTEMPT`, and says how it went.
async fn renew(stream: &mut (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)) -> String {
    let tried = Instant::now();
    let (keeper, responses) = stream;
    let renewal = async {
        keeper.keep_alive().await?;
        responses.message().await
    };
    match timeout(ATTEMPT, renewal).await {
        Ok(Ok(Some(response))) => format!("renewed (ttl {}) in {:?}", response.ttl(), tried.elapsed()),
        Ok(Ok(None)) => format!("stream ended in {:?}", tried.elapsed()),
        Ok(Err(error)) => format!("error in {:?}: {error}", tried.elapsed()),
        Err(_) => format!("no answer within {ATTEMPT:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader_and_restart_it() {
    let mut three = start();
    let victim = leader(&three.cluster).await;
    eprintln!("leader: {}", three.cluster.name(victim));
    let mut pids = three.cluster.pids();
    let everyone = connect(&three.cluster.endpoints()).await;

    // Lease keep-alive streams: one through a client of the leader alone, six through
    // the client given all three endpoints (which member each goes to is its balancer's
    // choice). The lease outlives the outage, so only the streams can fail.
    let mut alone = connect(&[three.cluster.endpoint(victim)]).await;
    let lease = alone.lease_grant(60, None).await.expect("grant a lease").id();
    let mut through_leader = timeout(ATTEMPT, alone.lease_keep_alive(lease)).await.expect("open keep-alive timed out").expect("open keep-alive");
    let mut through_any = Vec::new();
    for _ in 0..6 {
        let mut client = everyone.clone();
        through_any.push(timeout(ATTEMPT, client.lease_keep_alive(lease)).await.expect("open keep-alive timed out").expect("open keep-alive"));
    }
    for stream in std::iter::once(&mut through_leader).chain(through_any.iter_mut()) {
        let outcome = renew(stream).await;
        assert!(outcome.starts_with("renewed"), "before the kill: {outcome}");
    }

    kill_and_check(&mut three, &everyone, victim, "leader").await;

    let outcome = renew(&mut through_leader).await;
    eprintln!("keep-alive through the dead leader (client of it alone): {outcome}");
    assert!(!outcome.starts_with("renewed"), "a dead member renewed the lease: {outcome}");
    // And what its response stream says, read on its own.
    let outcome = match timeout(ATTEMPT, through_leader.1.message()).await {
        Ok(Ok(Some(response))) => panic!("a dead member answered on the stream: {response:?}"),
        Ok(Ok(None)) => "ended".to_string(),
        Ok(Err(error)) => format!("error: {error}"),
        Err(_) => format!("no answer within {ATTEMPT:?}"),
    };
    eprintln!("keep-alive response stream through the dead leader: {outcome}");
    let mut outcomes = Vec::new();
    for (index, stream) in through_any.iter_mut().enumerate() {
        outcomes.push(format!("stream {index}: {}", renew(stream).await));
    }
    eprintln!("keep-alive streams through all three, leader dead: {outcomes:?}");
    // A fresh stream through the client given all three endpoints renews the lease.
    let (ttl, _) = retry("fresh keep-alive through all three", || {
        let mut client = everyone.clone();
        async move {
            let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(responses.message().await?.map(|response| response.ttl()).unwrap_or(0))
        }
    })
    .await;
    assert!(ttl > 0, "the lease outlived the outage");

    pids.push(restart_and_check(&mut three, &everyone, victim, "leader").await);
    drop_and_check(three, pids);
}
