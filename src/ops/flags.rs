//! Flags set by editing objects: a node's standby and maintenance (`pacer node
//! standby|unstandby|maintenance|unmaintenance`, `pacer drain`), the cluster's
//! maintenance mode (`pacer maintenance on|off`), a resource's target role and
//! is-managed (`pacer enable|disable|manage|unmanage`). Each is a small edit of stored
//! objects written through `edit::write` (the checks of `apply`, the resourceVersion
//! read as the precondition); the scheduler does the rest.
//!
//! Also here, for every verb that names nodes and resources: who is a member of the
//! cluster (`members`) and what a resource name stands for (`resolve`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::api::records::ResourceStatus;
use crate::api::resource::{ResourceMeta, Role};
use crate::api::validate::CLUSTER_POLICY_NAME;
use crate::api::{Kind, Name, Object, ObjectKey, Spec};
use crate::runtime::{ClusterCache, LiveSnapshot, load};
use crate::store::Store;

use super::settle::until;
use super::{OpsError, edit};

/// The nodes of the cluster: those with a `Node` object, those whose agent runs now,
/// and those an agent has claimed at some time (`nodes/<node>/activity`).
pub fn members(cache: &ClusterCache) -> BTreeSet<String> {
    let configured = cache.objects().keys().filter(|key| key.kind == Kind::Node).map(|key| key.name.as_str().to_string());
    configured.chain(cache.heartbeats().keys().cloned()).chain(cache.activities().keys().cloned()).collect()
}

/// Refuses a node that is not a member (no `Node` object, never seen).
pub fn check_member(cache: &ClusterCache, node: &str) -> Result<(), OpsError> {
    if members(cache).contains(node) {
        Ok(())
    } else {
        Err(OpsError::NotFound(format!("node {node} is not a member of the cluster (no Node object, never seen)")))
    }
}

/// What a resource name given to a verb stands for.
#[derive(Clone, Debug)]
pub struct Target {
    /// `Resource`, `Group` or `FenceDevice`.
    pub kind: Kind,
    pub name: String,
    /// The primitives run under it: the resource itself, or a group's members (their
    /// statuses carry these names; a fence device has none).
    pub primitives: Vec<String>,
    /// A clone (of a resource or of a group): it runs on several nodes.
    pub cloned: bool,
    /// The stored object, with the resourceVersion it was read at.
    pub object: Object,
}

impl Target {
    /// Whether a status is of one of its primitives (any instance).
    pub fn owns(&self, status: &ResourceStatus) -> bool {
        self.primitives.contains(&status.name)
    }
}

/// Finds a resource, group or fence device by name (they share one namespace).
pub fn resolve(cache: &ClusterCache, name: &str) -> Result<Target, OpsError> {
    for kind in [Kind::Resource, Kind::Group, Kind::FenceDevice] {
        let key = ObjectKey { kind, name: Name::from(name) };
        let Some(stored) = cache.objects().get(&key) else { continue };
        let (primitives, cloned) = match &stored.object.spec {
            Spec::Resource(spec) => (crate::state::conditions::primitives(&stored.object), spec.clone.is_some()),
            Spec::Group(spec) => (crate::state::conditions::primitives(&stored.object), spec.clone.is_some()),
            _ => (Vec::new(), false),
        };
        return Ok(Target { kind, name: name.to_string(), primitives, cloned, object: (*stored.object).clone() });
    }
    Err(OpsError::NotFound(format!("no resource, group or fence device named {name}")))
}

/// One object a flag verb looked at: what it set, and whether that changed anything.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagChange {
    /// `Node/n1`, `Resource/web`, `ClusterPolicy/cluster`.
    pub object: String,
    /// The field and its new value, as in the manifest (`spec.standby: true`).
    pub setting: String,
    /// False when it already was so (nothing written for it).
    pub changed: bool,
    /// The object did not exist and is created (a `Node` of a member seen but never
    /// configured, the `ClusterPolicy`).
    pub created: bool,
}

/// What a flag verb did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagOutcome {
    pub changes: Vec<FlagChange>,
    pub dry_run: bool,
    /// The etcd revision the change landed at; none for a dry run or no change.
    pub revision: Option<i64>,
}

impl FlagOutcome {
    /// What was changed, a line per object (what the CLI prints and the console shows).
    pub fn describe(&self) -> String {
        let prefix = if self.dry_run { "(dry run) " } else { "" };
        self.changes
            .iter()
            .map(|change| {
                let what = match (change.changed, change.created) {
                    (_, true) => "created with",
                    (true, false) => "set",
                    (false, false) => "unchanged, already",
                };
                format!("{prefix}{}: {what} {}\n", change.object, change.setting)
            })
            .collect()
    }
}

