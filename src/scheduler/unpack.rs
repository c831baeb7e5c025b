//! Phase 1, unpack: from a `Snapshot` (desired objects + observed history) to the
//! `Cluster` model — nodes with their verdicts, the resource tree with clone instances,
//! current roles and failures derived from operation history, constraints resolved.
//!
//! Operation history is read the way Pacemaker reads it: operations in call order,
//! each success moves the role (start → Started, promote → Promoted, stop → Stopped,
//! a probe that finds nothing → Stopped), each failure records the configured
//! `on-fail` policy, and a later success of the same kind clears a recoverable one.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use crate::api::Score;
use crate::api::cluster::{ClusterPolicySpec, NodeHealthStrategy};
use crate::api::constraint::{ColocationSpec, LocationSpec, OrderAction, OrderKind, OrderSpec, ResourceDiscovery};
use crate::api::resource::{CloneSpec, MultipleActive, OnFail, Operation, Requires, ResourceMeta, Role};
use crate::api::{Object, Param, Spec};

use super::digest;
use super::migration::{self, Histories};
use super::model::{Active, CloneInfo, Cluster, Colocation, LocationRule, Node, NodeIdx, OpDef, Ordering, Rsc, RscIdx, RscKind, Settings};
use super::rules;
use crate::api::records::{ExecStatus, OperationRecord, start_call};

use super::snapshot::{NodeLiveness, ResourceHistory, Snapshot};

use crate::api::ocf as rc;

