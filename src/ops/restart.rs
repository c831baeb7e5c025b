//! `pacer restart RSC [--node NODE]` (Pacemaker's `crm_resource --restart`): stop,
//! wait until stopped, undo, wait until started again. Everywhere: the resource's
//! target role is set to Stopped and then put back as it was. On one node of a
//! clone: a -INFINITY `Location` owned by the verb bans it from that node, and is
//! deleted again. Whatever happens once the stop is written — the stop times out,
//! the command is interrupted — the change is undone before returning, and what was
//! done is said.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::resource::Role;
use crate::api::{Kind, Name, Object, ObjectKey};
use crate::runtime::{LiveSnapshot, load};
use crate::scheduler::Plan;
use crate::store::Store;

use super::edit::{self, annotations};
use super::flags::{Target, check_member, meta_mut, resolve};
use super::live::Live;
use super::settle::{settled, until};
use super::{OpsError, now_secs};

/// The owner annotation of the ban a restart on one node makes.
pub const RESTART_OWNER: &str = "restart";

/// What `restart` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartOutcome {
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where it ran before.
    pub ran_on: Vec<String>,
    /// Where it runs once restarted (empty for a dry run).
    pub runs_on: Vec<String>,
    /// What was done, in order.
    pub steps: Vec<String>,
    pub dry_run: bool,
}

/// How the resource is stopped, and so how that is undone.
enum Stopper {
    /// `meta.targetRole: Stopped`, then back to `original`.
    TargetRole { original: Option<Role> },
    /// A -INFINITY `Location` for the node, then deleted.
    Ban { location: String, node: String },
}

/// Nodes where the whole target runs: every one of its primitives active there.
fn active_nodes(live: &LiveSnapshot, target: &Target) -> BTreeSet<String> {
    let mut by_node: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for status in live.reports.statuses.iter().filter(|status| target.owns(status) && status.role.is_active()) {
        by_node.entry(status.node.as_str()).or_default().insert(status.name.as_str());
    }
    by_node.into_iter().filter(|(_, names)| names.len() == target.primitives.len()).map(|(node, _)| node.to_string()).collect()
}

/// Nodes where any of the target's primitives may run (a failed or unknown one too).
fn possibly_active_nodes(live: &LiveSnapshot, target: &Target) -> BTreeSet<String> {
    live.reports.statuses.iter().filter(|status| target.owns(status) && status.may_be_active()).map(|status| status.node.clone()).collect()
}

