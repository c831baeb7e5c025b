//! The executor: runs OCF, LSB and systemd resource agents and fence agents on this
//! machine, with timeouts, and reports results on Pacemaker's two axes.
//!
//! - [`Executor::run`] runs one resource operation; [`Executor::run_until`] also
//!   stops when a cancellation future completes; [`Executor::fence`] runs a fence
//!   agent through fence-agents' stdin protocol; [`Executor::metadata`] gets an
//!   agent's metadata.
//! - A failed agent run is data ([`OperationResult`], [`FenceResult`]), never an
//!   `Err`: `status` says whether the agent ran to its end (`Done`) or not (`Timeout`,
//!   `Cancelled`, `NotInstalled`, `Error`, `ErrorHard`, `ErrorFatal`), `rc` is the OCF
//!   exit code. When the agent ran, `status` is `Done` whatever it answered: turning
//!   an answer into a soft, hard or fatal failure (rc 2/3/4/5 hard, 6 fatal) is the
//!   scheduler's `unpack::classify`, as it is Pacemaker's scheduler's. `ErrorHard`
//!   and `ErrorFatal` are only used when the executor itself refuses: an agent it may
//!   not execute on this node (hard), a request no node could run (fatal).
//! - Every agent runs in its own process group with a clean environment
//!   (`environment.rs`), its output read into bounded buffers, and on timeout or
//!   cancellation its whole group gets SIGTERM, then SIGKILL (`process.rs`).
//! - After a successful stop, processes of the resource that left its process group
//!   (`setsid`) are found by the marker in their environment and killed (`sweep.rs`).
//! - The work dir and the shims in it are this user's alone (`private_dir.rs`).
//! - Agent names resolve only inside the configured directories (`resolve.rs`).
//! - `crm_attribute`, `crm_master`, `attrd_updater`, `crm_node`, `uname -n` are shims
//!   written at [`Executor::new`] (`shims.rs`): what an agent sets comes back in
//!   [`OperationResult::attributes`].
//!
//! - A hollow node's executor ([`ExecConfig::simulate`], `hollow.rs`) runs no resource
//!   agent: operations change a simulated state after a latency; fence actions still
//!   run the real fence agents.
//!
//! Architecture invariant: nothing here knows etcd, scheduling or other nodes; the
//! executor does not serialize operations (one operation per resource at a time is
//! the caller's rule).

pub mod alert;
mod classes;
mod drop_in;
mod environment;
mod fence;
pub mod hollow;
pub mod private_dir;
mod process;
pub mod reaper;
mod resolve;
pub mod secret;
mod shims;
mod sweep;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::Instrument;

use crate::api::agent::{AgentClass, AgentRef, FenceAgentRef};
use crate::api::records::ExecStatus;
use private_dir::{Loose, PrivateDirError};
use process::{Ending, Finished, Spawn};
use resolve::Unresolved;

/// OCF exit codes, shared with the scheduler.
pub use crate::api::ocf as rc;

/// Where agents are looked for and how their runs are bounded.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// The system OCF root: every OCF agent's `OCF_ROOT` (its
    /// `lib/heartbeat/ocf-shellfuncs` is what heartbeat and pacemaker agents source,
    /// whichever directory the agent itself comes from); its `resource.d` is searched
    /// first.
    pub ocf_root: PathBuf,
    /// Further OCF agent directories, laid out like `resource.d`
    /// (`<provider>/<type>`), searched after the root's: Pacer's `agents/ocf` holds
    /// `pacer/witness`, i.e. `ocf:pacer:witness`.
    pub ocf_agent_dirs: Vec<PathBuf>,
    /// Directories of LSB init scripts.
    pub lsb_dirs: Vec<PathBuf>,
    /// Directories of fence agents (`fence_*`, and `fence_legacy` for `external/*`).
    pub fence_dirs: Vec<PathBuf>,
    /// Directories of cluster-glue stonith plugins (Debian's cluster-glue:
    /// `/usr/lib/stonith/plugins`); `external/<plugin>` runs only a plugin found in
    /// one's `external/`.
    pub stonith_plugin_dirs: Vec<PathBuf>,
    /// Where the shims and per-operation files live. `None`: a fresh directory under
    /// the system temp dir, removed when the executor is dropped.
    pub work_dir: Option<PathBuf>,
    /// Bytes kept of each of stdout and stderr.
    pub output_limit: usize,
    /// Between SIGTERM and SIGKILL when a run is timed out or cancelled.
    pub kill_grace: Duration,
    /// The PATH after the shims.
    pub system_path: String,
    /// systemd's runtime unit directory: that it exists says systemd runs here, and a
    /// systemd-class resource's unit gets its drop-in there while it runs
    /// (`drop_in.rs`). Tests point it elsewhere.
    pub systemd_run_dir: PathBuf,
    /// The unit systemd-class resources are ordered before: the agent's own.
    pub agent_unit: String,
    /// A hollow node's executor (`hollow.rs`): resource operations are simulated and
    /// nothing is written to `work_dir`; fence actions run for real.
    pub simulate: Option<hollow::Simulation>,
}

