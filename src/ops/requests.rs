//! `pacer cleanup` and `pacer refresh` (Pacemaker's `crm_resource --cleanup` and
//! `--refresh`): a node's statuses are its agent's alone, so the command writes a
//! request per node (`requests/<node>/<id>`, `api::records::RequestRecord`) naming
//! the statuses to act on; the agent applies it (`agent::reconcile::Reconciler::
//! take_request`), probes them again and deletes the request once their new statuses
//! are written. Cleanup names only the instances with a failure it covers; refresh
//! names every instance recorded. A request for a node whose agent is down waits for
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::records::{RequestKind, RequestRecord, ResourceStatus, split_fail_count_key};
use crate::api::resource::OperationName;
use crate::runtime::{ClusterCache, load};
use crate::store::Store;
use crate::store::requests::NewRequest;

use super::flags::{Target, check_member, resolve};
use super::live::Follower;
use super::settle::settle;
use super::{OpsError, edit, now_secs};

/// What to clean up or refresh.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub kind: RequestKind,
    /// A resource, group or fence device; every resource when absent.
    pub resource: Option<String>,
    /// One node; every node when absent.
    pub node: Option<String>,
    /// Cleanup of one operation's failures (`monitor`, `start`…).
    pub operation: Option<String>,
    /// With `operation`: only at this interval.
    pub interval_ms: Option<u64>,
}

/// One instance on one node a request acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Touched {
    pub node: String,
    /// The status id: the primitive, or a clone instance (`name:N`).
    pub id: String,
    /// The fail counts it had (`monitor_10000=1`, `start_0=INFINITY`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_counts: Vec<String>,
    /// The node's agent runs now; otherwise the request waits until it returns.
    pub online: bool,
}

/// What `cleanup` or `refresh` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOutcome {
    pub kind: &'static str,
    pub touched: Vec<Touched>,
    /// The request ids written, by node.
    pub requests: BTreeMap<String, String>,
    pub dry_run: bool,
    /// The etcd revision the requests landed at; none for a dry run.
    pub revision: Option<i64>,
    /// Nodes whose agent is down: their requests wait for it.
    pub waiting_for: Vec<String>,
    /// Set when there was nothing to act on (nothing was written): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing: Option<String>,
}

impl RequestOutcome {
    /// The outcome in words: each instance and node touched, and nodes whose agent is down.
    pub fn describe(&self) -> String {
        let verb = match (self.kind, self.dry_run) {
            ("cleanup", true) => "would clean up",
            ("cleanup", false) => "cleanup requested for",
            (_, true) => "would refresh",
            (_, false) => "refresh requested for",
        };
        let mut text = format!("{verb}:\n");
        for touched in &self.touched {
            let counts = if touched.fail_counts.is_empty() { String::new() } else { format!(" ({})", touched.fail_counts.join(", ")) };
            let down = if touched.online { "" } else { " — node down: applied when its agent returns" };
            text.push_str(&format!("  {} on {}{counts}{down}\n", touched.id, touched.node));
        }
        if !self.waiting_for.is_empty() && !self.dry_run {
            text.push_str(&format!("the requests for {} wait until their agents return\n", self.waiting_for.join(", ")));
        }
        text
    }
}

/// The operations a cleanup may name.
fn operation_names() -> Vec<String> {
    let names = [
        OperationName::Monitor,
        OperationName::Start,
        OperationName::Stop,
        OperationName::Promote,
        OperationName::Demote,
        OperationName::MigrateTo,
        OperationName::MigrateFrom,
        OperationName::Notify,
        OperationName::Reload,
        OperationName::ReloadAgent,
    ];
    names.iter().map(|name| name.as_str().to_string()).collect()
}

/// The statuses a request touches: pure, on what was read (`statuses` in (node, id)
/// order).
pub fn plan<'a>(
    spec: &RequestSpec,
    target: Option<&Target>,
    statuses: impl IntoIterator<Item = &'a ResourceStatus>,
    online: &BTreeSet<String>,
) -> Vec<Touched> {
    let probe = RequestRecord {
        kind: spec.kind,
        resources: Vec::new(),
        operation: spec.operation.clone(),
        interval_ms: spec.interval_ms,
        requested: 0,
        by: String::new(),
    };
    let touched: Vec<Touched> = statuses
        .into_iter()
        .filter(|status| spec.node.as_ref().is_none_or(|node| *node == status.node))
        .filter(|status| target.is_none_or(|target| target.owns(status)))
        .filter(|status| spec.kind == RequestKind::Refresh || probe.finds_failures(status))
        .map(|status| Touched {
            node: status.node.clone(),
            id: status.id.clone(),
            fail_counts: status
                .fail_counts
                .iter()
                .filter(|(key, _)| {
                    spec.kind == RequestKind::Refresh || split_fail_count_key(key).is_some_and(|(operation, interval)| probe.covers(operation, interval))
                })
                .map(|(key, count)| if *count >= crate::api::records::FAIL_COUNT_INFINITY { format!("{key}=INFINITY") } else { format!("{key}={count}") })
                .collect(),
            online: online.contains(&status.node),
        })
        .collect();
    touched
}