/// `pacer restart`: stops the resource (everywhere, or on `node` only), waits until it
/// is stopped, undoes the stop and waits until it runs again, all within `timeout`.
/// `interrupted` ending (Ctrl-C) cuts the waits short; the stop is undone all the same.
pub async fn restart(
    store: &Store,
    name: &str,
    node: Option<&str>,
    timeout: Duration,
    dry_run: bool,
    interrupted: impl Future<Output = ()>,
) -> Result<RestartOutcome, OpsError> {
    let started = Instant::now();
    let live = Live::read(store).await?;
    let target = resolve(&live.cache, name)?;
    if target.kind == Kind::FenceDevice {
        return Err(OpsError::Refused(format!("{name} is a fence device: node agents do not run it, there is nothing to restart")));
    }
    if let Some(node) = node {
        check_member(&live.cache, node)?;
    }
    let mut object = target.object.clone();
    if meta_mut(&mut object).is_some_and(|meta| meta.is_managed == Some(false)) {
        return Err(OpsError::Refused(format!("{name} is unmanaged: the cluster would not stop it (`pacer manage {name}` first)")));
    }
    let ran_on: Vec<String> = active_nodes(&live.live, &target).into_iter().collect();
    if ran_on.is_empty() {
        return Err(OpsError::Refused(format!("{name} is not running: nothing to restart")));
    }
    if let Some(node) = node
        && !ran_on.iter().any(|running| running == node)
    {
        return Err(OpsError::Refused(format!("{name} does not run on {node} (it runs on {})", ran_on.join(", "))));
    }
    let stopper = match node {
        // One node of a clone: banned from that node for the while.
        Some(node) if target.cloned => {
            let location = ban_name(name, node);
            let key = ObjectKey { kind: Kind::Location, name: Name::from(location.as_str()) };
            if live.cache.objects().contains_key(&key) {
                return Err(OpsError::Refused(format!(
                    "Location {location} exists: a restart of {name} on {node} is under way, or one was interrupted (delete it with `pacer delete location {location}`)"
                )));
            }
            Stopper::Ban { location, node: node.to_string() }
        }
        // Not a clone: it runs only there; stopped and started like everywhere.
        _ => {
            let mut object = target.object.clone();
            let original = meta_mut(&mut object).and_then(|meta| meta.target_role);
            Stopper::TargetRole { original }
        }
    };
    let mut outcome = RestartOutcome { resource: name.to_string(), node: node.map(str::to_string), ran_on, runs_on: Vec::new(), steps: Vec::new(), dry_run };
    if dry_run {
        outcome.steps = match &stopper {
            Stopper::TargetRole { .. } => vec![
                format!("would set spec.meta.targetRole: Stopped on {}", target.object.key()),
                "would wait until it is stopped everywhere".to_string(),
                "would put spec.meta.targetRole back, and wait until it runs again".to_string(),
            ],
            Stopper::Ban { location, node } => vec![
                format!("would create Location {location} (-INFINITY for {node})"),
                format!("would wait until it is stopped on {node}"),
                format!("would delete Location {location}, and wait until it runs again"),
            ],
        };
        return Ok(outcome);
    }
    tokio::pin!(interrupted);
    let deadline = started + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());

    // Stop.
    let stop = match &stopper {
        Stopper::TargetRole { .. } => {
            let mut object = target.object.clone();
            if let Some(meta) = meta_mut(&mut object) {
                meta.target_role = Some(Role::Stopped);
            }
            edit::write(store, &[object], Vec::new(), false, "pacer restart")
                .await
                .map(|report| (report.revision, format!("set spec.meta.targetRole: Stopped on {}", target.object.key())))
        }
        Stopper::Ban { location, node } => match ban(location, name, node) {
            Ok(object) => edit::write(store, &[object], Vec::new(), false, "pacer restart")
                .await
                .map(|report| (report.revision, format!("created Location {location} (-INFINITY for {node})"))),
            Err(error) => Err(error),
        },
    };
    let stop_revision = match stop {
        Ok((revision, step)) => {
            outcome.steps.push(step);
            revision
        }
        // etcd failed to answer: the stop may have landed all the same. Undo it (the
        // undo is harmless if it did not) before saying so.
        Err(error @ OpsError::Store(_)) => {
            let _ = undo(store, name, &stopper).await;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    let scope = match &stopper {
        Stopper::Ban { node, .. } => Some(node.clone()),
        Stopper::TargetRole { .. } => None,
    };
    let stopped = |live: &LiveSnapshot, _: &Plan| {
        let nodes = possibly_active_nodes(live, &target);
        scope.as_ref().map_or(nodes.is_empty(), |node| !nodes.contains(node))
    };
    // What the last look at the cluster found missing, for the account of a timeout.
    let missing = std::sync::Mutex::new(String::new());
    let still = |live: &LiveSnapshot, _: &Plan| {
        let nodes: Vec<String> = possibly_active_nodes(live, &target).into_iter().collect();
        note(&missing, format!("{name} still runs on {}", nodes.join(", ")));
        String::new()
    };
    let waited = tokio::select! {
        waited = until(store, stop_revision.unwrap_or(0), left(), stopped, still) => waited.map(|_| ()),
        () = &mut interrupted => Err(OpsError::NotReached("interrupted".to_string())),
    };
    match &waited {
        Ok(()) => outcome.steps.push(match &scope {
            Some(node) => format!("{name} stopped on {node}"),
            None => format!("{name} stopped"),
        }),
        Err(OpsError::NotReached(reason)) if !noted(&missing).is_empty() && reason != "interrupted" => {
            outcome.steps.push(format!("not stopped within {}: {}", humantime::format_duration(timeout), noted(&missing)));
        }
        Err(error) => outcome.steps.push(format!("not stopped: {error}")),
    }

    // Undo the stop, whatever happened.
    let undo_revision = match undo(store, name, &stopper).await {
        Ok((revision, step)) => {
            outcome.steps.push(step);
            revision
        }
        Err(error) => {
            outcome.steps.push(format!("could not undo the stop: {error}"));
            let fix = match &stopper {
                Stopper::TargetRole { original: None } => format!("`pacer enable {name}`"),
                Stopper::TargetRole { original: Some(role) } => format!("setting spec.meta.targetRole of {name} back to {}", role.as_str()),
                Stopper::Ban { location, .. } => format!("`pacer delete location {location}`"),
            };
            return Err(OpsError::NotReached(format!("{}; undo it with {fix}", outcome.steps.join("; "))));
        }
    };
    waited.map_err(|error| match error {
        // etcd failing during the wait is an error (exit 2), not a refusal.
        OpsError::Store(store) => OpsError::Store(store),
        _ => OpsError::NotReached(outcome.steps.join("; ")),
    })?;

    // Start again.
    let wanted: BTreeSet<String> = match &scope {
        Some(node) => BTreeSet::from([node.clone()]),
        None => outcome.ran_on.iter().cloned().collect(),
    };
    let mut runs_on = BTreeSet::new();
    note(&missing, String::new());
    let restarted = tokio::select! {
        waited = until(
            store,
            undo_revision.unwrap_or(0),
            left(),
            |live, plan| {
                runs_on = active_nodes(live, &target);
                wanted.is_subset(&runs_on) || (settled(plan) && !runs_on.is_empty())
            },
            |live, _| {
                let nodes: Vec<String> = active_nodes(live, &target).into_iter().collect();
                note(&missing, if nodes.is_empty() { format!("{name} is not running yet") } else { format!("{name} runs on {} only", nodes.join(", ")) });
                String::new()
            },
        ) => waited.map(|_| ()),
        () = &mut interrupted => Err(OpsError::NotReached("interrupted".to_string())),
    };
    match restarted {
        Ok(()) => {
            outcome.runs_on = runs_on.into_iter().collect();
            outcome.steps.push(format!("{name} runs again on {}", outcome.runs_on.join(", ")));
            Ok(outcome)
        }
        Err(OpsError::NotReached(reason)) if !noted(&missing).is_empty() && reason != "interrupted" => {
            outcome.steps.push(format!("not started again within {}: {}", humantime::format_duration(timeout), noted(&missing)));
            Err(OpsError::NotReached(outcome.steps.join("; ")))
        }
        Err(error) => {
            outcome.steps.push(format!("not started again: {error}"));
            Err(OpsError::NotReached(outcome.steps.join("; ")))
        }
    }
}

/// The name of the ban a restart on one node makes (an object name, whatever the
/// lengths of the resource's and the node's).
fn ban_name(resource: &str, node: &str) -> String {
    let name = format!("{resource}-restart-{node}");
    if Name::is_valid(&name) { name } else { format!("restart-{}-{}", now_secs(), std::process::id()) }
}

/// The -INFINITY `Location` that keeps `resource` off `node` while it restarts there.
fn ban(location: &str, resource: &str, node: &str) -> Result<Object, OpsError> {
    let value = serde_json::json!({
        "kind": "Location",
        "metadata": {
            "name": location,
            "annotations": {
                annotations::OWNER: RESTART_OWNER,
                annotations::CREATED_BY: edit::operator(),
            },
        },
        "spec": {"resource": resource, "node": node, "score": "-INFINITY"},
    });
    Object::from_value(value).map_err(|error| OpsError::Refused(format!("cannot make the ban {location}: {error}")))
}

/// Undoes the stop (tried three times, a second apart, should etcd hiccup): the
/// revision of the change (none if nothing was left to undo) and what was done.
async fn undo(store: &Store, name: &str, stopper: &Stopper) -> Result<(Option<i64>, String), OpsError> {
    let mut last = None;
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match undo_once(store, name, stopper).await {
            Ok(done) => return Ok(done),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| OpsError::NotReached("undo: no attempt made".to_string())))
}

