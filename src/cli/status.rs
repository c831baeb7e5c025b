//! `pacer status`: nodes, resources, failures and the latest decisions, like crm_mon.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::api::yaml::to_yaml_string;
use crate::ops;
use crate::ops::live::Follower;
use crate::state::view::StatusView;
use crate::store::Store;

use super::output::table;
use super::{Global, OutputFormat, output};

#[derive(clap::Args, Debug)]
pub(super) struct StatusArgs {
    /// `table` (default) or `json` (a stable shape, see the README).
    #[arg(short, long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// How many of the latest decisions to show.
    #[arg(long, default_value_t = 5)]
    decisions: usize,
    /// Keep showing the status as it changes (at most once a second), until interrupted.
    #[arg(short, long)]
    watch: bool,
}

/// `pacer status`: the view as a crm_mon-like text, JSON or YAML.
pub(super) async fn status(global: &Global, args: &StatusArgs) -> anyhow::Result<u8> {
    let store = global.connect().await?;
    if args.watch {
        return watch(&store, args).await;
    }
    let view = read(&store, args.decisions).await?;
    print_view(&view, args.output)?;
    Ok(0)
}

fn print_view(view: &StatusView, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&view).context("encode status")?),
        OutputFormat::Yaml => print!("{}", to_yaml_string(&serde_json::to_value(view).context("encode status")?)),
        OutputFormat::Table | OutputFormat::Wide => print!("{}", render(view)),
    }
    Ok(())
}

/// `pacer status --watch`: the view again after every change, from a watch of the
/// cluster (nothing polls etcd but the decision history, read once per view). On a
/// terminal the screen is cleared between views; otherwise views follow each other,
/// separated by a line with the time.
async fn watch(store: &Store, args: &StatusArgs) -> anyhow::Result<u8> {
    use std::io::{IsTerminal, Write};
    let mut follower = Follower::start(store).await?;
    let terminal = std::io::stdout().is_terminal();
    let mut shown: Option<StatusView> = None;
    loop {
        if let Some(live) = follower.snapshot() {
            let view = ops::status::view_of(store, follower.cache(), &live, args.decisions).await.context("read the cluster")?;
            if shown.as_ref() != Some(&view) {
                if terminal {
                    print!("\x1b[2J\x1b[H");
                } else if shown.is_some() {
                    println!("--- {}", humantime::format_rfc3339_seconds(SystemTime::now()));
                }
                print_view(&view, args.output)?;
                std::io::stdout().flush().context("write the status")?;
                shown = Some(view);
            }
        }
        // At most one view a second; time alone changes it too (failure timeouts).
        tokio::time::sleep(Duration::from_secs(1)).await;
        follower.changed(Duration::from_secs(5)).await?;
    }
}

/// Reads the cluster at one revision and its view. Keys that do not decode are
/// skipped and named on stderr.
pub async fn read(store: &Store, decisions: usize) -> anyhow::Result<StatusView> {
    let read = ops::status::read(store, decisions).await.context("read the cluster")?;
    output::warn_skipped(read.skipped.iter().map(|(key, reason)| (key.as_str(), reason.as_str())));
    Ok(read.view)
}

