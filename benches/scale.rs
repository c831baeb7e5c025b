//! Scale benchmark (`make bench-scale`, issue 18): for each size `HxR` in
//! `PACER_BENCH_SCALE` (default `100x1000,300x1000`), a fresh `pacer up --nodes 0
//! --hollow-nodes H --lease-ttl 10` (H hollow nodes in one process, operations taking
//! 50 ms) and R Dummy resources (monitor every 60 s) in one apply, with a default
//! resource stickiness of 1 (what `pcs` sets up), measured as a user would see them,
//! through `pacer` and etcd's own `/metrics`:
//! - from the apply until `pacer status` shows all R Started (polled at most a third
//!   of the time: a poll lists the whole cluster, and back to back they took most of
//!   a core from the cluster measured);
//! - once the cluster has settled (under one etcd write a second: the first results of
//!   the new monitors, queued behind the starts, are written for a while), one
//!   resource's change (a Location sending it to another node) until `pacer wait`
//!   sees it Started there: p50 and p99 over 20 (`PACER_BENCH_SCALE_MOVES`), and
//!   where each move's time went (the apply returning, the scheduler's decision, the
//!   stop and the start done, as the cluster's events date them);
//! - a node powered off (its hollow agent killed, no stop, as `fence_pacer_local`
//!   does) until every resource it ran is Started elsewhere (lease TTL + fencing +
//!   the rest): the last of their starts elsewhere, as its event dates it (the agent's
//!   clock, the bench's machine) — `pacer status` polls only notice it, up to a
//!   listing later (0.7 s at 300 × 10,000), and the time they saw it is printed too;
//! - etcd writes (puts, deletes, transactions) per second while converging and idle
//!   (30 s after everything settled: an idle cluster writes nothing but lease
//!   keep-alives, which etcd does not count as writes), watch events sent per second
//!   while converging, and the database size (on disk and in use);
//! - the scheduler's CPU time and peak RSS, the hollow process's RSS per node, the
//!   time `pacer status` takes.
//!
//! Then, on the first size only, a churn of `PACER_BENCH_SCALE_CHURN` seconds (default
//! 360: longer than the embedded etcd's 5-minute compaction retention) in which
//! resources are stopped and started again by `targetRole`, and the database size in
//! use is printed every 30 s: compaction keeps it flat (the file on disk stays at its
//! high-water mark until defragmented, as the README says).
//!
//! `PACER_BENCH_SCALE_KEEP=1` keeps each cluster's state dir (its logs) and prints
//! where; `PACER_BENCH_SCALE_LIMIT` is how many seconds the apply may take to
//! converge (default 1800).
//!
//! Figures only, of a cluster that may be failing: nothing here asserts a timing
//! (`target/bench-scale.txt`).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const TTL: u64 = 10;

/// Waits until etcd counts under one write a second over 5 s; how long that took, or
/// `None` once `limit` has passed (checked before each 5 s window, so it may overrun
/// by one window and its two metric reads).
fn settle(endpoint: &str, limit: Duration) -> Option<Duration> {
    let begun = Instant::now();
    while begun.elapsed() < limit {
        let before = writes(&etcd_metrics(endpoint));
        std::thread::sleep(Duration::from_secs(5));
        if (writes(&etcd_metrics(endpoint)) - before) / 5.0 < 1.0 {
            return Some(begun.elapsed());
        }
    }
    None
}

/// etcd's counters and gauges the table reads, by metric name (summed over labels).
fn etcd_metrics(endpoint: &str) -> BTreeMap<String, f64> {
    let mut values = BTreeMap::new();
    let Some(address) = endpoint.split(',').next().and_then(|url| url.strip_prefix("http://")) else { return values };
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return values };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).is_err() {
        return values;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    for line in body.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let name = name.split('{').next().unwrap_or(name);
        if let Ok(value) = value.parse::<f64>() {
            *values.entry(name.to_string()).or_default() += value;
        }
    }
    values
}

fn metric(values: &BTreeMap<String, f64>, name: &str) -> f64 {
    values.get(name).copied().unwrap_or(f64::NAN)
}

