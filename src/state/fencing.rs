//! Fencing's pure decisions: which devices fence a node in which order (the
//! topology's levels, else every device that can reach it), and which node executes
//! (an online node other than the target). The records themselves
//! (`FenceRequestRecord`, `FenceResultRecord`) are in `api::records`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::Score;
use crate::api::agent::FenceAgentRef;
use crate::api::cluster::{FenceDeviceSpec, HostCheck};
use crate::api::{Object, Spec};
use crate::scheduler::plan::{Plan, ResourceKind};
use crate::scheduler::snapshot::{NodeLiveness, Observed};

/// One device invocation of a fencing level.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceStep {
    pub device: String,
    pub agent: FenceAgentRef,
    pub params: BTreeMap<String, String>,
    /// Parameters read from files on the executing node: name to path.
    pub secret_files: BTreeMap<String, String>,
    /// The port/plug for the target (the device's host map, else the node's name).
    pub plug: String,
    pub timeout: Duration,
    /// Attempts before the level counts as failed.
    pub attempts: u32,
    /// Waited before the first attempt (`delay`; `delayMax` is not randomised here).
    pub delay: Duration,
}

/// The levels to try for `target`, in order; a level succeeds when all its devices
/// do. The node's `FencingTopology` when it has one; otherwise each device that can
/// fence it (its `hostList` names it, or it has no list and checks no hosts) is a
/// level of its own, in name order. Devices a level names that do not exist are
/// skipped (the level then needs the rest).
pub fn fence_levels(target: &str, objects: &[Object]) -> Vec<Vec<DeviceStep>> {
    let mut devices: BTreeMap<&str, &FenceDeviceSpec> = BTreeMap::new();
    let mut topology = None;
    let mut timeout = Duration::from_secs(60);
    for object in objects {
        match &object.spec {
            Spec::FenceDevice(device) => {
                devices.insert(object.name().as_str(), device);
            }
            Spec::FencingTopology(levels) if levels.node.as_str() == target => topology = Some(levels),
            Spec::ClusterPolicy(policy) => timeout = Duration::from_millis(policy.stonith_timeout.as_millis()),
            _ => {}
        }
    }
    let step = |name: &str, device: &FenceDeviceSpec| DeviceStep {
        device: name.to_string(),
        agent: device.agent.clone(),
        params: crate::api::params::plain_values(&device.params),
        secret_files: crate::api::params::secret_files(&device.params),
        plug: device.host_map.get(target).cloned().unwrap_or_else(|| target.to_string()),
        timeout: device.timeout.map_or(timeout, |limit| Duration::from_millis(limit.as_millis())),
        attempts: device.retries.unwrap_or(2).max(1),
        delay: device.delay.map_or(Duration::ZERO, |delay| Duration::from_millis(delay.as_millis())),
    };
    match topology {
        Some(topology) => {
            let mut levels: Vec<_> = topology.levels.iter().collect();
            levels.sort_by_key(|level| level.index);
            levels
                .into_iter()
                .map(|level| level.devices.iter().filter_map(|name| devices.get(name.as_str()).map(|device| step(name.as_str(), device))).collect::<Vec<_>>())
                .filter(|level| !level.is_empty())
                .collect()
        }
        None => devices.iter().filter(|(_, device)| can_fence(device, target)).map(|(name, device)| vec![step(name, device)]).collect(),
    }
}

/// Whether nodes must be unfenced before they run anything: fencing is on and some
/// device unfences (the scheduler's `have_unfencing_device`, with `stonithEnabled`).
pub fn unfencing_required(objects: &[Object]) -> bool {
    let enabled = objects.iter().all(|object| !matches!(&object.spec, Spec::ClusterPolicy(policy) if !policy.stonith_enabled));
    enabled && objects.iter().any(|object| matches!(&object.spec, Spec::FenceDevice(device) if device.unfencing))
}

/// Whether a device can fence `target` by its static configuration.
fn can_fence(device: &FenceDeviceSpec, target: &str) -> bool {
    if device.host_list.iter().any(|host| host.as_str() == target) || device.host_map.contains_key(target) {
        return true;
    }
    device.host_list.is_empty() && device.host_map.is_empty() && !matches!(device.host_check, Some(HostCheck::StaticList))
}

