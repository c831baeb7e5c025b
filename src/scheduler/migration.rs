//! Live migrations in the history: what a `migrate_to` or `migrate_from` says about
//! the node at the other end of the migration (Pacemaker 2.1's
//! `unpack_migrate_to_success`, `unpack_migrate_to_failure` and
//! `unpack_migrate_from_failure`).
//!
//! A migration is `migrate_to` on the source, then `migrate_from` on the target, then
//! a stop on the source. A history can hold any prefix of that: a `migrate_to` whose
//! `migrate_from` never ran (or has not been recorded) leaves the resource possibly
//! active on both nodes — a partial migration, which the scheduler may continue when
//! the resource stays on the target —, and a failed `migrate_from` leaves it possibly
//! active on the source as well as on the target. Whether one node's record still
//! matters is decided by what happened later on the other node: operations on one
//! node are ordered by call id, across nodes by the time of their last result.
//!
//! Pure: it reads histories and answers, the caller (`unpack`) changes the model.

use foldhash::{HashMap, HashMapExt as _};
use std::cmp::Ordering;

use crate::api::ocf as rc;
use crate::api::records::{ExecStatus, OperationRecord};

use super::snapshot::ResourceHistory;

/// Every history by (resource as recorded, node): the other end of a migration is
/// looked up here.
pub(super) struct Histories<'a> {
    by_key: HashMap<(&'a str, &'a str), &'a ResourceHistory>,
}

impl<'a> Histories<'a> {
    pub(super) fn new(histories: &'a [ResourceHistory]) -> Histories<'a> {
        let mut by_key = HashMap::new();
        for history in histories {
            // Several histories of one resource on one node: the first one, as an
            // XPath lookup in the CIB finds it.
            by_key.entry((history.resource.as_str(), history.node.as_str())).or_insert(history);
        }
        Histories { by_key }
    }

    fn on(&self, resource: &str, node: &str) -> Option<&'a ResourceHistory> {
        self.by_key.get(&(resource, node)).copied()
    }
}

/// What a migration record means beyond its own node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// The role of the resource on the record's own node after it: `Some(true)`
    /// active, `Some(false)` stopped, `None` as it was before the record.
    pub here_active: Option<bool>,
    /// The node at the other end, where the resource must also be taken as active.
    pub also_active_on: Option<String>,
    /// A partial migration that may be continued: (source, target).
    pub partial: Option<(String, String)>,
    /// The migration cannot be trusted: recover the resource (stop, start) rather
    /// than migrate it again.
    pub failed: bool,
    /// A stop is due on the record's own node, the source, whatever its role there
    /// (Pacemaker's dangling migration): both halves succeeded and no stop followed,
    /// or a failed `migrate_to` is the source's last word while the target moved on.
    pub dangling: bool,
}

/// Pacemaker's `pe__is_newer_op`: on one node by call id, across nodes by the time
/// of the last result; a pending operation (call id -1) is newer than a finished one.
fn compare(a: &OperationRecord, a_node: &str, b: &OperationRecord, b_node: &str) -> Ordering {
    let same_node = a_node == b_node;
    let (a_call, b_call) = (a.call_id, b.call_id);
    if a_call < 0 && b_call < 0 {
        return Ordering::Equal;
    }
    if same_node && a_call >= 0 && a_call < b_call {
        return Ordering::Less;
    }
    if same_node && b_call >= 0 && a_call > b_call {
        return Ordering::Greater;
    }
    if a_call >= 0 && b_call >= 0 {
        let (a_change, b_change) = (a.last_rc_change.unwrap_or(-1), b.last_rc_change.unwrap_or(-1));
        if a_change >= 0 && a_change < b_change {
            return Ordering::Less;
        }
        if b_change >= 0 && a_change > b_change {
            return Ordering::Greater;
        }
        return Ordering::Equal;
    }
    // One of them is pending: Pacemaker's transition keys would tell; a pending
    // operation was recorded after every finished one its node reported.
    if b_call < 0 { Ordering::Less } else { Ordering::Greater }
}

