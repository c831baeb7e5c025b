//! Scheduler benchmark (`make bench`, or `cargo bench --bench schedule`): generated
//! Pacemaker CIBs (10 × 500, 100 × 5,000 and 1,000 × 10,000 nodes × resources, with
//! groups, clones, a promotable clone, constraints, fail counts and one failed node
//! that must be fenced), timed through `pacer::cib::import` and
//! `pacer::scheduler::schedule` in this process, then as whole processes side by side:
//! `pacer simulate --cib FILE --json` (wall time of runs on their own, then peak RSS
//! as GNU time's `%M` in one more run under it) and Pacemaker's `crm_simulate -R -Q -x
//! FILE` on the same file (once, under GNU time: its extra exec, about a millisecond,
//! is in crm_simulate's seconds). Each run is waited for blocking, so its end is seen
//! when it comes. One more `pacer simulate`
//! run with `--timings` gives the phase profile (read, XML parse, import, schedule's
//! phases, output). Prints a table (also written to target/bench-schedule.txt) with the
//! ratios crm_simulate / Pacer. Goals (issue 19): 10,000 resources on 1,000
//! nodes in under 0.25 s and 150 MB as a whole process; at least 300× faster than
//! crm_simulate on 100 × 5,000, both as whole processes.
//!
//! Environment:
//! - `PACER_BENCH_SIZES`: sizes to run, e.g. `10x500,100x5000` (default: all three);
//! - `PACER_BENCH_RUNS`: Pacer runs per size, the median is reported (default 5;
//!   a single run when one run takes more than 5 s);
//! - `PACER_BENCH_CRM_TIMEOUT`: seconds before crm_simulate is killed (default 600);
//! - `PACER_BENCH_CRM_SIMULATE`: the crm_simulate binary (default: `crm_simulate` on
//!   PATH, then /usr/sbin/crm_simulate); `none` skips it;
//! - `PACER_BENCH_CIB_DIR`: keep the generated CIBs there (`bench-NxR.xml`) instead of
//!   a temporary directory, e.g. to profile `pacer simulate --cib` on them.
//!
//! The generated CIB sets `enable-startup-probes=false`: Pacer has no probes, and
//! without it crm_simulate would schedule a probe of every resource on every node
//! without history for it (10 million at the largest size), which a running cluster
//! would long have done.
//!
//! Asserts nothing: a plan that looks wrong (invariant violations, nothing placed, the
//! failed node not fenced) is reported as a warning line.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pacer::api::records::NodeState;
use pacer::scheduler::{Plan, Snapshot, schedule};

/// The decision time written as `<cib execution-date>`.
const NOW: i64 = 1_700_000_000;
const UUID: &str = "9d0bfd83-75ef-4da1-bc8d-8ee972b05fc3";
const ANONYMOUS_CLONES: usize = 3;
/// Operation digests as Pacemaker 2.1.5 (feature set 3.16.1) computes them for these
/// definitions (taken from `crm_simulate -S` output): without them crm_simulate
/// restarts every resource "due to resource definition change".
const DIGEST_START: &str = "f2317cad3d54cec5d7d7aa7d0bf35cf8";
const DIGEST_MONITOR: &str = "4811cef7f7f94e3a35a70be7916cb2fd";
const DIGEST_FENCE_START: &str = "84fbec09d1b8505673b3cd47ed4d2515";
const DIGEST_FENCE_MONITOR: &str = "8e6439d3df4a1ebf435582ffd25161e2";

/// xorshift64*: deterministic, seeded per size.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 1000 < percent * 10
    }
    /// True with probability `permille`/1000.
    fn chance_permille(&mut self, permille: u64) -> bool {
        self.next() % 1000 < permille
    }
}

/// A placement unit: a plain primitive or a group of three.
struct Unit {
    id: String,
    members: Vec<String>,
    /// Node index it runs on now, if any.
    running: Option<usize>,
}

/// Facts about a generated CIB that the sanity check needs.
struct Generated {
    xml: String,
    /// Configured primitives (clone primitives once each, the fence device not counted).
    resources: usize,
    failed_node: String,
}

fn node_name(index: usize) -> String {
    format!("node-{index:04}")
}

