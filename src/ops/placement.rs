//! `pacer move`, `pacer ban` and `pacer clear`: the constraints of `ops::constraints`
//! made and removed on the live cluster.
//!
//! Each verb reads the cluster once (`Live::read`), checks its input against it (the
//! resource, the node, clone or not), and writes one all-or-nothing change through
//! `store::apply` with every object it read as a precondition (a created constraint:
//! still absent; a replaced or deleted one: still at the revision read). `move` first
//! runs the proposed change through `schedule` on the live snapshot and refuses,
//! writing nothing, unless the resource would then run where asked.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::api::manifest::{Loaded, Source, load};
use crate::api::resource::Role;
use crate::api::yaml::to_yaml_string;
use crate::api::{Duration, Kind, Name, Object, ObjectKey, Score, Spec, Timestamp};
use crate::scheduler::plan::Plan;
use crate::scheduler::schedule;
use crate::scheduler::snapshot::{NodeLiveness, Snapshot};
use crate::store::Store;
use crate::store::apply::{ApplyOutcome, ApplyRequest, apply};

use super::constraints::{Owner, VerbConstraint, Wish, ban_name, location_object, prefer_name, verb_constraints};
use super::edit::operator;
use super::live::Live;
use super::settle::{Waited, pending, settle, until};
use super::{OpsError, now_secs};

/// `pacer move RSC [NODE]`.
#[derive(Clone, Debug, Default)]
pub struct MoveRequest {
    pub resource: String,
    /// Where to; without it, away from the node it runs on now.
    pub node: Option<String>,
    /// The constraint expires this long from now.
    pub lifetime: Option<Duration>,
    /// Move the promoted instance of a promotable clone.
    pub promoted: bool,
    /// Leave the constraint in place once the resource has moved.
    pub keep: bool,
    pub dry_run: bool,
}

/// `pacer ban RSC [NODE]`.
#[derive(Clone, Debug, Default)]
pub struct BanRequest {
    pub resource: String,
    /// From where; without it, the node it runs on now.
    pub node: Option<String>,
    pub lifetime: Option<Duration>,
    /// Ban only the promoted role (a promotable clone).
    pub promoted: bool,
    pub dry_run: bool,
}

/// `pacer clear RSC`.
#[derive(Clone, Debug, Default)]
pub struct ClearRequest {
    pub resource: String,
    /// Only the constraints about this node.
    pub node: Option<String>,
    /// Only the constraints that have expired.
    pub expired: bool,
    pub dry_run: bool,
}

/// A constraint as the verbs report it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintSummary {
    pub name: String,
    /// `move` or `ban`.
    pub owner: &'static str,
    pub resource: String,
    pub node: String,
    pub score: String,
    pub role: Option<&'static str>,
    /// RFC 3339, UTC.
    pub expires: Option<String>,
    pub keep: bool,
}

impl ConstraintSummary {
    fn of(constraint: &VerbConstraint) -> ConstraintSummary {
        ConstraintSummary {
            name: constraint.name.as_str().to_string(),
            owner: constraint.owner.as_str(),
            resource: constraint.resource.clone(),
            node: constraint.node.clone(),
            score: constraint.score.to_string(),
            role: constraint.role.map(Role::as_str),
            expires: constraint.expires.map(|expires| expires.to_string()),
            keep: constraint.keep,
        }
    }
}

/// What a verb did (or, for a dry run, would do): its JSON form is `-o json`'s.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementChange {
    /// `move`, `ban` or `clear`.
    pub verb: &'static str,
    pub resource: String,
    /// Constraints created or replaced.
    pub written: Vec<ConstraintSummary>,
    /// Constraints deleted.
    pub removed: Vec<ConstraintSummary>,
    pub dry_run: bool,
    /// The etcd revision the change landed at (none for a dry run).
    pub revision: Option<i64>,
    /// What the decision after the change will do with the resource, in words.
    pub outcome: Option<String>,
    /// Things worth saying that are not errors (a ban that leaves the resource nowhere
    /// to run).
    pub notices: Vec<String>,
    /// Seconds `--wait` waited, once it has.
    pub waited_seconds: Option<f64>,
    /// For `move`: where it was asked to run (what `--wait` waits for).
    #[serde(skip)]
    pub wish: Option<Wish>,
}

