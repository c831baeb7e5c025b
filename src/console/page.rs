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
            main #status data-version=(frame.version) { (maud::PreEscaped(&frame.html)) }
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
                        // No `name`, and POST: submitted before the script runs, the token
                        // goes nowhere (never into a URL).
                        form #token-form method="post" action="/" {
                            label for="token" { "Action token" }
                            input #token type="password" autocomplete="off";
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

/// The head: the summary, warnings and the nodes with their actions.
fn status_head(view: &StatusView, revision: i64, error: Option<&str>, actions: bool) -> Markup {
    let online = view.nodes.iter().filter(|node| node.state == "online").count();
    let running = view.resources.iter().filter(|resource| resource.node.is_some()).count();
    html! {
        {
            p .summary aria-live="polite" {
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
                                        @if node.standby {
                                            button type="button" data-action="unstandby" data-node=(node.name) aria-label={ "Unstandby " (node.name) } { "Unstandby" }
                                        } @else {
                                            button type="button" data-action="standby" data-node=(node.name) aria-label={ "Standby " (node.name) } { "Standby" }
                                        }
                                        @if node.maintenance {
                                            button type="button" data-action="unmaintenance" data-node=(node.name) aria-label={ "End maintenance of " (node.name) } { "End maintenance" }
                                        } @else {
                                            button type="button" data-action="maintenance" data-node=(node.name) aria-label={ "Maintenance of " (node.name) } { "Maintenance" }
                                        }
                                        button type="button" data-action="drain" data-node=(node.name) aria-label={ "Drain " (node.name) } { "Drain" }
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

/// The status fragment in three parts, so a change is sent as a patch: the head
/// (summary, nodes), one row per resource instance (keyed), and the tail (failures,
/// fencing, constraints, requests, alerts, decisions).
pub struct Parts {
    /// The head's inner HTML.
    pub head: String,
    /// The head's `data-revision` and `data-nodes`.
    pub revision: i64,
    pub nodes: String,
    /// Each instance's `<tr>`, keyed (its `id` is `row-KEY`), in display order.
    pub rows: Vec<(String, String)>,
    pub tail: String,
    pub actions: bool,
}

impl Parts {
    /// The whole fragment: what a page starts from.
    pub fn html(&self) -> String {
        let mut out = String::with_capacity(self.head.len() + self.tail.len() + self.rows.iter().map(|(_, row)| row.len()).sum::<usize>() + 512);
        out.push_str(&html! { div #part-head data-revision=(self.revision) data-nodes=(self.nodes) { (maud::PreEscaped(&self.head)) } }.into_string());
        out.push_str(&resources_table_open(self.actions).into_string());
        for (_, row) in &self.rows {
            out.push_str(row);
        }
        out.push_str("</tbody></table></section>");
        out.push_str(&html! { div #part-tail { (maud::PreEscaped(&self.tail)) } }.into_string());
        format!("<div id=\"cluster\">{out}</div>")
    }

    /// What changed from `previous` to this, as the JSON a page applies (`patch`
    /// events): the head and tail when they changed, rows set or removed, the order
    /// when it changed.
    pub fn patch(&self, previous: &Parts) -> serde_json::Value {
        use std::collections::HashMap;
        let before: HashMap<&str, &str> = previous.rows.iter().map(|(key, row)| (key.as_str(), row.as_str())).collect();
        let now: HashMap<&str, &str> = self.rows.iter().map(|(key, row)| (key.as_str(), row.as_str())).collect();
        let set: Vec<(&str, &str)> =
            self.rows.iter().filter(|(key, row)| before.get(key.as_str()) != Some(&row.as_str())).map(|(key, row)| (key.as_str(), row.as_str())).collect();
        let remove: Vec<&str> = previous.rows.iter().map(|(key, _)| key.as_str()).filter(|key| !now.contains_key(key)).collect();
        let same_order = self.rows.len() == previous.rows.len() && self.rows.iter().zip(&previous.rows).all(|((a, _), (b, _))| a == b);
        serde_json::json!({
            "head": (self.head != previous.head || self.revision != previous.revision || self.nodes != previous.nodes)
                .then(|| serde_json::json!({ "html": self.head, "revision": self.revision, "nodes": self.nodes })),
            "tail": (self.tail != previous.tail).then_some(&self.tail),
            "set": set,
            "remove": remove,
            "order": (!same_order).then(|| self.rows.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>()),
        })
    }
}

fn resources_table_open(actions: bool) -> Markup {
    html! {
        (maud::PreEscaped("<section aria-labelledby=\"resources-title\">"))
        h2 #resources-title { "Resources" }
        (maud::PreEscaped("<table id=\"resources\">"))
        thead { tr { th { "Resource" } th { "Kind" } th { "Group" } th { "Node" } th { "Role" } th { "Notes" } @if actions { th { "Actions" } } } }
        (maud::PreEscaped("<tbody id=\"resource-rows\">"))
    }
}

/// The status fragment's parts: what `pacer status` shows, as tables, with actions
/// unless read-only.
pub fn status_parts(view: &StatusView, revision: i64, error: Option<&str>, read_only: bool) -> Parts {
    let actions = !read_only;
    let node_names: Vec<&str> = view.nodes.iter().map(|node| node.name.as_str()).collect();
    let mut seen = std::collections::HashMap::new();
    let rows = view
        .resources
        .iter()
        .map(|resource| {
            // An instance active on several nodes has a row per node.
            let key = format!("{}@{}", resource.name, resource.node.as_deref().unwrap_or(""));
            let count = seen.entry(key.clone()).or_insert(0);
            *count += 1;
            let key = if *count == 1 { key } else { format!("{key}#{count}") };
            let row = resource_row(&key, resource, actions).into_string();
            (key, row)
        })
        .collect();
    Parts {
        head: status_head(view, revision, error, actions).into_string(),
        revision,
        nodes: node_names.join(" "),
        rows,
        tail: status_tail(view).into_string(),
        actions,
    }
}

fn resource_row(key: &str, resource: &crate::state::view::ResourceView, actions: bool) -> Markup {
    let base = split_instance(&resource.name).0;
    html! {
        tr id={ "row-" (key) } data-resource=(base) data-instance=(resource.name) data-node=[resource.node.as_deref()] data-role=(resource.role) {
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

fn status_tail(view: &StatusView) -> Markup {
    html! {
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

/// Seconds since the epoch as RFC 3339 (UTC).
pub fn epoch(seconds: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))).to_string()
}
