//! Load benchmark (`make bench-load`, part of `make bench`): for each N in
//! `PACER_BENCH_LOAD` (default `300,1000,3000`), a fresh `pacer up --nodes 3
//! --lease-ttl 5`, N Dummy resources (monitor every 60 s) applied in one `pacer apply -f
//! -`, and measured:
//! - from the apply's start until `pacer status` shows all N Started (polled every
//!   0.5 s; given up after `PACER_BENCH_LOAD_LIMIT` seconds, default 300, and then how
//!   many were Started);
//! - self-fencings per node (`lease not renewed` in the agent's log);
//! - peak concurrent processes under each agent (its descendants, sampled every
//!   100 ms from `/proc`);
//! - lease renewal latency: the largest `p99_ms` and `max_ms` of the agent's `lease
//!   renewals` log lines (`n/a` when it logs none).
//!
//! The logs are read 11 s after the end of the wait, so that a renewals line covering
//! it has been written. Figures only, for a cluster that may be failing: nothing here
//! asserts a timing (`target/bench-load.txt`). `PACER_BENCH_LOAD_KEEP=1` keeps each
//! run's state dir (logs) and prints where.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// How long the run goes on after the wait, for a last renewals line (logged every 10 s).
const TAIL: Duration = Duration::from_secs(11);

/// How many of the resources `r0..r{count}` the view shows Started.
fn started(view: &Value, count: usize) -> usize {
    let Some(resources) = view["resources"].as_array() else { return 0 };
    resources
        .iter()
        .filter(|entry| entry["role"] == "Started")
        .filter_map(|entry| entry["name"].as_str()?.strip_prefix('r')?.parse::<usize>().ok())
        .filter(|index| *index < count)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Every process's parent, from `/proc/<pid>/stat`.
fn parents() -> HashMap<i32, Vec<i32>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return children };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').and_then(|end| stat.get(end + 1..)) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|text| text.parse::<i32>().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    children
}

/// How many descendants `root` has (itself not counted).
fn descendants(children: &HashMap<i32, Vec<i32>>, root: i32) -> usize {
    let mut count = 0;
    let mut stack = vec![root];
    let mut seen = BTreeSet::from([root]);
    while let Some(pid) = stack.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if seen.insert(*child) {
                count += 1;
                stack.push(*child);
            }
        }
    }
    count
}

/// Samples the agents' descendants every 100 ms on a thread; `finish` gives the peaks.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<usize>>,
}