/// Writes the history of one operation.
// The arguments are the fields of one CIB `lrm_rsc_op` element, written in its order.
#[allow(clippy::too_many_arguments)]
fn op(out: &mut String, rsc: &str, node: &str, operation: &str, interval_ms: u64, call_id: &mut u64, rc: i32, expected: i32) {
    *call_id += 1;
    let key = format!("{}:{}:{expected}:{UUID}", *call_id % 997, 1 + *call_id / 997);
    let id = if interval_ms == 0 { format!("{rsc}_last_0") } else { format!("{rsc}_{operation}_{interval_ms}") };
    let changed = NOW - 3600 + (*call_id % 1800) as i64;
    let digest = match (rsc == "fence0", interval_ms) {
        (true, 0) => DIGEST_FENCE_START,
        (true, _) => DIGEST_FENCE_MONITOR,
        (false, 0) => DIGEST_START,
        (false, _) => DIGEST_MONITOR,
    };
    let _ = writeln!(
        out,
        r#"            <lrm_rsc_op id="{id}" operation_key="{rsc}_{operation}_{interval_ms}" operation="{operation}" crm-debug-origin="do_update_resource" crm_feature_set="3.16.1" transition-key="{key}" transition-magic="0:{rc};{key}" on_node="{node}" call-id="{call_id}" rc-code="{rc}" op-status="0" interval="{interval_ms}" last-rc-change="{changed}" exec-time="12" queue-time="0" op-digest="{digest}"/>"#
    );
}