/// The node that runs the fencing of `target`, and the devices it may use there.
///
/// For unfencing (`on`), the target itself, which is up and must be let in (fence_scsi
/// registers the node's own key), with the devices allowed there.
///
/// Otherwise an online node other than the target where a level of the target's
/// fencing may run: every device of the level is allowed on that node — its score
/// there in the plan is not negative, Pacemaker's fencer's rule (a device whose
/// location constraints ban it from a node, or that an opt-in cluster does not
/// allow there, is "disabled" on that node and never run from it). Among those:
/// first the nodes that may run the earliest level (the topology's order decides
/// what is tried first), then the node that ran the last attempt is passed over when
/// another may run it (Pacemaker's fencer also asks another peer after a failure),
/// then the highest preference for the level's devices (a location constraint that
/// prefers a node for a device makes it the fencer, as the node the device is placed
/// on), then a rotation by the target's name, so the fencing of different nodes is
/// spread over the cluster rather than always given to the first node by name — and
/// every leader picks the same one for the same state. `None` when no online node
/// may run any level.
pub fn choose_executor(target: &str, action: &str, observed: &Observed, plan: &Plan, objects: &[Object], last: Option<&str>) -> Option<Executor> {
    let levels = fence_levels(target, objects);
    // Looked up once per call, not per node and device: linear in the nodes and the
    // plan's resources.
    let node_index: std::collections::HashMap<&str, usize> = plan.nodes.iter().enumerate().map(|(index, node)| (node.name.as_str(), index)).collect();
    let mut device_rows: std::collections::HashMap<&str, Vec<&crate::scheduler::row::Row<Score>>> = std::collections::HashMap::new();
    for resource in plan.resources.iter().filter(|resource| resource.kind == ResourceKind::FenceDevice) {
        device_rows.entry(resource.name.as_str()).or_default().push(&resource.scores);
    }
    let device_score = |node: &str, device: &str| -> Option<Score> {
        let index = *node_index.get(node)?;
        device_rows.get(device)?.iter().filter(|scores| index < scores.len()).map(|scores| scores[index]).max()
    };
    let allowed = |node: &str, device: &str| device_score(node, device).is_some_and(|score| score >= Score::ZERO);
    let devices_on = |node: &str| -> Vec<String> {
        let mut devices: Vec<String> =
            levels.iter().filter(|level| level.iter().all(|step| allowed(node, &step.device))).flatten().map(|step| step.device.clone()).collect();
        devices.sort();
        devices.dedup();
        devices
    };
    let online = |node: &str| observed.nodes.get(node).is_some_and(|state| state.liveness == NodeLiveness::Online);
    if action == "on" {
        // No device allowed on the target: no unfencing (an empty list would read as
        // "every level" to the executor).
        let devices = devices_on(target);
        return (online(target) && !devices.is_empty()).then(|| Executor { node: target.to_string(), devices });
    }
    let mut candidates: Vec<(usize, bool, Score, u64, &str)> = observed
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|node| *node != target && online(node))
        .filter_map(|node| {
            let first = levels.iter().position(|level| level.iter().all(|step| allowed(node, &step.device)))?;
            let preference = levels[first].iter().filter_map(|step| device_score(node, &step.device)).fold(Score::ZERO, |sum, score| sum + score);
            Some((first, last == Some(node), preference, rotation(target, node), node))
        })
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)).then(a.3.cmp(&b.3)).then(a.4.cmp(b.4)));
    candidates.first().map(|(_, _, _, _, node)| Executor { node: node.to_string(), devices: devices_on(node) })
}

/// Who runs a fencing, and which devices it may use there (the levels whose devices
/// are all among them are tried; `FenceRequestRecord::devices`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executor {
    pub node: String,
    pub devices: Vec<String>,
}