impl PlacementChange {
    /// The change in words: one line per constraint written or deleted, then what follows.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let dry = if self.dry_run { " (dry run: nothing written)" } else { "" };
        for written in &self.written {
            let role = if written.role.is_some() { " (promoted)" } else { "" };
            let relation = if written.score.starts_with('-') { "banned from" } else { "prefers" };
            let expiry = written.expires.as_ref().map(|expires| format!(", expires {expires}")).unwrap_or_default();
            let lasts = match (written.owner, written.keep) {
                ("move", false) => format!("; removed by the cluster once {} runs where asked", written.resource),
                _ => String::new(),
            };
            out.push_str(&format!(
                "Location/{} written: {}{role} {relation} {} ({}){expiry}{lasts}{dry}\n",
                written.name, written.resource, written.node, written.score
            ));
        }
        for removed in &self.removed {
            out.push_str(&format!("Location/{} deleted: made by pacer {} for {} on {}{dry}\n", removed.name, removed.owner, removed.resource, removed.node));
        }
        if let Some(outcome) = &self.outcome {
            out.push_str(&format!("{outcome}\n"));
        }
        out
    }
}

/// `pacer move`: prefer `node` (or avoid the node it runs on now) for a resource,
/// only if the decision with that constraint would run it there.
pub async fn move_resource(store: &Store, request: &MoveRequest) -> Result<PlacementChange, OpsError> {
    let live = Live::read(store).await?;
    let snapshot = &live.live.snapshot;
    let resource = Subject::find(snapshot, &request.resource)?;
    resource.check_promoted_flag(request.promoted)?;
    match (resource.clone, request.promoted) {
        (CloneKind::Plain, _) => {
            return Err(OpsError::Refused(format!(
                "{} is a clone: its instances run on many nodes, so it cannot be moved (ban it from a node with pacer ban)",
                resource.name
            )));
        }
        (CloneKind::Promotable, false) => {
            return Err(OpsError::Refused(format!(
                "{} is a promotable clone: move its promoted instance with --promoted (or ban it from a node with pacer ban)",
                resource.name
            )));
        }
        _ => {}
    }
    if let Some(node) = &request.node {
        check_member(snapshot, node)?;
    }
    let plan = schedule(snapshot);
    let role = request.promoted.then_some(Role::Promoted);
    let constraint = match &request.node {
        Some(node) => {
            let wish = Wish { resource: resource.name.clone(), node: node.clone(), prefer: true, promoted: request.promoted };
            if wish.holds_now(&plan) && !request.keep {
                return Err(OpsError::Refused(format!(
                    "{} already runs on {node}: nothing to move (--keep pins it there)",
                    subject_text(&resource.name, request.promoted)
                )));
            }
            new_constraint(Owner::Move, prefer_name(&resource.name), &resource.name, node, Score::INFINITY, role, request.lifetime, request.keep)?
        }
        None => {
            let node = current_node(&plan, &resource.name, request.promoted, "move it to")?;
            new_constraint(Owner::Move, ban_name(&resource.name, &node), &resource.name, &node, Score::NEG_INFINITY, role, request.lifetime, request.keep)?
        }
    };
    // A new move replaces the previous one, and a verb's ban from the target goes
    // (Pacemaker's crm_resource --move clears both).
    let superseded: Vec<VerbConstraint> = verb_constraints(&snapshot.objects)
        .into_iter()
        .filter(|old| old.resource == resource.name && old.name != constraint.name)
        .filter(|old| old.score > Score::ZERO || (constraint.score > Score::ZERO && old.node == constraint.node))
        .collect();
    let replaced = replaced_constraint(snapshot, &constraint, |old| old.owner == Owner::Move)?;
    let wish = constraint.wish();
    let proposed = with_change(snapshot, &constraint, &superseded);
    let plan_after = schedule(&proposed);
    if !wish.holds_next(&plan_after) {
        return Err(OpsError::Refused(why_not(&proposed, &plan_after, &wish)));
    }
    let outcome = Some(outcome_text(&wish, &plan_after));
    let mut change = write_change(store, "move", &resource.name, Some(constraint), replaced, superseded, request.dry_run).await?;
    change.outcome = outcome;
    change.wish = Some(wish);
    Ok(change)
}

