//! From YAML text to checked objects: parse, check the schema, decode, check semantics
//! against what is stored, and report every problem as `FILE:LINE:COL: Kind/name:
//! field.path: reason`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::object::{Kind, Object, ObjectKey};
use super::path::FieldPath;
use super::schema::check_schema;
use super::validate::{ObjectSet, Problem, check_objects};
use super::yaml::{Position, YamlDocument, parse_documents};

/// The largest manifest file accepted.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024 * 1024;

/// A manifest file's name and text (`-` for standard input).
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Where an object came from: a document of a file.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: Arc<str>,
    pub document: Arc<YamlDocument>,
}

impl Origin {
    pub fn position_of(&self, path: &FieldPath) -> Position {
        self.document.position_of(path)
    }

    pub fn locate(&self, path: &FieldPath) -> String {
        format!("{}:{}", self.file, self.position_of(path))
    }

    pub(crate) fn diagnostic(&self, object: Option<String>, path: FieldPath, message: String) -> Diagnostic {
        let position = Some(self.position_of(&path));
        let path = if path.is_root() { None } else { Some(path) };
        Diagnostic { file: self.file.to_string(), position, object, path, message }
    }
}

/// The file name of problems with objects that are stored but not in the input.
pub const STORED: &str = "etcd";

/// One problem, ready to print. Sorts by file, then line and column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The manifest file, or `etcd` for an object that is stored but not in the input.
    pub file: String,
    pub position: Option<Position>,
    /// `Kind/name` when known.
    pub object: Option<String>,
    pub path: Option<FieldPath>,
    pub message: String,
}

