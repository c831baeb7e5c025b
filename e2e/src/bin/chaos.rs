//! The fault campaign: `chaos --runs N --seed S` starts a cluster (etcd, two
//! schedulers, three agents with a fence device each) running the brief's workloads
//! with witness resources — independent services and a group, a VM on promotable
//! storage (order and colocation with the promoted instance), a DNS service with two
//! colocated addresses and a name server ordered after both — then injects N faults
//! drawn from the seed, one at a time. After each, it measures how long until every
//! resource runs again, heals the fault (restarts what was killed, reconnects what was
//! cut) and waits for the whole cluster to settle; then the observer audits the
//! witness log against the fencing record (never two copies of a resource, never
//! more promoted than `promotedMax`) and the status against the log (after healing,
//! the status says what really runs), and the agents' logs against the fault: a node
//! that self-fenced (`lease not renewed`) though it could reach etcd — its link not
//! cut, its agent not frozen — stopped its resources for nothing.
//!
//! A `Burst` is load rather than a failure: `--burst N` (150) plain Dummy resources in
//! one apply, so that probes and starts queue on every node behind its action limit.
//! Followed in the sequence by another fault, that fault strikes while the burst still
//! starts (`Burst,KillAgent:n2`); the burst is measured until all of it is Started and
//! every node runs what it is assigned, then deleted, and the cluster settles.
//!
//! `--sequence "KillAgent:n1,FailMonitor:w2"` replays given faults instead, and
//! `--sequence-file F` every line of F (`#` comments): how a sequence that once found a
//! violation is kept as a regression test (`e2e/regressions`). Every run prints its
//! fault in that form.
//!
//! etcd itself fails too: `KillEtcd` (every member killed for two lease TTLs) and
//! `FreezeEtcd` (every member stopped) take it from everyone while every node can reach
//! every other, so whatever they stop, start or fence, the outage alone caused: counted
//! and printed (`outage-caused`; the goal is zero — issue 20's failsafe — and
//! `--expect-failsafe` makes any a violation and no node excused for self-fencing).
//! `KillEtcdCutLink:nK` cuts nK off as etcd goes and keeps it cut once etcd is back:
//! nK must stop its resources itself, and nothing may run twice. `--nodes 2
//! --etcd-members 3` is two nodes and a witness (`make chaos-witness`): `KillNode:nK`
//! kills nK's agent and its etcd member (member K), `KillEtcdMember:witness` the third.
//!
//! Live migration: the `migratable` resource allows it (`allowMigrate`). `Migrate:nK`
//! moves it to nK (`pacer move`) and `Standby:nK` puts nK in standby until nothing runs
//! there: a healthy move must be a live migration, and the observer's migration rule
//! (the target's `migrate_from` may overlap only a source whose `migrate_to` succeeded)
//! judges each; a node lost with it on recovers it by fencing and a start.
//!
//! Prints, per fault kind, runs, violations, unexpected self-fencings, unrecovered,
//! recovery p50/p99/max, the live migrations the observer saw and the outage-caused
//! count; exits 1 on any of the first three.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pacer_e2e::{Cluster, ClusterConfig, Replay, Rules, audit, disagreements, epoch_ns, migrations, percentile, read_witness, unexpected_self_fencings};
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// kill -9 a node's agent (the node crashes).
    KillAgent,
    /// SIGSTOP an agent for longer than its lease, then SIGCONT (a frozen node wakes).
    FreezeAgent,
    /// Move the slow resource to a node and freeze that node's agent while the start
    /// runs: the node must be fenced before the resource starts anywhere else.
    FreezeMidStart,
    /// Cut a node off from etcd, then heal the link.
    CutLink,
    /// kill -9 the leading scheduler.
    KillLeader,
    /// Make a resource's monitor fail.
    FailMonitor,
    /// Fence devices fail, then a node crashes: nothing of it may run elsewhere until
    /// the devices work again and its fencing succeeds.
    FailFencing,
    /// kill -9 every agent and scheduler at once and start them again: nothing may
    /// stop, start or be fenced.
    RestartAll,
    /// kill -9 one etcd member of three (the leader or a follower) for two lease
    /// TTLs, then restart it: quorum holds, so nothing may stop, start or be fenced.
    KillEtcdMember,
    /// A burst of plain Dummy resources in one apply (load: probes and starts on every
    /// node at once); the next fault of the sequence strikes while it starts. Deleted
    /// once all Started; no node may self-fence meanwhile.
    Burst,
    /// kill -9 every etcd member for two lease TTLs, then start them again: etcd is
    /// down for everyone, every node can still reach every other. What it stops or
    /// starts is counted (outage-caused; the goal is zero, `--expect-failsafe` makes
    /// any a violation).
    KillEtcd,
    /// SIGSTOP every etcd member for two lease TTLs, then SIGCONT: etcd hangs for
    /// everyone (connections open and silent). Counted like `KillEtcd`.
    FreezeEtcd,
    /// `KillEtcd`, and the target node's links cut as etcd goes, kept cut once etcd is
    /// back: that node must stop its resources (it self-fences), is fenced, and its
    /// resources start elsewhere; nothing may run twice.
    KillEtcdCutLink,
    /// kill -9 a node's agent and its own etcd member (`nK`'s is member K), as a
    /// machine of two nodes and a witness lost whole: the survivor and the witness keep
    /// etcd's quorum, fence the node and take its resources.
    KillNode,
    /// `pacer move` the migratable resource to the target node (elsewhere if it runs
    /// there): it must move by live migration (migrate_to, then migrate_from).
    Migrate,
    /// Put the target node (`Standby:migratable`: the node the migratable resource
    /// runs on) in standby until nothing runs there, then take it out: the migratable
    /// resource, if it ran there, leaves by live migration; the others move.
    Standby,
}

