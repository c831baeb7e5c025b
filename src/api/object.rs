//! The object envelope (`apiVersion`, `kind`, `metadata`, `spec`) and the list of kinds.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cluster::{AlertSpec, ClusterPolicySpec, FenceDeviceSpec, FencingTopologySpec, NodeSpec};
use super::constraint::{ColocationSpec, LocationSpec, OrderSpec};
use super::names::Name;
use super::path::FieldPath;
use super::resource::{GroupSpec, ResourceSpec};

/// The API group and version of every Pacer kind.
pub const API_VERSION: &str = "pacer.io/v1alpha1";

/// Kubernetes-style object metadata. Pacer objects are cluster-wide (no namespaces).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: Name,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Bumped by the store on every spec change; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The etcd revision of the stored object. On input, when given, the apply only
    /// goes ahead if the stored object still has this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Assigned at creation; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// RFC 3339, assigned at creation; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Definition order, assigned at creation (from the revision the apply was planned
    /// at and the object's place in it) and kept across updates; ignored on input. The
    /// scheduler breaks its last ties by definition order, so the live cluster and
    /// `pacer simulate -f` of the same manifests decide alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_sequence: Option<i64>,
}

/// The envelope the JSON Schema of every kind is generated from.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Never built: it exists only for schemars to derive the schema from its fields.
#[allow(dead_code)]
pub(crate) struct Envelope<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    /// Written by the cluster, never by `apply`; accepted and ignored on input.
    #[serde(default)]
    pub status: Option<Value>,
}

macro_rules! kinds {
    ($( $kind:ident ($spec:ty) plural $plural:literal short [$($short:literal),*] spec_optional $optional:literal; )*) => {
        /// Every kind Pacer stores.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind { $($kind),* }

        /// The spec of an object, by kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Spec { $($kind($spec)),* }

        impl Kind {
            /// All kinds, in the order `apply` writes and `get` lists them.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$kind => stringify!($kind)),* }
            }

            /// The lower-case plural, used in etcd keys and on the command line.
            pub fn plural(self) -> &'static str {
                match self { $(Kind::$kind => $plural),* }
            }

            /// Names `pacer get` accepts for this kind besides its name and plural.
            pub fn short_names(self) -> &'static [&'static str] {
                match self { $(Kind::$kind => &[$($short),*]),* }
            }

            /// Whether an object of this kind may leave out `spec` (all fields default).
            pub fn spec_optional(self) -> bool {
                match self { $(Kind::$kind => $optional),* }
            }

            pub(crate) fn envelope_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(Kind::$kind => generator.root_schema_for::<Envelope<$spec>>()),* }
            }

            pub(crate) fn decode_spec(self, value: Value) -> Result<Spec, DecodeError> {
                match self {
                    $(Kind::$kind => serde_path_to_error::deserialize::<_, $spec>(value).map(Spec::$kind).map_err(|error| DecodeError::from_serde("spec", error))),*
                }
            }
        }

        impl Spec {
            pub fn kind(&self) -> Kind {
                match self { $(Spec::$kind(_) => Kind::$kind),* }
            }
        }

        /// The spec alone, as the envelope's `spec` holds it.
        impl Serialize for Spec {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self { $(Spec::$kind(spec) => spec.serialize(serializer)),* }
            }
        }
    };
}

kinds! {
    Resource(ResourceSpec) plural "resources" short ["rsc", "primitive"] spec_optional false;
    Group(GroupSpec) plural "groups" short ["grp"] spec_optional false;
    Location(LocationSpec) plural "locations" short ["loc"] spec_optional false;
    Colocation(ColocationSpec) plural "colocations" short ["colo"] spec_optional false;
    Order(OrderSpec) plural "orders" short ["ord"] spec_optional false;
    FenceDevice(FenceDeviceSpec) plural "fencedevices" short ["fd", "stonith"] spec_optional false;
    FencingTopology(FencingTopologySpec) plural "fencingtopologies" short ["ft"] spec_optional false;
    Node(NodeSpec) plural "nodes" short ["no"] spec_optional true;
    ClusterPolicy(ClusterPolicySpec) plural "clusterpolicies" short ["cp", "policy"] spec_optional true;
    Alert(AlertSpec) plural "alerts" short [] spec_optional false;
}

impl Kind {
    /// Finds a kind by name, plural or short name, ignoring case (`pacer get rsc`).
    pub fn parse_loose(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(&lower) || kind.plural() == lower || kind.short_names().contains(&lower.as_str()))
    }

    /// Finds a kind by its exact name, as written in a manifest's `kind:` field.
    pub fn parse_exact(text: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|kind| kind.as_str() == text)
    }

    /// Resources, groups and fence devices share one namespace, as Pacemaker's ids do:
    /// constraints name them without saying which kind.
    pub fn is_placeable(self) -> bool {
        matches!(self, Kind::Resource | Kind::Group | Kind::FenceDevice)
    }

    /// Constraints reference other objects and are deleted first, created last.
    pub fn is_constraint(self) -> bool {
        matches!(self, Kind::Location | Kind::Colocation | Kind::Order | Kind::FencingTopology)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object that does not decode: where (a field path) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: FieldPath,
    pub message: String,
}

impl DecodeError {
    fn from_serde(prefix: &str, error: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
        let path = FieldPath::from_serde(FieldPath::of(&[prefix]), error.path());
        DecodeError { path, message: error.into_inner().to_string() }
    }
}

/// One stored or applied object.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub metadata: ObjectMeta,
    pub spec: Spec,
}

