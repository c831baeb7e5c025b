//! Decision-history benchmark (`make bench-history`, part of `make bench`): what the
//! leader stores per decision to make it replayable (`state::history`: the spec once
//! per distinct spec, each node's observed state once per distinct state, zstd), and
//! what encoding it costs the leader's turn, against `schedule` on the same snapshot.
//! No etcd: the bytes are those `daemon::archive` would write (blob pieces and the
//! input record, keys included).
//!
//! Sizes (`PACER_BENCH_HISTORY_SIZES`, default `100x1000,1000x10000`, nodes ×
//! resources), each with two status models (`PACER_BENCH_HISTORY_PROBES`: `running`,
//! `probed` or both, the default): `running` — each resource's history on the node it
//! runs on only (probe, start, monitor), as the scheduler benchmark has it; `probed` —
//! also a probe answering "not running" on every other node, as the node agents
//! report it (100,000 and 10,000,000 histories).
//!
//! Decisions measured, one after the other on the same encoder (the leader's):
//! - first: everything is new (a leader's first decision on an empty archive);
//! - monitor failure: one resource's monitor fails on its node (that node's
//!   history and fail count change);
//! - move: a Location is added (the spec changes) and the resource's histories on two
//!   nodes change as it moves;
//! - unchanged spec, time only: nothing but `now` changes.
//!
//! Prints a table (also written to `target/bench-history.txt`), and the estimate for
//! `historyLimit` (1,000) decisions: the first plus 999 of each kind. Figures only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use pacer::api::Object;
use pacer::api::records::{DecisionInput, ExecStatus, OperationRecord};
use pacer::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};
use pacer::scheduler::{Snapshot, schedule};
use pacer::state::history::InputEncoder;
use serde_json::json;

const PREFIX: &str = "/pacer";
const NOW: i64 = 1_700_000_000;

fn object(value: serde_json::Value) -> Object {
    Object::from_value(value.clone()).unwrap_or_else(|error| panic!("{value} does not decode: {error}"))
}

fn node_name(index: usize) -> String {
    format!("node{index:04}")
}

fn operation(name: &str, interval_ms: u64, call_id: i64, rc: i32, expected_rc: i32) -> OperationRecord {
    OperationRecord {
        operation: name.to_string(),
        interval_ms,
        call_id,
        rc,
        expected_rc,
        status: ExecStatus::Done,
        last_rc_change: Some(NOW - 3600),
        migrate_source: None,
        migrate_target: None,
        digest: None,
        restart_digest: None,
    }
}

/// A cluster of `nodes` × `resources` Dummy resources with a monitor, one Location in
/// ten, running spread over the nodes.
fn generate(nodes: usize, resources: usize, probed: bool) -> Snapshot {
    let mut objects = vec![object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "ClusterPolicy", "metadata": {"name": "cluster", "creationSequence": 0},
        "spec": {"stonithEnabled": false, "defaultResourceStickiness": 100}}))];
    for node in 0..nodes {
        objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Node", "metadata": {"name": node_name(node), "creationSequence": 1 + node},
            "spec": {"attributes": {"rack": format!("r{}", node % 10)}}})));
    }
    for rsc in 0..resources {
        let name = format!("rsc{rsc:05}");
        objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Resource",
            "metadata": {"name": name, "creationSequence": 10_000 + rsc, "generation": 1, "resourceVersion": (100 + rsc).to_string(),
                "uid": format!("00000000-0000-4000-8000-{rsc:012}"), "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"agent": "ocf:heartbeat:Dummy", "params": {"state": format!("/run/dummy-{rsc}.state")},
                "operations": [{"name": "monitor", "interval": "10s", "timeout": "20s"}, {"name": "start", "timeout": "20s"}, {"name": "stop", "timeout": "20s"}]}})));
        if rsc % 10 == 0 {
            objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Location",
                "metadata": {"name": format!("{name}-prefers"), "creationSequence": 100_000 + rsc},
                "spec": {"resource": name, "node": node_name(rsc % nodes), "score": 50}})));
        }
    }
    let mut observed = Observed { quorum: true, ..Observed::default() };
    for node in 0..nodes {
        let attributes = [("#health-disk".to_string(), "green".to_string())].into();
        observed.nodes.insert(node_name(node), ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes });
    }
    for node in 0..nodes {
        let mut call_id = 0;
        for rsc in 0..resources {
            let runs_here = rsc % nodes == node;
            if !runs_here && !probed {
                continue;
            }
            call_id += 1;
            let mut operations = vec![operation("monitor", 0, call_id, 7, 7)];
            if runs_here {
                operations.push(operation("start", 0, call_id + 1, 0, 0));
                operations.push(operation("monitor", 10_000, call_id + 2, 0, 0));
                call_id += 2;
            }
            observed.history.push(ResourceHistory {
                resource: format!("rsc{rsc:05}"),
                node: node_name(node),
                agent: Some("ocf:heartbeat:Dummy".to_string()),
                operations,
            });
        }
    }
    Snapshot { objects, observed, now: NOW }
}

/// What a decision costs: bytes the archive would write, blobs, encode time.
struct Cost {
    bytes: usize,
    blobs: usize,
    encode_ms: f64,
}

