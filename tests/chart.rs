//! The Helm chart (charts/pacer): `values.schema.json` describes every value —
//! `values.yaml`, and the non-default `ci/secure-values.yaml` merged over it as Helm
//! merges a `-f` file (maps key by key, anything else replaced), validate against it, an
//! unknown or mistyped value is refused, and every value the defaults set is
//! described — and, where `helm` is on PATH, `helm lint` and `helm template` pass on
//! both value sets.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/pacer")
}

fn values(name: &str) -> Value {
    let text = std::fs::read_to_string(chart().join(name)).unwrap_or_else(|error| panic!("read {name}: {error}"));
    let mut documents = pacer::api::yaml::parse_documents(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(documents.len(), 1, "{name} is one YAML document");
    documents.remove(0).value
}

/// `overlay` over `base`, as Helm merges a values file over the chart's defaults.
fn merged(mut base: Value, overlay: Value) -> Value {
    match (&mut base, overlay) {
        (Value::Object(base_map), Value::Object(overlay_map)) => {
            for (key, value) in overlay_map {
                let slot = base_map.entry(key).or_insert(Value::Null);
                *slot = merged(std::mem::take(slot), value);
            }
            base
        }
        (_, overlay) => overlay,
    }
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(chart().join("values.schema.json")).expect("read values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("values.schema.json is JSON");
    jsonschema::validator_for(&schema).expect("values.schema.json is a valid schema")
}

fn problems(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

#[test]
fn default_and_secure_values_validate_against_the_schema() {
    let validator = validator();
    let defaults = values("values.yaml");
    let found = problems(&validator, &defaults);
    assert!(found.is_empty(), "values.yaml: {found:#?}");
    let secure = values("ci/secure-values.yaml");
    let combined = merged(defaults.clone(), secure);
    assert_ne!(combined, defaults, "the second set differs from the defaults");
    assert_eq!(combined["tls"]["enabled"], Value::Bool(true));
    let found = problems(&validator, &combined);
    assert!(found.is_empty(), "ci/secure-values.yaml over values.yaml: {found:#?}");
}

/// A mistake in the second file is caught through the merge too.
#[test]
fn a_mistake_in_an_overriding_file_is_refused() {
    let overlay = pacer::api::yaml::parse_documents("agents:\n  enabled: true\n  hostPath: [/srv]\n").expect("yaml").remove(0).value;
    let found = problems(&validator(), &merged(values("values.yaml"), overlay));
    assert!(found.iter().any(|problem| problem.contains("hostPath")), "{found:#?}");
}

/// The schema refuses what the chart would silently ignore or misrender.
#[test]
fn unknown_and_mistyped_values_are_refused() {
    let validator = validator();
    let refused = |change: &dyn Fn(&mut Value), expected: &str| {
        let mut instance = values("values.yaml");
        change(&mut instance);
        let found = problems(&validator, &instance);
        assert!(found.iter().any(|problem| problem.contains(expected)), "expected a problem with {expected:?}, got {found:#?}");
    };
    refused(&|values| values["schedulr"] = serde_json::json!({"replicas": 2}), "schedulr");
    refused(&|values| values["scheduler"]["replica"] = serde_json::json!(2), "replica");
    refused(&|values| values["scheduler"]["replicas"] = serde_json::json!("two"), "/scheduler/replicas");
    refused(&|values| values["etcd"]["replicas"] = serde_json::json!(2), "/etcd/replicas");
    refused(&|values| values["tls"]["enabled"] = serde_json::json!("yes"), "/tls/enabled");
    refused(&|values| values["tls"]["schedulerSecret"] = serde_json::json!("Not A Secret Name"), "/tls/schedulerSecret");
    refused(&|values| values["agents"]["onShutdown"] = serde_json::json!("kill"), "/agents/onShutdown");
    refused(&|values| values["agents"]["tlsSource"] = serde_json::json!("configMap"), "/agents/tlsSource");
    refused(&|values| values["agents"]["hostBinDir"] = serde_json::json!("relative/bin"), "/agents/hostBinDir");
    refused(&|values| values["agents"]["etcdEndpoints"] = serde_json::json!(["etcd:2379"]), "/agents/etcdEndpoints");
    // The old overlay of the host's /usr is gone from the values.
    refused(&|values| values["agents"]["hostPaths"] = serde_json::json!(["/usr/bin"]), "hostPaths");
    refused(&|values| values["metrics"]["schedulerPort"] = serde_json::json!(70000), "/metrics/schedulerPort");
    refused(&|values| values["console"]["enabled"] = serde_json::json!(true), "/console/enabled");
    refused(&|values| values["scheduler"]["tolerations"] = serde_json::json!([{"key": "a", "operatr": "Exists"}]), "operatr");
    refused(
        &|values| {
            values["image"].as_object_mut().expect("image").remove("repository");
        },
        "repository",
    );
}

/// Every object in the schema closes its properties and describes each of them, so
/// a value added to values.yaml without its description fails the validation above.
#[test]
fn every_schema_object_is_closed_and_every_property_described() {
    let text = std::fs::read_to_string(chart().join("values.schema.json")).expect("read values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("JSON");
    fn walk(at: &str, node: &Value, found: &mut Vec<String>) {
        let Some(map) = node.as_object() else { return };
        if let Some(properties) = map.get("properties").and_then(Value::as_object) {
            if map.get("additionalProperties") != Some(&Value::Bool(false)) {
                found.push(format!("{at}: properties without additionalProperties: false"));
            }
            for (name, property) in properties {
                if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    found.push(format!("{at}/{name}: no description"));
                }
            }
        }
        for (key, child) in map {
            match child {
                Value::Object(_) => walk(&format!("{at}/{key}"), child, found),
                Value::Array(items) => items.iter().enumerate().for_each(|(index, item)| walk(&format!("{at}/{key}/{index}"), item, found)),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk("", &schema, &mut found);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn helm_lints_and_renders_both_value_sets_where_helm_exists() {
    if Command::new("helm").arg("version").output().is_err() {
        println!("skipped: helm is not on PATH (not installable from this machine's package registries); helm lint and helm template not run");
        return;
    }
    for values in ["values.yaml", "ci/secure-values.yaml"] {
        let file = chart().join(values).display().to_string();
        let chart_dir = chart().display().to_string();
        for args in [vec!["lint", "--strict", &chart_dir, "-f", &file], vec!["template", "pacer", &chart_dir, "-f", &file]] {
            let output = Command::new("helm").args(&args).output().expect("run helm");
            assert!(output.status.success(), "helm {args:?}: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            if args[0] == "template" {
                let rendered = String::from_utf8_lossy(&output.stdout);
                assert!(rendered.contains("kind: StatefulSet") && rendered.contains("kind: Deployment"), "{rendered}");
                assert!(!rendered.contains("BEGIN"), "no key material in the rendering");
            }
        }
    }
}
