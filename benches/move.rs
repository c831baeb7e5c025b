//! Move benchmark (`make bench-move`, part of `make bench`): `pacer up --nodes 3` with N
//! Dummy resources (`PACER_BENCH_RESOURCES`, default 10) running; then, per round
//! (`PACER_BENCH_ROUNDS`, default 10), `pacer move r0 <another node> --wait` and the
//! time until it returns — the whole command as an operator sees it: process start,
//! the live read, the check through `schedule`, the write, the leader's decision, the
//! agents' stop and start, and the watch that sees r0 Started there. Also how long the
//! cluster then takes to remove the move's constraint (r0 stays: stickiness 100).
//!
//! Figures only (`target/bench-move.txt`).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::percentile;

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] == "Started")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

fn started(view: &Value) -> usize {
    view["resources"].as_array().map_or(0, |resources| resources.iter().filter(|entry| entry["role"] == "Started").count())
}

fn constraints(view: &Value) -> usize {
    view["constraints"].as_array().map_or(0, Vec::len)
}

fn wait(endpoint: &str, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Duration {
    let begun = Instant::now();
    loop {
        if condition(&support::status(endpoint, Duration::from_secs(60))) {
            return begun.elapsed();
        }
        assert!(begun.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe(label: &str, mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{label:<48} n={:<3} min {:>7.0} ms  p50 {:>7.0} ms  p99 {:>7.0} ms  max {:>7.0} ms",
        samples.len(),
        samples.first().copied().unwrap_or(f64::NAN),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    )
}

fn main() {
    let resources: usize = std::env::var("PACER_BENCH_RESOURCES").ok().and_then(|text| text.parse().ok()).unwrap_or(10).max(1);
    let rounds: usize = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(10).max(1);
    let up = support::up(5, Duration::from_secs(60)).expect("pacer up");
    let endpoint = up.endpoint.clone();
    let manifests =
        support::dummies(resources, "10s").replace("  agent: ocf:heartbeat:Dummy\n", "  agent: ocf:heartbeat:Dummy\n  meta: {resourceStickiness: 100}\n");
    let output = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&manifests), Duration::from_secs(300));
    assert!(output.success(), "apply: {}", output.failure());
    let converged = wait(&endpoint, "every resource Started", Duration::from_secs(300), |view| started(view) >= resources);
    std::thread::sleep(Duration::from_secs(2));

    let mut returned = Vec::new();
    let mut removed = Vec::new();
    for round in 0..rounds {
        let current = node_of(&support::status(&endpoint, Duration::from_secs(60)), "r0").expect("r0 runs");
        let target = ["n1", "n2", "n3"][(round + 1) % 3];
        let target = if target == current { ["n1", "n2", "n3"][(round + 2) % 3] } else { target };
        let begun = Instant::now();
        let output = support::pacer(&endpoint, &["move", "r0", target, "--wait=60s"], None, Duration::from_secs(90));
        let took = begun.elapsed();
        assert!(output.success(), "move: {}", output.failure());
        returned.push(took.as_secs_f64() * 1000.0);
        let gone = wait(&endpoint, "the move's constraint removed", Duration::from_secs(60), |view| constraints(view) == 0);
        removed.push((took + gone).as_secs_f64() * 1000.0);
        assert_eq!(node_of(&support::status(&endpoint, Duration::from_secs(60)), "r0").as_deref(), Some(target), "r0 stayed on {target}");
        eprintln!("round {}: r0 {current} -> {target}: move --wait returned after {:.0} ms", round + 1, returned[round]);
        std::thread::sleep(Duration::from_millis(500));
    }
    let lines = [
        format!("pacer up --nodes 3, {resources} Dummy resources (stickiness 100): all Started {:.1} s after apply", converged.as_secs_f64()),
        describe("pacer move r0 NODE --wait: start to return", returned),
        describe("start to the constraint removed (polled)", removed),
    ];
    let report = lines.join("\n");
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-move.txt", format!("{report}\n"));
}
