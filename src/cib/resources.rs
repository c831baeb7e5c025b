//! `<resources>`: primitives, groups and clones to Resource, Group and FenceDevice.
//!
//! A clone is folded into the Resource or Group it wraps (`spec.clone`); its id keeps
//! pointing at that object so constraints that name the clone follow. Meta-attributes
//! are flattened the way Pacemaker inherits them: own values first, then the parent's
//! (group, clone), then `rsc_defaults`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _};

use crate::api::agent::{AgentRef, FenceAgentRef};
use crate::api::cluster::{FenceDeviceSpec, HostCheck};
use crate::api::constraint::{ColocationSpec, OrderKind, OrderSpec};
use crate::api::resource::{
    CloneSpec, GroupSpec, MultipleActive, OnFail, Operation, OperationName, PromotableSpec, Requires, ResourceMeta, ResourceSpec, Role,
};
use crate::api::{Duration, Name, Object, ObjectMeta, Param, ParamValue, Score, Spec};

use super::config::{ClusterSettings, NodeTable};
use super::values::{parse_bool, parse_duration, parse_role, parse_score};
use super::xml::Element;
use super::{Importer, Namespace};

/// The value cibsecret leaves in the CIB for a parameter it moved to a local file.
const CIBSECRET_MARKER: &str = "lrm://";
/// Where cibsecret keeps those files on each node (`LRM_CIBSECRETS_DIR`), one per
/// resource and parameter: `<dir>/<resource id>/<parameter>` (and `<parameter>.sign`).
const CIBSECRETS_DIR: &str = "/var/lib/pacemaker/lrm/secrets";

/// The placeable objects of a CIB and how constraints find them.
pub(crate) struct Placed {
    pub objects: Vec<Object>,
    /// Pacemaker id (primitive, group, clone) to the Pacer name it became (looked up,
    /// never walked in order).
    pub refs: HashMap<String, Name>,
    pub fence_devices: BTreeSet<Name>,
    /// Resources and groups that are promotable clones or members of one.
    pub promotable: BTreeSet<Name>,
}

/// A meta-attribute with where it came from: only an element's own values are
/// reported when they cannot be mapped, so an inherited one is reported once.
#[derive(Clone)]
struct MetaValue {
    name: String,
    value: String,
    own: bool,
}

/// Clone options, which configure `spec.clone` rather than the meta block.
const CLONE_OPTIONS: &[&str] = &[
    "clone-max",
    "clone-node-max",
    "clone-min",
    "interleave",
    "notify",
    "ordered",
    "globally-unique",
    "promotable",
    "promoted-max",
    "promoted-node-max",
    "master-max",
    "master-node-max",
];

/// What a child inherits from the clone and group around it. A top-level resource
/// inherits `rsc_defaults` alone, borrowed rather than copied for each of thousands.
#[derive(Clone, Default)]
struct Inherited<'a> {
    meta: Cow<'a, [(String, String)]>,
    params: Vec<(String, String)>,
    promotable: bool,
}

impl Importer {
    pub(super) fn resources(&mut self, configuration: &Element, settings: &ClusterSettings, nodes: &NodeTable) -> Placed {
        let mut placed = Placed { objects: Vec::new(), refs: HashMap::new(), fence_devices: BTreeSet::new(), promotable: BTreeSet::new() };
        let Some(resources) = configuration.child("resources") else { return placed };
        // At least one object per top-level resource: sized once, not moved at every
        // growth (thousands of objects of a few hundred bytes each).
        placed.objects.reserve(resources.children.len());
        placed.refs.reserve(resources.children.len());
        self.names[Namespace::Placeable as usize].reserve(resources.children.len());
        self.taken[Namespace::Placeable as usize].reserve(resources.children.len());
        for element in &resources.children {
            match element.tag {
                "primitive" => {
                    let inherited = Inherited { meta: Cow::Borrowed(settings.resource_defaults.as_slice()), ..Inherited::default() };
                    self.primitive(element, &inherited, None, settings, nodes, &mut placed);
                }
                "group" => {
                    let inherited = Inherited { meta: Cow::Borrowed(settings.resource_defaults.as_slice()), ..Inherited::default() };
                    self.group(element, &inherited, None, settings, nodes, &mut placed);
                }
                "clone" | "master" => self.clone_wrapper(element, settings, nodes, &mut placed),
                other => self.unmapped(other, element.id(), format!("<{other}> has no Pacer equivalent; skipped")),
            }
        }
        placed
    }

