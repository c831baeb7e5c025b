//! The executor against real agents installed on this machine (resource-agents,
//! Pacemaker's test agents, fence-agents) and Pacer's own `agents/`. A missing agent
//! fails its test with a message saying what to install; nothing is skipped.
//!
//! Each test has its own temp state dir, is bounded by a timeout, and ends what it
//! started.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pacer::api::agent::{AgentClass, AgentRef};
use pacer::api::records::ExecStatus;
use pacer::exec::{AttributeLifetime, AttributeUpdate, ExecConfig, Executor, FenceRequest, OperationRequest, OperationResult};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body under a timeout.
async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_TIMEOUT, body).await.expect("test exceeded its timeout");
}

fn require(path: &str) {
    assert!(Path::new(path).exists(), "{path} is missing: install resource-agents, pacemaker (its test agents) and fence-agents (scripts/install-deps)");
}

fn agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agents")
}

struct Setup {
    dir: tempfile::TempDir,
    executor: Executor,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ExecConfig { work_dir: Some(dir.path().join("work")), ..ExecConfig::default() }.with_agents_dir(&agents_dir());
    let executor = Executor::new(config).expect("executor");
    Setup { dir, executor }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A request for `node`, whose state dir is `<tmp>/nodes/<node>`.
    fn request(&self, resource: &str, agent: &str, action: &str, node: &str) -> OperationRequest {
        OperationRequest {
            resource: resource.into(),
            agent: agent.parse().expect("agent name"),
            action: action.into(),
            interval_ms: 0,
            timeout: Duration::from_secs(20),
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            node: node.into(),
            node_attributes: BTreeMap::new(),
            state_dir: self.path("nodes").join(node),
        }
    }

    async fn op(&self, request: &OperationRequest, action: &str) -> OperationResult {
        let request = OperationRequest { action: action.into(), ..request.clone() };
        self.executor.run(&request).await
    }
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[track_caller]
fn assert_rc(result: &OperationResult, rc: i32, what: &str) {
    assert_eq!((result.status, result.rc), (ExecStatus::Done, rc), "{what}: {result:#?}");
}

/// PIDs of processes whose environment or command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        for file in ["environ", "cmdline"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                if bytes.windows(marker.len()).any(|window| window == marker.as_bytes()) {
                    found.push(pid);
                    break;
                }
            }
        }
    }
    found
}

/// Writes an OCF agent `ocf:test:<name>` into a directory the executor searches.
fn test_agent(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let provider = dir.join("test");
    std::fs::create_dir_all(&provider).expect("mkdir");
    let path = provider.join(name);
    std::fs::write(&path, script).expect("write agent");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn heartbeat_dummy_starts_monitors_and_stops() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let s = setup();
        let dummy = s.request("web", "ocf:heartbeat:Dummy", "monitor", "node-a");
        assert_rc(&s.op(&dummy, "monitor").await, 7, "probe before start");
        let start = s.op(&dummy, "start").await;
        assert_rc(&start, 0, "start");
        eprintln!("heartbeat:Dummy start took {:?}", start.duration);
        assert!(s.path("nodes/node-a/rsctmp/Dummy-web.state").exists(), "the state file lives in the node's HA_RSCTMP");
        assert_rc(&s.op(&dummy, "monitor").await, 0, "monitor after start");
        assert_rc(&s.op(&dummy, "start").await, 0, "start again");
        assert_rc(&s.op(&dummy, "stop").await, 0, "stop");
        assert_rc(&s.op(&dummy, "monitor").await, 7, "monitor after stop");
        let metadata = s.executor.metadata(&"ocf:heartbeat:Dummy".parse().expect("agent"), Duration::from_secs(10)).await;
        assert_rc(&metadata, 0, "meta-data");
        assert!(metadata.stdout.contains("<resource-agent name=\"Dummy\""), "{}", metadata.stdout);
    })
    .await;
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    require("/usr/lib/ocf/resource.d/pacemaker/Dummy");
    bounded(async {
        let s = setup();
        let state = s.path("timeout-marker-7f3a.state");
        let mut request = s.request("slow", "ocf:pacemaker:Dummy", "start", "node-a");
        request.params = params(&[("op_sleep", "30"), ("state", state.to_str().expect("utf-8"))]);
        request.timeout = Duration::from_secs(1);
        let started = Instant::now();
        let result = s.executor.run(&request).await;
        assert_eq!(result.status, ExecStatus::Timeout, "{result:#?}");
        assert_eq!(result.rc, 1);
        assert!(started.elapsed() < Duration::from_secs(6), "the timeout took {:?}", started.elapsed());
        eprintln!("timed-out start returned after {:?}", started.elapsed());
        // The agent's `sleep 30` child carried the state path in its environment.
        let left = processes_mentioning(state.to_str().expect("utf-8"));
        assert!(left.is_empty(), "processes of the timed-out agent remain: {left:?}");
    })
    .await;
}