/// A stable pseudo-random order of the nodes, different for each target (FNV-1a of
/// both names): no clock, no seed, the same for every leader.
fn rotation(target: &str, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in target.bytes().chain([0]).chain(node.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `levels` less those with a device the executor may not use (`devices`: what the
/// request allows it; empty in a request from before that was recorded: all).
pub fn usable_levels(levels: Vec<Vec<DeviceStep>>, devices: &[String]) -> Vec<Vec<DeviceStep>> {
    if devices.is_empty() {
        return levels;
    }
    levels.into_iter().filter(|level| level.iter().all(|step| devices.contains(&step.device))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};
    use std::collections::BTreeSet;

    fn objects(yaml: &str) -> Vec<Object> {
        let loaded = load(&[Source { name: "t.yaml".into(), text: yaml.into() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.manifests.into_iter().map(|manifest| manifest.object).collect()
    }

    const DEVICES: &str = "
apiVersion: pacer.io/v1alpha1
kind: FenceDevice
metadata: {name: ipmi-n1}
spec: {agent: fence_ipmilan, hostList: [n1], params: {ip: 10.0.0.1}, retries: 3}
---
apiVersion: pacer.io/v1alpha1
kind: FenceDevice
metadata: {name: pdu}
spec: {agent: fence_apc, hostMap: {n1: '4', n2: '5'}}
---
apiVersion: pacer.io/v1alpha1
kind: FenceDevice
metadata: {name: local}
spec: {agent: fence_dummy}
";

    #[test]
    fn without_topology_every_device_that_reaches_the_node_is_a_level() {
        let levels = fence_levels("n1", &objects(DEVICES));
        let names: Vec<Vec<&str>> = levels.iter().map(|level| level.iter().map(|step| step.device.as_str()).collect()).collect();
        assert_eq!(names, [["ipmi-n1"], ["local"], ["pdu"]]);
        assert_eq!(levels[0][0].attempts, 3);
        assert_eq!(levels[2][0].plug, "4", "the host map names the plug");
        let names: Vec<String> = fence_levels("n3", &objects(DEVICES)).into_iter().map(|level| level[0].device.clone()).collect();
        assert_eq!(names, ["local"], "only a device without a host list reaches a node no list names");
    }

    #[test]
    fn a_topology_orders_levels_and_groups_devices() {
        let yaml = format!(
            "{DEVICES}---\napiVersion: pacer.io/v1alpha1\nkind: FencingTopology\nmetadata: {{name: n1}}\nspec:\n  node: n1\n  levels:\n  - {{index: 2, devices: [pdu, local]}}\n  - {{index: 1, devices: [ipmi-n1]}}\n"
        );
        let levels = fence_levels("n1", &objects(&yaml));
        let names: Vec<Vec<&str>> = levels.iter().map(|level| level.iter().map(|step| step.device.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["ipmi-n1"], vec!["pdu", "local"]]);
    }

    fn observed(nodes: &[(&str, NodeLiveness)]) -> Observed {
        let mut observed = Observed::default();
        for (name, liveness) in nodes {
            observed
                .nodes
                .insert((*name).into(), crate::scheduler::snapshot::ObservedNode { liveness: *liveness, shutdown: false, attributes: BTreeMap::new() });
        }
        observed.quorum = true;
        observed
    }

    fn plan(objects: &[Object], observed: &Observed) -> Plan {
        crate::scheduler::schedule(&crate::scheduler::snapshot::Snapshot { objects: objects.to_vec(), observed: observed.clone(), now: 0 })
    }

    const NODES: &str = "
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n1}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n2}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n3}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata: {name: n4}
---
apiVersion: pacer.io/v1alpha1
kind: FenceDevice
metadata: {name: power}
spec: {agent: fence_dummy}
";

    fn location(device: &str, node: &str, score: &str) -> String {
        format!(
            "---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: {device}-{node}}}\nspec: {{resource: {device}, node: {node}, score: {score}}}\n"
        )
    }

    #[test]
    fn the_executor_is_an_online_node_other_than_the_target() {
        let objects = objects(NODES);
        let mut observed = observed(&[("n1", NodeLiveness::Online), ("n2", NodeLiveness::Unclean), ("n3", NodeLiveness::Online)]);
        let plan = plan(&objects, &observed);
        let chosen =
            |target: &str, action: &str, observed: &Observed| choose_executor(target, action, observed, &plan, &objects, None).map(|executor| executor.node);
        assert_eq!(chosen("n1", "reboot", &observed).as_deref(), Some("n3"));
        assert_ne!(chosen("n2", "off", &observed).as_deref(), Some("n2"));
        assert_eq!(chosen("n1", "on", &observed).as_deref(), Some("n1"), "a node unfences itself");
        assert_eq!(chosen("n2", "on", &observed), None, "an unclean node is not unfenced");
        assert_eq!(choose_executor("n1", "reboot", &observed, &plan, &objects, None).map(|executor| executor.devices), Some(vec!["power".to_string()]));
        observed.nodes.retain(|name, _| name == "n1");
        assert_eq!(chosen("n1", "reboot", &observed), None);
    }

    #[test]
    fn a_device_banned_from_a_node_is_never_run_there() {
        let yaml = format!("{NODES}{}{}", location("power", "n2", "-INFINITY"), location("power", "n3", "-INFINITY"));
        let objects = objects(&yaml);
        let observed = observed(&[("n1", NodeLiveness::Unclean), ("n2", NodeLiveness::Online), ("n3", NodeLiveness::Online), ("n4", NodeLiveness::Online)]);
        let plan = plan(&objects, &observed);
        let executor = choose_executor("n1", "reboot", &observed, &plan, &objects, None).expect("n4 may run it");
        assert_eq!(executor, Executor { node: "n4".into(), devices: vec!["power".into()] });
        // Even after n4 failed, the banned nodes are not asked.
        assert_eq!(choose_executor("n1", "reboot", &observed, &plan, &objects, Some("n4")).map(|executor| executor.node).as_deref(), Some("n4"));
        // Banned from every online node: nobody runs it.
        let yaml = format!("{yaml}{}", location("power", "n4", "-INFINITY"));
        let objects = super::tests::objects(&yaml);
        let plan = self::plan(&objects, &observed);
        assert_eq!(choose_executor("n1", "reboot", &observed, &plan, &objects, None), None);
        // Unfencing on a node the device is banned from: no request at all (a request
        // with no devices would read as "every level" to the executor).
        assert_eq!(choose_executor("n2", "on", &observed, &plan, &objects, None), None);
        assert_eq!(usable_levels(vec![vec![]], &[]).len(), 1, "no device list means every level (old requests)");
    }

    #[test]
    fn the_executor_is_preferred_by_location_then_spread_and_another_after_a_failure() {
        let objects = objects(NODES);
        let observed = observed(&[("n1", NodeLiveness::Online), ("n2", NodeLiveness::Online), ("n3", NodeLiveness::Online), ("n4", NodeLiveness::Online)]);
        let plan = plan(&objects, &observed);
        // Not always the first by name: the fencing of different targets is spread.
        let executors: BTreeSet<String> = ["n1", "n2", "n3", "n4"]
            .iter()
            .filter_map(|target| choose_executor(target, "reboot", &observed, &plan, &objects, None).map(|executor| executor.node))
            .collect();
        assert!(executors.len() > 1, "{executors:?}");
        // The same state, the same choice.
        let first = choose_executor("n1", "reboot", &observed, &plan, &objects, None);
        assert_eq!(first, choose_executor("n1", "reboot", &observed, &plan, &objects, None));
        // After a failure, another node.
        let first = first.expect("an executor").node;
        let next = choose_executor("n1", "reboot", &observed, &plan, &objects, Some(&first)).expect("another").node;
        assert_ne!(next, first);
        // A location preference makes a node the fencer.
        let objects = super::tests::objects(&format!("{NODES}{}", location("power", "n3", "100")));
        let plan = self::plan(&objects, &observed);
        assert_eq!(choose_executor("n1", "reboot", &observed, &plan, &objects, None).map(|executor| executor.node).as_deref(), Some("n3"));
    }

    #[test]
    fn only_the_levels_of_allowed_devices_are_tried() {
        let levels = fence_levels("n1", &objects(DEVICES));
        let names = |levels: Vec<Vec<DeviceStep>>| levels.into_iter().map(|level| level[0].device.clone()).collect::<Vec<_>>();
        assert_eq!(names(usable_levels(levels.clone(), &["pdu".into(), "local".into()])), ["local", "pdu"]);
        assert_eq!(names(usable_levels(levels, &[])), ["ipmi-n1", "local", "pdu"], "a request from before: every level");
    }
}
