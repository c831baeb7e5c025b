//! The simulated executor of a hollow node (Kubemark's hollow kubelet, for Pacer):
//! resource operations succeed after a configured latency and change a simulated
//! state, which monitors and probes report; no process runs. Fence actions are not
//! simulated (`Executor::fence` runs the real fence agent: that is how a hollow node
//! fences another, hollow or real).
//!
//! Failures are injected through a file (`Simulation::fail_file`; `pacer hollow` uses
//! `<node's state dir>/hollow-fail`), read at every operation: one rule a line, `RESOURCE ACTION RC` (`*` matches any
//! resource or action; `#` starts a comment), the first matching rule wins. An
//! operation it matches answers `RC` after the latency; a failed start, promote or
//! migrate_from leaves the state as it was, a failed stop leaves it running, and a
//! monitor answering 7 ("not running") also marks the resource stopped (it died).
//!
//! Architecture invariant: nothing here spawns a process or touches etcd; the state
//! lives in memory and is lost with the executor (a powered-off hollow node comes
//! back with nothing running, as a rebooted machine does).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AttributeLifetime, AttributeUpdate, OperationRequest, OperationResult, rc};
use crate::api::records::ExecStatus;

/// The file of injected failures, in the node's state dir.
pub const FAIL_FILE: &str = "hollow-fail";

/// How a hollow node's operations behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulation {
    /// How long every operation takes (a monitor too).
    pub latency: Duration,
    /// The rules of injected failures (see the module comment); a missing file
    /// injects none.
    pub fail_file: PathBuf,
}

/// What the simulated machine runs, by resource instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    Started,
    Promoted,
}

/// A hollow node's simulated machine.
#[derive(Debug)]
pub(super) struct Simulator {
    simulation: Simulation,
    running: Mutex<HashMap<String, Running>>,
}

impl Simulator {
    pub(super) fn new(simulation: Simulation) -> Simulator {
        Simulator { simulation, running: Mutex::new(HashMap::new()) }
    }

    /// One operation: the latency (or the cancellation), then the simulated answer.
    pub(super) async fn run(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        let began = Instant::now();
        let latency = self.simulation.latency.min(request.timeout);
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = cancel => return answer(ExecStatus::Cancelled, rc::ERR_GENERIC, Some("cancelled".into()), began, Vec::new()),
        }
        if self.simulation.latency > request.timeout {
            return answer(ExecStatus::Timeout, rc::ERR_GENERIC, Some(format!("timed out after {}ms", request.timeout.as_millis())), began, Vec::new());
        }
        let injected = std::fs::read_to_string(&self.simulation.fail_file).ok().and_then(|rules| injected_rc(&rules, &request.resource, &request.action));
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = running.get(&request.resource).copied();
        let promotable = request.meta.contains_key("promoted_max");
        let score = |value: Option<&str>| AttributeUpdate {
            name: format!("master-{}", request.resource),
            node: request.node.clone(),
            lifetime: AttributeLifetime::Reboot,
            value: value.map(str::to_string),
        };
        if let Some(code) = injected {
            if request.action == "monitor" && code == rc::NOT_RUNNING {
                running.remove(&request.resource);
            }
            let reason = Some(format!("failure injected by {}", self.simulation.fail_file.display()));
            return answer(ExecStatus::Done, code, reason, began, Vec::new());
        }
        let mut attributes = Vec::new();
        let code = match request.action.as_str() {
            "start" | "migrate_from" => {
                running.insert(request.resource.clone(), Running::Started);
                // A promotable resource says it may be promoted here, as Stateful does.
                if promotable {
                    attributes.push(score(Some("5")));
                }
                rc::OK
            }
            "stop" => {
                if running.remove(&request.resource).is_some() && promotable {
                    attributes.push(score(None));
                }
                rc::OK
            }
            "promote" => {
                running.insert(request.resource.clone(), Running::Promoted);
                rc::OK
            }
            "demote" => {
                running.insert(request.resource.clone(), Running::Started);
                rc::OK
            }
            "monitor" => match current {
                None => rc::NOT_RUNNING,
                Some(Running::Started) => rc::OK,
                Some(Running::Promoted) => rc::RUNNING_PROMOTED,
            },
            // migrate_to leaves it running here until the stop that follows; notify,
            // reload, meta-data and validate-all change nothing.
            _ => rc::OK,
        };
        answer(ExecStatus::Done, code, None, began, attributes)
    }
}

