//! Semantic checks over a whole set of objects: what a schema cannot say.
//!
//! Pure: `check_objects` takes the set as it would be after a change and returns
//! problems as data. Callers decide which problems a change is responsible for.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::cluster::{AlertSpec, FenceDeviceSpec, FencingTopologySpec, HostCheck, NodeSpec};
use super::constraint::{ColocationSpec, Expression, ExpressionOperation, ExpressionType, LocationSpec, OrderAction, OrderKind, OrderSpec, ResourceSet};
use super::names::Name;
use super::object::{Kind, Object, ObjectKey, Spec};
use super::params::Param;
use super::path::FieldPath;
use super::resource::{CloneSpec, GroupSpec, OnFail, OperationName, ResourceMeta, ResourceSpec, Role};

/// The largest object accepted, as encoded JSON.
pub const MAX_OBJECT_BYTES: usize = 256 * 1024;

/// The name of the one ClusterPolicy.
pub const CLUSTER_POLICY_NAME: &str = "cluster";

/// Objects by kind and name: the cluster's desired state.
pub type ObjectSet = BTreeMap<ObjectKey, Object>;

/// One semantic problem with one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub key: ObjectKey,
    pub path: FieldPath,
    pub message: String,
    /// For a reference to an object that does not exist: the name referred to.
    pub missing: Option<String>,
    /// Another object involved (the other group listing the same member, the member
    /// that became a clone): a change to it can cause this problem.
    pub other: Option<ObjectKey>,
}

/// Checks every object of `objects`, and the references between them.
pub fn check_objects(objects: &ObjectSet) -> Vec<Problem> {
    let index = Index::new(objects);
    let mut problems = Vec::new();
    for object in objects.values() {
        let mut checker = Checker { index: &index, key: object.key(), problems: &mut problems };
        checker.check(object);
    }
    check_order_cycles(objects, &mut problems);
    problems.sort();
    problems.dedup();
    problems
}

/// Names of placeable objects (resources, groups, fence devices) and other lookups.
struct Index<'a> {
    placeable: HashMap<&'a str, (Kind, &'a Object)>,
    nodes: BTreeSet<&'a str>,
    /// Groups by member: every group that lists the member, in name order.
    groups_of: HashMap<&'a str, Vec<&'a str>>,
    /// FencingTopology objects by node, in name order.
    topologies_of: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Index<'a> {
    fn new(objects: &'a ObjectSet) -> Index<'a> {
        let mut index = Index { placeable: HashMap::new(), nodes: BTreeSet::new(), groups_of: HashMap::new(), topologies_of: HashMap::new() };
        for (key, object) in objects {
            if key.kind.is_placeable() {
                index.placeable.entry(key.name.as_str()).or_insert((key.kind, object));
            }
            match &object.spec {
                Spec::Node(_) => {
                    index.nodes.insert(key.name.as_str());
                }
                Spec::Group(group) => {
                    for member in &group.members {
                        index.groups_of.entry(member.as_str()).or_default().push(key.name.as_str());
                    }
                }
                Spec::FencingTopology(topology) => {
                    index.topologies_of.entry(topology.node.as_str()).or_default().push(key.name.as_str());
                }
                _ => {}
            }
        }
        index
    }

    /// The clone block governing `name`: its own, or its group's.
    fn clone_of(&self, name: &str) -> Option<&'a CloneSpec> {
        match self.placeable.get(name) {
            Some((_, Object { spec: Spec::Resource(resource), .. })) => {
                let group = self.groups_of.get(name).and_then(|groups| groups.first());
                resource.clone.as_ref().or_else(|| group.and_then(|group| self.clone_of(group)))
            }
            Some((_, Object { spec: Spec::Group(group), .. })) => group.clone.as_ref(),
            _ => None,
        }
    }

    fn is_promotable(&self, name: &str) -> bool {
        self.clone_of(name).is_some_and(|clone| clone.promotable.is_some())
    }
}

struct Checker<'i, 'a, 'p> {
    index: &'i Index<'a>,
    key: ObjectKey,
    problems: &'p mut Vec<Problem>,
}

fn spec_path(field: &str) -> FieldPath {
    FieldPath::of(&["spec", field])
}