impl Default for ExecConfig {
    fn default() -> ExecConfig {
        ExecConfig {
            ocf_root: PathBuf::from("/usr/lib/ocf"),
            ocf_agent_dirs: Vec::new(),
            lsb_dirs: vec![PathBuf::from("/etc/init.d")],
            fence_dirs: vec![PathBuf::from("/usr/sbin")],
            stonith_plugin_dirs: vec![PathBuf::from("/usr/lib/stonith/plugins")],
            work_dir: None,
            output_limit: 256 * 1024,
            kill_grace: Duration::from_secs(2),
            system_path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            systemd_run_dir: PathBuf::from("/run/systemd/system"),
            agent_unit: "pacer-agent.service".to_string(),
            simulate: None,
        }
    }
}

impl ExecConfig {
    /// Adds a project agent directory laid out like Pacer's `agents/`: `ocf/`
    /// (`ocf/<provider>/<type>`), `lsb/` and `fence/`, searched after the system
    /// directories.
    pub fn with_agents_dir(mut self, dir: &Path) -> ExecConfig {
        self.ocf_agent_dirs.push(dir.join("ocf"));
        self.lsb_dirs.push(dir.join("lsb"));
        self.fence_dirs.push(dir.join("fence"));
        self
    }
}

/// Why an executor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The work directory or the shims in it could not be written (permissions, full
    /// disk). Retrying helps only once that is fixed.
    #[error("write agent shims in {dir}: {source}")]
    Shims { dir: PathBuf, source: io::Error },
    /// The work directory is not this user's alone (another user's, a symlink,
    /// writable by others), or could not be made so.
    #[error(transparent)]
    WorkDir(#[from] PrivateDirError),
}

/// One resource operation to run.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationRequest {
    /// The instance name the agent sees as `OCF_RESOURCE_INSTANCE` (`web`, `db:1`).
    pub resource: String,
    pub agent: AgentRef,
    /// `start`, `stop`, `monitor`, `promote`, `demote`, `migrate_to`, `migrate_from`,
    /// `notify`, `reload`, `reload-agent`, `meta-data`, `validate-all`.
    pub action: String,
    /// 0 for a one-off operation or a probe.
    pub interval_ms: u64,
    pub timeout: Duration,
    /// Instance parameters: `OCF_RESKEY_<name>` (`OCF_CHECK_LEVEL` as itself).
    pub params: BTreeMap<String, String>,
    /// Parameters whose values are read from files on this host just before the run
    /// (`secret.rs`): name to path. Passed like `params`; a stop runs without those
    /// it cannot read (as Pacemaker's executor does), any other action fails.
    pub secret_files: BTreeMap<String, String>,
    /// `OCF_RESKEY_CRM_meta_<key>` with `-` turned into `_` (clone, notify variables).
    /// `timeout`, `interval`, `name` and `on_node` are set from the request unless
    /// given here.
    pub meta: BTreeMap<String, String>,
    /// The node the operation runs for: `crm_node -n`, `uname -n`, `CRM_meta_on_node`.
    pub node: String,
    /// The node's current attributes, answered to `crm_attribute -G` and the like.
    pub node_attributes: BTreeMap<String, String>,
    /// The node's state directory: `HA_RSCTMP` is `<state_dir>/rsctmp`, `HA_VARRUN`
    /// `<state_dir>/run` (created when missing).
    pub state_dir: PathBuf,
}

/// How long a node attribute set by an agent lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeLifetime {
    /// Until the node restarts (`-l reboot`, `attrd_updater`, promotion scores).
    Reboot,
    /// Kept across restarts (`-l forever`, `crm_master`'s default).
    Forever,
}

