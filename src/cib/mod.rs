//! Importing a Pacemaker CIB (XML) into Pacer's objects and observed state.
//!
//! `import` maps the configuration section to desired objects and the status section
//! to `Observed`, so a Pacemaker scenario can be fed to the scheduler. Anything that
//! has no Pacer equivalent is listed in `Imported::unmapped`, never dropped silently;
//! only a document that is not XML, or not a CIB, is an error.
//!
//! Pure: no IO, no clock. `xml` is the only module that touches the XML crate.

mod config;
mod constraints;
mod resources;
pub(crate) mod status;
mod values;
mod xml;

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashSet};

use crate::api::{Name, Object};
use crate::scheduler::snapshot::Observed;

use xml::Element;

/// A CIB mapped to Pacer.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// Desired objects in CIB order: nodes, the ClusterPolicy, resources, constraints,
    /// fencing topology.
    pub objects: Vec<Object>,
    pub observed: Observed,
    /// `<cib execution-date>`: the time of the decision, seconds since the epoch.
    pub now: Option<i64>,
    /// Everything that could not be mapped, in the order it was met.
    pub unmapped: Vec<Unmapped>,
    /// Pacemaker clone (or master) id to the Resource or Group it was folded into.
    pub clone_ids: BTreeMap<String, String>,
}

/// One piece of the CIB without a Pacer equivalent, or changed on the way in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unmapped {
    /// The XML element (`nvpair`, `rsc_ticket`, `op`, ...).
    pub element: String,
    /// Its `id` (or the closest id that identifies it).
    pub id: String,
    pub reason: String,
}

/// Why a document could not be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CibError {
    /// The text is not well-formed XML. Not retryable: the input must be fixed.
    #[error("read cib: {0}")]
    Xml(String),
    /// The XML is not a CIB: the root is not `<cib>`, or it has no `<configuration>`.
    /// Not retryable.
    #[error("read cib: {0}")]
    NotCib(String),
}

/// Maps a CIB document to Pacer objects, observed state and the decision time.
pub fn import(xml_text: &str) -> Result<Imported, CibError> {
    import_with_phases(xml_text, &mut |_| {})
}

/// `import`, telling `phase_done` the name of each phase as it ends (`xml parse`, then
/// `import`): `pacer simulate --timings` reads the clock there.
pub fn import_with_phases(xml_text: &str, phase_done: &mut dyn FnMut(&'static str)) -> Result<Imported, CibError> {
    let mut document = xml::Document::parse(xml_text).map_err(CibError::Xml)?;
    let unescaped = document.unescaped();
    // The tree borrows the text and `unescaped` only: a document roxmltree parsed, most
    // of the memory so far, is freed before the objects are built.
    let (root, dangling) = document.tree(&unescaped).map_err(CibError::Xml)?;
    phase_done("xml parse");
    if root.tag != "cib" {
        return Err(CibError::NotCib(format!("the root element is <{}>, not <cib>", root.tag)));
    }
    let Some(configuration) = root.child("configuration") else {
        return Err(CibError::NotCib("no <configuration> element".into()));
    };
    let mut importer = Importer::default();
    for reference in dangling {
        importer.unmapped(&reference.tag, &reference.id_ref, "id-ref names no element of this kind; ignored".to_string());
    }
    let now = root.attr("execution-date").and_then(|text| match text.trim().parse::<i64>() {
        Ok(seconds) => Some(seconds),
        Err(_) => {
            importer.unmapped("cib", "execution-date", format!("{text:?} is not seconds since the epoch"));
            None
        }
    });

    let settings = importer.cluster_settings(configuration);
    let mut node_table = importer.nodes(configuration);
    let mut placed = importer.resources(configuration, &settings, &node_table);
    let constraints = importer.constraints(configuration, &placed, &node_table);
    let topology = importer.fencing_topology(configuration, &placed, &node_table);
    let observed = importer.status(&root, &settings, &node_table);
    // The objects in CIB order, moved (not copied: thousands of resources) out of the
    // tables that were read while mapping the rest.
    let mut objects = Vec::with_capacity(node_table.objects.len() + 1 + placed.objects.len() + constraints.len() + topology.len());
    objects.append(&mut node_table.objects);
    objects.push(settings.policy_object());
    objects.append(&mut placed.objects);
    objects.extend(constraints);
    objects.extend(topology);
    // The tree and the tables are freed here, so the phase that reads them pays.
    drop((placed, node_table, settings));
    drop(root);
    drop(unescaped);
    phase_done("import");

    Ok(Imported { objects, observed, now, unmapped: importer.unmapped, clone_ids: importer.clone_ids })
}

/// Shared state of one import: what could not be mapped, and how ids became names.
#[derive(Default)]
struct Importer {
    unmapped: Vec<Unmapped>,
    clone_ids: BTreeMap<String, String>,
    /// Pacemaker id to Pacer name, per namespace (`Namespace as usize`), for every id
    /// already named (looked up by `&str`: once per history entry).
    names: [HashMap<String, Name>; 3],
    /// Names handed out per namespace, so two ids never end up with one name.
    taken: [HashSet<Name>; 3],
    /// Primitives (Pacemaker ids) whose agent or parameters the import changed (an
    /// agent path cut to its file name, a parameter left out): their histories'
    /// agent and parameter digests no longer describe what Pacer runs, so they are
    /// not kept (the scheduler would take them for a definition change).
    altered_definitions: BTreeSet<String>,
}

/// Pacer names are unique per kind; resources, groups and fence devices share one
/// namespace (constraints name them without a kind), nodes have theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Namespace {
    Placeable,
    Node,
    Constraint,
}

