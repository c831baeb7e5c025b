//! The `pacer` command line: argument parsing and wiring. Logic lives in `api` and
//! `store`; this module parses the arguments and hands each command to its function.

mod check;
mod cib_text;
mod complete;
mod config;
mod console;
mod daemons;
mod events;
mod fence;
mod flags;
mod history;
mod inspect;
pub(crate) mod objects;
pub(crate) mod output;
mod placement;
mod requests;
mod security;
mod simulate;
mod sources;
mod status;
mod up;
mod why;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::ops::OpsError;
use crate::ops::flags::ResourceFlag;
use crate::store::StoreError;
use config::Global;

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
    /// Move a resource: prefer NODE (or, without NODE, avoid the node it runs on now).
    /// Checked first against the live cluster: if the decision would not run it there,
    /// says why, exits 1 and writes nothing. The constraint (`cli-prefer-RSC` or
    /// `cli-ban-RSC-on-NODE`) is removed by the cluster once the resource runs where
    /// asked, unless --keep.
    Move(placement::MoveArgs),
    /// Keep a resource off NODE (or the node it runs on now) with a -INFINITY
    /// constraint `cli-ban-RSC-on-NODE`, until `pacer clear` or its --lifetime ends.
    Ban(placement::BanArgs),
    /// Remove the constraints `pacer move` and `pacer ban` made for a resource (only
    /// those: Locations written by hand are never touched).
    Clear(placement::ClearArgs),
    /// Run a scheduler: campaigns for leadership; the leader turns every change of the
    /// spec, node heartbeats, statuses and attributes into per-node assignments.
    /// Runs in the foreground until SIGTERM or SIGINT.
    Scheduler(daemons::SchedulerArgs),
    /// Start a local cluster for trying Pacer out: a private etcd on free loopback
    /// ports, a scheduler and N node agents (n1..nN), in the foreground until
    /// interrupted. Writes DIR/endpoint and DIR/pids/<component>.
    Up(daemons::UpArgs),
    /// Run hollow nodes (what `pacer up --hollow-nodes` starts): many nodes in one
    /// process, each the real node agent with a simulated executor (operations succeed
    /// after --latency; failures injected through DIR/<node>/hollow-fail), powered off
    /// through DIR/<node>/powered-off (fence_pacer_local). For scale tests.
    Hollow(daemons::HollowArgs),
    /// Clear failures and fail counts (of a resource, or of all; on a node, or on all;
    /// of one operation, or of all), so the scheduler may use the node again; the
    /// instances are probed again. Only what has failures is touched. The nodes'
    /// agents apply it (a node that is down, when it returns). Exit 1 when nothing
    /// has failures.
    Cleanup(requests::CleanupArgs),
    /// Forget everything recorded of a resource (or all) and probe it again, on every
    /// node or one.
    Refresh(requests::RefreshArgs),
    /// Set node flags: standby (runs no resources), maintenance (resources left alone).
    Node {
        #[command(subcommand)]
        command: flags::NodeCommand,
    },
    /// Put a node in standby and wait until nothing runs there (exit 1 at the timeout,
    /// naming what still runs there; the node stays in standby).
    Drain(flags::DrainArgs),
    /// The cluster's maintenance mode: on, every resource is left as it is.
    Maintenance(flags::MaintenanceArgs),
    /// Let a resource run again (removes its target role).
    Enable(flags::ResourceArgs),
    /// Stop a resource and keep it stopped (target role Stopped).
    Disable(flags::ResourceArgs),
    /// Let the cluster manage a resource again (removes isManaged).
    Manage(flags::ResourceArgs),
    /// Leave a resource as it is: no starts, stops or recovery (isManaged false).
    Unmanage(flags::ResourceArgs),
    /// Stop a resource, wait until it is stopped, start it again and wait until it
    /// runs (everywhere, or only on --node); the stop is undone whatever happens.
    Restart(flags::RestartArgs),
    /// Wait until a resource is started, stopped or promoted (anywhere, or on a node).
    /// Exit 0 once it is, 1 at the timeout.
    Wait(inspect::WaitArgs),
    /// Print the script that registers shell completion (bash, zsh, fish): subcommands,
    /// flags, and the live cluster's resource and node names.
    /// Bash: `source <(pacer completion bash)`.
    Completion(inspect::CompletionArgs),
    /// Check the cluster's health as a Nagios / Icinga / Opsview plugin: one line with
    /// performance data; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(check::CheckArgs),
    /// Where a resource runs and why there, or why it is stopped: every node's final
    /// score and the named contributions to it (locations, bans, stickiness,
    /// colocations, fail counts against migration-threshold, node states).
    Why(why::WhyArgs),
    /// Serve the web console: live status, actions (with the token), from a browser.
    /// `--read-only` shows the cluster without any action.
    Console(console::ConsoleArgs),
    /// The cluster's events, oldest first: resource operations, node joins and losses,
    /// fencing, attribute changes, decisions. Events not yet numbered by the leader
    /// show `-` as their sequence. `--for resource/NAME|node/NAME`, `--since DUR`,
    /// `--watch` to follow new ones until interrupted.
    Events(events::EventsArgs),
    /// The scheduler's decisions: list them (`--limit N`), `show REV`, `replay REV`
    /// (the scheduler run again on the decision's stored input; exit 1 if it decides
    /// differently), `diff REV1 REV2` (what changed in input and decision).
    History(history::HistoryArgs),
    /// A small certificate authority for etcd's mutual TLS: `init DIR`, then
    /// `issue DIR NAME [--role node|scheduler|admin|reader] [--host IP|DNS]`.
    Pki {
        #[command(subcommand)]
        command: security::PkiCommand,
    },
    /// etcd's auth: `bootstrap` creates the users and roles (rights by key prefix) and
    /// turns auth on.
    Auth {
        #[command(subcommand)]
        command: security::AuthCommand,
    },
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

