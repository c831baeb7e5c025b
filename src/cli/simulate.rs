//! `pacer simulate` and `pacer import-cib`: the scheduler run offline on manifests plus
//! observed state, directly on a Pacemaker CIB, or on the live cluster (`--live`,
//! optionally with proposed manifests), with what-if injections (`ops::simulate`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::api::records::NodeState;
use crate::api::yaml::{parse_documents, to_yaml_string};
use crate::api::{Kind, Object};
use crate::cib;
use crate::cli::cib_text::CibText;
use crate::ops::OpsError;
use crate::ops::simulate::{Injection, Simulation, simulate_live};
use crate::scheduler::plan::{Action, Plan};
use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode};
use crate::scheduler::{Snapshot, schedule_with_phases};

use super::Global;
use super::objects::{load_files, print_diagnostics};

#[derive(clap::Args, Debug)]
pub(super) struct SimulateArgs {
    /// A Pacemaker CIB (configuration and status sections).
    #[arg(long, conflicts_with_all = ["files", "observed", "live"])]
    cib: Option<PathBuf>,
    /// The live cluster (read once at one revision; nothing is written). With `-f`,
    /// the manifests are proposed changes, checked as `apply` checks them.
    #[arg(long, conflicts_with_all = ["observed", "now"])]
    live: bool,
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
    /// Print on stderr how long each phase took (read, XML parse, import or manifest
    /// checks, the scheduler's phases, output) and the peak memory after it.
    #[arg(long, conflicts_with = "live")]
    timings: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct ImportCibArgs {
    file: PathBuf,
    /// Write cluster.yaml and observed.yaml here instead of printing the manifests.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

/// The injections the arguments ask for, in order: lost nodes, then failed operations.
fn injections(args: &SimulateArgs) -> Result<Vec<Injection>, OpsError> {
    let mut injections: Vec<Injection> = args.node_fail.iter().map(|node| Injection::NodeFail(node.clone())).collect();
    for spec in &args.op_fail {
        injections.push(Injection::op_fail(spec)?);
    }
    Ok(injections)
}

/// `pacer simulate`: runs the scheduler offline, or on the live cluster with
/// `--live`, and prints the result. Returns the exit code.
pub(super) async fn simulate(global: &Global, args: &SimulateArgs) -> anyhow::Result<u8> {
    if args.live {
        return simulate_on_live(global, args).await;
    }
    simulate_offline(args)
}

impl SimulateArgs {
    /// Whether the command reads the cluster (`--live`), which needs the async runtime.
    pub(super) fn is_live(&self) -> bool {
        self.live
    }
}

/// `pacer simulate` on files (a CIB, or manifests and observed state): no runtime,
/// no cluster. The process ends after it, so what it built is not freed one
/// allocation at a time (tens of thousands for a big CIB): the exit returns it all.
pub(super) fn simulate_offline(args: &SimulateArgs) -> anyhow::Result<u8> {
    let mut timings = Timings::new(args.timings);
    let mut snapshot = match &args.cib {
        Some(path) => {
            let read = CibText::read(path).with_context(|| format!("read {}", path.display()))?;
            let text = read.as_str().with_context(|| format!("read {}", path.display()))?;
            timings.mark("read");
            let imported = cib::import_with_phases(text, &mut |phase| timings.mark(phase)).with_context(|| format!("import {}", path.display()))?;
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
            timings.mark("load and check manifests");
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
    for injection in injections(args)? {
        injection.apply(&mut snapshot)?;
    }
    timings.mark("observed state");
    let plan = schedule_with_phases(&snapshot, &mut |phase| timings.mark(phase));
    if args.json {
        // Straight to standard output, buffered: the JSON of a big plan is megabytes.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &oracle_json(&plan)).context("encode the plan")?;
        writeln!(out).and_then(|()| out.flush()).context("write the plan")?;
    } else {
        print!("{}", summary(&plan, args.scores));
    }
    timings.mark("output");
    std::mem::forget(plan);
    std::mem::forget(snapshot);
    timings.print();
    Ok(0)
}

/// `--timings`: each phase's wall time and the peak resident memory once it ended,
/// printed on stderr at the end (nothing is measured when not asked).
struct Timings {
    enabled: bool,
    started: Instant,
    last: Instant,
    lines: Vec<String>,
}

impl Timings {
    fn new(enabled: bool) -> Timings {
        let now = Instant::now();
        Timings { enabled, started: now, last: now, lines: Vec::new() }
    }

    /// `phase` ended now.
    fn mark(&mut self, phase: &str) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let peak = peak_memory_kib().map_or("?".to_string(), |kib| format!("{:.0}", kib as f64 / 1024.0));
        self.lines.push(format!("timings: {phase:<26} {:>8.4} s   peak {peak:>5} MiB", (now - self.last).as_secs_f64()));
        self.last = now;
    }

    fn print(&self) {
        if !self.enabled {
            return;
        }
        for line in &self.lines {
            eprintln!("{line}");
        }
        eprintln!("timings: {:<26} {:>8.4} s   (process start-up and exit not counted)", "total", self.started.elapsed().as_secs_f64());
    }
}

/// The process's peak resident memory so far (`VmHWM`), in KiB; None off Linux.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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

/// `pacer simulate --live`: the live snapshot, the proposed manifests and the
/// injections through `schedule`; prints the transition and the revised status.
async fn simulate_on_live(global: &Global, args: &SimulateArgs) -> anyhow::Result<u8> {
    let injections = injections(args)?;
    let loaded = if args.files.is_empty() { None } else { Some(load_files(&args.files)) };
    let store = global.connect().await?;
    let simulation = match simulate_live(&store, loaded.as_ref(), &injections).await {
        Ok(simulation) => simulation,
        Err(OpsError::Invalid(diagnostics)) => {
            print_diagnostics(&diagnostics);
            return Ok(super::EXIT_REFUSED);
        }
        Err(error) => return Err(error.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&oracle_json(&simulation.plan)).context("encode the plan")?);
    } else {
        println!("Live cluster at revision {} (nothing was written)\n", simulation.revision);
        print!("{}", summary(&simulation.plan, args.scores));
    }
    Ok(0)
}

/// What a simulation adds to what the live cluster is doing anyway: the actions of
/// the simulated plan the live plan does not have.
fn what_would_move(simulation: &Simulation) -> Vec<&Action> {
    simulation.plan.actions.iter().filter(|action| !simulation.before.actions.contains(action)).collect()
}

/// `pacer diff --simulate`: after the object diff, what would move if it were applied.
pub(super) fn print_what_would_move(simulation: &Simulation) {
    let moves = what_would_move(simulation);
    println!("\nIf applied (simulated on the live cluster at revision {}):", simulation.revision);
    for fencing in simulation.plan.fencing.iter().filter(|fencing| !simulation.before.fencing.contains(fencing)) {
        println!("  * Fence ({}) {}: {}", fencing.action, fencing.node, fencing.reason);
    }
    for action in &moves {
        println!("  * {:<8} {:<24} ( {} )", action.verb, action.resource, action.detail);
    }
    if moves.is_empty() {
        println!("  (nothing would move)");
    }
    for resource in &simulation.plan.resources {
        let was = simulation.before.resources.iter().find(|before| before.id == resource.id).and_then(|before| before.reason.as_ref());
        if let Some(reason) = resource.reason.as_ref().filter(|reason| Some(*reason) != was) {
            println!("  * {} would not run: {reason}", resource.id);
        }
    }
}

/// The name a resource instance is reported under: anonymous clone instances by their
/// primitive's name, everything else by id (shared/conformance/FORMAT.md).
fn report_name(resource: &crate::scheduler::plan::ResourcePlan) -> &str {
    if resource.clone.is_some() && !resource.unique { &resource.name } else { &resource.id }
}

/// The plan in the conformance format ("pcmk-oracle-1"), borrowed from the plan and
/// serialized as it is: no JSON tree is built first (for a large CIB, building one was
/// most of writing the output).
#[derive(serde::Serialize)]
pub(crate) struct OracleJson<'a> {
    format: &'static str,
    resources: Vec<[&'a str; 3]>,
    resource_flags: Vec<[&'a str; 3]>,
    nodes: NodeStates<'a>,
    fenced: Vec<&'a str>,
    fence_actions: Vec<[&'a str; 2]>,
    actions: Vec<[&'a str; 3]>,
}

/// Each node's state, an object keyed by node name (nodes are unique in a plan).
struct NodeStates<'a>(&'a [crate::scheduler::plan::NodePlan]);

impl serde::Serialize for NodeStates<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|node| (node.name.as_str(), node.state.as_str())))
    }
}

