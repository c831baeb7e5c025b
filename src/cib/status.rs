//! `<status>` to `Observed`: node liveness as Pacemaker 2.1 decides it, transient
//! attributes and operation histories, verbatim.

use std::collections::BTreeMap;

use crate::api::Name;
use crate::api::records::{ExecStatus, OperationRecord, RestartDigest};
use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode, ResourceHistory};

use super::config::{ClusterSettings, NodeTable};
use super::values::parse_bool;
use super::xml::Element;
use super::{Importer, Namespace};

/// The membership fields of one `<node_state>`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Membership<'a> {
    /// `in_ccm`: in the cluster layer's membership (`true`/`false`, or a timestamp).
    pub in_cluster: Option<&'a str>,
    /// `crmd`: the controller's peer state (`online`/`offline`, or a timestamp).
    pub peer: Option<&'a str>,
    pub join: Option<&'a str>,
    pub expected: Option<&'a str>,
}

/// What decides a node's liveness besides its membership.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LivenessContext<'a> {
    pub stonith_enabled: bool,
    /// The `shutdown` transient attribute is set and not `0`.
    pub shutdown: bool,
    /// The `terminate` transient attribute.
    pub terminate: Option<&'a str>,
}

/// Newer CIBs record membership as the time it began; a positive one means yes.
fn is_timestamp(text: Option<&str>) -> bool {
    text.and_then(|text| text.trim().parse::<i64>().ok()).is_some_and(|stamp| stamp > 0)
}

fn in_cluster(membership: &Membership<'_>) -> bool {
    membership.in_cluster.and_then(parse_bool) == Some(true) || is_timestamp(membership.in_cluster)
}

fn peer_online(membership: &Membership<'_>) -> bool {
    membership.peer.is_some_and(|peer| peer.eq_ignore_ascii_case("online")) || is_timestamp(membership.peer)
}

fn is(value: Option<&str>, expected: &str) -> bool {
    value.is_some_and(|value| value.eq_ignore_ascii_case(expected))
}

/// Pacemaker's `determine_online_status`: with fencing enabled, any doubt makes a
/// node unclean (it will be fenced); without, a node that is not clearly up is down.
pub(crate) fn liveness(membership: &Membership<'_>, context: &LivenessContext<'_>) -> NodeLiveness {
    let member = in_cluster(membership);
    let online_peer = peer_online(membership);
    if !context.stonith_enabled {
        let expected_up = !context.shutdown && is(membership.expected, "member");
        return if !member {
            NodeLiveness::Offline
        } else if online_peer {
            if is(membership.join, "member") { NodeLiveness::Online } else { NodeLiveness::Offline }
        } else if !expected_up {
            NodeLiveness::Offline
        } else {
            NodeLiveness::Unclean
        };
    }
    let terminate =
        context.terminate.is_some_and(|text| parse_bool(text) == Some(true) || text.chars().next().is_some_and(|first| first.is_ascii_digit() && first != '0'));
    let expected_down = membership.expected.is_none_or(|expected| expected.eq_ignore_ascii_case("down"));
    // A node not (yet) allowed to run resources counts as online only when it is a
    // member; Pacemaker then marks it pending.
    let pending = if member { NodeLiveness::Pending } else { NodeLiveness::Offline };
    if context.shutdown {
        if online_peer { NodeLiveness::Online } else { NodeLiveness::Offline }
    } else if membership.in_cluster.is_none() || is(membership.join, "banned") {
        NodeLiveness::Unclean
    } else if !terminate && expected_down {
        if member || online_peer { pending } else { NodeLiveness::Offline }
    } else if terminate && is(membership.join, "down") && !member && !online_peer {
        // Just fenced.
        NodeLiveness::Offline
    } else if !member || !online_peer || terminate {
        NodeLiveness::Unclean
    } else if is(membership.join, "member") {
        NodeLiveness::Online
    } else if is(membership.join, "pending") || is(membership.join, "down") {
        pending
    } else {
        NodeLiveness::Unclean
    }
}

/// Pacemaker's `op-status` values (`enum pcmk_exec_status`).
fn exec_status(code: i64) -> Option<ExecStatus> {
    Some(match code {
        -1 => ExecStatus::Pending,
        0 => ExecStatus::Done,
        1 => ExecStatus::Cancelled,
        2 => ExecStatus::Timeout,
        3 => ExecStatus::NotSupported,
        4 => ExecStatus::Error,
        5 => ExecStatus::ErrorHard,
        6 => ExecStatus::ErrorFatal,
        7 => ExecStatus::NotInstalled,
        // Not connected, no fence device, no secrets: could not run, may elsewhere.
        8 | 10 | 11 => ExecStatus::Error,
        9 => ExecStatus::Invalid,
        _ => return None,
    })
}

