//! `pacer check`: the cluster's health as a Nagios / Icinga / Opsview plugin sees
//! it — one state (OK, WARNING, CRITICAL, UNKNOWN), one line, performance data.
//! `evaluate` is pure: a function of one snapshot's view and the decision made from it.

use serde::Serialize;

use crate::api::resource::Role;
use crate::api::{Object, Spec};
use crate::scheduler::plan::{Plan, ReasonCode, ResourceKind};
use crate::state::view::StatusView;

use super::edit::annotations;

/// A plugin's state; the process exit code is its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// What to check and the thresholds.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Only this resource (Resource, Group or FenceDevice).
    pub resource: Option<String>,
    /// Only this node.
    pub node: Option<String>,
    /// WARNING when fewer nodes than this are online.
    pub nodes_warning: Option<usize>,
    /// CRITICAL when fewer nodes than this are online (otherwise: any configured node
    /// offline or unclean is CRITICAL).
    pub nodes_critical: Option<usize>,
    /// WARNING from this many counted failures on (default 1).
    pub failures_warning: Option<u32>,
    /// CRITICAL from this many counted failures on (default: never for failures alone).
    pub failures_critical: Option<u32>,
}

/// One performance datum: `label=value;warn;crit;min;max`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Perf {
    pub label: &'static str,
    pub value: u64,
    pub warn: Option<u64>,
    pub crit: Option<u64>,
    pub max: Option<u64>,
}

impl std::fmt::Display for Perf {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |value: Option<u64>| value.map(|value| value.to_string()).unwrap_or_default();
        write!(formatter, "{}={};{};{};0;{}", self.label, self.value, show(self.warn), show(self.crit), show(self.max))
    }
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub state: State,
    /// The part after `PACER STATE - `.
    pub summary: String,
    /// Every problem found, worst first (the plugin's long output).
    pub problems: Vec<String>,
    pub perf: Vec<Perf>,
}

impl CheckResult {
    /// The plugin's output: the status line with performance data, then one line per
    /// problem.
    pub fn render(&self) -> String {
        let perf = self.perf.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        let mut out = format!("PACER {} - {}", self.state.as_str(), self.summary);
        if !perf.is_empty() {
            out.push_str(" | ");
            out.push_str(&perf);
        }
        out.push('\n');
        for problem in &self.problems {
            out.push_str(problem);
            out.push('\n');
        }
        out
    }

    /// An answer without a cluster to look at (etcd out of reach, bad arguments).
    pub fn without_cluster(state: State, summary: String) -> CheckResult {
        CheckResult { state, summary, problems: Vec::new(), perf: Vec::new() }
    }
}

struct Findings {
    problems: Vec<(State, String)>,
}

impl Findings {
    fn add(&mut self, state: State, problem: String) {
        self.problems.push((state, problem));
    }

    fn state(&self) -> State {
        self.problems.iter().map(|(state, _)| *state).max().unwrap_or(State::Ok)
    }
}