impl Spec {
    /// The spec as JSON (its `Serialize`).
    pub(crate) fn to_value(&self) -> Value {
        // Plain data, as `Object::to_value` says: encoding cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The envelope users write: `apiVersion`, `kind`, `metadata`, `spec`, in that order.
impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("apiVersion", API_VERSION)?;
        map.serialize_entry("kind", self.kind().as_str())?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("spec", &self.spec)?;
        map.end()
    }
}

/// Identifies an object: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: Name,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    pub fn name(&self) -> &Name {
        &self.metadata.name
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey { kind: self.kind(), name: self.metadata.name.clone() }
    }

    /// The object as JSON, in the envelope users write (its `Serialize`).
    pub fn to_value(&self) -> Value {
        // Spec types are plain data (string map keys, no custom failing serializers),
        // so encoding them cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// How many bytes the object's JSON (`to_value`, compact) takes, counted as it is
    /// written, not built (validation checks every object's size on each apply).
    pub fn encoded_len(&self) -> usize {
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut counter = Counter(0);
        match serde_json::to_writer(&mut counter, self) {
            Ok(()) => counter.0,
            Err(_) => 0,
        }
    }

    /// Decodes an object that already passed validation (for instance, read back from
    /// etcd). Errors name the field path.
    pub fn from_value(value: Value) -> Result<Object, DecodeError> {
        let Value::Object(mut map) = value else {
            return Err(DecodeError { path: FieldPath::root(), message: "expected a mapping".into() });
        };
        let kind_text = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind =
            Kind::parse_exact(&kind_text).ok_or_else(|| DecodeError { path: FieldPath::of(&["kind"]), message: format!("unknown kind {kind_text:?}") })?;
        let metadata_value = map.remove("metadata").unwrap_or(Value::Null);
        let metadata: ObjectMeta = serde_path_to_error::deserialize(metadata_value).map_err(|error| DecodeError::from_serde("metadata", error))?;
        let spec_value = match map.remove("spec") {
            Some(Value::Null) | None if kind.spec_optional() => Value::Object(Map::new()),
            Some(value) => value,
            None => return Err(DecodeError { path: FieldPath::of(&["spec"]), message: "missing field".into() }),
        };
        let spec = kind.decode_spec(spec_value)?;
        Ok(Object { metadata, spec })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_found_by_any_of_their_names() {
        assert_eq!(Kind::parse_loose("rsc"), Some(Kind::Resource));
        assert_eq!(Kind::parse_loose("Resources"), Some(Kind::Resource));
        assert_eq!(Kind::parse_loose("fencedevice"), Some(Kind::FenceDevice));
        assert_eq!(Kind::parse_loose("policy"), Some(Kind::ClusterPolicy));
        assert_eq!(Kind::parse_loose("pods"), None);
        assert_eq!(Kind::parse_exact("resource"), None);
    }

    #[test]
    fn objects_round_trip_through_json() {
        let value = json!({
            "apiVersion": API_VERSION,
            "kind": "Resource",
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {"agent": "ocf:heartbeat:apache", "operations": [{"name": "monitor", "interval": 10}]},
        });
        let object = Object::from_value(value).expect("decodes");
        assert_eq!(object.key().to_string(), "Resource/web");
        let again = Object::from_value(object.to_value()).expect("decodes again");
        assert_eq!(again, object);
        assert_eq!(object.to_value()["spec"]["operations"][0]["interval"], json!("10s"));
        // The stored form, byte for byte (what etcd holds and sizes are counted on).
        let written = r#"{"apiVersion":"pacer.io/v1alpha1","kind":"Resource","metadata":{"name":"web","labels":{"tier":"front"}},"spec":{"agent":"ocf:heartbeat:apache","operations":[{"name":"monitor","interval":"10s"}]}}"#;
        assert_eq!(object.to_value().to_string(), written);
        assert_eq!(object.encoded_len(), written.len());
    }

    #[test]
    fn the_counted_length_is_the_written_json_and_the_envelope_comes_first() {
        let mut sources = Vec::new();
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples");
        for entry in std::fs::read_dir(examples).expect("the examples") {
            let path = entry.expect("an example").path();
            let text = std::fs::read_to_string(&path).expect("an example's text");
            sources.push(crate::api::manifest::Source { name: path.display().to_string(), text });
        }
        let loaded = crate::api::manifest::load(&sources);
        assert!(loaded.manifests.len() > 10, "{} objects", loaded.manifests.len());
        for manifest in &loaded.manifests {
            let object = &manifest.object;
            let written = object.to_value().to_string();
            assert_eq!(object.encoded_len(), written.len(), "{}", object.key());
            assert!(written.starts_with(&format!(r#"{{"apiVersion":"{API_VERSION}","kind":"{}","metadata":{{"#, object.kind())), "{written}");
            assert_eq!(serde_json::to_string(object).expect("encodes"), written);
        }
    }

    #[test]
    fn decode_errors_carry_the_field_path() {
        let value = json!({
            "kind": "Resource",
            "metadata": {"name": "web"},
            "spec": {"agent": "ocf:heartbeat:apache", "operations": [{"name": "monitor", "interval": "soon"}]},
        });
        let error = Object::from_value(value).expect_err("bad interval");
        assert_eq!(error.path.to_string(), "spec.operations[0].interval");
        assert!(error.message.contains("invalid duration"), "{}", error.message);
    }

    #[test]
    fn nodes_may_leave_out_their_spec() {
        let object = Object::from_value(json!({"kind": "Node", "metadata": {"name": "n1"}})).expect("decodes");
        assert_eq!(object.spec, Spec::Node(NodeSpec::default()));
    }
}