/// Writes (puts, deletes, transactions) etcd counted so far.
fn writes(values: &BTreeMap<String, f64>) -> f64 {
    metric(values, "etcd_mvcc_put_total") + metric(values, "etcd_mvcc_delete_total") + metric(values, "etcd_mvcc_txn_total")
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1_048_576.0)
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process, from `/proc`.
fn process_usage(pid: i32) -> (f64, u64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 (utime, stime), counted from the state (field 3).
            Some((rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(f64::NAN);
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (cpu, peak)
}

fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Where each Started resource runs, and how many nodes are online.
struct View {
    placed: BTreeMap<String, String>,
    online: usize,
}

fn view(endpoint: &str) -> Option<View> {
    let value = support::status(endpoint, Duration::from_secs(60));
    if value.is_null() {
        return None;
    }
    let placed = value["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["role"] == "Started")
        .filter_map(|entry| Some((entry["name"].as_str()?.to_string(), entry["node"].as_str()?.to_string())))
        .collect();
    let online = value["nodes"].as_array().into_iter().flatten().filter(|node| node["state"] == "online").count();
    Some(View { placed, online })
}

/// Polls `pacer status` until `done` holds, for at most `limit`; the time it took.
/// Each poll lists the whole cluster (0.7 s of a core at 300 × 10,000): back to back,
/// the bench took most of a core from the cluster it measures (whose hollow nodes run
/// niced), so it waits twice as long as the last poll took (at least 0.2 s) — at most
/// a third of a core.
fn wait_for(endpoint: &str, limit: Duration, mut done: impl FnMut(&View) -> bool) -> Option<Duration> {
    let begun = Instant::now();
    while begun.elapsed() < limit {
        let polled = Instant::now();
        if view(endpoint).is_some_and(|view| done(&view)) {
            return Some(begun.elapsed());
        }
        std::thread::sleep((polled.elapsed() * 2).max(Duration::from_millis(200)));
    }
    None
}

/// From the power-off (`off_usec`) to the last of `ran`'s first successful starts on
/// another node than `lost`, as the starts' events date them; `None` if one has no
/// such event (the bench then keeps what its polls saw).
fn last_start_elsewhere(endpoint: &str, ran: &[String], lost: &str, off_usec: i64) -> Option<Duration> {
    let listed = support::pacer(endpoint, &["events", "--since", "10m", "-o", "json"], None, Duration::from_secs(60));
    let events: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).ok()?;
    let mut last = 0;
    for resource in ran {
        let first = events
            .iter()
            .filter(|event| {
                event["kind"] == "Resource"
                    && event["task"] == "start"
                    && event["rc"] == 0
                    && event["resource"] == resource.as_str()
                    && event["node"].as_str().is_some_and(|node| node != lost)
            })
            .filter_map(|event| event["timeUsec"].as_i64())
            .filter(|time| *time >= off_usec)
            .min()?;
        last = last.max(first);
    }
    Some(Duration::from_micros(u64::try_from(last - off_usec).ok()?))
}

fn epoch_usec() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| i64::try_from(now.as_micros()).unwrap_or(i64::MAX))
}

/// One move the bench saw done: the resource, its nodes, when the apply began (epoch
/// µs), and the seconds until the apply and `pacer wait` returned.
struct Moved {
    resource: String,
    from: String,
    target: String,
    started_usec: i64,
    applied: f64,
    took: f64,
}

