//! `pacer wait`: until a resource is started, stopped or promoted (anywhere, or on a
//! node), as the live snapshot shows it.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::resource::Role;
use crate::api::{Kind, Object, Spec};
use crate::runtime::{Scope, read_scope};
use crate::scheduler::current_placements;
use crate::scheduler::plan::Placement;
use crate::state::conditions::resource_named;
use crate::store::Store;

use super::OpsError;
use super::live::{Follower, Live};
use super::settle::until_on;

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// Every member (every primitive of a group) runs, in any role.
    Started,
    /// Nothing of it runs.
    Stopped,
    /// An instance of the promotable clone is promoted.
    Promoted,
}

/// What `wait` reports when the state is reached.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reached {
    pub resource: String,
    pub state: WaitFor,
    pub node: Option<String>,
    pub nodes: Vec<String>,
    pub seconds: f64,
}

/// Where each primitive runs now (`scheduler::current_placements`): its name and
/// placements.
type Current = [(String, Vec<Placement>)];

/// Whether `state` holds for the primitives `members` in `current` (where the
/// snapshot shows them), on `node` when given.
pub fn holds(current: &Current, members: &[String], state: WaitFor, node: Option<&str>) -> bool {
    let runs = |member: &String, promoted: bool| {
        current.iter().filter(|(name, _)| name == member).flat_map(|(_, placements)| placements).any(|placement| {
            placement.role != Role::Stopped && (!promoted || placement.role == Role::Promoted) && node.is_none_or(|node| placement.node == node)
        })
    };
    match state {
        WaitFor::Started => members.iter().all(|member| runs(member, false)),
        WaitFor::Stopped => members.iter().all(|member| !runs(member, false)),
        WaitFor::Promoted => members.iter().any(|member| runs(member, true)),
    }
}

/// The nodes where the members run now.
fn running_on(current: &Current, members: &[String]) -> Vec<String> {
    let mut nodes: Vec<String> = current
        .iter()
        .filter(|(name, _)| members.contains(name))
        .flat_map(|(_, placements)| placements)
        .filter(|placement| placement.role != Role::Stopped)
        .map(|placement| format!("{} {}", placement.node, placement.role.as_str()))
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The Resource, Group or FenceDevice named `name`, with its primitives.
pub fn find_resource(objects: &[Object], name: &str) -> Result<(Object, Vec<String>), OpsError> {
    let (object, members) = resource_named(objects, name)
        .ok_or_else(|| OpsError::NotFound(format!("resource {name} not found (no Resource, Group or FenceDevice of that name)")))?;
    Ok((object.clone(), members))
}

fn is_promotable(object: &Object) -> bool {
    let clone = match &object.spec {
        Spec::Resource(resource) => resource.clone.as_ref(),
        Spec::Group(group) => group.clone.as_ref(),
        _ => None,
    };
    clone.is_some_and(|clone| clone.promotable.is_some())
}

/// How long `wait_for` keeps starting its follower again while the spec changes the
/// waited resource's family under it; after that it follows the whole cluster.
const RESCOPE_WITHIN: Duration = Duration::from_secs(2);

/// Waits until `name` is in `state` (on `node`), at most `timeout`.
pub async fn wait_for(store: &Store, name: &str, state: WaitFor, node: Option<&str>, timeout: Duration) -> Result<Reached, OpsError> {
    // The follower's first listing is what the name and node are checked against: a
    // listing of the whole cluster before it was a second one (0.4–0.7 s each at 300
    // nodes × 10,000 resources, in every move `pacer wait` followed). It keeps only
    // the resource's family (`runtime::Scope`): the other resources' objects and
    // statuses are not decoded, on the listing nor on any change the agents write.
    let started = Instant::now();
    let mut scope = Some(read_scope(store, name).await?);
    let (follower, snapshot) = loop {
        let follower = match scope.clone() {
            Some(scope) => Follower::start_scoped(store, scope).await?,
            None => Follower::start(store).await?,
        };
        let snapshot = match follower.snapshot() {
            Some(live) => live.snapshot,
            // A large apply not rolled forward: read once more, which finishes it.
            None => Live::read(store).await?.live.snapshot,
        };
        // The groups came in with the listing (a scoped cache keeps them all): when a
        // change between the two reads made another family, follow that one instead
        // (for `RESCOPE_WITHIN`; then the whole cluster, rather than race a busy spec).
        let listed = Scope::of(&snapshot.objects, name);
        match scope {
            Some(followed) if followed != listed => scope = if started.elapsed() < RESCOPE_WITHIN { Some(listed) } else { None },
            _ => break (follower, snapshot),
        }
    };
    let (object, members) = find_resource(&snapshot.objects, name)?;
    if state == WaitFor::Promoted && !is_promotable(&object) {
        return Err(OpsError::Refused(format!("{name} is not a promotable clone: it is never promoted")));
    }
    if let Some(node) = node
        && !snapshot.observed.nodes.contains_key(node)
        && !snapshot.objects.iter().any(|object| object.kind() == Kind::Node && object.name().as_str() == node)
    {
        return Err(OpsError::NotFound(format!("node {node} is not a member of the cluster")));
    }
    let mut nodes = Vec::new();
    drop(snapshot);
    let waited = until_on(
        follower,
        started,
        0,
        timeout,
        |live| current_placements(&live.snapshot),
        |_, current| {
            let done = holds(current, &members, state, node);
            if done {
                nodes = running_on(current, &members);
            }
            done
        },
        |_, current| {
            let now = running_on(current, &members);
            if now.is_empty() { format!("{name} runs nowhere") } else { format!("{name} runs on {}", now.join(", ")) }
        },
    )
    .await?;
    Ok(Reached { resource: name.to_string(), state, node: node.map(str::to_string), nodes, seconds: waited.elapsed.as_secs_f64() })
}