/// `pacer ban`: keep a resource (or its promoted role) off a node — the one named,
/// or the one it runs on now. Banning it from its last node is allowed, with a notice.
pub async fn ban(store: &Store, request: &BanRequest) -> Result<PlacementChange, OpsError> {
    let live = Live::read(store).await?;
    let snapshot = &live.live.snapshot;
    let resource = Subject::find(snapshot, &request.resource)?;
    resource.check_promoted_flag(request.promoted)?;
    let plan = schedule(snapshot);
    let node = match &request.node {
        Some(node) => {
            check_member(snapshot, node)?;
            node.clone()
        }
        None => current_node(&plan, &resource.name, request.promoted, "ban it from")?,
    };
    let role = request.promoted.then_some(Role::Promoted);
    let constraint = new_constraint(Owner::Ban, ban_name(&resource.name, &node), &resource.name, &node, Score::NEG_INFINITY, role, request.lifetime, false)?;
    // A verb's preference for that very node could never be met any more: it goes.
    let superseded: Vec<VerbConstraint> = verb_constraints(&snapshot.objects)
        .into_iter()
        .filter(|old| old.resource == resource.name && old.name != constraint.name && old.node == node && old.score > Score::ZERO)
        .collect();
    let replaced = replaced_constraint(snapshot, &constraint, |_| true)?;
    let proposed = with_change(snapshot, &constraint, &superseded);
    let plan_after = schedule(&proposed);
    let wish = Wish { resource: resource.name.clone(), node: node.clone(), prefer: false, promoted: request.promoted };
    let mut notices = Vec::new();
    let runs = !wish.destination(&plan_after).is_empty();
    if !runs {
        let reason = wish.entries(&plan_after).iter().find_map(|entry| entry.reason.as_ref().map(ToString::to_string));
        let subject = subject_text(&resource.name, request.promoted);
        let verb = if request.promoted { "be promoted" } else { "run" };
        notices.push(match reason {
            Some(reason) => format!("{subject} can {verb} nowhere after this ban: {reason}"),
            None => format!("{subject} can {verb} nowhere after this ban"),
        });
    }
    let outcome = Some(outcome_text(&wish, &plan_after));
    let mut change = write_change(store, "ban", &resource.name, Some(constraint), replaced, superseded, request.dry_run).await?;
    change.outcome = outcome;
    change.notices = notices;
    Ok(change)
}

/// `pacer clear`: deletes the constraints `move` and `ban` made for a resource (about
/// one node, or only the expired ones). Nothing to clear is refused.
pub async fn clear(store: &Store, request: &ClearRequest) -> Result<PlacementChange, OpsError> {
    let live = Live::read(store).await?;
    let snapshot = &live.live.snapshot;
    let resource = Subject::find(snapshot, &request.resource)?;
    let now = now_secs();
    let cleared: Vec<VerbConstraint> = verb_constraints(&snapshot.objects)
        .into_iter()
        .filter(|constraint| constraint.resource == resource.name)
        .filter(|constraint| request.node.as_ref().is_none_or(|node| &constraint.node == node))
        .filter(|constraint| !request.expired || constraint.expired_at(now))
        .collect();
    // A node that is gone may still have constraints to clear; only when there are
    // none is an unknown node worth saying so.
    if cleared.is_empty()
        && let Some(node) = &request.node
    {
        check_member(snapshot, node)?;
    }
    if cleared.is_empty() {
        let on = request.node.as_ref().map(|node| format!(" on {node}")).unwrap_or_default();
        let which = if request.expired { "expired constraint" } else { "constraint" };
        return Err(OpsError::Refused(format!("nothing to clear: no {which} made by pacer move or ban for {}{on}", resource.name)));
    }
    let mut cleared_snapshot = snapshot.clone();
    cleared_snapshot.objects.retain(|object| !cleared.iter().any(|constraint| is_location(object, &constraint.name)));
    let plan_after = schedule(&cleared_snapshot);
    let wish = Wish { resource: resource.name.clone(), node: String::new(), prefer: false, promoted: false };
    let outcome = Some(outcome_text(&wish, &plan_after));
    let mut change = write_change(store, "clear", &resource.name, None, None, cleared, request.dry_run).await?;
    change.outcome = outcome;
    Ok(change)
}

