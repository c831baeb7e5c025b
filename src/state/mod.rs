//! The pure functions between the records the scheduler and the node agents exchange
//! through etcd (`api::records`) and the scheduler's types: a `Plan` cut into per-node
//! assignments (`assignments`), reports turned into the scheduler's `Observed`
//! (`observe`), whether a gate is open given the statuses the agents report (`gates`),
//! fencing's levels and executor (`fencing`), the fencing history's cap and views
//! (`fence_history`), what `pacer status` shows (`view`) and
//! decision inputs as the history stores them (`history`).
//! No IO: `store` reads and writes the records, `agent` acts on them.

pub mod assignments;
pub mod conditions;
pub mod fence_history;
pub mod fencing;
pub mod gates;
pub mod history;
pub mod observe;
pub mod view;

pub use assignments::{FailuresSeen, ProbeTarget, ProbeTargets, node_assignments, probe_targets, probe_targets_by_id};
pub use observe::{failures_seen, observe};
