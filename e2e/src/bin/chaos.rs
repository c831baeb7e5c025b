//! The fault campaign: `chaos --runs N --seed S` starts a cluster (etcd, two
//! schedulers, three agents, witness resources), then injects N faults drawn from the
//! seed, one at a time: after each, it measures how long until every resource runs
//! again, heals the fault (restarts what was killed, reconnects what was cut) and waits
//! for the whole cluster to settle. The observer audits the witness log against the
//! fencing record after every run. Prints, per fault kind, runs, violations and
//! recovery p50/p99/max; exits 1 on any violation or unrecovered fault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use pacer_e2e::{Cluster, ClusterConfig, overlaps, read_witness};
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// kill -9 a node's agent (the node crashes).
    KillAgent,
    /// SIGSTOP an agent for longer than its lease, then SIGCONT (a frozen node wakes).
    FreezeAgent,
    /// Cut a node off from etcd, then heal the link.
    CutLink,
    /// kill -9 the leading scheduler.
    KillLeader,
    /// Make a resource's monitor fail.
    FailMonitor,
}

const FAULTS: [Fault; 5] = [Fault::KillAgent, Fault::FreezeAgent, Fault::CutLink, Fault::KillLeader, Fault::FailMonitor];
const RESOURCES: [&str; 5] = ["w1", "w2", "w3", "g1", "g2"];

struct Options {
    runs: usize,
    seed: u64,
    lease_ttl: u64,
    bound: Duration,
    pacer: PathBuf,
    agents: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options { runs: 10, seed: 1, lease_ttl: 2, bound: Duration::from_secs(60), pacer: root.join("target/debug/pacer"), agents: root.join("agents") };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "--lease-ttl" => options.lease_ttl = value()?.parse().context("--lease-ttl")?,
            "--bound" => options.bound = Duration::from_secs(value()?.parse().context("--bound")?),
            "--pacer" => options.pacer = PathBuf::from(value()?),
            "--agents" => options.agents = PathBuf::from(value()?),
            other => anyhow::bail!("unknown argument {other}; use --runs N --seed S [--lease-ttl S] [--bound S] [--pacer PATH] [--agents DIR]"),
        }
    }
    Ok(options)
}

