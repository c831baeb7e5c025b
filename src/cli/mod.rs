//! The `pacer` command line: argument parsing and wiring. Logic lives in `api` and
//! `store`; this module reads files, calls them and prints.

mod output;
mod simulate;
mod sources;
mod status;
mod up;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::api::manifest::{Diagnostic, Loaded, load};
use crate::api::schema::{crd, crd_file_name};
use crate::api::yaml::to_yaml_string;
use crate::api::{Kind, Name, Object, ObjectKey};
use crate::store::Store;
use crate::store::apply::{ApplyOutcome, ApplyReport, ApplyRequest, apply};

/// Exit code of a refused change or a command that found differences.
const EXIT_REFUSED: u8 = 1;
/// Exit code of an error (etcd unreachable, a conflict, bad arguments).
const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "pacer", version, about = "Keep services highly available: Pacemaker's semantics, Kubernetes-style objects in etcd")]
pub struct Cli {
    /// etcd endpoints, comma-separated.
    #[arg(long, global = true, env = "PACER_ETCD", default_value = "http://127.0.0.1:2379")]
    etcd: String,
    /// Key prefix of this cluster in etcd.
    #[arg(long, global = true, env = "PACER_PREFIX", default_value = "/pacer")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate manifests and store them, all or nothing.
    Apply {
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
    },
    /// Show what `apply` would change, as a unified diff. Exit 0: no change, 1: changes.
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        #[arg(long)]
        applyset: Option<String>,
        #[arg(long, requires = "applyset")]
        prune: bool,
    },
    /// List objects of a kind (or `all`), or show one.
    Get {
        /// A kind: its name, plural or short name (rsc, grp, loc, colo, ord, fd, ft, no, cp), or `all`.
        kind: String,
        name: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Delete objects, by kind and name or as listed in manifests.
    Delete {
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
    },
    /// Print the CRD-style schema of every kind, or write them to a directory.
    Crds {
        /// Write one file per kind into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the scheduler offline: on a Pacemaker CIB, or on manifests plus an
    /// observed-state file, with what-if injections. Writes nothing anywhere.
    Simulate {
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
    },
    /// Turn a Pacemaker CIB into Pacer manifests plus an observed-state file; lists
    /// everything it could not map on stderr.
    ImportCib {
        file: PathBuf,
        /// Write cluster.yaml and observed.yaml here instead of printing the manifests.
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
    },
    /// Run the node agent of one node: hold its lease, probe every resource, converge
    /// to the scheduler's assignment by running the real agents, report statuses.
    /// Runs in the foreground; SIGTERM or SIGINT stops it (see --on-shutdown).
    Agent {
        /// The node this agent stands for (its `Node` object is created if missing).
        #[arg(long)]
        node: String,
        /// The node's own directory (agents' HA_RSCTMP/HA_VARRUN, work files).
        #[arg(long)]
        state_dir: PathBuf,
        /// Seconds the node's lease lasts without renewal (etcd counts whole seconds).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
        lease_ttl: u64,
        /// On SIGTERM: stop every resource (in reverse start order) and give up the
        /// lease, or leave them running and the lease to lapse (an agent started again
        /// within it resumes it; otherwise the node counts as lost and is fenced).
        #[arg(long, value_enum, default_value = "stop")]
        on_shutdown: ShutdownMode,
        /// A directory laid out like Pacer's `agents/` (`ocf/<provider>/<type>`, `lsb/`,
        /// `fence/`) searched after the system's; repeatable.
        #[arg(long = "agents-dir")]
        agents_dirs: Vec<PathBuf>,
        /// Attribute of the Node object created when none exists: NAME=VALUE; repeatable.
        #[arg(long = "attribute", value_parser = parse_key_value)]
        attributes: Vec<(String, String)>,
        /// Capacity of the Node object created when none exists: NAME=NUMBER; repeatable.
        #[arg(long = "capacity", value_parser = parse_capacity)]
        capacity: Vec<(String, u64)>,
    },
    /// Show the cluster: nodes and their state, every resource instance with its node
    /// and role, failures, the scheduler leader and the latest decisions.
    Status {
        /// `table` (default) or `json` (a stable shape, see the README).
        #[arg(short, long, value_enum, default_value = "table")]
        output: OutputFormat,
        /// How many of the latest decisions to show.
        #[arg(long, default_value_t = 5)]
        decisions: usize,
    },
    /// Fencing by hand: `pacer fence confirm NODE` vouches that a lost node is down
    /// (powered off by a person), so its resources may be recovered without a fence
    /// device. Refused while the node's agent holds its lease.
    Fence {
        #[command(subcommand)]
        command: FenceCommand,
    },
    /// Run a scheduler: campaigns for leadership; the leader turns every change of the
    /// spec, node heartbeats, statuses and attributes into per-node assignments.
    /// Runs in the foreground until SIGTERM or SIGINT.
    Scheduler {
        /// Seconds the leader's lease lasts without renewal: a standby takes over
        /// after about this long.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
        lease_ttl: u64,
        /// Milliseconds of quiet after a change before deciding.
        #[arg(long, default_value_t = 100)]
        debounce_ms: u64,
        /// How this instance names itself in the election (default host:pid).
        #[arg(long)]
        identity: Option<String>,
    },
    /// Start a local cluster for trying Pacer out: a private etcd on free loopback
    /// ports, a scheduler and N node agents (n1..nN), in the foreground until
    /// interrupted. Writes DIR/endpoint and DIR/pids/<component>.
    Up {
        #[arg(long)]
        state_dir: PathBuf,
        /// Node agents to start (0: etcd only).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Lease TTL of the agents and the scheduler, in seconds.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=3600))]
        lease_ttl: u64,
        /// The project's agent directory (default: ./agents when it exists).
        #[arg(long)]
        agents_dir: Option<PathBuf>,
        /// `on`: register fence_pacer_local, which powers the local nodes off (kills a
        /// node's agent and its resources' processes); `off`: stonithEnabled false.
        #[arg(long, value_enum, default_value = "on")]
        fencing: Switch,
    },
}

#[derive(Subcommand, Debug)]
enum FenceCommand {
    /// Confirm that NODE is down: what it reported running is forgotten.
    Confirm { node: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ShutdownMode {
    Stop,
    Leave,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected NAME=VALUE"))?;
    if key.is_empty() {
        return Err(format!("{text:?}: the name is empty"));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_capacity(text: &str) -> Result<(String, u64), String> {
    let (key, value) = parse_key_value(text)?;
    let number = value.parse().map_err(|_| format!("{text:?}: the capacity must be a whole number"))?;
    Ok((key, number))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Wide,
    Yaml,
    Json,
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn connect(cli: &Cli) -> anyhow::Result<Store> {
    let endpoints = vec![cli.etcd.clone()];
    Store::connect(&endpoints, &cli.prefix).await.map_err(anyhow::Error::from)
}

/// Completes on SIGTERM or SIGINT.
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

fn load_files(files: &[String]) -> Loaded {
    let (sources, read_problems) = sources::read_sources(files);
    let mut loaded = load(&sources);
    loaded.diagnostics.extend(read_problems);
    loaded
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
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

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Apply { files, dry_run, applyset, prune } => {
            let loaded = load_files(files);
            let store = connect(&cli).await?;
            let request = ApplyRequest { loaded, applyset: applyset.clone(), prune: *prune, dry_run: *dry_run, ..Default::default() };
            match apply(&store, &request).await? {
                ApplyOutcome::Invalid(diagnostics) => {
                    print_diagnostics(&diagnostics);
                    Ok(EXIT_REFUSED)
                }
                ApplyOutcome::Planned(report) => {
                    print_report(&report, *dry_run);
                    Ok(0)
                }
            }
        }
        Command::Diff { files, applyset, prune } => {
            let loaded = load_files(files);
            let store = connect(&cli).await?;
            let request = ApplyRequest { loaded, applyset: applyset.clone(), prune: *prune, dry_run: true, ..Default::default() };
            match apply(&store, &request).await? {
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
                    Ok(if changed.is_empty() { 0 } else { EXIT_REFUSED })
                }
            }
        }
        Command::Get { kind, name, output: format } => {
            let kinds: Vec<Kind> = if kind.eq_ignore_ascii_case("all") {
                Kind::ALL.to_vec()
            } else {
                vec![Kind::parse_loose(kind).with_context(|| format!("unknown kind {kind:?}"))?]
            };
            let store = connect(&cli).await?;
            let listing = store.list_objects().await?;
            let mut selected: Vec<&Object> = Vec::new();
            for kind in &kinds {
                selected.extend(
                    listing
                        .objects
                        .values()
                        .map(|stored| &stored.object)
                        .filter(|object| object.kind() == *kind && name.as_ref().is_none_or(|name| object.name().as_str() == name)),
                );
            }
            if let Some(name) = name
                && selected.is_empty()
            {
                eprintln!("error: {}/{name} not found", kinds[0]);
                return Ok(EXIT_REFUSED);
            }
            match format {
                OutputFormat::Yaml => print!("{}", output::objects_yaml(&selected)),
                OutputFormat::Json => print!("{}", output::objects_json(&selected, name.is_some())),
                OutputFormat::Table | OutputFormat::Wide => {
                    let wide = *format == OutputFormat::Wide;
                    let mut printed = false;
                    for kind in &kinds {
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
                        print!("{}", output::kind_table(*kind, &of_kind, wide));
                        printed = true;
                    }
                    if !printed {
                        eprintln!("No objects found.");
                    }
                }
            }
            Ok(0)
        }
        Command::Delete { files, kind, names, cascade, dry_run } => {
            let mut delete: Vec<ObjectKey> = Vec::new();
            if !files.is_empty() {
                let loaded = load_files(files);
                if !loaded.diagnostics.is_empty() {
                    print_diagnostics(&loaded.diagnostics);
                    return Ok(EXIT_REFUSED);
                }
                delete.extend(loaded.manifests.iter().map(|manifest| manifest.object.key()));
            } else {
                let kind_text = kind.as_deref().context("give KIND NAME... or -f FILE")?;
                let kind = Kind::parse_loose(kind_text).with_context(|| format!("unknown kind {kind_text:?}"))?;
                anyhow::ensure!(!names.is_empty(), "give at least one name of a {kind} to delete");
                delete.extend(names.iter().map(|name| ObjectKey { kind, name: Name(name.clone()) }));
            }
            let unique: BTreeSet<ObjectKey> = delete.into_iter().collect();
            let store = connect(&cli).await?;
            let request = ApplyRequest { delete: unique.into_iter().collect(), cascade: *cascade, dry_run: *dry_run, ..Default::default() };
            match apply(&store, &request).await? {
                ApplyOutcome::Invalid(diagnostics) => {
                    print_diagnostics(&diagnostics);
                    Ok(EXIT_REFUSED)
                }
                ApplyOutcome::Planned(report) => {
                    print_report(&report, *dry_run);
                    Ok(0)
                }
            }
        }
        Command::Crds { out } => {
            match out {
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
        Command::Simulate { cib, files, observed, now, node_fail, op_fail, json, scores } => {
            let request = simulate::SimulateRequest {
                cib: cib.as_deref(),
                files,
                observed: observed.as_deref(),
                now: *now,
                node_fail,
                op_fail,
                json: *json,
                scores: *scores,
            };
            simulate::simulate(&request, |files| {
                let loaded = load_files(files);
                if !loaded.diagnostics.is_empty() {
                    print_diagnostics(&loaded.diagnostics);
                    anyhow::bail!("the manifests are invalid");
                }
                Ok(loaded.manifests.into_iter().map(|manifest| manifest.object).collect())
            })
        }
        Command::ImportCib { file, out } => simulate::import_cib(file, out.as_ref()),
        Command::Up { state_dir, nodes, lease_ttl, agents_dir, fencing } => {
            let request = up::UpRequest {
                state_dir,
                nodes: *nodes,
                lease_ttl: *lease_ttl,
                agents_dir: agents_dir.as_deref(),
                prefix: &cli.prefix,
                fencing: *fencing == Switch::On,
            };
            up::run(&request).await
        }
        Command::Status { output, decisions } => {
            let store = connect(&cli).await?;
            let view = status::read(&store, *decisions).await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&view).context("encode status")?),
                OutputFormat::Yaml => print!("{}", to_yaml_string(&serde_json::to_value(&view).context("encode status")?)),
                OutputFormat::Table | OutputFormat::Wide => print!("{}", status::render(&view)),
            }
            Ok(0)
        }
        Command::Fence { command: FenceCommand::Confirm { node } } => {
            let store = connect(&cli).await?;
            let (_, requests) = store.read_records::<crate::api::records::FenceRequestRecord>(&store.keys().fence_request(node)).await?;
            let request = requests.first().map_or(0, |(_, request, _)| request.id);
            let user = std::env::var("USER").unwrap_or_else(|_| "a person".into());
            let result = crate::api::records::FenceResultRecord {
                request,
                target: node.clone(),
                action: "off".to_string(),
                succeeded: true,
                by: format!("confirmed by {user}"),
                finished: i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0))
                    .unwrap_or(i64::MAX),
                attempts: Vec::new(),
            };
            if !store.forget_node_reports(node, None).await? {
                eprintln!("error: node {node} is alive (its agent holds its lease); confirm only a node you know is down");
                return Ok(EXIT_REFUSED);
            }
            store.put_guarded(&store.keys().fence_result(node), &result, None).await.context("record the confirmation")?;
            println!("node {node} confirmed down: its resources may be recovered elsewhere");
            Ok(0)
        }
        Command::Scheduler { lease_ttl, debounce_ms, identity } => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default();
            let config = crate::daemon::SchedulerConfig {
                identity: identity.clone().unwrap_or_else(|| format!("{host}:{}", std::process::id())),
                lease_ttl: std::time::Duration::from_secs(*lease_ttl),
                debounce: std::time::Duration::from_millis(*debounce_ms),
                max_delay: std::time::Duration::from_millis((*debounce_ms).saturating_mul(10).max(1000)),
            };
            let store = connect(&cli).await?;
            crate::daemon::run(config, store, termination()?).await?;
            Ok(0)
        }
        Command::Agent { node, state_dir, lease_ttl, on_shutdown, agents_dirs, attributes, capacity } => {
            anyhow::ensure!(
                crate::api::Name::is_valid(node),
                "--node {node:?}: a node name is letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"
            );
            std::fs::create_dir_all(state_dir).with_context(|| format!("create {}", state_dir.display()))?;
            // Agents run with / as their working directory: every path they get is absolute.
            let state_dir = &std::fs::canonicalize(state_dir).with_context(|| format!("resolve {}", state_dir.display()))?;
            let mut exec = crate::exec::ExecConfig::default();
            for dir in agents_dirs {
                exec = exec.with_agents_dir(&std::fs::canonicalize(dir).with_context(|| format!("resolve --agents-dir {}", dir.display()))?);
            }
            let config = crate::agent::AgentConfig {
                node: node.clone(),
                state_dir: state_dir.clone(),
                lease_ttl: std::time::Duration::from_secs(*lease_ttl),
                on_shutdown: match on_shutdown {
                    ShutdownMode::Stop => crate::agent::OnShutdown::Stop,
                    ShutdownMode::Leave => crate::agent::OnShutdown::Leave,
                },
                exec,
                attributes: attributes.iter().cloned().collect(),
                capacity: capacity.iter().cloned().collect(),
            };
            let store = connect(&cli).await?;
            crate::agent::run(config, store, termination()?).await?;
            Ok(0)
        }
    }
}
