//! Whole-cluster benchmark (`make bench`): `pacer up --nodes 3` with 100 resources
//! (heartbeat:Dummy, monitored every 10 s, plus a witness group), measuring
//! - etcd writes on the idle cluster (revisions per second over 30 s);
//! - failover: a node killed with SIGKILL → its resource running elsewhere (lease,
//!   fencing with the local fence agent, recovery), for lease TTLs of 2 s and 5 s;
//! - leader takeover: the leading scheduler killed → a standby elected.
//!
//! Figures only (`target/bench-cluster.txt`). `PACER_BENCH_ROUNDS` sets the failover
//! and takeover rounds (default 3).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{PREFIX, Proc, Up};

fn status(endpoint: &str) -> Value {
    support::status(endpoint, Duration::from_secs(60))
}

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] != "Stopped")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

fn all_running(view: &Value, count: usize) -> bool {
    view["resources"].as_array().is_some_and(|resources| resources.iter().filter(|entry| entry["role"] == "Started").count() >= count)
}

fn wait(endpoint: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if condition(&status(endpoint)) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn revision(endpoint: &str) -> i64 {
    // The revision of a write-free read: `pacer status` reads at the current revision;
    // etcd's own header is simplest to get through a tiny client call.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint], None).await.expect("connect");
        client.status().await.expect("status").header().map(|header| header.revision()).unwrap_or_default()
    })
}

/// A cluster from `pacer up`, with 100 resources applied and running.
fn up(ttl: u64) -> Up {
    let cluster = support::up(ttl, Duration::from_secs(60)).expect("pacer up");
    let output = support::pacer(&cluster.endpoint, &["apply", "-f", "-"], Some(&support::dummies(100, "10s")), Duration::from_secs(120));
    assert!(output.success(), "apply: {}", output.failure());
    wait(&cluster.endpoint, "100 resources running", |view| all_running(view, 100));
    cluster
}

fn summary(label: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let seconds = |duration: Duration| duration.as_secs_f64();
    format!(
        "{label:<52} n={:<2} min {:>6.2} s  p50 {:>6.2} s  max {:>6.2} s",
        samples.len(),
        seconds(samples[0]),
        seconds(samples[samples.len() / 2]),
        seconds(samples[samples.len() - 1])
    )
}

fn main() {
    let rounds: usize = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(3).max(1);
    let mut lines = Vec::new();

    // Idle writes.
    {
        let cluster = up(5);
        // Let the last decisions and first monitors settle.
        std::thread::sleep(Duration::from_secs(12));
        let before = revision(&cluster.endpoint);
        std::thread::sleep(Duration::from_secs(30));
        let after = revision(&cluster.endpoint);
        lines.push(format!(
            "idle cluster (3 nodes, 100 resources monitored every 10 s): {} etcd writes in 30 s ({:.2}/s)",
            after - before,
            (after - before) as f64 / 30.0
        ));
        drop(cluster);
    }

    // Failover, per lease TTL.
    for ttl in [2u64, 5] {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let cluster = up(ttl);
            let view = status(&cluster.endpoint);
            let victim = node_of(&view, "r0").expect("r0 runs");
            let pid = cluster.pid(&victim).expect("pid");
            let killed = Instant::now();
            // SAFETY: SIGKILL to an agent of the cluster this benchmark started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            wait(&cluster.endpoint, "r0 elsewhere", |view| node_of(view, "r0").is_some_and(|node| node != victim));
            samples.push(killed.elapsed());
        }
        lines.push(summary(&format!("node killed -> its resource running elsewhere, TTL {ttl} s"), samples));
    }

    // Leader takeover (TTL 2 s): a second scheduler stands by; the leader is killed.
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let cluster = up(2);
        let log = std::fs::File::create(cluster.dir.path().join("standby.log")).expect("log");
        let _standby = Proc::new(
            Command::new(env!("CARGO_BIN_EXE_pacer"))
                .args(["scheduler", "--lease-ttl", "2", "--identity", "standby"])
                .env("PACER_ETCD", &cluster.endpoint)
                .env("PACER_PREFIX", PREFIX)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("standby scheduler"),
        );
        std::thread::sleep(Duration::from_secs(1));
        let pid = cluster.pid("scheduler").expect("pid");
        let killed = Instant::now();
        // SAFETY: SIGKILL to the scheduler of the cluster this benchmark started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        wait(&cluster.endpoint, "the standby to lead", |view| view["leader"] == "standby");
        samples.push(killed.elapsed());
    }
    lines.push(summary("leader killed -> standby elected, TTL 2 s", samples));

    let report = lines.join("\n");
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-cluster.txt", format!("{report}\n"));
}
