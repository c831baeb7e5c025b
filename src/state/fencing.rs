//! Fencing's pure decisions: which devices fence a node in which order (the
//! topology's levels, else every device that can reach it), and which node executes
//! (an online node other than the target). The records themselves
//! (`FenceRequestRecord`, `FenceResultRecord`) are in `api::records`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::agent::FenceAgentRef;
use crate::api::cluster::{FenceDeviceSpec, HostCheck};
use crate::api::{Object, Spec};
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

/// The node that runs the fencing of `target`: an online node other than the target,
/// the first by name (so every leader picks the same one for the same state). For
/// unfencing (`on`), the target itself, which is up and must be let in (fence_scsi
/// registers the node's own key).
pub fn choose_executor(target: &str, action: &str, observed: &Observed) -> Option<String> {
    if action == "on" {
        return observed.nodes.get(target).is_some_and(|node| node.liveness == NodeLiveness::Online).then(|| target.to_string());
    }
    observed.nodes.iter().find(|(name, node)| name.as_str() != target && node.liveness == NodeLiveness::Online).map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};

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

    #[test]
    fn the_executor_is_an_online_node_other_than_the_target() {
        let mut observed = Observed::default();
        for (name, liveness) in [("n1", NodeLiveness::Online), ("n2", NodeLiveness::Unclean), ("n3", NodeLiveness::Online)] {
            observed.nodes.insert(name.into(), crate::scheduler::snapshot::ObservedNode { liveness, shutdown: false, attributes: BTreeMap::new() });
        }
        assert_eq!(choose_executor("n1", "reboot", &observed).as_deref(), Some("n3"));
        assert_eq!(choose_executor("n2", "off", &observed).as_deref(), Some("n1"));
        assert_eq!(choose_executor("n1", "on", &observed).as_deref(), Some("n1"), "a node unfences itself");
        assert_eq!(choose_executor("n2", "on", &observed), None, "an unclean node is not unfenced");
        observed.nodes.retain(|name, _| name == "n1");
        assert_eq!(choose_executor("n1", "reboot", &observed), None);
    }
}
