//! `pacer why RSC`: where a resource runs and why there, or why it is stopped — every
//! node's final score for it and the named contributions to it, from the scheduler's
//! own account (`scheduler::explain`) of the live snapshot. A contribution that comes
//! from a constraint a verb made (`pacer ban`, `pacer move`: a Location with the
//! `pacer.io/owner` annotation) says who made it and when.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::records::NodeState;
use crate::api::{Kind, Score};
use crate::scheduler::explain::{Contribution, explain};
use crate::scheduler::plan::{Placement, Reason};
use crate::scheduler::{Plan, Snapshot};
use crate::store::Store;

use super::OpsError;
use super::edit::annotations;
use super::live::Live;

/// The answer for one resource.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub resource: String,
    /// The etcd revision the cluster was read at.
    pub revision: i64,
    /// One per primitive: itself, a group's members, a clone's instances.
    pub instances: Vec<InstanceWhy>,
}

/// One primitive or clone instance.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceWhy {
    pub id: String,
    /// Where it runs now.
    pub current: Vec<Placement>,
    /// Where the scheduler wants it.
    pub next: Vec<Placement>,
    /// Why it does not run, when it does not (the plan's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Left alone: unmanaged, blocked by a failure, or on a maintenance node.
    pub frozen: bool,
    /// The verdict in a sentence: where and why there, or why stopped.
    pub verdict: String,
    /// Every node, in the plan's order.
    pub nodes: Vec<NodeWhy>,
}

/// One node's score for the instance.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeWhy {
    pub node: String,
    /// The node's state in the plan: only an online node runs anything.
    pub state: NodeState,
    /// Why the node is unclean, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclean_reason: Option<String>,
    /// The final score the plan reports.
    pub score: Score,
    /// What made it, in the order the scheduler applied it; folded with the score
    /// arithmetic they give `score`.
    pub contributions: Vec<ContributionWhy>,
}

/// A contribution, with who made the constraint behind it when a verb did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContributionWhy {
    #[serde(flatten)]
    pub contribution: Contribution,
    /// The verb that made the constraint (`ban`, `move`), from `pacer.io/owner`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who ran it (`pacer.io/created-by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When the constraint was made (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The constraint's other `pacer.io/` annotations (an expiry, for one).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Reads the live cluster and explains `resource`.
pub async fn why(store: &Store, resource: &str) -> Result<Why, OpsError> {
    let live = Live::read(store).await?;
    why_of(&live.live.snapshot, live.live.revision, resource)
}

/// Explains `resource` in `snapshot` (read at `revision`). Pure.
pub fn why_of(snapshot: &Snapshot, revision: i64, resource: &str) -> Result<Why, OpsError> {
    let (plan, explanation) = explain(snapshot, resource).ok_or_else(|| OpsError::NotFound(format!("resource {resource} not found")))?;
    // Looked up once each, not per instance or contribution (a clone of a thousand
    // instances on a thousand nodes has a million contributions).
    let constraints: std::collections::HashMap<&str, &crate::api::Object> = snapshot
        .objects
        .iter()
        .filter(|object| matches!(object.kind(), Kind::Location | Kind::Colocation))
        .map(|object| (object.name().as_str(), object))
        .collect();
    let planned_by_id: std::collections::HashMap<&str, &crate::scheduler::plan::ResourcePlan> =
        plan.resources.iter().map(|planned| (planned.id.as_str(), planned)).collect();
    let mut instances = Vec::new();
    for instance in explanation.instances {
        let Some(planned) = planned_by_id.get(instance.id.as_str()).copied() else { continue };
        let nodes: Vec<NodeWhy> = instance
            .nodes
            .into_iter()
            .zip(&plan.nodes)
            .map(|(node, state)| NodeWhy {
                node: node.node,
                state: state.state,
                unclean_reason: state.unclean_reason.clone(),
                score: node.score,
                contributions: node.contributions.into_iter().map(|contribution| with_origin(&constraints, contribution)).collect(),
            })
            .collect();
        let verdict = verdict(&plan, planned, &nodes);
        instances.push(InstanceWhy {
            id: instance.id,
            current: planned.current.clone(),
            next: planned.next.clone(),
            reason: planned.reason.clone(),
            frozen: planned.frozen,
            verdict,
            nodes,
        });
    }
    Ok(Why { resource: resource.to_string(), revision, instances })
}

