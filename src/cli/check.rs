//! `pacer check`: a Nagios / Icinga / Opsview plugin. Exit 0 OK, 1 WARNING, 2
//! CRITICAL, 3 UNKNOWN; one status line with performance data, then the problems.

use anyhow::Context;

use crate::ops::OpsError;
use crate::ops::check::{CheckOptions, CheckResult, State, evaluate};
use crate::ops::live::Live;
use crate::state::view::{Surroundings, alerts_view, fencing_view, status_view};

use super::{Global, OutputFormat, complete};

#[derive(clap::Args, Debug)]
pub(super) struct CheckArgs {
    /// Check only this resource (Resource, Group or FenceDevice).
    #[arg(long, add = complete::resources())]
    resource: Option<String>,
    /// Check only this node.
    #[arg(long, add = complete::nodes())]
    node: Option<String>,
    /// WARNING when fewer nodes than this are online.
    #[arg(long, value_name = "N")]
    nodes_warning: Option<usize>,
    /// CRITICAL when fewer nodes than this are online (without it, any node offline
    /// is CRITICAL; with it, an offline node is a WARNING).
    #[arg(long, value_name = "N")]
    nodes_critical: Option<usize>,
    /// WARNING from this many counted failures on (default 1).
    #[arg(long, value_name = "N")]
    failures_warning: Option<u32>,
    /// CRITICAL from this many counted failures on.
    #[arg(long, value_name = "N")]
    failures_critical: Option<u32>,
    /// `table` (the plugin's text, default) or `json`.
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
}

/// `pacer check`. Never an `Err`: every outcome is a plugin state (etcd out of reach
/// is CRITICAL).
pub(super) async fn check(global: &Global, args: &CheckArgs) -> anyhow::Result<u8> {
    let result = match judge(global, args).await {
        Ok(result) => result,
        Err(error) => {
            let store_unreachable = error.chain().any(|cause| {
                cause.downcast_ref::<crate::store::StoreError>().is_some() || matches!(cause.downcast_ref::<OpsError>(), Some(OpsError::Store(_)))
            });
            let state = if store_unreachable { State::Critical } else { State::Unknown };
            CheckResult::without_cluster(state, super::describe(&error))
        }
    };
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&result).context("encode the result")?);
    } else {
        print!("{}", result.render());
    }
    Ok(result.state as u8)
}

async fn judge(global: &Global, args: &CheckArgs) -> anyhow::Result<CheckResult> {
    let store = global.connect().await?;
    let live = Live::read(&store).await?;
    let plan = live.plan();
    let snapshot = &live.live.snapshot;
    let requests: Vec<_> = live.cache.fence_requests().values().cloned().collect();
    let results: Vec<_> = live.cache.fence_outcomes();
    let leader = live.cache.election().map(|holder| holder.leader.identity.clone());
    let around = Surroundings {
        leader,
        decisions: Vec::new(),
        fencing: fencing_view(&requests, &results),
        activities: live.cache.activities(),
        constraints: Vec::new(),
    };
    let mut view = status_view(&snapshot.objects, &snapshot.observed, &live.live.reports.statuses, &plan, around);
    view.alerts = alerts_view(&snapshot.objects, &store.read_alert_cursors().await?);
    let options = CheckOptions {
        resource: args.resource.clone(),
        node: args.node.clone(),
        nodes_warning: args.nodes_warning,
        nodes_critical: args.nodes_critical,
        failures_warning: args.failures_warning,
        failures_critical: args.failures_critical,
    };
    Ok(evaluate(&snapshot.objects, &view, &plan, &options))
}