impl Sampler {
    fn start(agents: Vec<Option<i32>>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![0; agents.len()];
            while !flag.load(Ordering::Relaxed) {
                let children = parents();
                for (peak, agent) in peaks.iter_mut().zip(&agents) {
                    if let Some(pid) = agent {
                        *peak = (*peak).max(descendants(&children, *pid));
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peaks
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The worst `p99_ms` and `max_ms` of a log's `lease renewals` lines.
fn renewals(lines: &[String]) -> Option<(f64, f64)> {
    let mut worst: Option<(f64, f64)> = None;
    for line in lines.iter().filter(|line| line.contains("lease renewals")) {
        let fields = support::fields(line);
        let value = |key: &str| fields.get(key).and_then(|text| text.parse::<f64>().ok()).unwrap_or(f64::NAN);
        let (p99, max) = (value("p99_ms"), value("max_ms"));
        worst = Some(match worst {
            None => (p99, max),
            Some((worst_p99, worst_max)) => (worst_p99.max(p99), worst_max.max(max)),
        });
    }
    worst
}

fn per_node<T>(values: &[T], show: impl Fn(&T) -> String) -> String {
    values.iter().map(show).collect::<Vec<_>>().join("/")
}

fn row(cells: &[String]) -> String {
    format!("{:>5}  {:<28}  {:>9}  {:>21}  {:>16}  {:>23}  {:>23}", cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6])
}

/// One run: a fresh cluster, `count` resources, the row of figures.
fn run(count: usize, limit: Duration, keep: bool) -> String {
    let cell = |text: &str| text.to_string();
    let failed = |why: String| row(&[count.to_string(), why, cell("-"), cell("-"), cell("-"), cell("-"), cell("-")]);
    // Stopping every resource may take pacer up a while (30 s per agent at most).
    let mut cluster = match support::up(5, Duration::from_secs(150)) {
        Ok(cluster) => cluster,
        Err(error) => return failed(format!("pacer up failed: {error}")),
    };
    let sampler = Sampler::start(NODES.iter().map(|node| cluster.pid(node)).collect());
    let manifests = support::dummies(count, "60s");

    let begun = Instant::now();
    let applied = support::pacer(&cluster.endpoint, &["apply", "-f", "-"], Some(&manifests), limit);
    let apply_took = begun.elapsed();
    let mut converged = None;
    let mut last = 0;
    let mut unanswered = 0;
    if applied.success() {
        while begun.elapsed() < limit {
            let remaining = limit.saturating_sub(begun.elapsed());
            let view = support::status(&cluster.endpoint, remaining.min(Duration::from_secs(30)));
            if view.is_null() {
                // Unanswered or unreadable: the last count stands.
                unanswered += 1;
            } else {
                last = started(&view, count);
            }
            if last >= count {
                converged = Some(begun.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    } else {
        eprintln!("N={count}: apply failed after {:.1} s: {}", apply_took.as_secs_f64(), applied.failure());
    }
    if unanswered > 0 {
        eprintln!("N={count}: {unanswered} polls of pacer status failed or timed out");
    }
    std::thread::sleep(TAIL);
    let peaks = sampler.finish();

    let logs: Vec<Vec<String>> = NODES.iter().map(|node| support::log_lines(&cluster.log(node), 0)).collect();
    let fencings: Vec<usize> = logs.iter().map(|lines| lines.iter().filter(|line| line.contains(pacer::agent::SELF_FENCING_LOG)).count()).collect();
    for (node, lines) in NODES.iter().zip(&logs) {
        if let Some(at) = lines.iter().position(|line| line.contains(pacer::agent::SELF_FENCING_LOG)) {
            eprintln!("N={count}: {node}'s first self-fencing, with the lines before it:");
            for line in &lines[at.saturating_sub(8)..=at] {
                eprintln!("  {line}");
            }
        }
    }
    let renewal: Vec<Option<(f64, f64)>> = logs.iter().map(|lines| renewals(lines)).collect();
    let renewal_cell = |pick: fn(&(f64, f64)) -> f64| {
        if renewal.iter().all(Option::is_none) {
            cell("n/a")
        } else {
            per_node(&renewal, |worst| worst.as_ref().map_or(cell("n/a"), |worst| format!("{:.0}", pick(worst))))
        }
    };
    let outcome = match converged {
        Some(took) => format!("{:.1} s", took.as_secs_f64()),
        None if !applied.success() => format!("apply failed: {} Started", last),
        None => format!("not in {} s: {last} Started", limit.as_secs()),
    };
    let cells = [
        count.to_string(),
        outcome,
        format!("{:.1} s", apply_took.as_secs_f64()),
        per_node(&fencings, usize::to_string),
        per_node(&peaks, usize::to_string),
        renewal_cell(|worst| worst.0),
        renewal_cell(|worst| worst.1),
    ];
    if keep {
        cluster.dir.disable_cleanup(true);
        eprintln!("N={count}: state dir kept in {}", cluster.state_dir.display());
    }
    drop(cluster);
    row(&cells)
}

fn main() {
    let counts: Vec<usize> = std::env::var("PACER_BENCH_LOAD")
        .ok()
        .map(|text| text.split(',').filter_map(|item| item.trim().parse().ok()).collect())
        .filter(|counts: &Vec<usize>| !counts.is_empty())
        .unwrap_or_else(|| vec![300, 1000, 3000]);
    let limit = Duration::from_secs(std::env::var("PACER_BENCH_LOAD_LIMIT").ok().and_then(|text| text.parse().ok()).unwrap_or(300));
    let keep = std::env::var_os("PACER_BENCH_LOAD_KEEP").is_some();
    let title = "pacer up --nodes 3 --lease-ttl 5, N Dummy resources (monitor 60 s) in one apply; per node n1/n2/n3";
    let header = row(&["N", "all Started after", "apply", "self-fencings", "peak processes", "renewal p99 ms", "renewal max ms"].map(str::to_string));
    println!("{title}\n{header}");
    let mut lines = vec![title.to_string(), header];
    let _ = std::fs::create_dir_all("target");
    for count in counts {
        let line = run(count, limit, keep);
        println!("{line}");
        lines.push(line);
        // Written after every run, so the figures of a long series survive an interruption.
        let _ = std::fs::write("target/bench-load.txt", format!("{}\n", lines.join("\n")));
    }
}