/// Builds the model. Never fails: references to things that do not exist are skipped
/// (validation refuses them before they are stored).
pub(crate) fn unpack(snapshot: &Snapshot) -> Cluster {
    let policy = snapshot
        .objects
        .iter()
        .find_map(|object| match &object.spec {
            Spec::ClusterPolicy(policy) => Some(policy.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let have_fence_device = snapshot.objects.iter().any(|object| matches!(object.spec, Spec::FenceDevice(_)));
    let have_unfencing_device = snapshot.objects.iter().any(|object| matches!(&object.spec, Spec::FenceDevice(device) if device.unfencing));
    let settings = Settings {
        stonith_enabled: policy.stonith_enabled,
        symmetric: policy.symmetric_cluster,
        no_quorum_policy: policy.no_quorum_policy,
        have_quorum: snapshot.observed.quorum,
        placement_strategy: policy.placement_strategy,
        maintenance_mode: policy.maintenance_mode,
        start_failure_is_fatal: policy.start_failure_is_fatal,
        have_fence_device,
        have_unfencing_device,
        now: snapshot.now,
    };
    let mut nodes = unpack_nodes(snapshot, policy.startup_fencing);
    for node in &mut nodes {
        node.health = node_health(&policy, node);
    }
    let mut builder = Builder { settings, policy, nodes, resources: Vec::new(), top: Vec::new(), by_name: HashMap::new(), cloned_members: HashMap::new() };
    builder.unpack_resources(&snapshot.objects);
    builder.unpack_history(&snapshot.observed.history, &configured_agents(&snapshot.objects), &configured_digests(&snapshot.objects));
    let Builder { settings, nodes, resources, top, by_name, .. } = builder;
    let mut cluster = Cluster {
        settings,
        nodes,
        resources,
        top,
        locations: Vec::new(),
        colocations: Vec::new(),
        orderings: Vec::new(),
        orderings_by_then: Vec::new(),
        colocations_by_dependent: Vec::new(),
    };
    unpack_constraints(&mut cluster, &by_name, &snapshot.objects);
    cluster.orderings_by_then = vec![Vec::new(); cluster.resources.len()];
    for (index, ordering) in cluster.orderings.iter().enumerate() {
        cluster.orderings_by_then[ordering.then].push(index);
    }
    cluster.colocations_by_dependent = vec![Vec::new(); cluster.resources.len()];
    for (index, colocation) in cluster.colocations.iter().enumerate() {
        cluster.colocations_by_dependent[colocation.dependent].push(index);
    }
    cluster
}

/// Nodes in name order: every `Node` object, plus nodes only the observed state knows.
fn unpack_nodes(snapshot: &Snapshot, startup_fencing: bool) -> Vec<Node> {
    let mut specs = BTreeMap::new();
    for object in &snapshot.objects {
        if let Spec::Node(spec) = &object.spec {
            specs.insert(object.name().to_string(), Some(spec.clone()));
        }
    }
    for name in snapshot.observed.nodes.keys() {
        specs.entry(name.clone()).or_insert(None);
    }
    // Names the administrator sets on any node are the administrator's on every node.
    let administered: BTreeSet<String> = specs.values().flatten().flat_map(|spec| spec.attributes.keys().cloned()).collect();
    specs
        .into_iter()
        .map(|(name, spec)| {
            let spec = spec.unwrap_or_default();
            let observed = snapshot.observed.nodes.get(&name);
            let mut attributes: BTreeMap<String, String> = spec.attributes.iter().map(|(key, value)| (key.clone(), value.as_str().to_string())).collect();
            // The administrator's `Node.spec.attributes` win over what the node's agent
            // sets at run time, and a name the administrator sets on any node is theirs
            // on every node: a node cannot make itself match rules written to pick other
            // nodes ("secure" ones), neither by overriding its own value nor by adding
            // a name only the secure nodes carry. Run-time attributes only add names no
            // Node object sets.
            if let Some(observed) = observed {
                for (key, value) in observed.attributes.iter().filter(|(key, _)| !administered.contains(*key)) {
                    attributes.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            attributes.insert("#uname".into(), name.clone());
            attributes.insert("#id".into(), name.clone());
            attributes.insert("#kind".into(), "cluster".into());
            let is_dc = snapshot.observed.dc.as_deref() == Some(name.as_str());
            attributes.insert("#is_dc".into(), is_dc.to_string());
            let liveness = observed.map_or(NodeLiveness::Unseen, |observed| observed.liveness);
            let standby = spec.standby || attributes.get("standby").is_some_and(|value| is_true(value));
            let maintenance = spec.maintenance || attributes.get("maintenance").is_some_and(|value| is_true(value));
            let unclean_reason = match liveness {
                NodeLiveness::Unclean => Some("node was lost".to_string()),
                NodeLiveness::Unseen if startup_fencing => Some("node has never been seen (startup fencing)".to_string()),
                _ => None,
            };
            Node {
                name,
                attributes,
                online: liveness == NodeLiveness::Online,
                unclean: unclean_reason.is_some(),
                standby,
                pending: liveness == NodeLiveness::Pending,
                maintenance,
                shutdown: observed.is_some_and(|observed| observed.shutdown),
                unclean_reason,
                health: Score::ZERO,
                capacity: spec.utilization.iter().map(|(key, value)| (key.clone(), i64::try_from(*value).unwrap_or(i64::MAX))).collect(),
            }
        })
        .collect()
}

/// A node's health: the sum of its `#health*` attributes, `red` / `yellow` / `green`
/// scored as the strategy says (Pacemaker's node-health strategies).
fn node_health(policy: &ClusterPolicySpec, node: &Node) -> Score {
    let (red, yellow, green, base) = match policy.node_health_strategy {
        NodeHealthStrategy::None => return Score::ZERO,
        NodeHealthStrategy::MigrateOnRed => (Score::NEG_INFINITY, Score::ZERO, Score::ZERO, Score::ZERO),
        NodeHealthStrategy::OnlyGreen => (Score::NEG_INFINITY, Score::NEG_INFINITY, Score::ZERO, Score::ZERO),
        NodeHealthStrategy::Progressive => (policy.node_health_red, policy.node_health_yellow, policy.node_health_green, policy.node_health_base),
        NodeHealthStrategy::Custom => (policy.node_health_red, policy.node_health_yellow, policy.node_health_green, Score::ZERO),
    };
    let mut health = base;
    for (name, value) in &node.attributes {
        if !name.starts_with("#health") {
            continue;
        }
        health += match value.trim().to_ascii_lowercase().as_str() {
            "red" => red,
            "yellow" => yellow,
            "green" => green,
            other => other.parse::<Score>().unwrap_or(Score::ZERO),
        };
    }
    health
}

/// Pacemaker's booleans: true, yes, on, y, 1.
pub(crate) fn is_true(text: &str) -> bool {
    matches!(text.trim().to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "y" | "1")
}

struct Builder {
    settings: Settings,
    policy: ClusterPolicySpec,
    nodes: Vec<Node>,
    resources: Vec<Rsc>,
    top: Vec<RscIdx>,
    /// Configured names (primitives, groups, clones, fence devices) to resources.
    by_name: HashMap<String, RscIdx>,
    /// Members of cloned groups by name, to their clone (their instances have no
    /// configured name of their own).
    cloned_members: HashMap<String, RscIdx>,
}

/// What a primitive or fence device contributes, before it is placed in the tree.
struct PrimitiveDef<'a> {
    name: &'a str,
    utilization: Option<&'a BTreeMap<String, u64>>,
    meta: ResourceMeta,
    operations: &'a [Operation],
    is_fence_device: bool,
}

impl Builder {
    fn unpack_resources(&mut self, objects: &[Object]) {
        // At least one resource per object, sized once: a resource is large, and
        // growing the vector moved every one of them.
        self.resources.reserve(objects.len());
        // Group members, looked up once per object (a hash set: a B-tree compared each
        // name with some twenty others).
        let mut members: HashSet<&str> = HashSet::new();
        let mut primitives: HashMap<&str, &Object> = HashMap::new();
        for object in objects {
            match &object.spec {
                Spec::Group(group) => members.extend(group.members.iter().map(|member| member.as_str())),
                Spec::Resource(_) => {
                    primitives.insert(object.name().as_str(), object);
                }
                _ => {}
            }
        }
        for object in objects {
            let name = object.name().as_str();
            let top = match &object.spec {
                Spec::Resource(spec) if !members.contains(name) => {
                    let def = PrimitiveDef {
                        name,
                        utilization: Some(&spec.utilization),
                        meta: spec.meta.clone(),
                        operations: &spec.operations,
                        is_fence_device: false,
                    };
                    match &spec.clone {
                        Some(clone) => {
                            Some(self.add_clone(name, clone, &spec.meta, |builder, parent, suffix| builder.add_primitive(&def, Some(parent), suffix)))
                        }
                        None => Some(self.add_primitive(&def, None, None)),
                    }
                }
                Spec::FenceDevice(spec) => {
                    let def = PrimitiveDef { name, utilization: None, meta: spec.meta.clone(), operations: &spec.operations, is_fence_device: true };
                    match &spec.clone {
                        Some(clone) => {
                            Some(self.add_clone(name, clone, &spec.meta, |builder, parent, suffix| builder.add_primitive(&def, Some(parent), suffix)))
                        }
                        None => Some(self.add_primitive(&def, None, None)),
                    }
                }
                Spec::Group(group) => {
                    let member_defs: Vec<PrimitiveDef> = group
                        .members
                        .iter()
                        .filter_map(|member| primitives.get(member.as_str()))
                        .filter_map(|object| match &object.spec {
                            Spec::Resource(spec) => Some(PrimitiveDef {
                                name: object.name().as_str(),
                                utilization: Some(&spec.utilization),
                                meta: inherit(&spec.meta, &group.meta),
                                operations: &spec.operations,
                                is_fence_device: false,
                            }),
                            _ => None,
                        })
                        .collect();
                    match &group.clone {
                        Some(clone) => Some(self.add_clone(name, clone, &group.meta, |builder, parent, suffix| {
                            builder.add_group(name, &group.meta, &member_defs, Some(parent), suffix)
                        })),
                        None => Some(self.add_group(name, &group.meta, &member_defs, None, None)),
                    }
                }
                _ => None,
            };
            if let Some(top) = top {
                self.top.push(top);
            }
        }
    }

    fn new_rsc(&mut self, id: String, name: &str, kind: RscKind, parent: Option<RscIdx>, meta: &ResourceMeta) -> RscIdx {
        let stickiness = meta.resource_stickiness.unwrap_or(self.policy.default_resource_stickiness);
        let managed = meta.is_managed.unwrap_or(true) && !meta.maintenance.unwrap_or(false) && !self.settings.maintenance_mode;
        let rsc = Rsc {
            id,
            name: name.to_string(),
            kind,
            parent,
            children: Vec::new(),
            is_fence_device: false,
            priority: meta.priority.map_or(0, Score::value),
            stickiness,
            migration_threshold: meta.migration_threshold.map_or(Score::INFINITY.value(), Score::value),
            failure_timeout_s: meta.failure_timeout.map_or(0, |timeout| timeout.as_millis() / 1000),
            target_role: meta.target_role,
            managed,
            requires: meta.requires.unwrap_or(if self.settings.stonith_enabled { Requires::Fencing } else { Requires::Quorum }),
            multiple_active: meta.multiple_active.unwrap_or(MultipleActive::StopStart),
            allow_migrate: meta.allow_migrate.unwrap_or(false),
            operations: Vec::new(),
            utilization: BTreeMap::new(),
            clone: None,
            active: Vec::new(),
            failed: false,
            failure_ignored: false,
            known_on: Vec::new(),
            banned_on: Vec::new(),
            banned_everywhere: false,
            blocked: false,
            history_name: None,
            partial_migration: None,
            dangling_on: Vec::new(),
            reload_on: Vec::new(),
            definition_changed_on: Vec::new(),
            failcount_cleared_on: Vec::new(),
        };
        self.resources.push(rsc);
        let index = self.resources.len() - 1;
        if let Some(parent) = parent {
            self.resources[parent].children.push(index);
        }
        index
    }

    fn add_primitive(&mut self, def: &PrimitiveDef, parent: Option<RscIdx>, suffix: Option<usize>) -> RscIdx {
        let id = match suffix {
            Some(instance) => format!("{}:{instance}", def.name),
            None => def.name.to_string(),
        };
        let index = self.new_rsc(id, def.name, RscKind::Primitive, parent, &def.meta);
        let rsc = &mut self.resources[index];
        rsc.is_fence_device = def.is_fence_device;
        rsc.utilization =
            def.utilization.map(|map| map.iter().map(|(key, value)| (key.clone(), i64::try_from(*value).unwrap_or(i64::MAX))).collect()).unwrap_or_default();
        rsc.operations = def
            .operations
            .iter()
            .map(|operation| OpDef { name: operation.name.as_str().to_string(), interval_ms: operation.interval.as_millis(), on_fail: operation.on_fail })
            .collect();
        match (suffix, parent) {
            (None, _) => {
                self.by_name.insert(def.name.to_string(), index);
            }
            (Some(_), Some(parent)) if self.resources[parent].kind == RscKind::Group => {
                if let Some(clone) = self.resources[parent].parent {
                    self.cloned_members.insert(def.name.to_string(), clone);
                }
            }
            _ => {}
        }
        index
    }

    fn add_group(&mut self, name: &str, meta: &ResourceMeta, members: &[PrimitiveDef], parent: Option<RscIdx>, suffix: Option<usize>) -> RscIdx {
        let id = match suffix {
            Some(instance) => format!("{name}:{instance}"),
            None => name.to_string(),
        };
        let group = self.new_rsc(id, name, RscKind::Group, parent, meta);
        for member in members {
            self.add_primitive(member, Some(group), suffix);
        }
        if suffix.is_none() {
            self.by_name.insert(name.to_string(), group);
        }
        group
    }

    fn add_clone(
        &mut self,
        name: &str,
        clone: &CloneSpec,
        meta: &ResourceMeta,
        mut add_instance: impl FnMut(&mut Builder, RscIdx, Option<usize>) -> RscIdx,
    ) -> RscIdx {
        let node_count = self.nodes.len();
        let promotable = clone.promotable.as_ref();
        let info = CloneInfo {
            max: clone.max.map_or(node_count, |max| max as usize),
            min: clone.min.map_or(1, |min| min as usize),
            node_max: clone.node_max.map_or(1, |max| max as usize),
            unique: clone.globally_unique,
            interleave: clone.interleave,
            promotable: promotable.is_some(),
            promoted_max: promotable.and_then(|p| p.promoted_max).map_or(1, |max| max as usize),
            promoted_node_max: promotable.and_then(|p| p.promoted_node_max).map_or(1, |max| max as usize),
        };
        let max = info.max;
        let index = self.new_rsc(name.to_string(), name, RscKind::Clone, None, meta);
        self.resources[index].clone = Some(info);
        for instance in 0..max {
            add_instance(self, index, Some(instance));
        }
        self.by_name.insert(name.to_string(), index);
        index
    }

    /// Reads every history into current roles and failures (see the module comment).
    fn unpack_history(&mut self, histories: &[ResourceHistory], agents: &HashMap<&str, String>, digests: &HashMap<&str, Option<digest::Configured>>) {
        let node_index: HashMap<String, NodeIdx> = self.nodes.iter().enumerate().map(|(index, node)| (node.name.clone(), index)).collect();
        let index = Histories::new(histories);
        for history in histories {
            let Some(&node) = node_index.get(history.node.as_str()) else { continue };
            // Without fencing, a node that is not online is taken to run nothing: its
            // history is not read (Pacemaker does the same; with fencing disabled
            // nothing could ever prove it otherwise). A joining (pending) node is up:
            // what it recorded counts.
            if !self.nodes[node].online && !self.nodes[node].pending && !self.settings.stonith_enabled {
                continue;
            }
            let Some(rsc) = self.find_history_resource(&history.resource, node) else { continue };
            let resource = &mut self.resources[rsc];
            if let (Some(recorded), Some(configured)) = (history.agent.as_deref(), agents.get(resource.name.as_str())) {
                if normalized_agent(recorded) != configured && !resource.definition_changed_on.contains(&node) {
                    resource.definition_changed_on.push(node);
                }
            }
            let configured = digests.get(self.resources[rsc].name.as_str()).and_then(Option::as_ref);
            self.unpack_resource_history(rsc, node, history, &index, &node_index, configured);
        }
        // A managed resource active on a node that is down means the node may still run
        // it: the node must be fenced before the resource runs elsewhere.
        for rsc in &self.resources {
            if !rsc.managed {
                continue;
            }
            for active in &rsc.active {
                let node = &mut self.nodes[active.node];
                if !node.online && !node.pending && !node.maintenance && !node.unclean {
                    node.unclean = true;
                    node.unclean_reason = Some(format!("{} is active there", rsc.id));
                }
            }
        }
    }

    /// The primitive a history entry belongs to: the exact id, or for an anonymous clone
    /// an instance already active on this node, else the first instance not active
    /// anywhere.
    fn find_history_resource(&mut self, id: &str, node: NodeIdx) -> Option<RscIdx> {
        let base = strip_instance(id);
        let configured = match self.by_name.get(base) {
            Some(&configured) => configured,
            None => *self.cloned_members.get(base)?,
        };
        let rsc = &self.resources[configured];
        let clone = self.clone_above(configured);
        let Some(clone) = clone else {
            return (rsc.kind == RscKind::Primitive).then_some(configured);
        };
        let info = self.resources[clone].clone.clone()?;
        let instances = self.resources[clone].children.clone();
        if info.unique {
            // `name:N` names the instance; anything else is an orphan.
            let suffix = id.strip_prefix(base)?.strip_prefix(':')?;
            let instance: usize = suffix.parse().ok()?;
            let instance_rsc = *instances.get(instance)?;
            return self.member_named(instance_rsc, base);
        }
        // Anonymous (Pacemaker's find_anonymous_clone): an instance already active on
        // this node takes the entry unless that very member already runs (a second
        // history of it is an orphan); otherwise the first inactive instance does.
        let mut inactive = None;
        let mut skip_inactive = false;
        for &instance in &instances {
            if self.instance_active_anywhere(instance) {
                if self.instance_active_on(instance, node) {
                    if let Some(member) = self.member_named(instance, base) {
                        if self.resources[member].active.is_empty() {
                            self.rename(member, id);
                            return Some(member);
                        }
                        skip_inactive = true;
                    }
                }
            } else if !skip_inactive && inactive.is_none() {
                inactive = self.member_named(instance, base).filter(|&member| !self.resources[member].blocked);
            }
        }
        if skip_inactive {
            return None;
        }
        let member = inactive?;
        self.rename(member, id);
        Some(member)
    }

    /// Remembers the name a node recorded an instance under, when it differs from the
    /// instance's own (the last one wins, as in Pacemaker).
    fn rename(&mut self, member: RscIdx, id: &str) {
        if self.resources[member].id != id {
            self.resources[member].history_name = Some(id.to_string());
        }
    }

    /// Whether any primitive at or below `rsc` is active on `node`.
    fn instance_active_on(&self, rsc: RscIdx, node: NodeIdx) -> bool {
        let resource = &self.resources[rsc];
        resource.active.iter().any(|active| active.node == node) || resource.children.iter().any(|&child| self.instance_active_on(child, node))
    }

    /// Whether any primitive at or below `rsc` is active anywhere.
    fn instance_active_anywhere(&self, rsc: RscIdx) -> bool {
        let resource = &self.resources[rsc];
        !resource.active.is_empty() || resource.children.iter().any(|&child| self.instance_active_anywhere(child))
    }

    fn clone_above(&self, mut rsc: RscIdx) -> Option<RscIdx> {
        loop {
            if self.resources[rsc].kind == RscKind::Clone {
                return Some(rsc);
            }
            rsc = self.resources[rsc].parent?;
        }
    }

    /// The primitive named `base` at or below `rsc`.
    fn member_named(&self, rsc: RscIdx, base: &str) -> Option<RscIdx> {
        let resource = &self.resources[rsc];
        if resource.kind == RscKind::Primitive {
            return (resource.name == base).then_some(rsc);
        }
        resource.children.iter().find_map(|&child| self.member_named(child, base))
    }

    fn in_promotable(&self, rsc: RscIdx) -> bool {
        self.clone_above(rsc).and_then(|clone| self.resources[clone].clone.as_ref()).is_some_and(|info| info.promotable)
    }

    fn unpack_resource_history(
        &mut self,
        rsc: RscIdx,
        node: NodeIdx,
        history: &ResourceHistory,
        index: &Histories,
        node_index: &HashMap<String, NodeIdx>,
        configured: Option<&digest::Configured>,
    ) {
        // An operation recorded with a parameter digest other than the configured
        // parameters' ran with another definition (unknown either side: not changed).
        let params_changed = |op: &OperationRecord| op.digest.as_deref().zip(configured).is_some_and(|(recorded, configured)| recorded != configured.digest);
        let mut operations: Vec<&OperationRecord> = history.operations.iter().collect();
        operations.sort_by_key(|op| if op.call_id < 0 { i64::MAX } else { op.call_id });
        let promotable = self.in_promotable(rsc);
        let active_role = if promotable { Role::Unpromoted } else { Role::Started };
        let mut role = Role::Stopped;
        let mut on_fail: Option<OnFail> = None;
        let mut last_failure: Option<(String, u64)> = None;
        let mut known = false;
        let mut stop_failed = false;
        // What migration records say about the node at the other end.
        let mut migrations: Vec<migration::Verdict> = Vec::new();
        let nodes = &self.nodes;
        let online = |name: &str| node_index.get(name).is_some_and(|&other| nodes[other].online);
        for op in operations {
            let is_probe = op.operation == "monitor" && op.interval_ms == 0;
            match op.status {
                ExecStatus::Cancelled | ExecStatus::NotSupported | ExecStatus::Invalid => continue,
                ExecStatus::Pending => {
                    known = true;
                    match op.operation.as_str() {
                        "start" | "migrate_from" | "migrate_to" => role = role.max(active_role),
                        "promote" => role = Role::Promoted,
                        "demote" => role = Role::Promoted,
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            known = true;
            let outcome = classify(op, is_probe);
            match outcome {
                Outcome::Success { found } => {
                    let clear = match (op.operation.as_str(), found) {
                        (_, Found::Stopped) => {
                            role = Role::Stopped;
                            true
                        }
                        (_, Found::Promoted) => {
                            role = Role::Promoted;
                            true
                        }
                        ("stop", _) => {
                            role = Role::Stopped;
                            true
                        }
                        ("start" | "migrate_from", _) => {
                            role = active_role;
                            true
                        }
                        ("migrate_to", _) => {
                            let verdict = migration::migrate_to_succeeded(index, &history.resource, &history.node, op, &online);
                            match verdict.here_active {
                                Some(true) => role = active_role,
                                Some(false) => role = Role::Stopped,
                                None => {}
                            }
                            migrations.push(verdict);
                            false
                        }
                        ("promote", _) => {
                            role = Role::Promoted;
                            true
                        }
                        ("demote", _) => {
                            role = Role::Unpromoted;
                            on_fail == Some(OnFail::Demote)
                        }
                        ("monitor", _) => {
                            if role < Role::Started {
                                role = active_role;
                            }
                            last_failure.as_ref().is_some_and(|(name, interval)| name == "monitor" && *interval == op.interval_ms)
                        }
                        _ => {
                            if role < Role::Started {
                                role = active_role;
                            }
                            false
                        }
                    };
                    if clear && matches!(on_fail, Some(OnFail::Ignore | OnFail::Block | OnFail::Demote | OnFail::Restart)) {
                        on_fail = None;
                        last_failure = None;
                    }
                }
                Outcome::Failure { severity, found } => {
                    // A missing agent cannot be ignored: the node can never run it.
                    let policy = match self.failure_policy(rsc, op) {
                        OnFail::Ignore if op.status == ExecStatus::NotInstalled => OnFail::Restart,
                        policy => policy,
                    };
                    if policy == OnFail::Ignore {
                        self.resources[rsc].failure_ignored = true;
                        // Pretend it succeeded: the role follows the operation.
                        if role < Role::Started && op.operation != "stop" {
                            role = active_role;
                        }
                        continue;
                    }
                    if on_fail.is_none_or(|current| severity_rank(policy) > severity_rank(current)) {
                        on_fail = Some(policy);
                    }
                    last_failure = Some((op.operation.clone(), op.interval_ms));
                    match severity {
                        Severity::Soft => {}
                        Severity::Hard => self.resources[rsc].banned_on.push(node),
                        Severity::Fatal => self.resources[rsc].banned_everywhere = true,
                    }
                    match op.operation.as_str() {
                        "migrate_to" => migrations.push(migration::migrate_to_failed(index, &history.resource, &history.node, op, &online)),
                        "migrate_from" => migrations.push(migration::migrate_from_failed(index, &history.resource, &history.node, op, &online)),
                        "stop" => {
                            stop_failed = true;
                            self.resources[rsc].banned_on.push(node);
                        }
                        "promote" => role = Role::Promoted,
                        "demote" => {
                            role = if found == Found::Stopped {
                                Role::Stopped
                            } else if policy == OnFail::Block {
                                Role::Promoted
                            } else {
                                Role::Unpromoted
                            }
                        }
                        _ => {}
                    }
                    if found == Found::Promoted {
                        role = Role::Promoted;
                    }
                    if is_probe && (op.rc == rc::NOT_INSTALLED || op.status == ExecStatus::NotInstalled) {
                        role = Role::Stopped;
                    } else if role < Role::Started {
                        role = active_role;
                    }
                    // A failed start or monitor that ran with other parameters:
                    // Pacemaker clears its fail count ("resource parameters have
                    // changed"), so it bans nothing.
                    // Only a start or a probe: a recurring monitor's digest also covers
                    // its own timeout, so it would always look changed.
                    let cleared = op.interval_ms == 0 && matches!(op.operation.as_str(), "start" | "monitor") && params_changed(op);
                    let key = (node, format!("{}_{}", op.operation, op.interval_ms));
                    if cleared && !self.resources[rsc].failcount_cleared_on.contains(&key) {
                        self.resources[rsc].failcount_cleared_on.push(key);
                    }
                    if op.operation == "start" && self.settings.start_failure_is_fatal && !cleared {
                        // Pacemaker records INFINITY fail counts for failed starts; the
                        // attribute may be missing from an imported history.
                        self.resources[rsc].banned_on.push(node);
                    }
                }
            }
        }
        self.apply_migrations(rsc, node, active_role, migrations, node_index);
        // Running with other parameters than configured: the start (or the
        // migrate_from) that made the copy running now ran with another definition.
        // An agent that can reload (the history has a restart digest) whose
        // non-reloadable parameters are as configured reloads instead (Pacemaker's
        // RSC_DIGEST_ALL with a restart digest).
        let running_call = start_call(&history.operations);
        let changed = history.operations.iter().find(|op| Some(op.call_id) == running_call && op.operation != "monitor" && params_changed(op));
        if let Some(op) = changed.filter(|_| role > Role::Stopped) {
            let reloads = op
                .restart_digest
                .as_ref()
                .zip(configured)
                .is_some_and(|(recorded, configured)| digest::restart_digest(&configured.params, recorded.params.as_deref()) == recorded.digest);
            let resource = &mut self.resources[rsc];
            let list = if reloads { &mut resource.reload_on } else { &mut resource.definition_changed_on };
            if !list.contains(&node) {
                list.push(node);
            }
        }
        let resource = &mut self.resources[rsc];
        if known && !resource.known_on.contains(&node) {
            resource.known_on.push(node);
        }
        if role > Role::Stopped {
            let started_call = start_call(&history.operations);
            // Several histories of one instance on one node: the highest role wins.
            match resource.active.iter_mut().find(|active| active.node == node) {
                Some(active) => active.role = active.role.max(role),
                None => resource.active.push(Active { node, role, started_call }),
            }
        }
        let Some(policy) = on_fail else { return };
        let active = role > Role::Stopped;
        match policy {
            OnFail::Fence => {
                let node = &mut self.nodes[node];
                if !node.unclean {
                    node.unclean = true;
                    node.unclean_reason = Some(format!("{} failed there", self.resources[rsc].id));
                }
                self.resources[rsc].failed = true;
            }
            OnFail::Block => {
                self.resources[rsc].blocked = true;
                self.resources[rsc].failed = active;
            }
            OnFail::Standby => {
                self.nodes[node].standby = true;
                self.resources[rsc].failed = active;
            }
            OnFail::Stop => {
                self.resources[rsc].target_role = Some(Role::Stopped);
                self.resources[rsc].failed = active;
            }
            OnFail::Restart | OnFail::Demote => {
                if active {
                    self.resources[rsc].failed = true;
                }
            }
            OnFail::Ignore => {}
        }
        if stop_failed && policy != OnFail::Fence {
            // A stop that failed and cannot be fenced leaves the resource where it is.
            self.resources[rsc].blocked = true;
        }
    }

    /// What migration records said about the other end: active there too, a partial
    /// migration to continue, or a migration that cannot be trusted (recovered, not
    /// migrated again).
    fn apply_migrations(&mut self, rsc: RscIdx, node: NodeIdx, active_role: Role, migrations: Vec<migration::Verdict>, node_index: &HashMap<String, NodeIdx>) {
        for verdict in migrations {
            let resource = &mut self.resources[rsc];
            if verdict.dangling && !resource.dangling_on.contains(&node) {
                resource.dangling_on.push(node);
            }
            if let Some(&other) = verdict.also_active_on.as_ref().and_then(|name| node_index.get(name.as_str())) {
                if !resource.active.iter().any(|active| active.node == other) {
                    resource.active.push(Active { node: other, role: active_role, started_call: None });
                }
            }
            if let Some((source, target)) = &verdict.partial {
                if let (Some(&source), Some(&target)) = (node_index.get(source.as_str()), node_index.get(target.as_str())) {
                    resource.partial_migration = Some((source, target));
                }
            }
            if verdict.failed {
                resource.failed = true;
                resource.allow_migrate = false;
            }
        }
    }

    /// The configured `on-fail` of the operation, or Pacemaker's default: a failed stop
    /// fences the node when fencing is enabled (blocks otherwise), anything else restarts.
    fn failure_policy(&self, rsc: RscIdx, op: &OperationRecord) -> OnFail {
        let configured =
            self.resources[rsc].operations.iter().find(|def| def.name == op.operation && def.interval_ms == op.interval_ms).and_then(|def| def.on_fail);
        match configured {
            Some(OnFail::Fence) if !self.settings.stonith_enabled => OnFail::Block,
            Some(policy) => policy,
            None if op.operation == "stop" => {
                if self.settings.stonith_enabled {
                    OnFail::Fence
                } else {
                    OnFail::Block
                }
            }
            None => OnFail::Restart,
        }
    }
}

/// The agent each primitive and fence device is configured with, as histories record
/// agents (`class:provider:type`, a fence agent without its `stonith:` class).
fn configured_agents(objects: &[Object]) -> HashMap<&str, String> {
    objects
        .iter()
        .filter_map(|object| match &object.spec {
            Spec::Resource(spec) => Some((object.metadata.name.as_str(), spec.agent.text())),
            Spec::FenceDevice(spec) => Some((object.metadata.name.as_str(), spec.agent.to_string())),
            _ => None,
        })
        .collect()
}

/// The parameter digest of each primitive and fence device as configured, when every
/// parameter is known (`digest.rs`). Primitives with the same parameters (most often
/// none at all) share one computation: an MD5 and the text it digests per primitive
/// were a sixth of unpacking a large CIB.
fn configured_digests(objects: &[Object]) -> HashMap<&str, Option<digest::Configured>> {
    let mut by_params: HashMap<&BTreeMap<String, Param>, Option<digest::Configured>> = HashMap::new();
    let mut digests = HashMap::with_capacity(objects.len());
    for object in objects {
        let configured = match &object.spec {
            Spec::Resource(spec) => by_params.entry(&spec.params).or_insert_with(|| digest::Configured::of(&spec.params)).clone(),
            Spec::FenceDevice(spec) => digest::fence_device_configured(spec),
            _ => continue,
        };
        digests.insert(object.metadata.name.as_str(), configured);
    }
    digests
}

/// A recorded agent in the form `configured_agents` gives.
fn normalized_agent(recorded: &str) -> &str {
    recorded.strip_prefix("stonith:").unwrap_or(recorded)
}

/// A member inherits what its group sets and it does not.
fn inherit(own: &ResourceMeta, group: &ResourceMeta) -> ResourceMeta {
    ResourceMeta {
        target_role: own.target_role.or(group.target_role),
        is_managed: own.is_managed.or(group.is_managed),
        maintenance: own.maintenance.or(group.maintenance),
        resource_stickiness: own.resource_stickiness.or(group.resource_stickiness),
        migration_threshold: own.migration_threshold.or(group.migration_threshold),
        failure_timeout: own.failure_timeout.or(group.failure_timeout),
        allow_migrate: own.allow_migrate.or(group.allow_migrate),
        priority: own.priority.or(group.priority),
        multiple_active: own.multiple_active.or(group.multiple_active),
        requires: own.requires.or(group.requires),
    }
}

/// `rsc:3` → `rsc`.
pub(crate) fn strip_instance(id: &str) -> &str {
    crate::api::names::split_instance(id).0
}

/// What an operation found, when it tells the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Nothing,
    Stopped,
    Promoted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Severity {
    /// May succeed on retry.
    Soft,
    /// Will not work on this node.
    Hard,
    /// Will not work anywhere.
    Fatal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success { found: Found },
    Failure { severity: Severity, found: Found },
}

/// Reads one operation's two axes (execution status, exit code against the expected
/// one) into success or failure. An execution status of Error is judged by the exit
/// code, as Done is (Pacemaker's `remap_operation`): older Pacemaker versions recorded
/// every unexpected result that way, an expected "not running" of a probe included.
fn classify(op: &OperationRecord, is_probe: bool) -> Outcome {
    match op.status {
        ExecStatus::Done | ExecStatus::Error => {}
        ExecStatus::NotInstalled | ExecStatus::ErrorHard => return Outcome::Failure { severity: Severity::Hard, found: Found::Nothing },
        ExecStatus::ErrorFatal => return Outcome::Failure { severity: Severity::Fatal, found: Found::Nothing },
        _ => return Outcome::Failure { severity: Severity::Soft, found: Found::Nothing },
    }
    let expected = op.expected_rc;
    let code = match op.rc {
        rc::DEGRADED => rc::OK,
        rc::DEGRADED_PROMOTED => rc::RUNNING_PROMOTED,
        code => code,
    };
    match code {
        rc::OK => {
            if expected == rc::NOT_RUNNING && !is_probe {
                Outcome::Failure { severity: Severity::Soft, found: Found::Nothing }
            } else {
                Outcome::Success { found: Found::Nothing }
            }
        }
        rc::NOT_RUNNING => {
            if is_probe || expected == rc::NOT_RUNNING || op.operation == "stop" {
                Outcome::Success { found: Found::Stopped }
            } else {
                Outcome::Failure { severity: Severity::Soft, found: Found::Stopped }
            }
        }
        rc::RUNNING_PROMOTED => {
            if is_probe || expected == rc::RUNNING_PROMOTED {
                Outcome::Success { found: Found::Promoted }
            } else {
                Outcome::Failure { severity: Severity::Soft, found: Found::Promoted }
            }
        }
        rc::FAILED_PROMOTED => Outcome::Failure { severity: Severity::Soft, found: Found::Promoted },
        rc::NOT_CONFIGURED => Outcome::Failure { severity: Severity::Fatal, found: Found::Nothing },
        rc::UNIMPLEMENTED if op.interval_ms > 0 => Outcome::Success { found: Found::Nothing },
        rc::UNIMPLEMENTED | rc::NOT_INSTALLED | rc::ERR_ARGS | rc::INSUFFICIENT_PRIV => Outcome::Failure { severity: Severity::Hard, found: Found::Nothing },
        code if code == expected => Outcome::Success { found: Found::Nothing },
        _ => Outcome::Failure { severity: Severity::Soft, found: Found::Nothing },
    }
}

/// Pacemaker keeps the most severe failure policy seen.
fn severity_rank(policy: OnFail) -> u8 {
    match policy {
        OnFail::Ignore => 0,
        OnFail::Demote => 1,
        OnFail::Restart => 2,
        OnFail::Block => 4,
        OnFail::Stop => 5,
        OnFail::Standby => 6,
        OnFail::Fence => 7,
    }
}

/// Resolves constraint objects to indices, evaluating location rules per node.
fn unpack_constraints(cluster: &mut Cluster, by_name: &HashMap<String, RscIdx>, objects: &[Object]) {
    // Node names are unique: each location finds its node here rather than comparing
    // its name with every node's.
    let node_index: HashMap<String, NodeIdx> = cluster.nodes.iter().enumerate().map(|(index, node)| (node.name.clone(), index)).collect();
    let mut any_of_group = 0;
    for (origin, object) in objects.iter().enumerate() {
        match &object.spec {
            // An expired location no longer counts (Pacemaker: a rule whose lifetime
            // date has passed).
            Spec::Location(spec) if spec.expired_at(cluster.settings.now) => {}
            Spec::Location(spec) => unpack_location(cluster, by_name, &node_index, spec, origin),
            Spec::Colocation(spec) => unpack_colocation(cluster, by_name, spec, origin),
            Spec::Order(spec) => unpack_order(cluster, by_name, spec, &mut any_of_group),
            _ => {}
        }
    }
    // Group members: each runs with and after the previous one.
    for index in 0..cluster.resources.len() {
        if cluster.resources[index].kind != RscKind::Group {
            continue;
        }
        let members = cluster.resources[index].children.clone();
        for pair in members.windows(2) {
            cluster.colocations.push(Colocation {
                dependent: pair[1],
                primary: pair[0],
                score: Score::INFINITY,
                dependent_role: None,
                primary_role: None,
                node_attribute: None,
                influence: true,
                origin: None,
            });
        }
    }
}

fn role_filter(role: Option<Role>) -> Option<Role> {
    // "Started" in a constraint means any active role.
    role.filter(|role| *role != Role::Started)
}

fn unpack_location(cluster: &mut Cluster, by_name: &HashMap<String, RscIdx>, node_index: &HashMap<String, NodeIdx>, spec: &LocationSpec, origin: usize) {
    let targets: Vec<RscIdx> = spec.resource.iter().chain(spec.resources.iter()).filter_map(|rsc| by_name.get(rsc.as_str()).copied()).collect();
    let exclusive = spec.resource_discovery == Some(ResourceDiscovery::Exclusive);
    for target in targets {
        if let Some(node_name) = &spec.node {
            let Some(&node) = node_index.get(node_name.as_str()) else { continue };
            cluster.locations.push(LocationRule {
                resource: target,
                role: role_filter(spec.role),
                scores: vec![(node, spec.score.unwrap_or(Score::ZERO))],
                exclusive,
                origin,
            });
        }
        for rule in &spec.rules {
            let mut scores = Vec::new();
            for (index, node) in cluster.nodes.iter().enumerate() {
                if !rules::evaluate(&rule.expression, node) {
                    continue;
                }
                let score = match &rule.score_attribute {
                    Some(attribute) => match node.attribute(attribute) {
                        Some(value) => value.parse::<Score>().unwrap_or(Score::ZERO),
                        None => continue,
                    },
                    None => rule.score.unwrap_or(Score::ZERO),
                };
                scores.push((index, score));
            }
            cluster.locations.push(LocationRule { resource: target, role: role_filter(rule.role.or(spec.role)), scores, exclusive, origin });
        }
    }
}

fn unpack_colocation(cluster: &mut Cluster, by_name: &HashMap<String, RscIdx>, spec: &ColocationSpec, origin: usize) {
    let influence = spec.influence.unwrap_or(true);
    let push = |cluster: &mut Cluster, dependent: RscIdx, primary: RscIdx, dependent_role: Option<Role>, primary_role: Option<Role>| {
        if dependent == primary {
            return;
        }
        cluster.colocations.push(Colocation {
            dependent,
            primary,
            score: spec.score,
            dependent_role: role_filter(dependent_role),
            primary_role: role_filter(primary_role),
            node_attribute: spec.node_attribute.clone(),
            influence,
            origin: Some(origin),
        });
    };
    if let (Some(dependent), Some(primary)) = (&spec.resource, &spec.with_resource) {
        if let (Some(&dependent), Some(&primary)) = (by_name.get(dependent.as_str()), by_name.get(primary.as_str())) {
            push(cluster, dependent, primary, spec.role, spec.with_role);
        }
        return;
    }
    let sets: Vec<(Vec<RscIdx>, bool, Option<Role>)> = spec
        .sets
        .iter()
        .map(|set| {
            let members = set.resources.iter().filter_map(|rsc| by_name.get(rsc.as_str()).copied()).collect();
            (members, set.sequential.unwrap_or(true), set.role)
        })
        .collect();
    // Within a sequential set each member is placed with the one before it; with a
    // negative score each member keeps away from every member before it (the only way
    // none of them shares a node). A non-sequential set ties its members to nothing.
    for (members, sequential, role) in &sets {
        if !*sequential {
            continue;
        }
        if spec.score >= Score::ZERO {
            for pair in members.windows(2) {
                push(cluster, pair[1], pair[0], *role, *role);
            }
        } else {
            for (index, &later) in members.iter().enumerate() {
                for &earlier in &members[..index] {
                    push(cluster, later, earlier, *role, *role);
                }
            }
        }
    }
    // Between sets: the earlier set is placed with the later one.
    for pair in sets.windows(2) {
        let (first_members, first_sequential, first_role) = &pair[0];
        let (second_members, second_sequential, second_role) = &pair[1];
        let dependents: Vec<RscIdx> = if *first_sequential { first_members.first().copied().into_iter().collect() } else { first_members.clone() };
        let primaries: Vec<RscIdx> = if *second_sequential { second_members.last().copied().into_iter().collect() } else { second_members.clone() };
        for &dependent in &dependents {
            for &primary in &primaries {
                push(cluster, dependent, primary, *first_role, *second_role);
            }
        }
    }
}

fn unpack_order(cluster: &mut Cluster, by_name: &HashMap<String, RscIdx>, spec: &OrderSpec, any_of_group: &mut usize) {
    let symmetrical = spec.is_symmetrical();
    let push = |cluster: &mut Cluster, first: RscIdx, first_action: OrderAction, then: RscIdx, then_action: OrderAction, any_of: Option<usize>| {
        if first == then {
            return;
        }
        cluster.orderings.push(Ordering { first, first_action, then, then_action, kind: spec.kind, symmetrical, any_of });
        if symmetrical && spec.kind != OrderKind::Serialize {
            if let (Some(first_inverse), Some(then_inverse)) = (inverse(first_action), inverse(then_action)) {
                cluster.orderings.push(Ordering {
                    first: then,
                    first_action: then_inverse,
                    then: first,
                    then_action: first_inverse,
                    kind: spec.kind,
                    symmetrical,
                    any_of: None,
                });
            }
        }
    };
    if let (Some(first), Some(then)) = (&spec.first, &spec.then) {
        if let (Some(&first), Some(&then)) = (by_name.get(first.as_str()), by_name.get(then.as_str())) {
            push(cluster, first, spec.first_action(), then, spec.then_action(), None);
        }
        return;
    }
    let default_action = spec.first_action.unwrap_or(OrderAction::Start);
    let sets: Vec<(Vec<RscIdx>, bool, bool, OrderAction)> = spec
        .sets
        .iter()
        .map(|set| {
            let members = set.resources.iter().filter_map(|rsc| by_name.get(rsc.as_str()).copied()).collect();
            let action = set.action.or_else(|| set.role.and_then(action_of_role)).unwrap_or(default_action);
            (members, set.sequential.unwrap_or(true), set.require_all.unwrap_or(true), action)
        })
        .collect();
    for (members, sequential, _, action) in &sets {
        if *sequential {
            for pair in members.windows(2) {
                push(cluster, pair[0], *action, pair[1], *action, None);
            }
        }
    }
    for pair in sets.windows(2) {
        let (first_members, first_sequential, first_require_all, first_action) = &pair[0];
        let (second_members, second_sequential, _, second_action) = &pair[1];
        let firsts: Vec<RscIdx> =
            if *first_sequential && *first_require_all { first_members.last().copied().into_iter().collect() } else { first_members.clone() };
        let thens: Vec<RscIdx> = if *second_sequential { second_members.first().copied().into_iter().collect() } else { second_members.clone() };
        let any_of = if *first_require_all {
            None
        } else {
            *any_of_group += 1;
            Some(*any_of_group)
        };
        for &first in &firsts {
            for &then in &thens {
                push(cluster, first, *first_action, then, *second_action, any_of);
            }
        }
    }
}

fn inverse(action: OrderAction) -> Option<OrderAction> {
    Some(match action {
        OrderAction::Start => OrderAction::Stop,
        OrderAction::Stop => OrderAction::Start,
        OrderAction::Promote => OrderAction::Demote,
        OrderAction::Demote => OrderAction::Promote,
    })
}

fn action_of_role(role: Role) -> Option<OrderAction> {
    match role {
        Role::Promoted => Some(OrderAction::Promote),
        Role::Started | Role::Unpromoted => Some(OrderAction::Start),
        Role::Stopped => Some(OrderAction::Stop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixture;

    #[test]
    fn a_name_the_administrator_sets_on_any_node_is_theirs_on_every_node() {
        // The administrator labels n1 secure; n2's agent claims the label (and its own
        // rack, which no Node object sets) at run time, n1's agent contradicts it.
        let objects = [("Node", "n1", "{attributes: {secure: 'true'}}"), ("Node", "n2", "{}")];
        let observed =
            "quorum: true\nnodes:\n  n1: {liveness: Online, attributes: {secure: 'false'}}\n  n2: {liveness: Online, attributes: {secure: 'true', rack: r2}}\n";
        let cluster = unpack(&fixture::snapshot(&[], &objects, observed));
        let attribute = |node: &str, name: &str| {
            let node = cluster.nodes.iter().find(|candidate| candidate.name == node).expect("node");
            node.attributes.get(name).cloned()
        };
        assert_eq!(attribute("n1", "secure").as_deref(), Some("true"));
        assert_eq!(attribute("n2", "secure"), None, "a node cannot label itself with the administrator's name");
        assert_eq!(attribute("n2", "rack").as_deref(), Some("r2"), "a name no Node object sets stays run-time");
    }

    /// db's history on n1: one probe with exit code `rc`, expected `expected`, recorded
    /// with execution status `status`; the unpacked resource.
    fn probed(rc: i32, expected: i32, status: &str) -> Rsc {
        let objects = [("ClusterPolicy", "cluster", "{stonithEnabled: false}"), ("Resource", "db", r#"{agent: "ocf:heartbeat:Dummy"}"#)];
        let observed = format!(
            "history:\n  - {{resource: db, node: n1, operations: [{{operation: monitor, callId: 1, rc: {rc}, expectedRc: {expected}, status: {status}}}]}}\n"
        );
        let cluster = unpack(&fixture::snapshot(&["n1"], &objects, &observed));
        cluster.resources[fixture::resource(&cluster, "db")].clone()
    }

    #[test]
    fn an_execution_error_is_judged_by_its_exit_code_against_the_expected_one() {
        // Older Pacemaker versions recorded a probe's expected "not running" with the
        // execution status Error: it is a success, the resource is stopped there.
        let stopped = probed(7, 7, "Error");
        assert!(stopped.active.is_empty() && !stopped.failed, "{stopped:?}");
        // An unexpected exit code is a failure under either status.
        assert!(probed(1, 7, "Error").failed);
        assert!(probed(1, 7, "Done").failed);
    }
}