impl Checker<'_, '_, '_> {
    fn problem(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push(Problem { key: self.key.clone(), path, message: message.into(), missing: None, other: None });
    }

    fn missing(&mut self, path: FieldPath, name: &str, message: String) {
        self.problems.push(Problem { key: self.key.clone(), path, message, missing: Some(name.to_string()), other: None });
    }

    fn involving(&mut self, path: FieldPath, other: ObjectKey, message: String) {
        self.problems.push(Problem { key: self.key.clone(), path, message, missing: None, other: Some(other) });
    }

    fn check(&mut self, object: &Object) {
        self.check_metadata(object);
        match &object.spec {
            Spec::Resource(resource) => self.check_resource(resource),
            Spec::Group(group) => self.check_group(group),
            Spec::Location(location) => self.check_location(location),
            Spec::Colocation(colocation) => self.check_colocation(colocation),
            Spec::Order(order) => self.check_order(order),
            Spec::FenceDevice(device) => self.check_fence_device(device),
            Spec::FencingTopology(topology) => self.check_topology(topology),
            Spec::Node(node) => self.check_node(node),
            Spec::ClusterPolicy(_) => {
                if object.name().as_str() != CLUSTER_POLICY_NAME {
                    self.problem(FieldPath::of(&["metadata", "name"]), format!("the ClusterPolicy is a singleton named {CLUSTER_POLICY_NAME:?}"));
                }
            }
            Spec::Alert(alert) => self.check_alert(alert),
        }
    }

    fn check_metadata(&mut self, object: &Object) {
        let size = object.encoded_len();
        if size > MAX_OBJECT_BYTES {
            self.problem(FieldPath::root(), format!("object is {size} bytes, more than the limit of {MAX_OBJECT_BYTES}"));
        }
        for (key, value) in &object.metadata.labels {
            let path = FieldPath::of(&["metadata", "labels"]).key(key.clone());
            if let Err(reason) = check_label_key(key) {
                self.problem(path.clone(), format!("invalid label key: {reason}"));
            }
            if let Err(reason) = check_label_value(value) {
                self.problem(path, format!("invalid label value {value:?}: {reason}"));
            }
        }
        for key in object.metadata.annotations.keys() {
            if let Err(reason) = check_label_key(key) {
                self.problem(FieldPath::of(&["metadata", "annotations"]).key(key.clone()), format!("invalid annotation key: {reason}"));
            }
        }
    }

    fn check_params(&mut self, params: &BTreeMap<String, Param>) {
        for (name, value) in params {
            if let Err(reason) = check_param_value(value) {
                self.problem(spec_path("params").key(name.clone()), reason);
            }
        }
    }

    fn check_meta(&mut self, meta: &ResourceMeta, promotable: bool) {
        if matches!(meta.target_role, Some(Role::Promoted | Role::Unpromoted)) && !promotable {
            self.problem(FieldPath::of(&["spec", "meta", "targetRole"]), "Promoted and Unpromoted are roles of promotable clones only");
        }
        if meta.migration_threshold.is_some_and(|threshold| threshold.value() < 0) {
            self.problem(FieldPath::of(&["spec", "meta", "migrationThreshold"]), "must not be negative");
        }
    }

    fn check_clone(&mut self, clone: &CloneSpec) {
        if let (Some(max), Some(min)) = (clone.max, clone.min)
            && min > max
        {
            self.problem(FieldPath::of(&["spec", "clone", "min"]), format!("{min} instances needed of at most {max}"));
        }
        let Some(promotable) = &clone.promotable else { return };
        if let (Some(max), Some(promoted_max)) = (clone.max, promotable.promoted_max)
            && promoted_max > max
        {
            self.problem(FieldPath::of(&["spec", "clone", "promotable", "promotedMax"]), format!("{promoted_max} promoted instances of at most {max}"));
        }
        if let (Some(node_max), Some(promoted_node_max)) = (clone.node_max, promotable.promoted_node_max)
            && promoted_node_max > node_max
        {
            self.problem(
                FieldPath::of(&["spec", "clone", "promotable", "promotedNodeMax"]),
                format!("{promoted_node_max} promoted instances per node of at most {node_max}"),
            );
        }
    }

    fn check_operations(&mut self, operations: &[super::resource::Operation], promotable: bool, fence_device: bool) {
        let mut seen: HashMap<(OperationName, u64), (usize, Option<Role>)> = HashMap::new();
        for (position, operation) in operations.iter().enumerate() {
            let path = spec_path("operations").index(position);
            if fence_device && operation.name != OperationName::Monitor {
                self.problem(path.clone().key("name"), "a fence device only takes monitor operations");
            }
            if !operation.interval.is_zero() && operation.name != OperationName::Monitor {
                self.problem(path.clone().key("interval"), format!("only monitor operations recur; {} takes no interval", operation.name.as_str()));
            }
            if operation.timeout.is_some_and(|timeout| timeout.is_zero()) {
                self.problem(path.clone().key("timeout"), "must be more than 0");
            }
            if matches!(operation.role, Some(Role::Promoted | Role::Unpromoted)) && !promotable {
                self.problem(path.clone().key("role"), "Promoted and Unpromoted are roles of promotable clones only");
            }
            if operation.on_fail == Some(OnFail::Demote)
                && !(operation.name == OperationName::Promote || (operation.name == OperationName::Monitor && operation.role == Some(Role::Promoted)))
            {
                self.problem(path.clone().key("onFail"), "Demote applies to promote and to monitors of the Promoted role");
            }
            let slot = (operation.name, operation.interval.as_millis());
            if let Some((first, first_role)) = seen.get(&slot) {
                let message = if *first_role == operation.role {
                    format!("duplicate of operations[{first}]")
                } else {
                    format!("same interval as operations[{first}]: monitors of different roles need different intervals")
                };
                self.problem(path, message);
            } else {
                seen.insert(slot, (position, operation.role));
            }
        }
    }

    fn check_resource(&mut self, resource: &ResourceSpec) {
        let promotable = self.index.is_promotable(self.key.name.as_str());
        self.check_params(&resource.params);
        self.check_operations(&resource.operations, promotable, false);
        self.check_meta(&resource.meta, promotable);
        if let Some(clone) = &resource.clone {
            self.check_clone(clone);
        }
    }

    fn check_group(&mut self, group: &GroupSpec) {
        let mut seen = BTreeSet::new();
        for (position, member) in group.members.iter().enumerate() {
            let path = spec_path("members").index(position);
            if !seen.insert(member.as_str()) {
                self.problem(path, format!("{member} is listed twice"));
                continue;
            }
            match self.index.placeable.get(member.as_str()) {
                None => self.missing(path, member.as_str(), format!("refers to Resource/{member}, which does not exist")),
                Some((Kind::Resource, Object { spec: Spec::Resource(resource), .. })) => {
                    if resource.clone.is_some() {
                        let other = ObjectKey { kind: Kind::Resource, name: member.clone() };
                        self.involving(path.clone(), other, format!("Resource/{member} is cloned; clone the group instead"));
                    }
                    let own = self.key.name.clone();
                    let others: Vec<&str> = self.index.groups_of.get(member.as_str()).map(Vec::as_slice).unwrap_or(&[]).to_vec();
                    for other in others.into_iter().filter(|other| *other != own.as_str()) {
                        let key = ObjectKey { kind: Kind::Group, name: Name::from(other) };
                        self.involving(path.clone(), key, format!("Resource/{member} is also a member of Group/{other}"));
                    }
                }
                Some((kind, _)) => self.problem(path, format!("{member} is a {kind}; groups hold Resources only")),
            }
        }
        let promotable = group.clone.as_ref().is_some_and(|clone| clone.promotable.is_some());
        self.check_meta(&group.meta, promotable);
        if let Some(clone) = &group.clone {
            self.check_clone(clone);
        }
    }

    /// Checks a reference to a resource, group or fence device.
    fn check_placeable_ref(&mut self, path: FieldPath, name: &Name, role: Option<Role>) {
        if !self.index.placeable.contains_key(name.as_str()) {
            self.missing(path, name.as_str(), format!("refers to {name}, which is not a Resource, Group or FenceDevice"));
        } else if matches!(role, Some(Role::Promoted | Role::Unpromoted)) && !self.index.is_promotable(name.as_str()) {
            self.problem(path, format!("{name} is not a promotable clone, so it has no {} role", role.map(Role::as_str).unwrap_or_default()));
        }
    }

    fn check_node_ref(&mut self, path: FieldPath, node: &str) {
        if !self.index.nodes.contains(node) {
            self.missing(path, node, format!("refers to Node/{node}, which does not exist"));
        }
    }

    fn check_location(&mut self, location: &LocationSpec) {
        match (&location.resource, location.resources.is_empty()) {
            (Some(resource), true) => self.check_placeable_ref(spec_path("resource"), resource, location.role),
            (None, false) => {
                for (position, resource) in location.resources.iter().enumerate() {
                    self.check_placeable_ref(spec_path("resources").index(position), resource, location.role);
                }
            }
            (Some(_), false) => self.problem(spec_path("resources"), "give either resource or resources, not both"),
            (None, true) => self.problem(spec_path("resource"), "missing: give resource or resources"),
        }
        match (&location.node, location.score, location.rules.is_empty()) {
            (Some(node), Some(_), true) => self.check_node_ref(spec_path("node"), node.as_str()),
            (None, None, false) => {
                for (position, rule) in location.rules.iter().enumerate() {
                    let path = spec_path("rules").index(position);
                    if rule.score.is_some() == rule.score_attribute.is_some() {
                        self.problem(path.clone(), "give exactly one of score or scoreAttribute");
                    }
                    if matches!(rule.role, Some(Role::Promoted | Role::Unpromoted)) {
                        for resource in location.resource.iter().chain(&location.resources) {
                            if self.index.placeable.contains_key(resource.as_str()) && !self.index.is_promotable(resource.as_str()) {
                                self.problem(path.clone().key("role"), format!("{resource} is not a promotable clone"));
                            }
                        }
                    }
                    self.check_expression(path.key("expression"), &rule.expression, 0);
                }
            }
            (Some(_), None, true) => self.problem(spec_path("score"), "missing: a node constraint needs a score"),
            (None, Some(_), true) => self.problem(spec_path("node"), "missing: a score needs a node (or use rules)"),
            (None, None, true) => self.problem(spec_path("node"), "missing: give node and score, or rules"),
            (_, _, false) => self.problem(spec_path("rules"), "give either node and score, or rules, not both"),
        }
    }

    fn check_expression(&mut self, path: FieldPath, expression: &Expression, depth: usize) {
        if depth > 16 {
            self.problem(path, "expressions nest deeper than 16 levels");
            return;
        }
        let forms = [expression.and.is_some(), expression.or.is_some(), expression.not.is_some(), expression.attribute.is_some()];
        if forms.iter().filter(|present| **present).count() != 1 {
            self.problem(path, "give exactly one of and, or, not, or attribute with operation");
            return;
        }
        let children = expression.and.as_ref().map(|list| ("and", list)).or_else(|| expression.or.as_ref().map(|list| ("or", list)));
        if let Some((field, list)) = children {
            for (position, child) in list.iter().enumerate() {
                self.check_expression(path.clone().key(field).index(position), child, depth + 1);
            }
            return;
        }
        if let Some(child) = &expression.not {
            self.check_expression(path.key("not"), child, depth + 1);
            return;
        }
        let Some(operation) = expression.operation else {
            self.problem(path.key("operation"), "missing: a comparison needs an operation");
            return;
        };
        let takes_value = !matches!(operation, ExpressionOperation::Defined | ExpressionOperation::NotDefined);
        match (&expression.value, takes_value) {
            (None, true) => self.problem(path.key("value"), format!("missing: {operation:?} compares with a value")),
            (Some(_), false) => self.problem(path.key("value"), format!("{operation:?} takes no value")),
            (Some(value), true) => {
                let parses = match expression.value_type {
                    Some(ExpressionType::Integer) => value.as_str().trim().parse::<i64>().is_ok(),
                    Some(ExpressionType::Number) => value.as_str().trim().parse::<f64>().is_ok_and(f64::is_finite),
                    Some(ExpressionType::Version) => !value.as_str().is_empty() && value.as_str().split('.').all(|part| part.parse::<u64>().is_ok()),
                    Some(ExpressionType::String) | None => true,
                };
                if !parses {
                    self.problem(
                        path.key("value"),
                        format!("{:?} is not a valid {:?}", value.as_str(), expression.value_type.unwrap_or(ExpressionType::String)),
                    );
                }
            }
            (None, false) => {}
        }
    }

    fn check_sets(&mut self, sets: &[ResourceSet], for_order: bool) -> usize {
        let mut total = 0;
        for (set_position, set) in sets.iter().enumerate() {
            let path = spec_path("sets").index(set_position);
            if !for_order && set.action.is_some() {
                self.problem(path.clone().key("action"), "action belongs to order sets");
            }
            if !for_order && set.require_all.is_some() {
                self.problem(path.clone().key("requireAll"), "requireAll belongs to order sets");
            }
            for (position, resource) in set.resources.iter().enumerate() {
                let role = if for_order { None } else { set.role };
                self.check_placeable_ref(path.clone().key("resources").index(position), resource, role);
                if for_order && matches!(set.action, Some(OrderAction::Promote | OrderAction::Demote)) && !self.index.is_promotable(resource.as_str()) {
                    self.problem(
                        path.clone().key("resources").index(position),
                        format!("{resource} is not a promotable clone, so it cannot be promoted or demoted"),
                    );
                }
                total += 1;
            }
        }
        total
    }

    fn check_colocation(&mut self, colocation: &ColocationSpec) {
        if colocation.sets.is_empty() {
            let (Some(resource), Some(with)) = (&colocation.resource, &colocation.with_resource) else {
                let missing = if colocation.resource.is_none() { "resource" } else { "withResource" };
                self.problem(spec_path(missing), "missing: give resource and withResource, or sets");
                return;
            };
            self.check_placeable_ref(spec_path("resource"), resource, colocation.role);
            self.check_placeable_ref(spec_path("withResource"), with, colocation.with_role);
            if resource == with {
                self.problem(spec_path("withResource"), "a resource cannot be colocated with itself");
            }
        } else {
            if colocation.resource.is_some() || colocation.with_resource.is_some() {
                self.problem(spec_path("sets"), "give either resource/withResource or sets, not both");
            }
            if self.check_sets(&colocation.sets, false) < 2 {
                self.problem(spec_path("sets"), "sets must name at least two resources");
            }
        }
    }

    fn check_order(&mut self, order: &OrderSpec) {
        if order.sets.is_empty() {
            let (Some(first), Some(then)) = (&order.first, &order.then) else {
                let missing = if order.first.is_none() { "first" } else { "then" };
                self.problem(spec_path(missing), "missing: give first and then, or sets");
                return;
            };
            self.check_placeable_ref(spec_path("first"), first, None);
            self.check_placeable_ref(spec_path("then"), then, None);
            for (field, name, action) in [("firstAction", first, order.first_action()), ("thenAction", then, order.then_action())] {
                if matches!(action, OrderAction::Promote | OrderAction::Demote)
                    && self.index.placeable.contains_key(name.as_str())
                    && !self.index.is_promotable(name.as_str())
                {
                    self.problem(spec_path(field), format!("{name} is not a promotable clone, so it cannot be promoted or demoted"));
                }
            }
            if first == then {
                self.problem(spec_path("then"), "a resource cannot be ordered after itself");
            }
        } else {
            if order.first.is_some() || order.then.is_some() {
                self.problem(spec_path("sets"), "give either first/then or sets, not both");
            }
            if order.first_action.is_some() || order.then_action.is_some() {
                self.problem(spec_path("sets"), "with sets, give each set's action instead of firstAction/thenAction");
            }
            if self.check_sets(&order.sets, true) < 2 {
                self.problem(spec_path("sets"), "sets must name at least two resources");
            }
        }
    }

    fn check_fence_device(&mut self, device: &FenceDeviceSpec) {
        self.check_params(&device.params);
        if let Some(clone) = &device.clone {
            if clone.promotable.is_some() {
                self.problem(FieldPath::of(&["spec", "clone", "promotable"]), "a fence device has no promoted role");
            }
        }
        for reserved in ["action", "nodename"] {
            if device.params.contains_key(reserved) {
                self.problem(spec_path("params").key(reserved), "set by the fencer for each request; do not configure it");
            }
        }
        if let Err(reason) = super::fence_options::check_agent(&device.agent) {
            self.problem(spec_path("agent"), reason);
        }
        for (name, param) in &device.params {
            if let Err(reason) = super::fence_options::check_option(&device.agent, name, param.plain()) {
                self.problem(spec_path("params").key(name.clone()), format!("option {name} is refused: {reason}"));
            }
        }
        if let Some(argument) = &device.host_argument
            && let Err(reason) = super::fence_options::check_option(&device.agent, argument, None)
        {
            self.problem(spec_path("hostArgument"), format!("option {argument} is refused: {reason}"));
        }
        for (position, node) in device.host_list.iter().enumerate() {
            self.check_node_ref(spec_path("hostList").index(position), node.as_str());
        }
        for (node, port) in &device.host_map {
            self.check_node_ref(spec_path("hostMap").key(node.clone()), node);
            if port.is_empty() || port.chars().any(char::is_control) {
                self.problem(spec_path("hostMap").key(node.clone()), "port must be non-empty text without control characters");
            }
        }
        if device.host_check == Some(HostCheck::StaticList) && device.host_list.is_empty() && device.host_map.is_empty() {
            self.problem(spec_path("hostCheck"), "StaticList needs hostList or hostMap");
        }
        if let (Some(delay), Some(delay_max)) = (device.delay, device.delay_max)
            && delay > delay_max
        {
            self.problem(spec_path("delay"), format!("{delay} is more than delayMax {delay_max}"));
        }
        self.check_operations(&device.operations, false, true);
        self.check_meta(&device.meta, false);
    }

    fn check_topology(&mut self, topology: &FencingTopologySpec) {
        self.check_node_ref(spec_path("node"), topology.node.as_str());
        let own = self.key.name.clone();
        let owners: Vec<&str> = self.index.topologies_of.get(topology.node.as_str()).map(Vec::as_slice).unwrap_or(&[]).to_vec();
        for owner in owners.into_iter().filter(|owner| *owner != own.as_str()) {
            let key = ObjectKey { kind: Kind::FencingTopology, name: Name::from(owner) };
            self.involving(spec_path("node"), key, format!("FencingTopology/{owner} also sets the levels of {}", topology.node));
        }
        let mut indexes = BTreeSet::new();
        for (position, level) in topology.levels.iter().enumerate() {
            let path = spec_path("levels").index(position);
            if !indexes.insert(level.index) {
                self.problem(path.clone().key("index"), format!("level {} is given twice", level.index));
            }
            for (device_position, device) in level.devices.iter().enumerate() {
                if !matches!(self.index.placeable.get(device.as_str()), Some((Kind::FenceDevice, _))) {
                    let message = format!("refers to FenceDevice/{device}, which does not exist");
                    self.missing(path.clone().key("devices").index(device_position), device.as_str(), message);
                }
            }
        }
    }

    fn check_node(&mut self, node: &NodeSpec) {
        for name in node.attributes.keys() {
            let path = spec_path("attributes").key(name.clone());
            if name.is_empty() || name.starts_with('#') {
                self.problem(path, "attribute names may not be empty or start with '#' (reserved for built-ins like #uname)");
            } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                self.problem(path, "attribute names may not contain spaces or control characters");
            }
        }
        for (name, value) in &node.attributes {
            if value.as_str().contains('\0') {
                self.problem(spec_path("attributes").key(name.clone()), "value contains a NUL character");
            }
        }
    }

    fn check_alert(&mut self, alert: &AlertSpec) {
        let receiver = &alert.receiver;
        let receiver_path = |part: &str, field: &str| FieldPath::of(&["spec", "receiver", part, field]);
        match (&receiver.webhook, &receiver.exec) {
            (Some(webhook), None) => {
                if let Err(reason) = check_webhook_url(&webhook.url) {
                    self.problem(receiver_path("webhook", "url"), reason);
                }
                for (index, header) in webhook.headers.iter().enumerate() {
                    let path = receiver_path("webhook", "headers").index(index);
                    if let Err(reason) = check_header_name(&header.name) {
                        self.problem(path.clone().key("name"), reason);
                    }
                    match (&header.value, &header.value_from) {
                        (Some(value), None) => {
                            if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
                                self.problem(path.key("value"), "a header value is printable ASCII (no control characters, no letters beyond ASCII)");
                            }
                        }
                        (None, Some(source)) => {
                            if !is_absolute_file_path(&source.file) {
                                self.problem(path.key("valueFrom").key("file"), format!("{:?} is not an absolute path to a file, without '..'", source.file));
                            }
                        }
                        _ => self.problem(path, "give exactly one of value or valueFrom"),
                    }
                }
            }
            (None, Some(exec)) => {
                let path = exec.path.as_str();
                if !is_absolute_file_path(path) {
                    self.problem(receiver_path("exec", "path"), format!("{path:?} is not an absolute path to a file, without '..'"));
                }
            }
            _ => self.problem(FieldPath::of(&["spec", "receiver"]), "give exactly one of webhook or exec"),
        }
        if let Some(format) = &alert.timestamp_format {
            if format.chars().any(char::is_control) {
                self.problem(spec_path("timestampFormat"), "contains a control character");
            } else if let Err(reason) = super::strftime::TimestampFormat::parse(format) {
                self.problem(spec_path("timestampFormat"), format!("does not parse: {reason}"));
            }
        }
        for (name, value) in &alert.parameters {
            let path = spec_path("parameters").key(name.clone());
            if let Err(reason) = check_parameter_name(name) {
                self.problem(path, reason);
            } else if let Err(reason) = check_param_value(value) {
                self.problem(path, reason);
            }
        }
    }
}