    fn clone_wrapper(&mut self, clone: &Element, settings: &ClusterSettings, nodes: &NodeTable, placed: &mut Placed) {
        let id = clone.id();
        let meta = self.nvpairs(clone, "meta_attributes");
        let (spec, rest) = self.clone_spec(clone, &meta);
        let mut inherited = Inherited { meta: Cow::Owned(rest), params: self.nvpairs(clone, "instance_attributes"), promotable: spec.promotable.is_some() };
        for default in &settings.resource_defaults {
            if !inherited.meta.iter().any(|(name, _)| *name == default.0) {
                inherited.meta.to_mut().push(default.clone());
            }
        }
        let children: Vec<&Element> = clone.children.iter().filter(|child| matches!(child.tag, "primitive" | "group")).collect();
        let [child] = children.as_slice() else {
            self.unmapped(clone.tag, id, format!("a clone wraps exactly one primitive or group, this one {}; skipped", children.len()));
            return;
        };
        for other in clone.children.iter().filter(|child| !matches!(child.tag, "primitive" | "group" | "meta_attributes" | "instance_attributes")) {
            self.unmapped(other.tag, other.id(), format!("<{}> inside clone {id} has no Pacer equivalent", other.tag));
        }
        let name = match child.tag {
            "group" => self.group(child, &inherited, Some(spec), settings, nodes, placed),
            _ => self.primitive(child, &inherited, Some(spec), settings, nodes, placed),
        };
        if let Some(name) = name {
            self.clone_ids.insert(id.to_string(), name.to_string());
            placed.refs.insert(id.to_string(), name);
        }
    }

    /// Splits a clone's meta-attributes into its clone options and the rest.
    fn clone_spec(&mut self, clone: &Element, meta: &[(String, String)]) -> (CloneSpec, Vec<(String, String)>) {
        let id = clone.id();
        let mut spec = CloneSpec::default();
        let mut promotable = clone.tag == "master";
        let mut promoted = PromotableSpec::default();
        let mut rest = Vec::new();
        for (name, value) in meta {
            // Counts beyond what Pacer's schema accepts are refused (and reported) here,
            // not left to allocate millions of instances.
            let count = || value.trim().parse::<u32>().ok().filter(|count| *count <= 100_000);
            let flag = || parse_bool(value);
            let ok = match name.as_str() {
                "clone-max" => count().map(|max| spec.max = spec.max.or(Some(max))).is_some(),
                // No instance per node means no instance at all, which Pacer says as max 0.
                "clone-node-max" => match count() {
                    Some(0) => {
                        self.unmapped("nvpair", id, "clone-node-max=0 expressed as clone max 0".into());
                        spec.max = Some(0);
                        true
                    }
                    Some(max) => {
                        spec.node_max = Some(max);
                        true
                    }
                    None => false,
                },
                "interleave" => flag().map(|on| spec.interleave = on).is_some(),
                "notify" => flag().map(|on| spec.notify = on).is_some(),
                "ordered" => flag().map(|on| spec.ordered = on).is_some(),
                "globally-unique" => flag().map(|on| spec.globally_unique = on).is_some(),
                "promotable" => flag().map(|on| promotable = promotable || on).is_some(),
                "promoted-max" | "master-max" => count().map(|max| promoted.promoted_max = promoted.promoted_max.or(Some(max))).is_some(),
                // Likewise, no promoted instance per node is promoted max 0.
                "promoted-node-max" | "master-node-max" => match count() {
                    Some(0) => {
                        self.unmapped("nvpair", id, format!("{name}=0 expressed as promoted max 0"));
                        promoted.promoted_max = Some(0);
                        true
                    }
                    Some(max) => {
                        promoted.promoted_node_max = promoted.promoted_node_max.or(Some(max));
                        true
                    }
                    None => false,
                },
                "clone-min" => count().map(|min| spec.min = Some(min).filter(|min| *min > 0)).is_some(),
                _ => {
                    rest.push((name.clone(), value.clone()));
                    true
                }
            };
            if !ok {
                self.unmapped("nvpair", id, format!("{name}={value:?} is not valid; the default applies"));
            }
        }
        if promotable {
            spec.promotable = Some(promoted);
        } else if promoted != PromotableSpec::default() {
            self.unmapped("nvpair", id, "promoted-max/promoted-node-max on a clone that is not promotable".into());
        }
        (spec, rest)
    }