impl Importer {
    pub(super) fn status(&mut self, root: &Element, settings: &ClusterSettings, nodes: &NodeTable) -> Observed {
        let quorum = match root.attr("have-quorum") {
            None => false,
            Some(text) => parse_bool(text).unwrap_or_else(|| {
                self.unmapped("cib", "have-quorum", format!("{text:?} is not a boolean; no quorum"));
                false
            }),
        };
        let dc = root.attr("dc-uuid").and_then(|id| nodes.by_id.get(id).or_else(|| nodes.find(id))).map(|name| name.to_string());
        let mut observed = Observed { quorum, nodes: BTreeMap::new(), history: Vec::new(), dc };
        let Some(status) = root.child("status") else { return observed };
        // Sized once: a large CIB has tens of thousands of histories, each moved at
        // every growth otherwise.
        let entries = status
            .children_named("node_state")
            .filter_map(|state| state.child("lrm").and_then(|lrm| lrm.child("lrm_resources")))
            .map(|resources| resources.children.len())
            .sum();
        observed.history.reserve_exact(entries);
        for state in status.children_named("node_state") {
            let id = state.id();
            let Some(uname) = state.attr("uname") else {
                self.unmapped("node_state", id, "node_state without uname (Pacemaker ignores it)".into());
                continue;
            };
            let Some(node) = nodes.by_id.get(id).or_else(|| nodes.find(uname)).cloned() else {
                self.unmapped("node_state", id, format!("{uname} is not a configured node (Pacemaker ignores its state)"));
                continue;
            };
            let mut attributes = BTreeMap::new();
            if let Some(transient) = state.child("transient_attributes") {
                for (name, value) in self.nvpairs(transient, "instance_attributes") {
                    attributes.insert(name, value);
                }
            }
            let shutdown = attributes.get("shutdown").is_some_and(|value| value != "0");
            let membership =
                Membership { in_cluster: state.attr("in_ccm"), peer: state.attr("crmd"), join: state.attr("join"), expected: state.attr("expected") };
            let context =
                LivenessContext { stonith_enabled: settings.policy.stonith_enabled, shutdown, terminate: attributes.get("terminate").map(String::as_str) };
            let mut node_liveness = liveness(&membership, &context);
            if settings.no_quorum_suicide && !quorum && node_liveness == NodeLiveness::Online {
                node_liveness = NodeLiveness::Unclean;
            }
            if observed.nodes.contains_key(node.as_str()) {
                self.unmapped("node_state", id, format!("second node_state for {uname}; the first wins"));
                continue;
            }
            observed.nodes.insert(node.as_str().to_owned(), ObservedNode { liveness: node_liveness, shutdown, attributes });
            self.node_history(state, &node, &mut observed.history);
        }
        observed
    }

    fn node_history(&mut self, state: &Element, node: &Name, history: &mut Vec<ResourceHistory>) {
        let Some(resources) = state.child("lrm").and_then(|lrm| lrm.child("lrm_resources")) else { return };
        for resource in resources.children_named("lrm_resource") {
            let id = resource.id();
            let agent = match (resource.attr("class"), resource.attr("provider"), resource.attr("type")) {
                (Some(class), Some(provider), Some(agent_type)) => Some([class, ":", provider, ":", agent_type].concat()),
                (Some(class), None, Some(agent_type)) => Some([class, ":", agent_type].concat()),
                _ => None,
            };
            let mut operations = Vec::with_capacity(resource.children.len());
            for op in resource.children_named("lrm_rsc_op") {
                match operation_record(op) {
                    Ok(record) => operations.push(record),
                    Err(reason) => self.unmapped("lrm_rsc_op", op.id(), format!("{reason}; operation left out")),
                }
            }
            // Oldest first; pending operations (call id -1) are the newest.
            operations.sort_by_key(|record: &OperationRecord| (record.call_id < 0, record.call_id));
            // A definition the import changed: what the history recorded of it cannot
            // be compared with what Pacer runs.
            let (base, _) = crate::api::names::split_instance(id);
            let agent = if self.altered_definitions.contains(base) {
                for record in &mut operations {
                    record.digest = None;
                    record.restart_digest = None;
                }
                None
            } else {
                agent
            };
            history.push(ResourceHistory { resource: self.history_name(id), node: node.as_str().to_owned(), agent, operations });
        }
    }

    /// The history keeps Pacemaker's id (`rsc` or `rsc:N`), except that a renamed
    /// primitive's base is renamed too, so the history still finds its resource.
    fn history_name(&self, id: &str) -> String {
        let names = &self.names[Namespace::Placeable as usize];
        if let Some(name) = names.get(id) {
            return name.as_str().to_owned();
        }
        let (base, suffix) = crate::api::names::split_instance(id);
        match (names.get(base), suffix) {
            (Some(name), Some(instance)) if name.as_str() != base => format!("{name}:{instance}"),
            (Some(name), None) => name.as_str().to_owned(),
            _ => id.to_string(),
        }
    }
}