/// `--wait`: for a move, until the resource runs where asked; for the other verbs,
/// until the cluster has settled on the change. Fills `waited_seconds`.
pub async fn wait(store: &Store, change: &mut PlacementChange, timeout: StdDuration) -> Result<Waited, OpsError> {
    let from = change.revision.unwrap_or(0);
    let waited = match &change.wish {
        Some(wish) => {
            let done = |_: &_, plan: &Plan| wish.holds_now(plan);
            let describe = |_: &_, plan: &Plan| {
                let now: Vec<String> = wish
                    .entries(plan)
                    .iter()
                    .flat_map(|entry| entry.current.iter().filter(|placement| placement.role != Role::Stopped))
                    .map(|placement| format!("{} ({})", placement.node, placement.role.as_str()))
                    .collect();
                let place = if now.is_empty() { "runs nowhere".to_string() } else { format!("runs on {}", now.join(", ")) };
                format!("{} {place}; {}", wish.resource, pending(plan))
            };
            until(store, from, timeout, done, describe).await?
        }
        None => settle(store, from, timeout).await?,
    };
    change.waited_seconds = Some(waited.elapsed.as_secs_f64());
    Ok(waited)
}

/// Whether a resource is a clone, and which kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloneKind {
    None,
    Plain,
    Promotable,
}

/// The resource a verb names, as the spec has it.
struct Subject {
    name: String,
    clone: CloneKind,
}

impl Subject {
    /// A Resource, Group or FenceDevice of that name; a clone is one whose own spec, or
    /// whose group's, has a clone block.
    fn find(snapshot: &Snapshot, name: &str) -> Result<Subject, OpsError> {
        let object = snapshot
            .objects
            .iter()
            .find(|object| object.kind().is_placeable() && object.name().as_str() == name)
            .ok_or_else(|| OpsError::NotFound(format!("resource {name} not found")))?;
        let clone_of = |object: &Object| match &object.spec {
            Spec::Resource(resource) => resource.clone.as_ref().map(|clone| clone.promotable.is_some()),
            Spec::Group(group) => group.clone.as_ref().map(|clone| clone.promotable.is_some()),
            _ => None,
        };
        let group_clone = snapshot.objects.iter().find_map(|group| match &group.spec {
            Spec::Group(spec) if spec.members.iter().any(|member| member.as_str() == name) => clone_of(group),
            _ => None,
        });
        let clone = match clone_of(object).or(group_clone) {
            None => CloneKind::None,
            Some(false) => CloneKind::Plain,
            Some(true) => CloneKind::Promotable,
        };
        Ok(Subject { name: name.to_string(), clone })
    }

    fn check_promoted_flag(&self, promoted: bool) -> Result<(), OpsError> {
        if promoted && self.clone != CloneKind::Promotable {
            return Err(OpsError::Refused(format!("--promoted applies to a promotable clone, and {} is not one", self.name)));
        }
        Ok(())
    }
}

/// A node a constraint may name: a member of the cluster (a `Node` object).
fn check_member(snapshot: &Snapshot, node: &str) -> Result<(), OpsError> {
    let member = snapshot.objects.iter().any(|object| object.kind() == Kind::Node && object.name().as_str() == node);
    if member {
        Ok(())
    } else if snapshot.observed.nodes.contains_key(node) {
        Err(OpsError::Refused(format!("node {node} is not a member of the cluster (it has no Node object)")))
    } else {
        Err(OpsError::NotFound(format!("node {node} not found")))
    }
}