#[tokio::test]
async fn cancelling_kills_the_process_group() {
    require("/usr/lib/ocf/resource.d/pacemaker/Dummy");
    bounded(async {
        let s = setup();
        let state = s.path("cancel-marker-91bc.state");
        let mut request = s.request("slow", "ocf:pacemaker:Dummy", "monitor", "node-a");
        request.params = params(&[("op_sleep", "30"), ("state", state.to_str().expect("utf-8"))]);
        let result = s.executor.run_until(&request, tokio::time::sleep(Duration::from_millis(500))).await;
        assert_eq!(result.status, ExecStatus::Cancelled, "{result:#?}");
        let left = processes_mentioning(state.to_str().expect("utf-8"));
        assert!(left.is_empty(), "processes of the cancelled agent remain: {left:?}");
    })
    .await;
}

#[tokio::test]
async fn pacemaker_dummy_fails_start_on_the_node_named_in_fail_start_on() {
    require("/usr/lib/ocf/resource.d/pacemaker/Dummy");
    bounded(async {
        let s = setup();
        // Dummy compares `uname -n` with the parameter: the shim answers the
        // request's node, so two "nodes" on one machine differ.
        let mut on_a = s.request("d", "ocf:pacemaker:Dummy", "start", "node-a");
        on_a.params = params(&[("fail_start_on", "node-a")]);
        assert_rc(&s.executor.run(&on_a).await, 1, "start on the failing node");
        let on_b = OperationRequest { node: "node-b".into(), state_dir: s.path("nodes/node-b"), ..on_a.clone() };
        assert_rc(&s.executor.run(&on_b).await, 0, "start on another node");
        assert_rc(&s.op(&on_b, "stop").await, 0, "stop");
        // An exit reason from stderr: check level 30 always fails with one.
        let mut deep = s.request("d", "ocf:pacemaker:Dummy", "start", "node-c");
        assert_rc(&s.executor.run(&deep).await, 0, "start on node-c");
        deep.params = params(&[("OCF_CHECK_LEVEL", "30")]);
        let failed = s.op(&deep, "monitor").await;
        assert_rc(&failed, 1, "monitor at check level 30");
        assert_eq!(failed.exit_reason.as_deref(), Some("hyperdrive quota reached"));
        assert_rc(&s.op(&deep, "stop").await, 0, "stop on node-c");
    })
    .await;
}

#[tokio::test]
async fn stateful_promotion_scores_come_back_as_attribute_updates() {
    require("/usr/lib/ocf/resource.d/pacemaker/Stateful");
    bounded(async {
        let s = setup();
        let mut stateful = s.request("db:0", "ocf:pacemaker:Stateful", "start", "node-a");
        stateful.meta = params(&[("clone-max", "2"), ("promotable", "true")]);
        let score = |value: Option<&str>| AttributeUpdate {
            name: "master-db:0".into(),
            node: "node-a".into(),
            lifetime: AttributeLifetime::Reboot,
            value: value.map(str::to_string),
        };
        let start = s.op(&stateful, "start").await;
        assert_rc(&start, 0, "start");
        assert_eq!(start.attributes, vec![score(Some("5"))]);
        assert_rc(&s.op(&stateful, "monitor").await, 0, "monitor unpromoted");
        let promote = s.op(&stateful, "promote").await;
        assert_rc(&promote, 0, "promote");
        assert_eq!(promote.attributes, vec![score(Some("10"))]);
        assert_rc(&s.op(&stateful, "monitor").await, 8, "monitor promoted");
        let demote = s.op(&stateful, "demote").await;
        assert_rc(&demote, 0, "demote");
        assert_eq!(demote.attributes, vec![score(Some("5"))]);
        let stop = s.op(&stateful, "stop").await;
        assert_rc(&stop, 0, "stop");
        assert_eq!(stop.attributes, vec![score(None)]);
        assert_rc(&s.op(&stateful, "monitor").await, 7, "monitor after stop");
    })
    .await;
}