impl Diagnostic {
    /// A problem with a stored object, or with the request itself.
    pub fn stored(object: Option<String>, path: Option<FieldPath>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: STORED.to_string(), position: None, object, path, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(f, "{}:{position}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// An object read from a manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub object: Object,
    pub origin: Origin,
}

/// The outcome of reading manifests: the objects that decoded, and every problem.
#[derive(Debug, Default)]
pub struct Loaded {
    pub manifests: Vec<Manifest>,
    pub diagnostics: Vec<Diagnostic>,
    /// Kind/name of documents that did not decode; references to them are not
    /// reported again as missing.
    pub broken: BTreeSet<String>,
}

fn text_of(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_string)
}

/// Parses and checks every document of every source (schema and decoding; no
/// cross-object checks yet).
pub fn load(sources: &[Source]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut first_seen: HashMap<ObjectKey, String> = HashMap::new();
    for source in sources {
        let file: Arc<str> = Arc::from(source.name.as_str());
        if source.text.len() > MAX_SOURCE_BYTES {
            loaded.diagnostics.push(Diagnostic {
                file: file.to_string(),
                position: Some(Position { line: 1, column: 1 }),
                object: None,
                path: None,
                message: format!("file is {} bytes, more than the limit of {MAX_SOURCE_BYTES}", source.text.len()),
            });
            continue;
        }
        let documents = match parse_documents(&source.text) {
            Ok(documents) => documents,
            Err(error) => {
                loaded.diagnostics.push(Diagnostic {
                    file: file.to_string(),
                    position: Some(error.position),
                    object: None,
                    path: None,
                    message: error.message,
                });
                continue;
            }
        };
        for document in documents {
            let origin = Origin { file: file.clone(), document: Arc::new(document) };
            load_document(origin, &mut loaded, &mut first_seen);
        }
    }
    loaded
}

fn load_document(origin: Origin, loaded: &mut Loaded, first_seen: &mut HashMap<ObjectKey, String>) {
    let value = &origin.document.value;
    let report = |loaded: &mut Loaded, object: Option<String>, path: FieldPath, message: String| {
        loaded.diagnostics.push(origin.diagnostic(object, path, message));
    };
    if !value.is_object() {
        report(loaded, None, FieldPath::root(), "document is not a mapping (expected apiVersion, kind, metadata, spec)".into());
        return;
    }
    let name = value.get("metadata").and_then(|metadata| text_of(metadata, "name"));
    let Some(kind_text) = text_of(value, "kind") else {
        report(loaded, None, FieldPath::of(&["kind"]), "missing required field".into());
        return;
    };
    let label = format!("{kind_text}/{}", name.as_deref().unwrap_or("?"));
    let Some(kind) = Kind::parse_exact(&kind_text) else {
        let known: Vec<&str> = Kind::ALL.iter().map(|kind| kind.as_str()).collect();
        report(loaded, Some(label), FieldPath::of(&["kind"]), format!("unknown kind {kind_text:?} (known: {})", known.join(", ")));
        return;
    };
    let violations = check_schema(kind, value);
    if !violations.is_empty() {
        loaded.broken.insert(label.clone());
        if let Some(name) = &name {
            loaded.broken.insert(name.clone());
        }
        for violation in violations {
            // Schema errors quote the value they refuse: not a secret's.
            let message = super::params::redact_message(&violation.path, violation.message);
            report(loaded, Some(label.clone()), violation.path, message);
        }
        return;
    }
    let object = match Object::from_value(value.clone()) {
        Ok(object) => object,
        Err(error) => {
            loaded.broken.insert(label.clone());
            if let Some(name) = &name {
                loaded.broken.insert(name.clone());
            }
            let message = super::params::redact_message(&error.path, error.message);
            report(loaded, Some(label), error.path, message);
            return;
        }
    };
    let key = object.key();
    if let Some(first) = first_seen.get(&key) {
        let message = format!("{key} is also defined at {first}");
        report(loaded, Some(label), FieldPath::of(&["metadata", "name"]), message);
        return;
    }
    first_seen.insert(key, origin.locate(&FieldPath::of(&["metadata", "name"])));
    loaded.manifests.push(Manifest { object, origin });
}

/// Resources, groups and fence devices share one namespace: a name given to two of
/// them is reported at the later manifest.
fn check_shared_names(manifests: &[Manifest], stored: &ObjectSet, deleted: &BTreeSet<ObjectKey>) -> Vec<Diagnostic> {
    let incoming: BTreeSet<ObjectKey> = manifests.iter().map(|manifest| manifest.object.key()).collect();
    let mut owner: HashMap<String, ObjectKey> = HashMap::new();
    for key in stored.keys() {
        if key.kind.is_placeable() && !deleted.contains(key) && !incoming.contains(key) {
            owner.insert(key.name.to_string(), key.clone());
        }
    }
    let mut diagnostics = Vec::new();
    for manifest in manifests {
        let key = manifest.object.key();
        if !key.kind.is_placeable() {
            continue;
        }
        match owner.get(key.name.as_str()) {
            Some(other) if other.kind != key.kind => {
                let message = format!("name already used by {other}: resources, groups and fence devices share one namespace");
                diagnostics.push(manifest.origin.diagnostic(Some(key.to_string()), FieldPath::of(&["metadata", "name"]), message));
            }
            _ => {
                owner.insert(key.name.to_string(), key);
            }
        }
    }
    diagnostics
}

/// What a change would leave, and the problems it is responsible for.
#[derive(Debug, Default)]
pub struct Checked {
    /// The desired state after the change.
    pub after: ObjectSet,
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks a change against the stored objects: manifests to create or update,
/// objects the change rewrites itself (a group losing a deleted member), keys to
/// delete. A problem with an object the change does not touch is reported only when
/// the change causes it (a deleted resource that a stored constraint references).
pub fn check_change(stored: &ObjectSet, manifests: &[Manifest], rewritten: &[Object], deleted: &BTreeSet<ObjectKey>, broken: &BTreeSet<String>) -> Checked {
    let mut diagnostics = check_shared_names(manifests, stored, deleted);
    let mut after = stored.clone();
    for key in deleted {
        after.remove(key);
    }
    let rewritten_keys: BTreeSet<ObjectKey> = rewritten.iter().map(Object::key).collect();
    for object in rewritten {
        after.insert(object.key(), object.clone());
    }
    let mut origins: BTreeMap<ObjectKey, &Origin> = BTreeMap::new();
    for manifest in manifests {
        let key = manifest.object.key();
        origins.insert(key.clone(), &manifest.origin);
        after.insert(key, manifest.object.clone());
    }
    let problems = check_objects(&after);
    let touched = |key: &ObjectKey| origins.contains_key(key) || rewritten_keys.contains(key);
    // The stored objects' own problems, to tell a problem the change causes from one
    // it finds: checked only when an untouched object has one (a healthy cluster's
    // have none, and checking every object again doubled an apply's time on 10,000).
    let mut before_problems: Option<BTreeSet<Problem>> = None;
    for problem in &problems {
        if problem.missing.as_ref().is_some_and(|name| broken.contains(name)) {
            continue;
        }
        if !touched(&problem.key) {
            let before = before_problems
                .get_or_insert_with(|| if deleted.is_empty() && manifests.is_empty() { BTreeSet::new() } else { check_objects(stored).into_iter().collect() });
            if before.contains(problem) {
                continue;
            }
        }
        let deleted_target = problem.missing.as_ref().and_then(|name| deleted.iter().find(|key| key.name.as_str() == name.as_str()));
        let mut message = match deleted_target {
            Some(target) => format!("still refers to {target}, which this change deletes (--cascade deletes dependents too)"),
            None => problem.message.clone(),
        };
        let object = Some(problem.key.to_string());
        let path = problem.path.clone();
        if let Some(origin) = origins.get(&problem.key) {
            diagnostics.push(origin.diagnostic(object, path, message));
            continue;
        }
        // A stored object broken by a change to another object: when that object
        // reports the same conflict itself, that is enough; otherwise point at it.
        if let Some(other) = problem.other.as_ref().filter(|other| touched(other)) {
            let reported_there = problems.iter().any(|theirs| &theirs.key == other && theirs.other.as_ref() == Some(&problem.key));
            if reported_there {
                continue;
            }
            if let Some(origin) = origins.get(other) {
                message = format!("{message} (caused by {other} here)");
                let mut diagnostic = origin.diagnostic(object, path, message);
                diagnostic.position = Some(origin.position_of(&FieldPath::of(&["metadata", "name"])));
                diagnostics.push(diagnostic);
                continue;
            }
        }
        diagnostics.push(Diagnostic::stored(object, (!path.is_root()).then_some(path), message));
    }
    Checked { after, diagnostics }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source { name: "test.yaml".into(), text: text.into() }
    }