    fn group(
        &mut self,
        group: &Element,
        inherited: &Inherited<'_>,
        clone: Option<CloneSpec>,
        settings: &ClusterSettings,
        nodes: &NodeTable,
        placed: &mut Placed,
    ) -> Option<Name> {
        let id = group.id();
        let own = self.nvpairs(group, "meta_attributes");
        for (name, value) in &own {
            if matches!(name.as_str(), "ordered" | "collocated") && parse_bool(value) == Some(false) {
                self.unmapped("nvpair", id, format!("group option {name}=false has no Pacer equivalent; members stay ordered and together"));
            }
        }
        let own: Vec<(String, String)> = own.into_iter().filter(|(name, _)| !matches!(name.as_str(), "ordered" | "collocated")).collect();
        let meta = merge(&own, &inherited.meta);
        let mut params = self.nvpairs(group, "instance_attributes");
        params = fill(params, &inherited.params);
        let promotable = clone.as_ref().is_some_and(|spec| spec.promotable.is_some()) || inherited.promotable;
        let for_members = Inherited { meta: Cow::Owned(meta.iter().map(|value| (value.name.clone(), value.value.clone())).collect()), params, promotable };
        let position = placed.objects.len();
        let name = self.name(Namespace::Placeable, "group", id);
        let mut members = Vec::new();
        let mut devices = Vec::new();
        for child in &group.children {
            match child.tag {
                "primitive" if child.attr("class") == Some("stonith") => {
                    self.unmapped("primitive", child.id(), format!("fence device inside group {id} imported on its own; Pacer groups hold Resources only"));
                    if let Some(device) = self.primitive(child, &for_members, None, settings, nodes, placed) {
                        devices.push(device);
                    }
                }
                "primitive" => {
                    if let Some(member) = self.primitive(child, &for_members, None, settings, nodes, placed) {
                        members.push(member);
                    }
                }
                "meta_attributes" | "instance_attributes" => {}
                other => self.unmapped(other, child.id(), format!("<{other}> inside group {id} has no Pacer equivalent")),
            }
        }
        if members.is_empty() {
            // A group of one fence device still means that device to its constraints.
            if let [device] = devices.as_slice() {
                self.unmapped("group", id, format!("group of fence device {device} only; constraints on the group apply to the device"));
                placed.refs.insert(id.to_string(), device.clone());
            } else if let Some(first) = devices.first().filter(|_| clone.is_none()) {
                // A group of fence devices only: what a group means, spelled out — each
                // device with the one before it and started after it —, and constraints
                // on the group apply to its first device, which the others follow.
                self.unmapped(
                    "group",
                    id,
                    format!("group of fence devices only; imported as colocations and orders of its devices, constraints on the group apply to {first}"),
                );
                for (index, pair) in devices.windows(2).enumerate() {
                    let colocation = ColocationSpec {
                        resource: Some(pair[1].clone()),
                        role: None,
                        with_resource: Some(pair[0].clone()),
                        with_role: None,
                        score: Score::INFINITY,
                        node_attribute: None,
                        influence: None,
                        sets: Vec::new(),
                    };
                    let name = self.name(Namespace::Constraint, "group", &format!("{id}-colocation-{}", index + 1));
                    placed.objects.push(Object { metadata: ObjectMeta { name, ..ObjectMeta::default() }, spec: Spec::Colocation(colocation) });
                    let order = OrderSpec {
                        first: Some(pair[0].clone()),
                        first_action: None,
                        then: Some(pair[1].clone()),
                        then_action: None,
                        kind: OrderKind::Mandatory,
                        symmetrical: None,
                        sets: Vec::new(),
                    };
                    let name = self.name(Namespace::Constraint, "group", &format!("{id}-order-{}", index + 1));
                    placed.objects.push(Object { metadata: ObjectMeta { name, ..ObjectMeta::default() }, spec: Spec::Order(order) });
                }
                placed.refs.insert(id.to_string(), first.clone());
            } else {
                self.unmapped("group", id, "no Resource member could be mapped; group skipped".into());
            }
            return None;
        }
        let meta = self.resource_meta(id, &meta, promotable);
        let object = Object { metadata: ObjectMeta { name: name.clone(), ..ObjectMeta::default() }, spec: Spec::Group(GroupSpec { members, meta, clone }) };
        placed.objects.insert(position, object);
        placed.refs.insert(id.to_string(), name.clone());
        if promotable {
            placed.promotable.insert(name.clone());
        }
        Some(name)
    }