#[tokio::test]
async fn missing_agents_are_not_installed_and_names_cannot_walk_out() {
    bounded(async {
        let s = setup();
        for agent in ["ocf:heartbeat:NoSuchAgent", "ocf:nosuchprovider:Dummy", "lsb:no-such-script"] {
            let result = s.executor.run(&s.request("x", agent, "start", "node-a")).await;
            assert_eq!((result.status, result.rc), (ExecStatus::NotInstalled, 5), "{agent}: {result:#?}");
        }
        // A name built without the parser's checks is still refused before any lookup.
        let mut sneaky = s.request("x", "ocf:heartbeat:Dummy", "start", "node-a");
        sneaky.agent = AgentRef { class: AgentClass::Ocf, provider: Some("..".into()), agent_type: "../../../bin/sh".into() };
        let result = s.executor.run(&sneaky).await;
        assert_eq!(result.status, ExecStatus::ErrorFatal, "{result:#?}");
        assert!(result.stdout.is_empty());
        let fence = s.executor.fence(&fence_request("fence_no_such_agent", "monitor", &[])).await;
        assert_eq!(fence.status, ExecStatus::NotInstalled, "{fence:#?}");
        // /usr/sbin holds more than fence agents: only fence_* names are run.
        let reboot = s.executor.fence(&fence_request("reboot", "off", &[])).await;
        assert_eq!(reboot.status, ExecStatus::ErrorFatal, "{reboot:#?}");
    })
    .await;
}

#[tokio::test]
async fn anything_reports_a_failure_after_its_process_is_killed() {
    require("/usr/lib/ocf/resource.d/heartbeat/anything");
    bounded(async {
        let s = setup();
        let pidfile = s.path("anything.pid");
        let mut anything = s.request("sleeper", "ocf:heartbeat:anything", "start", "node-a");
        anything.params = params(&[("binfile", "/bin/sleep"), ("cmdline_options", "1000"), ("pidfile", pidfile.to_str().expect("utf-8"))]);
        let start = s.op(&anything, "start").await;
        assert_rc(&start, 0, "start");
        eprintln!("heartbeat:anything start took {:?}", start.duration);
        let pid: i32 = std::fs::read_to_string(&pidfile).expect("pidfile").trim().parse().expect("pid");
        // The daemon outlives the start operation (only timeouts kill a group).
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "the started daemon is gone");
        assert_rc(&s.op(&anything, "monitor").await, 0, "monitor while running");
        let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
        assert!(killed.success());
        // The daemon was re-parented to init when the start operation's shell ended;
        // wait until init has reaped it (a zombie still answers `kill -0`).
        let gone = async {
            while Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone).await.expect("the killed process was never reaped by init");
        // resource-agents' `anything` answers OCF_ERR_GENERIC, not 7, when its pid file
        // outlives the process ("pidfile w/o process means the process died"): a
        // monitor failure either way, and what Pacemaker would record too.
        let after_kill = s.op(&anything, "monitor").await;
        assert_rc(&after_kill, 1, "monitor after the process was killed");
        assert!(after_kill.stderr.contains("No such process"), "{after_kill:#?}");
        assert_rc(&s.op(&anything, "stop").await, 0, "stop");
    })
    .await;
}

#[tokio::test]
async fn the_witness_log_proves_the_order_of_operations_across_nodes() {
    require("/usr/lib/ocf/resource.d/heartbeat/Dummy");
    bounded(async {
        let s = setup();
        let log = s.path("witness.log");
        let trigger = s.path("monitor-fails");
        let mut on_a = s.request("w", "ocf:pacer:witness", "start", "node-a");
        on_a.params = params(&[("log", log.to_str().expect("utf-8")), ("fail_monitor", trigger.to_str().expect("utf-8")), ("fail_start", "node-c")]);
        let on_b = OperationRequest { node: "node-b".into(), state_dir: s.path("nodes/node-b"), ..on_a.clone() };
        let on_c = OperationRequest { node: "node-c".into(), state_dir: s.path("nodes/node-c"), ..on_a.clone() };

        assert_rc(&s.op(&on_a, "monitor").await, 7, "probe on a");
        assert_rc(&s.op(&on_a, "start").await, 0, "start on a");
        assert_rc(&s.op(&on_a, "monitor").await, 0, "monitor on a");
        assert_rc(&s.op(&on_b, "monitor").await, 7, "probe on b: nodes have their own state");
        std::fs::write(&trigger, "").expect("trigger");
        let failed = s.op(&on_a, "monitor").await;
        assert_rc(&failed, 7, "injected monitor failure");
        assert!(failed.exit_reason.as_deref().unwrap_or("").contains("failure injected"), "{failed:#?}");
        std::fs::remove_file(&trigger).expect("untrigger");
        assert_rc(&s.op(&on_a, "stop").await, 0, "stop on a");
        assert_rc(&s.op(&on_b, "start").await, 0, "start on b");
        let failed_start = s.op(&on_c, "start").await;
        assert_rc(&failed_start, 1, "start on c fails by request");
        assert_eq!(failed_start.exit_reason.as_deref(), Some("start failure injected on node-c"));
        assert_rc(&s.op(&on_b, "stop").await, 0, "stop on b");

        let text = std::fs::read_to_string(&log).expect("witness log");
        let events: Vec<String> = text
            .lines()
            .map(|line| {
                let field = |key: &str| line.split(' ').find_map(|word| word.strip_prefix(key)).unwrap_or("-").to_string();
                format!("{} {} {} {}", field("node="), field("op="), field("phase="), field("rc="))
            })
            .collect();
        assert_eq!(
            events,
            [
                "node-a start begin -",
                "node-a start end 0",
                "node-a monitor end 7",
                "node-a stop begin -",
                "node-a stop end 0",
                "node-b start begin -",
                "node-b start end 0",
                "node-c start begin -",
                "node-c start end 1",
                "node-b stop begin -",
                "node-b stop end 0",
            ],
            "{text}"
        );
        // Times never go backwards in the file's order.
        let times: Vec<f64> = text.lines().filter_map(|line| line.split(' ').find_map(|w| w.strip_prefix("mono="))?.parse().ok()).collect();
        assert_eq!(times.len(), events.len());
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{text}");
    })
    .await;
}

