//! `pacer status`: nodes, resources, failures and the latest decisions, like crm_mon.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use etcd_client::GetOptions;

use crate::api::records::{FenceRequestRecord, FenceResultRecord, HistoryRecord, Leader};
use crate::api::yaml::to_yaml_string;
use crate::scheduler::schedule;
use crate::scheduler::snapshot::Snapshot;
use crate::state::observe;
use crate::state::view::{DecisionView, StatusView, fencing_view, status_view};
use crate::store::Store;

use super::output::table;
use super::{Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub(super) struct StatusArgs {
    /// `table` (default) or `json` (a stable shape, see the README).
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// How many of the latest decisions to show.
    #[arg(long, default_value_t = 5)]
    decisions: usize,
}

/// `pacer status`: the view as a crm_mon-like text, JSON or YAML.
pub(super) async fn status(global: &Global, args: &StatusArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    let view = read(&store, args.decisions).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&view).context("encode status")?),
        OutputFormat::Yaml => print!("{}", to_yaml_string(&serde_json::to_value(&view).context("encode status")?)),
        OutputFormat::Table | OutputFormat::Wide => print!("{}", render(&view)),
    }
    Ok(0)
}

/// Reads everything at once and builds the view.
pub async fn read(store: &Store, decisions: usize) -> anyhow::Result<StatusView> {
    let listing = store.list_objects().await.context("read the configuration")?;
    let (_, reports) = store.read_reports().await.context("read node reports")?;
    let objects: Vec<_> = listing.objects.into_values().map(|stored| stored.object).collect();
    let observed = observe(&reports, true);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let snapshot = Snapshot { objects, observed, now: i64::try_from(now).unwrap_or(i64::MAX) };
    let plan = schedule(&snapshot);
    let mut client = store.client();
    let leader = client.get(store.keys().election(), None).await.context("read the election key")?;
    let leader = leader.kvs().first().and_then(|kv| serde_json::from_slice::<Leader>(kv.value()).ok()).map(|leader| leader.identity);
    let history = client
        .get(
            store.keys().history_prefix(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Descend)
                    .with_limit(i64::try_from(decisions).unwrap_or(5)),
            ),
        )
        .await
        .context("read the decision history")?;
    let decisions = history
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<HistoryRecord>(kv.value()).ok())
        .map(|record| DecisionView { time: record.time, input_revision: record.input_revision, actions: record.actions })
        .collect();
    let (_, requests) = store.read_records::<serde_json::Value>(&store.keys().fencing_prefix()).await.context("read fencing")?;
    let mut fence_requests = Vec::new();
    let mut fence_results = Vec::new();
    for (key, value, _) in requests {
        if key.ends_with("/request") {
            fence_requests.extend(serde_json::from_value::<FenceRequestRecord>(value).ok());
        } else if key.ends_with("/result") {
            fence_results.extend(serde_json::from_value::<FenceResultRecord>(value).ok());
        }
    }
    let fencing = fencing_view(&fence_requests, &fence_results);
    Ok(status_view(&snapshot.objects, &snapshot.observed, &reports.statuses, &plan, leader, decisions, fencing))
}

/// The human form.
pub fn render(view: &StatusView) -> String {
    let mut out = String::new();
    out.push_str(&format!("Scheduler leader: {}\n\n", view.leader.as_deref().unwrap_or("none")));
    let online = view.nodes.iter().filter(|node| node.state == "online").count();
    out.push_str(&format!("Nodes ({} configured or seen, {online} online):\n", view.nodes.len()));
    let rows: Vec<Vec<String>> = view.nodes.iter().map(|node| vec![node.name.clone(), node.state.to_string()]).collect();
    out.push_str(&indent(&table(&["NODE", "STATE"], &rows)));
    out.push_str("\nResources:\n");
    let rows: Vec<Vec<String>> = view
        .resources
        .iter()
        .map(|resource| {
            let mut notes = Vec::new();
            if resource.failed {
                notes.push("FAILED".to_string());
            }
            if resource.unmanaged {
                notes.push("unmanaged".to_string());
            }
            if let Some(reason) = &resource.reason {
                notes.push(reason.clone());
            }
            vec![
                resource.name.clone(),
                resource.kind.to_string(),
                resource.group.clone().unwrap_or_else(|| "-".into()),
                resource.node.clone().unwrap_or_else(|| "-".into()),
                resource.role.to_string(),
                notes.join("; "),
            ]
        })
        .collect();
    out.push_str(&indent(&table(&["NAME", "KIND", "GROUP", "NODE", "ROLE", "NOTES"], &rows)));
    if !view.failures.is_empty() {
        out.push_str("\nFailures:\n");
        for failure in &view.failures {
            let counts: Vec<String> = failure.counts.iter().map(|(operation, count)| format!("{operation}={count}")).collect();
            out.push_str(&format!(
                "  {} on {}: {}{}\n",
                failure.resource,
                failure.node,
                counts.join(", "),
                failure.reason.as_ref().map(|reason| format!(" ({reason})")).unwrap_or_default()
            ));
        }
    }
    if !view.fencing.is_empty() {
        out.push_str("\nFencing:\n");
        for fencing in &view.fencing {
            let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(fencing.time).unwrap_or(0)));
            out.push_str(&format!("  {} {} {} by {} at {when}\n", fencing.node, fencing.action, fencing.state, fencing.by));
            for attempt in &fencing.attempts {
                out.push_str(&format!("    {attempt}\n"));
            }
        }
    }
    if !view.decisions.is_empty() {
        out.push_str("\nLast decisions:\n");
        for decision in &view.decisions {
            let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(decision.time).unwrap_or(0)));
            let actions = if decision.actions.is_empty() { "no actions".to_string() } else { decision.actions.join("; ") };
            out.push_str(&format!("  {when} (revision {}): {actions}\n", decision.input_revision));
        }
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}