    fn primitive(
        &mut self,
        primitive: &Element,
        inherited: &Inherited<'_>,
        clone: Option<CloneSpec>,
        settings: &ClusterSettings,
        nodes: &NodeTable,
        placed: &mut Placed,
    ) -> Option<Name> {
        let id = primitive.id();
        if primitive.attr("template").is_some() {
            self.unmapped("primitive", id, "resources defined by a template have no Pacer equivalent; skipped".into());
            return None;
        }
        let class = primitive.attr("class").unwrap_or_default();
        let agent_type = primitive.attr("type").unwrap_or_default();
        let own_meta = self.nvpairs(primitive, "meta_attributes");
        let meta = merge(&own_meta, &inherited.meta);
        let params = fill(self.nvpairs(primitive, "instance_attributes"), &inherited.params);
        let promotable = inherited.promotable || clone.as_ref().is_some_and(|spec| spec.promotable.is_some());
        let utilization = self.utilization(primitive, id);
        if class == "stonith" {
            let mut clone = clone;
            if inherited.promotable || clone.as_ref().is_some_and(|spec| spec.promotable.is_some()) {
                self.unmapped("primitive", id, "a promotable fence device has no Pacer equivalent; imported as a plain clone".into());
                if let Some(spec) = clone.as_mut() {
                    spec.promotable = None;
                }
            }
            let agent = match agent_type.parse::<FenceAgentRef>() {
                Ok(agent) => agent,
                Err(error) => {
                    self.unmapped("primitive", id, format!("fence device skipped: {error}"));
                    return None;
                }
            };
            let name = self.name(Namespace::Placeable, "primitive", id);
            let mut spec = FenceDeviceSpec {
                agent,
                params: BTreeMap::new(),
                host_list: Vec::new(),
                host_map: BTreeMap::new(),
                host_check: None,
                host_argument: None,
                delay: None,
                delay_max: None,
                timeout: None,
                retries: None,
                operations: Vec::new(),
                meta: ResourceMeta::default(),
                unfencing: false,
                clone,
            };
            self.fence_params(id, &params, nodes, &mut spec);
            spec.operations = self.operations(primitive, false, settings, true);
            // provides=unfencing belongs to the device, not to its meta.
            let (provides, meta): (Vec<MetaValue>, Vec<MetaValue>) = meta.into_iter().partition(|value| value.name == "provides");
            for value in provides {
                if value.value.trim() == "unfencing" {
                    spec.unfencing = true;
                } else {
                    self.unmapped("nvpair", id, format!("provides={} has no Pacer equivalent", value.value));
                }
            }
            spec.meta = self.resource_meta(id, &meta, false);
            if !utilization.is_empty() {
                self.unmapped("utilization", id, "fence devices take no utilization in Pacer".into());
            }
            placed.fence_devices.insert(name.clone());
            placed.refs.insert(id.to_string(), name.clone());
            placed.objects.push(Object { metadata: ObjectMeta { name: name.clone(), ..ObjectMeta::default() }, spec: Spec::FenceDevice(spec) });
            return Some(name);
        }
        // Old test configurations name an agent by its path; Pacer names agents only
        // inside its agent directories, so the file name is what it can keep.
        let agent_type = match agent_type.rsplit_once('/') {
            Some((_, file)) if !file.is_empty() => {
                self.unmapped("primitive", id, format!("agent path {agent_type} reduced to its file name {file}"));
                self.altered_definitions.insert(id.to_string());
                file
            }
            _ => agent_type,
        };
        let agent_text = match (class, primitive.attr("provider")) {
            ("ocf", Some(provider)) => ["ocf:", provider, ":", agent_type].concat(),
            ("service", _) => ["lsb:", agent_type].concat(),
            (class, _) => [class, ":", agent_type].concat(),
        };
        if class == "service" {
            self.unmapped("primitive", id, format!("service:{agent_type} resolved as lsb:{agent_type}"));
            self.altered_definitions.insert(id.to_string());
        }
        let agent = match agent_text.parse::<AgentRef>() {
            Ok(agent) => agent,
            Err(error) => {
                self.unmapped("primitive", id, format!("resource skipped: {error}"));
                return None;
            }
        };
        let name = self.name(Namespace::Placeable, "primitive", id);
        let mut resource_params = BTreeMap::new();
        for (param, value) in params {
            if is_identifier(&param, false) {
                let imported = self.import_param(id, &param, value);
                resource_params.insert(param, imported);
            } else {
                self.unmapped("nvpair", id, format!("parameter name {param:?} is not allowed in Pacer"));
                self.altered_definitions.insert(id.to_string());
            }
        }
        let spec = ResourceSpec {
            agent,
            params: resource_params,
            operations: self.operations(primitive, promotable, settings, false),
            meta: self.resource_meta(id, &meta, promotable),
            utilization,
            clone,
        };
        placed.refs.insert(id.to_string(), name.clone());
        if promotable {
            placed.promotable.insert(name.clone());
        }
        placed.objects.push(Object { metadata: ObjectMeta { name: name.clone(), ..ObjectMeta::default() }, spec: Spec::Resource(spec) });
        Some(name)
    }