/// An edited object and what the edit was, before writing.
struct Edit {
    object: Object,
    setting: String,
    changed: bool,
    created: bool,
}

/// Writes the edits that change something, all or nothing.
async fn write_edits(store: &Store, edits: Vec<Edit>, dry_run: bool, source: &str) -> Result<FlagOutcome, OpsError> {
    let objects: Vec<Object> = edits.iter().filter(|edit| edit.changed).map(|edit| edit.object.clone()).collect();
    let revision = if objects.is_empty() { None } else { edit::write(store, &objects, Vec::new(), dry_run, source).await?.revision };
    let changes = edits
        .into_iter()
        .map(|edit| FlagChange { object: edit.object.key().to_string(), setting: edit.setting, changed: edit.changed, created: edit.created })
        .collect();
    Ok(FlagOutcome { changes, dry_run, revision })
}

/// A node flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFlag {
    /// `Node.spec.standby`: the node runs no resources.
    Standby,
    /// `Node.spec.maintenance`: the node's resources are left alone.
    Maintenance,
}

impl NodeFlag {
    fn field(self) -> &'static str {
        match self {
            NodeFlag::Standby => "standby",
            NodeFlag::Maintenance => "maintenance",
        }
    }
}

/// A new object of a kind whose spec may be left out (`Node`, `ClusterPolicy`), with
/// every field at its default.
fn blank(kind: Kind, name: &str) -> Result<Object, OpsError> {
    Object::from_value(serde_json::json!({"kind": kind.as_str(), "metadata": {"name": name}}))
        .map_err(|error| OpsError::Refused(format!("cannot make a {kind} named {name}: {error}")))
}

/// `pacer node standby|unstandby|maintenance|unmaintenance NODE... | --all`: sets
/// `flag` to `on` in the `Node` object of each node (creating it for a member that
/// has none). Every node is checked before anything is written.
pub async fn set_node_flag(store: &Store, nodes: &[String], all: bool, flag: NodeFlag, on: bool, dry_run: bool) -> Result<FlagOutcome, OpsError> {
    let cache = load(store).await?;
    let names: BTreeSet<String> = if all { members(&cache) } else { nodes.iter().cloned().collect() };
    if names.is_empty() {
        return Err(OpsError::Refused(if all { "the cluster has no nodes".to_string() } else { "name at least one node, or --all".to_string() }));
    }
    for node in &names {
        check_member(&cache, node)?;
    }
    let mut edits = Vec::new();
    for node in &names {
        let key = ObjectKey { kind: Kind::Node, name: Name::from(node.as_str()) };
        let (mut object, created) = match cache.objects().get(&key) {
            Some(stored) => ((*stored.object).clone(), false),
            None => (blank(Kind::Node, node)?, true),
        };
        let Spec::Node(spec) = &mut object.spec else { continue };
        let field = match flag {
            NodeFlag::Standby => &mut spec.standby,
            NodeFlag::Maintenance => &mut spec.maintenance,
        };
        let changed = *field != on || created;
        *field = on;
        edits.push(Edit { object, setting: format!("spec.{}: {on}", flag.field()), changed, created });
    }
    let verb = match (flag, on) {
        (NodeFlag::Standby, true) => "standby",
        (NodeFlag::Standby, false) => "unstandby",
        (NodeFlag::Maintenance, true) => "maintenance",
        (NodeFlag::Maintenance, false) => "unmaintenance",
    };
    write_edits(store, edits, dry_run, &format!("pacer node {verb}")).await
}

/// `pacer maintenance on|off`: the cluster's maintenance mode
/// (`ClusterPolicy.spec.maintenanceMode`), creating the ClusterPolicy if there is none.
pub async fn set_cluster_maintenance(store: &Store, on: bool, dry_run: bool) -> Result<FlagOutcome, OpsError> {
    let cache = load(store).await?;
    let stored = cache.objects().iter().find(|(key, _)| key.kind == Kind::ClusterPolicy).map(|(_, stored)| (*stored.object).clone());
    let (mut object, created) = match stored {
        Some(object) => (object, false),
        None => (blank(Kind::ClusterPolicy, CLUSTER_POLICY_NAME)?, true),
    };
    let Spec::ClusterPolicy(spec) = &mut object.spec else {
        return Err(OpsError::Refused("the ClusterPolicy does not decode as one".to_string()));
    };
    let changed = spec.maintenance_mode != on || created;
    spec.maintenance_mode = on;
    let edit = Edit { object, setting: format!("spec.maintenanceMode: {on}"), changed, created };
    write_edits(store, vec![edit], dry_run, &format!("pacer maintenance {}", if on { "on" } else { "off" })).await
}

