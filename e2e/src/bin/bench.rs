//! Benchmarks in the fault campaign's harness: `bench --rounds N --ttls 2,5,10` starts,
//! for each lease TTL, a cluster (etcd, two schedulers, three agents, witness resources)
//! and measures, N rounds each:
//! - failover: the agent of the node running `w1` killed with SIGKILL → `w1` Started on
//!   another node (the lease expires, the node is fenced by `fence_pacer_local`, the
//!   resource recovered); also kill → power-off (the fence agent's marker);
//! - leader takeover: the leading scheduler killed with SIGKILL → a new term in the
//!   election, and → a resource applied right after the kill Started (what a user
//!   waits for);
//! - restart after a monitor failure, with monitors every 1 s and every 5 s (once, in
//!   the cluster with TTL 2 s, else the first TTL listed: the lease plays no part):
//!   injection → the failure in `pacer status` (detection), and → Started again
//!   (recovery).
//!
//! With `--compare-secure`, each TTL's failover and takeover rounds run twice, in a
//! plaintext cluster and in one with etcd over mutual TLS and per-identity rights
//! (`[mTLS]` rows, each under its plaintext twin): one run, side by side.
//!
//! After every round the fault is healed (the killed agent restarted) and the cluster
//! left to settle; the rounds' faults are spread evenly over the period of what they
//! race with (lease renewals, monitor intervals), not injected in step with it. Figures only, never asserted: a table on stdout and in
//! `target/bench-e2e.txt`; the clusters' logs are copied to `target/bench-e2e-logs/`.
//! Times come from polling `pacer status` (a process per poll, tens of ms).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use pacer_e2e::{Cluster, ClusterConfig, epoch_ns, percentile};
use serde_json::Value;

/// The resource whose node is killed in the failover rounds.
const TARGET: &str = "w1";
/// Witness resources monitored every second, as the fault campaign's.
const WITNESSES: [&str; 3] = ["w1", "w2", "w3"];
/// Resources of the monitor rounds and their monitor intervals (seconds).
const MONITORED: [(&str, u64); 2] = [("m1", 1), ("m5", 5)];
/// The TTL of the cluster the monitor rounds run in, when listed.
const MONITOR_TTL: u64 = 2;

struct Options {
    rounds: usize,
    ttls: Vec<u64>,
    bound: Duration,
    pacer: PathBuf,
    agents: PathBuf,
    root: PathBuf,
    /// Also measure failover and takeover with etcd over mutual TLS and auth.
    compare_secure: bool,
}

fn options() -> anyhow::Result<Options> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        rounds: 5,
        ttls: vec![2, 5, 10],
        bound: Duration::from_secs(60),
        pacer: root.join("target/debug/pacer"),
        agents: root.join("agents"),
        root,
        compare_secure: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => options.rounds = value()?.parse().context("--rounds")?,
            "--ttls" => {
                options.ttls =
                    value()?.split(',').map(|ttl| ttl.trim().parse().context("--ttls: whole seconds, comma separated")).collect::<anyhow::Result<_>>()?
            }
            "--bound" => options.bound = Duration::from_secs(value()?.parse().context("--bound")?),
            "--pacer" => options.pacer = PathBuf::from(value()?),
            "--agents" => options.agents = PathBuf::from(value()?),
            "--compare-secure" => options.compare_secure = true,
            other => anyhow::bail!("unknown argument {other}; use [--rounds N] [--ttls 2,5,10] [--bound S] [--pacer PATH] [--agents DIR] [--compare-secure]"),
        }
    }
    // etcd grants no lease under 2 s (1.5 × its election timeout, rounded up) and pacer
    // refuses one: a 1 s cluster would never start.
    anyhow::ensure!(
        !options.ttls.is_empty() && options.ttls.iter().all(|ttl| *ttl >= 2),
        "--ttls needs at least one TTL, all of 2 s or more (pacer's minimum lease)"
    );
    Ok(options)
}