fn manifests(cluster: &Cluster) -> String {
    let log = cluster.witness_log();
    let resource = |name: &str| {
        format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}, fail_monitor: {}}}\n  operations: [{{name: monitor, interval: 1s}}]\n",
            log.display(),
            cluster.dir().join(format!("fail-{name}")).display()
        )
    };
    let mut documents: Vec<String> = RESOURCES.iter().map(|name| resource(name)).collect();
    documents.push("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: g}\nspec: {members: [g1, g2]}\n".into());
    documents.join("---\n")
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waits until every resource runs again — and, after a node fault, until the node is
/// no longer taken as online and nothing is believed to run on it (its resources have
/// really moved, after its fencing).
async fn resources_back(cluster: &Cluster, lost: Option<&str>, bound: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let view = cluster.status()?;
        let entries: Vec<&serde_json::Value> = view["resources"].as_array().into_iter().flatten().collect();
        let all = RESOURCES.iter().all(|name| entries.iter().any(|entry| entry["name"] == *name && entry["role"] == "Started"));
        let moved = lost.is_none_or(|node| {
            let gone = view["nodes"].as_array().into_iter().flatten().any(|entry| entry["name"] == node && entry["state"] != "online");
            gone && !entries.iter().any(|entry| entry["node"] == node)
        });
        if all && moved {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    anyhow::ensure!(options.pacer.exists(), "{} is missing: build it first (cargo build --bin pacer)", options.pacer.display());
    let config = ClusterConfig { nodes: 3, lease_ttl: options.lease_ttl, pacer: options.pacer.clone(), agents: options.agents.clone() };
    let mut cluster = Cluster::start(config).await?;
    cluster.apply(&manifests(&cluster))?;
    cluster.wait_settled(&RESOURCES, options.bound).await?.context("the cluster did not settle at start")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut recoveries: BTreeMap<Fault, Vec<Duration>> = BTreeMap::new();
    let mut violations: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut unrecovered: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut known_problems = 0;
    let nodes = cluster.node_names();
    for run in 0..options.runs {
        let fault = FAULTS[rng.random_range(0..FAULTS.len())];
        let node = nodes[rng.random_range(0..nodes.len())].clone();
        let resource = RESOURCES[rng.random_range(0..RESOURCES.len())];
        println!("run {run}: {fault:?} {}", if fault == Fault::FailMonitor { resource } else if fault == Fault::KillLeader { "" } else { node.as_str() });
        let term = cluster.leader_term().await?;
        let fault_at = Instant::now();
        match fault {
            Fault::KillAgent => cluster.kill_agent(&node),
            Fault::FreezeAgent => cluster.signal_agent(&node, libc::SIGSTOP),
            Fault::CutLink => cluster.cut_link(&node, true),
            Fault::KillLeader => {
                cluster.kill_leader()?;
            }
            Fault::FailMonitor => {
                std::fs::write(cluster.dir().join(format!("fail-{resource}")), "").context("inject a monitor failure")?;
                // Keep failing until the failure is seen, then let the recovery work.
                let started = Instant::now();
                while started.elapsed() < options.bound {
                    let view = cluster.status()?;
                    if view["failures"].as_array().is_some_and(|failures| failures.iter().any(|failure| failure["resource"] == resource)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                std::fs::remove_file(cluster.dir().join(format!("fail-{resource}"))).context("heal the monitor")?;
            }
        }
        let recovered = match fault {
            Fault::KillAgent | Fault::FreezeAgent | Fault::CutLink => resources_back(&cluster, Some(&node), options.bound).await?,
            Fault::FailMonitor => resources_back(&cluster, None, options.bound).await?,
            Fault::KillLeader => {
                // Recovered when a (new) leader holds the election.
                let mut elected = false;
                while fault_at.elapsed() < options.bound {
                    let now = cluster.leader_term().await?;
                    if now.is_some() && now != term {
                        elected = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                elected
            }
        };
        if recovered {
            recoveries.entry(fault).or_default().push(fault_at.elapsed());
        } else {
            *unrecovered.entry(fault).or_default() += 1;
        }
        // Heal: wake or reconnect, and restart what the fault or the fencing killed.
        match fault {
            Fault::FreezeAgent => cluster.signal_agent(&node, libc::SIGCONT),
            Fault::CutLink => cluster.cut_link(&node, false),
            _ => {}
        }
        for name in &nodes {
            if !cluster.agent_running(name) {
                cluster.start_agent(name)?;
            }
        }
        if cluster.wait_settled(&RESOURCES, options.bound).await?.is_none() {
            *unrecovered.entry(fault).or_default() += 1;
            println!("  the cluster did not settle after healing within {:?}", options.bound);
        }
        let problems = overlaps(&read_witness(&cluster.witness_log()), &cluster.power_offs());
        if problems.len() > known_problems {
            for problem in &problems[known_problems..] {
                println!("  VIOLATION: {problem}");
            }
            *violations.entry(fault).or_default() += problems.len() - known_problems;
            known_problems = problems.len();
        }
    }
    println!("\nseed {} runs {} lease TTL {} s (logs kept in {} while running)", options.seed, options.runs, options.lease_ttl, cluster.dir().display());
    println!("{:<12} {:>5} {:>10} {:>11} {:>9} {:>9} {:>9}", "fault", "runs", "violations", "unrecovered", "p50", "p99", "max");
    let mut failed = false;
    for fault in FAULTS {
        let mut samples = recoveries.get(&fault).cloned().unwrap_or_default();
        samples.sort();
        let runs = samples.len() + unrecovered.get(&fault).copied().unwrap_or(0);
        if runs == 0 {
            continue;
        }
        let seconds = |duration: Duration| format!("{:.2}s", duration.as_secs_f64());
        let bad = violations.get(&fault).copied().unwrap_or(0);
        let lost = unrecovered.get(&fault).copied().unwrap_or(0);
        failed |= bad > 0 || lost > 0;
        println!(
            "{:<12} {:>5} {:>10} {:>11} {:>9} {:>9} {:>9}",
            format!("{fault:?}"),
            runs,
            bad,
            lost,
            seconds(percentile(&samples, 0.5)),
            seconds(percentile(&samples, 0.99)),
            seconds(samples.last().copied().unwrap_or_default())
        );
    }
    if failed {
        anyhow::bail!("the campaign found violations or unrecovered faults");
    }
    Ok(())
}
