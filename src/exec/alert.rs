//! Alert agents (Pacemaker's `<alert path>`): one run of the executable with the
//! event's environment, in its own process group, its whole group killed at the
//! alert's timeout. Nothing here knows events or alerts: the caller builds the
//! environment (`alerts::environment`).

use std::future::pending;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use super::process::{Ending, Spawn, is_executable, run};

/// The PATH an alert agent gets (the agents call `sendmail`, `snmptrap`, `date`).
const ALERT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bytes kept of the agent's output, for the failure's reason.
const OUTPUT_LIMIT: usize = 4096;
/// Between SIGTERM and SIGKILL for an agent past its timeout.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How a run ended: `Ok` when the agent exited 0, else why not, in one line.
pub type AlertAgentOutcome = Result<(), String>;

/// Runs `path` once with `env` (plus PATH) and no arguments, as Pacemaker's executor
/// runs an alert agent, until it exits or `timeout` passes (then its process group is
/// killed). An agent that is missing or not executable on this host fails without
/// being run.
pub async fn run_alert_agent(path: &Path, env: Vec<(String, String)>, timeout: Duration) -> AlertAgentOutcome {
    if !is_executable(path) {
        return Err(format!("{} does not exist or is not executable on this host", path.display()));
    }
    let mut full_env = vec![("PATH".to_string(), ALERT_PATH.to_string())];
    full_env.extend(env);
    let spawn = Spawn { program: path, args: Vec::new(), env: full_env, stdin: None, timeout, kill_grace: KILL_GRACE, output_limit: OUTPUT_LIMIT };
    let finished = run(spawn, pending::<()>()).await;
    match finished.ending {
        Ending::Exited(status) if status.success() => Ok(()),
        Ending::Exited(status) => {
            let said = first_line(&finished.stderr).or_else(|| first_line(&finished.stdout));
            let said = said.map(|line| format!(": {line}")).unwrap_or_default();
            match (status.code(), status.signal()) {
                (Some(code), _) => Err(format!("exited with {code}{said}")),
                (None, Some(signal)) => Err(format!("killed by signal {signal}{said}")),
                (None, None) => Err(format!("ended abnormally{said}")),
            }
        }
        Ending::TimedOut => Err(format!("timed out after {} (killed)", humantime::format_duration(timeout))),
        Ending::Cancelled => Err("cancelled".to_string()),
        Ending::SpawnFailed(error) => Err(format!("could not run {}: {error}", path.display())),
    }
}

/// The first non-empty line of an output, at most 200 characters.
fn first_line(output: &str) -> Option<String> {
    let line = output.lines().map(str::trim).find(|line| !line.is_empty())?;
    Some(line.chars().take(200).collect())
}
