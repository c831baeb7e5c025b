//! The console's other pages: the history explorer, why, the sandbox and the
//! configuration (objects as YAML, diff before apply, the picture). Each reads
//! through the `ops` function its CLI command uses; the sandbox writes nothing.

use maud::{Markup, html};

use crate::api::manifest::Diagnostic;
use crate::ops::history::{Entry, HistoryDiff, Replay, Shown};
use crate::ops::simulate::Simulation;
use crate::ops::why::{Why, amount};

use super::page::{Nav, epoch, layout};

/// The decision list, newest first, with the form to compare two.
pub fn history_page(entries: &[Entry], read_only: bool) -> Markup {
    layout(
        "History",
        Nav::History,
        read_only,
        html! {
            main #history {
                h2 { "Decisions" }
                p .hint { "Every decision of the scheduler leader, with its actions and the etcd revision of its input. A stored input can be replayed: the scheduler runs again on it and must decide the same." }
                @if entries.len() >= 2 {
                    form #history-diff method="get" action="/history/diff" {
                        label for="diff-from" { "Compare" } " "
                        select #diff-from name="from" { @for entry in entries.iter().skip(1) { option value=(entry.record.input_revision) { (entry.record.input_revision) } } }
                        " " label for="diff-to" { "with" } " "
                        select #diff-to name="to" { @for entry in entries { option value=(entry.record.input_revision) { (entry.record.input_revision) } } }
                        " " button type="submit" { "Show the difference" }
                    }
                }
                table #decisions {
                    thead { tr { th { "Input revision" } th { "Time" } th { "Term" } th { "Actions" } th { "Fencing" } th { "Input" } } }
                    tbody {
                        @for entry in entries {
                            tr data-revision=(entry.record.input_revision) {
                                th scope="row" { a href={ "/history/" (entry.record.input_revision) } { (entry.record.input_revision) } }
                                td { (epoch(entry.record.time)) }
                                td { (entry.record.term) }
                                td { @if entry.record.actions.is_empty() { "no actions" } @else { (entry.record.actions.join("; ")) } }
                                td { (entry.record.fencing.join("; ")) }
                                td { @if entry.input { a href={ "/history/" (entry.record.input_revision) "/replay" } { "replay" } } @else { "not stored" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One decision: its actions, reasons, fencing and input.
pub fn decision_page(shown: &Shown, read_only: bool) -> Markup {
    let record = &shown.record;
    let input = &shown.input;
    layout(
        "Decision",
        Nav::History,
        read_only,
        html! {
            main #decision {
                h2 { "Decision at input revision " (record.input_revision) }
                p { (epoch(record.time)) ", term " (record.term) " · " a href={ "/history/" (record.input_revision) "/replay" } { "replay it" } " · " a href="/history" { "all decisions" } }
                h3 { "Actions" }
                @if record.actions.is_empty() { p { "none" } }
                ul { @for action in &record.actions { li { (action) } } }
                @if !record.fencing.is_empty() { h3 { "Fencing" } ul { @for fencing in &record.fencing { li { (fencing) } } } }
                @if !record.not_running.is_empty() { h3 { "Not running, and why" } ul { @for line in &record.not_running { li { (line) } } } }
                h3 { "Input" }
                @if let Some(problem) = &input.problem { p .error { (problem) } }
                dl {
                    dt { "Time the scheduler saw" } dd { (epoch(input.now)) }
                    dt { "Quorum" } dd { (input.quorum) }
                    @if let Some(objects) = input.objects { dt { "Objects" } dd { (objects) } }
                    @if let Some(histories) = input.histories { dt { "Operation histories" } dd { (histories) } }
                    dt { "Stored" } dd { (input.blobs) " blobs, " (input.stored_bytes) " bytes compressed" }
                }
                @if !input.nodes.is_empty() {
                    table { thead { tr { th { "Node" } th { "As the decision saw it" } } } tbody { @for (node, liveness) in &input.nodes { tr { th scope="row" { (node) } td { (liveness) } } } } }
                }
            }
        },
    )
}

pub fn replay_page(replay: &Replay, read_only: bool) -> Markup {
    layout(
        "Replay",
        Nav::History,
        read_only,
        html! {
            main #replay {
                h2 { "Replay of the decision at input revision " (replay.revision) }
                @if replay.matches {
                    p .ok #replay-verdict data-matches="true" { "The scheduler, run again on the stored input, decides exactly the same." }
                } @else {
                    p .error #replay-verdict data-matches="false" { "The scheduler decides differently now:" }
                    ul { @for difference in &replay.differences { li { (difference) } } }
                }
                p { a href={ "/history/" (replay.revision) } { "the decision" } " · " a href="/history" { "all decisions" } }
            }
        },
    )
}

pub fn history_diff_page(diff: &HistoryDiff, read_only: bool) -> Markup {
    layout(
        "Difference",
        Nav::History,
        read_only,
        html! {
            main #history-difference {
                h2 { "From input revision " (diff.from) " to " (diff.to) }
                h3 { "What changed in the input" }
                @if diff.input.is_empty() { p { "nothing" } }
                ul { @for line in &diff.input { li { (line) } } }
                h3 { "What changed in the decision" }
                @if diff.decision.is_empty() { p { "nothing" } }
                ul { @for line in &diff.decision { li { (line) } } }
                p { a href="/history" { "all decisions" } }
            }
        },
    )
}

/// `pacer why` for one resource: each instance's verdict, every node's score and the
/// contributions that made it.
pub fn why_page(why: &Why, read_only: bool) -> Markup {
    layout(
        "Why",
        Nav::Why,
        read_only,
        html! {
            main #why {
                h2 { "Why " (why.resource) " runs where it runs" }
                p .hint { "Every node's final score and what made it, in the order the scheduler applied it (etcd revision " (why.revision) ")." }
                @for instance in &why.instances {
                    section .instance data-instance=(instance.id) {
                        h3 { (instance.id) }
                        p .verdict { (instance.verdict) }
                        table {
                            thead { tr { th { "Node" } th { "State" } th { "Score" } th { "Contributions" } } }
                            tbody {
                                @for node in &instance.nodes {
                                    tr data-node=(node.node) {
                                        th scope="row" { (node.node) }
                                        td { (node.state.as_str()) @if let Some(reason) = &node.unclean_reason { ": " (reason) } }
                                        td .score { (node.score.to_string()) }
                                        td {
                                            ul .contributions {
                                                @for entry in &node.contributions {
                                                    li {
                                                        code { (amount(&entry.contribution)) } " " (entry.contribution.text)
                                                        @if let Some(owner) = &entry.owner {
                                                            " — made by " code { "pacer " (owner) }
                                                            @if let Some(by) = &entry.created_by { " (" (by) ")" }
                                                            @if let Some(created) = &entry.created { " at " (created) }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The sandbox: inject failures or paste manifests; the result comes back as a
/// fragment (`simulation_fragment`).
pub fn sandbox_page(nodes: &[String], read_only: bool) -> Markup {
    layout(
        "Sandbox",
        Nav::Sandbox,
        read_only,
        html! {
            main #sandbox {
                h2 { "Sandbox" }
                p .hint { "What would the cluster do if…? Nothing here is written: the live cluster is read once and the scheduler runs on a changed copy (pacer simulate --live)." }
                form #sandbox-form method="post" action="/sandbox" {
                    fieldset {
                        legend { "Nodes that fail" }
                        @for node in nodes {
                            label .check { input type="checkbox" name="nodeFail" value=(node); " " (node) }
                        }
                    }
                    p {
                        label for="op-fail" { "Operation failures, one per line: RESOURCE:OPERATION:NODE=RC (e.g. web:monitor:n1=7)" }
                        br;
                        textarea #op-fail rows="3" cols="60" {}
                    }
                    p {
                        label for="manifests" { "Changed manifests (YAML), checked as pacer apply checks them" }
                        br;
                        textarea #manifests rows="12" cols="80" spellcheck="false" {}
                        br;
                        label for="manifest-file" { "or load a file" } " "
                        input #manifest-file type="file" accept=".yaml,.yml,.json";
                    }
                    p {
                        button type="submit" #simulate { "Simulate" }
                        @if !read_only { " " button type="button" #apply-manifests { "Apply the manifests" } }
                    }
                }
                section #sandbox-result aria-live="polite" {}
            }
        },
    )
}

/// A simulation: the transition (what the live cluster would do differently) and the
/// revised status.
pub fn simulation_fragment(simulation: &Simulation) -> Markup {
    // What the live cluster would do differently (fence devices' starts are
    // bookkeeping: the fencer runs them on demand).
    let new_actions: Vec<_> = simulation.plan.live_actions().filter(|action| !simulation.before.actions.contains(action)).collect();
    let new_fencing: Vec<_> = simulation.plan.fencing.iter().filter(|fencing| !simulation.before.fencing.contains(fencing)).collect();
    html! {
        div #simulation data-revision=(simulation.revision) {
            h3 { "Simulated on the live cluster at revision " (simulation.revision) " — nothing was written" }
            h4 { "Transition" }
            @if new_actions.is_empty() && new_fencing.is_empty() { p #no-change { "Nothing would change." } }
            ul #transition {
                @for fencing in &new_fencing { li .fence { "Fence (" (fencing.action) ") " (fencing.node) ": " (fencing.reason) } }
                @for action in &new_actions { li data-verb=(action.verb) data-resource=(action.resource) { strong { (action.verb) } " " (action.resource) " (" (action.detail) ")" } }
            }
            h4 { "Revised status" }
            table #revised-nodes {
                thead { tr { th { "Node" } th { "State" } } }
                tbody { @for node in &simulation.plan.nodes { tr data-node=(node.name) data-state=(node.state.as_str()) { th scope="row" { (node.name) } td { (node.state.as_str()) @if let Some(reason) = &node.unclean_reason { ": " (reason) } } } } }
            }
            table #revised-resources {
                thead { tr { th { "Resource" } th { "Now" } th { "Then" } th { "Why not running" } } }
                tbody {
                    @for resource in &simulation.plan.resources {
                        @let then = resource.next.iter().map(|placement| format!("{} ({})", placement.node, placement.role.as_str())).collect::<Vec<_>>().join(", ");
                        @let now = resource.current.iter().map(|placement| format!("{} ({})", placement.node, placement.role.as_str())).collect::<Vec<_>>().join(", ");
                        tr data-instance=(resource.id) data-node=[resource.next.first().map(|placement| placement.node.as_str())] {
                            th scope="row" { (resource.id) }
                            td { @if now.is_empty() { "-" } @else { (now) } }
                            td { @if then.is_empty() { "stopped" } @else { (then) } }
                            td { @if let Some(reason) = &resource.reason { (reason.text) } }
                        }
                    }
                }
            }
        }
    }
}

/// Why a request was refused: each problem with its file, line, object and field.
pub fn diagnostics_fragment(diagnostics: &[Diagnostic]) -> Markup {
    html! {
        div .diagnostics role="alert" {
            p .error { (diagnostics.len()) " problem" @if diagnostics.len() != 1 { "s" } " found; nothing was written" }
            ul { @for diagnostic in diagnostics { li { code { (diagnostic.to_string()) } } } }
        }
    }
}