#[tokio::test]
async fn the_witness_is_promotable_through_crm_master() {
    bounded(async {
        let s = setup();
        let mut witness = s.request("ms:1", "ocf:pacer:witness", "start", "node-a");
        witness.meta = params(&[("promotable", "true"), ("globally-unique", "false")]);
        let score = |value: Option<&str>| AttributeUpdate {
            name: "master-ms:1".into(),
            node: "node-a".into(),
            lifetime: AttributeLifetime::Reboot,
            value: value.map(str::to_string),
        };
        let start = s.op(&witness, "start").await;
        assert_rc(&start, 0, "start");
        assert_eq!(start.attributes, vec![score(Some("5"))]);
        let promote = s.op(&witness, "promote").await;
        assert_rc(&promote, 0, "promote");
        assert_eq!(promote.attributes, vec![score(Some("10"))]);
        assert_rc(&s.op(&witness, "monitor").await, 8, "monitor promoted");
        assert_rc(&s.op(&witness, "demote").await, 0, "demote");
        assert_rc(&s.op(&witness, "monitor").await, 0, "monitor demoted");
        let stop = s.op(&witness, "stop").await;
        assert_rc(&stop, 0, "stop");
        assert_eq!(stop.attributes, vec![score(None)]);
        assert_rc(&s.op(&witness, "promote").await, 7, "promote while stopped");
    })
    .await;
}

#[tokio::test]
async fn lsb_witness_status_codes_are_mapped_to_ocf() {
    bounded(async {
        let s = setup();
        let lsb = s.request("svc", "lsb:witness-lsb", "monitor", "node-a");
        let override_file = s.path("nodes/node-a/rsctmp/witness-lsb.status-rc");
        assert_rc(&s.op(&lsb, "monitor").await, 7, "status of a stopped service (LSB 3)");
        assert_rc(&s.op(&lsb, "stop").await, 0, "stopping a stopped service");
        assert_rc(&s.op(&lsb, "start").await, 0, "start");
        assert_rc(&s.op(&lsb, "start").await, 0, "starting a started service");
        assert_rc(&s.op(&lsb, "monitor").await, 0, "status of a running service");
        for (lsb_code, ocf_rc) in [("1", 7), ("2", 7), ("4", 1), ("150", 5)] {
            std::fs::write(&override_file, lsb_code).expect("override");
            assert_rc(&s.op(&lsb, "monitor").await, ocf_rc, &format!("LSB status {lsb_code}"));
        }
        std::fs::remove_file(&override_file).expect("remove override");
        assert_rc(&s.op(&lsb, "stop").await, 0, "stop");
        assert_rc(&s.op(&lsb, "monitor").await, 7, "status after stop");
        assert_rc(&s.op(&lsb, "promote").await, 3, "LSB has no promote");
        let log = std::fs::read_to_string(s.path("nodes/node-a/rsctmp/witness-lsb.log")).expect("lsb log");
        let ops: Vec<&str> = log.lines().filter_map(|line| line.split(' ').find_map(|w| w.strip_prefix("op="))).collect();
        assert_eq!(ops, ["stop", "start", "start", "stop"], "{log}");
        assert!(log.lines().all(|line| line.contains("node=node-a")), "{log}");
        let metadata = s.executor.metadata(&"lsb:witness-lsb".parse().expect("agent"), Duration::from_secs(5)).await;
        assert!(metadata.stdout.contains("Pacer's LSB test service"), "{}", metadata.stdout);
    })
    .await;
}

fn fence_request(agent: &str, action: &str, extra: &[(&str, &str)]) -> FenceRequest {
    FenceRequest {
        device: "fd".into(),
        agent: agent.parse().expect("fence agent"),
        action: action.into(),
        target: None,
        plug: None,
        params: params(extra),
        secret_files: BTreeMap::new(),
        timeout: Duration::from_secs(20),
    }
}

