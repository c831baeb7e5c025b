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
use super::timestamp::TIMESTAMP_PATTERN;

/// The API group of the CRD-style documents.
pub const API_GROUP: &str = "pacer.io";

/// The JSON Schema (draft 2020-12) of one kind's objects.
pub fn kind_schema(kind: Kind) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let mut generator = settings.into_generator();
    let mut schema = kind.envelope_schema(&mut generator).to_value();
    flatten_enums(&mut schema);
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

/// The string values (and whether null is allowed) an alternative of a `oneOf` or
/// `anyOf` stands for, when it is a plain string constant, an enum or null.
fn enum_values(alternative: &Value, values: &mut Vec<Value>, notes: &mut Vec<String>) -> bool {
    let Some(object) = alternative.as_object() else { return false };
    if object.get("type") == Some(&json!("null")) || object.get("const") == Some(&Value::Null) {
        values.push(Value::Null);
        return true;
    }
    if let Some(Value::String(constant)) = object.get("const") {
        values.push(json!(constant));
        if let Some(Value::String(description)) = object.get("description") {
            notes.push(format!("{constant}: {description}"));
        }
        return true;
    }
    if let Some(Value::Array(options)) = object.get("enum")
        && options.iter().all(|option| option.is_string() || option.is_null())
    {
        values.extend(options.iter().cloned());
        if let Some(Value::String(description)) = object.get("description") {
            notes.push(description.clone());
        }
        return true;
    }
    false
}

/// schemars writes an enum with documented variants as a `oneOf` of constants, which
/// makes validation errors say "not valid under any of the schemas listed in the
/// 'oneOf' keyword". A plain `enum` (descriptions folded into one) says which values
/// are allowed.
fn flatten_enums(schema: &mut Value) {
    match schema {
        Value::Array(items) => items.iter_mut().for_each(flatten_enums),
        Value::Object(object) => {
            object.values_mut().for_each(flatten_enums);
            for keyword in ["oneOf", "anyOf"] {
                let Some(Value::Array(alternatives)) = object.get(keyword) else { continue };
                let (mut values, mut notes) = (Vec::new(), Vec::new());
                if !alternatives.iter().all(|alternative| enum_values(alternative, &mut values, &mut notes)) {
                    continue;
                }
                object.remove(keyword);
                let nullable = values.contains(&Value::Null);
                object.insert("type".into(), if nullable { json!(["string", "null"]) } else { json!("string") });
                object.insert("enum".into(), Value::Array(values));
                if !notes.is_empty() {
                    let mut description = object.get("description").and_then(Value::as_str).map(str::to_string).unwrap_or_default();
                    for note in notes {
                        if !description.is_empty() {
                            description.push(' ');
                        }
                        description.push_str(&note);
                    }
                    object.insert("description".into(), Value::String(description));
                }
            }
        }
        _ => {}
    }
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
    VALIDATORS.get_or_init(|| Kind::ALL.iter().map(|kind| (*kind, jsonschema::validator_for(&kind_schema(*kind)).map_err(|error| error.to_string()))).collect())
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
                    TIMESTAMP_PATTERN => format!("invalid timestamp {shown}: expected RFC 3339 such as 2025-06-01T12:00:00Z"),
                    NAME_PATTERN => format!("invalid name {shown}: use letters, digits, '_', '.' and '-', starting with a letter, digit or '_'"),
                    _ => error.to_string(),
                };
                violations.push(SchemaViolation { path, message });
            }
            ValidationErrorKind::Enum { options } => {
                let allowed: Vec<&str> = options.as_array().map(|list| list.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let given = error.instance().as_str().unwrap_or_default().to_string();
                let mut message = format!("{} is not one of {}", error.instance(), allowed.join(", "));
                if let Some(close) = allowed.iter().find(|option| option.eq_ignore_ascii_case(&given)) {
                    message.push_str(&format!(" (did you mean {close}?)"));
                } else if given == "Master" || given == "Slave" {
                    let renamed = if given == "Master" { "Promoted" } else { "Unpromoted" };
                    message.push_str(&format!(" (Pacemaker 2.1 renamed {given} to {renamed})"));
                }
                violations.push(SchemaViolation { path, message });
            }
            ValidationErrorKind::Constant { expected_value } => {
                let message = format!("must be {expected_value}, not {}", error.instance());
                violations.push(SchemaViolation { path, message });
            }
            ValidationErrorKind::AnyOf { .. } if super::params::parameter_at(&path).is_some() => {
                let shown: String = error.instance().to_string().chars().take(80).collect();
                let message = format!("invalid value {shown}: expected a string, number, boolean or {{secretFile: /absolute/path}}");
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
    fn enums_list_their_values_and_suggest_the_right_case() {
        let value = json!({
            "apiVersion": API_VERSION,
            "kind": "Order",
            "metadata": {"name": "o"},
            "spec": {"first": "a", "then": "b", "kind": "mandatory"},
        });
        let shown: Vec<String> = check_schema(Kind::Order, &value).iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        assert_eq!(shown, ["spec.kind: \"mandatory\" is not one of Mandatory, Optional, Serialize (did you mean Mandatory?)"]);
        let schema = kind_schema(Kind::ClusterPolicy);
        let policy = &schema["properties"]["spec"]["properties"]["noQuorumPolicy"];
        assert_eq!(policy["enum"], json!(["Stop", "Freeze", "Ignore", "Demote"]));
        assert!(policy["description"].as_str().is_some_and(|text| text.contains("Ignore: Carry on as if quorate")), "{policy}");
    }

    #[test]
    fn wrong_kind_or_version_is_named() {
        let value = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let shown: Vec<String> = check_schema(Kind::Node, &value).iter().map(|v| format!("{}: {}", v.path, v.message)).collect();
        assert_eq!(shown, [format!("apiVersion: must be \"{API_VERSION}\", not \"v1\"")]);
    }
}