const FAULTS: [Fault; 16] = [
    Fault::KillAgent,
    Fault::FreezeAgent,
    Fault::FreezeMidStart,
    Fault::CutLink,
    Fault::KillLeader,
    Fault::FailMonitor,
    Fault::FailFencing,
    Fault::RestartAll,
    Fault::KillEtcdMember,
    Fault::Burst,
    Fault::KillEtcd,
    Fault::FreezeEtcd,
    Fault::KillEtcdCutLink,
    Fault::KillNode,
    Fault::Migrate,
    Fault::Standby,
];

/// The faults that take etcd away from every node while every node can reach every
/// other: what they stop or start is outage-caused.
fn outage(fault: Fault) -> bool {
    matches!(fault, Fault::KillEtcd | Fault::FreezeEtcd)
}

/// The faults during which etcd is down for everyone: without the failsafe (issue
/// 20), every node self-fences, as it had reason to.
fn etcd_down(fault: Fault) -> bool {
    matches!(fault, Fault::KillEtcd | Fault::FreezeEtcd | Fault::KillEtcdCutLink)
}

impl FromStr for Fault {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Fault> {
        FAULTS.into_iter().find(|fault| format!("{fault:?}") == text).with_context(|| format!("unknown fault {text:?}; one of {FAULTS:?}"))
    }
}

/// Exclusive resources (not clones), all witnesses.
const RESOURCES: [&str; 11] = ["w1", "w2", "w3", "g1", "g2", "slow", "vm", "ip-dns", "ip-gw", "named", MIGRATABLE];
/// The resource that moves by live migration (`allowMigrate`): a healthy move between
/// two usable nodes is migrate_to on the source, then migrate_from on the target; a
/// node loss recovers it as any other (fencing, then a start).
const MIGRATABLE: &str = "migratable";
/// The promotable storage the VM runs on, and how many may be promoted.
const STORAGE: &str = "db";
const STORAGE_PROMOTED_MAX: usize = 1;
/// Seconds the slow resource's start and stop take.
const SLOW_DELAY: u64 = 2;

/// One fault of a sequence, with its target: a node, a resource or nothing.
#[derive(Clone, Debug)]
struct Step {
    fault: Fault,
    target: String,
}

impl std::fmt::Display for Step {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.target.is_empty() { write!(formatter, "{:?}", self.fault) } else { write!(formatter, "{:?}:{}", self.fault, self.target) }
    }
}

impl FromStr for Step {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Step> {
        let (fault, target) = text.trim().split_once(':').unwrap_or((text.trim(), ""));
        Ok(Step { fault: fault.parse()?, target: target.to_string() })
    }
}

struct Options {
    runs: usize,
    seed: u64,
    sequence: Option<Vec<Step>>,
    lease_ttl: u64,
    bound: Duration,
    pacer: PathBuf,
    agents: PathBuf,
    namespaces: bool,
    nodes: usize,
    etcd_members: usize,
    /// Outage-caused stops and starts are violations, and no node may self-fence for an
    /// etcd down for everyone (turn on once the failsafe is in).
    expect_failsafe: bool,
    /// etcd with mutual TLS and per-identity rights (`pacer up --secure`'s set-up).
    secure: bool,
    /// Resources in a `Burst`.
    burst: usize,
}

fn parse_sequence(text: &str) -> anyhow::Result<Vec<Step>> {
    text.lines()
        .flat_map(|line| line.split('#').next().unwrap_or_default().split(','))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(Step::from_str)
        .collect()
}

fn options() -> anyhow::Result<Options> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        runs: 10,
        seed: 1,
        sequence: None,
        lease_ttl: 2,
        bound: Duration::from_secs(60),
        pacer: root.join("target/debug/pacer"),
        agents: root.join("agents"),
        namespaces: false,
        nodes: 3,
        etcd_members: 1,
        expect_failsafe: false,
        secure: false,
        burst: 150,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => options.runs = value()?.parse().context("--runs")?,
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "--sequence" => options.sequence = Some(parse_sequence(&value()?).context("--sequence")?),
            "--sequence-file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
                options.sequence = Some(parse_sequence(&text).with_context(|| path.clone())?);
            }
            "--lease-ttl" => options.lease_ttl = value()?.parse().context("--lease-ttl")?,
            "--bound" => options.bound = Duration::from_secs(value()?.parse().context("--bound")?),
            "--pacer" => options.pacer = PathBuf::from(value()?),
            "--agents" => options.agents = PathBuf::from(value()?),
            "--namespaces" => options.namespaces = true,
            "--secure" => options.secure = true,
            "--etcd-members" => options.etcd_members = value()?.parse().context("--etcd-members")?,
            "--nodes" => options.nodes = value()?.parse().context("--nodes")?,
            "--expect-failsafe" => options.expect_failsafe = true,
            "--burst" => options.burst = value()?.parse().context("--burst")?,
            other => bail!(
                "unknown argument {other}; use --runs N --seed S | --sequence FAULT[:TARGET],... | --sequence-file F, and [--lease-ttl S] [--bound S] [--pacer PATH] [--agents DIR] [--namespaces] [--nodes N] [--etcd-members 1|3] [--expect-failsafe] [--secure] [--burst N]"
            ),
        }
    }
    Ok(options)
}