/// A parameter's value: no NUL character (an environment or a stdin line could not
/// carry it); a secret file's path absolute, without `..`. Never quotes the value.
fn check_param_value(value: &Param) -> Result<(), String> {
    match value {
        Param::Value(value) if value.as_str().contains('\0') => Err("value contains a NUL character".into()),
        Param::Value(_) => Ok(()),
        Param::SecretFile(path) => super::params::check_secret_path(path),
    }
}

/// An absolute path to a file: it starts with `/`, does not end with one, and has no
/// `..` nor control characters.
pub(crate) fn is_absolute_file_path(path: &str) -> bool {
    path.starts_with('/') && !path.ends_with('/') && !path.split('/').any(|part| part == "..") && !path.chars().any(char::is_control)
}

/// A webhook URL: absolute, http or https, with a host.
fn check_webhook_url(text: &str) -> Result<(), String> {
    let refused = |why: String| Err(format!("{text:?} is not an http:// or https:// URL{why}"));
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refused(": it contains spaces or control characters".into());
    }
    match url::Url::parse(text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => refused(String::new()),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => refused(": it has no host".into()),
        Ok(_) => Ok(()),
        Err(error) => refused(format!(": {error}")),
    }
}

/// An HTTP header name (RFC 9110's token), and not one the delivery sets itself.
fn check_header_name(name: &str) -> Result<(), String> {
    const TOKEN_SYMBOLS: &str = "!#$%&'*+-.^_`|~";
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || TOKEN_SYMBOLS.contains(c)) {
        return Err(format!("{name:?} is not an HTTP header name (letters, digits and {TOKEN_SYMBOLS})"));
    }
    if ["content-type", "content-length", "host", "transfer-encoding", "connection"].contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("{name} is set by the delivery itself"));
    }
    Ok(())
}