/// One attribute change an agent made through the shims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeUpdate {
    /// `master-<resource>` for promotion scores.
    pub name: String,
    /// The node the attribute belongs to (the request's node unless `-N` said
    /// otherwise).
    pub node: String,
    pub lifetime: AttributeLifetime,
    /// `None`: deleted.
    pub value: Option<String>,
}

/// What became of one resource operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationResult {
    pub status: ExecStatus,
    /// The OCF exit code (LSB codes mapped); 1 when the agent did not finish, 5 when it
    /// is not installed.
    pub rc: i32,
    /// The agent's last `ocf-exit-reason:` line, or the executor's reason when it did
    /// not run the agent to its end.
    pub exit_reason: Option<String>,
    /// Both truncated to the output limit, with a marker.
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
    /// What the agent set or deleted through the shims, in order.
    pub attributes: Vec<AttributeUpdate>,
}

impl OperationResult {
    fn refused(status: ExecStatus, rc: i32, reason: String) -> OperationResult {
        OperationResult {
            status,
            rc,
            exit_reason: Some(reason),
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
            attributes: Vec::new(),
        }
    }
}

/// One fence agent action.
#[derive(Clone, Debug, PartialEq)]
pub struct FenceRequest {
    /// The FenceDevice's name, for logs.
    pub device: String,
    pub agent: FenceAgentRef,
    /// `off`, `reboot`, `on`, `status`, `monitor`, `list`, `metadata`.
    pub action: String,
    /// The node to act on (`nodename=`).
    pub target: Option<String>,
    /// The plug (`port=`): from the device's host map, else the target.
    pub plug: Option<String>,
    /// The device's parameters, one `key=value` line each (`pcmk_*` are not passed).
    pub params: BTreeMap<String, String>,
    /// Parameters read from files on this host just before the run: name to path.
    pub secret_files: BTreeMap<String, String>,
    pub timeout: Duration,
}

/// What became of a fence agent action.
#[derive(Clone, Debug, PartialEq)]
pub struct FenceResult {
    pub status: ExecStatus,
    /// The agent's exit code: 0 success; for `status` 0 on, 2 off; else a failure.
    pub rc: i32,
    /// Its stdout (the answer of `list`, `status`, `metadata`), truncated to the limit.
    pub output: String,
    pub stderr: String,
    pub duration: Duration,
}

impl FenceResult {
    /// Whether the action succeeded: it ran to its end with rc 0, or 2 for `status`
    /// (an answer: the target is off).
    pub fn succeeded(&self, action: &str) -> bool {
        self.status == ExecStatus::Done && fence::is_success(action, self.rc)
    }
}

/// Runs agents. Cheap to share (`&self` everywhere); concurrent runs are independent.
#[derive(Debug)]
pub struct Executor {
    config: ExecConfig,
    work_dir: PathBuf,
    shim_dir: PathBuf,
    remove_work_dir: bool,
    next_operation: AtomicU64,
    /// A hollow node's simulated machine: resource operations go there.
    simulator: Option<hollow::Simulator>,
}

impl Executor {
    /// Prepares the work directory and writes the shims into `<work_dir>/bin`.
    pub fn new(config: ExecConfig) -> Result<Executor, ExecError> {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        if let Some(simulation) = config.simulate.clone() {
            // Nothing is written: a thousand hollow nodes share one machine.
            let work_dir = config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
            let simulator = Some(hollow::Simulator::new(simulation));
            return Ok(Executor { shim_dir: work_dir.join("bin"), config, work_dir, remove_work_dir: false, next_operation: AtomicU64::new(0), simulator });
        }
        // The shims run as root: the work dir, and each directory in it, must be this
        // user's alone (a directory another user made first, or a symlink, is refused).
        let (work_dir, remove_work_dir) = match &config.work_dir {
            Some(dir) => {
                private_dir::ensure_private_dir(dir, Loose::Tighten)?;
                (dir.clone(), false)
            }
            None => (fresh_temp_dir(&INSTANCE)?, true),
        };
        let shim_dir = work_dir.join("bin");
        private_dir::ensure_private_dir(&shim_dir, Loose::Tighten)?;
        private_dir::ensure_private_dir(&work_dir.join("operations"), Loose::Tighten)?;
        let error = |source| ExecError::Shims { dir: shim_dir.clone(), source };
        let real_uname = process::find_in_path("uname", &config.system_path);
        shims::write_shims(&shim_dir, real_uname.as_deref()).map_err(error)?;
        Ok(Executor { config, work_dir, shim_dir, remove_work_dir, next_operation: AtomicU64::new(0), simulator: None })
    }

