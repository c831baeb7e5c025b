//! JSON Schemas generated from the Rust types, CRD-style documents for `crds/`, and
//! validation of incoming objects against the same schemas.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::duration::DURATION_PATTERN;
use super::names::NAME_PATTERN;
use super::object::{API_VERSION, Kind};
use super::path::FieldPath;
use super::score::SCORE_PATTERN;

/// The API group of the CRD-style documents.
pub const API_GROUP: &str = "pacer.io";

/// The JSON Schema (draft 2020-12) of one kind's objects.
pub fn kind_schema(kind: Kind) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let mut generator = settings.into_generator();
    let mut schema = kind.envelope_schema(&mut generator).to_value();
    if let Some(root) = schema.as_object_mut() {
        root.insert("title".into(), json!(kind.as_str()));
        if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("apiVersion".into(), json!({"const": API_VERSION}));
            properties.insert("kind".into(), json!({"const": kind.as_str()}));
        }
        if kind.spec_optional()
            && let Some(required) = root.get_mut("required").and_then(Value::as_array_mut)
        {
            required.retain(|field| field != "spec");
        }
    }
    schema
}

/// A CRD-style document describing one kind, as kept in `crds/`.
pub fn crd(kind: Kind) -> Value {
    let version = API_VERSION.rsplit('/').next().unwrap_or(API_VERSION);
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", kind.plural(), API_GROUP)},
        "spec": {
            "group": API_GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind.as_str(),
                "plural": kind.plural(),
                "singular": kind.as_str().to_ascii_lowercase(),
                "shortNames": kind.short_names(),
            },
            "versions": [{
                "name": version,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": kind_schema(kind)},
            }],
        },
    })
}

/// The file name of a kind's document in `crds/`.
pub fn crd_file_name(kind: Kind) -> String {
    format!("{}.{}.yaml", kind.plural(), API_GROUP)
}

/// One way an object breaks its kind's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: FieldPath,
    pub message: String,
}

fn validators() -> &'static HashMap<Kind, Result<jsonschema::Validator, String>> {
    static VALIDATORS: OnceLock<HashMap<Kind, Result<jsonschema::Validator, String>>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|kind| (*kind, jsonschema::validator_for(&kind_schema(*kind)).map_err(|error| error.to_string())))
            .collect()
    })
}

/// Checks `value` against the schema of `kind`; every violation, one per field.
pub fn check_schema(kind: Kind, value: &Value) -> Vec<SchemaViolation> {
    let validator = match validators().get(&kind) {
        Some(Ok(validator)) => validator,
        // The schemas are generated from our own types; a failure to compile one is a
        // bug caught by the crds tests, reported here rather than panicking.
        Some(Err(error)) => {
            return vec![SchemaViolation { path: FieldPath::root(), message: format!("internal error: schema of {kind}: {error}") }];
        }
        None => return Vec::new(),
    };
    let mut violations: Vec<SchemaViolation> = Vec::new();
    for error in validator.iter_errors(value) {
        let path = FieldPath::from_json_pointer(error.instance_path().as_str());
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for field in unexpected {
                    violations.push(SchemaViolation { path: path.clone().key(field.clone()), message: "unknown field".into() });
                }
            }
            ValidationErrorKind::Required { property } => {
                let field = property.as_str().unwrap_or_default().to_string();
                violations.push(SchemaViolation { path: path.key(field), message: "missing required field".into() });
            }
            ValidationErrorKind::Pattern { pattern } => {
                let shown = error.instance().to_string();
                let message = match pattern.as_str() {
                    SCORE_PATTERN => format!("invalid score {shown}: expected an integer, INFINITY, +INFINITY or -INFINITY"),
                    DURATION_PATTERN => format!("invalid duration {shown}: expected seconds or a number with ms, s, min or h"),
                    NAME_PATTERN => format!(
                        "invalid name {shown}: use letters, digits, '_', '.' and '-', starting with a letter, digit or '_'"
                    ),
                    _ => error.to_string(),
                };
                violations.push(SchemaViolation { path, message });
            }
            ValidationErrorKind::Constant { expected_value } => {
                let message = format!("must be {expected_value}, not {}", error.instance());
                violations.push(SchemaViolation { path, message });
            }
            _ => violations.push(SchemaViolation { path, message: error.to_string() }),
        }
    }
    // A value can break several keywords at once (type and pattern); one message per
    // field is enough.
    let mut seen = std::collections::HashSet::new();
    violations.retain(|violation| seen.insert(violation.path.clone()));
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_compilable_schema() {
        for kind in Kind::ALL {
            assert!(matches!(validators().get(kind), Some(Ok(_))), "schema of {kind} does not compile");
        }
    }

    #[test]
    fn reports_unknown_and_missing_fields_by_path() {
        let value = json!({
            "apiVersion": API_VERSION,
            "kind": "Resource",
            "metadata": {"name": "web"},
            "spec": {"agnt": "ocf:heartbeat:apache"},
        });
        let violations = check_schema(Kind::Resource, &value);
        let shown: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        assert!(shown.contains(&"spec.agnt: unknown field".to_string()), "{shown:?}");
        assert!(shown.contains(&"spec.agent: missing required field".to_string()), "{shown:?}");
    }

    #[test]
    fn explains_scores_durations_and_names() {
        let value = json!({
            "apiVersion": API_VERSION,
            "kind": "Location",
            "metadata": {"name": "bad name"},
            "spec": {"resource": "web", "node": "n1", "score": "INFINTY"},
        });
        let shown: Vec<String> = check_schema(Kind::Location, &value).iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        assert!(shown.iter().any(|line| line.starts_with("spec.score: invalid score \"INFINTY\"")), "{shown:?}");
        assert!(shown.iter().any(|line| line.starts_with("metadata.name: invalid name")), "{shown:?}");
    }

    #[test]
    fn wrong_kind_or_version_is_named() {
        let value = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let shown: Vec<String> = check_schema(Kind::Node, &value).iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        assert_eq!(shown, [format!("apiVersion: must be \"{API_VERSION}\", not \"v1\"")]);
    }
}
