//! `<constraints>` to Location, Colocation and Order; `<fencing-topology>` to
//! FencingTopology.
//!
//! Pacemaker ignores a constraint that names a resource or node it does not know;
//! here such a constraint is left out and recorded, as is one that would only ever
//! apply to a role the resource cannot have.

use crate::api::cluster::{FencingLevel, FencingTopologySpec};
use crate::api::constraint::{
    ColocationSpec, Expression, ExpressionOperation, ExpressionType, LocationRule, LocationSpec, OrderAction, OrderKind, OrderSpec, ResourceDiscovery,
    ResourceSet,
};
use crate::api::resource::Role;
use crate::api::{Name, Object, ObjectMeta, ParamValue, Score, Spec};

use super::config::NodeTable;
use super::resources::Placed;
use super::values::{parse_bool, parse_role, parse_score};
use super::xml::Element;
use super::{Importer, Namespace};

/// Why a constraint (or part of one) is left out.
type Skip = String;

impl Importer {
    pub(super) fn constraints(&mut self, configuration: &Element, placed: &Placed, nodes: &NodeTable) -> Vec<Object> {
        let Some(constraints) = configuration.child("constraints") else { return Vec::new() };
        let mut objects = Vec::with_capacity(constraints.children.len());
        for element in &constraints.children {
            let id = element.id();
            let spec = match element.tag {
                "rsc_location" => self.location(element, placed, nodes).map(Spec::Location),
                "rsc_colocation" => self.colocation(element, placed),
                "rsc_order" => self.order(element, placed).map(Spec::Order),
                other => Err(format!("<{other}> has no Pacer equivalent")),
            };
            match spec {
                Ok(spec) => {
                    let name = self.name(Namespace::Constraint, element.tag, id);
                    objects.push(Object { metadata: ObjectMeta { name, ..ObjectMeta::default() }, spec });
                }
                Err(reason) => self.unmapped(element.tag, id, format!("{reason}; constraint skipped")),
            }
        }
        objects
    }

    fn location(&mut self, element: &Element, placed: &Placed, nodes: &NodeTable) -> Result<LocationSpec, Skip> {
        let id = element.id();
        if element.attr("rsc-pattern").is_some() {
            return Err("rsc-pattern has no Pacer equivalent".into());
        }
        let mut role = optional_role(element.attr("role"))?;
        let (resource, resources) = match element.attr("rsc") {
            Some(rsc) => (Some(resolve(placed, rsc)?), Vec::new()),
            None => {
                let mut all = Vec::new();
                for set in element.children_named("resource_set") {
                    if let Some(set_role) = optional_role(set.attr("role"))? {
                        if role.is_some_and(|existing| existing != set_role) {
                            return Err("resource sets with different roles have no Pacer equivalent".into());
                        }
                        role = Some(set_role);
                    }
                    all.extend(set_members(set, placed)?);
                }
                if all.is_empty() {
                    return Err("no rsc and no resource set".into());
                }
                (None, all)
            }
        };
        let role = location_role(role);
        if let Some(role @ (Role::Promoted | Role::Unpromoted)) = role {
            for name in resource.iter().chain(&resources) {
                if !placed.promotable.contains(name) {
                    return Err(format!("{name} is not promotable, so a {} constraint never applies", role.as_str()));
                }
            }
        }
        let resource_discovery = match element.attr("resource-discovery") {
            None => None,
            Some("always") => Some(ResourceDiscovery::Always),
            Some("never") => Some(ResourceDiscovery::Never),
            Some("exclusive") => Some(ResourceDiscovery::Exclusive),
            Some(other) => return Err(format!("resource-discovery={other} is not valid")),
        };
        let mut spec = LocationSpec { resource, resources, role, node: None, score: None, rules: Vec::new(), resource_discovery, expires: None };
        let rules: Vec<&Element> = element.children_named("rule").collect();
        match (element.attr("node"), element.attr("score")) {
            (Some(node), Some(score)) => {
                let node = nodes.find(node).ok_or_else(|| format!("node {node} is not a configured node"))?;
                spec.node = Some(node.clone());
                spec.score = Some(parse_score(score).ok_or_else(|| format!("score {score:?} is not a score Pacer can hold"))?);
                if !rules.is_empty() {
                    self.unmapped("rsc_location", id, "rules beside node and score are ignored, as Pacemaker does".into());
                }
            }
            _ => {
                for rule in rules {
                    match location_rule(rule, placed, spec.resource.iter().chain(&spec.resources)) {
                        Ok(mapped) => spec.rules.push(mapped),
                        Err(reason) => self.unmapped("rule", rule.id(), format!("{reason}; rule skipped")),
                    }
                }
                if spec.rules.is_empty() {
                    return Err("no node with a score and no usable rule (Pacemaker ignores it too)".into());
                }
            }
        }
        Ok(spec)
    }