    /// The directory holding the shims (first on every agent's PATH).
    pub fn shim_dir(&self) -> &Path {
        &self.shim_dir
    }

    /// Runs one resource operation to its end or its timeout.
    pub async fn run(&self, request: &OperationRequest) -> OperationResult {
        self.run_until(request, std::future::pending()).await
    }

    /// Runs one resource operation; when `cancel` completes first, the agent's process
    /// group is killed and the result is `Cancelled` (how the caller stops a recurring
    /// monitor in flight). Dropping the returned future also kills the group.
    pub async fn run_until(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        let span = tracing::info_span!("operation", resource = %request.resource, node = %request.node, action = %request.action, agent = %request.agent);
        async {
            let result = self.run_inner(request, cancel).await;
            tracing::debug!(status = ?result.status, rc = result.rc, duration_ms = result.duration.as_millis() as u64, "operation finished");
            result
        }
        .instrument(span)
        .await
    }

    async fn run_inner(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        if let Some(simulator) = &self.simulator {
            return simulator.run(request, cancel).await;
        }
        match request.agent.class {
            AgentClass::Ocf => self.run_ocf(request, cancel).await,
            AgentClass::Lsb => self.run_lsb(request, cancel).await,
            AgentClass::Systemd => self.run_systemd(request, cancel).await,
        }
    }

    async fn run_ocf(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        let Some(provider) = request.agent.provider.as_deref() else {
            return OperationResult::refused(ExecStatus::ErrorFatal, rc::NOT_CONFIGURED, "an OCF agent needs a provider".into());
        };
        let roots: Vec<PathBuf> = std::iter::once(self.config.ocf_root.join("resource.d")).chain(self.config.ocf_agent_dirs.iter().cloned()).collect();
        let program = match resolve::resolve(&roots, &[provider, &request.agent.agent_type]) {
            Ok(program) => program,
            Err(unresolved) => return self.unresolved(unresolved, &request.agent.to_string(), &roots),
        };
        let ocf_root = self.config.ocf_root.clone();
        self.run_resource_agent(request, &program, vec![request.action.clone()], Some((&ocf_root, provider)), cancel, |code| code).await
    }

    async fn run_lsb(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        let program = match resolve::resolve(&self.config.lsb_dirs, &[&request.agent.agent_type]) {
            Ok(program) => program,
            Err(unresolved) => return self.unresolved(unresolved, &request.agent.to_string(), &self.config.lsb_dirs),
        };
        if request.action == "meta-data" {
            return self.synthesized(classes::lsb_metadata(&request.agent.agent_type, &read_head(&program)));
        }
        if request.action == "validate-all" {
            return OperationResult { exit_reason: None, ..OperationResult::refused(ExecStatus::Done, rc::OK, String::new()) };
        }
        let Some(script_action) = classes::lsb_action(&request.action) else {
            return OperationResult::refused(ExecStatus::Done, rc::UNIMPLEMENTED, format!("LSB scripts have no {} action", request.action));
        };
        self.run_resource_agent(request, &program, vec![script_action.to_string()], None, cancel, |code| classes::lsb_to_ocf(script_action, code)).await
    }