/// The human form.
pub fn render(view: &StatusView) -> String {
    let mut out = String::new();
    out.push_str(&format!("Scheduler leader: {}\n\n", view.leader.as_deref().unwrap_or("none")));
    let online = view.nodes.iter().filter(|node| node.state == "online").count();
    out.push_str(&format!("Nodes ({} configured or seen, {online} online):\n", view.nodes.len()));
    let rows: Vec<Vec<String>> = view
        .nodes
        .iter()
        .map(|node| {
            let operations =
                node.operations.as_ref().map_or("-".to_string(), |ops| format!("{} running, {} queued (limit {})", ops.running, ops.queued, ops.limit));
            let self_fenced = match node.self_fencings.last() {
                None => "-".to_string(),
                Some(last) => format!("{} time(s), last at {}: {}", node.self_fencings.len(), epoch_text(last.time), last.cause),
            };
            vec![node.name.clone(), node.state.to_string(), operations, self_fenced]
        })
        .collect();
    out.push_str(&indent(&table(&["NODE", "STATE", "OPERATIONS", "SELF-FENCED"], &rows)));
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
    if !view.fencing_history.is_empty() {
        out.push_str("\nFencing history (pacer history fencing lists every attempt):\n");
        for attempt in &view.fencing_history {
            out.push_str(&format!("  {}\n", fence_attempt_line(attempt)));
        }
    }
    // The last outcome of a node the history has nothing of (a confirmation without
    // a request, fencing recorded before the history was kept).
    let unrecorded: Vec<_> = view.fencing.iter().filter(|fencing| !view.fencing_history.iter().any(|attempt| attempt.node == fencing.node)).collect();
    if !unrecorded.is_empty() {
        out.push_str("\nFencing:\n");
        for fencing in unrecorded {
            let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(fencing.time).unwrap_or(0)));
            out.push_str(&format!("  {} {} {} by {} at {when}\n", fencing.node, fencing.action, fencing.state, fencing.by));
            for attempt in &fencing.attempts {
                out.push_str(&format!("    {attempt}\n"));
            }
        }
    }
    if !view.requests.is_empty() {
        out.push_str("\nCleanups and refreshes waiting for their node's agent:\n");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        let rows: Vec<Vec<String>> = view
            .requests
            .iter()
            .map(|request| {
                let age = short_duration(now.saturating_sub(u64::try_from(request.requested).unwrap_or(0)));
                vec![request.node.clone(), request.kind.to_string(), request.resources.join(","), request.by.clone(), age]
            })
            .collect();
        out.push_str(&indent(&table(&["NODE", "KIND", "RESOURCES", "BY", "AGE"], &rows)));
    }
    if !view.constraints.is_empty() {
        out.push_str("\nConstraints made by commands (pacer clear removes them):\n");
        let now = SystemTime::now();
        let rows: Vec<Vec<String>> = view
            .constraints
            .iter()
            .map(|constraint| {
                let age = constraint
                    .created
                    .as_deref()
                    .and_then(|created| humantime::parse_rfc3339(created).ok())
                    .and_then(|created| now.duration_since(created).ok())
                    .map_or("-".to_string(), |age| short_duration(age.as_secs()));
                let expires = constraint.expires.as_deref().map_or("never".to_string(), |expires| {
                    match humantime::parse_rfc3339(expires).ok().and_then(|at| at.duration_since(now).ok()) {
                        Some(left) => format!("in {}", short_duration(left.as_secs().max(1))),
                        None => format!("{expires} (expired)"),
                    }
                });
                let mut notes = Vec::new();
                if constraint.keep {
                    notes.push("kept by --keep".to_string());
                }
                match constraint.state {
                    "done" => notes.push(format!("done: {} runs where asked; being removed", constraint.resource)),
                    "expired" => notes.push("expired; being removed".to_string()),
                    _ => {}
                }
                if let Some(note) = &constraint.note {
                    notes.push(format!("kept: {note}"));
                }
                let role = constraint.role.as_ref().map(|role| format!(" ({role})")).unwrap_or_default();
                vec![
                    constraint.name.clone(),
                    constraint.owner.clone(),
                    format!("{}{role}", constraint.resource),
                    constraint.node.clone(),
                    constraint.score.clone(),
                    constraint.created_by.clone().unwrap_or_else(|| "-".into()),
                    age,
                    expires,
                    notes.join("; "),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["NAME", "BY VERB", "RESOURCE", "NODE", "SCORE", "WHO", "AGE", "EXPIRES", "NOTES"], &rows)));
    }
    if !view.alerts.is_empty() {
        out.push_str("\nAlerts whose last delivery failed:\n");
        let rows: Vec<Vec<String>> = view
            .alerts
            .iter()
            .map(|alert| vec![alert.name.clone(), alert.failures.to_string(), alert.sequence.to_string(), epoch_text(alert.time), alert.reason.clone()])
            .collect();
        out.push_str(&indent(&table(&["ALERT", "FAILURES", "EVENT", "WHEN", "LAST REASON"], &rows)));
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

/// One fencing attempt on one line, as crm_mon's fencing history puts it:
/// `reboot of n2 failed: executor=n1, by=n1, requester=s1, requested=…, finished=…: why`.
pub(super) fn fence_attempt_line(attempt: &crate::state::fence_history::FenceAttemptView) -> String {
    let mut fields = vec![format!("executor={}", attempt.executor)];
    if let Some(by) = attempt.by.as_ref().filter(|by| **by != attempt.executor) {
        fields.push(format!("by={by}"));
    }
    if !attempt.devices.is_empty() {
        fields.push(format!("devices={}", attempt.devices.join(",")));
    }
    fields.push(format!("requester={}", attempt.requester));
    fields.push(format!("reason={:?}", attempt.reason));
    fields.push(format!("requested={}", epoch_text(attempt.requested)));
    if let Some(finished) = attempt.finished {
        fields.push(format!("finished={}", epoch_text(finished)));
    }
    let error = attempt.error.as_ref().map(|error| format!(": {error}")).unwrap_or_default();
    format!("{} of {} {}: {}{error}", attempt.action, attempt.node, attempt.state, fields.join(", "))
}

/// `45s`, `12m`, `3h`, `2d`: an age or a time left, to the largest whole unit.
fn short_duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

fn epoch_text(seconds: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))).to_string()
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}
