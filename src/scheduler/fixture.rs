//! Test fixtures: small clusters written as the golden scenarios write them (Pacer
//! manifests and observed state in YAML), for the phases' unit tests.

use crate::api::manifest::{Source, check_change, load};
use crate::api::yaml::parse_documents;
use crate::api::{Object, ObjectSet};

use super::model::{Cluster, NodeIdx, RscIdx};
use super::snapshot::{NodeLiveness, Observed, ObservedNode, Snapshot};
use super::unpack::unpack;

/// A snapshot of `nodes` (each a `Node` object, online unless `observed` says
/// otherwise) and `objects` as (kind, name, spec as a YAML flow mapping), with the
/// observed state `observed` (YAML, as a golden scenario's `observed.yaml`; quorum
/// unless it says otherwise). Panics when the manifests would be refused by `pacer
/// apply`: a fixture must be valid input.
pub(crate) fn snapshot(nodes: &[&str], objects: &[(&str, &str, &str)], observed: &str) -> Snapshot {
    let mut text = String::new();
    for node in nodes {
        text.push_str(&format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {node}}}\n---\n"));
    }
    for (kind, name, spec) in objects {
        text.push_str(&format!("apiVersion: pacer.io/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n"));
    }
    let loaded = load(&[Source { name: "fixture.yaml".into(), text }]);
    assert!(loaded.diagnostics.is_empty(), "fixture manifests: {:?}", loaded.diagnostics);
    let checked = check_change(&ObjectSet::new(), &loaded.manifests, &[], &Default::default(), &loaded.broken);
    assert!(checked.diagnostics.is_empty(), "fixture manifests: {:?}", checked.diagnostics);
    let objects: Vec<Object> = loaded.manifests.into_iter().map(|manifest| manifest.object).collect();
    let documents = parse_documents(observed).expect("fixture observed state is YAML");
    let mut observed: Observed = match documents.into_iter().next() {
        Some(document) => serde_json::from_value(document.value).expect("fixture observed state"),
        None => Observed { quorum: true, ..Observed::default() },
    };
    for node in nodes {
        observed.nodes.entry((*node).to_string()).or_insert(ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() });
    }
    Snapshot { objects, observed, now: 0 }
}

/// The unpacked cluster of `snapshot(nodes, objects, observed)`.
pub(crate) fn cluster(nodes: &[&str], objects: &[(&str, &str, &str)], observed: &str) -> Cluster {
    unpack(&snapshot(nodes, objects, observed))
}

/// A history line for `observed`: `resource` started on `node`.
pub(crate) fn started(resource: &str, node: &str) -> String {
    format!("  - {{resource: {resource}, node: {node}, operations: [{{operation: start, callId: 1, rc: 0, expectedRc: 0, status: Done}}]}}\n")
}

/// The arena index of the resource with id `id`.
pub(crate) fn resource(cluster: &Cluster, id: &str) -> RscIdx {
    cluster.resources.iter().position(|resource| resource.id == id).unwrap_or_else(|| panic!("no resource {id}"))
}

/// The index of the node named `name`.
pub(crate) fn node(cluster: &Cluster, name: &str) -> NodeIdx {
    cluster.nodes.iter().position(|node| node.name == name).unwrap_or_else(|| panic!("no node {name}"))
}
