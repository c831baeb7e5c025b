//! One operation's outcome on Pacemaker's two axes, as the executor reports it, an
//! agent's status records it and the scheduler reads it.

use serde::{Deserialize, Serialize};

/// One operation's outcome, on Pacemaker's two axes: did it run (`status`), and what
/// did the agent answer (`rc`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    /// `start`, `stop`, `monitor`, `promote`, `demote`, `migrate_to`, `migrate_from`,
    /// `notify`, ...
    pub operation: String,
    #[serde(default)]
    pub interval_ms: u64,
    /// Orders operations on one node; higher is later. Pending operations carry -1.
    pub call_id: i64,
    /// The agent's exit code (OCF 0-9, 190, 191).
    pub rc: i32,
    /// The exit code the operation was expected to return (7 for a probe that expects
    /// the resource stopped, 8 for a monitor of a promoted instance).
    pub expected_rc: i32,
    pub status: ExecStatus,
    /// When the result last changed, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rc_change: Option<i64>,
    /// For migrations: the source and target nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_target: Option<String>,
    /// A digest of the parameters the operation ran with, to detect definition changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl OperationRecord {
    /// Whether this result is a failure: it did not run to its end, or answered other
    /// than expected — except a probe finding the resource running (in any role,
    /// degraded or not), which is news, not a failure.
    pub fn is_failure(&self) -> bool {
        use crate::api::ocf;
        let found_running = self.expected_rc == ocf::NOT_RUNNING && matches!(self.rc, ocf::OK | ocf::RUNNING_PROMOTED | ocf::DEGRADED | ocf::DEGRADED_PROMOTED);
        self.status != ExecStatus::Done || (self.rc != self.expected_rc && !found_running)
    }
}

/// Whether the executor managed to run an operation (Pacemaker's `op-status`). The
/// executor (`exec`) only ever reports `Done`, `Timeout`, `Cancelled`,
/// `NotInstalled`, `Error`, `ErrorHard` and `ErrorFatal`; the others come from
/// elsewhere (a pending operation recorded before its result, an imported CIB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExecStatus {
    /// It ran to its end; `rc` says what the agent answered.
    Done,
    /// Still running (recorded before the result was known).
    Pending,
    /// The caller cancelled the operation; the agent's process group was killed.
    Cancelled,
    /// It did not finish within the timeout; the agent's process group was killed.
    Timeout,
    /// The agent (or systemd, for `systemd:` units) is not installed on the node.
    NotInstalled,
    /// It could not be run or died by a signal; may work on a retry or elsewhere.
    Error,
    /// It could not be run and will not run on this node (not executable, leads
    /// outside its agent directory).
    ErrorHard,
    /// It could not be run and will not run anywhere (a parameter name an environment
    /// cannot hold, an OCF agent without provider, an unknown agent directory layout).
    ErrorFatal,
    NotSupported,
    /// The node's executor connection was lost while it ran.
    Invalid,
}