/// The plan in the conformance format ("pcmk-oracle-1").
pub(crate) fn oracle_json(plan: &Plan) -> OracleJson<'_> {
    let mut resources = Vec::new();
    let mut flags = Vec::new();
    for resource in &plan.resources {
        for placement in &resource.next {
            resources.push([report_name(resource), placement.role.as_str(), placement.node.as_str()]);
        }
        // The revised status: a failure stays only where nothing recovers it.
        if resource.failed && resource.frozen {
            for placement in &resource.current {
                flags.push([report_name(resource), placement.node.as_str(), "failed"]);
            }
        }
    }
    let by_id: std::collections::HashMap<&str, &crate::scheduler::plan::ResourcePlan> =
        plan.resources.iter().map(|resource| (resource.id.as_str(), resource)).collect();
    OracleJson {
        format: "pcmk-oracle-1",
        resources,
        resource_flags: flags,
        nodes: NodeStates(&plan.nodes),
        fenced: plan.fencing.iter().map(|fencing| fencing.node.as_str()).collect(),
        fence_actions: plan.fencing.iter().map(|fencing| [fencing.node.as_str(), fencing.action.as_str()]).collect(),
        actions: plan
            .actions
            .iter()
            .map(|action| {
                let name = by_id.get(action.resource.as_str()).map_or(action.resource.as_str(), |resource| report_name(resource));
                [action.verb.as_str(), name, action.detail.as_str()]
            })
            .collect(),
    }
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
    // Not in Pacemaker's summary (its graph has them): the stops of finished
    // migrations' sources.
    let mut dangling = 0;
    for resource in &plan.resources {
        for node in &resource.dangling {
            let _ = writeln!(out, "  * {:<8} {:<24} ( {node}, the source of a finished migration )", "Stop", resource.id);
            dangling += 1;
        }
    }
    if plan.fencing.is_empty() && plan.actions.is_empty() && dangling == 0 {
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
    let read = CibText::read(path).with_context(|| format!("read {}", path.display()))?;
    let text = read.as_str().with_context(|| format!("read {}", path.display()))?;
    let imported = cib::import(text).with_context(|| format!("import {}", path.display()))?;
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
