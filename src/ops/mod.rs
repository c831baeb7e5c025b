//! The operator's verbs as library functions: what `pacer move`, `ban`, `cleanup`,
//! `why`, `wait`… do, callable by the CLI and the console alike. Each verb is a small
//! change of stored objects (through `store::apply`, with a resourceVersion
//! precondition) or a request record the agents act on, plus reads of the live
//! cluster through the one snapshot builder; none repeats scheduler logic.
//!
//! Shared here: reading the live cluster once (`live::Live`) or following it
//! (`live::Follower`), writing edited objects (`edit`), and waiting for the cluster to
//! settle (`settle`).

pub mod check;
pub mod constraints;
pub mod edit;
pub mod events;
pub mod flags;
pub mod history;
pub mod live;
pub mod placement;
pub mod requests;
pub mod restart;
pub mod settle;
pub mod simulate;
pub mod status;
pub mod wait;
pub mod why;

use crate::api::manifest::Diagnostic;
use crate::store::StoreError;

/// Why a verb did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The named resource, node or object does not exist (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// The request is understood but refused: nothing was written (exit 1).
    #[error("{0}")]
    Refused(String),
    /// The change does not validate: nothing was written (exit 1).
    #[error("the change is invalid:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// The cluster did not reach the wanted state in time (exit 1).
    #[error("{0}")]
    NotReached(String),
    /// etcd could not be read or written (exit 2).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpsError {
    /// The process exit code: 1 refused or not reached, 2 error.
    pub fn exit_code(&self) -> u8 {
        match self {
            OpsError::Store(_) => 2,
            _ => 1,
        }
    }
}

/// Seconds since the epoch, from the system clock (0 before 1970).
pub fn now_secs() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
}