/// Judges the cluster. `objects` and `plan` come from the snapshot `view` was built
/// from; `leader` is whether a scheduler holds the election.
pub fn evaluate(objects: &[Object], view: &StatusView, plan: &Plan, options: &CheckOptions) -> CheckResult {
    let mut findings = Findings { problems: Vec::new() };
    if let Some(node) = &options.node
        && !view.nodes.iter().any(|entry| &entry.name == node)
    {
        return CheckResult::without_cluster(State::Unknown, format!("node {node} is not a member of the cluster"));
    }
    let members = match &options.resource {
        Some(name) => match crate::state::conditions::resource_named(objects, name).map(|(_, members)| members) {
            Some(members) => Some(members),
            None => return CheckResult::without_cluster(State::Unknown, format!("resource {name} not found")),
        },
        None => None,
    };
    let in_scope = |primitive: &str| members.as_ref().is_none_or(|members| members.iter().any(|member| member == primitive));
    let node_in_scope = |node: &str| options.node.as_deref().is_none_or(|wanted| wanted == node);

    // Nodes.
    let nodes: Vec<_> = view.nodes.iter().filter(|node| node_in_scope(&node.name)).collect();
    let online = nodes.iter().filter(|node| matches!(node.state, "online" | "standby" | "maintenance")).count();
    if members.is_none() {
        for node in &nodes {
            match node.state {
                "unclean" => findings.add(State::Critical, format!("node {} is unclean (lost while it may run resources)", node.name)),
                "offline" if options.nodes_critical.is_none() => findings.add(State::Critical, format!("node {} is offline", node.name)),
                "offline" => findings.add(State::Warning, format!("node {} is offline", node.name)),
                "standby" => findings.add(State::Warning, format!("node {} is in standby", node.name)),
                "maintenance" => findings.add(State::Warning, format!("node {} is in maintenance", node.name)),
                _ => {}
            }
        }
        if let Some(critical) = options.nodes_critical
            && online < critical
        {
            findings.add(State::Critical, format!("{online} nodes online, fewer than {critical}"));
        }
        if let Some(warning) = options.nodes_warning
            && online < warning
        {
            findings.add(State::Warning, format!("{online} nodes online, fewer than {warning}"));
        }
        for fencing in view.fencing.iter().filter(|fencing| node_in_scope(&fencing.node)) {
            if fencing.state == "failed" {
                findings.add(State::Critical, format!("fencing of {} failed ({} by {})", fencing.node, fencing.action, fencing.by));
            }
        }
    }

    // Resources: instances the plan knows, fence devices aside (they run nothing).
    let instances: Vec<_> = plan.resources.iter().filter(|resource| resource.kind != ResourceKind::FenceDevice && in_scope(&resource.name)).collect();
    let runs_here = |placement: &crate::scheduler::plan::Placement| placement.role != Role::Stopped && node_in_scope(&placement.node);
    let started = instances.iter().filter(|resource| resource.current.iter().any(runs_here)).count();
    let wanted = instances.iter().filter(|resource| resource.current.iter().any(runs_here) || resource.next.iter().any(runs_here)).count();
    // A resource that should run and does not: a primitive (not a clone instance)
    // stopped for any reason but its target role; a clone none of whose instances run.
    let mut stopped_clones: std::collections::BTreeMap<&str, (usize, usize, Option<String>)> = std::collections::BTreeMap::new();
    for resource in &instances {
        let running = resource.current.iter().any(|placement| placement.role != Role::Stopped);
        let disabled = resource.reason.as_ref().is_some_and(|reason| reason.code == ReasonCode::TargetRoleStopped);
        match &resource.clone {
            Some(clone) => {
                let entry = stopped_clones.entry(clone.as_str()).or_default();
                entry.0 += 1;
                if running || disabled {
                    entry.1 += 1;
                } else if entry.2.is_none() {
                    entry.2 = resource.reason.as_ref().map(|reason| reason.text.clone());
                }
            }
            None if !running && !disabled && options.node.is_none() => {
                let why = resource.reason.as_ref().map(|reason| format!(": {}", reason.text)).unwrap_or_else(|| ": starting".to_string());
                let state = if resource.next.is_empty() { State::Critical } else { State::Warning };
                findings.add(state, format!("resource {} is stopped{why}", resource.id));
            }
            None => {}
        }
    }
    if options.node.is_none() {
        for (clone, (_, fine, why)) in &stopped_clones {
            if *fine == 0 {
                findings.add(State::Critical, format!("no instance of {clone} runs{}", why.as_ref().map(|why| format!(": {why}")).unwrap_or_default()));
            }
        }
    }
    for resource in &instances {
        if resource.frozen && resource.current.iter().any(runs_here) {
            findings.add(State::Warning, format!("resource {} is unmanaged (left alone)", resource.id));
        }
    }

    // Failures.
    let failure_entries: Vec<_> =
        view.failures.iter().filter(|failure| in_scope(crate::api::names::split_instance(&failure.resource).0) && node_in_scope(&failure.node)).collect();
    let failures: u64 = failure_entries
        .iter()
        .flat_map(|failure| failure.counts.values())
        .map(|count| count.parse::<u64>().unwrap_or(u64::from(crate::api::records::FAIL_COUNT_INFINITY)))
        .fold(0u64, u64::saturating_add);
    let failures_warning = u64::from(options.failures_warning.unwrap_or(1));
    let failures_critical = options.failures_critical.map(u64::from);
    if failures > 0 {
        let described: Vec<String> = failure_entries
            .iter()
            .map(|failure| {
                let counts: Vec<String> = failure.counts.iter().map(|(operation, count)| format!("{operation} {count}")).collect();
                format!("{} on {} ({})", failure.resource, failure.node, counts.join(", "))
            })
            .collect();
        let state = if failures_critical.is_some_and(|critical| failures >= critical) {
            State::Critical
        } else if failures >= failures_warning {
            State::Warning
        } else {
            State::Ok
        };
        if state != State::Ok {
            findings.add(state, format!("failures: {}", described.join("; ")));
        }
    }

    // Bans made by `pacer ban` / `pacer move`.
    let bans: Vec<String> = objects
        .iter()
        .filter_map(|object| {
            let Spec::Location(location) = &object.spec else { return None };
            let owner = object.metadata.annotations.get(annotations::OWNER)?;
            let resource = location.resource.as_ref()?.as_str();
            (location.score.is_some_and(|score| score == crate::api::Score::NEG_INFINITY) && in_scope(resource)).then(|| {
                format!("{resource} banned from {} by `pacer {owner}` ({})", location.node.as_ref().map(ToString::to_string).unwrap_or_default(), object.name())
            })
        })
        .collect();
    for ban in bans {
        findings.add(State::Warning, ban);
    }

    // Alerts whose last delivery failed: someone is not being told.
    if members.is_none() && options.node.is_none() {
        for alert in &view.alerts {
            findings.add(State::Warning, format!("alert {}: last delivery failed ({} failure(s)): {}", alert.name, alert.failures, alert.reason));
        }
    }

    if members.is_none() && options.node.is_none() && view.leader.is_none() {
        findings.add(State::Critical, "no scheduler leader: nothing is decided".to_string());
    }

    let mut problems = findings.problems.clone();
    problems.sort_by_key(|problem| std::cmp::Reverse(problem.0));
    let state = findings.state();
    let total_nodes = nodes.len();
    let summary = match (&options.resource, &options.node) {
        (Some(resource), _) => {
            let running: Vec<String> = instances
                .iter()
                .flat_map(|instance| instance.current.iter().filter(|placement| runs_here(placement)))
                .map(|placement| format!("{} {}", placement.role.as_str(), placement.node))
                .collect();
            if running.is_empty() { format!("{resource} runs nowhere") } else { format!("{resource}: {}", running.join(", ")) }
        }
        (None, Some(node)) => {
            let state = nodes.first().map(|node| node.state).unwrap_or("unknown");
            format!("node {node} {state}, {started} resources running there")
        }
        (None, None) => format!("{online}/{total_nodes} nodes online, {started}/{wanted} resources started"),
    };
    let summary = match problems.first() {
        Some((_, first)) if state != State::Ok => format!("{summary}; {first}"),
        _ => summary,
    };
    let max = |count: usize| Some(u64::try_from(count).unwrap_or(u64::MAX));
    let perf = vec![
        Perf {
            label: "nodes_online",
            value: u64::try_from(online).unwrap_or(u64::MAX),
            warn: options.nodes_warning.and_then(|n| u64::try_from(n).ok()),
            crit: options.nodes_critical.and_then(|n| u64::try_from(n).ok()),
            max: max(total_nodes),
        },
        Perf { label: "resources_started", value: u64::try_from(started).unwrap_or(u64::MAX), warn: None, crit: None, max: max(wanted) },
        Perf { label: "failures", value: failures, warn: Some(failures_warning), crit: failures_critical, max: None },
    ];
    CheckResult { state, summary, problems: problems.into_iter().map(|(state, problem)| format!("{}: {problem}", state.as_str())).collect(), perf }
}