impl Cli {
    /// Whether the command runs in the foreground until stopped (agent, scheduler, up).
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Agent(_) | Command::Scheduler(_) | Command::Up(_) | Command::Hollow(_))
    }
}

/// Answers a shell's completion request (`COMPLETE` set by `pacer completion`'s
/// script) and exits; returns at once otherwise. Call before starting a runtime.
pub fn complete_if_asked() {
    use clap::CommandFactory;
    clap_complete::CompleteEnv::with_factory(Cli::command).var(complete::VAR).complete();
}

/// Parses the command line. A value that does not parse (a duration, a choice) is
/// bad input: one line on stderr and exit 1, like every other refused input; a usage
/// error (unknown flag, missing argument) is clap's, with help, and exit 2. `--help`
/// and `--version` print and exit 0.
pub fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    Cli::try_parse().map_err(|error| match error.kind() {
        // A monitoring plugin's bad arguments are UNKNOWN, in its one-line form.
        kind if is_check_invocation() && !matches!(kind, ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            println!("PACER UNKNOWN - {first}");
            ExitCode::from(3)
        }
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: invalid value");
            match rendered.lines().map(str::trim).find(|line| line.starts_with("[possible values")) {
                Some(choices) => eprintln!("{first} {choices}"),
                None => eprintln!("{first}"),
            }
            ExitCode::from(EXIT_REFUSED)
        }
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand { EXIT_ERROR } else { 0 })
        }
        _ => {
            let _ = error.print();
            ExitCode::from(EXIT_ERROR)
        }
    })
}

/// Whether the command line runs `pacer check` (its first word that is neither an
/// option nor a global option's value).
fn is_check_invocation() -> bool {
    // `args_os`: an argument that is not UTF-8 must not panic here.
    let mut args = std::env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--etcd" | "--prefix" | "--etcd-ca" | "--etcd-cert" | "--etcd-key" | "--config" => {
                args.next();
            }
            option if option.starts_with('-') => {}
            word => return word == "check",
        }
    }
    false
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    exit_code(dispatch(&cli).await)
}

