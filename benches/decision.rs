//! Decision benchmark (`make bench-decision`, part of `make bench`): `pacer up --nodes 3`
//! with N Dummy resources (`PACER_BENCH_RESOURCES`, default 300) running; then, per
//! round (`PACER_BENCH_ROUNDS`, default 20), `pacer apply` of a Location that moves one
//! resource to another node. Measured:
//! - latency: from the spec write (its watch event, seen by this process) to the first
//!   assignment written after it (`plans/<node>`), p50/p99 — the debounce included;
//! - per decision, the scheduler's own report of its turn (its log's `new decision`
//!   lines during the rounds): time taken, etcd reads and writes.
//!
//! Figures only (`target/bench-decision.txt`).

mod support;

use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use serde_json::Value;
use support::{PREFIX, percentile};

fn status(endpoint: &str) -> Value {
    support::status(endpoint, Duration::from_secs(60))
}

fn started(view: &Value) -> usize {
    view["resources"].as_array().map_or(0, |resources| resources.iter().filter(|entry| entry["role"] == "Started").count())
}

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] == "Started")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

fn wait(endpoint: &str, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Duration {
    let begun = Instant::now();
    loop {
        if condition(&status(endpoint)) {
            return begun.elapsed();
        }
        assert!(begun.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn describe(label: &str, unit: &str, mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{label:<44} n={:<3} min {:>8.1}{unit}  p50 {:>8.1}{unit}  p99 {:>8.1}{unit}  max {:>8.1}{unit}",
        samples.len(),
        samples.first().copied().unwrap_or(f64::NAN),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    )
}

/// Milliseconds of a `Debug`-printed duration (`12.3ms`, `1.2s`, `800µs`).
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix("µs") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix("ns") {
        (number, 0.000_001)
    } else {
        (text.strip_suffix('s')?, 1000.0)
    };
    number.parse::<f64>().ok().map(|value| value * factor)
}

fn main() {
    let resources: usize = std::env::var("PACER_BENCH_RESOURCES").ok().and_then(|text| text.parse().ok()).unwrap_or(300).max(2);
    let rounds: usize = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(20).max(1);
    let up = support::up(5, Duration::from_secs(60)).expect("pacer up");
    let endpoint = up.endpoint.clone();
    let output = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&support::dummies(resources, "60s")), Duration::from_secs(300));
    assert!(output.success(), "apply: {}", output.failure());
    let converged = wait(&endpoint, "every resource Started", Duration::from_secs(600), |view| started(view) >= resources);
    std::thread::sleep(Duration::from_secs(3));

    let scheduler_log = up.log("scheduler");
    let log_offset = std::fs::metadata(&scheduler_log).map_or(0, |meta| meta.len() as usize);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let view = status(&endpoint);
        let current = node_of(&view, "r1").expect("r1 runs");
        let target = ["n1", "n2", "n3"].into_iter().find(|node| *node != current).expect("another node");
        let location =
            format!("apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: bench-move}}\nspec: {{resource: r1, node: {target}, score: INFINITY}}\n");
        let latency = runtime.block_on(async {
            let mut client = etcd_client::Client::connect([endpoint.as_str()], None).await.expect("connect");
            let revision = client.status().await.expect("status").header().map(|header| header.revision()).unwrap_or_default();
            let mut stream = client.watch(PREFIX, Some(WatchOptions::new().with_prefix().with_start_revision(revision + 1))).await.expect("watch");
            let endpoint = endpoint.clone();
            let applied = std::thread::spawn(move || support::pacer(&endpoint, &["apply", "-f", "-"], Some(&location), Duration::from_secs(60)));
            let mut spec: Option<(Instant, i64)> = None;
            let deadline = Instant::now() + Duration::from_secs(60);
            let latency = loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let message = tokio::time::timeout(remaining, stream.message()).await.expect("no decision within 60 s").expect("watch").expect("watch ended");
                let seen = Instant::now();
                let mut decided = None;
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    let key = String::from_utf8_lossy(kv.key());
                    if key.starts_with(&format!("{PREFIX}/spec/locations/bench-move")) && spec.is_none() {
                        spec = Some((seen, kv.mod_revision()));
                    } else if key.starts_with(&format!("{PREFIX}/plans/"))
                        && let Some((at, written)) = spec
                        && kv.mod_revision() > written
                    {
                        decided = Some(seen.duration_since(at));
                    }
                }
                if let Some(latency) = decided {
                    break latency;
                }
            };
            let output = applied.join().expect("apply thread");
            assert!(output.success(), "apply: {}", output.failure());
            latency
        });
        latencies.push(latency.as_secs_f64() * 1000.0);
        wait(&endpoint, "r1 moved", Duration::from_secs(60), |view| node_of(view, "r1").as_deref() == Some(target));
        // Let the move's own follow-up decisions pass before the next round.
        std::thread::sleep(Duration::from_millis(1500));
        eprintln!("round {}: {:.1} ms", round + 1, latencies[round]);
    }
    let decisions = support::marked_fields(&scheduler_log, log_offset, "new decision");
    let took: Vec<f64> = decisions.iter().filter_map(|fields| fields.get("took").and_then(|text| millis(text))).collect();
    let reads: Vec<f64> = decisions.iter().filter_map(|fields| fields.get("reads").and_then(|text| text.parse().ok())).collect();
    let writes: Vec<f64> = decisions.iter().filter_map(|fields| fields.get("writes").and_then(|text| text.parse().ok())).collect();
    let lines = [
        format!("pacer up --nodes 3, {resources} Dummy resources: all Started {:.1} s after apply", converged.as_secs_f64()),
        describe("spec change -> assignment written", " ms", latencies),
        describe("scheduler turn (its log's took=)", " ms", took),
        describe("etcd reads per decision", "", reads),
        describe("etcd writes per decision", "", writes),
    ];
    let report = lines.join("\n");
    println!("{report}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-decision.txt", format!("{report}\n"));
}