    async fn run_systemd(&self, request: &OperationRequest, cancel: impl Future<Output = ()>) -> OperationResult {
        let unit = classes::systemd_unit(&request.agent.agent_type);
        if let Err(unresolved) = resolve::check_part(&unit) {
            return self.unresolved(unresolved, &request.agent.to_string(), &[]);
        }
        let Some(systemctl) = process::find_in_path("systemctl", &self.config.system_path) else {
            return OperationResult::refused(ExecStatus::NotInstalled, rc::NOT_INSTALLED, "systemctl not found".into());
        };
        if !self.config.systemd_run_dir.exists() {
            return OperationResult::refused(ExecStatus::NotInstalled, rc::NOT_INSTALLED, "systemd is not running on this node".into());
        }
        let args: Vec<String> = match request.action.as_str() {
            "meta-data" => {
                return self.synthesized(classes::synthesized_metadata(
                    &unit,
                    &format!("systemd unit file for {unit}"),
                    &format!("systemd unit file for {unit}"),
                    true,
                ));
            }
            "validate-all" => return OperationResult { exit_reason: None, ..OperationResult::refused(ExecStatus::Done, rc::OK, String::new()) },
            "start" | "stop" | "reload" => vec![request.action.clone(), unit.clone()],
            "reload-agent" => vec!["reload".into(), unit.clone()],
            "monitor" | "status" => vec!["is-active".into(), "--quiet".into(), unit.clone()],
            other => return OperationResult::refused(ExecStatus::Done, rc::UNIMPLEMENTED, format!("systemd units have no {other} action")),
        };
        if request.action == "start" {
            // Ordered before the agent from now on (see drop_in.rs); a unit that
            // cannot be ordered is not started.
            match drop_in::write(&self.config.systemd_run_dir, &unit, &self.config.agent_unit) {
                Err(error) => {
                    let file = drop_in::path(&self.config.systemd_run_dir, &unit);
                    return OperationResult::refused(ExecStatus::Error, rc::ERR_GENERIC, format!("write {}: {error}", file.display()));
                }
                // Reloaded only when the drop-in is new or changed.
                Ok(true) => {
                    if let Err(reason) = self.daemon_reload(&systemctl, request.timeout).await {
                        return OperationResult::refused(ExecStatus::Error, rc::ERR_GENERIC, reason);
                    }
                }
                Ok(false) => {}
            }
        }
        let mut result = self.run_resource_agent(request, &systemctl, args, None, cancel, |code| code).await;
        if request.action == "stop" && result.status == ExecStatus::Done && result.rc == 0 {
            match drop_in::remove(&self.config.systemd_run_dir, &unit) {
                Ok(true) => {
                    if let Err(reason) = self.daemon_reload(&systemctl, request.timeout.saturating_sub(result.duration)).await {
                        // Stopped all the same; the stale ordering is harmless.
                        tracing::warn!(%unit, "{reason}");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%unit, %error, "cannot remove the unit's drop-in; it goes at reboot"),
            }
        }
        if result.status == ExecStatus::Done && result.rc != 0 {
            // systemctl's codes are not OCF's: ask whether the unit exists at all,
            // within what is left of the operation's timeout (systemd may hang).
            let remaining = request.timeout.saturating_sub(result.duration).max(Duration::from_secs(1));
            let query = tokio::process::Command::new(&systemctl)
                .args(["show", "-p", "LoadState", "--value", &unit])
                .env_clear()
                .env("PATH", &self.config.system_path)
                .kill_on_drop(true)
                .output();
            let loaded = match tokio::time::timeout(remaining, query).await {
                Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).trim().to_string(),
                Ok(Err(_)) | Err(_) => String::new(),
            };
            let missing = loaded == "not-found";
            result.rc = match request.action.as_str() {
                // Nothing of a missing unit runs: stopped.
                "stop" if missing => rc::OK,
                _ if missing => {
                    result.status = ExecStatus::NotInstalled;
                    rc::NOT_INSTALLED
                }
                "monitor" | "status" => rc::NOT_RUNNING,
                _ => rc::ERR_GENERIC,
            };
        }
        result
    }

    /// `systemctl daemon-reload`, so that a drop-in written or removed takes effect;
    /// bounded by `timeout` (at least a second: systemd may be busy).
    async fn daemon_reload(&self, systemctl: &Path, timeout: Duration) -> Result<(), String> {
        let reload = tokio::process::Command::new(systemctl).arg("daemon-reload").env_clear().env("PATH", &self.config.system_path).kill_on_drop(true).output();
        match tokio::time::timeout(timeout.max(Duration::from_secs(1)), reload).await {
            Ok(Ok(output)) if output.status.success() => Ok(()),
            Ok(Ok(output)) => Err(format!("reload systemd: systemctl daemon-reload: {}", String::from_utf8_lossy(&output.stderr).trim())),
            Ok(Err(error)) => Err(format!("reload systemd: {error}")),
            Err(_) => Err(format!("reload systemd: no answer within {timeout:?}")),
        }
    }

    fn synthesized(&self, metadata: String) -> OperationResult {
        OperationResult {
            status: ExecStatus::Done,
            rc: rc::OK,
            exit_reason: None,
            stdout: metadata,
            stderr: String::new(),
            duration: Duration::ZERO,
            attributes: Vec::new(),
        }
    }