/// The attributes of a history entry that `operation_record` reads, found in one pass
/// over its attributes: an entry has about twenty, and a lookup per field compared
/// names hundreds of times per entry (issue 19: a tenth of an import).
#[derive(Default)]
struct OperationAttributes<'a> {
    operation: Option<&'a str>,
    call_id: Option<&'a str>,
    rc_code: Option<&'a str>,
    op_status: Option<&'a str>,
    interval: Option<&'a str>,
    transition_key: Option<&'a str>,
    transition_magic: Option<&'a str>,
    last_rc_change: Option<&'a str>,
    last_run: Option<&'a str>,
    migrate_source: Option<&'a str>,
    migrate_target: Option<&'a str>,
    op_digest: Option<&'a str>,
    op_restart_digest: Option<&'a str>,
    op_force_restart: Option<&'a str>,
}

impl<'a> OperationAttributes<'a> {
    /// The first value of each attribute, as `Element::attr` finds it.
    fn of(op: &Element<'a>) -> OperationAttributes<'a> {
        let mut found = OperationAttributes::default();
        for (name, value) in op.attributes() {
            let slot = match name {
                "operation" => &mut found.operation,
                "call-id" => &mut found.call_id,
                "rc-code" => &mut found.rc_code,
                "op-status" => &mut found.op_status,
                "interval" => &mut found.interval,
                "transition-key" => &mut found.transition_key,
                "transition-magic" => &mut found.transition_magic,
                "last-rc-change" => &mut found.last_rc_change,
                "last-run" => &mut found.last_run,
                "migrate_source" => &mut found.migrate_source,
                "migrate_target" => &mut found.migrate_target,
                "op-digest" => &mut found.op_digest,
                "op-restart-digest" => &mut found.op_restart_digest,
                "op-force-restart" => &mut found.op_force_restart,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }
}

/// An integer attribute of a history entry, surrounding whitespace allowed.
fn history_number(attribute: &str, value: Option<&str>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        // Trimmed only when it does not parse as it is (trimming decodes characters).
        Some(text) => text.parse::<i64>().or_else(|_| text.trim().parse::<i64>()).map(Some).map_err(|_| format!("{attribute}={text:?} is not an integer")),
    }
}

fn operation_record(op: &Element) -> Result<OperationRecord, String> {
    let found = OperationAttributes::of(op);
    let operation = found.operation.ok_or("no operation")?.to_string();
    // transition-magic is "<op-status>:<rc>;<transition-key>", a fallback for old records.
    let magic = || found.transition_magic.and_then(|magic| magic.split_once(';')).and_then(|(codes, _)| codes.split_once(':'));
    let call_id = history_number("call-id", found.call_id)?.ok_or("no call-id")?;
    let rc = match history_number("rc-code", found.rc_code)? {
        Some(rc) => rc,
        None => magic().and_then(|(_, rc)| rc.parse().ok()).ok_or("no rc-code")?,
    };
    let status_code = match history_number("op-status", found.op_status)? {
        Some(code) => code,
        None => magic().and_then(|(status, _)| status.parse().ok()).ok_or("no op-status")?,
    };
    let status = exec_status(status_code).ok_or_else(|| format!("op-status {status_code} is not a known execution status"))?;
    let interval_ms = match history_number("interval", found.interval)? {
        Some(interval) => u64::try_from(interval).map_err(|_| "negative interval".to_string())?,
        None => 0,
    };
    // transition-key is "<action>:<transition>:<target-rc>:<uuid>".
    let expected_rc = found.transition_key.and_then(|key| key.split(':').nth(2)).and_then(|rc| rc.parse().ok()).unwrap_or(0);
    let last_rc_change = match history_number("last-rc-change", found.last_rc_change)? {
        Some(time) => Some(time),
        None => history_number("last-run", found.last_run)?,
    };
    Ok(OperationRecord {
        operation,
        interval_ms,
        call_id,
        rc: i32::try_from(rc).map_err(|_| format!("rc-code {rc} is out of range"))?,
        expected_rc,
        status,
        last_rc_change,
        migrate_source: found.migrate_source.map(str::to_string),
        migrate_target: found.migrate_target.map(str::to_string),
        digest: found.op_digest.map(str::to_string),
        restart_digest: found.op_restart_digest.map(|digest| RestartDigest {
            digest: digest.to_string(),
            params: found.op_force_restart.map(|names| names.split_whitespace().map(str::to_string).collect()),
        }),
    })
}