#[tokio::test]
async fn fence_dummy_monitors_powers_off_and_fails_on_request() {
    require("/usr/sbin/fence_dummy");
    bounded(async {
        let s = setup();
        let status_file = s.path("power");
        let status_path = status_file.to_str().expect("utf-8");
        let monitor = s.executor.fence(&fence_request("fence_dummy", "monitor", &[("status_file", status_path)])).await;
        assert!(monitor.succeeded("monitor"), "{monitor:#?}");
        eprintln!("fence_dummy monitor took {:?}", monitor.duration);

        std::fs::write(&status_file, "on").expect("power on");
        let mut off = fence_request("fence_dummy", "off", &[("status_file", status_path)]);
        off.target = Some("node-b".into());
        off.plug = Some("vm-b".into());
        let result = s.executor.fence(&off).await;
        assert!(result.succeeded("off"), "{result:#?}");
        assert_eq!(std::fs::read_to_string(&status_file).expect("status file"), "off");

        let status = s.executor.fence(&FenceRequest { action: "status".into(), ..off.clone() }).await;
        assert_eq!((status.status, status.rc), (ExecStatus::Done, 2), "status of a powered-off target: {status:#?}");
        assert!(status.succeeded("status"));

        let metadata = s.executor.fence(&fence_request("fence_dummy", "metadata", &[])).await;
        assert!(metadata.succeeded("metadata") && metadata.output.contains("<resource-agent name=\"fence_dummy\""), "{metadata:#?}");

        let mut failing = fence_request("fence_dummy", "off", &[("type", "fail"), ("power_timeout", "1")]);
        failing.target = Some("node-b".into());
        let failed = s.executor.fence(&failing).await;
        assert_eq!(failed.status, ExecStatus::Done, "{failed:#?}");
        assert_ne!(failed.rc, 0, "{failed:#?}");
        assert!(!failed.succeeded("off"));
    })
    .await;
}

#[tokio::test]
async fn output_is_bounded() {
    bounded(async {
        let s = setup();
        let extra = s.path("extra-agents");
        test_agent(&extra, "loud", "#!/bin/sh\nhead -c 8000000 /dev/zero | tr '\\0' x\nhead -c 3000000 /dev/zero | tr '\\0' y >&2\necho >&2\necho 'ocf-exit-reason:said a lot' >&2\nexit 0\n");
        let config = ExecConfig { work_dir: Some(s.path("work-loud")), output_limit: 64 * 1024, ocf_agent_dirs: vec![extra], ..ExecConfig::default() };
        let s = Setup { executor: Executor::new(config).expect("executor"), ..s };
        let result = s.executor.run(&s.request("loud", "ocf:test:loud", "start", "node-a")).await;
        assert_rc(&result, 0, "loud agent");
        assert!(result.stdout.len() < 64 * 1024 + 100, "stdout kept {} bytes", result.stdout.len());
        assert!(result.stdout.ends_with("[pacer: output truncated: 65536 of 8000000 bytes kept]"), "{}", &result.stdout[result.stdout.len() - 80..]);
        assert!(result.stderr.len() < 64 * 1024 + 100);
        assert_eq!(result.exit_reason.as_deref(), Some("said a lot"), "the reason is found past the limit");
        eprintln!("8 MB of output read in {:?}", result.duration);
    })
    .await;
}

