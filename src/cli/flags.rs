//! `pacer node standby|unstandby|maintenance|unmaintenance`, `pacer drain`, `pacer
//! maintenance on|off`, `pacer enable|disable|manage|unmanage` and `pacer restart`:
//! flags set by editing objects (`ops::flags`), and the restart (`ops::restart`).

use clap::{Subcommand, ValueEnum};

use crate::ops::flags::{FlagOutcome, NodeFlag, ResourceFlag, drain as drain_node, set_cluster_maintenance, set_node_flag, set_resource_flag};
use crate::ops::restart::restart as restart_resource;
use crate::ops::settle::settle;
use crate::store::Store;

use super::requests::{parse_duration, wait_limit};
use super::{ChangeArgs, Global, OutputFormat};

/// The nodes a node verb acts on.
#[derive(clap::Args, Debug)]
pub(super) struct NodesArgs {
    /// Node names.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    nodes: Vec<String>,
    /// Every node of the cluster.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(Subcommand, Debug)]
pub(super) enum NodeCommand {
    /// Put nodes in standby: they run no resources (what runs there moves away).
    Standby(NodesArgs),
    /// Take nodes out of standby.
    Unstandby(NodesArgs),
    /// Put nodes in maintenance: their resources are left as they are (no starts,
    /// stops or recovery; monitors only).
    Maintenance(NodesArgs),
    /// Take nodes out of maintenance.
    Unmaintenance(NodesArgs),
}

#[derive(clap::Args, Debug)]
pub(super) struct DrainArgs {
    node: String,
    /// How long to wait for the node to empty (exit 1 with what still runs there).
    #[arg(long, value_name = "DUR", default_value = "2min")]
    timeout: String,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum OnOff {
    On,
    Off,
}

#[derive(clap::Args, Debug)]
pub(super) struct MaintenanceArgs {
    #[arg(value_enum)]
    mode: OnOff,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct ResourceArgs {
    /// A resource, group or fence device.
    resource: String,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct RestartArgs {
    /// A resource or group.
    resource: String,
    /// Restart only on this node (for a clone: its instance there).
    #[arg(long)]
    node: Option<String>,
    #[command(flatten)]
    change: ChangeArgs,
}

/// How long a restart may take (stopped, then started again) when `--wait` gives no
/// limit: it always waits between the two.
const RESTART_DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) async fn node(global: &Global, command: &NodeCommand) -> anyhow::Result<u8> {
    let (args, flag, on) = match command {
        NodeCommand::Standby(args) => (args, NodeFlag::Standby, true),
        NodeCommand::Unstandby(args) => (args, NodeFlag::Standby, false),
        NodeCommand::Maintenance(args) => (args, NodeFlag::Maintenance, true),
        NodeCommand::Unmaintenance(args) => (args, NodeFlag::Maintenance, false),
    };
    let store = global.connect().await?;
    let outcome = set_node_flag(&store, &args.nodes, args.all, flag, on, args.change.dry_run).await?;
    report(&store, &outcome, &args.change).await
}

pub(super) async fn maintenance(global: &Global, args: &MaintenanceArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let outcome = set_cluster_maintenance(&store, args.mode == OnOff::On, args.change.dry_run).await?;
    report(&store, &outcome, &args.change).await
}

pub(super) async fn resource(global: &Global, args: &ResourceArgs, flag: ResourceFlag) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let outcome = set_resource_flag(&store, &args.resource, flag, args.change.dry_run).await?;
    report(&store, &outcome, &args.change).await
}

/// Prints what a flag verb changed, then waits if asked.
async fn report(store: &Store, outcome: &FlagOutcome, change: &ChangeArgs) -> anyhow::Result<u8> {
    if change.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        print!("{}", outcome.describe());
    }
    if let (Some(limit), Some(revision)) = (wait_limit(change), outcome.revision.filter(|_| !change.dry_run)) {
        let waited = settle(store, revision, limit).await?;
        if change.output != OutputFormat::Json {
            println!("settled in {:.1}s", waited.elapsed.as_secs_f64());
        }
    }
    Ok(0)
}

pub(super) async fn drain(global: &Global, args: &DrainArgs) -> anyhow::Result<u8> {
    let timeout = parse_duration("timeout", &args.timeout)?;
    let store = global.connect().await?;
    let outcome = drain_node(&store, &args.node, timeout, args.change.dry_run).await?;
    if args.change.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", outcome.standby.describe());
        if args.change.dry_run {
            let running = if outcome.running.is_empty() { "nothing".to_string() } else { outcome.running.join(", ") };
            println!("(dry run) would wait until nothing runs on {}; runs there now: {running}", args.node);
        } else {
            println!("{} is drained: nothing runs there", args.node);
        }
    }
    if let (Some(limit), Some(revision)) = (wait_limit(&args.change), outcome.standby.revision.filter(|_| !args.change.dry_run)) {
        settle(&store, revision, limit).await?;
    }
    Ok(0)
}

pub(super) async fn restart(global: &Global, args: &RestartArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let limit = wait_limit(&args.change).unwrap_or(RESTART_DEFAULT_WAIT);
    let interrupted = super::daemons::termination()?;
    let outcome = restart_resource(&store, &args.resource, args.node.as_deref(), limit, args.change.dry_run, interrupted).await?;
    if args.change.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        for step in &outcome.steps {
            println!("{}{step}", if outcome.dry_run { "(dry run) " } else { "" });
        }
    }
    Ok(0)
}
