//! Golden scheduler scenarios: every directory under tests/scheduler/ is one case.
//!
//! A case holds `cluster.yaml` (Pacer manifests, loaded and checked as `pacer apply`
//! would), `observed.yaml` (the observed state: node liveness, node attributes and
//! operation histories), optionally `now` (the decision time, an integer; 0 when
//! absent) and `expected.txt`, the plan rendered as text: node states, fencing,
//! actions, and for every resource where it runs next (or why it is stopped) and the
//! score of every node. `UPDATE_EXPECT=1` rewrites the `expected.txt` files from what
//! the scheduler plans; review the diff (against what Pacemaker would do) before
//! committing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pacer::api::ObjectSet;
use pacer::api::constraint::OrderAction;
use pacer::api::manifest::{Source, check_change, load};
use pacer::api::yaml::parse_documents;
use pacer::api::{Object, Score};
use pacer::scheduler::plan::{Gate, Placement, Plan, ResourceKind};
use pacer::scheduler::snapshot::Observed;
use pacer::scheduler::{Snapshot, schedule};

fn case_directories(root: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(root).expect("read tests/scheduler").filter_map(|entry| entry.ok().map(|entry| entry.path())).filter(|path| path.is_dir()).collect();
    cases.sort();
    cases
}

/// The case's manifests, refused when `pacer apply` would refuse them.
fn read_objects(path: &Path) -> Result<Vec<Object>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("read {}: {error}", path.display()))?;
    let loaded = load(&[Source { name: path.display().to_string(), text }]);
    let mut problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let checked = check_change(&ObjectSet::new(), &loaded.manifests, &[], &Default::default(), &loaded.broken);
    problems.extend(checked.diagnostics.iter().map(ToString::to_string));
    if !problems.is_empty() {
        return Err(format!("{} is not valid:\n  {}", path.display(), problems.join("\n  ")));
    }
    Ok(loaded.manifests.into_iter().map(|manifest| manifest.object).collect())
}

/// The observed state, read as `pacer simulate --observed` reads it.
fn read_observed(path: &Path) -> Result<Observed, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("read {}: {error}", path.display()))?;
    let documents = parse_documents(&text).map_err(|error| format!("{}:{}: {}", path.display(), error.position, error.message))?;
    let Some(document) = documents.into_iter().next() else {
        return Ok(Observed::default());
    };
    serde_path_to_error::deserialize(document.value).map_err(|error| format!("{}: {}: {}", path.display(), error.path(), error.inner()))
}

fn read_now(directory: &Path) -> Result<i64, String> {
    let path = directory.join("now");
    if !path.exists() {
        return Ok(0);
    }
    let text = std::fs::read_to_string(&path).map_err(|error| format!("read {}: {error}", path.display()))?;
    text.trim().parse().map_err(|error| format!("{}: not an integer: {error}", path.display()))
}

fn placements(placements: &[Placement]) -> String {
    if placements.is_empty() {
        return "Stopped".into();
    }
    placements.iter().map(|placement| format!("{} {}", placement.role.as_str(), placement.node)).collect::<Vec<_>>().join(", ")
}

fn score_text(score: Score) -> String {
    if score == Score::INFINITY {
        "INFINITY".into()
    } else if score == Score::NEG_INFINITY {
        "-INFINITY".into()
    } else {
        score.value().to_string()
    }
}

/// The plan as stable, reviewable text.
fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nodes:");
    for node in &plan.nodes {
        let reason = node.unclean_reason.as_ref().map(|reason| format!(" ({reason})")).unwrap_or_default();
        let _ = writeln!(out, "  {}: {}{reason}", node.name, node.state.as_str());
    }
    let _ = writeln!(out, "fencing:");
    if plan.fencing.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for fencing in &plan.fencing {
        let _ = writeln!(out, "  {} {}: {}", fencing.action, fencing.node, fencing.reason);
    }
    let _ = writeln!(out, "actions:");
    if plan.actions.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for action in &plan.actions {
        let _ = writeln!(out, "  {} {} ({})", action.verb, action.resource, action.detail);
    }
    let _ = writeln!(out, "resources:");
    for resource in &plan.resources {
        let kind = match resource.kind {
            ResourceKind::Primitive => "primitive",
            ResourceKind::Clone => "clone",
            ResourceKind::Promotable => "promotable",
            ResourceKind::FenceDevice => "fence device",
        };
        let mut flags = vec![kind.to_string()];
        if let Some(group) = &resource.group {
            flags.push(format!("group {group}"));
        }
        if resource.unique {
            flags.push("unique".into());
        }
        if resource.failed {
            flags.push("failed".into());
        }
        if resource.frozen {
            flags.push("frozen".into());
        }
        let _ = writeln!(out, "  {} [{}]", resource.id, flags.join(", "));
        let _ = writeln!(out, "    current: {}", placements(&resource.current));
        let reason = resource.reason.as_ref().map(|reason| format!(" ({reason})")).unwrap_or_default();
        let _ = writeln!(out, "    next: {}{reason}", placements(&resource.next));
        let scores: Vec<String> = plan.scores_of(resource).map(|(node, score)| format!("{node}={}", score_text(score))).collect();
        let _ = writeln!(out, "    scores: {}", scores.join(" "));
        for (label, gates) in [("start after", &resource.start_after), ("promote after", &resource.promote_after)] {
            if !gates.is_empty() {
                let gates: Vec<String> = gates.iter().map(gate_text).collect();
                let _ = writeln!(out, "    {label}: {}", gates.join(", "));
            }
        }
    }
    out
}

