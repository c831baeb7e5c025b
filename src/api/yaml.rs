//! The one place YAML is read and written.
//!
//! Reading uses yaml-rust2's event parser, because it reports where every key and
//! value starts: errors must say `file:line:col`, and serde_yaml keeps no positions.
//! Each document becomes a `serde_json::Value` (the form schemas and serde work on)
//! plus an index from field path to position. Scalars resolve by YAML 1.2's core
//! schema, as serde_yaml would resolve them. Writing uses serde_yaml.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::path::{FieldPath, Segment};

/// A place in a source file, both 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn position(mark: Marker) -> Position {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Position { line: mark.line(), column: mark.col() + 1 }
}

/// One YAML document of a file, with the position of each of its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlDocument {
    /// 0-based index among the file's non-empty documents.
    pub index: usize,
    pub start: Position,
    pub value: Value,
    positions: HashMap<FieldPath, Position>,
}

impl YamlDocument {
    /// Where `path` is written: the key of a mapping entry, the start of a list item.
    /// For a path that is not in the document (a missing field), the nearest parent.
    pub fn position_of(&self, path: &FieldPath) -> Position {
        let mut segments = path.segments().to_vec();
        loop {
            if let Some(found) = self.positions.get(&FieldPath(segments.clone())) {
                return *found;
            }
            if segments.pop().is_none() {
                return self.start;
            }
        }
    }
}

/// A file that is not well-formed YAML, or uses YAML Pacer does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

/// Parses every document of a multi-document YAML text. Empty documents (a stray
/// `---`, a comment-only file) are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<YamlDocument>, YamlError> {
    // A byte-order mark (as some Windows editors write) is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(error) = parser.load(&mut builder, true) {
        let mark = error.marker();
        return Err(YamlError { position: position(*mark), message: format!("invalid YAML: {}", error.info()) });
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.documents)
}

/// Renders a value as YAML (for `pacer get -o yaml` and `pacer diff`).
pub fn to_yaml_string(value: &Value) -> String {
    // serde_json::Value always serializes; an error here would be a serde_yaml bug,
    // and an empty rendering is the least harmful answer to it.
    serde_yaml::to_string(value).unwrap_or_default()
}

enum Frame {
    /// `start` is where the parser announced the mapping: exact for flow mappings
    /// (`{`), but after the first key for block mappings, so the first key's position
    /// is preferred.
    Mapping {
        map: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
        path: Vec<Segment>,
        start: Marker,
    },
    Sequence {
        items: Vec<Value>,
        anchor: usize,
        path: Vec<Segment>,
    },
}

/// The most values aliases in one file may copy. An alias copies its anchor's value,
/// so a small file can describe an exponentially large one ("billion laughs").
const MAX_ALIAS_VALUES: usize = 1_000_000;

fn count_values(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_values).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_values).sum::<usize>(),
        _ => 1,
    }
}

#[derive(Default)]
struct Builder {
    /// Values copied by aliases so far in the whole file.
    alias_values: usize,
    documents: Vec<YamlDocument>,
    error: Option<YamlError>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    positions: HashMap<FieldPath, Position>,
    document_start: Position,
    root: Option<Value>,
}

