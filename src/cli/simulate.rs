//! `pacer simulate` and `pacer import-cib`: the scheduler run offline on manifests plus
//! observed state, or directly on a Pacemaker CIB, with what-if injections.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::api::records::{ExecStatus, NodeState, OperationRecord};
use crate::api::yaml::{parse_documents, to_yaml_string};
use crate::api::{Kind, Object};
use crate::cib;
use crate::scheduler::plan::Plan;
use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};
use crate::scheduler::{Snapshot, schedule, strip_instance};

use super::objects::{load_files, print_diagnostics};

#[derive(clap::Args, Debug)]
pub(super) struct SimulateArgs {
    /// A Pacemaker CIB (configuration and status sections).
    #[arg(long, conflicts_with_all = ["files", "observed"])]
    cib: Option<PathBuf>,
    /// Manifests (files, directories, - for standard input).
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Observed state as `pacer import-cib -o DIR` writes it (observed.yaml).
    #[arg(long)]
    observed: Option<PathBuf>,
    /// The decision time, seconds since the epoch (default: the CIB's execution-date).
    #[arg(long)]
    now: Option<i64>,
    /// What if this node were lost (repeatable).
    #[arg(long = "node-fail")]
    node_fail: Vec<String>,
    /// What if an operation returned RC: RESOURCE:OPERATION:NODE=RC (repeatable).
    #[arg(long = "op-fail")]
    op_fail: Vec<String>,
    /// Print the conformance JSON (shared/conformance/FORMAT.md).
    #[arg(long)]
    json: bool,
    /// Print every node's score for every resource.
    #[arg(long)]
    scores: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct ImportCibArgs {
    file: PathBuf,
    /// Write cluster.yaml and observed.yaml here instead of printing the manifests.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

/// `pacer simulate`: runs the scheduler offline and prints the result. Returns the
/// exit code.
pub(super) fn simulate(args: &SimulateArgs) -> anyhow::Result<u8> {
    let mut snapshot = match &args.cib {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            let imported = cib::import(&text).with_context(|| format!("import {}", path.display()))?;
            for unmapped in &imported.unmapped {
                eprintln!("warning: {}: <{} id={:?}>: {}", path.display(), unmapped.element, unmapped.id, unmapped.reason);
            }
            Snapshot { objects: imported.objects, observed: imported.observed, now: imported.now.unwrap_or(0) }
        }
        None => {
            if args.files.is_empty() {
                bail!("give --cib FILE.xml, or -f MANIFESTS with --observed FILE");
            }
            let objects = objects_from_files(&args.files)?;
            let observed = match &args.observed {
                Some(path) => read_observed(path)?,
                // No observed state: a fresh cluster, every configured node up and
                // running nothing yet.
                None => Observed {
                    quorum: true,
                    nodes: objects
                        .iter()
                        .filter(|object| object.kind() == Kind::Node)
                        .map(|object| {
                            let node = ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() };
                            (object.name().to_string(), node)
                        })
                        .collect(),
                    ..Observed::default()
                },
            };
            Snapshot { objects, observed, now: 0 }
        }
    };
    if let Some(now) = args.now {
        snapshot.now = now;
    }
    for node in &args.node_fail {
        inject_node_failure(&mut snapshot, node)?;
    }
    for spec in &args.op_fail {
        inject_op_failure(&mut snapshot, spec)?;
    }
    let plan = schedule(&snapshot);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&oracle_json(&plan)).context("encode the plan")?);
    } else {
        print!("{}", summary(&plan, args.scores));
    }
    Ok(0)
}

/// The objects of the manifests; invalid ones are reported like `apply` does.
fn objects_from_files(files: &[String]) -> anyhow::Result<Vec<Object>> {
    let loaded = load_files(files);
    if !loaded.diagnostics.is_empty() {
        print_diagnostics(&loaded.diagnostics);
        bail!("the manifests are invalid");
    }
    Ok(loaded.manifests.into_iter().map(|manifest| manifest.object).collect())
}