/// `start of web`, `promote of db (same node)`, `start of base (2 copies)`.
fn gate_text(gate: &Gate) -> String {
    let action = match gate.action {
        OrderAction::Start => "start",
        OrderAction::Promote => "promote",
        OrderAction::Stop => "stop",
        OrderAction::Demote => "demote",
    };
    let mut text = format!("{action} of {}", gate.resource);
    if gate.same_node {
        text.push_str(" (same node)");
    }
    if gate.at_least > 1 {
        text.push_str(&format!(" ({} copies)", gate.at_least));
    }
    if let Some(group) = gate.any_of {
        text.push_str(&format!(" (any of #{group})"));
    }
    text
}

fn run_case(directory: &Path) -> Result<String, String> {
    let objects = read_objects(&directory.join("cluster.yaml"))?;
    let observed_path = directory.join("observed.yaml");
    let observed = if observed_path.exists() { read_observed(&observed_path)? } else { Observed { quorum: true, ..Observed::default() } };
    let now = read_now(directory)?;
    let snapshot = Snapshot { objects, observed, now };
    let plan = schedule(&snapshot);
    let problems = plan.check(&snapshot);
    if !problems.is_empty() {
        return Err(format!("the plan violates its invariants: {problems:?}"));
    }
    Ok(render(&plan))
}

/// A line diff: the longest common subsequence, then `-` and `+` lines around it.
fn diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] { common[i + 1][j + 1] + 1 } else { common[i + 1][j].max(common[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            let _ = writeln!(out, "  {}", old[i]);
            i += 1;
            j += 1;
        } else if j < new.len() && (i == old.len() || common[i][j + 1] >= common[i + 1][j]) {
            let _ = writeln!(out, "+ {}", new[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "- {}", old[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn every_scheduler_scenario_plans_what_its_expected_txt_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scheduler");
    let cases = case_directories(&root);
    assert!(!cases.is_empty(), "no cases in {}", root.display());
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_string();
        let actual = match run_case(case) {
            Ok(actual) => actual,
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        let expected_path = case.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{name}: the plan differs from {} (- expected, + actual):\n{}", expected_path.display(), diff(&expected, &actual)));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed (UPDATE_EXPECT=1 rewrites expected.txt):\n\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

/// `explain` on every configured resource of every scenario: the plan it returns is
/// `schedule`'s, each node's contributions fold to the score the plan reports, and
/// no change of a score goes unnamed.
#[test]
fn every_scenario_explains_every_score_it_plans() {
    use pacer::api::Spec;
    use pacer::scheduler::explain::ContributionKind;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scheduler");
    let mut failures = Vec::new();
    let mut explained = 0;
    for case in case_directories(&root) {
        let name = case.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_string();
        let objects = read_objects(&case.join("cluster.yaml")).expect("a valid scenario");
        let observed_path = case.join("observed.yaml");
        let observed =
            if observed_path.exists() { read_observed(&observed_path).expect("observed state") } else { Observed { quorum: true, ..Observed::default() } };
        let snapshot = Snapshot { objects, observed, now: read_now(&case).expect("now") };
        let plan = schedule(&snapshot);
        let resources: Vec<String> = snapshot
            .objects
            .iter()
            .filter(|object| matches!(object.spec, Spec::Resource(_) | Spec::Group(_) | Spec::FenceDevice(_)))
            .map(|object| object.name().to_string())
            .collect();
        for resource in resources {
            let Some((explained_plan, explanation)) = pacer::scheduler::explain(&snapshot, &resource) else {
                failures.push(format!("{name}: {resource}: no explanation"));
                continue;
            };
            if explained_plan != plan {
                failures.push(format!("{name}: {resource}: explaining changed the plan"));
            }
            for instance in &explanation.instances {
                for node in &instance.nodes {
                    explained += 1;
                    if node.total() != node.score {
                        failures.push(format!(
                            "{name}: {} on {}: contributions fold to {}, the plan says {}: {:?}",
                            instance.id,
                            node.node,
                            node.total(),
                            node.score,
                            node.contributions
                        ));
                    }
                    if node.contributions.iter().any(|contribution| contribution.kind == ContributionKind::Other) {
                        failures.push(format!("{name}: {} on {}: an unnamed change: {:?}", instance.id, node.node, node.contributions));
                    }
                }
            }
        }
    }
    assert!(explained > 0, "nothing was explained");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