/// Where each move's time went, from the cluster's events (one listing after all the
/// moves, so none is slowed by it): the apply returning, the scheduler's decision that
/// names the resource (a decision's event names its first five actions only), its
/// stop on the old node and its start on the new one done (the
/// agents' event times), `pacer wait` returning; then the median of each stage.
fn print_move_stages(endpoint: &str, size: &str, moved: &[Moved]) {
    let Some(first) = moved.first() else { return };
    let since = format!("{}s", (epoch_usec() - first.started_usec) / 1_000_000 + 60);
    let listed = support::pacer(endpoint, &["events", "--since", &since, "-o", "json"], None, Duration::from_secs(120));
    let Ok(events) = serde_json::from_slice::<Vec<serde_json::Value>>(&listed.stdout) else {
        eprintln!("{size}: the moves' events could not be listed: {}", listed.failure());
        return;
    };
    let mut stages: [Vec<f64>; 5] = Default::default();
    for one in moved {
        let after = |event: &&serde_json::Value| event["timeUsec"].as_i64().is_some_and(|time| time >= one.started_usec);
        let at = |found: Option<&serde_json::Value>| found.and_then(|event| event["timeUsec"].as_i64()).map(|time| (time - one.started_usec) as f64 / 1e6);
        let named = |event: &&serde_json::Value| {
            event["desc"].as_str().is_some_and(|text| text.split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_').any(|word| word == one.resource))
        };
        let decided = at(events.iter().filter(after).find(|event| event["kind"] == "Decision" && named(event)));
        let done = |task: &str, node: &str| {
            at(events.iter().filter(after).find(|event| {
                event["kind"] == "Resource" && event["resource"] == one.resource.as_str() && event["task"] == task && event["rc"] == 0 && event["node"] == node
            }))
        };
        let (stopped, begun) = (done("stop", &one.from), done("start", &one.target));
        let shown = |stage: Option<f64>| stage.map_or("?".to_string(), |seconds| format!("{seconds:.2}"));
        eprintln!(
            "{size}: move {} {} -> {}: apply returned {:.2}, decided {}, stopped {}, started {}, wait returned {:.2} s",
            one.resource,
            one.from,
            one.target,
            one.applied,
            shown(decided),
            shown(stopped),
            shown(begun),
            one.took
        );
        for (index, stage) in [Some(one.applied), decided, stopped, begun, Some(one.took)].into_iter().enumerate() {
            stages[index].extend(stage);
        }
    }
    let medians: Vec<String> = stages
        .into_iter()
        .map(|mut samples| {
            samples.sort_by(f64::total_cmp);
            if samples.is_empty() { "?".to_string() } else { format!("{:.2}", support::percentile(&samples, 0.5)) }
        })
        .collect();
    eprintln!(
        "{size}: moves, medians from the apply's start: apply returned {}, decided {}, stopped {}, started {}, wait returned {} s",
        medians[0], medians[1], medians[2], medians[3], medians[4]
    );
}

fn seconds(took: Option<Duration>) -> String {
    took.map_or_else(|| "timeout".to_string(), |took| format!("{:.2}", took.as_secs_f64()))
}

fn location(name: &str, resource: &str, node: &str) -> String {
    format!("apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: {name}}}\nspec: {{resource: {resource}, node: {node}, score: INFINITY}}\n")
}

/// The cluster policy the bench applies with its resources.
const STICKINESS: &str = "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {defaultResourceStickiness: 1}\n";

fn dummy(index: usize, role: &str) -> String {
    format!(
        "---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: r{index}}}\nspec:\n  agent: ocf:heartbeat:Dummy\n  operations: [{{name: monitor, interval: 60s}}]\n  meta: {{targetRole: {role}}}\n"
    )
}

struct Row {
    cells: Vec<String>,
}

const HEADER: [&str; 14] = [
    "nodes",
    "resources",
    "all Started s",
    "move p50 s",
    "move p99 s",
    "node lost s",
    "writes/s conv",
    "writes/s idle",
    "watch ev/s",
    "db MiB (use)",
    "sched CPU s",
    "sched RSS MiB",
    "RSS/node MiB",
    "status s",
];

fn line(cells: &[String]) -> String {
    cells.iter().map(|cell| format!("{cell:>13}")).collect::<Vec<_>>().join(" ")
}

/// How long the apply may take to converge: `PACER_BENCH_SCALE_LIMIT` seconds
/// (default 1800).
fn converge_limit() -> Duration {
    Duration::from_secs(std::env::var("PACER_BENCH_SCALE_LIMIT").ok().and_then(|limit| limit.parse().ok()).unwrap_or(1800))
}

/// One size: a fresh cluster and its row (and the churn, when asked).
fn run(nodes: usize, resources: usize, moves: usize, churn: Option<Duration>) -> Row {
    let mut cells = vec![nodes.to_string(), resources.to_string()];
    let failed = |mut cells: Vec<String>, why: &str| {
        eprintln!("{nodes}x{resources}: {why}");
        cells.resize(HEADER.len(), "-".to_string());
        Row { cells }
    };
    let hollow = nodes.to_string();
    let ttl = TTL.to_string();
    let args = ["--nodes", "0", "--hollow-nodes", hollow.as_str(), "--hollow-latency", "50ms", "--lease-ttl", ttl.as_str()];
    let mut cluster = match support::up_with(&args, &["scheduler", "hollow"], Duration::from_secs(300)) {
        Ok(cluster) => cluster,
        Err(error) => return failed(cells, &error),
    };
    if std::env::var_os("PACER_BENCH_SCALE_KEEP").is_some() {
        cluster.dir.disable_cleanup(true);
        eprintln!("{nodes}x{resources}: state dir (logs) kept in {}", cluster.state_dir.display());
    }
    let endpoint = cluster.endpoint.clone();
    if wait_for(&endpoint, Duration::from_secs(600), |view| view.online >= nodes).is_none() {
        return failed(cells, "the hollow nodes did not all come online in 600 s");
    }
    // Stickiness 1, as `pcs` configures a new cluster: without any, a node lost (or
    // back) shifts the balanced placement of most resources, and the bench would time
    // a rebalance of thousands of moves instead of the lost node's recovery.
    let mut manifests = STICKINESS.to_string();
    manifests.extend((0..resources).map(|index| dummy(index, "Started")));
    let before = etcd_metrics(&endpoint);
    let begun = Instant::now();
    let applied = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&manifests), Duration::from_secs(600));
    if !applied.success() {
        return failed(cells, &format!("apply failed: {}", applied.failure()));
    }
    let limit = converge_limit();
    let converged = wait_for(&endpoint, limit, |view| view.placed.len() >= resources).map(|_| begun.elapsed());
    let converging = begun.elapsed().as_secs_f64();
    let after = etcd_metrics(&endpoint);
    cells.push(seconds(converged));
    if converged.is_none() {
        return failed(cells, &format!("not converged in {} s", limit.as_secs()));
    }

    // One resource's change, `moves` times, in a settled cluster: the first result of
    // each new monitor is written (as Pacemaker records it), and monitors queue behind
    // the starts, so for a while after everything Started (25 s at 10,000 resources)
    // the agents write hundreds of statuses a second. A Location sends r<k> to another
    // node; the time from the apply's start to `pacer wait` returning.
    match settle(&endpoint, Duration::from_secs(180)) {
        Some(waited) => eprintln!("{nodes}x{resources}: settled (under 1 write/s) {:.0} s after all Started", waited.as_secs_f64()),
        None => eprintln!("{nodes}x{resources}: still writing 180 s after all Started; moving anyway"),
    }
    let mut took = Vec::new();
    let mut moved = Vec::new();
    for round in 0..moves {
        let Some(now) = view(&endpoint) else { continue };
        let resource = format!("r{}", round * resources / moves.max(1));
        let Some(from) = now.placed.get(&resource).cloned() else { continue };
        let Some(target) = (1..=nodes).map(|index| format!("h{}", (index + round * 7) % nodes + 1)).find(|node| *node != from) else { continue };
        let manifest = location(&format!("move-{round}"), &resource, &target);
        let started = Instant::now();
        let started_usec = epoch_usec();
        if !support::pacer(&endpoint, &["apply", "-f", "-"], Some(&manifest), Duration::from_secs(60)).success() {
            continue;
        }
        let applied = started.elapsed().as_secs_f64();
        // As a user sees it: `pacer wait` (a watch) until it runs on the target.
        if support::pacer(&endpoint, &["wait", &resource, "--for", "started", "--node", &target, "--timeout", "120s"], None, Duration::from_secs(130)).success()
        {
            let seconds = started.elapsed().as_secs_f64();
            took.push(seconds);
            moved.push(Moved { resource, from, target, started_usec, applied, took: seconds });
        }
    }
    print_move_stages(&endpoint, &format!("{nodes}x{resources}"), &moved);
    took.sort_by(f64::total_cmp);
    cells.push(format!("{:.2}", support::percentile(&took, 0.5)));
    cells.push(format!("{:.2}", support::percentile(&took, 0.99)));
    if took.len() < moves {
        eprintln!("{nodes}x{resources}: {} of {moves} moves seen done", took.len());
    }

    // A node lost: the busiest hollow node powered off.
    let lost = view(&endpoint).and_then(|now| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for node in now.placed.values() {
            *counts.entry(node.as_str()).or_default() += 1;
        }
        let (node, _) = counts.into_iter().max_by_key(|(_, count)| *count)?;
        let ran: Vec<String> = now.placed.iter().filter(|(_, on)| on.as_str() == node).map(|(resource, _)| resource.clone()).collect();
        Some((node.to_string(), ran))
    });
    let recovered = lost.and_then(|(node, ran)| {
        let off = cluster.state_dir.join("nodes").join(&node).join("powered-off");
        let started = Instant::now();
        let off_usec = epoch_usec();
        // A line of its own: the fence agent appends its own line and waits for the
        // hollow process to copy it to `halted`.
        std::fs::write(&off, "bench\n").ok()?;
        eprintln!("{nodes}x{resources}: {node} powered off with {} resources", ran.len());
        // Each resource counts once seen Started elsewhere (without stickiness, a node
        // back from its reboot pulled resources back to it).
        let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        wait_for(&endpoint, Duration::from_secs(300), |view| {
            seen.extend(ran.iter().filter(|resource| view.placed.get(*resource).is_some_and(|on| *on != node)).cloned());
            seen.len() == ran.len()
        })?;
        let polled = started.elapsed();
        let took = last_start_elsewhere(&endpoint, &ran, &node, off_usec).unwrap_or(polled);
        // Where the time went: the node's and its fencing's events, from the power-off.
        let events = support::pacer(&endpoint, &["events", "--for", &format!("node/{node}"), "-o", "json"], None, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&events.stdout).to_string();
        let listed: Vec<serde_json::Value> =
            serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap_or_else(|_| text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect());
        for event in listed.iter().filter(|event| event["timeUsec"].as_i64().is_some_and(|time| time >= off_usec)) {
            let at = (event["timeUsec"].as_i64().unwrap_or_default() - off_usec) as f64 / 1e6;
            eprintln!("{nodes}x{resources}:   +{at:.2} s {} {} {}", event["kind"], event["task"], event["desc"]);
        }
        eprintln!("{nodes}x{resources}:   +{:.2} s the last of its resources started elsewhere (its start's event)", took.as_secs_f64());
        eprintln!("{nodes}x{resources}:   +{:.2} s `pacer status` shows them all Started elsewhere", polled.as_secs_f64());
        Some(took)
    });
    cells.push(seconds(recovered));

    // Idle: 30 s after everything settled. The lost node was fenced with a reboot, so
    // `pacer up` starts it again: idle begins once it is back and has probed.
    if wait_for(&endpoint, Duration::from_secs(300), |view| view.online >= nodes).is_none() {
        eprintln!("{nodes}x{resources}: the fenced node did not come back online in 300 s");
    }
    std::thread::sleep(Duration::from_secs(10));
    let idle_from = etcd_metrics(&endpoint);
    std::thread::sleep(Duration::from_secs(30));
    let idle_to = etcd_metrics(&endpoint);
    cells.push(format!("{:.0}", (writes(&after) - writes(&before)) / converging));
    cells.push(format!("{:.1}", (writes(&idle_to) - writes(&idle_from)) / 30.0));
    cells.push(format!("{:.0}", (metric(&after, "etcd_debugging_mvcc_events_total") - metric(&before, "etcd_debugging_mvcc_events_total")) / converging));
    cells.push(format!("{} ({})", mib(metric(&idle_to, "etcd_mvcc_db_total_size_in_bytes")), mib(metric(&idle_to, "etcd_mvcc_db_total_size_in_use_in_bytes"))));
    let (cpu, peak) = cluster.pid("scheduler").map_or((f64::NAN, 0), process_usage);
    cells.push(format!("{cpu:.1}"));
    cells.push(format!("{:.0}", peak as f64 / 1024.0));
    let hollow_rss = cluster.pid("hollow").map_or(0, rss);
    cells.push(format!("{:.1}", hollow_rss as f64 / 1024.0 / nodes as f64));
    let status_begun = Instant::now();
    let status = support::pacer(&endpoint, &["status"], None, Duration::from_secs(120));
    cells.push(if status.success() { format!("{:.2}", status_begun.elapsed().as_secs_f64()) } else { "failed".to_string() });

    if let Some(churn) = churn {
        churn_run(&endpoint, resources, churn);
    }
    Row { cells }
}