/// The first record of `operation` on the history (Pacemaker's `find_lrm_op`): with
/// `peer`, only one naming that node as the other end; with `expected`, only one that
/// ran to its end with that exit code.
fn find<'a>(history: Option<&'a ResourceHistory>, operation: &str, peer: Option<&str>, expected: Option<i32>) -> Option<&'a OperationRecord> {
    let op = history?.operations.iter().find(|op| {
        op.operation == operation
            && match (operation, peer) {
                ("migrate_to", Some(peer)) => op.migrate_target.as_deref() == Some(peer),
                ("migrate_from", Some(peer)) => op.migrate_source.as_deref() == Some(peer),
                _ => true,
            }
    })?;
    match expected {
        Some(code) if op.rc != code || op.status != ExecStatus::Done => None,
        _ => Some(op),
    }
}

/// A start, stop or migration on `node` after `than` (recorded on `than_node`).
fn non_monitor_after(history: Option<&ResourceHistory>, node: &str, than: &OperationRecord, than_node: &str) -> bool {
    history.is_some_and(|history| {
        history.operations.iter().any(|op| {
            !std::ptr::eq(op, than)
                && matches!(op.operation.as_str(), "start" | "stop" | "migrate_to" | "migrate_from")
                && compare(op, node, than, than_node) == Ordering::Greater
        })
    })
}

/// A probe or monitor on `node` that found the resource not running, after `than`.
fn monitor_not_running_after(history: Option<&ResourceHistory>, node: &str, than: &OperationRecord, than_node: &str) -> bool {
    find(history, "monitor", None, Some(rc::NOT_RUNNING)).is_some_and(|monitor| compare(monitor, node, than, than_node) == Ordering::Greater)
}

/// Whether `node` has state newer than the migration (Pacemaker's
/// `newer_state_after_migrate`): compared with the migration record on that same
/// node when there is one (call ids are more reliable), else with the other one.
fn newer_state_after_migrate(
    histories: &Histories,
    resource: &str,
    node: &str,
    migrate_to: Option<(&OperationRecord, &str)>,
    migrate_from: Option<(&OperationRecord, &str)>,
) -> bool {
    let Some(reference) = migrate_from.or(migrate_to) else { return false };
    let (source, target) = (reference.0.migrate_source.as_deref(), reference.0.migrate_target.as_deref());
    let (than, than_node) = if Some(node) == target {
        migrate_from.unwrap_or(reference)
    } else if Some(node) == source {
        migrate_to.unwrap_or(reference)
    } else {
        reference
    };
    let history = histories.on(resource, node);
    non_monitor_after(history, node, than, than_node) || monitor_not_running_after(history, node, than, than_node)
}

/// Whether the resource has no history at all on `node` (it will be probed there).
fn unknown_on(histories: &Histories, resource: &str, node: &str) -> bool {
    histories.on(resource, node).is_none_or(|history| history.operations.is_empty())
}

/// A `migrate_to` that succeeded on `source` (Pacemaker's
/// `unpack_migrate_to_success`). `online` says whether a node is up.
pub(super) fn migrate_to_succeeded(histories: &Histories, resource: &str, source: &str, op: &OperationRecord, online: &dyn Fn(&str) -> bool) -> Verdict {
    let (Some(recorded_source), Some(target)) = (op.migrate_source.as_deref(), op.migrate_target.as_deref()) else {
        return Verdict::default();
    };
    if recorded_source != source {
        return Verdict::default();
    }
    // A later start, stop or migration on the source: this record may no longer
    // matter there.
    let source_newer_op = non_monitor_after(histories.on(resource, source), source, op, source);
    let migrate_from = find(histories.on(resource, target), "migrate_from", Some(source), None);
    if source_newer_op && migrate_from.is_some() {
        return Verdict::default();
    }
    let target_newer_state = newer_state_after_migrate(histories, resource, target, Some((op, source)), migrate_from.map(|from| (from, target)));
    if source_newer_op && target_newer_state {
        return Verdict::default();
    }
    let mut verdict = Verdict { here_active: Some(true), ..Verdict::default() };
    match migrate_from {
        // Both halves done: the resource runs on the target, the source is left to
        // stop (a dangling migration).
        Some(from) if from.rc == rc::OK && from.status == ExecStatus::Done => {
            verdict.here_active = Some(false);
            verdict.dangling = true;
        }
        // The migrate_from failed: active on the target too, unless the target has
        // moved on since.
        Some(from) if from.status != ExecStatus::Pending => {
            if !target_newer_state && online(target) {
                verdict.also_active_on = Some(target.to_string());
            } else {
                verdict.failed = true;
            }
        }
        // Pending, or done but not recorded: a partial migration.
        _ => {
            if !target_newer_state && online(target) {
                verdict.also_active_on = Some(target.to_string());
                if online(source) {
                    verdict.partial = Some((source.to_string(), target.to_string()));
                }
            } else if !source_newer_op {
                verdict.failed = true;
            }
        }
    }
    verdict
}