fn manifests(cluster: &Cluster) -> String {
    let log = cluster.witness_log();
    let resource = |name: &str, extra: &str| {
        format!(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}, fail_monitor: {}{extra}}}\n  operations: [{{name: monitor, interval: 1s}}]\n",
            log.display(),
            cluster.dir().join(format!("fail-{name}")).display()
        )
    };
    let mut documents: Vec<String> = ["w1", "w2", "w3", "g1", "g2", "vm", "ip-dns", "ip-gw", "named"].iter().map(|name| resource(name, "")).collect();
    documents.push(resource("slow", &format!(", delay: {SLOW_DELAY}")));
    documents.push(resource(MIGRATABLE, "").replace("  operations:", "  meta: {allowMigrate: true}\n  operations:"));
    documents.push("apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: g}\nspec: {members: [g1, g2]}\n".into());
    // The VM on promotable storage (the brief's first cluster).
    documents.push(format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {STORAGE}}}\nspec:\n  agent: ocf:pacer:witness\n  params: {{log: {}}}\n  operations:\n    - {{name: monitor, interval: 1s, role: Promoted}}\n    - {{name: monitor, interval: 2s, role: Unpromoted}}\n  clone: {{promotable: {{promotedMax: {STORAGE_PROMOTED_MAX}}}}}\n",
        log.display()
    ));
    documents.push(format!("apiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {{name: storage-before-vm}}\nspec: {{first: {STORAGE}, firstAction: Promote, then: vm, thenAction: Start}}\n"));
    documents.push(format!("apiVersion: pacer.io/v1alpha1\nkind: Colocation\nmetadata: {{name: vm-with-storage}}\nspec: {{resource: vm, withResource: {STORAGE}, withRole: Promoted, score: INFINITY}}\n"));
    // DNS: two addresses together, the name server with them and after both.
    documents.push(
        "apiVersion: pacer.io/v1alpha1\nkind: Colocation\nmetadata: {name: gw-with-dns}\nspec: {resource: ip-gw, withResource: ip-dns, score: INFINITY}\n"
            .into(),
    );
    documents.push(
        "apiVersion: pacer.io/v1alpha1\nkind: Colocation\nmetadata: {name: named-with-dns}\nspec: {resource: named, withResource: ip-dns, score: INFINITY}\n"
            .into(),
    );
    documents.push(
        "apiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {name: named-after-ips}\nspec:\n  sets:\n    - {resources: [ip-dns, ip-gw], sequential: false}\n    - {resources: [named]}\n".into(),
    );
    documents.join("---\n")
}

fn rules() -> Rules {
    Rules { exclusive: RESOURCES.iter().map(|name| name.to_string()).collect(), promoted_max: [(STORAGE.to_string(), STORAGE_PROMOTED_MAX)].into() }
}

/// Whether every exclusive resource is Started, and the storage runs on every online
/// node, promoted on one.
fn all_running(view: &serde_json::Value) -> bool {
    let entries: Vec<&serde_json::Value> = view["resources"].as_array().into_iter().flatten().collect();
    let started = RESOURCES.iter().all(|name| entries.iter().any(|entry| entry["name"] == *name && entry["role"] == "Started" && entry["failed"] == false));
    let storage: Vec<&&serde_json::Value> =
        entries.iter().filter(|entry| entry["name"].as_str().is_some_and(|name| name.starts_with(&format!("{STORAGE}:")) || name == STORAGE)).collect();
    let promoted = storage.iter().filter(|entry| entry["role"] == "Promoted").count();
    let running = storage.iter().filter(|entry| entry["role"] == "Promoted" || entry["role"] == "Unpromoted").count();
    let online = view["nodes"].as_array().into_iter().flatten().filter(|node| node["state"] == "online").count();
    started && promoted == STORAGE_PROMOTED_MAX && running == online
}

