//! How many operations a node agent runs at once: the node's action limit
//! (`Node.actionLimit`, else `ClusterPolicy.nodeActionLimit`, else twice the cores —
//! Pacemaker's `node-action-limit`), lowered while the CPU load is high (Pacemaker's
//! `load-threshold`). Pure: the load is an input; the agent reads `/proc/loadavg`.

use crate::api::{Object, Spec};

/// The configured limit and threshold for `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Operations at once when the load is low.
    pub actions: usize,
    /// Load in percent of the cores above which fewer run; 0: never.
    pub load_threshold: u32,
}

/// Reads the limits from the configuration, for a node with `cores` cores.
pub fn limits(objects: &[Object], node: &str, cores: usize) -> Limits {
    let mut cluster_limit = 0;
    let mut load_threshold = 80;
    let mut node_limit = None;
    for object in objects {
        match &object.spec {
            Spec::ClusterPolicy(policy) => {
                cluster_limit = policy.node_action_limit;
                load_threshold = policy.load_threshold;
            }
            Spec::Node(spec) if object.name().as_str() == node => node_limit = spec.action_limit,
            _ => {}
        }
    }
    let configured = node_limit.filter(|limit| *limit > 0).or((cluster_limit > 0).then_some(cluster_limit));
    let actions = configured.map_or(2 * cores.max(1), |limit| limit as usize);
    Limits { actions, load_threshold }
}

/// The operations that may run at once under `load_percent` (the 1-minute load average
/// in percent of the cores, when known): the whole limit up to the threshold, half
/// above it, a quarter above twice it; never less than one, so the node keeps working.
pub fn effective(limits: Limits, load_percent: Option<f64>) -> usize {
    let threshold = f64::from(limits.load_threshold);
    let actions = match load_percent {
        Some(load) if limits.load_threshold > 0 && load > 2.0 * threshold => limits.actions / 4,
        Some(load) if limits.load_threshold > 0 && load > threshold => limits.actions / 2,
        _ => limits.actions,
    };
    actions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Source, load};

    fn objects(yaml: &str) -> Vec<Object> {
        let loaded = load(&[Source { name: "test.yaml".into(), text: yaml.into() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.manifests.into_iter().map(|manifest| manifest.object).collect()
    }

    #[test]
    fn the_node_overrides_the_cluster_which_overrides_twice_the_cores() {
        assert_eq!(limits(&[], "n1", 2).actions, 4);
        let cluster = objects("apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {nodeActionLimit: 6, loadThreshold: 50}\n");
        assert_eq!(limits(&cluster, "n1", 2), Limits { actions: 6, load_threshold: 50 });
        let with_node = objects(
            "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {nodeActionLimit: 6}\n---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: n1}\nspec: {actionLimit: 3}\n",
        );
        assert_eq!(limits(&with_node, "n1", 2).actions, 3);
        assert_eq!(limits(&with_node, "n2", 2).actions, 6);
    }

    #[test]
    fn high_load_lowers_the_limit_but_never_below_one() {
        let limits = Limits { actions: 8, load_threshold: 80 };
        assert_eq!(effective(limits, None), 8);
        assert_eq!(effective(limits, Some(79.0)), 8);
        assert_eq!(effective(limits, Some(81.0)), 4);
        assert_eq!(effective(limits, Some(170.0)), 2);
        assert_eq!(effective(Limits { actions: 2, load_threshold: 80 }, Some(500.0)), 1);
        assert_eq!(effective(Limits { actions: 8, load_threshold: 0 }, Some(500.0)), 8);
    }
}