    fn unresolved(&self, unresolved: Unresolved, agent: &str, roots: &[PathBuf]) -> OperationResult {
        match unresolved {
            Unresolved::BadName(part) => {
                OperationResult::refused(ExecStatus::ErrorFatal, rc::NOT_INSTALLED, format!("agent name part {part:?} is not a plain file name"))
            }
            Unresolved::Missing => {
                OperationResult::refused(ExecStatus::NotInstalled, rc::NOT_INSTALLED, format!("{agent} not found in {}", resolve::describe(roots)))
            }
            Unresolved::Outside(path) => {
                OperationResult::refused(ExecStatus::ErrorHard, rc::NOT_INSTALLED, format!("{} leads outside its agent directory", path.display()))
            }
        }
    }

    /// Runs a resource agent with the per-operation files of the shims, then collects
    /// what it set. `ocf` is the OCF root and provider for OCF agents; `map_rc` turns
    /// the exit code into an OCF code.
    async fn run_resource_agent(
        &self,
        request: &OperationRequest,
        program: &Path,
        args: Vec<String>,
        ocf: Option<(&Path, &str)>,
        cancel: impl Future<Output = ()>,
        map_rc: impl Fn(i32) -> i32,
    ) -> OperationResult {
        // Only OCF agents get parameters; the secrets are read now, just before the run.
        let mut secrets = secret::Secrets::default();
        let mut with_secrets = None;
        if ocf.is_some() && !request.secret_files.is_empty() {
            match secret::read_secret_files(&request.secret_files) {
                Ok(read) => {
                    let mut full = request.clone();
                    full.params.extend(read.iter().map(|(name, value)| (name.to_string(), value.to_string())));
                    with_secrets = Some(full);
                    secrets = read;
                }
                // A stop must not fail for a secret (a failed stop fences the node): it
                // runs without them, as Pacemaker's executor does.
                Err(reason) if request.action == "stop" => {
                    tracing::warn!(resource = %request.resource, "stop without its secret parameters: {reason}");
                }
                Err(reason) => return OperationResult::refused(ExecStatus::ErrorHard, rc::NOT_CONFIGURED, reason),
            }
        }
        let request = with_secrets.as_ref().unwrap_or(request);
        let operation_dir = self.work_dir.join("operations").join(self.next_operation.fetch_add(1, Ordering::Relaxed).to_string());
        let node_attributes_file = operation_dir.join("node-attributes");
        let updates_file = operation_dir.join("attribute-updates");
        let rsctmp = request.state_dir.join("rsctmp");
        let varrun = request.state_dir.join("run");
        let prepared = (|| -> io::Result<()> {
            std::fs::create_dir_all(&operation_dir)?;
            std::fs::create_dir_all(&rsctmp)?;
            std::fs::create_dir_all(&varrun)?;
            std::fs::write(&node_attributes_file, shims::render_node_attributes(&request.node_attributes))?;
            std::fs::write(&updates_file, "")
        })();
        if let Err(error) = prepared {
            let _ = std::fs::remove_dir_all(&operation_dir);
            return OperationResult::refused(ExecStatus::Error, rc::ERR_GENERIC, format!("prepare operation files: {error}"));
        }
        let resource_marker = format!("{}/{}", request.node, request.resource);
        let executor_marker = self.work_dir.display().to_string();
        let common = environment::Common {
            shim_dir: &self.shim_dir,
            system_path: &self.config.system_path,
            node: &request.node,
            rsctmp: &rsctmp,
            varrun: &varrun,
            node_attributes_file: &node_attributes_file,
            updates_file: &updates_file,
            resource_marker: &resource_marker,
            executor_marker: &executor_marker,
        };
        let mut env = environment::common(&common);
        if let Some((ocf_root, provider)) = ocf {
            if let Err(reason) = environment::ocf(&mut env, request, ocf_root, provider) {
                let _ = std::fs::remove_dir_all(&operation_dir);
                return OperationResult::refused(ExecStatus::ErrorFatal, rc::ERR_ARGS, reason);
            }
        }
        let spawn = Spawn {
            program,
            args,
            env: env.into_iter().collect(),
            stdin: None,
            timeout: request.timeout,
            kill_grace: self.config.kill_grace,
            output_limit: self.config.output_limit,
        };
        let finished = process::run(spawn, cancel).await;
        let attributes = shims::parse_updates(&std::fs::read_to_string(&updates_file).unwrap_or_default());
        let _ = std::fs::remove_dir_all(&operation_dir);
        let (status, rc, reason) = interpret(&finished, request.timeout, map_rc);
        if request.action == "stop" && status == ExecStatus::Done && rc == rc::OK {
            // Stopped means nothing of it runs: what left the agent's process group
            // (setsid) is found by its marker and killed before the stop is reported.
            sweep::kill_leftovers(&resource_marker, &executor_marker, self.config.kill_grace).await;
        }
        let mut result = OperationResult {
            status,
            rc,
            exit_reason: finished.exit_reason.or(reason),
            stdout: finished.stdout,
            stderr: finished.stderr,
            duration: finished.duration,
            attributes,
        };
        // What the agent says becomes a failure reason, a log line, an event.
        secrets.scrub(&mut result.stdout);
        secrets.scrub(&mut result.stderr);
        if let Some(reason) = result.exit_reason.as_mut() {
            secrets.scrub(reason);
        }
        result
    }