    fn colocation(&mut self, element: &Element, placed: &Placed) -> Result<Spec, Skip> {
        let score = match element.attr("score") {
            Some(text) => parse_score(text).ok_or_else(|| format!("score {text:?} is not a score Pacer can hold"))?,
            None => Score::ZERO,
        };
        for unsupported in ["rsc-instance", "with-rsc-instance", "score-attribute"] {
            if element.attr(unsupported).is_some() {
                return Err(format!("{unsupported} has no Pacer equivalent"));
            }
        }
        let influence = match element.attr("influence") {
            Some(text) => Some(parse_bool(text).ok_or_else(|| format!("influence={text:?} is not a boolean"))?),
            None => None,
        };
        let mut spec = ColocationSpec {
            resource: None,
            role: None,
            with_resource: None,
            with_role: None,
            score,
            node_attribute: element.attr("node-attribute").map(str::to_string),
            influence,
            sets: Vec::new(),
        };
        let sets: Vec<&Element> = element.children_named("resource_set").collect();
        if sets.is_empty() {
            let rsc = element.attr("rsc").or_else(|| element.attr("from")).ok_or("no rsc")?;
            let with = element.attr("with-rsc").or_else(|| element.attr("to")).ok_or("no with-rsc")?;
            let (rsc, with) = (resolve(placed, rsc)?, resolve(placed, with)?);
            if rsc == with {
                return Err(format!("{rsc} is colocated with itself"));
            }
            spec.role = checked_role(placed, &rsc, element.attr("rsc-role").or_else(|| element.attr("from_role")))?;
            let with_role_text = element.attr("with-rsc-role").or_else(|| element.attr("to_role"));
            match (checked_role(placed, &with, with_role_text), score) {
                (Ok(role), _) => spec.with_role = role,
                // Mandatory colocation with a role `with` never has: the dependent
                // can run nowhere, which a -INFINITY location says.
                (Err(reason), Score::INFINITY) => {
                    self.unmapped("rsc_colocation", element.id(), format!("{reason}; expressed as a -INFINITY location of {rsc}"));
                    let everywhere = Expression { attribute: Some("#uname".into()), operation: Some(ExpressionOperation::Defined), ..Expression::default() };
                    let rule = LocationRule { score: Some(Score::NEG_INFINITY), score_attribute: None, role: location_role(spec.role), expression: everywhere };
                    return Ok(Spec::Location(LocationSpec {
                        resource: Some(rsc),
                        resources: Vec::new(),
                        role: None,
                        node: None,
                        score: None,
                        rules: vec![rule],
                        resource_discovery: None,
                        expires: None,
                    }));
                }
                (Err(reason), _) => return Err(reason),
            }
            spec.resource = Some(rsc);
            spec.with_resource = Some(with);
        } else {
            for set in sets {
                let resources = set_members(set, placed)?;
                let role = optional_role(set.attr("role"))?;
                for name in &resources {
                    checked_role(placed, name, set.attr("role"))?;
                }
                for attribute in ["action", "require-all", "ordering", "score", "kind"] {
                    if set.attr(attribute).is_some() {
                        self.unmapped("resource_set", set.id(), format!("{attribute} of a colocation set has no Pacer equivalent; ignored"));
                    }
                }
                spec.sets.push(ResourceSet { resources, sequential: optional_bool(set, "sequential")?, require_all: None, role, action: None });
            }
            if spec.sets.iter().map(|set| set.resources.len()).sum::<usize>() < 2 {
                return Err("resource sets name fewer than two resources".into());
            }
        }
        Ok(Spec::Colocation(spec))
    }