    /// One instance attribute of primitive `id` as a Pacer parameter. cibsecret's
    /// marker (`lrm://`: the value is in a file on each node) becomes a reference to
    /// that file, `/var/lib/pacemaker/lrm/secrets/<id>/<param>`; so does a plain
    /// value whose name is taken for a secret (`params::is_secret_name`), which is
    /// not copied into the output. Both with a note.
    fn import_param(&mut self, id: &str, param: &str, value: String) -> Param {
        let cibsecret = value.trim() == CIBSECRET_MARKER;
        if !cibsecret && !crate::api::params::is_secret_name(param) {
            return Param::Value(ParamValue(value));
        }
        let path = format!("{CIBSECRETS_DIR}/{id}/{param}");
        let reason = if cibsecret {
            format!("{param} is a cibsecret (lrm://): read from {path} on each node, where `cibsecret set` keeps it (its .sign checksum is not checked)")
        } else {
            format!("{param} looks like a secret: its value is not copied; write it to {path} (mode 0600) on each node, or change the secretFile path")
        };
        self.unmapped("nvpair", id, reason);
        Param::SecretFile(path)
    }

    fn fence_params(&mut self, id: &str, params: &[(String, String)], nodes: &NodeTable, spec: &mut FenceDeviceSpec) {
        for (param, value) in params {
            let mut invalid = false;
            match param.as_str() {
                "pcmk_host_list" => {
                    for host in value.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|host| !host.is_empty()) {
                        match nodes.find(host) {
                            Some(node) => spec.host_list.push(node.clone()),
                            None => self.unmapped("nvpair", id, format!("pcmk_host_list names {host}, which is not a configured node; left out")),
                        }
                    }
                }
                "pcmk_host_map" => {
                    for entry in value.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|entry| !entry.is_empty()) {
                        let pair = entry.split_once(['=', ':']);
                        match pair.and_then(|(host, port)| nodes.find(host).map(|node| (node, port))) {
                            Some((node, port)) if !port.is_empty() => {
                                spec.host_map.insert(node.to_string(), port.to_string());
                            }
                            _ => self.unmapped("nvpair", id, format!("pcmk_host_map entry {entry:?} does not map a configured node; left out")),
                        }
                    }
                }
                "pcmk_host_check" => match value.trim() {
                    "static-list" => spec.host_check = Some(HostCheck::StaticList),
                    "dynamic-list" => spec.host_check = Some(HostCheck::DynamicList),
                    "status" => spec.host_check = Some(HostCheck::Status),
                    "none" => spec.host_check = Some(HostCheck::None),
                    _ => invalid = true,
                },
                "pcmk_host_argument" => spec.host_argument = Some(value.clone()),
                "pcmk_delay_base" => spec.delay = parse_duration(value).or_else(|| mark(&mut invalid)),
                "pcmk_delay_max" => spec.delay_max = parse_duration(value).or_else(|| mark(&mut invalid)),
                "pcmk_reboot_timeout" => spec.timeout = parse_duration(value).filter(|timeout| !timeout.is_zero()).or_else(|| mark(&mut invalid)),
                "pcmk_reboot_retries" => {
                    spec.retries = value.trim().parse::<u32>().ok().filter(|retries| (1..=100).contains(retries)).or_else(|| mark(&mut invalid))
                }
                "action" | "nodename" => {
                    self.unmapped("nvpair", id, format!("fence parameter {param} is set by the fencer for each request; left out"));
                    self.altered_definitions.insert(id.to_string());
                }
                _ if is_identifier(param, true) => {
                    let imported = self.import_param(id, param, value.clone());
                    spec.params.insert(param.clone(), imported);
                }
                _ => {
                    self.unmapped("nvpair", id, format!("parameter name {param:?} is not allowed in Pacer"));
                    self.altered_definitions.insert(id.to_string());
                }
            }
            if invalid {
                self.unmapped("nvpair", id, format!("{param}={value:?} is not valid; left out"));
                self.altered_definitions.insert(id.to_string());
            }
        }
        if spec.host_check == Some(HostCheck::StaticList) && spec.host_list.is_empty() && spec.host_map.is_empty() {
            self.unmapped("nvpair", id, "pcmk_host_check=static-list without any configured node; left out".into());
            spec.host_check = None;
        }
        if let (Some(delay), Some(delay_max)) = (spec.delay, spec.delay_max)
            && delay > delay_max
        {
            self.unmapped("nvpair", id, format!("pcmk_delay_base {delay} is more than pcmk_delay_max {delay_max}; delay max left out"));
            spec.delay_max = None;
        }
    }

    /// Maps `<operations><op>`: operations Pacer refuses are recorded and left out.
    fn operations(&mut self, primitive: &Element, promotable: bool, settings: &ClusterSettings, fence_device: bool) -> Vec<Operation> {
        let mut operations: Vec<Operation> = Vec::new();
        let Some(list) = primitive.child("operations") else { return operations };
        for op in list.children_named("op") {
            let op_id = op.id();
            let op_name = op.attr("name").unwrap_or_default();
            let Some(name) = operation_name(op_name) else {
                self.unmapped("op", op_id, format!("operation {op_name:?} has no Pacer equivalent"));
                continue;
            };
            if fence_device && name != OperationName::Monitor {
                self.unmapped("op", op_id, format!("fence devices take monitor operations only; {op_name} left out"));
                continue;
            }
            let interval = match op.attr("interval").map(parse_duration) {
                None => Duration::ZERO,
                Some(Some(interval)) => interval,
                Some(None) => {
                    self.unmapped("op", op_id, format!("interval {:?} is not a duration", op.attr("interval").unwrap_or_default()));
                    continue;
                }
            };
            if !interval.is_zero() && name != OperationName::Monitor {
                self.unmapped("op", op_id, format!("only monitors recur in Pacer; recurring {op_name} left out"));
                continue;
            }
            let timeout = match op.attr("timeout") {
                None => settings.operation_timeout,
                Some(text) => match parse_duration(text).filter(|timeout| !timeout.is_zero()) {
                    Some(timeout) => Some(timeout),
                    None => {
                        self.unmapped("op", op_id, format!("timeout {text:?} is not a positive duration; the default applies"));
                        settings.operation_timeout
                    }
                },
            };
            let role = match op.attr("role").map(|text| (text, parse_role(text))) {
                None => None,
                Some((_, Some(role @ (Role::Promoted | Role::Unpromoted)))) if !promotable => {
                    self.unmapped("op", op_id, format!("{} monitor of a resource that is not promotable never runs; left out", role.as_str()));
                    continue;
                }
                Some((_, Some(role))) => Some(role),
                Some((text, None)) => {
                    self.unmapped("op", op_id, format!("role {text:?} is not a role; left out"));
                    continue;
                }
            };
            let on_fail = op.attr("on-fail").and_then(|text| match on_fail(text) {
                Some(OnFail::Demote) if !(name == OperationName::Promote || (name == OperationName::Monitor && role == Some(Role::Promoted))) => {
                    self.unmapped("op", op_id, "on-fail=demote applies to promote and Promoted monitors only; left out".into());
                    None
                }
                Some(value) => Some(value),
                None => {
                    self.unmapped("op", op_id, format!("on-fail={text} has no Pacer equivalent; the default applies"));
                    None
                }
            });
            let enabled = op.attr("enabled").and_then(|text| {
                let parsed = parse_bool(text);
                if parsed.is_none() {
                    self.unmapped("op", op_id, format!("enabled={text:?} is not a boolean"));
                }
                parsed
            });
            for (attribute, _) in op.attributes() {
                if !matches!(attribute, "id" | "name" | "interval" | "timeout" | "role" | "on-fail" | "enabled" | "description") {
                    self.unmapped("op", op_id, format!("operation attribute {attribute} has no Pacer equivalent"));
                }
            }
            for child in &op.children {
                self.unmapped(child.tag, op_id, format!("<{}> of an operation has no Pacer equivalent", child.tag));
            }
            if let Some(first) = operations.iter().position(|existing| existing.name == name && existing.interval == interval) {
                self.unmapped("op", op_id, format!("same name and interval as operation {first}; left out"));
                continue;
            }
            operations.push(Operation { name, interval, timeout, role, on_fail, enabled });
        }
        operations
    }

    /// Maps meta-attributes to `ResourceMeta`; unknown and invalid values the element
    /// set itself are recorded.
    fn resource_meta(&mut self, id: &str, meta: &[MetaValue], promotable: bool) -> ResourceMeta {
        let mut result = ResourceMeta::default();
        for MetaValue { name, value, own } in meta {
            let report = |importer: &mut Importer, reason: String| {
                if *own {
                    importer.unmapped("nvpair", id, reason);
                }
            };
            let invalid = match name.as_str() {
                "target-role" => match parse_role(value) {
                    Some(Role::Promoted | Role::Unpromoted) if !promotable => {
                        report(self, format!("target-role {value} of a resource that is not promotable; Started"));
                        result.target_role = Some(Role::Started);
                        false
                    }
                    Some(role) => {
                        result.target_role = Some(role);
                        false
                    }
                    None => true,
                },
                "is-managed" => parse_bool(value).map(|on| result.is_managed = Some(on)).is_none(),
                "resource-stickiness" => parse_score(value).map(|score| result.resource_stickiness = Some(score)).is_none(),
                "migration-threshold" => parse_score(value).filter(|score| score.value() >= 0).map(|score| result.migration_threshold = Some(score)).is_none(),
                "failure-timeout" => parse_duration(value).map(|timeout| result.failure_timeout = Some(timeout)).is_none(),
                "allow-migrate" => parse_bool(value).map(|on| result.allow_migrate = Some(on)).is_none(),
                "priority" => parse_score(value).map(|score| result.priority = Some(score)).is_none(),
                "multiple-active" => multiple_active(value).map(|policy| result.multiple_active = Some(policy)).is_none(),
                "requires" => requires(value).map(|condition| result.requires = Some(condition)).is_none(),
                "maintenance" => parse_bool(value).map(|on| result.maintenance = Some(on)).is_none(),
                other if CLONE_OPTIONS.contains(&other) => {
                    report(self, format!("clone option {other} on a resource that is not a clone; ignored"));
                    false
                }
                other => {
                    report(self, format!("meta-attribute {other}={value} has no Pacer equivalent"));
                    false
                }
            };
            if invalid {
                report(self, format!("{name}={value:?} is not valid; the default applies"));
            }
        }
        result
    }
}