fn answer(status: ExecStatus, rc: i32, exit_reason: Option<String>, began: Instant, attributes: Vec<AttributeUpdate>) -> OperationResult {
    OperationResult { status, rc, exit_reason, stdout: String::new(), stderr: String::new(), duration: began.elapsed(), attributes }
}

/// The rc the first rule matching `resource` and `action` injects. A line that does
/// not read as a rule is skipped.
fn injected_rc(rules: &str, resource: &str, action: &str) -> Option<i32> {
    rules.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let (rule_resource, rule_action, code) = (words.next()?, words.next()?, words.next()?.parse::<i32>().ok()?);
        let matches = |rule: &str, value: &str| rule == "*" || rule == value;
        (matches(rule_resource, resource) && matches(rule_action, action)).then_some(code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn request(resource: &str, action: &str, meta: &[(&str, &str)]) -> OperationRequest {
        OperationRequest {
            resource: resource.into(),
            agent: "ocf:pacer:witness".parse().expect("agent"),
            action: action.into(),
            interval_ms: 0,
            timeout: Duration::from_secs(20),
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: meta.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
            node: "h1".into(),
            node_attributes: BTreeMap::new(),
            state_dir: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn rules_match_resource_and_action_with_wildcards() {
        let rules = "# comment\nweb start 1\n* monitor 7 # every monitor\nbad line\n";
        assert_eq!(injected_rc(rules, "web", "start"), Some(1));
        assert_eq!(injected_rc(rules, "db", "start"), None);
        assert_eq!(injected_rc(rules, "db", "monitor"), Some(7));
        assert_eq!(injected_rc("", "db", "monitor"), None);
    }

    #[tokio::test]
    async fn monitors_report_the_simulated_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let simulator = Simulator::new(Simulation { latency: Duration::from_millis(1), fail_file: dir.path().join(FAIL_FILE) });
        let run = |resource: &'static str, action: &'static str| {
            let simulator = &simulator;
            async move { simulator.run(&request(resource, action, &[("promoted_max", "1")]), std::future::pending()).await }
        };
        assert_eq!(run("db", "monitor").await.rc, rc::NOT_RUNNING);
        let started = run("db", "start").await;
        assert_eq!(started.rc, rc::OK);
        assert_eq!(started.attributes[0].name, "master-db");
        assert_eq!(run("db", "monitor").await.rc, rc::OK);
        assert_eq!(run("db", "promote").await.rc, rc::OK);
        assert_eq!(run("db", "monitor").await.rc, rc::RUNNING_PROMOTED);
        assert_eq!(run("db", "demote").await.rc, rc::OK);
        assert_eq!(run("db", "stop").await.attributes[0].value, None);
        assert_eq!(run("db", "monitor").await.rc, rc::NOT_RUNNING);
        // An injected failure answers its code; a monitor answering "not running"
        // means the resource died.
        assert_eq!(run("db", "start").await.rc, rc::OK);
        std::fs::write(dir.path().join(FAIL_FILE), "db monitor 7\n").expect("fail file");
        assert_eq!(run("db", "monitor").await.rc, rc::NOT_RUNNING);
        std::fs::remove_file(dir.path().join(FAIL_FILE)).expect("fail file");
        assert_eq!(run("db", "monitor").await.rc, rc::NOT_RUNNING);
    }

    #[tokio::test]
    async fn a_cancelled_operation_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let simulator = Simulator::new(Simulation { latency: Duration::from_secs(60), fail_file: dir.path().join(FAIL_FILE) });
        let result = simulator.run(&request("web", "start", &[]), async {}).await;
        assert_eq!(result.status, ExecStatus::Cancelled);
        assert!(simulator.running.lock().expect("lock").is_empty());
    }
}