/// A witness resource, monitored every `interval` seconds, failing its monitor while
/// `fail-<name>` exists in the cluster's directory.
fn witness(cluster: &Cluster, name: &str, interval: u64) -> String {
    format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}, fail_monitor: {}}}\n  operations: [{{name: monitor, interval: {interval}s}}]\n",
        cluster.witness_log().display(),
        fail_file(cluster, name).display()
    )
}

fn fail_file(cluster: &Cluster, name: &str) -> PathBuf {
    cluster.dir().join(format!("fail-{name}"))
}

/// One line of the table: the samples of one measure in one cluster.
struct Row {
    measure: String,
    ttl: u64,
    samples: Vec<Duration>,
    /// Rounds that did not finish within the bound.
    lost: usize,
    /// Whether p50/TTL means something for this measure.
    per_ttl: bool,
}

impl Row {
    fn new(measure: &str, ttl: u64, per_ttl: bool) -> Row {
        Row { measure: measure.to_string(), ttl, samples: Vec::new(), lost: 0, per_ttl }
    }

    fn record(&mut self, sample: Option<Duration>) {
        match sample {
            Some(duration) => self.samples.push(duration),
            None => self.lost += 1,
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = format!("{:<48} {:>4} {:>6} {:>7} {:>7} {:>7} {:>8}\n", "measure", "TTL", "rounds", "min", "p50", "max", "p50/TTL");
    for row in rows {
        let mut samples = row.samples.clone();
        samples.sort();
        let seconds = |duration: Option<&Duration>| duration.map_or_else(|| "-".to_string(), |duration| format!("{:.2}s", duration.as_secs_f64()));
        let p50 = (!samples.is_empty()).then(|| percentile(&samples, 0.5));
        let ratio = match p50 {
            Some(p50) if row.per_ttl => format!("{:.2}", p50.as_secs_f64() / row.ttl as f64),
            _ => "-".to_string(),
        };
        let rounds = if row.lost == 0 { samples.len().to_string() } else { format!("{}/{}", samples.len(), samples.len() + row.lost) };
        let _ = writeln!(
            out,
            "{:<48} {:>3}s {:>6} {:>7} {:>7} {:>7} {:>8}",
            row.measure,
            row.ttl,
            rounds,
            seconds(samples.first()),
            seconds(p50.as_ref()),
            seconds(samples.last()),
            ratio
        );
    }
    out
}

/// The node a resource runs on (Started, not failed), if any.
fn started_on(view: &Value, name: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name && entry["role"] == "Started" && entry["failed"] == false)
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

/// The failures counted for a resource, all nodes and operations (INFINITY as a large number).
fn failure_count(view: &Value, name: &str) -> u64 {
    let failures = view["failures"].as_array().into_iter().flatten().filter(|failure| failure["resource"] == name);
    failures
        .flat_map(|failure| failure["counts"].as_object().into_iter().flat_map(|counts| counts.values()))
        .map(|count| count.as_str().and_then(|count| count.parse().ok()).unwrap_or(1_000_000))
        .sum()
}

/// Polls `pacer status` until `condition` holds; the time since `since`, or `None`
/// after `bound`.
async fn wait_for(cluster: &Cluster, since: Instant, bound: Duration, condition: impl Fn(&Value) -> bool) -> anyhow::Result<Option<Duration>> {
    while since.elapsed() < bound {
        if condition(&cluster.status()?) {
            return Ok(Some(since.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Heals and waits for quiet (`Cluster::wait_quiet`): every agent running, every
/// resource Started, every node running what it is assigned, for a while — a node
/// that comes back may draw resources to it, as Pacemaker without stickiness does.
async fn settle(cluster: &mut Cluster, resources: &[String], bound: Duration) -> anyhow::Result<()> {
    for node in cluster.node_names() {
        if !cluster.agent_running(&node) {
            cluster.start_agent(&node)?;
        }
    }
    let all_started = |view: &Value| resources.iter().all(|name| started_on(view, name).is_some());
    anyhow::ensure!(cluster.wait_quiet(bound, all_started).await?, "the cluster did not settle within {bound:?}");
    Ok(())
}

/// Waits `round`'s share of `period`, so that the rounds' faults fall at points spread
/// evenly over it. Settling takes about as long every round, so a fault injected right
/// after it would always hit the same point of a periodic activity (a lease renewal
/// every sixth of the TTL, `store::lease::keep_alive`; a monitor's interval, which a restart
/// resets) and measure one case, not the average.
async fn spread(round: usize, rounds: usize, period: Duration) {
    tokio::time::sleep(period.mul_f64((round as f64 + 0.5) / rounds as f64)).await;
}

async fn failover(cluster: &mut Cluster, resources: &[String], options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let ttl = cluster.lease_ttl().as_secs();
    rows.push(Row::new(&format!("failover: kill -9 → {TARGET} elsewhere"), ttl, true));
    rows.push(Row::new("  of which kill → node powered off", ttl, true));
    let moved = rows.len() - 2;
    for round in 0..options.rounds {
        spread(round, options.rounds, cluster.lease_ttl() / 4).await;
        let node = started_on(&cluster.status()?, TARGET).context("the failover target does not run")?;
        let offs_before = cluster.power_offs().get(&node).map_or(0, Vec::len);
        let killed_ns = epoch_ns();
        cluster.kill_agent(&node);
        let killed = Instant::now();
        let sample = wait_for(cluster, killed, options.bound, |view| started_on(view, TARGET).is_some_and(|now| now != node)).await?;
        rows[moved].record(sample);
        let power_off = cluster.power_offs().get(&node).and_then(|times| times.get(offs_before).copied());
        rows[moved + 1].record(power_off.map(|ns| Duration::from_nanos(u64::try_from(ns.saturating_sub(killed_ns)).unwrap_or(u64::MAX))));
        settle(cluster, resources, options.bound).await?;
    }
    Ok(())
}

async fn takeover(cluster: &mut Cluster, resources: &mut Vec<String>, options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let ttl = cluster.lease_ttl().as_secs();
    rows.push(Row::new("leader kill -9 → new term", ttl, true));
    rows.push(Row::new("leader kill -9 → change applied Started", ttl, true));
    let elected = rows.len() - 2;
    for round in 0..options.rounds {
        spread(round, options.rounds, cluster.lease_ttl() / 4).await;
        let term = cluster.leader_term().await?.context("no leader before the kill")?;
        cluster.kill_leader()?.context("no leader to kill")?;
        let killed = Instant::now();
        let name = format!("t{ttl}r{round}");
        cluster.apply(&witness(cluster, &name, 1))?;
        resources.push(name.clone());
        let mut sample = None;
        while killed.elapsed() < options.bound {
            if cluster.leader_term().await?.is_some_and(|now| now != term) {
                sample = Some(killed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rows[elected].record(sample);
        rows[elected + 1].record(wait_for(cluster, killed, options.bound, |view| started_on(view, &name).is_some()).await?);
        settle(cluster, resources, options.bound).await?;
    }
    Ok(())
}

async fn monitor_failures(cluster: &mut Cluster, resources: &[String], options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let ttl = cluster.lease_ttl().as_secs();
    for (name, interval) in MONITORED {
        rows.push(Row::new(&format!("monitor {interval}s failed → seen in status"), ttl, false));
        rows.push(Row::new(&format!("monitor {interval}s failed → Started again"), ttl, false));
        let detected = rows.len() - 2;
        for round in 0..options.rounds {
            spread(round, options.rounds, Duration::from_secs(interval)).await;
            let before = failure_count(&cluster.status()?, name);
            let file = fail_file(cluster, name);
            std::fs::write(&file, "").context("inject a monitor failure")?;
            let injected = Instant::now();
            // Keep failing until the failure is seen, then let the recovery work.
            let seen = wait_for(cluster, injected, options.bound, |view| failure_count(view, name) > before).await;
            std::fs::remove_file(&file).context("heal the monitor")?;
            let seen = seen?;
            rows[detected].record(seen);
            let back = match seen {
                Some(_) => wait_for(cluster, injected, options.bound, |view| started_on(view, name).is_some()).await?,
                None => None,
            };
            rows[detected + 1].record(back);
            settle(cluster, resources, options.bound).await?;
        }
    }
    Ok(())
}

async fn measure(ttl: u64, monitors: bool, secure: bool, options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let config = ClusterConfig { secure, ..ClusterConfig::new(3, ttl, options.pacer.clone(), options.agents.clone()) };
    let mut cluster = Cluster::start(config).await?;
    let mut documents: Vec<String> = WITNESSES.iter().map(|name| witness(&cluster, name, 1)).collect();
    documents.extend(MONITORED.iter().map(|(name, interval)| witness(&cluster, name, *interval)));
    cluster.apply(&documents.join("---\n"))?;
    let mut resources: Vec<String> = WITNESSES.iter().chain(MONITORED.iter().map(|(name, _)| name)).map(|name| name.to_string()).collect();
    let result = async {
        settle(&mut cluster, &resources, options.bound).await.context("the cluster did not settle at start")?;
        failover(&mut cluster, &resources, options, rows).await.context("failover")?;
        takeover(&mut cluster, &mut resources, options, rows).await.context("leader takeover")?;
        if monitors {
            monitor_failures(&mut cluster, &resources, options, rows).await.context("monitor failures")?;
        }
        anyhow::Ok(())
    }
    .await;
    let logs = options.root.join(format!("target/bench-e2e-logs/ttl-{ttl}{}", if secure { "-secure" } else { "" }));
    let _ = std::fs::remove_dir_all(&logs);
    if let Err(error) = cluster.save_logs(&logs) {
        eprintln!("logs of TTL {ttl} s not kept: {error:#}");
    }
    result
}

fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(root).output().ok().filter(|output| output.status.success());
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown".into() };
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|status| !status.stdout.is_empty()) {
        commit.push_str(" (with uncommitted changes)");
    }
    commit
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    anyhow::ensure!(options.pacer.exists(), "{} is missing: build it first (cargo build --bin pacer)", options.pacer.display());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let header = format!(
        "pacer e2e bench: commit {}, {cores} cores, 3 nodes, 2 schedulers, {} rounds, lease TTLs {:?} s, monitor rounds at TTL {} s{}\n",
        git_commit(&options.root),
        options.rounds,
        options.ttls,
        if options.ttls.contains(&MONITOR_TTL) { MONITOR_TTL } else { options.ttls[0] },
        if options.compare_secure { "; [mTLS]: etcd over mutual TLS, client-certificate auth, per-identity rights" } else { "" }
    );
    print!("{header}");
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, &ttl) in options.ttls.iter().enumerate() {
        let monitors = if options.ttls.contains(&MONITOR_TTL) { ttl == MONITOR_TTL } else { index == 0 };
        println!("TTL {ttl} s ...");
        let mut plain = Vec::new();
        if let Err(error) = measure(ttl, monitors, false, &options, &mut plain).await {
            println!("TTL {ttl} s: stopped early: {error:#}");
            errors.push(format!("TTL {ttl} s: stopped early: {error:#}"));
        }
        let mut secure = Vec::new();
        if options.compare_secure {
            println!("TTL {ttl} s, mTLS ...");
            if let Err(error) = measure(ttl, false, true, &options, &mut secure).await {
                println!("TTL {ttl} s, mTLS: stopped early: {error:#}");
                errors.push(format!("TTL {ttl} s, mTLS: stopped early: {error:#}"));
            }
        }
        // Each mTLS row under its plaintext twin (the secure run has no monitor rows).
        let mut secure = secure.into_iter();
        for row in plain {
            let twin = secure.next();
            rows.push(row);
            if let Some(mut twin) = twin {
                twin.measure = format!("{} [mTLS]", twin.measure);
                rows.push(twin);
            }
        }
    }
    let mut report = format!("{header}\n{}", table(&rows));
    for error in &errors {
        let _ = writeln!(report, "{error}");
    }
    let _ = writeln!(report, "run time {:.0} s; logs in target/bench-e2e-logs/", started.elapsed().as_secs_f64());
    println!("\n{report}");
    let file = options.root.join("target/bench-e2e.txt");
    std::fs::create_dir_all(options.root.join("target")).context("target directory")?;
    std::fs::write(&file, &report).with_context(|| format!("write {}", file.display()))?;
    anyhow::ensure!(errors.is_empty(), "some measurements stopped early");
    Ok(())
}