impl Importer {
    fn unmapped(&mut self, element: &str, id: &str, reason: String) {
        self.unmapped.push(Unmapped { element: element.to_string(), id: id.to_string(), reason });
    }

    /// The Pacer name of a Pacemaker id: itself when valid, otherwise sanitized (and
    /// made unique), with the rename recorded once.
    fn name(&mut self, namespace: Namespace, element: &str, id: &str) -> Name {
        if let Some(name) = self.names[namespace as usize].get(id) {
            return name.clone();
        }
        let mut name = if Name::is_valid(id) { Name(id.to_string()) } else { values::sanitize_name(id) };
        if self.taken[namespace as usize].contains(&name) {
            // Taken already: the first free `<name>_<n>` (the base copied only here).
            let base = name.0.clone();
            let mut suffix = 2;
            while self.taken[namespace as usize].contains(&name) {
                name = Name(format!("{base}_{suffix}"));
                suffix += 1;
            }
        }
        if name.as_str() != id {
            self.unmapped(element, id, format!("renamed to {name}"));
        }
        self.taken[namespace as usize].insert(name.clone());
        self.names[namespace as usize].insert(id.to_string(), name.clone());
        name
    }

    /// The name-value pairs of every unconditional `set_tag` set under `owner`, first
    /// value winning (Pacemaker's order of precedence for sets without scores). Sets
    /// with rules cannot be evaluated statically and are recorded.
    fn nvpairs(&mut self, owner: &Element, set_tag: &str) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for set in owner.children_named(set_tag) {
            if set.child("rule").is_some() {
                self.unmapped(set_tag, set.id(), format!("{set_tag} with a rule; its values are not used"));
                continue;
            }
            for nvpair in set.children_named("nvpair") {
                let Some(name) = nvpair.attr("name") else {
                    self.unmapped("nvpair", nvpair.id(), "nvpair without a name".into());
                    continue;
                };
                let Some(value) = nvpair.attr("value") else {
                    self.unmapped("nvpair", nvpair.id(), format!("{name} has no value; ignored"));
                    continue;
                };
                if !pairs.iter().any(|(existing, _)| existing == name) {
                    pairs.push((name.to_string(), value.to_string()));
                }
            }
        }
        // `#default` asks for the default: the name is taken, but without a value.
        pairs.retain(|(_, value)| !value.eq_ignore_ascii_case("#default"));
        pairs
    }
}

#[cfg(test)]
mod tests;