/// Reads an observed-state file (YAML or JSON, as `import-cib` writes it).
fn read_observed(path: &Path) -> anyhow::Result<Observed> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let documents = parse_documents(&text).map_err(|error| anyhow::anyhow!("read {}:{}: {}", path.display(), error.position, error.message))?;
    let Some(document) = documents.into_iter().next() else {
        return Ok(Observed::default());
    };
    serde_path_to_error::deserialize(document.value).map_err(|error| anyhow::anyhow!("read {}: {}: {}", path.display(), error.path(), error.inner()))
}

/// `--node-fail NODE`: the node is lost without a clean shutdown.
fn inject_node_failure(snapshot: &mut Snapshot, node: &str) -> anyhow::Result<()> {
    let known =
        snapshot.observed.nodes.contains_key(node) || snapshot.objects.iter().any(|object| object.kind() == Kind::Node && object.name().as_str() == node);
    if !known {
        bail!("--node-fail {node}: no such node");
    }
    let entry = snapshot.observed.nodes.entry(node.to_string()).or_insert_with(|| ObservedNode {
        liveness: NodeLiveness::Unclean,
        shutdown: false,
        attributes: Default::default(),
    });
    entry.liveness = NodeLiveness::Unclean;
    Ok(())
}

/// `--op-fail RSC:OP:NODE=RC`: the operation's next result on that node is `RC`.
fn inject_op_failure(snapshot: &mut Snapshot, spec: &str) -> anyhow::Result<()> {
    let usage = || anyhow::anyhow!("--op-fail {spec:?}: expected RESOURCE:OPERATION:NODE=RC, for example web:monitor:node1=7");
    let (target, rc) = spec.rsplit_once('=').ok_or_else(usage)?;
    let rc: i32 = rc.trim().parse().map_err(|_| usage())?;
    let mut parts = target.splitn(3, ':');
    let (Some(resource), Some(operation), Some(node)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage());
    };
    let interval_ms = snapshot
        .objects
        .iter()
        .find(|object| object.name().as_str() == resource)
        .and_then(|object| match &object.spec {
            crate::api::Spec::Resource(spec) => spec.operations.iter().find(|op| op.name.as_str() == operation).map(|op| op.interval.as_millis()),
            _ => None,
        })
        .unwrap_or(0);
    let call_id = snapshot.observed.history.iter().flat_map(|history| history.operations.iter().map(|op| op.call_id)).max().unwrap_or(0).saturating_add(1);
    let record = OperationRecord {
        operation: operation.to_string(),
        interval_ms,
        call_id,
        rc,
        expected_rc: 0,
        status: ExecStatus::Done,
        last_rc_change: Some(snapshot.now),
        migrate_source: None,
        migrate_target: None,
        digest: None,
    };
    match snapshot.observed.history.iter_mut().find(|history| strip_instance(&history.resource) == resource && history.node == node) {
        Some(history) => history.operations.push(record),
        None => {
            snapshot.observed.history.push(ResourceHistory { resource: resource.to_string(), node: node.to_string(), agent: None, operations: vec![record] })
        }
    }
    Ok(())
}

/// The name a resource instance is reported under: anonymous clone instances by their
/// primitive's name, everything else by id (shared/conformance/FORMAT.md).
fn report_name(resource: &crate::scheduler::plan::ResourcePlan) -> &str {
    if resource.clone.is_some() && !resource.unique { &resource.name } else { &resource.id }
}

/// The plan in the conformance format ("pcmk-oracle-1").
pub(crate) fn oracle_json(plan: &Plan) -> Value {
    let mut resources: Vec<Value> = Vec::new();
    let mut flags: Vec<Value> = Vec::new();
    for resource in &plan.resources {
        for placement in &resource.next {
            resources.push(json!([report_name(resource), placement.role.as_str(), placement.node]));
        }
        if resource.failed {
            for placement in &resource.current {
                flags.push(json!([report_name(resource), placement.node, "failed"]));
            }
        }
    }
    let by_id: std::collections::HashMap<&str, &crate::scheduler::plan::ResourcePlan> =
        plan.resources.iter().map(|resource| (resource.id.as_str(), resource)).collect();
    let nodes: serde_json::Map<String, Value> = plan.nodes.iter().map(|node| (node.name.clone(), Value::String(node.state.as_str().into()))).collect();
    json!({
        "format": "pcmk-oracle-1",
        "resources": resources,
        "resource_flags": flags,
        "nodes": nodes,
        "fenced": plan.fencing.iter().map(|fencing| fencing.node.clone()).collect::<Vec<_>>(),
        "fence_actions": plan.fencing.iter().map(|fencing| json!([fencing.node, fencing.action])).collect::<Vec<_>>(),
        "actions": plan
            .actions
            .iter()
            .map(|action| {
                let name = by_id.get(action.resource.as_str()).map_or(action.resource.as_str(), |resource| report_name(resource));
                json!([action.verb, name, action.detail])
            })
            .collect::<Vec<_>>(),
    })
}