/// What to say when a request finds nothing to act on.
fn nothing_to_do(spec: &RequestSpec, target: Option<&Target>) -> String {
    let what = target.map_or_else(|| "any resource".to_string(), |target| target.name.clone());
    let on = spec.node.as_ref().map(|node| format!(" on {node}")).unwrap_or_default();
    let operation = match (&spec.operation, spec.interval_ms) {
        (Some(operation), Some(interval)) => format!(" for {operation} at interval {}", crate::api::Duration::from_millis(interval)),
        (Some(operation), None) => format!(" for {operation}"),
        _ => String::new(),
    };
    match spec.kind {
        RequestKind::Cleanup => format!("nothing to clean up: no failures recorded of {what}{on}{operation}"),
        RequestKind::Refresh => format!("nothing to refresh: nothing recorded of {what}{on}"),
    }
}

/// Checks the request against the cluster as read: the resource and node exist, the
/// operation is one there is.
fn check(spec: &RequestSpec, cache: &ClusterCache) -> Result<Option<Target>, OpsError> {
    let target = spec.resource.as_deref().map(|name| resolve(cache, name)).transpose()?;
    if let Some(node) = &spec.node {
        check_member(cache, node)?;
    }
    if let Some(operation) = &spec.operation {
        let names = operation_names();
        if !names.contains(operation) {
            return Err(OpsError::Refused(format!("unknown operation {operation} (one of {})", names.join(", "))));
        }
    }
    Ok(target)
}

/// `pacer cleanup` / `pacer refresh`: finds what to act on, writes one request per
/// node. Nothing is written for a dry run, nor when there is nothing to act on
/// (`RequestOutcome::nothing` says so: a refusal for the caller, not an error).
pub async fn request(store: &Store, spec: &RequestSpec, dry_run: bool) -> Result<RequestOutcome, OpsError> {
    let cache = load(store).await?;
    let target = check(spec, &cache)?;
    let online: BTreeSet<String> = cache.heartbeats().keys().cloned().collect();
    let touched = plan(spec, target.as_ref(), cache.statuses().values().map(std::sync::Arc::as_ref), &online);
    let nothing = touched.is_empty().then(|| nothing_to_do(spec, target.as_ref()));
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for touched in &touched {
        by_node.entry(touched.node.clone()).or_default().push(touched.id.clone());
    }
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_millis()).unwrap_or_default();
    let id = format!("{millis}-{}-{}", std::process::id(), spec.kind.as_str());
    let by = edit::operator();
    let requested = now_secs();
    let new: Vec<NewRequest> = by_node
        .into_iter()
        .map(|(node, resources)| {
            let record =
                RequestRecord { kind: spec.kind, resources, operation: spec.operation.clone(), interval_ms: spec.interval_ms, requested, by: by.clone() };
            (node, id.clone(), record)
        })
        .collect();
    let requests = new.iter().map(|(node, id, _)| (node.clone(), id.clone())).collect();
    let waiting_for = new.iter().map(|(node, _, _)| node.clone()).filter(|node| !online.contains(node)).collect();
    let revision = if dry_run || new.is_empty() { None } else { Some(store.create_requests(&new).await?) };
    Ok(RequestOutcome { kind: spec.kind.as_str(), touched, requests, dry_run, revision, waiting_for, nothing })
}

