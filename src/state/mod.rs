//! The records the scheduler and the node agents exchange through etcd, and the pure
//! functions between them and the scheduler's types: a `Plan` cut into per-node
//! assignments (`assignments`), and whether a gate is open given the statuses the
//! agents report (`gates`). No IO: `store` reads and writes these records, `agent`
//! acts on them.

pub mod assignments;
pub mod fencing;
pub mod gates;
pub mod observe;
pub mod records;
pub mod view;

pub use assignments::{FailuresSeen, ProbeTarget, node_assignments, probe_targets};
pub use observe::{Reports, failures_seen, observe};
pub use records::{
    AssignedResource, Definition, FAIL_COUNT_INFINITY, LocalGate, Migration, NodeAssignment, NodeAttributeRecord, NodeHeartbeat, Notice, NoticePhase,
    ObservedRole, OperationDef, ResourceStatus,
};