/// An alert parameter becomes an environment variable of the receiver: a portable
/// name (letters, digits, `_`, not starting with a digit), not one of Pacemaker's
/// own (`CRM_alert_*`, `CRM_notify_*`).
fn check_parameter_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{name:?} is not an environment variable name (letters, digits and '_', not starting with a digit)"));
    }
    if name.starts_with("CRM_alert_") || name.starts_with("CRM_notify_") {
        return Err(format!("{name} would replace the variable Pacemaker's alert environment gives the receiver"));
    }
    // Variables that change what runs, or how a shell starts: not an alert's to set.
    const RESERVED: [&str; 9] = ["PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "HOME", "CDPATH"];
    if RESERVED.contains(&name) || name.starts_with("LD_") || name.starts_with("BASH_FUNC_") {
        return Err(format!("{name} changes how the receiver runs; alert parameters may not set it"));
    }
    Ok(())
}

fn check_label_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("name part must be 1 to 63 characters".into());
    }
    let edges_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !edges_ok || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("use letters, digits, '-', '_' and '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// Kubernetes' rule: an optional DNS-subdomain prefix and `/`, then a name.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !valid {
            return Err(format!("prefix {prefix:?} is not a DNS subdomain"));
        }
    }
    check_label_name(name)
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() { Ok(()) } else { check_label_name(value) }
}