/// Runs a command that reads files only (`simulate` without `--live`, `import-cib`)
/// on this thread, with no async runtime to start, after `prepare` (the binary's
/// allocator settings for such a command); None, having done nothing, for a command
/// that needs `run`.
pub fn run_without_runtime(cli: &Cli, prepare: impl FnOnce()) -> Option<ExitCode> {
    let result = match &cli.command {
        Command::Simulate(args) if !args.is_live() => {
            prepare();
            simulate::simulate_offline(args)
        }
        Command::ImportCib(args) => {
            prepare();
            simulate::import_cib(args)
        }
        _ => return None,
    };
    Some(exit_code(result))
}

fn exit_code(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(exit_code_of(&error))
        }
    }
}

/// One line for an error: etcd out of reach says where it looked and how to point
/// elsewhere; everything else is the error with its context, down to the store's
/// error (whose own causes — the client's nested transport errors — it already
/// sums up).
pub(crate) fn describe(error: &anyhow::Error) -> String {
    if let Some(store) = error.chain().find_map(store_error)
        && store.is_unreachable()
    {
        return format!("{store} (set --etcd or PACER_ETCD)");
    }
    let mut parts = Vec::new();
    for cause in error.chain() {
        parts.push(cause.to_string());
        if store_error(cause).is_some() {
            break;
        }
    }
    parts.join(": ")
}

fn store_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a StoreError> {
    cause.downcast_ref::<StoreError>().or_else(|| match cause.downcast_ref::<OpsError>() {
        Some(OpsError::Store(store)) => Some(store),
        _ => None,
    })
}

/// 1 for a verb that was refused or did not reach its goal, 2 for everything else.
/// Bad TLS files and bad config files are refused input too: 1.
fn exit_code_of(error: &anyhow::Error) -> u8 {
    let bad_input = error.chain().any(|cause| {
        cause.is::<config::ConfigError>() || cause.is::<crate::store::tls::TlsError>() || matches!(cause.downcast_ref::<StoreError>(), Some(StoreError::Tls(_)))
    });
    if bad_input {
        return EXIT_REFUSED;
    }
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
        Command::Move(args) => placement::move_command(global, args).await,
        Command::Ban(args) => placement::ban_command(global, args).await,
        Command::Clear(args) => placement::clear_command(global, args).await,
        Command::Scheduler(args) => daemons::scheduler(global, args).await,
        Command::Up(args) => daemons::up(global, args).await,
        Command::Hollow(args) => daemons::hollow(global, args).await,
        Command::Cleanup(args) => requests::cleanup(global, args).await,
        Command::Refresh(args) => requests::refresh(global, args).await,
        Command::Node { command } => flags::node(global, command).await,
        Command::Drain(args) => flags::drain(global, args).await,
        Command::Maintenance(args) => flags::maintenance(global, args).await,
        Command::Enable(args) => flags::resource(global, args, ResourceFlag::Enable).await,
        Command::Disable(args) => flags::resource(global, args, ResourceFlag::Disable).await,
        Command::Manage(args) => flags::resource(global, args, ResourceFlag::Manage).await,
        Command::Unmanage(args) => flags::resource(global, args, ResourceFlag::Unmanage).await,
        Command::Restart(args) => flags::restart(global, args).await,
        Command::Wait(args) => inspect::wait(global, args).await,
        Command::Completion(args) => inspect::completion(args),
        Command::Check(args) => check::check(global, args).await,
        Command::Why(args) => why::why(global, args).await,
        Command::Console(args) => console::console(global, args).await,
        Command::History(args) => history::history(global, args).await,
        Command::Events(args) => events::events(global, args).await,
        Command::Pki { command } => security::pki(command),
        Command::Auth { command } => security::auth(global, command).await,
    }
}