/// Stops and starts resources by `targetRole` for `length`, printing the database size
/// every 30 s.
fn churn_run(endpoint: &str, resources: usize, length: Duration) {
    let begun = Instant::now();
    let mut next_print = Duration::ZERO;
    let mut round = 0usize;
    let batch = 20.min(resources);
    let mut samples = Vec::new();
    while begun.elapsed() < length {
        let role = if round % 2 == 0 { "Stopped" } else { "Started" };
        let first = (round / 2 * batch) % resources;
        let manifests: String = (first..first + batch).map(|index| dummy(index % resources, role)).collect();
        let _ = support::pacer(endpoint, &["apply", "-f", "-"], Some(&manifests), Duration::from_secs(60));
        round += 1;
        if begun.elapsed() >= next_print {
            let values = etcd_metrics(endpoint);
            let sample = format!(
                "churn {:>4} s: {} applies, db {} MiB on disk, {} MiB in use, {:.0} writes so far",
                begun.elapsed().as_secs(),
                round,
                mib(metric(&values, "etcd_mvcc_db_total_size_in_bytes")),
                mib(metric(&values, "etcd_mvcc_db_total_size_in_use_in_bytes")),
                writes(&values)
            );
            println!("{sample}");
            samples.push(sample);
            next_print += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = std::fs::write("target/bench-scale-churn.txt", format!("{}\n", samples.join("\n")));
}

fn main() {
    let sizes: Vec<(usize, usize)> = std::env::var("PACER_BENCH_SCALE")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|item| item.trim().split_once('x').and_then(|(nodes, resources)| Some((nodes.parse().ok()?, resources.parse().ok()?))))
                .collect()
        })
        .filter(|sizes: &Vec<(usize, usize)>| !sizes.is_empty())
        .unwrap_or_else(|| vec![(100, 1000), (300, 1000)]);
    let moves = std::env::var("PACER_BENCH_SCALE_MOVES").ok().and_then(|text| text.parse().ok()).unwrap_or(20);
    let churn = Duration::from_secs(std::env::var("PACER_BENCH_SCALE_CHURN").ok().and_then(|text| text.parse().ok()).unwrap_or(360));
    let title = format!(
        "pacer up --nodes 0 --hollow-nodes H --hollow-latency 50ms --lease-ttl {TTL}; R Dummy resources in one apply, stickiness 1; moves over {moves}; db after idle"
    );
    let header = line(&HEADER.map(str::to_string));
    println!("{title}\n{header}");
    let mut lines = vec![title, header];
    let _ = std::fs::create_dir_all("target");
    for (index, (nodes, resources)) in sizes.into_iter().enumerate() {
        let row = run(nodes, resources, moves, (index == 0 && !churn.is_zero()).then_some(churn));
        let text = line(&row.cells);
        println!("{text}");
        lines.push(text);
        // Written after every size, so a long series survives an interruption.
        let _ = std::fs::write("target/bench-scale.txt", format!("{}\n", lines.join("\n")));
    }
}