/// Own values first, then inherited ones the element does not set itself.
fn merge(own: &[(String, String)], inherited: &[(String, String)]) -> Vec<MetaValue> {
    let mut merged: Vec<MetaValue> = own.iter().map(|(name, value)| MetaValue { name: name.clone(), value: value.clone(), own: true }).collect();
    for (name, value) in inherited {
        if !merged.iter().any(|existing| existing.name == *name) {
            merged.push(MetaValue { name: name.clone(), value: value.clone(), own: false });
        }
    }
    merged
}

fn fill(mut own: Vec<(String, String)>, inherited: &[(String, String)]) -> Vec<(String, String)> {
    for (name, value) in inherited {
        if !own.iter().any(|(existing, _)| existing == name) {
            own.push((name.clone(), value.clone()));
        }
    }
    own
}

/// Records that a value did not parse and yields nothing.
fn mark<T>(invalid: &mut bool) -> Option<T> {
    *invalid = true;
    None
}

/// Parameter names: `[A-Za-z_][A-Za-z0-9_]*` (fence devices also allow `-`), at most 128.
fn is_identifier(name: &str, dashes: bool) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'))
}

fn operation_name(text: &str) -> Option<OperationName> {
    Some(match text {
        "monitor" => OperationName::Monitor,
        "start" => OperationName::Start,
        "stop" => OperationName::Stop,
        "promote" => OperationName::Promote,
        "demote" => OperationName::Demote,
        "migrate_to" => OperationName::MigrateTo,
        "migrate_from" => OperationName::MigrateFrom,
        "notify" => OperationName::Notify,
        "reload" => OperationName::Reload,
        "reload-agent" => OperationName::ReloadAgent,
        _ => return None,
    })
}

fn multiple_active(text: &str) -> Option<MultipleActive> {
    Some(match text.trim() {
        "stop_start" => MultipleActive::StopStart,
        "stop_only" => MultipleActive::StopOnly,
        "block" => MultipleActive::Block,
        "stop_unexpected" => MultipleActive::StopUnexpected,
        _ => return None,
    })
}

fn requires(text: &str) -> Option<Requires> {
    Some(match text.trim() {
        "nothing" => Requires::Nothing,
        "quorum" => Requires::Quorum,
        "fencing" => Requires::Fencing,
        "unfencing" => Requires::Unfencing,
        _ => return None,
    })
}

fn on_fail(text: &str) -> Option<OnFail> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "ignore" => OnFail::Ignore,
        "block" => OnFail::Block,
        "stop" => OnFail::Stop,
        "restart" => OnFail::Restart,
        "standby" => OnFail::Standby,
        "fence" => OnFail::Fence,
        "demote" => OnFail::Demote,
        _ => return None,
    })
}
