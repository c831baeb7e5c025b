//! The configuration page: every object as YAML (what `pacer get -o yaml` prints),
//! a diff before apply, and a picture of the resources with their colocations and
//! orders, drawn on the server as SVG (`graph_svg`, pure).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use maud::{Markup, html};

use crate::api::constraint::OrderAction;
use crate::api::params::redact_object;
use crate::api::{Object, Spec};
use crate::cli::output::objects_yaml;

use super::page::{Nav, layout};

/// Every object, grouped by kind, each folded; the picture; the diff and apply form.
pub fn config_page(objects: &[Object], revision: i64, read_only: bool) -> Markup {
    let mut by_kind: BTreeMap<String, Vec<&Object>> = BTreeMap::new();
    for object in objects {
        by_kind.entry(object.kind().to_string()).or_default().push(object);
    }
    layout(
        "Configuration",
        Nav::Configuration,
        read_only,
        html! {
            main #configuration {
                h2 { "Configuration" }
                p .hint { (objects.len()) " objects at etcd revision " (revision) ", as " code { "pacer get all -o yaml" } " shows them." }
                section aria-labelledby="picture-title" {
                    h3 #picture-title { "Resources, colocations and orders" }
                    p .hint { "Solid arrows: orders (first → then). Dashed lines: colocations (the dependent resource → the one it is placed with), with their score." }
                    img #graph src="/config/graph.svg" alt="The resources with their colocations and orders";
                }
                section aria-labelledby="objects-title" {
                    h3 #objects-title { "Objects" }
                    @for (kind, objects) in &by_kind {
                        h4 { (kind) " (" (objects.len()) ")" }
                        @for object in objects {
                            details .object data-key=(object.key().to_string()) {
                                summary { (object.key().to_string()) }
                                pre { (objects_yaml(&[shown(object)])) }
                            }
                        }
                    }
                }
                section aria-labelledby="change-title" {
                    h3 #change-title { "Change the configuration" }
                    form #change-form method="post" action="/config" {
                        p {
                            label for="change-manifests" { "Manifests (YAML): the diff shows what would change and what would move; nothing is written until you apply" }
                            br;
                            textarea #change-manifests rows="14" cols="80" spellcheck="false" {}
                        }
                        p {
                            button type="submit" #diff-button { "Diff" }
                            @if !read_only { " " button type="button" #apply-button { "Apply" } }
                        }
                    }
                    section #change-result aria-live="polite" {}
                }
            }
        },
    )
}

/// An object as `pacer get -o yaml` shows it: plain values of secret-named
/// parameters redacted.
fn shown(object: &Object) -> serde_json::Value {
    let mut value = object.to_value();
    redact_object(&mut value);
    value
}