    fn order(&mut self, element: &Element, placed: &Placed) -> Result<OrderSpec, Skip> {
        for unsupported in ["first-instance", "then-instance"] {
            if element.attr(unsupported).is_some() {
                return Err(format!("{unsupported} has no Pacer equivalent"));
            }
        }
        let kind = match (element.attr("kind"), element.attr("score")) {
            (Some(kind), _) => match kind.to_ascii_lowercase().as_str() {
                "mandatory" => OrderKind::Mandatory,
                "optional" => OrderKind::Optional,
                "serialize" => OrderKind::Serialize,
                _ => {
                    self.unmapped("rsc_order", element.id(), format!("kind={kind} is not valid; Mandatory, as Pacemaker resets it"));
                    OrderKind::Mandatory
                }
            },
            // The legacy score: 0 made an order optional, anything else mandatory.
            (None, Some(score)) => match parse_score(score) {
                Some(Score::ZERO) => OrderKind::Optional,
                Some(_) => OrderKind::Mandatory,
                None => return Err(format!("score {score:?} is not a score")),
            },
            (None, None) => OrderKind::Mandatory,
        };
        let symmetrical = optional_bool(element, "symmetrical")?;
        let mut spec = OrderSpec { first: None, first_action: None, then: None, then_action: None, kind, symmetrical, sets: Vec::new() };
        let sets: Vec<&Element> = element.children_named("resource_set").collect();
        if sets.is_empty() {
            if element.attr("require-all").is_some_and(|text| parse_bool(text) == Some(false)) {
                return Err("require-all=false on a two-resource order has no Pacer equivalent".into());
            }
            let first = resolve(placed, element.attr("first").ok_or("no first")?)?;
            let then = resolve(placed, element.attr("then").ok_or("no then")?)?;
            if first == then {
                return Err(format!("{first} is ordered after itself"));
            }
            spec.first_action = optional_action(placed, &first, element.attr("first-action"))?;
            spec.then_action = optional_action(placed, &then, element.attr("then-action"))?;
            spec.first = Some(first);
            spec.then = Some(then);
        } else {
            for set in sets {
                let resources = set_members(set, placed)?;
                let action = match set.attr("action") {
                    None => None,
                    Some(text) => {
                        let action = parse_action(text).ok_or_else(|| format!("action {text:?} is not start, stop, promote or demote"))?;
                        if matches!(action, OrderAction::Promote | OrderAction::Demote) {
                            if let Some(name) = resources.iter().find(|name| !placed.promotable.contains(*name)) {
                                return Err(format!("{name} is not promotable, so it is never promoted or demoted"));
                            }
                        }
                        Some(action)
                    }
                };
                for attribute in ["ordering", "score", "kind"] {
                    if set.attr(attribute).is_some() {
                        self.unmapped("resource_set", set.id(), format!("{attribute} of an order set has no Pacer equivalent; ignored"));
                    }
                }
                spec.sets.push(ResourceSet {
                    resources,
                    sequential: optional_bool(set, "sequential")?,
                    require_all: optional_bool(set, "require-all")?,
                    role: optional_role(set.attr("role"))?,
                    action,
                });
            }
            if spec.sets.iter().map(|set| set.resources.len()).sum::<usize>() < 2 {
                return Err("resource sets name fewer than two resources".into());
            }
        }
        Ok(spec)
    }