fn lrm_resource_open(out: &mut String, rsc: &str, agent_type: &str) {
    let _ = writeln!(out, r#"          <lrm_resource id="{rsc}" type="{agent_type}" class="ocf" provider="pacemaker">"#);
}

fn primitive(out: &mut String, indent: &str, id: &str) {
    let _ = writeln!(
        out,
        r#"{indent}<primitive id="{id}" class="ocf" provider="pacemaker" type="Dummy">
{indent}  <operations>
{indent}    <op id="{id}-monitor-10s" name="monitor" interval="10s" timeout="20s"/>
{indent}  </operations>
{indent}</primitive>"#
    );
}

/// A cluster of `nodes` nodes and about `resources` resources.
fn generate(nodes: usize, resources: usize) -> Generated {
    let mut rng = Rng::new((nodes as u64) << 32 | resources as u64);
    let failed = nodes / 2;
    let fence_node = if failed == 0 { 1 } else { 0 };
    let clone_ids: Vec<String> = (0..ANONYMOUS_CLONES).map(|c| format!("base{c}")).collect();
    let promotable = "stateful";
    let promoted_on = failed; // the promoted instance is lost with the node

    // Units: ~25% of the resources in groups of three, the rest plain primitives.
    let budget = resources.saturating_sub(ANONYMOUS_CLONES + 1);
    let groups = budget / 4 / 3;
    let plain = budget - groups * 3;
    let mut units: Vec<Unit> = Vec::with_capacity(plain + groups);
    let (mut g, mut p) = (0, 0);
    while g < groups || p < plain {
        // Interleave: one group after every ~(plain/groups) primitives.
        if g < groups && (p >= plain || rng.below(plain + groups) < groups) {
            units.push(Unit { id: format!("grp{g}"), members: (0..3).map(|m| format!("g{g}m{m}")).collect(), running: None });
            g += 1;
        } else {
            units.push(Unit { id: format!("rsc{p}"), members: vec![format!("rsc{p}")], running: None });
            p += 1;
        }
    }

    // Constraints, decided before the placements so that these can follow them.
    let mut constraints = String::new();
    let mut preferred: Vec<Option<usize>> = vec![None; units.len()];
    let mut banned: Vec<Option<usize>> = vec![None; units.len()];
    let mut with: Vec<Option<(usize, bool)>> = vec![None; units.len()];
    for index in 0..units.len() {
        let id = units[index].id.clone();
        if rng.chance(20) {
            let node = rng.below(nodes);
            let score = 50 + 50 * rng.below(10);
            preferred[index] = Some(node);
            let _ = writeln!(constraints, r#"      <rsc_location id="loc-{id}" rsc="{id}" node="{}" score="{score}"/>"#, node_name(node));
        }
        if rng.chance(3) {
            let node = rng.below(nodes);
            if preferred[index] != Some(node) {
                banned[index] = Some(node);
                let _ = writeln!(constraints, r#"      <rsc_location id="ban-{id}" rsc="{id}" node="{}" score="-INFINITY"/>"#, node_name(node));
            }
        }
        if index > 0 && rng.chance(5) {
            // Colocated with an earlier unit: acyclic.
            let target = index - 1 - rng.below(index.min(50));
            let mandatory = rng.below(3) == 0;
            with[index] = Some((target, mandatory));
            let score = if mandatory { "INFINITY".to_string() } else { format!("{}", 100 + 100 * rng.below(5)) };
            let _ = writeln!(constraints, r#"      <rsc_colocation id="col-{id}" rsc="{id}" with-rsc="{}" score="{score}"/>"#, units[target].id);
        }
        if index > 0 && rng.chance(5) {
            // Mandatory order from an earlier unit to this one: acyclic.
            let first = index - 1 - rng.below(index.min(200));
            let _ = writeln!(constraints, r#"      <rsc_order id="ord-{id}" first="{}" then="{id}" kind="Mandatory"/>"#, units[first].id);
        }
        if rng.chance_permille(5) {
            let _ = writeln!(
                constraints,
                r#"      <rsc_order id="after-clone-{id}" first="{}-clone" then="{id}" kind="Mandatory"/>"#,
                clone_ids[rng.below(ANONYMOUS_CLONES)]
            );
        }
    }
    // A few units want the promoted instance; one avoids it.
    for (n, index) in (0..units.len()).step_by((units.len() / 4).max(1)).take(4).enumerate() {
        let id = &units[index].id;
        let (score, role) = if n == 0 { ("-INFINITY", "Promoted") } else { ("INFINITY", "Promoted") };
        let _ = writeln!(
            constraints,
            r#"      <rsc_colocation id="col-{id}-promoted" rsc="{id}" with-rsc="{promotable}-clone" with-rsc-role="{role}" score="{score}"/>"#
        );
    }

    // Placements: 90% of the units run; a mandatory colocation puts the dependent with
    // its target, a preference is mostly followed, a ban always.
    for index in 0..units.len() {
        if !rng.chance(90) {
            continue;
        }
        let mut node = match (with[index], preferred[index]) {
            (Some((target, true)), _) if units[target].running.is_some() => units[target].running,
            (_, Some(node)) if rng.chance(80) => Some(node),
            _ => Some(rng.below(nodes)),
        };
        if node.is_some() && node == banned[index] {
            node = Some((banned[index].unwrap() + 1) % nodes);
        }
        units[index].running = node;
    }

    // Status, per node: history, attributes.
    let mut per_node: Vec<String> = vec![String::new(); nodes];
    let mut attributes: Vec<String> = vec![String::new(); nodes];
    let mut call_ids: Vec<u64> = vec![10; nodes];
    for unit in &units {
        let Some(node) = unit.running else { continue };
        let name = node_name(node);
        for member in &unit.members {
            let out = &mut per_node[node];
            lrm_resource_open(out, member, "Dummy");
            op(out, member, &name, "start", 0, &mut call_ids[node], 0, 0);
            // 0.2% have just failed their monitor; 0.5% carry an older fail count.
            if node != failed && rng.chance_permille(2) {
                op(out, member, &name, "monitor", 10_000, &mut call_ids[node], 7, 0);
                let _ = writeln!(
                    attributes[node],
                    r#"          <nvpair id="status-{node}-fail-count-{member}.monitor_10000" name="fail-count-{member}#monitor_10000" value="1"/>
          <nvpair id="status-{node}-last-failure-{member}.monitor_10000" name="last-failure-{member}#monitor_10000" value="{}"/>"#,
                    NOW - 60
                );
            } else {
                op(out, member, &name, "monitor", 10_000, &mut call_ids[node], 0, 0);
                if rng.chance_permille(5) {
                    let count = 1 + rng.below(3);
                    let _ = writeln!(
                        attributes[node],
                        r#"          <nvpair id="status-{node}-fail-count-{member}.monitor_10000" name="fail-count-{member}#monitor_10000" value="{count}"/>"#
                    );
                }
            }
            out.push_str("          </lrm_resource>\n");
        }
    }
    // Clones: the anonymous ones run everywhere, the promotable one too, promoted once.
    for node in 0..nodes {
        let name = node_name(node);
        for clone in &clone_ids {
            let out = &mut per_node[node];
            lrm_resource_open(out, clone, "Dummy");
            op(out, clone, &name, "start", 0, &mut call_ids[node], 0, 0);
            op(out, clone, &name, "monitor", 10_000, &mut call_ids[node], 0, 0);
            out.push_str("          </lrm_resource>\n");
        }
        let out = &mut per_node[node];
        lrm_resource_open(out, promotable, "Stateful");
        if node == promoted_on {
            op(out, promotable, &name, "promote", 0, &mut call_ids[node], 0, 0);
            op(out, promotable, &name, "monitor", 10_000, &mut call_ids[node], 8, 8);
        } else {
            op(out, promotable, &name, "start", 0, &mut call_ids[node], 0, 0);
            op(out, promotable, &name, "monitor", 11_000, &mut call_ids[node], 0, 0);
        }
        out.push_str("          </lrm_resource>\n");
        let score = if node == promoted_on { 100 } else { 5 + rng.below(20) };
        let _ = writeln!(attributes[node], r#"          <nvpair id="status-{node}-master-{promotable}" name="master-{promotable}" value="{score}"/>"#);
    }

    // The document.
    let mut xml = String::with_capacity(resources * 1200 + nodes * 2000);
    let _ = writeln!(
        xml,
        r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.7" epoch="100" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="{}" execution-date="{NOW}">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-symmetric-cluster" name="symmetric-cluster" value="true"/>
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="true"/>
        <nvpair id="opt-stonith-action" name="stonith-action" value="reboot"/>
        <nvpair id="opt-no-quorum-policy" name="no-quorum-policy" value="stop"/>
        <nvpair id="opt-enable-startup-probes" name="enable-startup-probes" value="false"/>
      </cluster_property_set>
    </crm_config>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-options-migration-threshold" name="migration-threshold" value="3"/>
        <nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="100"/>
      </meta_attributes>
    </rsc_defaults>
    <nodes>"#,
        fence_node + 1
    );
    for node in 0..nodes {
        let _ = writeln!(xml, r#"      <node id="{}" uname="{}"/>"#, node + 1, node_name(node));
    }
    xml.push_str("    </nodes>\n    <resources>\n");
    xml.push_str(
        r#"      <primitive id="fence0" class="stonith" type="fence_dummy">
        <instance_attributes id="fence0-params">
          <nvpair id="fence0-mode" name="mode" value="pass"/>
        </instance_attributes>
        <operations>
          <op id="fence0-monitor-60s" name="monitor" interval="60s"/>
        </operations>
      </primitive>
"#,
    );
    for (c, clone) in clone_ids.iter().enumerate() {
        let _ = writeln!(
            xml,
            r#"      <clone id="{clone}-clone">
        <meta_attributes id="{clone}-clone-meta">
          <nvpair id="{clone}-clone-interleave" name="interleave" value="{}"/>
        </meta_attributes>"#,
            c % 2 == 0
        );
        primitive(&mut xml, "        ", clone);
        xml.push_str("      </clone>\n");
    }
    let _ = writeln!(
        xml,
        r#"      <clone id="{promotable}-clone">
        <meta_attributes id="{promotable}-clone-meta">
          <nvpair id="{promotable}-clone-promotable" name="promotable" value="true"/>
          <nvpair id="{promotable}-clone-promoted-max" name="promoted-max" value="1"/>
        </meta_attributes>
        <primitive id="{promotable}" class="ocf" provider="pacemaker" type="Stateful">
          <operations>
            <op id="{promotable}-monitor-10s" name="monitor" interval="10s" role="Promoted" timeout="20s"/>
            <op id="{promotable}-monitor-11s" name="monitor" interval="11s" role="Unpromoted" timeout="20s"/>
          </operations>
        </primitive>
      </clone>"#
    );
    for unit in &units {
        if unit.members.len() == 1 {
            primitive(&mut xml, "      ", &unit.id);
        } else {
            let _ = writeln!(xml, r#"      <group id="{}">"#, unit.id);
            for member in &unit.members {
                primitive(&mut xml, "        ", member);
            }
            xml.push_str("      </group>\n");
        }
    }
    xml.push_str("    </resources>\n    <constraints>\n");
    xml.push_str(&constraints);
    xml.push_str("    </constraints>\n  </configuration>\n  <status>\n");
    for node in 0..nodes {
        let name = node_name(node);
        let id = node + 1;
        if node == failed {
            let _ = writeln!(
                xml,
                r#"    <node_state id="{id}" uname="{name}" in_ccm="false" crmd="offline" crm-debug-origin="post_cache_update" join="down" expected="member">"#
            );
        } else {
            let _ = writeln!(
                xml,
                r#"    <node_state id="{id}" uname="{name}" in_ccm="true" crmd="online" crm-debug-origin="do_update_resource" join="member" expected="member">"#
            );
        }
        let _ = writeln!(
            xml,
            r#"      <transient_attributes id="{id}">
        <instance_attributes id="status-{id}">
{}        </instance_attributes>
      </transient_attributes>
      <lrm id="{id}">
        <lrm_resources>"#,
            attributes[node]
        );
        if node == fence_node {
            let mut call_id = 1;
            xml.push_str("          <lrm_resource id=\"fence0\" type=\"fence_dummy\" class=\"stonith\">\n");
            op(&mut xml, "fence0", &name, "start", 0, &mut call_id, 0, 0);
            op(&mut xml, "fence0", &name, "monitor", 60_000, &mut call_id, 0, 0);
            xml.push_str("          </lrm_resource>\n");
        }
        xml.push_str(&per_node[node]);
        xml.push_str("        </lrm_resources>\n      </lrm>\n    </node_state>\n");
    }
    xml.push_str("  </status>\n</cib>\n");
    Generated { xml, resources: ANONYMOUS_CLONES + 1 + plain + groups * 3, failed_node: node_name(failed) }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Problems with a plan, for a warning line.
fn sanity(plan: &Plan, snapshot: &Snapshot, generated: &Generated) -> Vec<String> {
    let mut problems: Vec<String> = plan.check(snapshot).into_iter().take(3).collect();
    let placed = plan.resources.iter().filter(|resource| !resource.next.is_empty()).count();
    if placed * 2 < generated.resources {
        problems.push(format!("only {placed} resource instances placed for {} resources", generated.resources));
    }
    if !plan.fencing.iter().any(|fencing| fencing.node == generated.failed_node) {
        problems.push(format!("{} is not fenced", generated.failed_node));
    }
    // The final state: offline once fenced (unclean if it could not be).
    let state = plan.nodes.iter().find(|node| node.name == generated.failed_node).map(|node| node.state);
    if !matches!(state, Some(NodeState::Offline | NodeState::Unclean)) {
        problems.push(format!("{} is {:?}, not offline or unclean", generated.failed_node, state.map(NodeState::as_str)));
    }
    if plan.resources.iter().any(|resource| resource.next.iter().any(|placement| placement.node == generated.failed_node)) {
        problems.push(format!("something is placed on the failed node {}", generated.failed_node));
    }
    problems
}

/// GNU time (Debian's `time` package), for a command's own peak RSS.
const GNU_TIME: &str = "/usr/bin/time";

/// How a child process ended: wall seconds and peak resident memory (KiB, as
/// `/usr/bin/time -f %M` reports it), or why there is no figure.
enum Outcome {
    Finished { seconds: f64, peak_kib: u64 },
    Timeout(f64),
    Failed(String),
}

fn crm_simulate_binary() -> Option<PathBuf> {
    match std::env::var("PACER_BENCH_CRM_SIMULATE") {
        Ok(value) if value == "none" => return None,
        Ok(value) if !value.is_empty() => return Some(PathBuf::from(value)),
        _ => {}
    }
    let on_path =
        std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("crm_simulate")).find(|candidate| candidate.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/crm_simulate")).filter(|candidate| candidate.is_file()))
}

/// Runs `command` as a whole process (stdout discarded, stderr kept), killed by
/// process group after `timeout`, with its wall time and its own peak RSS. Returns the outcome and
/// what it wrote on stderr.
fn run_measured(command: Command, timeout: Duration, peak: Peak) -> (Outcome, String) {
    // Linux keeps a process's peak RSS across exec, and a child spawned from this
    // (big) process starts out sharing its pages: wait4 alone would report this
    // process's peak. GNU time, small itself, reports the command's own (`%M`, the
    // figure the issue uses); without it wait4's figure is an upper bound. Its own
    // start (an exec and a fork more) is timed with the command, so a run that only
    // times a short command goes without it (`Peak::NotNeeded`).
    let wrap = peak == Peak::Measured && Path::new(GNU_TIME).is_file();
    let peak_file = if wrap { tempfile::NamedTempFile::new().ok() } else { None };
    let mut command = match &peak_file {
        Some(file) => {
            let mut wrapped = Command::new(GNU_TIME);
            wrapped.args(["-f", "%M", "-o"]).arg(file.path()).arg(command.get_program()).args(command.get_args());
            for (key, value) in command.get_envs() {
                match value {
                    Some(value) => wrapped.env(key, value),
                    None => wrapped.env_remove(key),
                };
            }
            wrapped
        }
        None => command,
    };
    let started = Instant::now();
    // Its own process group, so a timeout ends the command under GNU time too.
    let mut child = match command.process_group(0).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(error) => return (Outcome::Failed(format!("cannot start {:?}: {error}", command.get_program())), String::new()),
    };
    // Drain stderr on a thread so a chatty run cannot block on a full pipe.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    // The wait blocks, so the end is seen when it comes (a poll every few
    // milliseconds added up to its period to a 20 ms run); a thread ends the command's
    // group at the timeout unless told first that it ended. The child is waited for
    // without being reaped (`WNOWAIT`) until the thread has stopped, so its PID and
    // group cannot be another process's when the thread kills them.
    let (ended, ended_seen) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if ended_seen.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: SIGKILL to the process group this child leads (its PID, not
            // reaped before this thread is joined), nothing else.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            return true;
        }
        false
    });
    let exited = loop {
        // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for this child's PID only, with a pointer to a live local.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) } == 0 {
            break Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            break Err(error);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    // Not when the child is already gone (ECHILD): its PID may be another's by now.
    if exited.as_ref().is_err_and(|error| error.raw_os_error() != Some(libc::ECHILD)) {
        // SAFETY: as the watchdog's: the child is not reaped.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = ended.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps this child's PID only (it has ended), with pointers to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let stderr = reader.join().unwrap_or_default();
    if let Err(error) = exited {
        return (Outcome::Failed(format!("waitid: {error}")), stderr);
    }
    if reaped != pid {
        return (Outcome::Failed("wait4: the ended child could not be reaped".to_string()), stderr);
    }
    let succeeded = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // A command that ended as the timeout came is a finished one.
    if timed_out && !succeeded {
        return (Outcome::Timeout(seconds), String::new());
    }
    if succeeded {
        let measured = peak_file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file.path()).ok())
            .and_then(|text| text.lines().rev().find_map(|line| line.trim().parse::<u64>().ok()));
        return (Outcome::Finished { seconds, peak_kib: measured.unwrap_or(usage.ru_maxrss.max(0) as u64) }, stderr);
    }
    let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("").to_string();
    (Outcome::Failed(format!("wait status {status} after {seconds:.2}s: {last}")), stderr)
}

/// Whether a run measures the command's peak memory (under GNU time) or its time only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peak {
    Measured,
    NotNeeded,
}

/// `crm_simulate -R -Q -x FILE`.
fn crm_simulate_command(binary: &Path, cib: &Path) -> Command {
    let mut command = Command::new(binary);
    command.args(["-R", "-Q", "-x"]).arg(cib).env_remove("CIB_file").env_remove("CIB_shadow");
    command
}

/// `pacer simulate --cib FILE --json` (the binary this benchmark was built with), with
/// `--timings` when asked.
fn pacer_simulate_command(cib: &Path, timings: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
    command.args(["simulate", "--cib"]).arg(cib).arg("--json");
    if timings {
        command.arg("--timings");
    }
    command
}

/// Pacer as a whole process, `runs` times: the median wall time; then one run under
/// GNU time for the peak RSS (its start is not in the walls), and one with
/// `--timings` for the phase profile (its lines).
fn pacer_whole_process(cib: &Path, runs: usize) -> Result<(f64, u64, Vec<String>), String> {
    let mut walls = Vec::new();
    for _ in 0..runs {
        match run_measured(pacer_simulate_command(cib, false), Duration::from_secs(600), Peak::NotNeeded).0 {
            Outcome::Finished { seconds, .. } => walls.push(seconds),
            Outcome::Timeout(seconds) => return Err(format!("pacer simulate timed out after {seconds:.0}s")),
            Outcome::Failed(reason) => return Err(format!("pacer simulate failed: {reason}")),
        }
    }
    let peak = match run_measured(pacer_simulate_command(cib, false), Duration::from_secs(600), Peak::Measured).0 {
        Outcome::Finished { peak_kib, .. } => peak_kib,
        Outcome::Timeout(seconds) => return Err(format!("pacer simulate timed out after {seconds:.0}s")),
        Outcome::Failed(reason) => return Err(format!("pacer simulate failed: {reason}")),
    };
    let (outcome, stderr) = run_measured(pacer_simulate_command(cib, true), Duration::from_secs(600), Peak::NotNeeded);
    let profile = match outcome {
        Outcome::Finished { .. } => stderr.lines().filter(|line| line.starts_with("timings:")).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok((median(walls), peak, profile))
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn sizes() -> Vec<(usize, usize)> {
    let default = vec![(10, 500), (100, 5_000), (1_000, 10_000)];
    let Ok(text) = std::env::var("PACER_BENCH_SIZES") else { return default };
    let parsed: Option<Vec<(usize, usize)>> = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (nodes, resources) = part.trim().split_once(['x', 'X'])?;
            Some((nodes.trim().replace('_', "").parse().ok()?, resources.trim().replace('_', "").parse().ok()?))
        })
        .collect();
    match parsed {
        Some(sizes) if !sizes.is_empty() && sizes.iter().all(|&(nodes, resources)| nodes >= 2 && resources >= 10) => sizes,
        _ => {
            eprintln!("warning: PACER_BENCH_SIZES={text:?} is not like \"10x500,100x5000\" (nodes ≥ 2, resources ≥ 10); running the default sizes");
            default
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(default)
}

fn main() {
    let runs = env_number("PACER_BENCH_RUNS", 5).max(1) as usize;
    let crm_timeout = Duration::from_secs(env_number("PACER_BENCH_CRM_TIMEOUT", 600));
    let crm = crm_simulate_binary();
    let temporary = tempfile::tempdir().expect("temporary directory");
    let cib_dir = match std::env::var_os("PACER_BENCH_CIB_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create PACER_BENCH_CIB_DIR");
            dir
        }
        None => temporary.path().to_path_buf(),
    };
    match &crm {
        Some(binary) => {
            let version =
                Command::new(binary).arg("--version").output().ok().map(|out| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string());
            println!("crm_simulate: {} ({}), timeout {}s", binary.display(), version.unwrap_or_default(), crm_timeout.as_secs());
        }
        None => println!("crm_simulate: not found (install pacemaker-cli-utils) or PACER_BENCH_CRM_SIMULATE=none: skipped"),
    }

    let header = format!(
        "{:>6} {:>9} {:>11} {:>9} {:>10} {:>8} {:>16} {:>18} {:>8} {:>9}",
        "nodes", "resources", "cib bytes", "import s", "schedule s", "actions", "pacer s / MB", "crm_simulate s / MB", "ratio/s", "ratio/proc"
    );
    println!("{header}");
    let mut table = vec![header];
    let mut notes = Vec::new();
    let mut profiles = Vec::new();
    for (nodes, resources) in sizes() {
        let generated = generate(nodes, resources);
        let path = cib_dir.join(format!("bench-{nodes}x{resources}.xml"));
        std::fs::write(&path, &generated.xml).expect("write the CIB");

        // Pacer: import and schedule, timed separately, median of `runs`.
        let mut import_samples = Vec::new();
        let mut schedule_samples = Vec::new();
        let mut plan = None;
        let mut failure = None;
        for run in 0..runs {
            let started = Instant::now();
            let imported = match pacer::cib::import(&generated.xml) {
                Ok(imported) => imported,
                Err(error) => {
                    failure = Some(format!("import failed: {error}"));
                    break;
                }
            };
            import_samples.push(started.elapsed().as_secs_f64());
            if run == 0 {
                for unmapped in
                    imported.unmapped.iter().filter(|unmapped| !(unmapped.id.contains("startup-probes") || unmapped.reason.contains("startup-probes"))).take(3)
                {
                    notes.push(format!("note: {nodes}x{resources}: unmapped <{} id={:?}>: {}", unmapped.element, unmapped.id, unmapped.reason));
                }
            }
            let snapshot = Snapshot { objects: imported.objects, observed: imported.observed, now: imported.now.unwrap_or(0) };
            let started = Instant::now();
            let result = schedule(&snapshot);
            let seconds = started.elapsed().as_secs_f64();
            schedule_samples.push(seconds);
            plan = Some((result, snapshot));
            if seconds > 5.0 {
                break;
            }
        }
        if let Some(failure) = failure {
            let line = format!("warning: {nodes}x{resources}: {failure}");
            println!("{line}");
            table.push(line);
            continue;
        }
        let (plan, snapshot) = plan.expect("at least one run");
        for problem in sanity(&plan, &snapshot, &generated) {
            notes.push(format!("warning: {nodes}x{resources}: {problem}"));
        }
        let import_seconds = median(import_samples);
        let schedule_seconds = median(schedule_samples);
        let actions = plan.actions.len() + plan.fencing.len();

        let (resource_count, cib_bytes) = (generated.resources, generated.xml.len());
        drop(plan);
        drop(snapshot);
        drop(generated);

        // Both as whole processes: what a user waits for.
        let (pacer_seconds, pacer_peak) = match pacer_whole_process(&path, runs) {
            Ok((seconds, peak_kib, profile)) => {
                profiles.push(format!("profile {nodes}x{resources} (pacer simulate --cib FILE --json --timings):"));
                profiles.extend(profile.into_iter().map(|line| format!("  {line}")));
                (Some(seconds), format!("{:.3}", seconds) + " / " + &mib(peak_kib))
            }
            Err(reason) => {
                notes.push(format!("warning: {nodes}x{resources}: {reason}"));
                (None, "failed".to_string())
            }
        };
        // crm_simulate, once.
        let (crm_text, ratio_schedule, ratio_process) = match &crm {
            None => ("skipped".to_string(), "-".to_string(), "-".to_string()),
            Some(binary) => match run_measured(crm_simulate_command(binary, &path), crm_timeout, Peak::Measured).0 {
                Outcome::Finished { seconds, peak_kib } => (
                    format!("{seconds:.3} / {}", mib(peak_kib)),
                    format!("{:.0}×", seconds / schedule_seconds),
                    pacer_seconds.map_or("-".to_string(), |pacer| format!("{:.0}×", seconds / pacer)),
                ),
                Outcome::Timeout(seconds) => (
                    format!("> {:.0} (timeout)", seconds),
                    format!("> {:.0}×", seconds / schedule_seconds),
                    pacer_seconds.map_or("-".to_string(), |pacer| format!("> {:.0}×", seconds / pacer)),
                ),
                Outcome::Failed(reason) => {
                    notes.push(format!("warning: {nodes}x{resources}: crm_simulate failed: {reason}"));
                    ("failed".to_string(), "-".to_string(), "-".to_string())
                }
            },
        };
        let line = format!(
            "{nodes:>6} {:>9} {:>11} {import_seconds:>9.4} {schedule_seconds:>10.4} {actions:>8} {pacer_text:>16} {crm_text:>18} {ratio_schedule:>8} {ratio_process:>9}",
            resource_count,
            cib_bytes,
            pacer_text = pacer_peak,
        );
        println!("{line}");
        table.push(line);
    }
    for line in &profiles {
        println!("{line}");
    }
    table.extend(profiles);
    for note in &notes {
        println!("{note}");
    }
    table.extend(notes);
    table.push(String::new());
    table.push(
        "import s, schedule s: in this process, median of the runs. pacer s / MB: `pacer simulate --cib FILE --json` as a whole process (median wall of the runs, peak \
         RSS in MiB of one more run under GNU time); crm_simulate s / MB: `crm_simulate -R -Q -x FILE`, once. ratio/s = crm_simulate / Pacer schedule; ratio/proc = crm_simulate / pacer, both whole \
         processes. Goals: 1,000 × 10,000 under 0.25 s and 150 MB as a whole process; 100 × 5,000 ratio/proc ≥ 300×."
            .into(),
    );

    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out = target.join("bench-schedule.txt");
    match std::fs::write(&out, table.join("\n") + "\n") {
        Ok(()) => println!("written to {}", out.display()),
        Err(error) => println!("warning: cannot write {}: {error}", out.display()),
    }
}