impl Builder {
    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { position: position(mark), message });
        }
    }

    /// The path a new value gets, given the container it goes into.
    fn child_path(&self) -> Vec<Segment> {
        match self.stack.last() {
            Some(Frame::Mapping { pending_key: Some(key), path, .. }) => {
                let mut child = path.clone();
                child.push(Segment::Key(key.clone()));
                child
            }
            Some(Frame::Sequence { items, path, .. }) => {
                let mut child = path.clone();
                child.push(Segment::Index(items.len()));
                child
            }
            Some(Frame::Mapping { path, .. }) => path.clone(),
            None => Vec::new(),
        }
    }

    /// Whether the next node is a mapping key (rather than a value).
    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { pending_key: None, .. }))
    }

    fn place(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Mapping { map, pending_key, .. }) => {
                if let Some(key) = pending_key.take() {
                    map.insert(key, value);
                }
            }
            Some(Frame::Sequence { items, .. }) => items.push(value),
            None => self.root = Some(value),
        }
    }

    fn record(&mut self, path: Vec<Segment>, mark: Marker) {
        self.positions.entry(FieldPath(path)).or_insert_with(|| position(mark));
    }

    fn on_scalar(&mut self, text: String, style: TScalarStyle, anchor: usize, tag: Option<Tag>, mark: Marker) {
        if self.expecting_key() {
            let Some(Frame::Mapping { map, path, pending_key, .. }) = self.stack.last_mut() else { return };
            if map.contains_key(&text) {
                let message = format!("duplicate key {text:?}");
                self.fail(mark, message);
                return;
            }
            if text == "<<" && style == TScalarStyle::Plain {
                self.fail(mark, "merge keys (<<) are not supported; write the fields out".into());
                return;
            }
            let first_key = map.is_empty();
            let mapping_path = path.clone();
            let mut key_path = path.clone();
            key_path.push(Segment::Key(text.clone()));
            *pending_key = Some(text);
            if first_key {
                self.record(mapping_path, mark);
            }
            self.record(key_path, mark);
            return;
        }
        let path = self.child_path();
        self.record(path, mark);
        match resolve_scalar(&text, style, tag.as_ref()) {
            Ok(value) => self.place(value, anchor),
            Err(message) => self.fail(mark, message),
        }
    }

    fn start_container(&mut self, sequence: bool, anchor: usize, tag: Option<Tag>, mark: Marker) {
        if self.expecting_key() {
            self.fail(mark, "mappings and lists as mapping keys are not supported".into());
        }
        if let Some(tag) = tag {
            let core = tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!";
            let fits = core && tag.suffix == if sequence { "seq" } else { "map" };
            if !fits {
                self.fail(mark, format!("unsupported tag {}{}", tag.handle, tag.suffix));
                return;
            }
        }
        let path = self.child_path();
        if sequence {
            self.record(path.clone(), mark);
            self.stack.push(Frame::Sequence { items: Vec::new(), anchor, path });
        } else {
            self.stack.push(Frame::Mapping { map: Map::new(), pending_key: None, anchor, path, start: mark });
        }
    }

    fn end_container(&mut self) {
        match self.stack.pop() {
            Some(Frame::Mapping { map, anchor, path, start, .. }) => {
                self.record(path, start);
                self.place(Value::Object(map), anchor);
            }
            Some(Frame::Sequence { items, anchor, .. }) => self.place(Value::Array(items), anchor),
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::DocumentStart => {
                self.document_start = position(mark);
                self.positions.clear();
                self.anchors.clear();
                self.root = None;
            }
            Event::DocumentEnd => {
                let positions = std::mem::take(&mut self.positions);
                match self.root.take() {
                    None | Some(Value::Null) => {}
                    Some(value) => {
                        let index = self.documents.len();
                        self.documents.push(YamlDocument { index, start: self.document_start, value, positions });
                    }
                }
            }
            Event::Scalar(text, style, anchor, tag) => self.on_scalar(text, style, anchor, tag, mark),
            Event::SequenceStart(anchor, tag) => self.start_container(true, anchor, tag, mark),
            Event::MappingStart(anchor, tag) => self.start_container(false, anchor, tag, mark),
            Event::SequenceEnd | Event::MappingEnd => self.end_container(),
            Event::Alias(anchor) => {
                if self.expecting_key() {
                    self.fail(mark, "aliases as mapping keys are not supported".into());
                    return;
                }
                let path = self.child_path();
                self.record(path, mark);
                match self.anchors.get(&anchor) {
                    Some(value) => {
                        self.alias_values = self.alias_values.saturating_add(count_values(value));
                        if self.alias_values > MAX_ALIAS_VALUES {
                            self.fail(mark, format!("aliases expand to more than {MAX_ALIAS_VALUES} values"));
                            return;
                        }
                        let value = value.clone();
                        self.place(value, 0);
                    }
                    None => self.fail(mark, "alias to an unknown anchor".into()),
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

fn number_from_float(text: &str) -> Result<Value, String> {
    let parsed: f64 = text.parse().map_err(|_| format!("invalid number {text:?}"))?;
    Number::from_f64(parsed).map(Value::Number).ok_or_else(|| format!("number {text:?} is not finite"))
}

/// Resolves a scalar by YAML 1.2's core schema; quoted scalars are always strings.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if tag.handle != "tag:yaml.org,2002:" && tag.handle != "!!" {
            return Err(format!("unsupported tag {}{}", tag.handle, tag.suffix));
        }
        return match tag.suffix.as_str() {
            "str" => Ok(Value::String(text.to_string())),
            "int" => text.parse::<i64>().map(Value::from).map_err(|_| format!("{text:?} is not an integer")),
            "float" => number_from_float(text),
            "bool" => match text {
                "true" | "True" | "TRUE" => Ok(Value::Bool(true)),
                "false" | "False" | "FALSE" => Ok(Value::Bool(false)),
                _ => Err(format!("{text:?} is not a boolean")),
            },
            "null" => Ok(Value::Null),
            other => Err(format!("unsupported tag !!{other}")),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    if matches!(text, "Null" | "NULL") {
        return Ok(Value::Null);
    }
    Ok(match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(flag) => Value::Bool(flag),
        Yaml::Integer(integer) => Value::from(integer),
        Yaml::Real(real) => number_from_float(&real)?,
        _ => Value::String(text.to_string()),
    })
}

/// Field positions sorted by path, for tests and debugging.
#[cfg(test)]
fn sorted_positions(document: &YamlDocument) -> std::collections::BTreeMap<String, Position> {
    document.positions.iter().map(|(path, position)| (path.to_string(), *position)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TWO_DOCUMENTS: &str = "\
# leading comment
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata:
  name: web
spec:
  agent: ocf:heartbeat:apache
  operations:
    - name: monitor
      interval: 10s
---
---
kind: Node
metadata: {name: n1}
";

    #[test]
    fn parses_documents_with_positions() {
        let documents = parse_documents(TWO_DOCUMENTS).expect("valid YAML");
        assert_eq!(documents.len(), 2, "the empty middle document is skipped");
        let web = &documents[0];
        assert_eq!(web.value["spec"]["operations"][0]["interval"], json!("10s"));
        let at = |path: FieldPath| web.position_of(&path).to_string();
        assert_eq!(at(FieldPath::of(&["kind"])), "3:1");
        assert_eq!(at(FieldPath::of(&["metadata", "name"])), "5:3");
        assert_eq!(at(FieldPath::of(&["spec", "operations"]).index(0)), "9:7");
        assert_eq!(at(FieldPath::of(&["spec", "operations"]).index(0).key("interval")), "10:7");
        // A missing field is reported at its nearest parent.
        assert_eq!(at(FieldPath::of(&["spec", "operations"]).index(0).key("timeout")), "9:7");
        let node = &documents[1];
        assert_eq!(node.index, 1);
        assert_eq!(node.position_of(&FieldPath::of(&["metadata", "name"])).to_string(), "14:12");
        assert!(sorted_positions(node).contains_key("metadata"));
    }

    #[test]
    fn resolves_scalars_by_the_core_schema() {
        let documents =
            parse_documents("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: INFINITY\ng: -INFINITY\nh: 0x10\ni: !!str 5\nj: Null\nk: 10s\n").expect("valid YAML");
        assert_eq!(
            documents[0].value,
            json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": "1", "f": "INFINITY", "g": "-INFINITY", "h": 16, "i": "5", "j": null, "k": "10s"})
        );
    }

    #[test]
    fn ignores_a_byte_order_mark() {
        let documents = parse_documents("\u{feff}kind: Node\n").expect("valid YAML");
        assert_eq!(documents[0].value, json!({"kind": "Node"}));
    }

    #[test]
    fn anchors_and_aliases_copy_values() {
        let documents = parse_documents("base: &b {x: 1}\nother: *b\n").expect("valid YAML");
        assert_eq!(documents[0].value, json!({"base": {"x": 1}, "other": {"x": 1}}));
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            text.push_str(&format!("a{level}: &a{level} [{}]\n", vec![previous; 10].join(", ")));
        }
        let error = parse_documents(&text).expect_err("10^10 values");
        assert!(error.message.contains("aliases expand to more than"), "{error}");
    }

    #[test]
    fn refuses_duplicate_keys_with_their_position() {
        let error = parse_documents("kind: Node\nmetadata:\n  name: a\n  name: b\n").expect_err("duplicate");
        assert_eq!(error.to_string(), "4:3: duplicate key \"name\"");
    }

    #[test]
    fn reports_syntax_errors_with_a_position() {
        let error = parse_documents("a: [1, 2\nb: c\n").expect_err("unclosed flow sequence");
        assert!(error.position.line >= 1, "{error}");
        assert!(error.message.starts_with("invalid YAML"), "{error}");
        let tagged = parse_documents("a: !custom 1\n").expect_err("custom tag");
        assert!(tagged.message.contains("unsupported tag"), "{tagged}");
        let tagged_mapping = parse_documents("metadata: !custom {name: web}\n").expect_err("custom tag on a mapping");
        assert!(tagged_mapping.message.contains("unsupported tag !custom"), "{tagged_mapping}");
        let mistagged = parse_documents("spec: !!str\n  agent: x\n").expect_err("!!str on a mapping");
        assert!(mistagged.message.contains("unsupported tag"), "{mistagged}");
        assert!(parse_documents("a: !!map {b: 1}\nc: !!seq [1]\n").is_ok());
        let merge = parse_documents("base: &b {x: 1}\nother:\n  <<: *b\n").expect_err("merge key");
        assert!(merge.message.contains("merge keys"), "{merge}");
    }

    #[test]
    fn writes_yaml() {
        assert_eq!(to_yaml_string(&json!({"a": [1, "x"]})), "a:\n- 1\n- x\n");
    }
}
