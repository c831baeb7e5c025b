//! The `pacer` command line: argument parsing and wiring. Logic lives in `api` and
//! `store`; this module parses the arguments and hands each command to its function.

mod daemons;
mod fence;
mod history;
mod objects;
mod output;
mod simulate;
mod sources;
mod status;
mod up;
mod why;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::ops::OpsError;
use crate::store::{Store, StoreError};

/// Exit code of a refused change or a command that found differences.
const EXIT_REFUSED: u8 = 1;
/// Exit code of an error (etcd unreachable, a conflict, bad arguments).
const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "pacer", version, about = "Keep services highly available: Pacemaker's semantics, Kubernetes-style objects in etcd")]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes: where the cluster is.
#[derive(clap::Args, Debug)]
struct Global {
    /// etcd endpoints, comma-separated.
    #[arg(long, global = true, env = "PACER_ETCD", default_value = "http://127.0.0.1:2379")]
    etcd: String,
    /// Key prefix of this cluster in etcd.
    #[arg(long, global = true, env = "PACER_PREFIX", default_value = "/pacer")]
    prefix: String,
}

impl Global {
    async fn connect(&self) -> anyhow::Result<Store> {
        let endpoints = vec![self.etcd.clone()];
        Store::connect(&endpoints, &self.prefix).await.map_err(anyhow::Error::from)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate manifests and store them, all or nothing.
    Apply(objects::ApplyArgs),
    /// Show what `apply` would change, as a unified diff. Exit 0: no change, 1: changes.
    Diff(objects::DiffArgs),
    /// List objects of a kind (or `all`), or show one.
    Get(objects::GetArgs),
    /// Delete objects, by kind and name or as listed in manifests.
    Delete(objects::DeleteArgs),
    /// Print the CRD-style schema of every kind, or write them to a directory.
    Crds(objects::CrdsArgs),
    /// Run the scheduler offline: on a Pacemaker CIB, or on manifests plus an
    /// observed-state file, or on the live cluster (`--live`, with proposed manifests
    /// as `-f`), with what-if injections. Writes nothing anywhere.
    Simulate(simulate::SimulateArgs),
    /// Turn a Pacemaker CIB into Pacer manifests plus an observed-state file; lists
    /// everything it could not map on stderr.
    ImportCib(simulate::ImportCibArgs),
    /// Run the node agent of one node: hold its lease, probe every resource, converge
    /// to the scheduler's assignment by running the real agents, report statuses.
    /// Runs in the foreground; SIGTERM or SIGINT stops it (see --on-shutdown).
    Agent(daemons::AgentArgs),
    /// Show the cluster: nodes and their state, every resource instance with its node
    /// and role, failures, the scheduler leader and the latest decisions.
    Status(status::StatusArgs),
    /// Fencing by hand: `pacer fence confirm NODE` vouches that a lost node is down
    /// (powered off by a person), so its resources may be recovered without a fence
    /// device. Refused while the node's agent holds its lease.
    Fence {
        #[command(subcommand)]
        command: fence::FenceCommand,
    },
    /// Run a scheduler: campaigns for leadership; the leader turns every change of the
    /// spec, node heartbeats, statuses and attributes into per-node assignments.
    /// Runs in the foreground until SIGTERM or SIGINT.
    Scheduler(daemons::SchedulerArgs),
    /// Start a local cluster for trying Pacer out: a private etcd on free loopback
    /// ports, a scheduler and N node agents (n1..nN), in the foreground until
    /// interrupted. Writes DIR/endpoint and DIR/pids/<component>.
    Up(daemons::UpArgs),
    /// Where a resource runs and why there, or why it is stopped: every node's final
    /// score and the named contributions to it (locations, bans, stickiness,
    /// colocations, fail counts against migration-threshold, node states).
    Why(why::WhyArgs),
    /// The scheduler's decisions: list them (`--limit N`), `show REV`, `replay REV`
    /// (the scheduler run again on the decision's stored input; exit 1 if it decides
    /// differently), `diff REV1 REV2` (what changed in input and decision).
    History(history::HistoryArgs),
}

/// What every mutating verb takes: `--dry-run`, `--wait[=DUR]` and `-o json`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ChangeArgs {
    /// Check the change and show it; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// After the change, wait until the cluster has settled on it (default 60s):
    /// exit 1 if it has not by then.
    #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "60s")]
    wait: Option<crate::api::Duration>,
    /// `table` (text, default) or `json`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// How `get` and `status` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Wide,
    Yaml,
    Json,
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(&cli).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(exit_code_of(&error))
        }
    }
}

/// One line for an error: etcd out of reach says where it looked and how to point
/// elsewhere; everything else is the error with its context.
fn describe(error: &anyhow::Error) -> String {
    let store_error = error.chain().find_map(|cause| {
        cause.downcast_ref::<StoreError>().or_else(|| match cause.downcast_ref::<OpsError>() {
            Some(OpsError::Store(store)) => Some(store),
            _ => None,
        })
    });
    match store_error {
        Some(store) if store.is_unreachable() => format!("{store} (set --etcd or PACER_ETCD)"),
        _ => format!("{error:#}"),
    }
}

/// 1 for a verb that was refused or did not reach its goal, 2 for everything else.
fn exit_code_of(error: &anyhow::Error) -> u8 {
    error.chain().find_map(|cause| cause.downcast_ref::<OpsError>()).map_or(EXIT_ERROR, OpsError::exit_code)
}

/// Hands the command to its function; each returns the exit code.
async fn dispatch(cli: &Cli) -> anyhow::Result<u8> {
    let global = &cli.global;
    match &cli.command {
        Command::Apply(args) => objects::apply(global, args).await,
        Command::Diff(args) => objects::diff(global, args).await,
        Command::Get(args) => objects::get(global, args).await,
        Command::Delete(args) => objects::delete(global, args).await,
        Command::Crds(args) => objects::crds(args),
        Command::Simulate(args) => simulate::simulate(global, args).await,
        Command::ImportCib(args) => simulate::import_cib(args),
        Command::Agent(args) => daemons::agent(global, args).await,
        Command::Status(args) => status::status(global, args).await,
        Command::Fence { command: fence::FenceCommand::Confirm { node } } => fence::confirm(global, node).await,
        Command::Scheduler(args) => daemons::scheduler(global, args).await,
        Command::Up(args) => daemons::up(global, args).await,
        Command::Why(args) => why::why(global, args).await,
        Command::History(args) => history::history(global, args).await,
    }
}