/// A resource flag (its meta), as `pcs resource enable|disable|manage|unmanage` set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceFlag {
    /// Removes `meta.targetRole`: the resource may run in any role.
    Enable,
    /// `meta.targetRole: Stopped`.
    Disable,
    /// Removes `meta.isManaged`.
    Manage,
    /// `meta.isManaged: false`: the cluster leaves it as it is.
    Unmanage,
}

impl ResourceFlag {
    pub fn verb(self) -> &'static str {
        match self {
            ResourceFlag::Enable => "enable",
            ResourceFlag::Disable => "disable",
            ResourceFlag::Manage => "manage",
            ResourceFlag::Unmanage => "unmanage",
        }
    }

    /// Sets the flag in `meta`; the setting in words.
    fn apply(self, meta: &mut ResourceMeta) -> String {
        match self {
            ResourceFlag::Enable => {
                meta.target_role = None;
                "spec.meta.targetRole: (removed)".to_string()
            }
            ResourceFlag::Disable => {
                meta.target_role = Some(Role::Stopped);
                "spec.meta.targetRole: Stopped".to_string()
            }
            ResourceFlag::Manage => {
                meta.is_managed = None;
                "spec.meta.isManaged: (removed)".to_string()
            }
            ResourceFlag::Unmanage => {
                meta.is_managed = Some(false);
                "spec.meta.isManaged: false".to_string()
            }
        }
    }
}

/// The meta of a resource, group or fence device.
pub fn meta_mut(object: &mut Object) -> Option<&mut ResourceMeta> {
    match &mut object.spec {
        Spec::Resource(spec) => Some(&mut spec.meta),
        Spec::Group(spec) => Some(&mut spec.meta),
        Spec::FenceDevice(spec) => Some(&mut spec.meta),
        _ => None,
    }
}

/// `pacer enable|disable|manage|unmanage RSC`.
pub async fn set_resource_flag(store: &Store, name: &str, flag: ResourceFlag, dry_run: bool) -> Result<FlagOutcome, OpsError> {
    let cache = load(store).await?;
    let target = resolve(&cache, name)?;
    let mut object = target.object.clone();
    let Some(meta) = meta_mut(&mut object) else {
        return Err(OpsError::NotFound(format!("no resource, group or fence device named {name}")));
    };
    let before = meta.clone();
    let setting = flag.apply(meta);
    let changed = *meta != before;
    write_edits(store, vec![Edit { object, setting, changed, created: false }], dry_run, &format!("pacer {}", flag.verb())).await
}

/// What `pacer drain` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainOutcome {
    pub standby: FlagOutcome,
    /// What still ran on the node when the command ended (empty once drained; for a
    /// dry run, what runs there now).
    pub running: Vec<String>,
}

/// What may run on `node` by the reports, as `id (role)`.
pub fn running_on(live: &LiveSnapshot, node: &str) -> Vec<String> {
    live.reports
        .statuses
        .iter()
        .filter(|status| status.node == node && status.may_be_active())
        .map(|status| format!("{} ({})", status.id, status.pending.as_deref().map_or(status.role.as_str(), |_| "starting")))
        .collect()
}

/// `pacer drain NODE`: standby, then wait (at most `timeout`) until nothing runs
/// there. `NotReached` lists what still runs at the timeout; the node stays in
/// standby either way.
pub async fn drain(store: &Store, node: &str, timeout: Duration, dry_run: bool) -> Result<DrainOutcome, OpsError> {
    let standby = set_node_flag(store, &[node.to_string()], false, NodeFlag::Standby, true, dry_run).await?;
    if dry_run {
        let live = super::live::Live::read(store).await?;
        return Ok(DrainOutcome { standby, running: running_on(&live.live, node) });
    }
    let from = standby.revision.unwrap_or(0);
    until(
        store,
        from,
        timeout,
        |live, _| running_on(live, node).is_empty(),
        |live, _| format!("{node} is in standby, and still runs {}", running_on(live, node).join(", ")),
    )
    .await?;
    Ok(DrainOutcome { standby, running: Vec::new() })
}
