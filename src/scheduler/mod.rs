//! The placement engine: `schedule(&Snapshot) -> Plan`, a pure function.
//!
//! It runs as named phases, each with its own output type:
//! 1. `unpack` — objects and observed history become the `Cluster` model: node
//!    verdicts (online, standby, unclean...), the resource tree with clone instances,
//!    current roles and failures, constraints resolved and rules evaluated;
//! 2. `assign::criteria` — node criteria: every node's score for every resource before
//!    any is placed (initial scores, health, locations, failure bans, stickiness,
//!    migration-threshold): the `NodeCriteria`, only read afterwards;
//! 3. `assign` — resources assigned in Pacemaker's order with colocations, clone
//!    instances distributed, promotable instances given roles: an `Assignment`;
//! 4. `transition` — fencing of unclean nodes, starts blocked by mandatory orders or
//!    by stops that cannot run, final placements and summary actions: the `Plan`.
//!
//! No IO, no clock (the snapshot carries `now`), no randomness: ties break by
//! definition order and node name.

mod assign;
mod digest;
pub mod explain;
#[cfg(test)]
pub(crate) mod fixture;
mod migration;
mod model;
pub mod plan;
pub mod row;
mod rules;
pub mod snapshot;
mod transition;
mod unpack;

pub use explain::{Explanation, explain};
pub use plan::Plan;
pub use snapshot::Snapshot;
pub(crate) use unpack::strip_instance;

use crate::api::Spec;
use crate::api::cluster::StonithAction;

/// Decides where every resource runs, in which role, and which nodes are fenced first.
pub fn schedule(snapshot: &Snapshot) -> Plan {
    run(snapshot, None, &mut |_| {}).0
}

/// Where each primitive runs now, as a plan's `current` says it (the history
/// unpacked: a failed stop still counts as active, a probe's "running" does, and so
/// on), without deciding anything: `pacer wait` asks this on every change it sees,
/// where it computed a whole schedule each time (the leader's turn takes 0.1–0.3 s at
/// 300 nodes × 10,000 resources; the wait's own share was not measured apart).
/// Each entry: the configured primitive's name and its placements; in the plan's
/// order.
pub fn current_placements(snapshot: &Snapshot) -> Vec<(String, Vec<plan::Placement>)> {
    let cluster = unpack::unpack(snapshot);
    cluster
        .resources
        .iter()
        .filter(|resource| resource.kind == model::RscKind::Primitive)
        .map(|resource| (resource.name.clone(), transition::placements_now(&cluster, resource)))
        .collect()
}

/// `schedule`, telling `phase_done` the name of each phase as it ends (`unpack`,
/// `criteria`, `assign`, `transition`): `pacer simulate --timings` reads the clock
/// there. The scheduler itself reads no clock.
pub fn schedule_with_phases(snapshot: &Snapshot, phase_done: &mut dyn FnMut(&'static str)) -> Plan {
    run(snapshot, None, phase_done).0
}

/// The phases, with the score recorder on for the primitives `traced` names
/// (`explain`) or off (`schedule`): one code path for both.
fn run(snapshot: &Snapshot, traced: Option<&str>, phase_done: &mut dyn FnMut(&'static str)) -> (Plan, model::Cluster, Option<explain::Trace>) {
    let cluster = unpack::unpack(snapshot);
    phase_done("unpack");
    let trace = traced.map(|name| explain::Trace::new(&cluster, &explain::primitives_named(&cluster, name)));
    let (criteria, trace) = assign::criteria::node_criteria_traced(&cluster, trace);
    phase_done("criteria");
    let (assignment, trace) = assign::assign_traced(&cluster, &criteria, trace);
    phase_done("assign");
    let stonith_action = snapshot
        .objects
        .iter()
        .find_map(|object| match &object.spec {
            Spec::ClusterPolicy(policy) => Some(policy.stonith_action),
            _ => None,
        })
        .unwrap_or(StonithAction::Reboot);
    let plan = transition::transition(&cluster, &assignment, stonith_action);
    phase_done("transition");
    debug_assert!(plan.check(snapshot).is_empty(), "plan violates its invariants: {:?}", plan.check(snapshot));
    (plan, cluster, trace)
}