    /// One FencingTopology per target node, levels by index.
    pub(super) fn fencing_topology(&mut self, configuration: &Element, placed: &Placed, nodes: &NodeTable) -> Vec<Object> {
        let Some(topology) = configuration.child("fencing-topology") else { return Vec::new() };
        let mut by_node: Vec<(Name, Vec<FencingLevel>)> = Vec::new();
        for level in topology.children_named("fencing-level") {
            let id = level.id();
            let Some(target) = level.attr("target") else {
                self.unmapped("fencing-level", id, "target-pattern and target-attribute have no Pacer equivalent; level skipped".into());
                continue;
            };
            let Some(node) = nodes.find(target) else {
                self.unmapped("fencing-level", id, format!("{target} is not a configured node; level skipped"));
                continue;
            };
            let index = level.attr("index").and_then(|text| text.trim().parse::<u32>().ok()).filter(|index| (1..=9).contains(index));
            let Some(index) = index else {
                self.unmapped("fencing-level", id, "index is not 1 to 9; level skipped".into());
                continue;
            };
            let mut devices = Vec::new();
            for device in level.attr("devices").unwrap_or_default().split(',').map(str::trim).filter(|device| !device.is_empty()) {
                match placed.refs.get(device).filter(|name| placed.fence_devices.contains(*name)) {
                    Some(name) => devices.push(name.clone()),
                    None => self.unmapped("fencing-level", id, format!("{device} is not an imported fence device; left out")),
                }
            }
            if devices.is_empty() {
                self.unmapped("fencing-level", id, "no device left; level skipped".into());
                continue;
            }
            let position = match by_node.iter().position(|(existing, _)| existing == node) {
                Some(position) => position,
                None => {
                    by_node.push((node.clone(), Vec::new()));
                    by_node.len() - 1
                }
            };
            let levels = &mut by_node[position].1;
            if levels.iter().any(|existing| existing.index == index) {
                self.unmapped("fencing-level", id, format!("level {index} of {target} is given twice; the first wins"));
                continue;
            }
            levels.push(FencingLevel { index, devices });
        }
        by_node
            .into_iter()
            .map(|(node, mut levels)| {
                levels.sort_by_key(|level| level.index);
                Object {
                    metadata: ObjectMeta { name: node.clone(), ..ObjectMeta::default() },
                    spec: Spec::FencingTopology(FencingTopologySpec { node, levels }),
                }
            })
            .collect()
    }
}

fn resolve(placed: &Placed, id: &str) -> Result<Name, Skip> {
    placed.refs.get(id).cloned().ok_or_else(|| format!("{id} is not an imported resource"))
}

fn set_members(set: &Element, placed: &Placed) -> Result<Vec<Name>, Skip> {
    let mut members = Vec::new();
    for reference in set.children_named("resource_ref") {
        let name = resolve(placed, reference.id())?;
        if !members.contains(&name) {
            members.push(name);
        }
    }
    if members.is_empty() {
        return Err(format!("resource set {} is empty", set.id()));
    }
    Ok(members)
}

fn optional_role(text: Option<&str>) -> Result<Option<Role>, Skip> {
    match text {
        None => Ok(None),
        Some(text) => parse_role(text).map(Some).ok_or_else(|| format!("role {text:?} is not a role")),
    }
}

/// Pacemaker applies a `Started` location constraint to every role.
fn location_role(role: Option<Role>) -> Option<Role> {
    role.filter(|role| *role != Role::Started)
}

/// A role for `name`, refusing roles it cannot have (the constraint would never apply).
fn checked_role(placed: &Placed, name: &Name, text: Option<&str>) -> Result<Option<Role>, Skip> {
    let role = optional_role(text)?;
    if let Some(role @ (Role::Promoted | Role::Unpromoted)) = role
        && !placed.promotable.contains(name)
    {
        return Err(format!("{name} is not promotable, so it never has the {} role", role.as_str()));
    }
    Ok(role)
}

fn optional_bool(element: &Element, attribute: &str) -> Result<Option<bool>, Skip> {
    match element.attr(attribute) {
        None => Ok(None),
        Some(text) => parse_bool(text).map(Some).ok_or_else(|| format!("{attribute}={text:?} is not a boolean")),
    }
}

fn parse_action(text: &str) -> Option<OrderAction> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "start" => OrderAction::Start,
        "stop" => OrderAction::Stop,
        "promote" => OrderAction::Promote,
        "demote" => OrderAction::Demote,
        _ => return None,
    })
}

fn optional_action(placed: &Placed, name: &Name, text: Option<&str>) -> Result<Option<OrderAction>, Skip> {
    let Some(text) = text else { return Ok(None) };
    let action = parse_action(text).ok_or_else(|| format!("action {text:?} is not start, stop, promote or demote"))?;
    if matches!(action, OrderAction::Promote | OrderAction::Demote) && !placed.promotable.contains(name) {
        return Err(format!("{name} is not promotable, so it is never promoted or demoted"));
    }
    Ok(Some(action))
}