/// A `migrate_to` that failed on `source` (Pacemaker's `unpack_migrate_to_failure`):
/// the resource is taken as active on the source, and on the target too when the
/// target knows the resource and has nothing newer.
pub(super) fn migrate_to_failed(histories: &Histories, resource: &str, source: &str, op: &OperationRecord, online: &dyn Fn(&str) -> bool) -> Verdict {
    let mut verdict = Verdict { here_active: Some(true), ..Verdict::default() };
    let (Some(recorded_source), Some(target)) = (op.migrate_source.as_deref(), op.migrate_target.as_deref()) else {
        return verdict;
    };
    if recorded_source != source {
        return verdict;
    }
    let migrate_from = find(histories.on(resource, target), "migrate_from", Some(source), Some(rc::OK));
    if !unknown_on(histories, resource, target)
        && !newer_state_after_migrate(histories, resource, target, Some((op, source)), migrate_from.map(|from| (from, target)))
    {
        if online(target) {
            verdict.also_active_on = Some(target.to_string());
        }
    } else if !non_monitor_after(histories.on(resource, source), source, op, source) {
        // The target is unknown or moved on, but this migrate_to is still the
        // source's last word: a stop is due there.
        verdict.dangling = true;
    }
    verdict
}

/// A `migrate_from` that failed on `target` (Pacemaker's
/// `unpack_migrate_from_failure`): the resource is taken as active on the target, and
/// on the source too when the source knows the resource and has nothing newer.
pub(super) fn migrate_from_failed(histories: &Histories, resource: &str, target: &str, op: &OperationRecord, online: &dyn Fn(&str) -> bool) -> Verdict {
    let mut verdict = Verdict { here_active: Some(true), ..Verdict::default() };
    let (Some(source), Some(recorded_target)) = (op.migrate_source.as_deref(), op.migrate_target.as_deref()) else {
        return verdict;
    };
    if recorded_target != target {
        return verdict;
    }
    let migrate_to = find(histories.on(resource, source), "migrate_to", Some(target), Some(rc::OK));
    if !unknown_on(histories, resource, source)
        && !newer_state_after_migrate(histories, resource, source, migrate_to.map(|to| (to, source)), Some((op, target)))
        && online(source)
    {
        verdict.also_active_on = Some(source.to_string());
    }
    verdict
}

#[cfg(test)]
mod tests {
    use crate::scheduler::fixture::{cluster, node, resource, snapshot};
    use crate::scheduler::schedule;

