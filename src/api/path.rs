//! Field paths (`spec.operations[0].interval`) that name a place in an object, shared
//! by schema errors, decode errors, semantic checks and source positions.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the object's root to one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// `FieldPath::of(&["spec", "members"])`.
    pub fn of(keys: &[&str]) -> FieldPath {
        FieldPath(keys.iter().map(|key| Segment::Key((*key).to_string())).collect())
    }

    pub fn key(mut self, key: impl Into<String>) -> FieldPath {
        self.0.push(Segment::Key(key.into()));
        self
    }

    pub fn index(mut self, index: usize) -> FieldPath {
        self.0.push(Segment::Index(index));
        self
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses a JSON pointer (`/spec/operations/0`), as jsonschema reports them.
    /// Numeric segments are taken as indexes: Pacer's maps never have numeric keys
    /// where it matters for positions, and a wrong guess only makes a position coarser.
    pub fn from_json_pointer(pointer: &str) -> FieldPath {
        let segments = pointer
            .split('/')
            .skip(1)
            .map(|raw| {
                let key = raw.replace("~1", "/").replace("~0", "~");
                match key.parse::<usize>() {
                    Ok(index) if !key.starts_with('+') && (key == "0" || !key.starts_with('0')) => Segment::Index(index),
                    _ => Segment::Key(key),
                }
            })
            .collect();
        FieldPath(segments)
    }

    /// Converts a serde_path_to_error path, prefixed by `prefix`.
    pub(crate) fn from_serde(prefix: FieldPath, path: &serde_path_to_error::Path) -> FieldPath {
        let mut result = prefix;
        for segment in path.iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => result.0.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => result.0.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => result.0.push(Segment::Key(variant.clone())),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        result
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '#')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(object)");
        }
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_kubectl() {
        let path = FieldPath::of(&["spec", "operations"]).index(0).key("interval");
        assert_eq!(path.to_string(), "spec.operations[0].interval");
        let label = FieldPath::of(&["metadata", "labels"]).key("pacer.io/applyset");
        assert_eq!(label.to_string(), "metadata.labels[\"pacer.io/applyset\"]");
        assert_eq!(FieldPath::root().to_string(), "(object)");
    }

    #[test]
    fn parses_json_pointers() {
        assert_eq!(FieldPath::from_json_pointer("/spec/operations/0/interval"), FieldPath::of(&["spec", "operations"]).index(0).key("interval"));
        assert_eq!(FieldPath::from_json_pointer("/metadata/labels/a~1b"), FieldPath::of(&["metadata", "labels", "a/b"]));
        assert_eq!(FieldPath::from_json_pointer(""), FieldPath::root());
    }
}