fn location_rule<'a>(rule: &Element, placed: &Placed, resources: impl Iterator<Item = &'a Name>) -> Result<LocationRule, Skip> {
    let role = location_role(optional_role(rule.attr("role"))?);
    if let Some(role @ (Role::Promoted | Role::Unpromoted)) = role {
        for name in resources {
            if !placed.promotable.contains(name) {
                return Err(format!("{name} is not promotable, so a {} rule never applies", role.as_str()));
            }
        }
    }
    let (score, score_attribute) = match (rule.attr("score"), rule.attr("score-attribute")) {
        (Some(text), _) => (Some(parse_score(text).ok_or_else(|| format!("score {text:?} is not a score Pacer can hold"))?), None),
        (None, Some(attribute)) => (None, Some(attribute.to_string())),
        // Pacemaker assumes 0 when a rule has neither.
        (None, None) => (Some(Score::ZERO), None),
    };
    Ok(LocationRule { score, score_attribute, role, expression: rule_expression(rule, 0)? })
}

/// Pacemaker rules nest at most this deep here; Pacer's limit is 16.
const MAX_RULE_DEPTH: usize = 15;

/// A rule's children combined by its `boolean-op` (default and).
fn rule_expression(rule: &Element, depth: usize) -> Result<Expression, Skip> {
    if depth > MAX_RULE_DEPTH {
        return Err("rules nest too deep".into());
    }
    let mut parts = Vec::new();
    for child in &rule.children {
        match child.tag {
            "expression" => parts.push(comparison(child)?),
            "rule" => parts.push(rule_expression(child, depth + 1)?),
            "date_expression" => return Err("date_expression has no Pacer equivalent".into()),
            other => return Err(format!("<{other}> in a rule has no Pacer equivalent")),
        }
    }
    let or = rule.attr("boolean-op").is_some_and(|op| op.eq_ignore_ascii_case("or"));
    Ok(match parts.len() {
        // An empty rule passes in Pacemaker: every node has a name.
        0 => Expression { attribute: Some("#uname".into()), operation: Some(ExpressionOperation::Defined), ..Expression::default() },
        1 => parts.remove(0),
        _ if or => Expression { or: Some(parts), ..Expression::default() },
        _ => Expression { and: Some(parts), ..Expression::default() },
    })
}

fn comparison(expression: &Element) -> Result<Expression, Skip> {
    let attribute = expression.attr("attribute").filter(|name| !name.is_empty()).ok_or("expression without attribute")?;
    if expression.attr("value-source").is_some_and(|source| source != "literal") {
        return Err("value-source other than literal has no Pacer equivalent".into());
    }
    let operation_text = expression.attr("operation").unwrap_or_default();
    let operation = match operation_text {
        "eq" => ExpressionOperation::Eq,
        "ne" => ExpressionOperation::Ne,
        "lt" => ExpressionOperation::Lt,
        "lte" => ExpressionOperation::Lte,
        "gt" => ExpressionOperation::Gt,
        "gte" => ExpressionOperation::Gte,
        "defined" => ExpressionOperation::Defined,
        "not_defined" => ExpressionOperation::NotDefined,
        other => return Err(format!("expression operation {other:?} is not valid")),
    };
    let value_type = match expression.attr("type").map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("string") => Some(ExpressionType::String),
        Some("integer") => Some(ExpressionType::Integer),
        Some("number") => Some(ExpressionType::Number),
        Some("version") => Some(ExpressionType::Version),
        Some(other) => return Err(format!("expression type {other:?} is not valid")),
    };
    let value = match operation {
        ExpressionOperation::Defined | ExpressionOperation::NotDefined => None,
        _ => Some(ParamValue(expression.attr("value").ok_or("comparison without a value")?.to_string())),
    };
    Ok(Expression { attribute: Some(attribute.to_string()), operation: Some(operation), value, value_type, ..Expression::default() })
}