    fn render(diagnostics: &[Diagnostic]) -> Vec<String> {
        diagnostics.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_problem_of_every_document_is_reported_at_its_line() {
        let loaded = load(&[source(
            "\
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec:
  agent: ocf:heartbeat:apache
  operations:
    - name: monitor
      interval: often
---
apiVersion: pacer.io/v1alpha1
kind: Widget
metadata: {name: w}
---
apiVersion: pacer.io/v1alpha1
kind: Node
metadata:
  name: n1
  namespace: default
",
        )]);
        assert_eq!(
            render(&loaded.diagnostics),
            [
                "test.yaml:8:7: Resource/web: spec.operations[0].interval: invalid duration \"often\": expected seconds or a number with ms, s, min or h",
                "test.yaml:11:1: Widget/w: kind: unknown kind \"Widget\" (known: Resource, Group, Location, Colocation, Order, FenceDevice, FencingTopology, Node, ClusterPolicy, Alert)",
                "test.yaml:18:3: Node/n1: metadata.namespace: unknown field",
            ]
        );
        assert!(loaded.manifests.is_empty());
    }

    #[test]
    fn duplicates_name_the_first_definition() {
        let loaded = load(&[source(
            "kind: Node\napiVersion: pacer.io/v1alpha1\nmetadata: {name: n1}\n---\nkind: Node\napiVersion: pacer.io/v1alpha1\nmetadata: {name: n1}\n",
        )]);
        assert_eq!(render(&loaded.diagnostics), ["test.yaml:7:12: Node/n1: metadata.name: Node/n1 is also defined at test.yaml:3:12"]);
    }

    #[test]
    fn references_to_broken_documents_are_not_reported_twice() {
        let loaded = load(&[source(
            "\
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec: {agent: 'ocf:heartbeat:../x'}
---
apiVersion: pacer.io/v1alpha1
kind: Order
metadata: {name: o}
spec: {first: web, then: db}
",
        )]);
        let checked = check_change(&ObjectSet::new(), &loaded.manifests, &[], &BTreeSet::new(), &loaded.broken);
        let mut all = render(&loaded.diagnostics);
        all.extend(render(&checked.diagnostics));
        assert_eq!(
            all,
            [
                "test.yaml:4:8: Resource/web: spec.agent: invalid agent \"ocf:heartbeat:../x\": type contains '/'",
                "test.yaml:9:20: Order/o: spec.then: refers to db, which is not a Resource, Group or FenceDevice",
            ]
        );
    }
}