/// One step of a mandatory order: an action of a resource.
type Step<'a> = (&'a str, OrderAction);

fn inverse(action: OrderAction) -> OrderAction {
    match action {
        OrderAction::Start => OrderAction::Stop,
        OrderAction::Stop => OrderAction::Start,
        OrderAction::Promote => OrderAction::Demote,
        OrderAction::Demote => OrderAction::Promote,
    }
}

/// Mandatory orders (with their symmetrical inverses), plus the orders every resource
/// implies (start before promote, demote before stop) and groups imply (members in
/// sequence), must not form a cycle: nothing on it could ever run.
fn check_order_cycles<'a>(objects: &'a ObjectSet, problems: &mut Vec<Problem>) {
    let mut edges: BTreeMap<Step<'a>, Vec<(Step<'a>, Option<&'a ObjectKey>)>> = BTreeMap::new();
    let mut add = |from: Step<'a>, to: Step<'a>, owner: Option<&'a ObjectKey>| {
        edges.entry(from).or_default().push((to, owner));
    };
    for (key, object) in objects {
        match &object.spec {
            Spec::Resource(_) | Spec::Group(_) => {
                let name = key.name.as_str();
                add((name, OrderAction::Start), (name, OrderAction::Promote), None);
                add((name, OrderAction::Demote), (name, OrderAction::Stop), None);
                if let Spec::Group(group) = &object.spec {
                    for pair in group.members.windows(2) {
                        add((pair[0].as_str(), OrderAction::Start), (pair[1].as_str(), OrderAction::Start), None);
                        add((pair[1].as_str(), OrderAction::Stop), (pair[0].as_str(), OrderAction::Stop), None);
                    }
                }
            }
            Spec::Order(order) if order.kind == OrderKind::Mandatory => {
                let mut pairs: Vec<(Step<'a>, Step<'a>)> = Vec::new();
                if let (Some(first), Some(then)) = (&order.first, &order.then) {
                    pairs.push(((first.as_str(), order.first_action()), (then.as_str(), order.then_action())));
                }
                for set in &order.sets {
                    let action = set.action.unwrap_or(OrderAction::Start);
                    if set.sequential.unwrap_or(true) {
                        for pair in set.resources.windows(2) {
                            pairs.push(((pair[0].as_str(), action), (pair[1].as_str(), action)));
                        }
                    }
                }
                for window in order.sets.windows(2) {
                    let (before, after) = (&window[0], &window[1]);
                    for from in &before.resources {
                        for to in &after.resources {
                            pairs.push((
                                (from.as_str(), before.action.unwrap_or(OrderAction::Start)),
                                (to.as_str(), after.action.unwrap_or(OrderAction::Start)),
                            ));
                        }
                    }
                }
                for (from, to) in pairs {
                    add(from, to, Some(key));
                    if order.is_symmetrical() {
                        add((to.0, inverse(to.1)), (from.0, inverse(from.1)), Some(key));
                    }
                }
            }
            _ => {}
        }
    }
    // Iterative depth-first search; a back edge closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        Grey,
        Black,
    }
    let mut color: HashMap<Step<'_>, Color> = HashMap::new();
    let mut reported: BTreeSet<ObjectKey> = BTreeSet::new();
    let starts: Vec<Step<'_>> = edges.keys().copied().collect();
    for start in starts {
        if color.contains_key(&start) {
            continue;
        }
        // Each frame: the step, and how many of its edges were followed.
        let mut stack: Vec<(Step<'_>, usize)> = vec![(start, 0)];
        color.insert(start, Color::Grey);
        while let Some((step, next_edge)) = stack.last().copied() {
            let outgoing = edges.get(&step).map(Vec::as_slice).unwrap_or(&[]);
            if next_edge >= outgoing.len() {
                color.insert(step, Color::Black);
                stack.pop();
                continue;
            }
            if let Some(frame) = stack.last_mut() {
                frame.1 += 1;
            }
            let (target, _) = outgoing[next_edge];
            match color.get(&target) {
                None => {
                    color.insert(target, Color::Grey);
                    stack.push((target, 0));
                }
                Some(Color::Grey) => {
                    // The cycle is the stack from `target` to the top, plus this edge.
                    let from = stack.iter().position(|(step, _)| *step == target).unwrap_or(0);
                    let cycle: Vec<Step<'_>> = stack[from..].iter().map(|(step, _)| *step).collect();
                    let mut owners: BTreeSet<ObjectKey> = BTreeSet::new();
                    for (position, step) in cycle.iter().enumerate() {
                        let next = cycle.get(position + 1).copied().unwrap_or(target);
                        let owner = edges.get(step).and_then(|list| list.iter().find(|(to, owner)| *to == next && owner.is_some()));
                        if let Some((_, Some(owner))) = owner {
                            owners.insert((*owner).clone());
                        }
                    }
                    let mut text: Vec<String> = cycle.iter().map(|(name, action)| format!("{name} {action:?}")).collect();
                    text.push(format!("{} {:?}", target.0, target.1));
                    for owner in owners {
                        if reported.insert(owner.clone()) {
                            let uses_sets = matches!(objects.get(&owner), Some(Object { spec: Spec::Order(order), .. }) if order.then.is_none());
                            problems.push(Problem {
                                key: owner,
                                path: FieldPath::of(&["spec", if uses_sets { "sets" } else { "then" }]),
                                message: format!("mandatory order cycle: {}", text.join(" -> ")),
                                missing: None,
                                other: None,
                            });
                        }
                    }
                }
                Some(Color::Black) => {}
            }
        }
    }
}

