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
    /// Pacemaker's restart digest of an agent that can reload (`op-restart-digest`,
    /// with `op-force-restart`): only in histories imported from Pacemaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_digest: Option<RestartDigest>,
}

/// The digest of the parameters an agent cannot reload (its metadata's non-reloadable
/// ones, Pacemaker's `op-force-restart`): when only other parameters changed, the
/// agent reloads instead of restarting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartDigest {
    pub digest: String,
    /// The parameters it covers; all of them when not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
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

/// The call id of the last one-shot operation that may have found or left a resource
/// running (a `start`, a `migrate_from`, a probe): which copy runs now. The scheduler
/// names it when it restarts a resource (`AssignedResource::restart`) and the agent
/// compares it with its own history, so a restart is done once, however often the
/// decision that asks for it is written.
pub fn start_call(records: &[OperationRecord]) -> Option<i64> {
    records
        .iter()
        .filter(|record| record.interval_ms == 0 && record.call_id >= 0 && matches!(record.operation.as_str(), "start" | "migrate_from" | "monitor"))
        .map(|record| record.call_id)
        .max()
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

impl ExecStatus {
    /// Pacemaker's text for it (`pcmk_exec_status_str`): the `desc` of a resource
    /// event (`CRM_alert_desc`) when the operation did not run to its end.
    pub fn pacemaker_text(self) -> &'static str {
        match self {
            ExecStatus::Done => "complete",
            ExecStatus::Pending => "pending",
            ExecStatus::Cancelled => "Cancelled",
            ExecStatus::Timeout => "Timed Out",
            ExecStatus::NotInstalled => "Not installed",
            ExecStatus::Error => "Error",
            ExecStatus::ErrorHard => "Hard error",
            ExecStatus::ErrorFatal => "Fatal error",
            ExecStatus::NotSupported => "NOT SUPPORTED",
            // Pacemaker's PCMK_EXEC_NOT_CONNECTED, which this stands for.
            ExecStatus::Invalid => "Internal communication failure",
        }
    }

    /// What an operation's result says, as Pacemaker's alerts say it: the exit code's
    /// meaning when it ran to its end (`ok`, `not running`), else how it did not
    /// (`Timed Out`).
    pub fn describe_result(self, rc: i32) -> &'static str {
        match self {
            ExecStatus::Done => crate::api::ocf::describe(rc),
            other => other.pacemaker_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ocf;

    #[test]
    fn results_read_as_pacemaker_alerts_say_them() {
        let statuses = [
            ExecStatus::Done,
            ExecStatus::Pending,
            ExecStatus::Cancelled,
            ExecStatus::Timeout,
            ExecStatus::NotInstalled,
            ExecStatus::Error,
            ExecStatus::ErrorHard,
            ExecStatus::ErrorFatal,
            ExecStatus::NotSupported,
            ExecStatus::Invalid,
        ];
        // A probe's "not running": the code's meaning only when the agent ran to its end.
        let described: String = statuses.into_iter().map(|status| format!("{status:?}: {}\n", status.describe_result(ocf::NOT_RUNNING))).collect();
        expect_test::expect![[r#"
            Done: not running
            Pending: pending
            Cancelled: Cancelled
            Timeout: Timed Out
            NotInstalled: Not installed
            Error: Error
            ErrorHard: Hard error
            ErrorFatal: Fatal error
            NotSupported: NOT SUPPORTED
            Invalid: Internal communication failure
        "#]]
        .assert_eq(&described);
    }
}