#[tokio::test]
async fn the_environment_is_clean_and_the_shims_answer_queries() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = dir.path().join("agents");
        test_agent(
            &extra,
            "probe",
            r#"#!/bin/sh
echo "node=$(crm_node -n) uname=$(uname -n) sbin=$(${HA_SBIN_DIR}/crm_node -n)"
echo "query=$(crm_attribute -G -q -n color -l forever)"
echo "full=$(crm_attribute --query --name color --lifetime forever)"
echo "attrd=$(attrd_updater -Q -n color)"
crm_attribute -G -n missing -l reboot -q >/dev/null 2>&1; echo "missing=$?"
crm_attribute -N node-a -n zone -v east -l forever
crm_attribute --frobnicate -l reboot -n odd -v 1; echo "unknown-option=$?"
attrd_updater -n pingd -U 100
echo "after-set=$(crm_attribute -G -q -n pingd -l reboot)"
crm_master -l reboot -v 42
echo "score=$(crm_master -l reboot -G -q)"
crm_resource --locate -r x >/dev/null 2>&1; echo "crm_resource=$?"
env | sort > "$OCF_RESKEY_envfile"
exit 0
"#,
        );
        let executor =
            Executor::new(ExecConfig { work_dir: Some(dir.path().join("work")), ocf_agent_dirs: vec![extra], ..ExecConfig::default() }).expect("executor");
        let envfile = dir.path().join("env.txt");
        let request = OperationRequest {
            resource: "p".into(),
            agent: "ocf:test:probe".parse().expect("agent"),
            action: "start".into(),
            interval_ms: 0,
            timeout: Duration::from_secs(10),
            params: params(&[("envfile", envfile.to_str().expect("utf-8"))]),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            node: "node-a".into(),
            node_attributes: params(&[("color", "blue")]),
            state_dir: dir.path().join("state"),
        };
        let result = executor.run(&request).await;
        assert_rc(&result, 0, "probe agent");
        let lines: Vec<&str> = result.stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "node=node-a uname=node-a sbin=node-a",
                "query=blue",
                "full=scope=nodes  name=color value=blue",
                "attrd=name=\"color\" host=\"node-a\" value=\"blue\"",
                "missing=105",
                "unknown-option=0",
                "after-set=100",
                "score=42",
                "crm_resource=102",
            ],
            "stderr: {}",
            result.stderr
        );
        let reboot = |name: &str, value: &str| AttributeUpdate {
            name: name.into(),
            node: "node-a".into(),
            lifetime: AttributeLifetime::Reboot,
            value: Some(value.into()),
        };
        assert_eq!(
            result.attributes,
            [
                AttributeUpdate { name: "zone".into(), node: "node-a".into(), lifetime: AttributeLifetime::Forever, value: Some("east".into()) },
                reboot("odd", "1"),
                reboot("pingd", "100"),
                reboot("master-p", "42"),
            ]
        );
        let env = std::fs::read_to_string(&envfile).expect("env dump");
        let names: Vec<&str> = env.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).filter(|name| !name.starts_with("OCF_")).collect();
        // `sh` adds PWD itself.
        assert_eq!(
            names,
            [
                "HA_RSCTMP",
                "HA_SBIN_DIR",
                "HA_VARRUN",
                "LANG",
                "PACER_ATTR_UPDATES",
                "PACER_EXECUTOR",
                "PACER_NODE_ATTRIBUTES",
                "PACER_NODE_NAME",
                "PACER_RESOURCE",
                "PATH",
                "PWD"
            ],
            "{env}"
        );
        assert!(env.contains(&format!("PATH={}:", executor.shim_dir().display())), "{env}");
    })
    .await;
}

#[tokio::test]
async fn an_agent_that_ignores_sigterm_is_killed_with_its_children() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = dir.path().join("agents");
        // The agent and its child both ignore SIGTERM; only SIGKILL to the group ends them.
        test_agent(&extra, "stubborn", "#!/bin/sh\ntrap '' TERM\nsh -c \"trap '' TERM; sleep 300; echo \\$OCF_RESKEY_marker\" &\nsleep 300\n");
        let config = ExecConfig {
            work_dir: Some(dir.path().join("work")),
            kill_grace: Duration::from_millis(300),
            ocf_agent_dirs: vec![extra],
            ..ExecConfig::default()
        };
        let executor = Executor::new(config).expect("executor");
        let marker = format!("stubborn-marker-{}", std::process::id());
        let request = OperationRequest {
            resource: "s".into(),
            agent: "ocf:test:stubborn".parse().expect("agent"),
            action: "start".into(),
            interval_ms: 0,
            timeout: Duration::from_millis(500),
            params: params(&[("marker", &marker)]),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            node: "node-a".into(),
            node_attributes: BTreeMap::new(),
            state_dir: dir.path().join("state"),
        };
        let started = Instant::now();
        let result = executor.run(&request).await;
        assert_eq!(result.status, ExecStatus::Timeout, "{result:#?}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        let left = processes_mentioning(&marker);
        assert!(left.is_empty(), "processes of the stubborn agent remain: {left:?}");
    })
    .await;
}

