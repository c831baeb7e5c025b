//! How `pacer get` and `pacer diff` print objects: tables, YAML, JSON, unified diffs;
//! and the warning every command that reads the cluster prints for a stored value
//! that does not decode.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::api::resource::CloneSpec;
use crate::api::yaml::to_yaml_string;
use crate::api::{Kind, Object, ObjectKey, Spec};
use crate::store::apply::PlannedObject;

/// Names on stderr, one line each, the stored keys a command skipped because their
/// value does not decode (`KEY`, `REASON`): the command works on the rest, and the
/// user learns what it did not see.
pub fn warn_skipped<'a>(skipped: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let stderr = std::io::stderr();
    let mut out = stderr.lock();
    for (key, reason) in skipped {
        let _ = writeln!(out, "warning: skipping {key}: {reason}");
    }
}

/// Aligns rows under a header, columns separated by three spaces (as kubectl does).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(column) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (column, cell) in cells.into_iter().enumerate() {
            text.push_str(cell);
            if column < last {
                let pad = widths.get(column).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 3;
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn age(object: &Object, now: SystemTime) -> String {
    let Some(created) = object.metadata.creation_timestamp.as_deref().and_then(|text| humantime::parse_rfc3339(text).ok()) else {
        return "-".into();
    };
    let seconds = now.duration_since(created).map(|elapsed| elapsed.as_secs()).unwrap_or(0);
    match seconds {
        0..=119 => format!("{seconds}s"),
        120..=7199 => format!("{}m", seconds / 60),
        7200..=172_799 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

fn clone_kind(clone: Option<&CloneSpec>) -> String {
    match clone {
        None => "-".into(),
        Some(clone) if clone.promotable.is_some() => "promotable".into(),
        Some(_) => "clone".into(),
    }
}

fn or_dash(text: impl Into<String>) -> String {
    let text = text.into();
    if text.is_empty() { "-".into() } else { text }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    or_dash(items.into_iter().map(|item| item.to_string()).collect::<Vec<_>>().join(","))
}

/// Column titles and one row per object for `pacer get KIND`.
/// The live columns `get` adds for a kind (`live_cells` fills them).
pub fn live_header(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Resource | Kind::Group => &["NODES", "ROLE", "FAILURES"],
        Kind::Node => &["STATE", "RESOURCES"],
        _ => &[],
    }
}

/// A table of objects of one kind; `live` holds the live columns of the objects that
/// have them (`live_header`), when the cluster was read.
pub fn kind_table(kind: Kind, objects: &[&Object], wide: bool, live: Option<&BTreeMap<ObjectKey, Vec<String>>>) -> String {
    let now = SystemTime::now();
    let (mut header, extra): (Vec<&str>, Vec<&str>) = match kind {
        Kind::Resource => (vec!["NAME", "AGENT", "CLONE"], vec!["TARGET-ROLE", "OPERATIONS"]),
        Kind::Group => (vec!["NAME", "MEMBERS", "CLONE"], vec!["TARGET-ROLE"]),
        Kind::Location => (vec!["NAME", "RESOURCE", "NODE", "SCORE"], vec!["ROLE"]),
        Kind::Colocation => (vec!["NAME", "RESOURCE", "WITH", "SCORE"], vec!["ROLES"]),
        Kind::Order => (vec!["NAME", "FIRST", "THEN", "KIND"], vec!["SYMMETRICAL"]),
        Kind::FenceDevice => (vec!["NAME", "AGENT", "HOSTS"], vec!["DELAY"]),
        Kind::FencingTopology => (vec!["NAME", "NODE", "LEVELS"], vec![]),
        Kind::Node => (vec!["NAME", "STANDBY", "MAINTENANCE"], vec!["ATTRIBUTES"]),
        Kind::ClusterPolicy => (vec!["NAME", "STONITH", "NO-QUORUM", "STICKINESS"], vec!["SYMMETRIC", "PLACEMENT"]),
        Kind::Alert => (vec!["NAME", "RECEIVER", "EVENTS"], vec!["RECIPIENTS"]),
    };
    if live.is_some() {
        header.extend(live_header(kind));
    }
    if wide {
        header.extend(extra);
        header.push("GENERATION");
    }
    header.push("AGE");
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|object| {
            let name = object.name().to_string();
            let (mut row, extra): (Vec<String>, Vec<String>) = match &object.spec {
                Spec::Resource(resource) => (
                    vec![name, resource.agent.to_string(), clone_kind(resource.clone.as_ref())],
                    vec![
                        resource.meta.target_role.map(|role| role.as_str().to_string()).unwrap_or_else(|| "-".into()),
                        list(
                            resource
                                .operations
                                .iter()
                                .map(|op| if op.interval.is_zero() { op.name.as_str().to_string() } else { format!("{}/{}", op.name.as_str(), op.interval) }),
                        ),
                    ],
                ),
                Spec::Group(group) => (
                    vec![name, list(&group.members), clone_kind(group.clone.as_ref())],
                    vec![group.meta.target_role.map(|role| role.as_str().to_string()).unwrap_or_else(|| "-".into())],
                ),
                Spec::Location(location) => {
                    let resource = location.resource.as_ref().map(ToString::to_string).unwrap_or_else(|| list(&location.resources));
                    let (node, score) = match (&location.node, location.score) {
                        (Some(node), Some(score)) => (node.to_string(), score.to_string()),
                        _ => (format!("<{} rules>", location.rules.len()), "-".into()),
                    };
                    (vec![name, resource, node, score], vec![location.role.map(|role| role.as_str().to_string()).unwrap_or_else(|| "-".into())])
                }
                Spec::Colocation(colocation) => {
                    let (resource, with) = if colocation.sets.is_empty() {
                        (
                            colocation.resource.as_ref().map(ToString::to_string).unwrap_or_default(),
                            colocation.with_resource.as_ref().map(ToString::to_string).unwrap_or_default(),
                        )
                    } else {
                        (format!("<{} sets>", colocation.sets.len()), "-".into())
                    };
                    let roles = format!(
                        "{}/{}",
                        colocation.role.map(|role| role.as_str()).unwrap_or("*"),
                        colocation.with_role.map(|role| role.as_str()).unwrap_or("*")
                    );
                    (vec![name, resource, with, colocation.score.to_string()], vec![roles])
                }
                Spec::Order(order) => {
                    let (first, then) = if order.sets.is_empty() {
                        (
                            format!("{}:{:?}", order.first.as_ref().map(ToString::to_string).unwrap_or_default(), order.first_action()),
                            format!("{}:{:?}", order.then.as_ref().map(ToString::to_string).unwrap_or_default(), order.then_action()),
                        )
                    } else {
                        (format!("<{} sets>", order.sets.len()), "-".into())
                    };
                    (vec![name, first, then, format!("{:?}", order.kind)], vec![order.is_symmetrical().to_string()])
                }
                Spec::FenceDevice(device) => {
                    let hosts: Vec<String> = device.host_list.iter().map(ToString::to_string).chain(device.host_map.keys().cloned()).collect();
                    (vec![name, device.agent.to_string(), list(hosts)], vec![device.delay.map(|delay| delay.to_string()).unwrap_or_else(|| "-".into())])
                }
                Spec::FencingTopology(topology) => {
                    let levels = topology.levels.iter().map(|level| format!("{}:{}", level.index, list(&level.devices))).collect::<Vec<_>>().join(" ");
                    (vec![name, topology.node.to_string(), levels], vec![])
                }
                Spec::Node(node) => (
                    vec![name, node.standby.to_string(), node.maintenance.to_string()],
                    vec![list(node.attributes.iter().map(|(key, value)| format!("{key}={value}")))],
                ),
                Spec::ClusterPolicy(policy) => (
                    vec![name, policy.stonith_enabled.to_string(), format!("{:?}", policy.no_quorum_policy), policy.default_resource_stickiness.to_string()],
                    vec![policy.symmetric_cluster.to_string(), format!("{:?}", policy.placement_strategy)],
                ),
                Spec::Alert(alert) => {
                    let receiver = match (&alert.receiver.webhook, &alert.receiver.exec) {
                        (Some(webhook), _) => format!("webhook {}", webhook.url),
                        (_, Some(exec)) => format!("exec {}", exec.path),
                        _ => "-".into(),
                    };
                    let events = if alert.events.is_empty() { "all".to_string() } else { list(alert.events.iter().map(|event| format!("{event:?}"))) };
                    (vec![name, receiver, events], vec![list(&alert.recipients)])
                }
            };
            if let Some(live) = live {
                let cells = live.get(&object.key()).cloned().unwrap_or_default();
                row.extend((0..live_header(kind).len()).map(|index| cells.get(index).cloned().unwrap_or_else(|| "-".into())));
            }
            if wide {
                row.extend(extra);
                row.push(object.metadata.generation.map(|generation| generation.to_string()).unwrap_or_else(|| "-".into()));
            }
            row.push(age(object, now));
            row
        })
        .collect();
    table(&header, &rows)
}

/// Objects as a multi-document YAML stream.
pub fn objects_yaml(objects: &[Value]) -> String {
    objects.iter().map(to_yaml_string).collect::<Vec<_>>().join("---\n")
}

/// One object as JSON, or several as a kubectl-style List.
pub fn objects_json(objects: &[Value], single: bool) -> String {
    let value = if single && objects.len() == 1 { objects[0].clone() } else { json!({"apiVersion": "v1", "kind": "List", "items": objects}) };
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

fn diffable(object: Option<&Object>) -> Option<serde_json::Value> {
    let mut shown = object?.clone();
    shown.metadata.resource_version = None;
    Some(shown.to_value())
}

/// A unified diff of one planned change, stored form against applied form.
pub fn unified_diff(planned: &PlannedObject) -> String {
    let (mut before, mut after) = (diffable(planned.before.as_ref()), diffable(planned.after.as_ref()));
    // A diff shows that a password changed, never its values.
    crate::api::params::redact_change(before.as_mut(), after.as_mut());
    let before = before.as_ref().map(to_yaml_string).unwrap_or_default();
    let after = after.as_ref().map(to_yaml_string).unwrap_or_default();
    let old_label = if planned.before.is_some() { format!("{} (stored)", planned.key) } else { "/dev/null".to_string() };
    let new_label = if planned.after.is_some() { format!("{} (applied)", planned.key) } else { "/dev/null".to_string() };
    similar::TextDiff::from_lines(&before, &after).unified_diff().context_radius(3).header(&old_label, &new_label).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let text = table(&["NAME", "AGENT"], &[vec!["web".into(), "ocf:heartbeat:apache".into()], vec!["database".into(), "lsb:pg".into()]]);
        assert_eq!(text, "NAME       AGENT\nweb        ocf:heartbeat:apache\ndatabase   lsb:pg\n");
    }
}
