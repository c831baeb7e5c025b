//! The console's HTML, rendered on the server with maud (every value escaped). The
//! status fragment is what the event stream sends; the page is the fragment in its
//! layout. Pages carry no inline script or style (the content security policy
//! forbids them): behaviour is `assets/console.js`, reading `data-` attributes.

use std::time::{Duration, UNIX_EPOCH};

use maud::{DOCTYPE, Markup, html};

use crate::api::names::split_instance;
use crate::state::view::StatusView;

use super::Frame;

/// The verbs a resource's action dialog offers, with their button text.
pub const RESOURCE_VERBS: &[(&str, &str)] = &[
    ("move", "Move to node"),
    ("ban", "Ban from node"),
    ("clear", "Clear move/ban"),
    ("cleanup", "Clean up failures"),
    ("refresh", "Refresh (probe again)"),
    ("restart", "Restart"),
    ("enable", "Enable"),
    ("disable", "Disable"),
    ("manage", "Manage"),
    ("unmanage", "Unmanage"),
];

/// The console's pages, for the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Status,
    History,
    Sandbox,
    Configuration,
    /// A resource's scores (reached from the status page).
    Why,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Status, "/", "Status"),
    (Nav::History, "/history", "History"),
    (Nav::Sandbox, "/sandbox", "Sandbox"),
    (Nav::Configuration, "/config", "Configuration"),
];

/// The whole status page: the layout around the latest fragment.
pub fn status_page(frame: &Frame, read_only: bool) -> Markup {
    layout(
        "Status",
        Nav::Status,
        read_only,
        html! {
            main #status aria-live="polite" data-version=(frame.version) { (maud::PreEscaped(&frame.html)) }
            @if !read_only {
                (resource_dialog())
            }
        },
    )
}

/// A page: the header (navigation, connection state, the token field unless
/// read-only) and `body`.
pub fn layout(title: &str, active: Nav, read_only: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Pacer — " (title) }
                link rel="stylesheet" href="/assets/console.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                script src="/assets/console.js" defer {}
            }
            body data-read-only=(read_only) {
                header .top {
                    h1 { "Pacer" }
                    nav aria-label="Pages" {
                        @for (page, href, text) in NAV {
                            @if *page == active { a href=(href) aria-current="page" { (text) } } @else { a href=(href) { (text) } }
                        }
                    }
                    @if active == Nav::Status { span #connection role="status" { "connecting…" } }
                    @if read_only {
                        span .badge { "read-only" }
                    } @else {
                        form #token-form {
                            label for="token" { "Action token" }
                            input #token type="password" autocomplete="off" name="token";
                            button type="submit" { "Use" }
                        }
                    }
                }
                (body)
                @if !read_only { (command_log()) }
            }
        }
    }
}

fn command_log() -> Markup {
    html! {
        aside #commands aria-labelledby="commands-title" {
            h2 #commands-title { "Command log" }
            p .hint { "Each action and the pacer command that does the same." }
            ol #command-log {}
        }
    }
}