/// The one node the resource runs on now (promoted on, for `promoted`).
fn current_node(plan: &Plan, resource: &str, promoted: bool, action: &str) -> Result<String, OpsError> {
    let wish = Wish { resource: resource.to_string(), node: String::new(), prefer: false, promoted };
    let mut nodes: Vec<String> = wish
        .entries(plan)
        .iter()
        .flat_map(|entry| entry.current.iter())
        .filter(|placement| if promoted { placement.role == Role::Promoted } else { placement.role != Role::Stopped })
        .map(|placement| placement.node.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    let subject = subject_text(resource, promoted);
    match &nodes[..] {
        [node] => Ok(node.clone()),
        [] => Err(OpsError::Refused(format!("{subject} runs nowhere now: name the node to {action}"))),
        _ => Err(OpsError::Refused(format!("{subject} runs on {} now: name the node to {action}", nodes.join(", ")))),
    }
}

fn subject_text(resource: &str, promoted: bool) -> String {
    if promoted { format!("the promoted instance of {resource}") } else { resource.to_string() }
}

/// The constraint a verb makes now, with who made it and when it expires.
#[allow(clippy::too_many_arguments)]
fn new_constraint(
    owner: Owner,
    name: String,
    resource: &str,
    node: &str,
    score: Score,
    role: Option<Role>,
    lifetime: Option<Duration>,
    keep: bool,
) -> Result<VerbConstraint, OpsError> {
    if !Name::is_valid(&name) || name.len() > crate::api::names::MAX_NAME_LEN {
        return Err(OpsError::Refused(format!("cannot name the constraint {name}: longer than {} characters", crate::api::names::MAX_NAME_LEN)));
    }
    let expires = match lifetime {
        Some(lifetime) if lifetime.is_zero() => return Err(OpsError::Refused("--lifetime must be longer than 0s".to_string())),
        Some(lifetime) => Some(expiry_after(lifetime)),
        None => None,
    };
    Ok(VerbConstraint {
        name: Name(name),
        owner,
        resource: resource.to_string(),
        node: node.to_string(),
        score,
        role,
        expires,
        keep,
        created_by: Some(operator()),
        created: None,
        revision: 0,
    })
}

/// Now plus `lifetime`, rounded up to the second: the constraint lasts at least that.
fn expiry_after(lifetime: Duration) -> Timestamp {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX).saturating_add(lifetime.as_millis());
    Timestamp::from_epoch_secs(i64::try_from(millis.div_ceil(1000)).unwrap_or(i64::MAX))
}

/// The stored object `constraint` would replace, if one of that name exists: only a
/// verb-made one that `replaceable` allows; a Location someone wrote by hand is never
/// overwritten.
fn replaced_constraint(
    snapshot: &Snapshot,
    constraint: &VerbConstraint,
    replaceable: impl Fn(&VerbConstraint) -> bool,
) -> Result<Option<VerbConstraint>, OpsError> {
    let Some(existing) = snapshot.objects.iter().find(|object| is_location(object, &constraint.name)) else { return Ok(None) };
    match VerbConstraint::of(existing) {
        Some(old) if replaceable(&old) => Ok(Some(old)),
        Some(old) => Err(OpsError::Refused(format!(
            "{} is already banned from {} by Location {} (made by pacer {}); pacer clear {} --node {} removes it",
            old.resource,
            old.node,
            old.name,
            old.owner.as_str(),
            old.resource,
            old.node
        ))),
        None => Err(OpsError::Refused(format!("Location {} exists and was not made by pacer move or ban; rename or delete it first", constraint.name))),
    }
}

fn is_location(object: &Object, name: &Name) -> bool {
    object.kind() == Kind::Location && object.name() == name
}

/// The snapshot with `constraint` in place (replacing its namesake) and `removed` gone.
fn with_change(snapshot: &Snapshot, constraint: &VerbConstraint, removed: &[VerbConstraint]) -> Snapshot {
    let mut proposed = snapshot.clone();
    proposed.objects.retain(|object| !is_location(object, &constraint.name) && !removed.iter().any(|old| is_location(object, &old.name)));
    proposed.objects.push(location_object(constraint));
    proposed
}

