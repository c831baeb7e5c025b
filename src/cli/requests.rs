//! `pacer cleanup` and `pacer refresh`: requests to the nodes' agents
//! (`ops::requests`), printed as the instances and nodes they touch.

use crate::api::records::RequestKind;
use crate::ops::OpsError;
use crate::ops::requests::{RequestSpec, request, wait_consumed};

use super::{ChangeArgs, EXIT_REFUSED, Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub(super) struct CleanupArgs {
    /// A resource, group or fence device (a clone's instances, a group's members);
    /// every resource with failures when left out.
    resource: Option<String>,
    /// Only on this node.
    #[arg(long)]
    node: Option<String>,
    /// Only this operation's failures (`monitor`, `start`, ...).
    #[arg(long)]
    operation: Option<String>,
    /// With --operation: only at this interval (`10s`; `0` for one-shot operations).
    #[arg(long, requires = "operation", value_name = "DUR")]
    interval: Option<String>,
    #[command(flatten)]
    change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub(super) struct RefreshArgs {
    /// A resource, group or fence device; every resource when left out.
    resource: Option<String>,
    /// Only on this node.
    #[arg(long)]
    node: Option<String>,
    #[command(flatten)]
    change: ChangeArgs,
}

/// A duration given on the command line; refused in one line (exit 1) when it does
/// not parse.
pub(super) fn parse_duration(flag: &str, text: &str) -> Result<std::time::Duration, OpsError> {
    text.parse::<crate::api::Duration>().map(crate::api::Duration::as_std).map_err(|error| OpsError::Refused(format!("--{flag}: {error}")))
}

/// How long `--wait` waits (its default when given without a value is clap's).
pub(super) fn wait_limit(change: &ChangeArgs) -> Option<std::time::Duration> {
    change.wait.map(crate::api::Duration::as_std)
}

/// `pacer cleanup`: clears failures and fail counts so the scheduler may use the
/// node again. Nothing to clean: a notice and exit 1, nothing written.
pub(super) async fn cleanup(global: &Global, args: &CleanupArgs) -> anyhow::Result<u8> {
    let interval_ms = args.interval.as_deref().map(|text| parse_duration("interval", text)).transpose()?.map(|interval| interval.as_millis() as u64);
    let spec =
        RequestSpec { kind: RequestKind::Cleanup, resource: args.resource.clone(), node: args.node.clone(), operation: args.operation.clone(), interval_ms };
    run(global, &spec, &args.change).await
}

/// `pacer refresh`: forgets what is recorded and probes again.
pub(super) async fn refresh(global: &Global, args: &RefreshArgs) -> anyhow::Result<u8> {
    let spec = RequestSpec { kind: RequestKind::Refresh, resource: args.resource.clone(), node: args.node.clone(), operation: None, interval_ms: None };
    run(global, &spec, &args.change).await
}

async fn run(global: &Global, spec: &RequestSpec, change: &ChangeArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let outcome = request(&store, spec, change.dry_run).await?;
    let json = change.output == OutputFormat::Json;
    if let Some(nothing) = &outcome.nothing {
        if json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        }
        eprintln!("notice: {nothing}");
        return Ok(EXIT_REFUSED);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", outcome.describe());
    }
    if let Some(limit) = wait_limit(change).filter(|_| !change.dry_run) {
        let started = std::time::Instant::now();
        wait_consumed(&store, &outcome, limit).await?;
        if !json {
            println!("applied, and the cluster settled, in {:.1}s", started.elapsed().as_secs_f64());
        }
    }
    Ok(0)
}