/// Encodes `snapshot` as the leader's next decision and counts what is new.
fn decide(encoder: &mut InputEncoder, stored: &mut BTreeSet<String>, revision: i64, snapshot: &Snapshot) -> Cost {
    let started = Instant::now();
    let input: DecisionInput = encoder.encode(snapshot);
    let encode_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut bytes = 0;
    let mut blobs = 0;
    for blob in input.blobs() {
        if !stored.insert(blob.0.clone()) {
            continue;
        }
        let compressed = encoder.blob(blob).map_or(0, <[u8]>::len);
        blobs += 1;
        // Each piece's key: `<prefix>.archive/blobs/<digest>/<n>`.
        bytes += compressed + blob.1 as usize * (PREFIX.len() + ".archive/blobs/".len() + 32 + 5);
    }
    let record = serde_json::to_vec(&input).map_or(0, |value| value.len());
    bytes += record + PREFIX.len() + ".archive/inputs/".len() + 20;
    let _ = revision;
    Cost { bytes, blobs, encode_ms }
}

fn kib(bytes: usize) -> String {
    if bytes >= 10 * 1024 * 1024 { format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0) } else { format!("{:.1} KiB", bytes as f64 / 1024.0) }
}

fn main() {
    let sizes: Vec<(usize, usize)> = std::env::var("PACER_BENCH_HISTORY_SIZES")
        .unwrap_or_else(|_| "100x1000,1000x10000".to_string())
        .split(',')
        .filter_map(|size| size.split_once('x').and_then(|(nodes, resources)| Some((nodes.trim().parse().ok()?, resources.trim().parse().ok()?))))
        .collect();
    let models: Vec<bool> = match std::env::var("PACER_BENCH_HISTORY_PROBES").as_deref() {
        Ok("running") => vec![false],
        Ok("probed") => vec![true],
        _ => vec![false, true],
    };
    let mut report = String::new();
    let _ = writeln!(report, "history bytes per decision (what daemon::archive writes; zstd level 3; blob = spec, or one node's observed state)\n");
    let _ = writeln!(
        report,
        "{:<22} {:<9} {:<19} {:>11} {:>6} {:>11}   {:>11}",
        "nodes x resources", "statuses", "decision", "bytes", "blobs", "encode ms", "schedule ms"
    );
    for &(nodes, resources) in &sizes {
        for &probed in &models {
            let model = if probed { "probed" } else { "running" };
            let mut snapshot = generate(nodes, resources, probed);
            let started = Instant::now();
            let plan = schedule(&snapshot);
            let schedule_ms = started.elapsed().as_secs_f64() * 1000.0;
            assert!(plan.resources.iter().filter(|resource| !resource.next.is_empty()).count() > resources / 2, "the generated cluster runs");
            let mut encoder = InputEncoder::default();
            let mut stored = BTreeSet::new();
            let mut rows: Vec<(&str, Cost)> = Vec::new();
            rows.push(("first", decide(&mut encoder, &mut stored, 1, &snapshot)));
            // A monitor failure of rsc00001 on its node.
            let victim = format!("rsc{:05}", 1);
            let victim_node = node_name(1 % nodes);
            if let Some(history) = snapshot.observed.history.iter_mut().find(|history| history.resource == victim && history.node == victim_node) {
                history.operations.push(operation("monitor", 10_000, 1_000_000, 7, 0));
            }
            if let Some(node) = snapshot.observed.nodes.get_mut(&victim_node) {
                node.attributes.insert(format!("fail-count-{victim}#monitor_10000"), "1".to_string());
                node.attributes.insert(format!("last-failure-{victim}#monitor_10000"), NOW.to_string());
            }
            snapshot.now += 5;
            rows.push(("monitor failure", decide(&mut encoder, &mut stored, 2, &snapshot)));
            // A move: a Location is added, then the histories on two nodes change.
            let mover = format!("rsc{:05}", 2);
            let (from, to) = (node_name(2 % nodes), node_name(3 % nodes));
            snapshot.objects.push(object(json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Location",
                "metadata": {"name": format!("{mover}-moved"), "creationSequence": 900_000}, "spec": {"resource": mover, "node": to, "score": 1000}})));
            for history in snapshot.observed.history.iter_mut().filter(|history| history.resource == mover) {
                if history.node == from {
                    history.operations.push(operation("stop", 0, 1_000_001, 0, 0));
                } else if history.node == to {
                    history.operations.push(operation("start", 0, 1_000_002, 0, 0));
                }
            }
            snapshot.now += 5;
            rows.push(("move (spec + 2 nodes)", decide(&mut encoder, &mut stored, 3, &snapshot)));
            snapshot.now += 900;
            rows.push(("time only", decide(&mut encoder, &mut stored, 4, &snapshot)));
            for (index, (label, cost)) in rows.iter().enumerate() {
                let schedule = if index == 0 { format!("{schedule_ms:>11.1}") } else { String::new() };
                let _ = writeln!(
                    report,
                    "{:<22} {:<9} {:<19} {:>11} {:>6} {:>11.1}   {schedule}",
                    format!("{nodes} x {resources}"),
                    model,
                    label,
                    kib(cost.bytes),
                    cost.blobs,
                    cost.encode_ms
                );
            }
            let first = rows[0].1.bytes;
            let worst = rows.iter().skip(1).map(|(_, cost)| cost.bytes).max().unwrap_or(0);
            let failure = rows[1].1.bytes;
            let _ = writeln!(
                report,
                "{:<22} {:<9} 1,000 decisions: {} if each is a monitor failure, {} if each changes the spec and moves a resource\n",
                "",
                "",
                kib(first + 999 * failure),
                kib(first + 999 * worst)
            );
            print!("{}", report.lines().rev().take(rows.len() + 2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
            println!();
        }
    }
    println!("\n{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-history.txt");
    if let Err(error) = std::fs::write(&target, &report) {
        eprintln!("cannot write {}: {error}", target.display());
    }
}
