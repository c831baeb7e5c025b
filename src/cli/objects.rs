//! `pacer apply`, `diff`, `get`, `delete` and `crds`: the desired objects, read from
//! manifests, checked and written by `store::apply`, listed from etcd.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::api::manifest::{Diagnostic, Loaded, load};
use crate::api::schema::{crd, crd_file_name};
use crate::api::yaml::to_yaml_string;
use crate::api::{Kind, Name, Object, ObjectKey};
use crate::ops::live::Live;
use crate::state::conditions::{ByPrimitive, NodeLive, ResourceLive, node_live, resource_live};
use crate::state::view::{Surroundings, fencing_view, status_view};
use crate::store::Undecodable;
use crate::store::apply::{ApplyOutcome, ApplyReport, ApplyRequest, apply_listed};

use super::{EXIT_ERROR, EXIT_REFUSED, Global, OutputFormat, output, sources};

#[derive(clap::Args, Debug)]
pub(super) struct ApplyArgs {
    /// Files, directories (recursive) or - for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Validate against what is stored and show what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Label the objects as members of this apply set.
    #[arg(long)]
    applyset: Option<String>,
    /// Delete members of the apply set that the manifests no longer contain.
    #[arg(long, requires = "applyset")]
    prune: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct DiffArgs {
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    #[arg(long)]
    applyset: Option<String>,
    #[arg(long, requires = "applyset")]
    prune: bool,
    /// Also show what would move if the change were applied: the live cluster with
    /// the change, in memory, through the scheduler (`pacer simulate --live`).
    #[arg(long)]
    simulate: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct GetArgs {
    /// A kind: its name, plural or short name (rsc, grp, loc, colo, ord, fd, ft, no, cp), or `all`.
    kind: String,
    name: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

#[derive(clap::Args, Debug)]
pub(super) struct DeleteArgs {
    /// Delete the objects these manifests describe.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "names"])]
    files: Vec<String>,
    kind: Option<String>,
    names: Vec<String>,
    /// Also delete constraints that refer to the deleted objects (and drop them from groups).
    #[arg(long)]
    cascade: bool,
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct CrdsArgs {
    /// Write one file per kind into this directory instead of printing.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `pacer apply`: every document checked, then all of it written or nothing.
pub(super) async fn apply(global: &Global, args: &ApplyArgs) -> anyhow::Result<u8> {
    let mut loaded = load_files(&args.files);
    let receivers = check_receivers_here(&loaded);
    loaded.diagnostics.extend(receivers);
    warn_plain_secrets(&loaded);
    let store = global.connect().await?;
    let request = ApplyRequest { loaded, applyset: args.applyset.clone(), prune: args.prune, dry_run: args.dry_run, ..Default::default() };
    apply_and_report(&store, &request).await
}

/// A warning line on stderr for each plain parameter whose name is taken for a
/// secret (`api::params::is_secret_name`): it would be stored in etcd as written.
fn warn_plain_secrets(loaded: &Loaded) {
    for diagnostic in plain_secrets(loaded) {
        eprintln!("warning: {diagnostic}");
    }
}

/// The plain parameters of the manifests whose names are taken for secrets, as
/// diagnostics (file, line, object, field): `apply` warns of each, the console too.
pub(crate) fn plain_secrets(loaded: &Loaded) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for manifest in &loaded.manifests {
        for (path, message) in crate::api::params::plain_secret_warnings(&manifest.object.spec) {
            found.push(manifest.origin.diagnostic(Some(manifest.object.key().to_string()), path, message));
        }
    }
    found
}

/// The exec receivers of enabled alerts that do not exist or are not executable on
/// this host, as diagnostics. Only a check: the scheduler that delivers may run on
/// another host, where a failed run is recorded as a failed delivery.
pub(crate) fn check_receivers_here(loaded: &Loaded) -> Vec<Diagnostic> {
    use std::os::unix::fs::PermissionsExt;
    let mut diagnostics = Vec::new();
    for manifest in &loaded.manifests {
        let crate::api::Spec::Alert(alert) = &manifest.object.spec else { continue };
        // A receiver given twice, or a path that is not an absolute file path, is
        // refused by the checks already.
        let Some(exec) = alert.receiver.exec.as_ref().filter(|_| alert.enabled && alert.receiver.webhook.is_none()) else { continue };
        if !crate::api::validate::is_absolute_file_path(&exec.path) {
            continue;
        }
        let problem = match std::fs::metadata(&exec.path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some("does not exist on this host".to_string()),
            Err(error) => Some(format!("cannot be read on this host: {error}")),
            Ok(metadata) if !metadata.is_file() => Some("is not a file".to_string()),
            Ok(metadata) if metadata.permissions().mode() & 0o111 == 0 => Some("is not executable".to_string()),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            let path = crate::api::FieldPath::of(&["spec", "receiver", "exec", "path"]);
            let object = Some(manifest.object.key().to_string());
            diagnostics.push(manifest.origin.diagnostic(object, path, format!("{:?} {problem}", exec.path)));
        }
    }
    diagnostics
}

/// Runs an apply (or delete) and prints its outcome: the diagnostics and exit 1 when
/// refused, else what changed.
async fn apply_and_report(store: &crate::store::Store, request: &ApplyRequest) -> anyhow::Result<u8> {
    match apply_warning(store, request).await? {
        ApplyOutcome::Invalid(diagnostics) => {
            print_diagnostics(&diagnostics);
            Ok(EXIT_REFUSED)
        }
        ApplyOutcome::Planned(report) => {
            print_report(&report, request.dry_run);
            Ok(0)
        }
    }
}

/// `pacer diff`: a dry-run apply printed as unified diffs; exit 1 when something
/// would change, 2 when the manifests are invalid.
pub(super) async fn diff(global: &Global, args: &DiffArgs) -> anyhow::Result<u8> {
    let loaded = load_files(&args.files);
    let store = global.connect().await?;
    let request = ApplyRequest { loaded, applyset: args.applyset.clone(), prune: args.prune, dry_run: true, ..Default::default() };
    match apply_warning(&store, &request).await? {
        ApplyOutcome::Invalid(diagnostics) => {
            print_diagnostics(&diagnostics);
            Ok(EXIT_ERROR)
        }
        ApplyOutcome::Planned(report) => {
            let mut changed: Vec<_> = report.objects.iter().filter(|planned| planned.change.writes()).collect();
            changed.sort_by(|a, b| a.key.cmp(&b.key));
            for planned in &changed {
                print!("{}", output::unified_diff(planned));
            }
            if args.simulate {
                let changes = changed.iter().map(|planned| (planned.key.clone(), planned.after.clone())).collect();
                let simulation = crate::ops::simulate::simulate_changes(&store, changes).await?;
                super::simulate::print_what_would_move(&simulation);
            }
            Ok(if changed.is_empty() { 0 } else { EXIT_REFUSED })
        }
    }
}

/// `pacer get`: the stored objects of one kind (or all), as tables, YAML or JSON;
/// exit 1 when a named object is not found.
pub(super) async fn get(global: &Global, args: &GetArgs) -> anyhow::Result<u8> {
    let GetArgs { kind, name, output: format } = args;
    let kinds: Vec<Kind> =
        if kind.eq_ignore_ascii_case("all") { Kind::ALL.to_vec() } else { vec![Kind::parse_loose(kind).with_context(|| format!("unknown kind {kind:?}"))?] };
    let store = global.connect().await?;
    // Resources and nodes have a live state: read the whole cluster at one revision
    // then, the spec alone otherwise.
    let wants_live = kinds.iter().any(|kind| !output::live_header(*kind).is_empty());
    let (objects, live) = if wants_live {
        let live = Live::read(&store).await?;
        output::warn_skipped(live.cache.undecodable().iter().map(|(key, reason)| (key.as_str(), reason.as_str())));
        (live.cache.objects().clone(), Some(live))
    } else {
        let listing = store.list_objects().await?;
        warn_undecodable(&listing.undecodable);
        (listing.objects, None)
    };
    let mut selected: Vec<&Object> = Vec::new();
    for kind in &kinds {
        selected.extend(
            objects
                .values()
                .map(|stored| &*stored.object)
                .filter(|object| object.kind() == *kind && name.as_ref().is_none_or(|name| object.name().as_str() == name)),
        );
    }
    if let Some(name) = name
        && selected.is_empty()
    {
        eprintln!("error: {}/{name} not found", kinds[0]);
        return Ok(EXIT_REFUSED);
    }
    let statuses: BTreeMap<ObjectKey, LiveStatus> = match &live {
        Some(live) => live_statuses(live, &selected),
        None => BTreeMap::new(),
    };
    match format {
        OutputFormat::Yaml | OutputFormat::Json => {
            let values: Vec<serde_json::Value> = selected
                .iter()
                .map(|object| {
                    let mut value = object.to_value();
                    crate::api::params::redact_object(&mut value);
                    if let (Some(status), serde_json::Value::Object(map)) = (statuses.get(&object.key()), &mut value) {
                        map.insert("status".into(), status.to_value());
                    }
                    value
                })
                .collect();
            if *format == OutputFormat::Yaml {
                print!("{}", output::objects_yaml(&values));
            } else {
                print!("{}", output::objects_json(&values, name.is_some()));
            }
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let cells: BTreeMap<ObjectKey, Vec<String>> = statuses.iter().map(|(key, status)| (key.clone(), status.cells())).collect();
            print_tables(&kinds, &selected, *format == OutputFormat::Wide, live.is_some().then_some(&cells));
        }
    }
    Ok(0)
}

/// An object's live state, as `get` shows it.
enum LiveStatus {
    Resource(ResourceLive),
    Node(NodeLive),
}

impl LiveStatus {
    fn to_value(&self) -> serde_json::Value {
        match self {
            LiveStatus::Resource(live) => serde_json::to_value(live),
            LiveStatus::Node(live) => serde_json::to_value(live),
        }
        .unwrap_or_default()
    }

    /// The table cells, in `output::live_header`'s order.
    fn cells(&self) -> Vec<String> {
        match self {
            LiveStatus::Resource(live) => {
                let nodes = if live.nodes.is_empty() { "-".to_string() } else { live.nodes.join(",") };
                vec![nodes, live.role.clone(), live.failures.to_string()]
            }
            LiveStatus::Node(live) => vec![live.state.clone(), live.resources.to_string()],
        }
    }
}

/// The live state of the selected objects that have one, from one snapshot and the
/// decision made from it.
fn live_statuses(live: &Live, selected: &[&Object]) -> BTreeMap<ObjectKey, LiveStatus> {
    let plan = live.plan();
    let snapshot = &live.live.snapshot;
    let requests: Vec<_> = live.cache.fence_requests().values().cloned().collect();
    let results: Vec<_> = live.cache.fence_outcomes();
    let around = Surroundings {
        leader: None,
        decisions: Vec::new(),
        fencing: fencing_view(&requests, &results),
        activities: live.cache.activities(),
        constraints: Vec::new(),
    };
    let view = status_view(&snapshot.objects, &snapshot.observed, &live.live.reports.statuses, &plan, around);
    let by_primitive = ByPrimitive::new(&view, &plan, &live.live.reports.statuses);
    let started: BTreeMap<String, i64> = live.live.reports.heartbeats.iter().map(|(node, heartbeat)| (node.clone(), heartbeat.started)).collect();
    selected
        .iter()
        .filter_map(|object| {
            let status = match object.kind() {
                Kind::Node => node_live(object.name().as_str(), object.metadata.generation, &view, &started).map(LiveStatus::Node),
                _ => resource_live(object, &by_primitive).map(LiveStatus::Resource),
            }?;
            Some((object.key(), status))
        })
        .collect()
}

/// One table per kind that has objects, each under a `# plural` heading when more
/// than one kind was asked for.
fn print_tables(kinds: &[Kind], selected: &[&Object], wide: bool, live: Option<&BTreeMap<ObjectKey, Vec<String>>>) {
    let mut printed = false;
    for kind in kinds {
        let of_kind: Vec<&Object> = selected.iter().copied().filter(|object| object.kind() == *kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        if kinds.len() > 1 {
            if printed {
                println!();
            }
            println!("# {}", kind.plural());
        }
        let live = live.filter(|_| !output::live_header(*kind).is_empty());
        print!("{}", output::kind_table(*kind, &of_kind, wide, live));
        printed = true;
    }
    if !printed {
        eprintln!("No objects found.");
    }
}

/// `pacer delete`: by kind and names or as manifests list them; refused (exit 1)
/// while constraints refer to an object, unless `--cascade`.
pub(super) async fn delete(global: &Global, args: &DeleteArgs) -> anyhow::Result<u8> {
    let mut delete: Vec<ObjectKey> = Vec::new();
    if !args.files.is_empty() {
        let loaded = load_files(&args.files);
        if !loaded.diagnostics.is_empty() {
            print_diagnostics(&loaded.diagnostics);
            return Ok(EXIT_REFUSED);
        }
        delete.extend(loaded.manifests.iter().map(|manifest| manifest.object.key()));
    } else {
        let kind_text = args.kind.as_deref().context("give KIND NAME... or -f FILE")?;
        let kind = Kind::parse_loose(kind_text).with_context(|| format!("unknown kind {kind_text:?}"))?;
        anyhow::ensure!(!args.names.is_empty(), "give at least one name of a {kind} to delete");
        delete.extend(args.names.iter().map(|name| ObjectKey { kind, name: Name(name.clone()) }));
    }
    let unique: BTreeSet<ObjectKey> = delete.into_iter().collect();
    let store = global.connect().await?;
    let request = ApplyRequest { delete: unique.into_iter().collect(), cascade: args.cascade, dry_run: args.dry_run, ..Default::default() };
    apply_and_report(&store, &request).await
}

/// `pacer crds`: the CRD-style schema of every kind, printed or one file per kind.
pub(super) fn crds(args: &CrdsArgs) -> anyhow::Result<u8> {
    match &args.out {
        Some(directory) => {
            std::fs::create_dir_all(directory).with_context(|| format!("create {}", directory.display()))?;
            for kind in Kind::ALL {
                let path = directory.join(crd_file_name(*kind));
                std::fs::write(&path, to_yaml_string(&crd(*kind))).with_context(|| format!("write {}", path.display()))?;
            }
        }
        None => {
            let documents: Vec<String> = Kind::ALL.iter().map(|kind| to_yaml_string(&crd(*kind))).collect();
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(0)
}

/// `store::apply::apply`, naming on stderr the stored objects it skipped.
async fn apply_warning(store: &crate::store::Store, request: &ApplyRequest) -> anyhow::Result<ApplyOutcome> {
    let (outcome, skipped) = apply_listed(store, request).await?;
    warn_undecodable(&skipped);
    Ok(outcome)
}

fn warn_undecodable(skipped: &[Undecodable]) {
    output::warn_skipped(skipped.iter().map(|skipped| (skipped.key.as_str(), skipped.reason.as_str())));
}

/// Reads and loads the manifests; problems reading a file join the load's diagnostics.
pub(super) fn load_files(files: &[String]) -> Loaded {
    let (sources, read_problems) = sources::read_sources(files);
    let mut loaded = load(&sources);
    loaded.diagnostics.extend(read_problems);
    loaded
}

pub(super) fn print_diagnostics(diagnostics: &[Diagnostic]) {
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
    let _ = writeln!(out, "error: {} problem{} found; nothing was written", diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" });
}

fn print_report(report: &ApplyReport, dry_run: bool) {
    let suffix = if dry_run { " (dry run)" } else { "" };
    let mut objects: Vec<_> = report.objects.iter().collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    for planned in objects {
        println!("{} {}{suffix}", planned.key, planned.change.as_str());
    }
}