/// Why the proposed decision does not run the resource where asked: where it would
/// run (or why it would not), the node's score and what stands in the way there.
fn why_not(snapshot: &Snapshot, plan: &Plan, wish: &Wish) -> String {
    let subject = subject_text(&wish.resource, wish.promoted);
    let destination = wish.destination(plan);
    let reason = wish.entries(plan).iter().find_map(|entry| entry.reason.as_ref().map(ToString::to_string));
    let instead = match (destination.is_empty(), reason) {
        (true, Some(reason)) => format!("it would run nowhere: {reason}"),
        (true, None) => "it would run nowhere".to_string(),
        (false, _) => format!("it would run on {}", destination.join(", ")),
    };
    if !wish.prefer {
        return format!("cannot move {subject} away from {}: {instead}", wish.node);
    }
    let mut causes = Vec::new();
    let score = wish.entries(plan).iter().filter_map(|entry| plan.scores_of(entry).find(|(node, _)| *node == wish.node).map(|(_, score)| score)).min();
    if let Some(score) = score.filter(|score| *score < Score::ZERO) {
        causes.push(format!("{} scores {score} there", wish.resource));
    }
    match snapshot.observed.nodes.get(&wish.node).map(|node| node.liveness) {
        Some(NodeLiveness::Online) | None => {}
        Some(liveness) => causes.push(format!("{} is {}", wish.node, format!("{liveness:?}").to_lowercase())),
    }
    for object in &snapshot.objects {
        match &object.spec {
            Spec::Node(node) if object.name().as_str() == wish.node && node.standby => causes.push(format!("{} is in standby", wish.node)),
            Spec::Node(node) if object.name().as_str() == wish.node && node.maintenance => causes.push(format!("{} is in maintenance", wish.node)),
            Spec::Location(location)
                if !location.expired_at(snapshot.now)
                    && location.node.as_ref().is_some_and(|node| node.as_str() == wish.node)
                    && location.score.is_some_and(|score| score < Score::ZERO)
                    && location.resource.iter().chain(&location.resources).any(|name| name.as_str() == wish.resource) =>
            {
                causes.push(format!("Location {} scores {} on {}", object.name(), location.score.unwrap_or(Score::ZERO), wish.node));
            }
            // A mandatory colocation with something that will run elsewhere.
            Spec::Colocation(colocation)
                if colocation.score == Score::INFINITY && colocation.resource.as_ref().is_some_and(|name| name.as_str() == wish.resource) =>
            {
                let Some(primary) = &colocation.with_resource else { continue };
                let promoted = colocation.with_role == Some(Role::Promoted);
                let with = Wish { resource: primary.as_str().to_string(), node: wish.node.clone(), prefer: true, promoted };
                let runs_on = with.destination(plan);
                if !runs_on.contains(&wish.node) {
                    let role = if promoted { " (promoted)" } else { "" };
                    let place = if runs_on.is_empty() { "runs nowhere".to_string() } else { format!("runs on {}", runs_on.join(", ")) };
                    causes.push(format!("it must run with {primary}{role} (Colocation {}), which {place}", object.name()));
                }
            }
            _ => {}
        }
    }
    let causes = if causes.is_empty() { String::new() } else { format!(" ({})", causes.join("; ")) };
    format!("cannot move {subject} to {}: {instead}{causes}", wish.node)
}

/// Where the decision after the change puts the resource, in words.
fn outcome_text(wish: &Wish, plan: &Plan) -> String {
    let subject = subject_text(&wish.resource, wish.promoted);
    let destination = wish.destination(plan);
    let reason = wish.entries(plan).iter().find_map(|entry| entry.reason.as_ref().map(ToString::to_string));
    match (destination.is_empty(), reason) {
        (false, _) => format!("{subject} will run on {}", destination.join(", ")),
        (true, Some(reason)) => format!("{subject} will not run: {reason}"),
        (true, None) => format!("{subject} will not run"),
    }
}

