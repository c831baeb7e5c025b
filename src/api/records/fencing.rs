//! `fencing/<node>/request` (the leader's), `fence-results/<executor>/<target>` (the
//! executing agent's, under its own prefix) and `fence-confirmations/<target>` (an
//! administrator's, through `pacer fence confirm`), and `fencing/<node>/answer` (the
//! leader's record of the answer it accepted: what the fenced state is read from), and
//! `fence-history/<node>/<id>` (the leader's record of every attempt).

use serde::{Deserialize, Serialize};

/// `fencing/<node>/request`: written by the leader only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FenceRequestRecord {
    /// Unique per request (the etcd revision the decision was made at).
    pub id: i64,
    pub target: String,
    /// `reboot` or `off`.
    pub action: String,
    pub reason: String,
    /// The node that runs the fence agents.
    pub executor: String,
    /// Seconds since the epoch.
    pub requested: i64,
    /// The lease that held the target's key when fencing was requested (a node
    /// fenced while its agent still renews: a failed stop, `onFail: fence`). The
    /// leader revokes it once the fencing succeeded, so the node's reports can be
    /// forgotten even if a restarted agent resumed that lease. For an unfencing, the
    /// lease the node is unfenced under (`FenceAnswerRecord::lease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
    /// The devices the executor may use (allowed on it by their location rules,
    /// `state::fencing::choose_executor`): it tries only the levels made of them.
    /// Empty in a request from before this was recorded: every level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
}

/// `fence-results/<executor>/<target>`: written by the executing agent
/// (lease-guarded; `by` is its node, as the key says), or
/// `fence-confirmations/<target>`: written by `pacer fence confirm` (a person vouching
/// that the node is down). The leader takes as an answer only the result under the
/// executor its request named, for that request's id, or a confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FenceResultRecord {
    /// The request this answers (0 for a manual confirmation).
    pub request: i64,
    pub target: String,
    /// The action it answers (`reboot`, `off`, or `on` for unfencing).
    #[serde(default = "default_action")]
    pub action: String,
    pub succeeded: bool,
    /// Who: the executing node, or `confirmed by <user>`.
    pub by: String,
    /// Seconds since the epoch.
    pub finished: i64,
    /// One line per device attempt: level, device, outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<String>,
}

/// `fencing/<target>/answer`: the answer the leader accepted for its request of
/// `<target>` (the result under the executor the request named, for its id, or an
/// administrator's confirmation), with when it accepted it. Written by the leader
/// only, in its guarded transaction; a target's fenced or unfenced state, its
/// `#node-unfenced`, and what `pacer status`, `pacer check` and the metrics show of
/// its fencing come from this record (and from `fence-confirmations/<target>`, an
/// administrator's), never from a result under `fence-results/`, which is only a
/// proposal to the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FenceAnswerRecord {
    /// The result accepted, as its executor (or the confirming person) wrote it: the
    /// request's id, target, action, outcome, executor (`by`) and when it finished.
    pub result: FenceResultRecord,
    /// Seconds since the epoch: when the leader accepted it.
    pub accepted: i64,
    /// The target's lease when the request was made (`FenceRequestRecord::lease`). An
    /// unfencing counts only while the node holds that lease: a node that lost it
    /// (restarted, lapsed) is unfenced again, as Pacemaker's `#node-unfenced` goes
    /// with the node's transient attributes when it leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
    /// For an answer that is not a successful fencing (an unfencing, a failure): the
    /// revision of the target's last successful fencing answer it replaces, carried
    /// forward, so what was recorded before that fencing stays void
    /// (`ClusterCache::fenced_revision`). A successful fencing's own revision is its
    /// mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_revision: Option<i64>,
}

/// Where a fencing attempt stands (`FenceHistoryRecord::state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FenceAttemptState {
    /// Requested, no answer accepted yet.
    Pending,
    /// The answer accepted says the action succeeded.
    Succeeded,
    /// The answer accepted says it failed (`error` says how).
    Failed,
    /// Given up without an answer: the need went away, or the executor was lost and
    /// another one asked (`error` says which).
    Cancelled,
}

impl FenceAttemptState {
    pub fn as_str(self) -> &'static str {
        match self {
            FenceAttemptState::Pending => "pending",
            FenceAttemptState::Succeeded => "succeeded",
            FenceAttemptState::Failed => "failed",
            FenceAttemptState::Cancelled => "cancelled",
        }
    }
}

/// `fence-history/<target>/<id>`: one fencing attempt (a request of the leader, by
/// its id) and how it ended — Pacemaker's fencer history. Written by the leader only:
/// pending with its request, completed with the answer it accepts (in the same
/// transactions), cancelled when it drops or replaces an unanswered request. Capped
/// cluster-wide (`state::fence_history::FENCE_HISTORY_LIMIT`), never losing a
/// target's last success. Only shown: a node's fenced state comes from its answer
/// (`FenceAnswerRecord`), never from here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FenceHistoryRecord {
    /// The request's id (`FenceRequestRecord::id`).
    pub id: i64,
    pub target: String,
    /// `reboot`, `off`, or `on` (unfencing).
    pub action: String,
    /// The node asked to run the fence agents.
    pub executor: String,
    /// The devices the executor was allowed to use (empty: every level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Who asked (the scheduler leader's identity).
    pub requester: String,
    /// Why (the plan's reason).
    pub reason: String,
    /// Seconds since the epoch: when requested.
    pub requested: i64,
    pub state: FenceAttemptState,
    /// Seconds since the epoch: when the answer was finished (or the attempt given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// Who answered: the executing node, or `confirmed by <user>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// One line per device attempt: level, device, outcome (as the executor wrote them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<String>,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FenceHistoryRecord {
    /// The pending attempt `request` starts, asked by `requester`.
    pub fn pending(request: &FenceRequestRecord, requester: &str) -> FenceHistoryRecord {
        FenceHistoryRecord {
            id: request.id,
            target: request.target.clone(),
            action: request.action.clone(),
            executor: request.executor.clone(),
            devices: request.devices.clone(),
            requester: requester.to_string(),
            reason: request.reason.clone(),
            requested: request.requested,
            state: FenceAttemptState::Pending,
            finished: None,
            by: None,
            attempts: Vec::new(),
            error: None,
        }
    }

    /// This attempt completed by the answer `result`.
    pub fn answered(mut self, result: &FenceResultRecord) -> FenceHistoryRecord {
        self.state = if result.succeeded { FenceAttemptState::Succeeded } else { FenceAttemptState::Failed };
        self.finished = Some(result.finished);
        self.by = Some(result.by.clone());
        self.attempts = result.attempts.clone();
        self.error = (!result.succeeded).then(|| result.attempts.last().cloned().unwrap_or_else(|| "failed".to_string()));
        self
    }

    /// This attempt given up at `now`, for `why`.
    pub fn cancelled(mut self, now: i64, why: &str) -> FenceHistoryRecord {
        self.state = FenceAttemptState::Cancelled;
        self.finished = Some(now);
        self.error = Some(why.to_string());
        self
    }

    /// A successful fencing (`off` or `reboot`), not an unfencing.
    pub fn fenced(&self) -> bool {
        self.state == FenceAttemptState::Succeeded && self.action != "on"
    }
}

fn default_action() -> String {
    "reboot".to_string()
}