async fn undo_once(store: &Store, name: &str, stopper: &Stopper) -> Result<(Option<i64>, String), OpsError> {
    let cache = load(store).await?;
    match stopper {
        Stopper::TargetRole { original } => {
            let Ok(target) = resolve(&cache, name) else { return Ok((None, format!("{name} was deleted meanwhile: nothing to put back"))) };
            let mut object = target.object.clone();
            let Some(meta) = meta_mut(&mut object) else { return Ok((None, format!("{name} is no longer a resource: nothing to put back"))) };
            // Only what this restart set is put back: another change is someone's.
            if meta.target_role != Some(Role::Stopped) {
                return Ok((None, format!("spec.meta.targetRole of {name} was changed by someone else meanwhile: left as it is")));
            }
            meta.target_role = *original;
            let revision = edit::write(store, &[object], Vec::new(), false, "pacer restart").await?.revision;
            let value = original.map_or("(removed)".to_string(), |role| role.as_str().to_string());
            Ok((revision, format!("put spec.meta.targetRole back: {value}")))
        }
        Stopper::Ban { location, .. } => {
            let key = ObjectKey { kind: Kind::Location, name: Name::from(location.as_str()) };
            if !cache.objects().contains_key(&key) {
                return Ok((None, format!("Location {location} was deleted meanwhile")));
            }
            let revision = edit::write(store, &[], vec![key], false, "pacer restart").await?.revision;
            Ok((revision, format!("deleted Location {location}")))
        }
    }
}

/// Keeps what a wait found missing (a `Mutex`, so the verb's future is `Send` and the
/// console can run it on any worker).
fn note(missing: &std::sync::Mutex<String>, text: String) {
    if let Ok(mut kept) = missing.lock() {
        *kept = text;
    }
}

fn noted(missing: &std::sync::Mutex<String>) -> String {
    missing.lock().map(|kept| kept.clone()).unwrap_or_default()
}