/// Waits until every resource runs again — and, after a node fault, until the node is
/// no longer taken as online and nothing is believed to run on it (its resources have
/// really moved, after its fencing).
async fn resources_back(cluster: &Cluster, lost: Option<&str>, bound: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let view = cluster.status()?;
        let moved = lost.is_none_or(|node| {
            let gone = view["nodes"].as_array().into_iter().flatten().any(|entry| entry["name"] == node && entry["state"] != "online");
            gone && !view["resources"].as_array().into_iter().flatten().any(|entry| entry["node"] == node)
        });
        if all_running(&view) && moved {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// Waits until every node is online, every resource runs and every node runs what
/// its assignment says, for `QUIET`.
async fn settled(cluster: &Cluster, bound: Duration) -> anyhow::Result<bool> {
    cluster.wait_quiet(bound, all_running).await
}

/// The node a resource is reported Started on.
fn node_of(cluster: &Cluster, resource: &str) -> anyhow::Result<Option<String>> {
    let view = cluster.status()?;
    Ok(view["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == resource && entry["role"] == "Started")
        .and_then(|entry| entry["node"].as_str().map(str::to_string)))
}

/// Waits for the witness to testify `resource`'s start beginning on `node` after
/// `since` (ns); `false` after `bound`.
async fn start_begun(cluster: &Cluster, resource: &str, node: &str, since: u128, bound: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < bound {
        let begun = read_witness(&cluster.witness_log())
            .iter()
            .any(|line| line.ns >= since && line.resource == resource && line.node == node && line.operation == "start" && line.phase == "begin");
        if begun {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits until `resource` is Started where `wanted` says and everything runs.
async fn moved(cluster: &Cluster, resource: &str, wanted: impl Fn(Option<&str>) -> bool, bound: Duration) -> anyhow::Result<bool> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let view = cluster.status()?;
        let now = view["resources"].as_array().into_iter().flatten().find(|entry| entry["name"] == resource && entry["role"] == "Started");
        if wanted(now.and_then(|entry| entry["node"].as_str())) && all_running(&view) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// A healthy move of the migratable resource from `source` to `target` since `since`
/// (ns) that was not a live migration — migrate_to on the source, then migrate_from on
/// the target, and no start there — as a problem.
///
/// The status may show the resource on the target once the target has recorded its
/// intent, a moment before the witness testifies the migrate_from beginning: the
/// testimony is read again, for up to 5 s, until the target has begun something.
async fn not_migrated(cluster: &Cluster, source: &str, target: &str, since: u128) -> Option<String> {
    let asked = Instant::now();
    let mut testimony = read_witness(&cluster.witness_log());
    while asked.elapsed() < Duration::from_secs(5)
        && !testimony.iter().any(|line| {
            line.ns >= since
                && line.resource == MIGRATABLE
                && line.node == target
                && line.phase == "begin"
                && matches!(line.operation.as_str(), "migrate_from" | "start")
        })
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        testimony = read_witness(&cluster.witness_log());
    }
    let lines: Vec<_> = testimony.iter().filter(|line| line.ns >= since && line.resource == MIGRATABLE && line.phase == "begin").collect();
    let handed_over = lines.iter().position(|line| line.node == source && line.operation == "migrate_to");
    let taken_over = lines.iter().position(|line| line.node == target && line.operation == "migrate_from");
    let started = lines.iter().any(|line| line.node == target && line.operation == "start");
    let migrated = matches!((handed_over, taken_over), (Some(to), Some(from)) if to < from) && !started;
    let operations: Vec<String> = lines.iter().map(|line| format!("{} on {}", line.operation, line.node)).collect();
    (!migrated).then(|| format!("{MIGRATABLE} moved from {source} to {target} without a live migration: {operations:?}"))
}

/// Draws the run's step from the seed (an etcd member, or a node with its member, is
/// killed only if there are three).
fn draw(rng: &mut rand::rngs::StdRng, nodes: &[String], etcd_members: usize, witness: bool) -> Step {
    let faults: Vec<Fault> = FAULTS.into_iter().filter(|fault| !matches!(fault, Fault::KillEtcdMember | Fault::KillNode) || etcd_members >= 3).collect();
    let fault = faults[rng.random_range(0..faults.len())];
    let node = nodes[rng.random_range(0..nodes.len())].clone();
    let resource = RESOURCES[rng.random_range(0..RESOURCES.len())].to_string();
    let target = match fault {
        Fault::FailMonitor => resource,
        // Half the time the node the migratable resource runs on, so that it leaves by
        // live migration.
        Fault::Standby if rng.random_bool(0.5) => MIGRATABLE.to_string(),
        Fault::KillLeader | Fault::RestartAll | Fault::Burst | Fault::KillEtcd | Fault::FreezeEtcd => String::new(),
        Fault::KillEtcdMember => {
            let targets: &[&str] = if witness { &["leader", "follower", "witness"] } else { &["leader", "follower"] };
            targets[rng.random_range(0..targets.len())].to_string()
        }
        _ => node,
    };
    Step { fault, target }
}

/// What a run found.
#[derive(Default)]
struct Outcome {
    recovered: Option<Duration>,
    problems: Vec<String>,
    /// Witness lines and power-offs before the fault: a fault that must disturb
    /// nothing is judged on what came after, once the cluster has settled.
    witness_before: usize,
    power_offs_before: usize,
    /// Nodes that had reason to self-fence: cut off from etcd, or frozen past their
    /// lease. Any other node's self-fencing is a problem.
    excused: BTreeSet<String>,
    /// Nodes that self-fenced for an etcd down for everyone (not a problem until the
    /// failsafe is expected).
    excused_by_outage: BTreeSet<String>,
    /// The target node's self-fencings before the fault (`KillEtcdCutLink`).
    self_fencings_of_target: usize,
    /// The etcd member a `KillNode` killed, restarted when healing.
    member_killed: Option<usize>,
}

/// Injects one fault, measures recovery, heals. Problems found here (besides the
/// observer's) are disturbances a fault must not cause.
async fn inject(cluster: &mut Cluster, step: &Step, options: &Options) -> anyhow::Result<Outcome> {
    let node = step.target.clone();
    let mut outcome = Outcome {
        witness_before: read_witness(&cluster.witness_log()).len(),
        power_offs_before: power_offs(cluster),
        self_fencings_of_target: cluster.self_fencings().get(&node).copied().unwrap_or(0),
        ..Outcome::default()
    };
    let term = cluster.leader_term().await?;
    let mut fault_at = Instant::now();
    if etcd_down(step.fault) && !options.expect_failsafe {
        outcome.excused_by_outage = cluster.node_names().into_iter().collect();
    }
    let recovered = match step.fault {
        Fault::KillAgent => {
            cluster.kill_agent(&node);
            resources_back(cluster, Some(&node), options.bound).await?
        }
        Fault::FreezeAgent => {
            cluster.signal_agent(&node, libc::SIGSTOP);
            outcome.excused.insert(node.clone());
            resources_back(cluster, Some(&node), options.bound).await?
        }
        Fault::FreezeMidStart => {
            // Where the slow resource runs now; move it to the target (or, if it runs
            // there already, anywhere else first).
            let since = epoch_ns();
            let current = node_of(cluster, "slow")?;
            let target = if current.as_deref() == Some(node.as_str()) {
                cluster.node_names().into_iter().find(|other| *other != node).unwrap_or_default()
            } else {
                node.clone()
            };
            cluster.apply(&format!(
                "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: slow-moves}}\nspec: {{resource: slow, node: {target}, score: INFINITY}}\n"
            ))?;
            if !start_begun(cluster, "slow", &target, since, options.bound).await {
                outcome.problems.push(format!("slow never began to start on {target}"));
                return Ok(outcome);
            }
            cluster.signal_agent(&target, libc::SIGSTOP);
            outcome.excused.insert(target.clone());
            fault_at = Instant::now();
            let back = resources_back(cluster, Some(&target), options.bound).await?;
            cluster.signal_agent(&target, libc::SIGCONT);
            back
        }
        Fault::CutLink => {
            cluster.cut_link(&node, true)?;
            outcome.excused.insert(node.clone());
            resources_back(cluster, Some(&node), options.bound).await?
        }
        Fault::KillLeader => {
            cluster.kill_leader()?;
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
        Fault::FailMonitor => {
            // Fail counts outlive recovery: a new failure is one more than before.
            let failures_of = |view: &serde_json::Value| -> u64 {
                view["failures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|failure| failure["resource"] == node.as_str())
                    .flat_map(|failure| {
                        failure["counts"].as_object().into_iter().flatten().filter_map(|(_, count)| count.as_str().and_then(|count| count.parse::<u64>().ok()))
                    })
                    .sum()
            };
            let before = failures_of(&cluster.status()?);
            let fail = cluster.dir().join(format!("fail-{node}"));
            std::fs::write(&fail, "").context("inject a monitor failure")?;
            // Keep failing until the failure is seen, then let the recovery work.
            let started = Instant::now();
            let mut seen = false;
            while started.elapsed() < options.bound && !seen {
                seen = failures_of(&cluster.status()?) > before;
                if !seen {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if !seen {
                outcome.problems.push(format!("the failing monitor of {node} was never reported within {:?}", options.bound));
            }
            std::fs::remove_file(&fail).context("heal the monitor")?;
            resources_back(cluster, None, options.bound).await?
        }
        Fault::FailFencing => {
            // A node lost with nothing possibly running is not fenced (its statuses
            // say so, pending operations included); the storage runs everywhere, so
            // there is always something.
            let runs_something = cluster.status()?["resources"].as_array().into_iter().flatten().any(|entry| entry["node"] == node.as_str());
            cluster.set_fencing_fails(true)?;
            cluster.kill_agent(&node);
            // The lease lapses, fencing is tried and fails; the node's resources must
            // stay where they are (the observer checks) for as long as that lasts.
            tokio::time::sleep(cluster.lease_ttl() + Duration::from_secs(4)).await;
            let view = cluster.status()?;
            let failed = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == node.as_str() && entry["state"] == "failed");
            if runs_something && !failed {
                outcome.problems.push(format!("fencing of {node} was not reported failed while every device failed"));
            }
            cluster.set_fencing_fails(false)?;
            fault_at = Instant::now();
            // Back once the node's fencing succeeded and its resources run elsewhere.
            let mut fenced = false;
            while fault_at.elapsed() < options.bound && !fenced {
                let view = cluster.status()?;
                fenced = view["fencing"].as_array().into_iter().flatten().any(|entry| entry["node"] == node.as_str() && entry["state"] == "succeeded");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            fenced && resources_back(cluster, Some(&node), options.bound).await?
        }
        Fault::RestartAll => {
            cluster.restart_all()?;
            // Back when a new leader holds the election, every new agent has probed
            // and reported (the old heartbeats outlive the agents: their leases were
            // resumed) and every node runs what it is assigned.
            let mut back = false;
            while fault_at.elapsed() < options.bound {
                let now = cluster.leader_term().await?;
                let caught_up = cluster.agents_caught_up().await.unwrap_or(false);
                if now.is_some() && now != term && caught_up && all_running(&cluster.status()?) && cluster.converged().await.unwrap_or(false) {
                    back = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            back
        }
        Fault::KillEtcdMember => {
            let leader = cluster.etcd_leader().await;
            let member = match (node.as_str(), leader) {
                ("leader", Some(leader)) => leader,
                (_, Some(leader)) => leader % cluster.etcd_members() + 1,
                (_, None) => 1,
            };
            let member = if node == "witness" { cluster.etcd_witness().unwrap_or(member) } else { member };
            cluster.kill_etcd_member(member);
            fault_at = Instant::now();
            // Back when a linearizable read succeeds again (a leader serves).
            let mut serving = None;
            while fault_at.elapsed() < options.bound && serving.is_none() {
                if cluster.leader_term().await.is_ok() {
                    serving = Some(fault_at.elapsed());
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // Hold the fault long enough for any lease to have lapsed, then heal.
            tokio::time::sleep((cluster.lease_ttl() * 2).saturating_sub(fault_at.elapsed())).await;
            cluster.restart_etcd_member(member)?;
            if let Some(serving) = serving {
                outcome.recovered = Some(serving);
            }
            false
        }
        Fault::KillEtcd | Fault::FreezeEtcd | Fault::KillEtcdCutLink => {
            if step.fault == Fault::FreezeEtcd {
                cluster.freeze_etcd(true);
            } else {
                cluster.kill_etcd();
            }
            if step.fault == Fault::KillEtcdCutLink {
                cluster.cut_link(&node, true)?;
                outcome.excused.insert(node.clone());
            }
            // Longer than any lease, then back.
            tokio::time::sleep(cluster.lease_ttl() * 2).await;
            if step.fault == Fault::FreezeEtcd {
                cluster.freeze_etcd(false);
            } else {
                tokio::task::block_in_place(|| cluster.restart_etcd())?;
            }
            fault_at = Instant::now();
            if step.fault == Fault::KillEtcdCutLink {
                // The cut node is fenced and its resources run elsewhere; it must have
                // stopped them itself first.
                let back = resources_back(cluster, Some(&node), options.bound).await?;
                if cluster.self_fencings().get(&node).copied().unwrap_or(0) <= outcome.self_fencings_of_target {
                    outcome.problems.push(format!("{node}, cut off from etcd, never stopped its resources itself ({})", pacer_e2e::SELF_FENCING));
                }
                back
            } else {
                // Statuses written before the outage still say Started: back once the
                // cluster has settled (converged for `QUIET`, not counted).
                let back = settled(cluster, options.bound).await?;
                outcome.recovered = back.then(|| fault_at.elapsed().saturating_sub(pacer_e2e::QUIET));
                false
            }
        }
        Fault::KillNode => {
            let Some(member) = cluster.etcd_member_of(&node) else {
                outcome.problems.push(format!("{step}: {node} has no etcd member of its own"));
                return Ok(outcome);
            };
            cluster.kill_agent(&node);
            cluster.kill_etcd_member(member);
            outcome.member_killed = Some(member);
            resources_back(cluster, Some(&node), options.bound).await?
        }
        Fault::Burst => {
            let burst = apply_burst(cluster, options.burst)?;
            outcome.recovered = finish_burst(cluster, burst, options.bound).await?;
            false
        }
        Fault::Migrate => {
            let since = epoch_ns();
            let source = node_of(cluster, MIGRATABLE)?;
            let target = if source.as_deref() == Some(node.as_str()) {
                cluster.node_names().into_iter().find(|other| *other != node).unwrap_or_default()
            } else {
                node.clone()
            };
            if let Err(error) = cluster.verb(&["move", MIGRATABLE, &target]) {
                outcome.problems.push(format!("{step}: {error:#}"));
                return Ok(outcome);
            }
            let back = moved(cluster, MIGRATABLE, |now| now == Some(target.as_str()), options.bound).await?;
            if back && let Some(source) = source {
                outcome.problems.extend(not_migrated(cluster, &source, &target, since).await);
            }
            back
        }
        Fault::Standby => {
            let since = epoch_ns();
            let source = node_of(cluster, MIGRATABLE)?;
            let standby = if node == MIGRATABLE { source.clone().unwrap_or_default() } else { node.clone() };
            if let Err(error) = cluster.verb(&["node", "standby", &standby]) {
                outcome.problems.push(format!("{step}: {error:#}"));
                return Ok(outcome);
            }
            // Back once nothing runs on the node and everything runs elsewhere.
            let mut back = false;
            while fault_at.elapsed() < options.bound && !back {
                let view = cluster.status()?;
                back = all_running(&view) && !view["resources"].as_array().into_iter().flatten().any(|entry| entry["node"] == standby.as_str());
                if !back {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if back
                && source.as_deref() == Some(standby.as_str())
                && let Some(target) = node_of(cluster, MIGRATABLE)?
            {
                outcome.problems.extend(not_migrated(cluster, &standby, &target, since).await);
            }
            // A refused unstandby is this run's problem, as a refused standby is.
            if let Err(error) = cluster.verb(&["node", "unstandby", &standby]) {
                outcome.problems.push(format!("{step}: {error:#}"));
            }
            back
        }
    };
    if recovered {
        outcome.recovered = Some(fault_at.elapsed());
    }
    // Heal: wake or reconnect, and restart what the fault or the fencing killed.
    match step.fault {
        Fault::FreezeAgent => cluster.signal_agent(&node, libc::SIGCONT),
        Fault::CutLink | Fault::KillEtcdCutLink => cluster.cut_link(&node, false)?,
        _ => {}
    }
    if let Some(member) = outcome.member_killed {
        tokio::task::block_in_place(|| cluster.restart_etcd_member(member))?;
    }
    for name in cluster.node_names() {
        if !cluster.agent_running(&name) {
            cluster.start_agent(&name)?;
        }
    }
    Ok(outcome)
}

/// Plain Dummy resources applied at once, not yet deleted.
struct Burst {
    names: Vec<String>,
    applied: Instant,
}

/// Applies `count` Dummy resources named `burstB-1..` (B counts the bursts; monitor
/// every 30 s) in one apply: every node probes each, and starts its share, behind its
/// action limit.
fn apply_burst(cluster: &Cluster, count: usize) -> anyhow::Result<Burst> {
    static BURSTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let burst = BURSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let names: Vec<String> = (1..=count).map(|index| format!("burst{burst}-{index}")).collect();
    let documents: Vec<String> = names
        .iter()
        .map(|name| {
            format!(
                "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: {name}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  operations: [{{name: monitor, interval: 30s}}]\n"
            )
        })
        .collect();
    let applied = Instant::now();
    cluster.apply(&documents.join("---\n"))?;
    Ok(Burst { names, applied })
}

/// Waits until every resource of the burst is Started, the workload runs and every
/// node runs what it is assigned, then deletes the burst. How long that took from the
/// apply; `None` if not within `bound` (deleted all the same).
async fn finish_burst(cluster: &Cluster, burst: Burst, bound: Duration) -> anyhow::Result<Option<Duration>> {
    let names: BTreeSet<&str> = burst.names.iter().map(String::as_str).collect();
    let waiting = Instant::now();
    let mut took = None;
    let mut started = 0;
    while waiting.elapsed() < bound {
        let view = cluster.status()?;
        started = view["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["name"].as_str().is_some_and(|name| names.contains(name)) && entry["role"] == "Started" && entry["failed"] == false)
            .count();
        if started == names.len() && all_running(&view) && cluster.converged().await.unwrap_or(false) {
            took = Some(burst.applied.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if took.is_none() {
        println!("  the burst: {started} of {} Started within {bound:?}", names.len());
    }
    cluster.delete("Resource", &burst.names)?;
    Ok(took)
}

fn power_offs(cluster: &Cluster) -> usize {
    cluster.power_offs().values().map(Vec::len).sum()
}

/// What was stopped, started (promoted, demoted, migrated) or fenced since the fault:
/// each operation the witnesses began but monitors and notifications, and the number
/// of power-offs.
fn disturbed(cluster: &Cluster, outcome: &Outcome) -> (Vec<String>, usize) {
    let operations = read_witness(&cluster.witness_log())
        .get(outcome.witness_before..)
        .unwrap_or_default()
        .iter()
        .filter(|line| line.phase == "begin" && line.operation != "monitor" && line.operation != "notify")
        .map(|line| format!("{} {} on {}", line.operation, line.resource, line.node))
        .collect();
    (operations, power_offs(cluster).saturating_sub(outcome.power_offs_before))
}

/// For a fault that must touch no resource (a restart of the control plane, an etcd
/// member lost): what was stopped, started or fenced since it, judged once settled.
fn disturbances(cluster: &Cluster, step: &Step, outcome: &Outcome) -> Option<String> {
    let (disturbed, fenced) = disturbed(cluster, outcome);
    (!disturbed.is_empty() || fenced > 0).then(|| format!("{step} disturbed resources: {disturbed:?}, {fenced} power-offs"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    anyhow::ensure!(options.pacer.exists(), "{} is missing: build it first (cargo build --bin pacer)", options.pacer.display());
    let config = ClusterConfig {
        namespaces: options.namespaces,
        etcd_members: options.etcd_members,
        secure: options.secure,
        ..ClusterConfig::new(options.nodes, options.lease_ttl, options.pacer.clone(), options.agents.clone())
    };
    let mut cluster = Cluster::start(config).await?;
    cluster.apply(&manifests(&cluster))?;
    anyhow::ensure!(settled(&cluster, options.bound).await?, "the cluster did not settle at start");
    let nodes = cluster.node_names();
    let steps: Vec<Step> = match &options.sequence {
        Some(sequence) => {
            for step in sequence {
                let known = step.target.is_empty()
                    || nodes.contains(&step.target)
                    || RESOURCES.contains(&step.target.as_str())
                    || ["leader", "follower", "witness"].contains(&step.target.as_str());
                anyhow::ensure!(
                    !matches!(step.fault, Fault::KillEtcdMember | Fault::KillNode) || cluster.etcd_members() >= 3,
                    "{step}: needs --etcd-members 3"
                );
                anyhow::ensure!(step.fault != Fault::KillNode || cluster.etcd_member_of(&step.target).is_some(), "{step}: {} has no etcd member", step.target);
                anyhow::ensure!(step.target != "witness" || cluster.etcd_witness().is_some(), "{step}: no witness (more etcd members than nodes)");
                anyhow::ensure!(known, "{step}: no node or resource {}", step.target);
            }
            sequence.clone()
        }
        None => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
            let witness = cluster.etcd_witness().is_some();
            (0..options.runs).map(|_| draw(&mut rng, &nodes, cluster.etcd_members(), witness)).collect()
        }
    };
    let rules = rules();
    let mut recoveries: BTreeMap<Fault, Vec<Duration>> = BTreeMap::new();
    let mut violations: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut unrecovered: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut self_fenced: BTreeMap<Fault, usize> = BTreeMap::new();
    // Stops, starts and power-offs an etcd outage alone caused (every node could
    // reach every other).
    let mut outage_caused: BTreeMap<Fault, usize> = BTreeMap::new();
    // Live migrations the observer judged (each a migrate_from), by the fault whose run
    // saw them (the move itself, or the settling after it).
    let mut migrated: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut known_problems = 0;
    let mut violating: Vec<String> = Vec::new();
    // A burst still starting while the next fault strikes, with the self-fencings
    // counted before it.
    let mut under_way: Option<(Burst, BTreeMap<String, usize>)> = None;
    for (run, step) in steps.iter().enumerate() {
        println!("run {run}: {step}");
        let fencings_before = under_way.as_ref().map_or_else(|| cluster.self_fencings(), |(_, before)| before.clone());
        if step.fault == Fault::Burst && steps.get(run + 1).is_some_and(|next| next.fault != Fault::Burst) {
            under_way = Some((apply_burst(&cluster, options.burst)?, fencings_before));
            println!("  {} resources applied; the next fault strikes while they start", options.burst);
            continue;
        }
        let mut outcome = inject(&mut cluster, step, &options).await?;
        match outcome.recovered {
            Some(took) => recoveries.entry(step.fault).or_default().push(took),
            None => *unrecovered.entry(step.fault).or_default() += 1,
        }
        let mut burst_lost = false;
        if let Some((burst, _)) = under_way.take() {
            match finish_burst(&cluster, burst, options.bound).await? {
                Some(took) => recoveries.entry(Fault::Burst).or_default().push(took),
                None => {
                    *unrecovered.entry(Fault::Burst).or_default() += 1;
                    burst_lost = true;
                }
            }
        }
        let settled = settled(&cluster, options.bound).await?;
        if !settled {
            *unrecovered.entry(step.fault).or_default() += 1;
            println!("  the cluster did not settle after healing within {:?}", options.bound);
            for reason in cluster.unconverged(10).await.unwrap_or_default() {
                println!("    not converged: {reason}");
            }
        }
        if matches!(step.fault, Fault::RestartAll | Fault::KillEtcdMember) {
            outcome.problems.extend(disturbances(&cluster, step, &outcome));
        }
        if outage(step.fault) {
            let (operations, fenced) = disturbed(&cluster, &outcome);
            let count = operations.len() + fenced;
            *outage_caused.entry(step.fault).or_default() += count;
            if count > 0 {
                println!("  OUTAGE-CAUSED: {} operation(s) {operations:?}, {fenced} power-off(s)", operations.len());
            }
            if count > 0 && options.expect_failsafe {
                outcome.problems.push(format!("{step}: the etcd outage alone stopped or started resources: {operations:?}, {fenced} power-offs"));
            }
        }
        let testimony = read_witness(&cluster.witness_log());
        let power_offs = cluster.power_offs();
        let mut problems = outcome.problems;
        let audited = audit(&testimony, &power_offs, &rules);
        let seen = migrations(testimony.get(outcome.witness_before..).unwrap_or_default(), &rules);
        *migrated.entry(step.fault).or_default() += seen;
        if seen > 0 {
            println!("  {seen} live migration(s) observed");
        }
        problems.extend(audited.iter().skip(known_problems).cloned());
        known_problems = audited.len();
        // Once settled, the status must say what the witnesses say runs (a cluster
        // still moving is counted as unrecovered instead).
        if settled {
            problems.extend(disagreements(&cluster.status()?, &Replay::of(&testimony, &power_offs), &rules));
        }
        // A node that could reach etcd had no reason to self-fence (during a combined
        // burst, the window spans the burst too).
        let fencings = cluster.self_fencings();
        let excused: BTreeSet<String> = outcome.excused.union(&outcome.excused_by_outage).cloned().collect();
        let unexpected = unexpected_self_fencings(&fencings_before, &fencings, &excused);
        for (node, count) in &fencings {
            let before = fencings_before.get(node).copied().unwrap_or(0);
            if *count > before && outcome.excused.contains(node) {
                println!("  {node} self-fenced {} time(s), as it had reason to", count - before);
            } else if *count > before && outcome.excused_by_outage.contains(node) {
                println!("  {node} self-fenced {} time(s) while etcd was down for everyone (the failsafe would ride it out)", count - before);
            } else if *count > before {
                println!("  SELF-FENCING of {node}, with the lines of its log before it:");
                for line in cluster.self_fencing_excerpt(node, before, 8) {
                    println!("    {line}");
                }
            }
        }
        if !problems.is_empty() || !unexpected.is_empty() || !settled || outcome.recovered.is_none() || burst_lost {
            for problem in &unexpected {
                println!("  UNEXPECTED SELF-FENCING: {problem}");
            }
            *self_fenced.entry(step.fault).or_default() += unexpected.len();
            for problem in &problems {
                println!("  VIOLATION: {problem}");
            }
            *violations.entry(step.fault).or_default() += problems.len();
            violating.push(steps[..=run].iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
            let saved = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/chaos/{}-run{run}", std::process::id()));
            cluster.save_logs(&saved)?;
            if let Ok(view) = cluster.status() {
                std::fs::write(saved.join("status.json"), serde_json::to_string_pretty(&view)?).context("save the status")?;
            }
            println!("  logs saved in {}", saved.display());
        }
    }
    let source = if options.sequence.is_some() { "a given sequence".to_string() } else { format!("seed {}", options.seed) };
    let network = if cluster.namespaces() { "nodes in network namespaces" } else { "nodes on the loopback" };
    let network = if cluster.secure() { format!("{network}, etcd over mutual TLS with per-identity rights") } else { network.to_string() };
    println!("\n{source}, {} runs, lease TTL {} s, {network} (logs kept in {} while running)", steps.len(), options.lease_ttl, cluster.dir().display());
    let topology = format!(
        "{} nodes, {} etcd member(s){}",
        options.nodes,
        cluster.etcd_members(),
        if cluster.etcd_witness().is_some() { " (the last a witness)" } else { "" }
    );
    println!("{topology}");
    println!(
        "{:<15} {:>5} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>10} {:>14}",
        "fault", "runs", "violations", "self-fenced", "unrecovered", "p50", "p99", "max", "migrations", "outage-caused"
    );
    let mut failed = false;
    for fault in FAULTS {
        let mut samples = recoveries.get(&fault).cloned().unwrap_or_default();
        samples.sort();
        let runs = steps.iter().filter(|step| step.fault == fault).count();
        if runs == 0 {
            continue;
        }
        let seconds = |duration: Duration| format!("{:.2}s", duration.as_secs_f64());
        let bad = violations.get(&fault).copied().unwrap_or(0);
        let lost = unrecovered.get(&fault).copied().unwrap_or(0);
        let fenced = self_fenced.get(&fault).copied().unwrap_or(0);
        failed |= bad > 0 || lost > 0 || fenced > 0;
        let caused = if outage(fault) { outage_caused.get(&fault).copied().unwrap_or(0).to_string() } else { "-".to_string() };
        println!(
            "{:<15} {:>5} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9} {:>10} {:>14}",
            format!("{fault:?}"),
            runs,
            bad,
            fenced,
            lost,
            seconds(percentile(&samples, 0.5)),
            seconds(percentile(&samples, 0.99)),
            seconds(samples.last().copied().unwrap_or_default()),
            migrated.get(&fault).copied().unwrap_or(0),
            caused
        );
    }
    println!("migrations observed: {} (live migrations of {MIGRATABLE}, each judged by the observer's migration rule)", migrated.values().sum::<usize>());
    if steps.iter().any(|step| outage(step.fault)) {
        let total: usize = outage_caused.values().sum();
        let verdict = if options.expect_failsafe { "violations (--expect-failsafe)" } else { "reported, not violations (--expect-failsafe makes them so)" };
        println!("outage-caused stops, starts and power-offs (etcd down for everyone, every node reaching every other): {total}, goal 0; {verdict}");
    }
    for sequence in &violating {
        println!("to replay: --sequence \"{sequence}\"");
    }
    if failed {
        bail!("the campaign found violations, unexpected self-fencings or unrecovered faults");
    }
    Ok(())
}