/// A systemd-class resource's unit is ordered before the agent's own unit while it
/// runs: a runtime drop-in written and systemd reloaded before `systemctl start`,
/// removed and reloaded after a successful stop. systemd is not run: `systemctl` is a
/// script logging what it was asked (and whether the drop-in was there at each
/// reload), and the runtime unit directory is a temporary one.
#[tokio::test]
async fn systemd_units_are_ordered_before_the_agent_while_they_run() {
    use std::os::unix::fs::PermissionsExt;
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_dir = dir.path().join("run-systemd-system");
        std::fs::create_dir_all(&run_dir).expect("mkdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let log = dir.path().join("systemctl.log");
        let drop_in = run_dir.join("web.service.d/50-pacer.conf");
        let systemctl = bin.join("systemctl");
        std::fs::write(
            &systemctl,
            format!(
                "#!/bin/sh\nif [ \"$1\" = daemon-reload ]; then if [ -f '{drop_in}' ]; then echo 'daemon-reload (drop-in present)'; else echo 'daemon-reload (no drop-in)'; fi >> '{log}'; exit 0; fi\necho \"$*\" >> '{log}'\n",
                drop_in = drop_in.display(),
                log = log.display()
            ),
        )
        .expect("write systemctl");
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let config = ExecConfig {
            work_dir: Some(dir.path().join("work")),
            system_path: format!("{}:/usr/bin:/bin", bin.display()),
            systemd_run_dir: run_dir.clone(),
            ..ExecConfig::default()
        };
        let executor = Executor::new(config).expect("executor");
        let request = OperationRequest {
            resource: "web".into(),
            agent: "systemd:web".parse().expect("agent"),
            action: "start".into(),
            interval_ms: 0,
            timeout: Duration::from_secs(20),
            params: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            meta: BTreeMap::new(),
            node: "node-a".into(),
            node_attributes: BTreeMap::new(),
            state_dir: dir.path().join("state"),
        };
        let logged = || std::fs::read_to_string(&log).unwrap_or_default();

        assert_rc(&executor.run(&request).await, 0, "start");
        assert_eq!(logged(), "daemon-reload (drop-in present)\nstart web.service\n");
        let text = std::fs::read_to_string(&drop_in).expect("the drop-in is written");
        assert!(text.contains("[Unit]\nDescription=Cluster controlled web.service\nBefore=pacer-agent.service\n"), "{text}");
        assert!(text.contains("[Service]\nRestart=no\n"), "{text}");

        let monitor = OperationRequest { action: "monitor".into(), ..request.clone() };
        assert_rc(&executor.run(&monitor).await, 0, "monitor");
        assert!(drop_in.exists(), "a monitor leaves the drop-in");

        let stop = OperationRequest { action: "stop".into(), ..request.clone() };
        assert_rc(&executor.run(&stop).await, 0, "stop");
        assert!(!drop_in.exists() && !run_dir.join("web.service.d").exists(), "the drop-in and its directory are removed");
        assert_eq!(
            logged(),
            "daemon-reload (drop-in present)\nstart web.service\nis-active --quiet web.service\nstop web.service\ndaemon-reload (no drop-in)\n"
        );
        // Stopping what is stopped needs no reload.
        assert_rc(&executor.run(&stop).await, 0, "stop again");
        assert!(logged().ends_with("stop web.service\ndaemon-reload (no drop-in)\nstop web.service\n"), "{}", logged());
    })
    .await;
}

/// A script that records it ran by creating `marker`.
fn marker_script(dir: &Path, name: &str, marker: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display())).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn fence_options_that_name_programs_are_refused_before_anything_runs() {
    require("/usr/sbin/fence_ipmilan");
    bounded(async {
        let s = setup();
        let marker = s.path("ran");
        let script = marker_script(s.dir.path(), "evil", &marker);
        let script = script.to_str().expect("utf-8 path");
        let cases = [
            // fence-agents run `ipmitool_path` as root (fencing.py's run_command).
            fence_request("fence_ipmilan", "monitor", &[("ip", "127.0.0.1"), ("username", "u"), ("password", "p"), ("ipmitool_path", script)]),
            fence_request("fence_ipmilan", "monitor", &[("ip", "127.0.0.1"), ("username", "u"), ("password-script", script)]),
            // fence_legacy runs whatever `stonith=` names, whether named itself or
            // run for a plugin.
            fence_request("fence_legacy", "monitor", &[("plugin", "external/ssh"), ("stonith", script)]),
            fence_request("external/ssh", "monitor", &[("hostlist", "n1"), ("stonith", script)]),
            // A secret parameter is an option too: `{secretFile: …}` under a refused name.
            {
                let mut request = fence_request("fence_ipmilan", "monitor", &[("ip", "127.0.0.1"), ("username", "u"), ("password", "p")]);
                request.secret_files.insert("passwd_script".into(), s.path("secret").display().to_string());
                request
            },
        ];
        for request in &cases {
            let result = s.executor.fence(request).await;
            assert_eq!(result.status, ExecStatus::ErrorFatal, "{request:?}: {result:#?}");
            assert!(result.stderr.starts_with("refuse fence"), "{result:#?}");
        }
        assert!(!marker.exists(), "a refused option's program ran");
        // A plugin that is not installed is not passed to fence_legacy at all.
        let missing = s.executor.fence(&fence_request("external/no_such_plugin", "monitor", &[])).await;
        assert_eq!(missing.status, ExecStatus::NotInstalled, "{missing:#?}");
        assert!(missing.stderr.contains("/usr/lib/stonith/plugins/external"), "{missing:#?}");
    })
    .await;
}