/// What a reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefTarget {
    /// A Resource, Group or FenceDevice (they share one namespace).
    Placeable,
    Node,
    FenceDevice,
}

impl RefTarget {
    fn matches(self, kind: Kind) -> bool {
        match self {
            RefTarget::Placeable => kind.is_placeable(),
            RefTarget::Node => kind == Kind::Node,
            RefTarget::FenceDevice => kind == Kind::FenceDevice,
        }
    }
}

fn set_names(sets: &[ResourceSet]) -> impl Iterator<Item = &Name> {
    sets.iter().flat_map(|set| set.resources.iter())
}

/// Every object `object` refers to.
pub fn references(object: &Object) -> Vec<(RefTarget, &str)> {
    fn placeable(name: &Name) -> (RefTarget, &str) {
        (RefTarget::Placeable, name.as_str())
    }
    match &object.spec {
        Spec::Group(group) => group.members.iter().map(placeable).collect(),
        Spec::Location(location) => {
            let mut found: Vec<_> = location.resource.iter().chain(&location.resources).map(placeable).collect();
            found.extend(location.node.iter().map(|node| (RefTarget::Node, node.as_str())));
            found
        }
        Spec::Colocation(colocation) => colocation.resource.iter().chain(&colocation.with_resource).chain(set_names(&colocation.sets)).map(placeable).collect(),
        Spec::Order(order) => order.first.iter().chain(&order.then).chain(set_names(&order.sets)).map(placeable).collect(),
        Spec::FenceDevice(device) => {
            device.host_list.iter().map(Name::as_str).chain(device.host_map.keys().map(String::as_str)).map(|node| (RefTarget::Node, node)).collect()
        }
        Spec::FencingTopology(topology) => std::iter::once((RefTarget::Node, topology.node.as_str()))
            .chain(topology.levels.iter().flat_map(|level| level.devices.iter()).map(|device| (RefTarget::FenceDevice, device.as_str())))
            .collect(),
        Spec::Resource(_) | Spec::Node(_) | Spec::ClusterPolicy(_) | Spec::Alert(_) => Vec::new(),
    }
}