/// The dialog a resource's "Actions" button opens (filled in by the script).
fn resource_dialog() -> Markup {
    html! {
        dialog #resource-dialog aria-labelledby="resource-dialog-title" {
            form method="dialog" {
                h2 #resource-dialog-title { "Actions" }
                p { label for="action-node" { "Node (move, ban; cleanup and refresh: only there)" } " " select #action-node {} }
                p { label for="action-lifetime" { "Lifetime (move, ban; e.g. 10min; empty: until cleared)" } " " input #action-lifetime type="text" autocomplete="off"; }
                div .verbs {
                    @for (verb, text) in RESOURCE_VERBS {
                        button type="button" data-verb=(verb) { (text) }
                    }
                }
                p { button type="submit" value="close" { "Close" } }
            }
        }
    }
}

/// The status fragment: what `pacer status` shows, as tables, with actions unless
/// read-only.
pub fn status_fragment(view: &StatusView, revision: i64, error: Option<&str>, read_only: bool) -> Markup {
    let online = view.nodes.iter().filter(|node| node.state == "online").count();
    let running = view.resources.iter().filter(|resource| resource.node.is_some()).count();
    let node_names: Vec<&str> = view.nodes.iter().map(|node| node.name.as_str()).collect();
    let actions = !read_only;
    html! {
        div #cluster data-revision=(revision) data-nodes=(node_names.join(" ")) {
            p .summary {
                "Scheduler leader: " strong { (view.leader.as_deref().unwrap_or("none")) }
                " · nodes online: " (online) "/" (view.nodes.len())
                " · instances placed: " (running) "/" (view.resources.len())
                " · etcd revision " (revision)
            }
            @if let Some(error) = error {
                p .error role="alert" { "Not current: " (error) }
            }
            @if view.leader.is_none() {
                p .warning { "No scheduler holds the leadership: nothing is being decided." }
            }
            section aria-labelledby="nodes-title" {
                h2 #nodes-title { "Nodes" }
                table #nodes {
                    thead { tr { th { "Node" } th { "State" } th { "Operations" } th { "Self-fenced" } @if actions { th { "Actions" } } } }
                    tbody {
                        @for node in &view.nodes {
                            tr data-node=(node.name) data-state=(node.state) {
                                th scope="row" { (node.name) }
                                td { span class={ "state " (node.state) } { (node.state) } }
                                td { @match &node.operations { Some(ops) => { (ops.running) " running, " (ops.queued) " queued (limit " (ops.limit) ")" }, None => { "-" } } }
                                td { @match node.self_fencings.last() { Some(last) => { (node.self_fencings.len()) "×, last " (epoch(last.time)) ": " (last.cause) }, None => { "-" } } }
                                @if actions {
                                    td .actions {
                                        @if node.state == "standby" {
                                            button type="button" data-action="unstandby" data-node=(node.name) { "Unstandby" }
                                        } @else {
                                            button type="button" data-action="standby" data-node=(node.name) { "Standby" }
                                        }
                                        @if node.state == "maintenance" {
                                            button type="button" data-action="unmaintenance" data-node=(node.name) { "End maintenance" }
                                        } @else {
                                            button type="button" data-action="maintenance" data-node=(node.name) { "Maintenance" }
                                        }
                                        button type="button" data-action="drain" data-node=(node.name) { "Drain" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="resources-title" {
                h2 #resources-title { "Resources" }
                table #resources {
                    thead { tr { th { "Resource" } th { "Kind" } th { "Group" } th { "Node" } th { "Role" } th { "Notes" } @if actions { th { "Actions" } } } }
                    tbody {
                        @for resource in &view.resources {
                            @let base = split_instance(&resource.name).0;
                            tr data-resource=(base) data-instance=(resource.name) data-node=[resource.node.as_deref()] data-role=(resource.role) {
                                th scope="row" { a href={ "/why/" (base) } title={ "Why " (base) " runs where it runs" } { (resource.name) } }
                                td { (resource.kind) }
                                td { (resource.group.as_deref().unwrap_or("-")) }
                                td { (resource.node.as_deref().unwrap_or("-")) }
                                td { span class={ "role " (resource.role) } { (resource.role) } }
                                td {
                                    @if resource.failed { span .failed { "FAILED" } " " }
                                    @if resource.unmanaged { span .unmanaged { "unmanaged" } " " }
                                    @if let Some(reason) = &resource.reason { (reason) }
                                }
                                @if actions {
                                    td .actions {
                                        button type="button" data-open-actions=(base) aria-label={ "Actions for " (base) } { "Actions" }
                                        @if let Some(group) = &resource.group {
                                            " " button type="button" data-open-actions=(group) aria-label={ "Actions for group " (group) } { "Group" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.failures.is_empty() {
                section aria-labelledby="failures-title" {
                    h2 #failures-title { "Failures" }
                    table #failures {
                        thead { tr { th { "Resource" } th { "Node" } th { "Counts" } th { "Last" } th { "Reason" } } }
                        tbody {
                            @for failure in &view.failures {
                                tr {
                                    th scope="row" { (failure.resource) }
                                    td { (failure.node) }
                                    td { (failure.counts.iter().map(|(operation, count)| format!("{operation}={count}")).collect::<Vec<_>>().join(", ")) }
                                    td { (failure.last_failure.map(epoch).unwrap_or_else(|| "-".to_string())) }
                                    td { (failure.reason.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.fencing.is_empty() {
                section aria-labelledby="fencing-title" {
                    h2 #fencing-title { "Fencing" }
                    table #fencing {
                        thead { tr { th { "Node" } th { "Action" } th { "State" } th { "By" } th { "When" } th { "Attempts" } } }
                        tbody {
                            @for fencing in &view.fencing {
                                tr data-fenced=(fencing.node) data-fencing-state=(fencing.state) {
                                    th scope="row" { (fencing.node) }
                                    td { (fencing.action) }
                                    td { span class={ "fencing " (fencing.state) } { (fencing.state) } }
                                    td { (fencing.by) }
                                    td { (epoch(fencing.time)) }
                                    td { (fencing.attempts.join("; ")) }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.constraints.is_empty() {
                section aria-labelledby="constraints-title" {
                    h2 #constraints-title { "Constraints made by commands" }
                    table #constraints {
                        thead { tr { th { "Name" } th { "Verb" } th { "Resource" } th { "Node" } th { "Score" } th { "Who" } th { "Expires" } th { "State" } } }
                        tbody {
                            @for constraint in &view.constraints {
                                tr {
                                    th scope="row" { (constraint.name) }
                                    td { (constraint.owner) }
                                    td { (constraint.resource) @if let Some(role) = &constraint.role { " (" (role) ")" } }
                                    td { (constraint.node) }
                                    td { (constraint.score) }
                                    td { (constraint.created_by.as_deref().unwrap_or("-")) }
                                    td { (constraint.expires.as_deref().unwrap_or("never")) }
                                    td { (constraint.state) @if let Some(note) = &constraint.note { ": " (note) } }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.requests.is_empty() {
                section aria-labelledby="requests-title" {
                    h2 #requests-title { "Cleanups and refreshes waiting for their node's agent" }
                    ul { @for request in &view.requests { li { (request.kind) " of " (request.resources.join(", ")) " on " (request.node) " by " (request.by) } } }
                }
            }
            @if !view.alerts.is_empty() {
                section aria-labelledby="alerts-title" {
                    h2 #alerts-title { "Alerts whose last delivery failed" }
                    ul { @for alert in &view.alerts { li { (alert.name) ": " (alert.failures) " failed, event " (alert.sequence) " at " (epoch(alert.time)) ": " (alert.reason) } } }
                }
            }
            section aria-labelledby="decisions-title" {
                h2 #decisions-title { "Latest decisions" }
                @if view.decisions.is_empty() { p { "none yet" } }
                ol .decisions {
                    @for decision in &view.decisions {
                        li {
                            (epoch(decision.time)) " (revision " (decision.input_revision) "): "
                            @if decision.actions.is_empty() { "no actions" } @else { (decision.actions.join("; ")) }
                        }
                    }
                }
            }
        }
    }
}

/// Seconds since the epoch as RFC 3339 (UTC).
pub fn epoch(seconds: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))).to_string()
}