/// `--wait`: until every request written is consumed by its agent (at most
/// `timeout`), then until the cluster has settled in what is left of it.
pub async fn wait_consumed(store: &Store, outcome: &RequestOutcome, timeout: Duration) -> Result<(), OpsError> {
    let started = Instant::now();
    let Some(revision) = outcome.revision else { return Ok(()) };
    let mut follower = Follower::start(store).await?;
    loop {
        let cache = follower.cache();
        let left: Vec<&String> =
            outcome.requests.iter().filter(|(node, id)| cache.requests().contains_key(&((*node).clone(), (*id).clone()))).map(|(node, _)| node).collect();
        if cache.revision() >= revision && left.is_empty() {
            break;
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            let down: Vec<&str> = left.iter().filter(|node| !cache.heartbeats().contains_key(node.as_str())).map(|node| node.as_str()).collect();
            let why = if down.is_empty() { String::new() } else { format!(" ({} down: the request waits for its agent)", down.join(", ")) };
            let nodes: Vec<&str> = left.iter().map(|node| node.as_str()).collect();
            return Err(OpsError::NotReached(format!(
                "not reached within {}: the {} request is not yet applied on {}{why}",
                humantime::format_duration(timeout),
                outcome.kind,
                nodes.join(", ")
            )));
        }
        follower.changed((timeout - elapsed).min(Duration::from_secs(1))).await?;
    }
    let from = follower.cache().revision();
    settle(store, from, timeout.saturating_sub(started.elapsed())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::{Definition, ExecStatus, ObservedRole, OperationRecord};

    fn status(node: &str, id: &str, role: ObservedRole, fail_counts: &[(&str, u32)]) -> ResourceStatus {
        let failed = |operation: &str, interval_ms| OperationRecord {
            operation: operation.into(),
            interval_ms,
            call_id: 3,
            rc: 7,
            expected_rc: 0,
            status: ExecStatus::Done,
            last_rc_change: None,
            migrate_source: None,
            migrate_target: None,
            digest: None,
            restart_digest: None,
        };
        let history = fail_counts.iter().filter_map(|(key, _)| split_fail_count_key(key)).map(|(operation, interval)| failed(operation, interval)).collect();
        ResourceStatus {
            id: id.into(),
            name: id.split(':').next().unwrap_or(id).into(),
            group: None,
            clone: None,
            node: node.into(),
            role,
            definition: std::sync::Arc::new(Definition {
                agent: "ocf:heartbeat:Dummy".parse().expect("agent"),
                params: BTreeMap::new(),
                secret_files: BTreeMap::new(),
                meta: BTreeMap::new(),
                operations: vec![],
            }),
            history,
            failures: fail_counts.len() as u32,
            started_after: vec![],
            fail_counts: fail_counts.iter().map(|(key, count)| (key.to_string(), *count)).collect(),
            last_failure: None,
            failure_reason: None,
            pending: None,
            notice: None,
            acks: BTreeMap::new(),
        }
    }

    fn statuses(list: Vec<ResourceStatus>) -> BTreeMap<(String, String), ResourceStatus> {
        list.into_iter().map(|status| ((status.node.clone(), status.id.clone()), status)).collect()
    }

    fn spec(kind: RequestKind, node: Option<&str>, operation: Option<&str>) -> RequestSpec {
        RequestSpec { kind, resource: None, node: node.map(str::to_string), operation: operation.map(str::to_string), interval_ms: None }
    }

    fn target(name: &str, primitives: &[&str]) -> Target {
        let object =
            crate::api::Object::from_value(serde_json::json!({"kind": "Group", "metadata": {"name": name}, "spec": {"members": primitives}})).expect("a group");
        Target { kind: crate::api::Kind::Group, name: name.into(), primitives: primitives.iter().map(|p| p.to_string()).collect(), cloned: false, object }
    }

    fn ids(touched: &[Touched]) -> Vec<String> {
        touched.iter().map(|touched| format!("{}@{}", touched.id, touched.node)).collect()
    }

    #[test]
    fn cleanup_names_only_instances_with_failures_refresh_names_all() {
        let all = statuses(vec![
            status("n1", "web", ObservedRole::Started, &[("monitor_10000", 1)]),
            status("n2", "web", ObservedRole::Stopped, &[]),
            status("n1", "db:0", ObservedRole::Failed, &[]),
            status("n2", "db:1", ObservedRole::Stopped, &[("start_0", crate::api::records::FAIL_COUNT_INFINITY)]),
        ]);
        let online = BTreeSet::from(["n1".to_string()]);
        let cleaned = plan(&spec(RequestKind::Cleanup, None, None), None, all.values(), &online);
        assert_eq!(ids(&cleaned), ["db:0@n1", "web@n1", "db:1@n2"]);
        assert_eq!(cleaned[2].fail_counts, ["start_0=INFINITY"]);
        assert!(!cleaned[2].online && cleaned[0].online);
        let refreshed = plan(&spec(RequestKind::Refresh, None, None), None, all.values(), &online);
        assert_eq!(refreshed.len(), 4);
        // A group acts on its members' instances; a node filter on that node only.
        let group = target("stack", &["db"]);
        let on_n2 = plan(&spec(RequestKind::Cleanup, Some("n2"), None), Some(&group), all.values(), &online);
        assert_eq!(ids(&on_n2), ["db:1@n2"]);
    }

    #[test]
    fn cleanup_of_one_operation_and_nothing_to_clean() {
        let all = statuses(vec![status("n1", "web", ObservedRole::Started, &[("monitor_10000", 2), ("start_0", 1)])]);
        let online = BTreeSet::new();
        let monitor = plan(&spec(RequestKind::Cleanup, None, Some("monitor")), None, all.values(), &online);
        assert_eq!(monitor[0].fail_counts, ["monitor_10000=2"]);
        let mut at_5s = spec(RequestKind::Cleanup, None, Some("monitor"));
        at_5s.interval_ms = Some(5_000);
        assert!(plan(&at_5s, None, all.values(), &online).is_empty(), "no monitor failure at 5 s");
        assert_eq!(nothing_to_do(&at_5s, None), "nothing to clean up: no failures recorded of any resource for monitor at interval 5s");
        let web = target("web", &["web"]);
        let on_n2 = spec(RequestKind::Cleanup, Some("n2"), None);
        assert!(plan(&on_n2, Some(&web), all.values(), &online).is_empty());
        assert_eq!(nothing_to_do(&on_n2, Some(&web)), "nothing to clean up: no failures recorded of web on n2");
    }

    #[test]
    fn cleanup_may_name_every_operation_a_resource_has() {
        let names = operation_names();
        for name in ["monitor", "start", "stop", "promote", "demote", "migrate_to", "migrate_from", "notify"] {
            assert!(names.contains(&name.to_string()), "{names:?}");
        }
    }
}