/// What deleting some objects with `--cascade` also changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cascade {
    /// The requested deletions plus every dependent to delete.
    pub deleted: BTreeSet<ObjectKey>,
    /// Groups and fence devices that only lose a member or host.
    pub updated: Vec<Object>,
}

/// Deletes dependents with the objects, as pcs does: constraints and topologies that
/// refer to a deleted object are deleted, except that resource sets and groups only
/// lose the deleted members (and go when too few are left); fence devices lose
/// deleted nodes from their host lists.
pub fn cascade(objects: &ObjectSet, requested: &BTreeSet<ObjectKey>) -> Cascade {
    let mut deleted = requested.clone();
    let mut updated: BTreeMap<ObjectKey, Object> = BTreeMap::new();
    loop {
        let is_deleted = |target: RefTarget, name: &str| deleted.iter().any(|key| key.name.as_str() == name && target.matches(key.kind));
        let mut more_deleted = Vec::new();
        let mut more_updated = Vec::new();
        for (key, original) in objects {
            if deleted.contains(key) {
                continue;
            }
            let object = updated.get(key).unwrap_or(original);
            if !references(object).iter().any(|(target, name)| is_deleted(*target, name)) {
                continue;
            }
            let mut changed = object.clone();
            let placeable_gone = |name: &Name| is_deleted(RefTarget::Placeable, name.as_str());
            let keep = match &mut changed.spec {
                Spec::Group(group) => {
                    group.members.retain(|member| !placeable_gone(member));
                    !group.members.is_empty()
                }
                Spec::FenceDevice(device) => {
                    device.host_list.retain(|node| !is_deleted(RefTarget::Node, node.as_str()));
                    device.host_map.retain(|node, _| !is_deleted(RefTarget::Node, node));
                    true
                }
                // Sets lose the deleted members; the constraint goes when what is left
                // constrains nothing.
                Spec::Location(location) if location.resource.is_none() => {
                    location.resources.retain(|name| !placeable_gone(name));
                    !location.resources.is_empty() && !location.node.as_ref().is_some_and(|node| is_deleted(RefTarget::Node, node.as_str()))
                }
                Spec::Colocation(ColocationSpec { sets, .. }) | Spec::Order(OrderSpec { sets, .. }) if !sets.is_empty() => {
                    for set in sets.iter_mut() {
                        set.resources.retain(|name| !placeable_gone(name));
                    }
                    sets.retain(|set| !set.resources.is_empty());
                    sets.iter().map(|set| set.resources.len()).sum::<usize>() >= 2
                }
                _ => false,
            };
            if keep {
                more_updated.push(changed);
            } else {
                more_deleted.push(key.clone());
            }
        }
        if more_deleted.is_empty() && more_updated.iter().all(|object| updated.get(&object.key()) == Some(object)) {
            break;
        }
        for object in more_updated {
            updated.insert(object.key(), object);
        }
        for key in more_deleted {
            updated.remove(&key);
            deleted.insert(key);
        }
    }
    Cascade { deleted, updated: updated.into_values().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::object::{API_VERSION, Object};
    use serde_json::json;

    fn set(values: &[serde_json::Value]) -> ObjectSet {
        values
            .iter()
            .map(|value| {
                let mut value = value.clone();
                value["apiVersion"] = json!(API_VERSION);
                let object = Object::from_value(value).expect("test object decodes");
                (object.key(), object)
            })
            .collect()
    }

    fn messages(objects: &ObjectSet) -> Vec<String> {
        check_objects(objects).iter().map(|p| format!("{}: {}: {}", p.key, p.path, p.message)).collect()
    }

    fn resource(name: &str) -> serde_json::Value {
        json!({"kind": "Resource", "metadata": {"name": name}, "spec": {"agent": "ocf:pacemaker:Dummy"}})
    }

    #[test]
    fn a_consistent_set_has_no_problems() {
        let objects = set(&[
            resource("a"),
            resource("b"),
            json!({"kind": "Node", "metadata": {"name": "n1"}}),
            json!({"kind": "Group", "metadata": {"name": "g"}, "spec": {"members": ["a", "b"]}}),
            json!({"kind": "Location", "metadata": {"name": "l"}, "spec": {"resource": "g", "node": "n1", "score": 10}}),
        ]);
        assert_eq!(messages(&objects), Vec::<String>::new());
    }

    #[test]
    fn missing_references_are_named() {
        let objects = set(&[
            json!({"kind": "Location", "metadata": {"name": "l"}, "spec": {"resource": "ghost", "node": "n9", "score": 10}}),
            json!({"kind": "Group", "metadata": {"name": "g"}, "spec": {"members": ["nope"]}}),
        ]);
        assert_eq!(
            messages(&objects),
            [
                "Group/g: spec.members[0]: refers to Resource/nope, which does not exist",
                "Location/l: spec.node: refers to Node/n9, which does not exist",
                "Location/l: spec.resource: refers to ghost, which is not a Resource, Group or FenceDevice",
            ]
        );
    }

    #[test]
    fn mandatory_order_cycles_are_refused_but_symmetric_pairs_are_not() {
        let order = |name: &str, first: &str, then: &str| json!({"kind": "Order", "metadata": {"name": name}, "spec": {"first": first, "then": then}});
        let acyclic = set(&[resource("a"), resource("b"), resource("c"), order("o1", "a", "b"), order("o2", "b", "c")]);
        assert_eq!(messages(&acyclic), Vec::<String>::new());
        let cyclic = set(&[resource("a"), resource("b"), resource("c"), order("o1", "a", "b"), order("o2", "b", "c"), order("o3", "c", "a")]);
        let found = messages(&cyclic);
        assert!(!found.is_empty() && found.iter().all(|line| line.contains("mandatory order cycle")), "{found:?}");
        let mut optional = order("o3", "c", "a");
        optional["spec"]["kind"] = json!("Optional");
        let with_optional = set(&[resource("a"), resource("b"), resource("c"), order("o1", "a", "b"), order("o2", "b", "c"), optional]);
        assert_eq!(messages(&with_optional), Vec::<String>::new());
    }

    #[test]
    fn roles_need_promotable_clones() {
        let mut stateful = resource("db");
        stateful["spec"]["clone"] = json!({"promotable": {}});
        let objects = set(&[
            stateful,
            resource("web"),
            json!({"kind": "Colocation", "metadata": {"name": "c"}, "spec": {"resource": "web", "withResource": "db", "withRole": "Promoted", "score": "INFINITY"}}),
            json!({"kind": "Order", "metadata": {"name": "o"}, "spec": {"first": "web", "firstAction": "Promote", "then": "db"}}),
        ]);
        assert_eq!(messages(&objects), ["Order/o: spec.firstAction: web is not a promotable clone, so it cannot be promoted or demoted"]);
    }

    #[test]
    fn rule_expressions_are_well_formed() {
        let objects = set(&[
            resource("a"),
            json!({"kind": "Location", "metadata": {"name": "l"}, "spec": {"resource": "a", "rules": [
                {"score": 10, "expression": {"and": [{"attribute": "x", "operation": "Gt", "value": "ten", "type": "Integer"}, {"attribute": "y", "operation": "Defined", "value": "1"}]}},
                {"expression": {"attribute": "z", "operation": "Eq", "value": "1"}},
                {"score": 5, "expression": {"attribute": "z", "or": [{"attribute": "q", "operation": "Defined"}]}},
            ]}}),
        ]);
        assert_eq!(
            messages(&objects),
            [
                "Location/l: spec.rules[0].expression.and[0].value: \"ten\" is not a valid Integer",
                "Location/l: spec.rules[0].expression.and[1].value: Defined takes no value",
                "Location/l: spec.rules[1]: give exactly one of score or scoreAttribute",
                "Location/l: spec.rules[2].expression: give exactly one of and, or, not, or attribute with operation",
            ]
        );
    }

    #[test]
    fn cascade_deletes_dependents_and_trims_groups() {
        let objects = set(&[
            resource("a"),
            resource("b"),
            json!({"kind": "Node", "metadata": {"name": "n1"}}),
            json!({"kind": "Group", "metadata": {"name": "g"}, "spec": {"members": ["a", "b"]}}),
            json!({"kind": "Group", "metadata": {"name": "solo"}, "spec": {"members": ["a2"]}}),
            resource("a2"),
            json!({"kind": "Location", "metadata": {"name": "on-g"}, "spec": {"resource": "solo", "node": "n1", "score": 5}}),
            json!({"kind": "Order", "metadata": {"name": "o"}, "spec": {"first": "a", "then": "b"}}),
            resource("c"),
            json!({"kind": "Order", "metadata": {"name": "in-sets"}, "spec": {"sets": [{"resources": ["a", "b"]}, {"resources": ["c"]}]}}),
            json!({"kind": "Colocation", "metadata": {"name": "pair"}, "spec": {"score": 5, "sets": [{"resources": ["a", "b"]}]}}),
        ]);
        let requested: BTreeSet<ObjectKey> = ["a", "a2"].iter().map(|name| ObjectKey { kind: Kind::Resource, name: Name::from(*name) }).collect();
        let result = cascade(&objects, &requested);
        let deleted: Vec<String> = result.deleted.iter().map(ToString::to_string).collect();
        assert_eq!(deleted, ["Resource/a", "Resource/a2", "Group/solo", "Location/on-g", "Colocation/pair", "Order/o"]);
        let updated: Vec<String> = result.updated.iter().map(|object| object.key().to_string()).collect();
        assert_eq!(updated, ["Group/g", "Order/in-sets"]);
        assert_eq!(result.updated[0].spec, Spec::Group(GroupSpec { members: vec![Name::from("b")], meta: ResourceMeta::default(), clone: None }));
        let Spec::Order(order) = &result.updated[1].spec else { panic!("an order") };
        let sets: Vec<Vec<&str>> = order.sets.iter().map(|set| set.resources.iter().map(Name::as_str).collect()).collect();
        assert_eq!(sets, [vec!["b"], vec!["c"]]);
    }

    #[test]
    fn label_keys_follow_kubernetes_rules() {
        assert!(check_label_key("app").is_ok());
        assert!(check_label_key("applyset.pacer.io/part-of").is_ok());
        assert!(check_label_key("Bad_Prefix/x").is_err());
        assert!(check_label_key("-x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value(&"x".repeat(64)).is_err());
    }
}