/// A crm_simulate-style summary: node states, fencing, actions, placements.
fn summary(plan: &Plan, scores: bool) -> String {
    let mut out = String::new();
    let group = |state: NodeState| -> Vec<&str> { plan.nodes.iter().filter(|node| node.state == state).map(|node| node.name.as_str()).collect() };
    let _ = writeln!(out, "Node states:");
    for state in [NodeState::Online, NodeState::Standby, NodeState::Maintenance, NodeState::Pending, NodeState::Offline, NodeState::Unclean] {
        let names = group(state);
        if !names.is_empty() {
            let _ = writeln!(out, "  * {}: [ {} ]", state.as_str(), names.join(" "));
        }
    }
    if scores {
        let _ = writeln!(out, "\nAllocation scores:");
        for resource in &plan.resources {
            for (node, score) in plan.scores_of(resource) {
                let _ = writeln!(out, "  {} on {node}: {score}", resource.id);
            }
        }
    }
    let _ = writeln!(out, "\nTransition summary:");
    for fencing in &plan.fencing {
        let _ = writeln!(out, "  * Fence ({}) {}: {}", fencing.action, fencing.node, fencing.reason);
    }
    for action in &plan.actions {
        let _ = writeln!(out, "  * {:<8} {:<24} ( {} )", action.verb, action.resource, action.detail);
    }
    if plan.fencing.is_empty() && plan.actions.is_empty() {
        let _ = writeln!(out, "  (nothing to do)");
    }
    let _ = writeln!(out, "\nRevised cluster status:");
    for resource in &plan.resources {
        let location = if resource.next.is_empty() {
            format!("Stopped{}", resource.reason.as_ref().map(|reason| format!(" ({reason})")).unwrap_or_default())
        } else {
            resource.next.iter().map(|placement| format!("{} {}", placement.role.as_str(), placement.node)).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "  * {:<24} {location}", resource.id);
    }
    out
}

/// `pacer import-cib FILE [-o DIR]`: writes the manifests and observed state, lists
/// what could not be mapped on stderr. Returns the exit code.
pub(super) fn import_cib(args: &ImportCibArgs) -> anyhow::Result<u8> {
    let ImportCibArgs { file: path, out } = args;
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let imported = cib::import(&text).with_context(|| format!("import {}", path.display()))?;
    for unmapped in &imported.unmapped {
        eprintln!("unmapped: <{} id={:?}>: {}", unmapped.element, unmapped.id, unmapped.reason);
    }
    let manifests: Vec<String> = imported.objects.iter().map(|object| to_yaml_string(&object.to_value())).collect();
    let manifests = manifests.join("---\n");
    let observed_value = serde_json::to_value(&imported.observed).context("encode observed state")?;
    let mut observed = to_yaml_string(&observed_value);
    if let Some(now) = imported.now {
        observed = format!("# decision time (cib execution-date): {now}\n{observed}");
    }
    match out {
        Some(directory) => {
            std::fs::create_dir_all(directory).with_context(|| format!("create {}", directory.display()))?;
            let manifests_path = directory.join("cluster.yaml");
            let observed_path = directory.join("observed.yaml");
            std::fs::write(&manifests_path, manifests).with_context(|| format!("write {}", manifests_path.display()))?;
            std::fs::write(&observed_path, observed).with_context(|| format!("write {}", observed_path.display()))?;
            eprintln!(
                "wrote {} objects to {} and observed state to {} ({} unmapped)",
                imported.objects.len(),
                manifests_path.display(),
                observed_path.display(),
                imported.unmapped.len()
            );
        }
        None => print!("{manifests}"),
    }
    Ok(0)
}