    const POLICY: (&str, &str, &str) = ("ClusterPolicy", "cluster", "{stonithEnabled: false}");
    const VM: (&str, &str, &str) = ("Resource", "vm", r#"{agent: "ocf:heartbeat:Dummy", meta: {allowMigrate: true}}"#);

    /// `vm` migrated by `migrate_to` from n1 to n2 at time 100 (call 5 on n1), with
    /// n2's history given.
    fn partial(target_history: &str) -> String {
        format!(
            "history:\n  - {{resource: vm, node: n1, operations: [{{operation: start, callId: 2, rc: 0, expectedRc: 0, status: Done, lastRcChange: 50}}, \
             {{operation: migrate_to, callId: 5, rc: 0, expectedRc: 0, status: Done, lastRcChange: 100, migrateSource: n1, migrateTarget: n2}}]}}\n{target_history}"
        )
    }

    #[test]
    fn a_migrate_to_without_its_migrate_from_leaves_the_resource_active_on_both_nodes() {
        let observed =
            partial("  - {resource: vm, node: n2, operations: [{operation: monitor, callId: 1, rc: 7, expectedRc: 7, status: Done, lastRcChange: 10}]}\n");
        let cluster = cluster(&["n1", "n2"], &[POLICY, VM], &observed);
        let vm = &cluster.resources[resource(&cluster, "vm")];
        let mut active: Vec<usize> = vm.active.iter().map(|active| active.node).collect();
        active.sort();
        assert_eq!(active, vec![node(&cluster, "n1"), node(&cluster, "n2")]);
        assert_eq!(vm.partial_migration, Some((node(&cluster, "n1"), node(&cluster, "n2"))));
    }

    #[test]
    fn a_partial_migration_to_the_node_it_stays_on_is_continued() {
        // n2 preferred: the resource stays on the target, so the migration goes on.
        let prefer = ("Location", "prefer-n2", "{resource: vm, node: n2, score: 100}");
        let observed =
            partial("  - {resource: vm, node: n2, operations: [{operation: monitor, callId: 1, rc: 7, expectedRc: 7, status: Done, lastRcChange: 10}]}\n");
        let continued = snapshot(&["n1", "n2"], &[POLICY, VM, prefer], &observed);
        let plan = schedule(&continued);
        let actions: Vec<String> = plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect();
        assert_eq!(actions, vec!["Migrate vm n1 -> n2".to_string()]);
        // The node agents go on with it: n1 keeps handing over, n2 runs migrate_from
        // (a decision taken between the two halves must not turn it into a restart).
        let assignments = crate::state::node_assignments(&plan, &continued.objects, &Default::default(), 1, 1);
        assert_eq!(assignments["n1"].migrations.iter().map(|migration| migration.target.as_str()).collect::<Vec<_>>(), vec!["n2"]);
        let vm = assignments["n2"].resources.iter().find(|resource| resource.id == "vm").expect("vm assigned to n2");
        assert_eq!(vm.migrate_from.as_deref(), Some("n1"));
    }

    #[test]
    fn a_partial_migration_placed_elsewhere_than_its_target_is_stopped_on_both_nodes() {
        // Moved back to the source: Pacemaker aborts the migration, stops both halves
        // and starts it on the source again; its summary names the first copy (the
        // target's, found first) as the current node.
        let prefer = ("Location", "prefer-n1", "{resource: vm, node: n1, score: 100}");
        let observed =
            partial("  - {resource: vm, node: n2, operations: [{operation: monitor, callId: 1, rc: 7, expectedRc: 7, status: Done, lastRcChange: 10}]}\n");
        let back = snapshot(&["n1", "n2"], &[POLICY, VM, prefer], &observed);
        let plan = schedule(&back);
        assert_eq!(actions(&plan), vec!["Move vm n2 -> n1".to_string()]);
        let vm = plan.resources.iter().find(|resource| resource.id == "vm").expect("vm planned");
        assert_eq!(vm.restart, Some(2), "the source's copy, started by call 2, is stopped and started again");
        // The node agents: n1 restarts the copy its start made (an agent still
        // handing over stops first anyway), n2 runs nothing.
        let assignments = crate::state::node_assignments(&plan, &back.objects, &Default::default(), 1, 1);
        let on_n1 = assignments["n1"].resources.iter().find(|resource| resource.id == "vm").expect("vm assigned to n1");
        assert_eq!((on_n1.restart, on_n1.migrate_from.as_deref()), (Some(2), None));
        assert!(assignments["n1"].migrations.is_empty());
        assert!(assignments["n2"].resources.is_empty());
        // Placed on a third node: both halves stop, one move is shown.
        let elsewhere = ("Location", "prefer-n3", "{resource: vm, node: n3, score: 100}");
        let plan = schedule(&snapshot(&["n1", "n2", "n3"], &[POLICY, VM, elsewhere], &observed));
        assert_eq!(actions(&plan), vec!["Move vm n2 -> n3".to_string()]);
        let vm = plan.resources.iter().find(|resource| resource.id == "vm").expect("vm planned");
        assert_eq!((vm.current.len(), vm.next.len(), vm.restart), (2, 1, None));
    }

    #[test]
    fn a_resource_active_on_several_nodes_is_stopped_everywhere_then_started_once() {
        // multiple-active=StopStart (the default): every copy stops, the chosen node's
        // too (Pacemaker's rec-rsc-6: "Restart rsc1 node1"); StopUnexpected keeps it,
        // and the summary, naming one current node as Pacemaker's does, shows nothing
        // (stop-unexpected).
        let observed = "history:\n".to_string() + &crate::scheduler::fixture::started("db", "n1") + &crate::scheduler::fixture::started("db", "n2");
        let db = ("Resource", "db", r#"{agent: "ocf:heartbeat:Dummy"}"#);
        let prefer = ("Location", "prefer-n1", "{resource: db, node: n1, score: 100}");
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, db, prefer], &observed));
        assert_eq!(actions(&plan), vec!["Restart db n1".to_string()]);
        let entry = plan.resources.iter().find(|resource| resource.id == "db").expect("db planned");
        assert!(entry.restart.is_some());
        let db = ("Resource", "db", r#"{agent: "ocf:heartbeat:Dummy", meta: {multipleActive: StopUnexpected}}"#);
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, db, prefer], &observed));
        assert_eq!(actions(&plan), Vec::<String>::new());
        let entry = plan.resources.iter().find(|resource| resource.id == "db").expect("db planned");
        assert_eq!((entry.current.len(), entry.next.len(), entry.next[0].node.as_str(), entry.restart), (2, 1, "n1", None));
    }

    fn actions(plan: &crate::scheduler::Plan) -> Vec<String> {
        plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect()
    }

    #[test]
    fn a_resource_migrates_away_from_a_standby_node() {
        let nodes = ("Node", "n1", "{standby: true}");
        let observed = "nodes:\n  n1: {liveness: Online}\nhistory:\n".to_string() + &crate::scheduler::fixture::started("vm", "n1");
        let plan = schedule(&snapshot(&["n2"], &[POLICY, nodes, VM], &observed));
        assert_eq!(actions(&plan), vec!["Migrate vm n1 -> n2".to_string()]);
    }

    #[test]
    fn a_then_whose_first_moves_by_stop_and_start_moves_the_same_way() {
        // db cannot migrate and moves; web, ordered after it, would migrate alone.
        let db = ("Resource", "db", r#"{agent: "ocf:heartbeat:Dummy"}"#);
        let web = ("Resource", "web", r#"{agent: "ocf:heartbeat:Dummy", meta: {allowMigrate: true}}"#);
        let order = ("Order", "db-then-web", "{first: db, then: web, kind: Mandatory}");
        let away = ("Location", "away", "{resource: db, node: n1, score: -INFINITY}");
        let together = ("Colocation", "web-with-db", "{resource: web, withResource: db, score: INFINITY}");
        let observed = "history:\n".to_string() + &crate::scheduler::fixture::started("db", "n1") + &crate::scheduler::fixture::started("web", "n1");
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, db, web, order, away, together], &observed));
        assert_eq!(actions(&plan), vec!["Move db n1 -> n2".to_string(), "Move web n1 -> n2".to_string()]);
        // Without the order, web migrates.
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, db, web, away, together], &observed));
        assert_eq!(actions(&plan), vec!["Move db n1 -> n2".to_string(), "Migrate web n1 -> n2".to_string()]);
    }

    #[test]
    fn a_partial_migration_is_not_a_resource_active_on_several_nodes() {
        // multiple-active=block would leave a resource found on two nodes alone; a
        // partial migration is continued instead.
        let vm = ("Resource", "vm", r#"{agent: "ocf:heartbeat:Dummy", meta: {allowMigrate: true, multipleActive: Block}}"#);
        let prefer = ("Location", "prefer-n2", "{resource: vm, node: n2, score: 100}");
        let observed =
            partial("  - {resource: vm, node: n2, operations: [{operation: monitor, callId: 1, rc: 7, expectedRc: 7, status: Done, lastRcChange: 10}]}\n");
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, vm, prefer], &observed));
        assert_eq!(actions(&plan), vec!["Migrate vm n1 -> n2".to_string()]);
    }

    #[test]
    fn a_copy_on_an_unclean_node_counts_only_for_a_resource_that_needs_fencing() {
        // n2 is lost with a copy and is fenced. A resource that requires fencing is
        // multiply active: its copy on n1 is restarted too; one that requires quorum
        // only (as every fence device) is not, and stays on n1 untouched
        // (multiply-active-stonith).
        let policy = ("ClusterPolicy", "cluster", "{stonithEnabled: true}");
        let device = ("FenceDevice", "fencer", "{agent: fence_dummy}");
        let observed = "nodes:\n  n2: {liveness: Unclean}\nhistory:\n".to_string()
            + &crate::scheduler::fixture::started("db", "n1")
            + &crate::scheduler::fixture::started("db", "n2");
        let prefer = ("Location", "prefer-n1", "{resource: db, node: n1, score: 100}");
        let plan_with = |meta: &str| {
            let db = ("Resource", "db", format!(r#"{{agent: "ocf:heartbeat:Dummy", meta: {{{meta}}}}}"#));
            schedule(&snapshot(&["n1", "n2"], &[policy, device, (db.0, db.1, db.2.as_str()), prefer], &observed))
        };
        let of_db = |plan: &crate::scheduler::Plan| actions(plan).into_iter().filter(|action| action.contains(" db ")).collect::<Vec<_>>();
        let plan = plan_with("");
        assert_eq!(of_db(&plan), vec!["Restart db n1".to_string()]);
        let plan = plan_with("requires: Quorum");
        assert_eq!(of_db(&plan), Vec::<String>::new());
        assert_eq!(plan.resources.iter().find(|resource| resource.id == "db").and_then(|entry| entry.restart), None);
    }

    #[test]
    fn a_target_that_stopped_the_resource_after_the_migration_does_not_run_it() {
        // n2 stopped it after the migrate_to (by time): only the source may run it.
        let observed =
            partial("  - {resource: vm, node: n2, operations: [{operation: stop, callId: 3, rc: 0, expectedRc: 0, status: Done, lastRcChange: 120}]}\n");
        let cluster = cluster(&["n1", "n2"], &[POLICY, VM], &observed);
        let vm = &cluster.resources[resource(&cluster, "vm")];
        assert_eq!(vm.active.iter().map(|active| active.node).collect::<Vec<_>>(), vec![node(&cluster, "n1")]);
        assert_eq!(vm.partial_migration, None);
    }

    #[test]
    fn a_stop_on_the_source_after_the_migrate_to_leaves_the_target_running_it() {
        // Pacemaker's partial-live-migration-multiple-active: the source stopped, the
        // target never ran migrate_from and has nothing newer: it may still run it.
        let observed = "history:\n  - {resource: vm, node: n1, operations: [{operation: migrate_to, callId: 5, rc: 0, expectedRc: 0, status: Done, lastRcChange: 100, migrateSource: n1, migrateTarget: n2}, \
             {operation: stop, callId: 6, rc: 0, expectedRc: 0, status: Done, lastRcChange: 110}]}\n  - {resource: vm, node: n2, operations: [{operation: stop, callId: 9, rc: 0, expectedRc: 0, status: Done, lastRcChange: 40}]}\n";
        let cluster = cluster(&["n1", "n2"], &[POLICY, VM], observed);
        let vm = &cluster.resources[resource(&cluster, "vm")];
        assert_eq!(vm.active.iter().map(|active| active.node).collect::<Vec<_>>(), vec![node(&cluster, "n2")]);
    }

    #[test]
    fn a_failed_migrate_from_leaves_the_resource_active_on_the_source_too() {
        let observed = "history:\n  - {resource: vm, node: n1, operations: [{operation: start, callId: 2, rc: 0, expectedRc: 0, status: Done, lastRcChange: 50}, \
             {operation: migrate_to, callId: 5, rc: 0, expectedRc: 0, status: Done, lastRcChange: 100, migrateSource: n1, migrateTarget: n2}]}\n  \
             - {resource: vm, node: n2, operations: [{operation: migrate_from, callId: 4, rc: 1, expectedRc: 0, status: Done, lastRcChange: 101, migrateSource: n1, migrateTarget: n2}]}\n";
        let cluster = cluster(&["n1", "n2"], &[POLICY, VM], observed);
        let vm = &cluster.resources[resource(&cluster, "vm")];
        let mut active: Vec<usize> = vm.active.iter().map(|active| active.node).collect();
        active.sort();
        assert_eq!(active, vec![node(&cluster, "n1"), node(&cluster, "n2")]);
        assert!(vm.failed, "recovered, not migrated again");
        assert_eq!(vm.partial_migration, None);
    }

    #[test]
    fn a_completed_migration_leaves_the_resource_on_the_target_only() {
        let observed = "history:\n  - {resource: vm, node: n1, operations: [{operation: start, callId: 2, rc: 0, expectedRc: 0, status: Done, lastRcChange: 50}, \
             {operation: migrate_to, callId: 5, rc: 0, expectedRc: 0, status: Done, lastRcChange: 100, migrateSource: n1, migrateTarget: n2}]}\n  \
             - {resource: vm, node: n2, operations: [{operation: migrate_from, callId: 4, rc: 0, expectedRc: 0, status: Done, lastRcChange: 101, migrateSource: n1, migrateTarget: n2}]}\n";
        let cluster = cluster(&["n1", "n2"], &[POLICY, VM], observed);
        let vm = &cluster.resources[resource(&cluster, "vm")];
        assert_eq!(vm.active.iter().map(|active| active.node).collect::<Vec<_>>(), vec![node(&cluster, "n2")]);
    }

    #[test]
    fn the_source_of_a_finished_migration_without_a_stop_is_stopped() {
        // Pacemaker's dangling migration (migrate-partial-1): both halves done, no stop
        // on n1 — a stop is planned there, not shown in the summary; once n1 records a
        // stop, nothing is left to do.
        let completed = |source_after: &str| {
            format!(
                "history:\n  - {{resource: vm, node: n1, operations: [{{operation: start, callId: 2, rc: 0, expectedRc: 0, status: Done, lastRcChange: 50}}, \
                 {{operation: migrate_to, callId: 5, rc: 0, expectedRc: 0, status: Done, lastRcChange: 100, migrateSource: n1, migrateTarget: n2}}{source_after}]}}\n  \
                 - {{resource: vm, node: n2, operations: [{{operation: migrate_from, callId: 4, rc: 0, expectedRc: 0, status: Done, lastRcChange: 101, migrateSource: n1, migrateTarget: n2}}]}}\n"
            )
        };
        let dangling = snapshot(&["n1", "n2"], &[POLICY, VM], &completed(""));
        let plan = schedule(&dangling);
        assert!(plan.actions.is_empty(), "{:?}", actions(&plan));
        let vm = plan.resources.iter().find(|resource| resource.id == "vm").expect("vm planned");
        assert_eq!((vm.dangling.clone(), vm.current.len()), (vec!["n1".to_string()], 1));
        // n1's agent, still handing over, stops what is left: the decision assigns it
        // nothing there and migrates nothing from there.
        let assignments = crate::state::node_assignments(&plan, &dangling.objects, &Default::default(), 1, 1);
        assert!(assignments["n1"].resources.is_empty() && assignments["n1"].migrations.is_empty());
        assert!(assignments["n2"].resources.iter().any(|resource| resource.id == "vm" && resource.migrate_from.is_none()));
        // A probe since (an agent restarted) does not settle it; a stop does.
        let probed = ", {operation: monitor, callId: 6, rc: 7, expectedRc: 7, status: Done, lastRcChange: 110}";
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, VM], &completed(probed)));
        assert_eq!(plan.resources.iter().find(|resource| resource.id == "vm").map(|vm| vm.dangling.clone()), Some(vec!["n1".to_string()]));
        let stopped = ", {operation: stop, callId: 6, rc: 0, expectedRc: 0, status: Done, lastRcChange: 110}";
        let plan = schedule(&snapshot(&["n1", "n2"], &[POLICY, VM], &completed(stopped)));
        assert!(plan.resources.iter().all(|resource| resource.dangling.is_empty()));
        // Its node down: nothing can be stopped there.
        let down = ("Node", "n1", "{}");
        let observed = "nodes:\n  n1: {liveness: Offline}\n".to_string() + &completed("");
        let plan = schedule(&snapshot(&["n2"], &[POLICY, down, VM], &observed));
        assert!(plan.resources.iter().all(|resource| resource.dangling.is_empty()));
    }
}
