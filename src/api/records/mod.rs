//! The records etcd holds besides the spec, shared by everything that reads or writes
//! them (`store`, `exec`, `scheduler`, `state`, `agent`, `daemon`, `cli`, `cib`). Each is
//! JSON under one key (see `store::keys`) with exactly one writer; their serde formats
//! are what is stored, so changing one is a change of the stored format. Data and
//! small accessors only: the decisions between records live in `state`.

mod assignment;
mod event;
mod fencing;
mod leader;
mod operation;
mod request;
mod status;

pub use assignment::{AssignedResource, DEFAULT_TIMEOUT_MS, Definition, LocalGate, Migration, NodeAssignment, NodeState, OperationDef, PROBE_FIRST_MAX};
pub use event::{AlertCursor, AnnouncedNodes, DeliveryFailure, EventKind, EventRecord};
pub use fencing::{FenceAnswerRecord, FenceAttemptState, FenceHistoryRecord, FenceRequestRecord, FenceResultRecord};
pub use leader::{BlobRef, DecisionInput, HistoryRecord, Leader};
pub use operation::{ExecStatus, OperationRecord, RestartDigest, start_call};
pub use request::{RequestKind, RequestRecord, split_fail_count_key};
pub use status::{
    FAIL_COUNT_INFINITY, NodeActivity, NodeAttributeRecord, NodeHeartbeat, Notice, NoticePhase, ObservedRole, Reports, ResourceStatus, SELF_FENCINGS_KEPT,
    SelfFencing,
};

/// Whether a count or revision is zero: what the records leave out of their JSON
/// (`skip_serializing_if`).
fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
