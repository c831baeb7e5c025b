//! Whether an assignment's gates are open, judged from the statuses every node's agent
//! reports: the node agent evaluates what the scheduler computed.

use std::collections::BTreeSet;

use crate::api::constraint::OrderAction;

use crate::api::records::{LocalGate, ObservedRole, ResourceStatus};

/// Whether every gate holds, counting gates that share an `any_of` number as one:
/// one of them suffices.
pub fn all_open<'a>(gates: &[LocalGate], node: &str, statuses: impl Iterator<Item = &'a ResourceStatus> + Clone) -> bool {
    let mut alternatives: std::collections::BTreeMap<usize, bool> = std::collections::BTreeMap::new();
    for gate in gates {
        let open = is_open(gate, node, statuses.clone());
        match gate.any_of {
            None if !open => return false,
            None => {}
            Some(set) => *alternatives.entry(set).or_insert(false) |= open,
        }
    }
    alternatives.values().all(|open| *open)
}

/// Whether one gate holds: at least `at_least` copies (a node and instance) where every
/// member has done the action, on `node` only when the gate says so.
pub fn is_open<'a>(gate: &LocalGate, node: &str, statuses: impl Iterator<Item = &'a ResourceStatus>) -> bool {
    let done = |role: ObservedRole| match gate.action {
        OrderAction::Promote => role == ObservedRole::Promoted,
        _ => role.is_active(),
    };
    // Copies where some member has acted, and which member did: (node, instance).
    let mut acted: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    for status in statuses {
        if gate.same_node && status.node != node {
            continue;
        }
        if gate.on_nodes.as_ref().is_some_and(|nodes| !nodes.contains(&status.node)) {
            continue;
        }
        if !gate.members.contains(&status.name) || !done(status.role) {
            continue;
        }
        // Anonymous instances are told apart by node only; others by their number.
        let instance = status.id.rsplit_once(':').map_or("", |(_, number)| number);
        acted.insert((status.node.as_str(), instance, status.name.as_str()));
    }
    let mut copies: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (node, instance, _) in &acted {
        if gate.members.iter().all(|member| acted.contains(&(node, instance, member.as_str()))) {
            copies.insert((node, instance));
        }
    }
    copies.len() >= gate.at_least as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::Definition;

    fn status(id: &str, name: &str, node: &str, role: ObservedRole) -> ResourceStatus {
        ResourceStatus {
            id: id.into(),
            name: name.into(),
            group: None,
            clone: None,
            node: node.into(),
            role,
            definition: std::sync::Arc::new(Definition {
                agent: "ocf:heartbeat:Dummy".parse().expect("agent"),
                params: Default::default(),
                secret_files: Default::default(),
                meta: Default::default(),
                operations: vec![],
            }),
            history: vec![],
            failures: 0,
            started_after: vec![],
            fail_counts: Default::default(),
            last_failure: None,
            failure_reason: None,
            pending: None,
            notice: None,
            acks: Default::default(),
        }
    }

    fn gate(members: &[&str], action: OrderAction, same_node: bool, at_least: u32) -> LocalGate {
        LocalGate { resource: "x".into(), members: members.iter().map(|m| m.to_string()).collect(), action, same_node, on_nodes: None, at_least, any_of: None }
    }

    #[test]
    fn a_group_counts_only_where_every_member_runs() {
        let statuses = [
            status("ip", "ip", "n1", ObservedRole::Started),
            status("web", "web", "n1", ObservedRole::Stopped),
            status("web", "web", "n2", ObservedRole::Started),
        ];
        let group = gate(&["ip", "web"], OrderAction::Start, false, 1);
        assert!(!is_open(&group, "n3", statuses.iter()));
        let mut all = statuses.to_vec();
        all[1].role = ObservedRole::Started;
        assert!(is_open(&group, "n3", all.iter()));
    }

    #[test]
    fn same_node_gates_ignore_other_nodes_and_counts_need_copies() {
        let statuses = [status("db", "db", "n1", ObservedRole::Started), status("db", "db", "n2", ObservedRole::Promoted)];
        assert!(!is_open(&gate(&["db"], OrderAction::Start, true, 1), "n3", statuses.iter()));
        assert!(is_open(&gate(&["db"], OrderAction::Start, true, 1), "n1", statuses.iter()));
        assert!(is_open(&gate(&["db"], OrderAction::Start, false, 2), "n3", statuses.iter()));
        assert!(!is_open(&gate(&["db"], OrderAction::Start, false, 3), "n3", statuses.iter()));
        assert!(is_open(&gate(&["db"], OrderAction::Promote, false, 1), "n3", statuses.iter()));
        assert!(!is_open(&gate(&["db"], OrderAction::Promote, true, 1), "n1", statuses.iter()));
    }

    #[test]
    fn a_copy_a_move_is_leaving_does_not_open_the_gate() {
        let statuses = [status("ip", "ip", "n1", ObservedRole::Started)];
        let mut moving = gate(&["ip"], OrderAction::Start, false, 1);
        moving.on_nodes = Some(vec!["n2".into()]);
        assert!(!is_open(&moving, "n2", statuses.iter()));
        moving.on_nodes = Some(vec!["n1".into()]);
        assert!(is_open(&moving, "n2", statuses.iter()));
        moving.on_nodes = Some(vec![]);
        assert!(!is_open(&moving, "n2", statuses.iter()), "placed nowhere: never open");
    }

    #[test]
    fn unknown_and_failed_copies_open_nothing_and_alternatives_need_one() {
        let statuses =
            [status("a", "a", "n1", ObservedRole::Unknown), status("b", "b", "n1", ObservedRole::Failed), status("c", "c", "n2", ObservedRole::Started)];
        assert!(!is_open(&gate(&["a"], OrderAction::Start, false, 1), "n1", statuses.iter()));
        assert!(!is_open(&gate(&["b"], OrderAction::Start, false, 1), "n1", statuses.iter()));
        let mut a = gate(&["a"], OrderAction::Start, false, 1);
        let mut c = gate(&["c"], OrderAction::Start, false, 1);
        a.any_of = Some(0);
        c.any_of = Some(0);
        assert!(all_open(&[a.clone(), c.clone()], "n1", statuses.iter()));
        let mut b = gate(&["b"], OrderAction::Start, false, 1);
        b.any_of = Some(1);
        assert!(!all_open(&[a, c, b], "n1", statuses.iter()));
        assert!(all_open(&[], "n1", statuses.iter()));
    }
}