    /// Gets an agent's metadata (OCF `meta-data`; synthesized for LSB and systemd).
    /// The XML is the result's `stdout`.
    pub async fn metadata(&self, agent: &AgentRef, timeout: Duration) -> OperationResult {
        let request = OperationRequest {
            resource: agent.agent_type.clone(),
            agent: agent.clone(),
            action: "meta-data".into(),
            interval_ms: 0,
            timeout,
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            node: String::new(),
            node_attributes: BTreeMap::new(),
            state_dir: self.work_dir.join("metadata"),
        };
        self.run(&request).await
    }

    /// Runs a fence agent action with fence-agents' stdin protocol.
    pub async fn fence(&self, request: &FenceRequest) -> FenceResult {
        let span = tracing::info_span!("fence", device = %request.device, agent = %request.agent, action = %request.action, target = request.target.as_deref().unwrap_or(""));
        async {
            let result = self.fence_inner(request).await;
            tracing::debug!(status = ?result.status, rc = result.rc, "fence action finished");
            result
        }
        .instrument(span)
        .await
    }

    async fn fence_inner(&self, request: &FenceRequest) -> FenceResult {
        let refused = |status, rc, output: String| FenceResult { status, rc, output: String::new(), stderr: output, duration: Duration::ZERO };
        let name = request.agent.as_str();
        // The definition may not have come through apply: its agent and options are
        // checked again (`api::fence_options`).
        if let Err(reason) = crate::api::fence_options::check_agent(&request.agent) {
            return refused(ExecStatus::ErrorFatal, rc::ERR_ARGS, format!("refuse fence agent {name}: {reason}"));
        }
        // Secret parameters are options too (merged into the agent's stdin below), of
        // a value not known here.
        let options = request.params.iter().map(|(name, value)| (name, Some(value.as_str()))).chain(request.secret_files.keys().map(|name| (name, None)));
        for (option, value) in options {
            if let Err(reason) = crate::api::fence_options::check_option(&request.agent, option, value) {
                return refused(ExecStatus::ErrorFatal, rc::ERR_ARGS, format!("refuse fence option {option} of {name}: {reason}"));
            }
        }
        let (program_name, plugin) = match name.strip_prefix("external/") {
            Some(plugin) => {
                let plugin_dirs: Vec<PathBuf> = self.config.stonith_plugin_dirs.iter().map(|dir| dir.join("external")).collect();
                match resolve::resolve(&plugin_dirs, &[plugin]) {
                    Ok(_) => {}
                    Err(Unresolved::Missing) => {
                        let reason = format!("stonith plugin {name} not found in {}", resolve::describe(&plugin_dirs));
                        return refused(ExecStatus::NotInstalled, rc::NOT_INSTALLED, reason);
                    }
                    Err(other) => return refused(ExecStatus::ErrorFatal, rc::NOT_INSTALLED, format!("stonith plugin {name}: {other:?}")),
                }
                (crate::api::fence_options::LEGACY_RUNNER, Some(name))
            }
            // Fence directories hold other programs (/usr/sbin/reboot): only fence_*.
            None if name.starts_with("fence_") => (name, None),
            None => return refused(ExecStatus::ErrorFatal, rc::NOT_INSTALLED, format!("{name} is not a fence agent name (fence_*)")),
        };
        let program = match resolve::resolve(&self.config.fence_dirs, &[program_name]) {
            Ok(program) => program,
            Err(Unresolved::Missing) => {
                return refused(
                    ExecStatus::NotInstalled,
                    rc::NOT_INSTALLED,
                    format!("{program_name} not found in {}", resolve::describe(&self.config.fence_dirs)),
                );
            }
            Err(other) => return refused(ExecStatus::ErrorHard, rc::NOT_INSTALLED, format!("{program_name}: {other:?}")),
        };
        // The secrets are read now, just before the run, and passed as parameters.
        let secrets = match secret::read_secret_files(&request.secret_files) {
            Ok(secrets) => secrets,
            Err(reason) => return refused(ExecStatus::ErrorHard, rc::NOT_CONFIGURED, reason),
        };
        let mut with_secrets = None;
        if !request.secret_files.is_empty() {
            let mut full = request.clone();
            full.params.extend(secrets.iter().map(|(name, value)| (name.to_string(), value.to_string())));
            with_secrets = Some(full);
        }
        let stdin = match fence::render_stdin(with_secrets.as_ref().unwrap_or(request), plugin) {
            Ok(stdin) => stdin,
            Err(reason) => return refused(ExecStatus::ErrorFatal, rc::ERR_ARGS, reason),
        };
        let spawn = Spawn {
            program: &program,
            args: Vec::new(),
            env: vec![("PATH".into(), self.config.system_path.clone()), ("LANG".into(), "C".into())],
            stdin: Some(stdin.into_bytes()),
            timeout: request.timeout,
            kill_grace: self.config.kill_grace,
            output_limit: self.config.output_limit,
        };
        let finished = process::run(spawn, std::future::pending()).await;
        let (status, rc, reason) = interpret(&finished, request.timeout, |code| code);
        let mut stderr = finished.stderr;
        if let Some(reason) = reason {
            stderr.push_str(&format!("\n[pacer: {reason}]"));
        }
        let mut output = finished.stdout;
        secrets.scrub(&mut output);
        secrets.scrub(&mut stderr);
        FenceResult { status, rc, output, stderr, duration: finished.duration }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if self.remove_work_dir {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        }
    }
}