/// Writes `constraint` (created, or replacing `replaced`) and deletes `removed`, all or
/// nothing, each object only as it was read.
async fn write_change(
    store: &Store,
    verb: &'static str,
    resource: &str,
    constraint: Option<VerbConstraint>,
    replaced: Option<VerbConstraint>,
    removed: Vec<VerbConstraint>,
    dry_run: bool,
) -> Result<PlacementChange, OpsError> {
    let key = |name: &Name| ObjectKey { kind: Kind::Location, name: name.clone() };
    let mut expect_revisions: BTreeMap<ObjectKey, i64> = removed.iter().map(|old| (key(&old.name), old.revision)).collect();
    let mut loaded = Loaded::default();
    if let Some(constraint) = &constraint {
        expect_revisions.insert(key(&constraint.name), replaced.as_ref().map_or(0, |old| old.revision));
        let text = to_yaml_string(&location_object(constraint).to_value());
        loaded = load(&[Source { name: format!("pacer {verb}"), text }]);
    }
    let request = ApplyRequest { loaded, delete: removed.iter().map(|old| key(&old.name)).collect(), dry_run, expect_revisions, ..ApplyRequest::default() };
    let report = match apply(store, &request).await? {
        ApplyOutcome::Invalid(diagnostics) => return Err(OpsError::Invalid(diagnostics)),
        ApplyOutcome::Planned(report) => report,
    };
    Ok(PlacementChange {
        verb,
        resource: resource.to_string(),
        written: constraint.iter().map(ConstraintSummary::of).collect(),
        removed: removed.iter().map(ConstraintSummary::of).collect(),
        dry_run,
        revision: report.revision,
        outcome: None,
        notices: Vec::new(),
        waited_seconds: None,
        wish: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::constraints::tests::snapshot;
    use crate::scheduler::snapshot::ObservedNode;

    const CLONES: &str = "\
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec: {agent: 'ocf:heartbeat:Dummy'}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: everywhere}
spec: {agent: 'ocf:heartbeat:Dummy', clone: {}}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: db}
spec: {agent: 'ocf:pacemaker:Stateful', clone: {promotable: {}}}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: member}
spec: {agent: 'ocf:heartbeat:Dummy'}
---
apiVersion: pacer.io/v1alpha1
kind: Group
metadata: {name: stack}
spec: {members: [member], clone: {}}
";

    #[test]
    fn subjects_are_told_apart_by_clone_kind_and_unknown_ones_refused() {
        let snapshot = snapshot(CLONES, &[], 0);
        let kind = |name: &str| Subject::find(&snapshot, name).map(|subject| subject.clone);
        assert_eq!(kind("web").ok(), Some(CloneKind::None));
        assert_eq!(kind("everywhere").ok(), Some(CloneKind::Plain));
        assert_eq!(kind("db").ok(), Some(CloneKind::Promotable));
        // A member of a cloned group is cloned with it.
        assert_eq!(kind("member").ok(), Some(CloneKind::Plain));
        assert!(matches!(kind("ghost"), Err(OpsError::NotFound(message)) if message == "resource ghost not found"));
        let promoted = Subject::find(&snapshot, "web").and_then(|web| web.check_promoted_flag(true));
        assert!(matches!(promoted, Err(OpsError::Refused(message)) if message == "--promoted applies to a promotable clone, and web is not one"));
    }

    #[test]
    fn only_a_node_with_a_node_object_is_a_member() {
        let mut snapshot = snapshot(CLONES, &[], 0);
        snapshot.observed.nodes.insert("stray".into(), ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() });
        assert!(check_member(&snapshot, "n1").is_ok());
        assert!(
            matches!(check_member(&snapshot, "stray"), Err(OpsError::Refused(message)) if message == "node stray is not a member of the cluster (it has no Node object)")
        );
        assert!(matches!(check_member(&snapshot, "n9"), Err(OpsError::NotFound(message)) if message == "node n9 not found"));
    }

    #[test]
    fn a_move_that_cannot_happen_says_what_stands_in_the_way() {
        let objects = format!(
            "{CLONES}---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-never-n2}}\nspec: {{resource: web, node: n2, score: -INFINITY}}\n"
        );
        let live = snapshot(&objects, &[("web", "n1")], 0);
        let constraint = new_constraint(Owner::Move, prefer_name("web"), "web", "n2", Score::INFINITY, None, None, false).expect("constraint");
        let proposed = with_change(&live, &constraint, &[]);
        let plan = schedule(&proposed);
        assert!(!constraint.wish().holds_next(&plan));
        assert_eq!(
            why_not(&proposed, &plan, &constraint.wish()),
            "cannot move web to n2: it would run on n1 (web scores -INFINITY there; Location web-never-n2 scores -INFINITY on n2)"
        );
        let to_n3 = new_constraint(Owner::Move, prefer_name("web"), "web", "n3", Score::INFINITY, None, None, false).expect("constraint");
        assert!(to_n3.wish().holds_next(&schedule(&with_change(&live, &to_n3, &[]))));
    }

    #[test]
    fn an_expiry_is_never_sooner_than_the_lifetime() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let expires = expiry_after(Duration::from_secs(3)).epoch_secs() as f64;
        assert!(expires >= before + 3.0 && expires < before + 5.0, "{expires} for {before}");
    }
}