/// Adds who made the constraint behind a contribution, when a verb made it.
fn with_origin(constraints: &std::collections::HashMap<&str, &crate::api::Object>, contribution: Contribution) -> ContributionWhy {
    let object = contribution.constraint.as_ref().and_then(|name| constraints.get(name.as_str()).copied());
    let metadata = object.map(|object| &object.metadata);
    let annotation = |key: &str| metadata.and_then(|metadata| metadata.annotations.get(key).cloned());
    let owner = annotation(annotations::OWNER);
    ContributionWhy {
        created_by: annotation(annotations::CREATED_BY),
        created: owner.as_ref().and(metadata.and_then(|metadata| metadata.creation_timestamp.clone())),
        annotations: metadata
            .map(|metadata| {
                metadata
                    .annotations
                    .iter()
                    .filter(|(key, _)| key.starts_with("pacer.io/") && key.as_str() != annotations::OWNER && key.as_str() != annotations::CREATED_BY)
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        owner,
        contribution,
    }
}

/// Where it runs and why there, or why it is stopped, in a sentence.
fn verdict(plan: &Plan, planned: &crate::scheduler::plan::ResourcePlan, nodes: &[NodeWhy]) -> String {
    if planned.frozen {
        let places: Vec<&str> = planned.next.iter().map(|placement| placement.node.as_str()).collect();
        let at = if places.is_empty() { "stopped".to_string() } else { format!("on {}", places.join(", ")) };
        return format!("left as it is ({at}): unmanaged, blocked by a failure, or on a maintenance node");
    }
    let Some(placement) = planned.next.first() else {
        let reason = planned.reason.as_ref().map_or_else(|| "no node can run it".to_string(), ToString::to_string);
        return format!("stopped: {reason}");
    };
    let score = nodes.iter().find(|node| node.node == placement.node).map_or(Score::ZERO, |node| node.score);
    let moving = !planned.current.iter().any(|current| current.node == placement.node);
    let runs = if planned.current.is_empty() {
        format!("starts on {}", placement.node)
    } else if moving {
        let from: Vec<&str> = planned.current.iter().map(|current| current.node.as_str()).collect();
        format!("moves from {} to {}", from.join(", "), placement.node)
    } else {
        format!("runs on {}", placement.node)
    };
    let role = if placement.role == crate::api::resource::Role::Started { String::new() } else { format!(" as {}", placement.role.as_str()) };
    let online = |node: &NodeWhy| plan.nodes.iter().any(|state| state.name == node.node && state.state == NodeState::Online);
    let tied: Vec<&str> =
        nodes.iter().filter(|node| node.node != placement.node && node.score == score && online(node)).map(|node| node.node.as_str()).collect();
    if tied.is_empty() {
        format!("{runs}{role}: score {score}, the highest of the nodes that can run it")
    } else {
        format!("{runs}{role}: score {score}, tied with {} (ties go to the node with fewer resources, then the one it runs on, then by name)", tied.join(", "))
    }
}

/// A contribution's amount as it reads in a sum: `+500`, `-INFINITY`, `= 0` for one
/// that sets the score.
pub fn amount(contribution: &Contribution) -> String {
    let score = contribution.score;
    if contribution.kind == crate::scheduler::explain::ContributionKind::Initial {
        score.to_string()
    } else if contribution.replaces {
        format!("={score}")
    } else if score >= Score::ZERO {
        format!("+{score}")
    } else {
        score.to_string()
    }
}

/// The text rendering of `pacer why`.
pub fn render(why: &Why) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for instance in &why.instances {
        let _ = writeln!(out, "{}: {}", instance.id, instance.verdict);
        for node in &instance.nodes {
            let state = match node.state {
                NodeState::Online => "online".to_string(),
                NodeState::Unclean => {
                    format!("unclean, runs nothing new{}", node.unclean_reason.as_ref().map(|reason| format!(": {reason}")).unwrap_or_default())
                }
                other => format!("{}, runs nothing", other.as_str()),
            };
            let _ = writeln!(out, "  {} ({state}): {}", node.node, node.score);
            for entry in &node.contributions {
                let mut text = entry.contribution.text.clone();
                if let Some(owner) = &entry.owner {
                    text.push_str(&format!(" — made by `pacer {owner}`"));
                    if let Some(by) = &entry.created_by {
                        text.push_str(&format!(" ({by})"));
                    }
                    if let Some(created) = &entry.created {
                        text.push_str(&format!(" at {created}"));
                    }
                    for (key, value) in &entry.annotations {
                        text.push_str(&format!(", {}: {value}", key.trim_start_matches("pacer.io/")));
                    }
                }
                let _ = writeln!(out, "    {:>10}  {text}", amount(&entry.contribution));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::{Source, check_change, load};
    use crate::api::{Object, ObjectSet};
    use crate::scheduler::snapshot::{NodeLiveness, Observed, ObservedNode};

    fn snapshot(text: &str, observed: Observed) -> Snapshot {
        let loaded = load(&[Source { name: "test.yaml".into(), text: text.to_string() }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let checked = check_change(&ObjectSet::new(), &loaded.manifests, &[], &Default::default(), &loaded.broken);
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
        let objects: Vec<Object> = loaded.manifests.into_iter().map(|manifest| manifest.object).collect();
        Snapshot { objects, observed, now: 0 }
    }

    fn online(names: &[&str]) -> Observed {
        let nodes = names
            .iter()
            .map(|name| (name.to_string(), ObservedNode { liveness: NodeLiveness::Online, shutdown: false, attributes: Default::default() }))
            .collect();
        Observed { quorum: true, nodes, ..Observed::default() }
    }

    const CLUSTER: &str = "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {name: cluster}\nspec: {stonithEnabled: false}\n---\n\
        apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: n1}\n---\n\
        apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: n2}\n---\n\
        apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: \"ocf:heartbeat:Dummy\"}\n---\n";

    #[test]
    fn a_ban_made_by_a_verb_is_named_with_who_made_it() {
        let text = format!(
            "{CLUSTER}apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: ban-web-n1, annotations: {{pacer.io/owner: ban, pacer.io/created-by: ada@host}}}}\nspec: {{resource: web, node: n1, score: -INFINITY}}\n"
        );
        let why = why_of(&snapshot(&text, online(&["n1", "n2"])), 7, "web").expect("web exists");
        let web = &why.instances[0];
        assert_eq!(web.next.first().map(|placement| placement.node.as_str()), Some("n2"));
        assert!(web.verdict.starts_with("starts on n2"), "{}", web.verdict);
        let n1 = &web.nodes[0];
        assert_eq!(n1.score, Score::NEG_INFINITY);
        let ban = n1.contributions.iter().find(|entry| entry.contribution.constraint.as_deref() == Some("ban-web-n1")).expect("the ban is named");
        assert_eq!(ban.owner.as_deref(), Some("ban"));
        assert_eq!(ban.created_by.as_deref(), Some("ada@host"));
        assert!(render(&why).contains("location ban-web-n1 — made by `pacer ban` (ada@host)"), "{}", render(&why));
    }

    #[test]
    fn a_stopped_resource_says_why_and_an_unknown_one_is_not_found() {
        let text = CLUSTER.replace("spec: {agent: \"ocf:heartbeat:Dummy\"}", "spec: {agent: \"ocf:heartbeat:Dummy\", meta: {targetRole: Stopped}}");
        let why = why_of(&snapshot(&text, online(&["n1", "n2"])), 7, "web").expect("web exists");
        assert_eq!(why.instances[0].verdict, "stopped: target role is Stopped");
        assert!(matches!(why_of(&snapshot(CLUSTER, online(&["n1"])), 7, "nope"), Err(OpsError::NotFound(_))));
    }
}