/// Whether this test runs as root (it must, to hand a directory to another user).
fn running_as_root() -> bool {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid of `nobody` on Debian: the "another user" of these tests.
const NOBODY: u32 = 65534;

#[test]
fn a_work_dir_another_user_made_first_is_refused_and_shims_are_not_written_through_symlinks() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A symlink planted where a shim goes: the file it points to must not change.
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("bin")).expect("mkdir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").expect("write");
    std::os::unix::fs::symlink(&victim, work.join("bin/crm_node")).expect("symlink");
    let executor = Executor::new(ExecConfig { work_dir: Some(work.clone()), ..ExecConfig::default() }).expect("executor");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "untouched", "a shim was written through a symlink");
    assert!(!std::fs::symlink_metadata(work.join("bin/crm_node")).expect("stat").file_type().is_symlink());
    drop(executor);
    // A symlink in place of the work dir itself is refused.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&work, &link).expect("symlink");
    assert!(Executor::new(ExecConfig { work_dir: Some(link), ..ExecConfig::default() }).is_err(), "a symlinked work dir was used");
    if !running_as_root() {
        eprintln!("skipping the other-user cases: only root can hand a directory to another user");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    // A work dir another user made is refused.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::os::unix::fs::chown(&foreign, Some(NOBODY), Some(NOBODY)).expect("chown");
    let refused = Executor::new(ExecConfig { work_dir: Some(foreign.clone()), ..ExecConfig::default() });
    assert!(format!("{:?}", refused.as_ref().err()).contains("owned by uid 65534"), "{refused:?}");
    // The default work dir under /tmp: names another user took first are skipped.
    let taken: Vec<PathBuf> = (0..8).map(|instance| std::env::temp_dir().join(format!("pacer-exec-{}-{instance}", std::process::id()))).collect();
    for path in &taken {
        std::fs::create_dir(path).expect("pre-create");
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    let executor = Executor::new(ExecConfig::default());
    for path in &taken {
        let _ = std::fs::remove_dir_all(path);
    }
    let executor = executor.expect("executor");
    let work_dir = executor.shim_dir().parent().expect("work dir").to_path_buf();
    assert!(!taken.contains(&work_dir), "the executor used {} which another user made", work_dir.display());
    let metadata = std::fs::symlink_metadata(&work_dir).expect("stat");
    assert_eq!((metadata.uid(), metadata.mode() & 0o777), (0, 0o700), "{}", work_dir.display());
}

/// An OCF agent whose start leaves a `setsid sleep` behind (recording its pid in
/// `$OCF_RESKEY_pidfile`), and whose stop reports success without touching it.
const ESCAPING_AGENT: &str = r#"#!/bin/sh
case "$1" in
    start) setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > "$OCF_RESKEY_pidfile"; exit 0 ;;
    stop) exit 0 ;;
    monitor) exit 7 ;;
    meta-data) echo '<resource-agent name="escaping"/>'; exit 0 ;;
    *) exit 3 ;;
esac
"#;

fn live_pid(pidfile: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
    (state != "Z").then_some(pid)
}

#[tokio::test]
async fn a_stop_kills_what_the_agent_started_outside_its_process_group() {
    require("/usr/bin/setsid");
    bounded(async {
        let s = setup();
        let extra = s.path("extra-ocf");
        test_agent(&extra, "escaping", ESCAPING_AGENT);
        let config = ExecConfig { work_dir: Some(s.path("work-escaping")), ocf_agent_dirs: vec![extra], ..ExecConfig::default() };
        let executor = Executor::new(config).expect("executor");
        let mut web = s.request("web", "ocf:test:escaping", "start", "node-a");
        web.params = params(&[("pidfile", s.path("web.pid").to_str().expect("utf-8"))]);
        // Another resource of the same agent, left running: its process must survive.
        let mut other = s.request("other", "ocf:test:escaping", "start", "node-a");
        other.params = params(&[("pidfile", s.path("other.pid").to_str().expect("utf-8"))]);
        for request in [&web, &other] {
            assert_rc(&executor.run(request).await, 0, "start");
        }
        let escaped = live_pid(&s.path("web.pid")).expect("the setsid sleep runs after start");
        let bystander = live_pid(&s.path("other.pid")).expect("the other resource's sleep runs");
        let stop = executor.run(&OperationRequest { action: "stop".into(), ..web.clone() }).await;
        assert_rc(&stop, 0, "stop");
        let started = Instant::now();
        while live_pid(&s.path("web.pid")).is_some() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(live_pid(&s.path("web.pid")), None, "pid {escaped} of the stopped resource still runs");
        assert_eq!(live_pid(&s.path("other.pid")), Some(bystander), "another resource's process was killed");
        let stop_other = executor.run(&OperationRequest { action: "stop".into(), ..other.clone() }).await;
        assert_rc(&stop_other, 0, "stop other");
        let started = Instant::now();
        while live_pid(&s.path("other.pid")).is_some() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(live_pid(&s.path("other.pid")), None, "pid {bystander} survived its stop");
    })
    .await;
}