/// A new directory under the system temp dir, made by us with mode 0700: a name
/// another user took first is skipped, never used.
fn fresh_temp_dir(instances: &AtomicU64) -> Result<PathBuf, ExecError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for _ in 0..64 {
        let instance = instances.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pacer-exec-{}-{instance}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                private_dir::ensure_private_dir(&dir, Loose::Tighten)?;
                return Ok(dir);
            }
            Err(source) if source.kind() == io::ErrorKind::AlreadyExists => {
                tracing::warn!(dir = %dir.display(), "executor work dir already exists (made by someone else?); trying another name");
                last = Some(source);
            }
            Err(source) => return Err(ExecError::Shims { dir, source }),
        }
    }
    let source = last.unwrap_or_else(|| io::Error::other("no name left"));
    Err(ExecError::Shims { dir: std::env::temp_dir(), source })
}

/// Turns how a process ended into status, rc and the executor's reason.
fn interpret(finished: &Finished, timeout: Duration, map_rc: impl Fn(i32) -> i32) -> (ExecStatus, i32, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    match &finished.ending {
        Ending::Exited(status) => match (status.code(), status.signal()) {
            (Some(code), _) => (ExecStatus::Done, map_rc(code), None),
            (None, Some(signal)) => (ExecStatus::Error, rc::ERR_GENERIC, Some(format!("agent killed by signal {signal}"))),
            (None, None) => (ExecStatus::Error, rc::ERR_GENERIC, Some("agent ended without exit code".into())),
        },
        Ending::TimedOut => (ExecStatus::Timeout, rc::ERR_GENERIC, Some(format!("timed out after {}ms", timeout.as_millis()))),
        Ending::Cancelled => (ExecStatus::Cancelled, rc::ERR_GENERIC, Some("cancelled".into())),
        Ending::SpawnFailed(error) => match error.raw_os_error() {
            // The file vanished, or its interpreter (#!) is missing.
            Some(libc::ENOENT) => (ExecStatus::NotInstalled, rc::NOT_INSTALLED, Some(format!("run agent: {error}"))),
            Some(libc::EACCES) | Some(libc::EPERM) => (ExecStatus::ErrorHard, rc::INSUFFICIENT_PRIV, Some(format!("run agent: {error}"))),
            Some(libc::ENOEXEC) => (ExecStatus::ErrorHard, rc::NOT_INSTALLED, Some(format!("run agent: {error}"))),
            _ => (ExecStatus::Error, rc::ERR_GENERIC, Some(format!("run agent: {error}"))),
        },
    }
}

/// The first 64 KiB of a script, for its LSB header.
fn read_head(path: &Path) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(64 * 1024).read_to_end(&mut head);
    }
    String::from_utf8_lossy(&head).into_owned()
}
