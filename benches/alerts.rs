//! Alert benchmark (`make bench-alerts`, part of `make bench`): event → alert latency
//! on `pacer up --nodes 3`, end to end. An `Alert` with an `exec` receiver — a shell
//! script run as Pacemaker runs alert agents — appends, for each event, its sequence,
//! kind, task, the event's time (`CRM_alert_timestamp_epoch` and `_usec`: when the
//! agent that saw it recorded it) and the time the script ran (`date +%s%N`). The
//! latency is the difference: the agent's write, the leader's watch and sequencing,
//! the delivery's read and the process start, as a receiver sees them.
//!
//! Two cases: one resource started at a time (`PACER_BENCH_ROUNDS`, default 20: the
//! quiet cluster), and a burst of `PACER_BENCH_RESOURCES` (default 300) Dummy resources
//! applied at once (every start event delivered; concurrent deliveries).
//!
//! Figures only (`target/bench-alerts.txt`).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::percentile;

/// A delivered event: (kind, task, resource) and its latency in ms.
struct Arrival {
    sequence: u64,
    kind: String,
    task: String,
    resource: String,
    latency_ms: f64,
}

fn arrivals(log: &Path) -> Vec<Arrival> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [sequence, kind, task, resource, epoch, usec, ran] = fields.as_slice() else { return None };
            let event_ns = epoch.parse::<i128>().ok()? * 1_000_000_000 + usec.parse::<i128>().ok()? * 1_000;
            let ran_ns = ran.parse::<i128>().ok()?;
            Some(Arrival {
                sequence: sequence.parse().ok()?,
                kind: (*kind).to_string(),
                task: (*task).to_string(),
                resource: (*resource).to_string(),
                latency_ms: (ran_ns - event_ns) as f64 / 1e6,
            })
        })
        .collect()
}

fn describe(label: &str, mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{label:<52} n={:<4} min {:>7.1} ms  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        samples.first().copied().unwrap_or(f64::NAN),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(f64::NAN)
    )
}

/// The start events of `resources` delivered so far, by resource (the first arrival).
fn starts(log: &Path) -> BTreeMap<String, Arrival> {
    let mut found = BTreeMap::new();
    for arrival in arrivals(log) {
        if arrival.kind == "resource" && arrival.task == "start" {
            found.entry(arrival.resource.clone()).or_insert(arrival);
        }
    }
    found
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let begun = Instant::now();
    while !done() {
        assert!(begun.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let rounds: usize = std::env::var("PACER_BENCH_ROUNDS").ok().and_then(|text| text.parse().ok()).unwrap_or(20).max(1);
    let burst: usize = std::env::var("PACER_BENCH_RESOURCES").ok().and_then(|text| text.parse().ok()).unwrap_or(300).max(1);
    let up = support::up(5, Duration::from_secs(60)).expect("pacer up");
    let endpoint = up.endpoint.clone();
    let receiver = up.dir.path().join("receiver.sh");
    let log = up.dir.path().join("alerts.log");
    std::fs::write(
        &receiver,
        "#!/bin/sh\necho \"$CRM_alert_node_sequence $CRM_alert_kind ${CRM_alert_task:--} ${CRM_alert_rsc:--} $CRM_alert_timestamp_epoch $CRM_alert_timestamp_usec $(date +%s%N)\" >> \"$CRM_alert_recipient\"\n",
    )
    .expect("write the receiver");
    std::process::Command::new("chmod").arg("755").arg(&receiver).status().expect("chmod");
    let alert = format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Alert\nmetadata: {{name: bench}}\nspec:\n  receiver:\n    exec: {{path: {}}}\n  recipients: [{}]\n  timeout: 10s\n",
        receiver.display(),
        log.display()
    );
    let output = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&alert), Duration::from_secs(60));
    assert!(output.success(), "apply the alert: {}", output.failure());
    // Let the leader take the alert in before events are measured.
    std::thread::sleep(Duration::from_secs(3));

    // One at a time.
    for round in 0..rounds {
        let manifest = format!("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: one{round}}}\nspec: {{agent: 'ocf:heartbeat:Dummy'}}\n");
        let output = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&manifest), Duration::from_secs(60));
        assert!(output.success(), "apply: {}", output.failure());
        wait_for("the start alert", Duration::from_secs(60), || starts(&log).contains_key(&format!("one{round}")));
    }
    let single: Vec<f64> = starts(&log).values().filter(|arrival| arrival.resource.starts_with("one")).map(|arrival| arrival.latency_ms).collect();

    // A burst.
    let delivered_before = arrivals(&log).len();
    let manifests = support::dummies(burst, "30s");
    let begun = Instant::now();
    let output = support::pacer(&endpoint, &["apply", "-f", "-"], Some(&manifests), Duration::from_secs(300));
    assert!(output.success(), "apply: {}", output.failure());
    wait_for("every start alert of the burst", Duration::from_secs(600), || starts(&log).keys().filter(|name| name.starts_with('r')).count() >= burst);
    let all_delivered = begun.elapsed();
    let burst_starts: Vec<f64> = starts(&log).values().filter(|arrival| arrival.resource.starts_with('r')).map(|arrival| arrival.latency_ms).collect();
    let everything = arrivals(&log);
    let mut sequences: Vec<u64> = everything.iter().map(|arrival| arrival.sequence).collect();
    let deliveries = sequences.len();
    sequences.sort_unstable();
    sequences.dedup();

    let report = [
        format!(
            "event -> alert latency, exec receiver, pacer up --nodes 3 (lease TTL 5 s); {} cores",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        describe("one resource started at a time: start event", single),
        describe(&format!("{burst} resources applied at once: start events"), burst_starts),
        format!("burst: every start alert delivered {:.1} s after the apply began", all_delivered.as_secs_f64()),
        format!(
            "deliveries: {deliveries} receiver runs for {} distinct events ({} during the burst)",
            sequences.len(),
            deliveries.saturating_sub(delivered_before)
        ),
    ]
    .join("\n");
    println!("{report}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-alerts.txt");
    if let Err(error) = std::fs::write(&target, format!("{report}\n")) {
        eprintln!("cannot write {}: {error}", target.display());
    }
}