/// The picture: every configured resource and group as a box (a group lists its
/// members), orders as arrows, colocations as dashed lines; boxes in columns by how
/// many orders come before them. Every text is escaped.
pub fn graph_svg(objects: &[Object]) -> String {
    const WIDTH: i64 = 200;
    const GAP_X: i64 = 170;
    const GAP_Y: i64 = 24;
    const LINE: i64 = 16;
    // Boxes: groups and resources not in a group (fence devices are not placed).
    let mut members_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut box_of: BTreeMap<String, String> = BTreeMap::new();
    let mut boxes: Vec<(String, String, Vec<String>)> = Vec::new();
    for object in objects {
        if let Spec::Group(group) = &object.spec {
            let members: Vec<String> = group.members.iter().map(|member| member.as_str().to_string()).collect();
            for member in &members {
                box_of.insert(member.clone(), object.name().as_str().to_string());
            }
            members_of.insert(object.name().as_str().to_string(), members);
        }
    }
    for object in objects {
        let name = object.name().as_str().to_string();
        match &object.spec {
            Spec::Group(group) => {
                let label = if group.clone.is_some() { "cloned group" } else { "group" };
                boxes.push((name.clone(), label.to_string(), members_of.get(&name).cloned().unwrap_or_default()));
                box_of.insert(name.clone(), name);
            }
            Spec::Resource(resource) if !box_of.contains_key(&name) => {
                let label = match &resource.clone {
                    Some(clone) if clone.promotable.is_some() => format!("promotable clone · {}", resource.agent),
                    Some(_) => format!("clone · {}", resource.agent),
                    None => resource.agent.to_string(),
                };
                boxes.push((name.clone(), label, Vec::new()));
                box_of.insert(name.clone(), name);
            }
            _ => {}
        }
    }
    // Edges between boxes: (from, to, constraint name, short label, order?).
    let mut edges: Vec<(String, String, String, String, bool)> = Vec::new();
    let boxed = |name: &str| box_of.get(name).cloned();
    for object in objects {
        match &object.spec {
            Spec::Order(order) => {
                let mut chain: Vec<String> = Vec::new();
                if let (Some(first), Some(then)) = (&order.first, &order.then) {
                    chain.extend([first.as_str().to_string(), then.as_str().to_string()]);
                }
                for set in &order.sets {
                    chain.extend(set.resources.iter().map(|name| name.as_str().to_string()));
                }
                // Only actions other than start → start are written on the arrow.
                let (first, then) = (order.first_action.unwrap_or(OrderAction::Start), order.then_action.unwrap_or(OrderAction::Start));
                let label = if (first, then) == (OrderAction::Start, OrderAction::Start) {
                    String::new()
                } else {
                    format!("{} → {}", action_name(first), action_name(then))
                };
                for pair in chain.windows(2) {
                    if let (Some(from), Some(to)) = (boxed(&pair[0]), boxed(&pair[1])) {
                        edges.push((from, to, object.name().as_str().to_string(), label.clone(), true));
                    }
                }
            }
            Spec::Colocation(colocation) => {
                // The score, and the roles when the colocation names them.
                let score = colocation.score.to_string().replace("-INFINITY", "−∞").replace("INFINITY", "+∞");
                let roles = match (colocation.role, colocation.with_role) {
                    (None, None) => String::new(),
                    (role, with) => format!(" {} with {}", role.map_or("any", |role| role.as_str()), with.map_or("any", |role| role.as_str())),
                };
                let label = format!("{score}{roles}");
                let name = object.name().as_str().to_string();
                if let (Some(resource), Some(with)) = (&colocation.resource, &colocation.with_resource)
                    && let (Some(from), Some(to)) = (boxed(resource.as_str()), boxed(with.as_str()))
                {
                    edges.push((from, to, name.clone(), label.clone(), false));
                }
                let members: Vec<String> = colocation.sets.iter().flat_map(|set| set.resources.iter().map(|name| name.as_str().to_string())).collect();
                for pair in members.windows(2) {
                    if let (Some(from), Some(to)) = (boxed(&pair[1]), boxed(&pair[0])) {
                        edges.push((from, to, name.clone(), label.clone(), false));
                    }
                }
            }
            _ => {}
        }
    }
    edges.retain(|(from, to, _, _, _)| from != to);
    // Columns: the longest chain of orders before each box (cycles cut at the box count).
    let mut column: BTreeMap<&str, i64> = boxes.iter().map(|(name, _, _)| (name.as_str(), 0)).collect();
    for _ in 0..boxes.len() {
        let mut changed = false;
        for (from, to, _, _, order) in &edges {
            if !order {
                continue;
            }
            let next = column.get(from.as_str()).copied().unwrap_or(0) + 1;
            if let Some(current) = column.get_mut(to.as_str())
                && *current < next
                && next < i64::try_from(boxes.len()).unwrap_or(i64::MAX)
            {
                *current = next;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Positions: boxes of a column stacked in definition order.
    let mut place: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    let mut heights: BTreeMap<i64, i64> = BTreeMap::new();
    for (name, _, members) in &boxes {
        let col = column.get(name.as_str()).copied().unwrap_or(0);
        let height = 44 + LINE * i64::try_from(members.len()).unwrap_or(0);
        let y = heights.entry(col).or_insert(GAP_Y);
        place.insert(name.as_str(), (20 + col * (WIDTH + GAP_X), *y, height));
        *y += height + GAP_Y;
    }
    let width = 40 + (heights.keys().max().copied().unwrap_or(0) + 1) * (WIDTH + GAP_X);
    let height = heights.values().max().copied().unwrap_or(GAP_Y) + GAP_Y;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="sans-serif" font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#20232a"/></marker></defs>"##
    );
    if boxes.is_empty() {
        let _ = write!(svg, r#"<text x="20" y="30">No resources are configured.</text>"#);
    }
    // Orders leave and enter a box two thirds down, colocations one third down.
    // Labels are drawn last, over boxes and lines, each moved down until it overlaps
    // no other.
    let mut labels: Vec<(i64, i64, String, &str)> = Vec::new();
    for (from, to, name, label, order) in &edges {
        let (Some(&(x1, y1, h1)), Some(&(x2, y2, h2))) = (place.get(from.as_str()), place.get(to.as_str())) else { continue };
        let (start_y, end_y) = if *order { (y1 + h1 * 2 / 3, y2 + h2 * 2 / 3) } else { (y1 + h1 / 3, y2 + h2 / 3) };
        let (start_x, end_x) = if x1 < x2 {
            (x1 + WIDTH, x2)
        } else if x1 > x2 {
            (x1, x2 + WIDTH)
        } else {
            (x1 + WIDTH, x2 + WIDTH)
        };
        let bend = if x1 == x2 { start_x + 60 } else { (start_x + end_x) / 2 };
        if !label.is_empty() {
            labels.push((bend, (start_y + end_y) / 2 - 4, label.clone(), if *order { "#20232a" } else { "#a05a00" }));
        }
        let style = if *order { r##"stroke="#20232a" marker-end="url(#arrow)""## } else { r##"stroke="#a05a00" stroke-dasharray="6 4""## };
        let _ = write!(
            svg,
            r##"<g data-edge="{}"><title>{} {}</title><path d="M{start_x} {start_y} C{bend} {start_y} {bend} {end_y} {end_x} {end_y}" fill="none" stroke-width="1.5" {style}/></g>"##,
            escape(name),
            if *order { "order" } else { "colocation" },
            escape(name),
        );
    }
    for (name, label, members) in &boxes {
        let Some(&(x, y, box_height)) = place.get(name.as_str()) else { continue };
        let _ = write!(
            svg,
            r##"<g data-box="{}"><rect x="{x}" y="{y}" width="{WIDTH}" height="{box_height}" rx="6" fill="#ffffff" stroke="#5f6368"/><text x="{}" y="{}" font-weight="bold">{}</text><text x="{}" y="{}" fill="#5f6368" font-size="10">{}</text>"##,
            escape(name),
            x + 8,
            y + 18,
            escape(name),
            x + 8,
            y + 34,
            escape(&shorten(label, 34))
        );
        for (index, member) in members.iter().enumerate() {
            let _ = write!(svg, r#"<text x="{}" y="{}">· {}</text>"#, x + 14, y + 50 + LINE * i64::try_from(index).unwrap_or(0), escape(member));
        }
        svg.push_str("</g>");
    }
    let mut placed: Vec<(i64, i64, i64)> = Vec::new();
    for (x, mut y, label, color) in labels {
        let half = 4 * i64::try_from(label.chars().count()).unwrap_or(0);
        while placed.iter().any(|&(other_x, other_y, other_half)| (other_y - y).abs() < 13 && (other_x - x).abs() < half + other_half) {
            y += 13;
        }
        placed.push((x, y, half));
        let _ = write!(
            svg,
            r##"<text x="{x}" y="{y}" text-anchor="middle" fill="{color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{}</text>"##,
            escape(&label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn action_name(action: OrderAction) -> &'static str {
    match action {
        OrderAction::Start => "start",
        OrderAction::Stop => "stop",
        OrderAction::Promote => "promote",
        OrderAction::Demote => "demote",
    }
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit { text.to_string() } else { format!("{}…", text.chars().take(limit - 1).collect::<String>()) }
}

/// Text for SVG: the five characters XML gives meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
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
    fn orders_put_boxes_in_columns_and_every_edge_is_drawn() {
        let objects = objects(
            "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: db}\nspec: {agent: 'ocf:heartbeat:Dummy'}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: ip}\nspec: {agent: 'ocf:heartbeat:Dummy'}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:heartbeat:Dummy'}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {name: front}\nspec: {members: [ip, web]}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {name: db-then-front}\nspec: {first: db, then: front}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Colocation\nmetadata: {name: web-with-db}\nspec: {resource: web, withResource: db, score: INFINITY}\n",
        );
        let svg = graph_svg(&objects);
        // db in the first column, the group (with its members) in the second.
        assert!(svg.contains(r#"<g data-box="db"><rect x="20" "#), "{svg}");
        assert!(svg.contains(r#"<g data-box="front"><rect x="390" "#), "{svg}");
        assert!(svg.contains("· ip") && svg.contains("· web"), "{svg}");
        assert!(!svg.contains(r#"data-box="web""#), "a member is drawn in its group");
        assert!(svg.contains(r#"<g data-edge="db-then-front"><title>order db-then-front</title>"#), "the order is drawn: {svg}");
        assert!(svg.contains(r#"<g data-edge="web-with-db"><title>colocation web-with-db</title>"#), "the colocation is drawn: {svg}");
        assert!(svg.contains(">+∞</text>"), "the colocation's score: {svg}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
