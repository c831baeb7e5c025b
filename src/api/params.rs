//! Agent parameters and secrets. A parameter of a resource, fence device or alert is
//! a value written in the manifest, or a reference to a file on the host that runs the
//! agent (`passwd: {secretFile: /etc/pacer/secrets/ipmi-passwd}`), as Pacemaker's
//! cibsecret keeps secrets in local files on each node rather than in the CIB. Only
//! the reference is stored, planned and reported; the executor reads the file just
//! before the run (`exec::secret`).
//!
//! Which plain parameters look like secrets (`is_secret_name`) is decided here too:
//! their values are shown as `REDACTED` by every output (`redact_object`,
//! `redact_message`), and `pacer apply` warns about them (`plain_secret_warnings`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_json::Value;

use super::names::ParamValue;
use super::path::{FieldPath, Segment};

/// What every output shows instead of a value that looks like a secret.
pub const REDACTED: &str = "(redacted)";

/// The longest secret file path accepted.
pub const MAX_SECRET_PATH: usize = 4096;

/// One agent parameter: a value, or the file on the running host that holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    Value(ParamValue),
    /// An absolute path; the file's content, less one trailing newline, is the value.
    SecretFile(String),
}

impl Param {
    /// The value written in the manifest; `None` for a secret file.
    pub fn plain(&self) -> Option<&str> {
        match self {
            Param::Value(value) => Some(value.as_str()),
            Param::SecretFile(_) => None,
        }
    }

    pub fn secret_file(&self) -> Option<&str> {
        match self {
            Param::Value(_) => None,
            Param::SecretFile(path) => Some(path),
        }
    }
}

impl From<&str> for Param {
    fn from(text: &str) -> Param {
        Param::Value(ParamValue(text.to_string()))
    }
}

impl fmt::Display for Param {
    /// The manifest's text for a value, `{secretFile: PATH}` for a reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Value(value) => f.write_str(value.as_str()),
            Param::SecretFile(path) => write!(f, "{{secretFile: {path}}}"),
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Param::Value(value) => value.serialize(serializer),
            Param::SecretFile(path) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("secretFile", path)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Param, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Param;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or {secretFile: /absolute/path}")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Param, E> {
                Ok(Param::from(text))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Param, E> {
                Ok(Param::from(value.to_string().as_str()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Param, E> {
                Ok(Param::from(value.to_string().as_str()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Param, E> {
                Ok(Param::from(value.to_string().as_str()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Param, E> {
                Ok(Param::from(value.to_string().as_str()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Param, A::Error> {
                let mut path: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secretFile" {
                        return Err(de::Error::unknown_field(&key, &["secretFile"]));
                    }
                    if path.is_some() {
                        return Err(de::Error::duplicate_field("secretFile"));
                    }
                    path = Some(map.next_value()?);
                }
                path.map(Param::SecretFile).ok_or_else(|| de::Error::missing_field("secretFile"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Param {
    fn schema_name() -> Cow<'static, str> {
        "Param".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A value, or {secretFile: PATH}: an absolute path to a file on the host that runs the agent (mode 0600 or 0400, owned by root or the agent's user), read just before each run; only the path is stored.",
            "anyOf": [
                {"type": ["string", "integer", "number", "boolean"], "maxLength": 65536},
                {
                    "type": "object",
                    "properties": {"secretFile": {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_PATH}},
                    "required": ["secretFile"],
                    "additionalProperties": false,
                },
            ],
        })
    }
}

/// The parameters written in the configuration, as agents receive them.
pub fn plain_values(params: &BTreeMap<String, Param>) -> BTreeMap<String, String> {
    params.iter().filter_map(|(key, value)| Some((key.clone(), value.plain()?.to_string()))).collect()
}

/// The parameters kept in files on the running host: name to path, never the value.
pub fn secret_files(params: &BTreeMap<String, Param>) -> BTreeMap<String, String> {
    params.iter().filter_map(|(key, value)| Some((key.clone(), value.secret_file()?.to_string()))).collect()
}

/// Whether a parameter name is taken for a secret: its plain value is never shown and
/// `pacer apply` suggests `secretFile`. The name, lower-cased with `-` read as `_`,
/// ends in a word for a password or key: `passwd`, `password`, `passphrase`,
/// `secret`, `token`, `apikey`, `community` (SNMP's shared secret), or ends in
/// `secret_key`, `api_key` or `private_key`. fence-agents' names this catches:
/// `passwd`, `password`, `snmp_priv_passwd`, `community`, `secret_key` (fence_aws),
/// `apikey` (fence_ibm_vpc), `token`. Not: `passwd_script`, `password_script`,
/// `token_file`, `identity_file` (they name a program or file, not the secret),
/// `login`, `access_key` (an identifier), `key` (fence_scsi's reservation key).
pub fn is_secret_name(name: &str) -> bool {
    const LAST_WORDS: [&str; 7] = ["passwd", "password", "passphrase", "secret", "token", "apikey", "community"];
    const ENDINGS: [&str; 3] = ["secret_key", "api_key", "private_key"];
    let name = name.to_ascii_lowercase().replace('-', "_");
    let last_word = name.rsplit('_').next().unwrap_or_default();
    LAST_WORDS.contains(&last_word) || ENDINGS.iter().any(|ending| name.ends_with(ending))
}

/// The maps of agent parameters in an object's JSON form, by kind: `spec.params` of a
/// Resource or FenceDevice, `spec.parameters` of an Alert.
const PARAM_MAPS: [(&str, &str); 3] = [("Resource", "params"), ("FenceDevice", "params"), ("Alert", "parameters")];

/// If `path` is at or under a parameter of an object (`spec.params.NAME…`), that
/// parameter's name.
pub fn parameter_at(path: &FieldPath) -> Option<&str> {
    match path.segments() {
        [Segment::Key(spec), Segment::Key(map), Segment::Key(name), ..] if spec == "spec" && (map == "params" || map == "parameters") => Some(name),
        _ => None,
    }
}

/// A problem's message for `path`, with nothing of the value when the path is a
/// parameter taken for a secret: schema and decoding errors quote the value they
/// refuse.
pub fn redact_message(path: &FieldPath, message: String) -> String {
    match parameter_at(path) {
        Some(name) if is_secret_name(name) => {
            format!("invalid value (not shown: {name} is taken for a secret): expected a string, number, boolean or {{secretFile: /absolute/path}}")
        }
        _ => message,
    }
}

/// Replaces, in an object's JSON form (as `pacer get` and `diff` show it), the plain
/// value of every parameter taken for a secret by `REDACTED`. Secret file references
/// are shown: they are paths, not secrets.
pub fn redact_object(object: &mut Value) {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    for (of_kind, field) in PARAM_MAPS {
        if kind != of_kind {
            continue;
        }
        let Some(Value::Object(params)) = object.get_mut("spec").and_then(|spec| spec.get_mut(field)) else { continue };
        for (name, value) in params.iter_mut() {
            if is_secret_name(name) && !value.is_object() {
                *value = Value::String(REDACTED.to_string());
            }
        }
    }
}

/// `redact_object` on both sides of a change, where a plain secret whose value
/// changed reads `(redacted, changed)` on the new side: a diff shows that it changed,
/// never what it was or became.
pub fn redact_change(before: Option<&mut Value>, after: Option<&mut Value>) {
    let secrets = |object: &Value| -> Vec<(&'static str, String, Value)> {
        let mut found = Vec::new();
        for (_, field) in PARAM_MAPS {
            if let Some(Value::Object(params)) = object.get("spec").and_then(|spec| spec.get(field)) {
                found.extend(
                    params.iter().filter(|(name, value)| is_secret_name(name) && !value.is_object()).map(|(name, value)| (field, name.clone(), value.clone())),
                );
            }
        }
        found
    };
    let old = before.as_deref().map(secrets).unwrap_or_default();
    if let Some(before) = before {
        redact_object(before);
    }
    let Some(after) = after else { return };
    let changed: Vec<(&str, String)> = secrets(after)
        .into_iter()
        .filter(|(field, name, value)| old.iter().any(|(old_field, old_name, old_value)| old_field == field && old_name == name && old_value != value))
        .map(|(field, name, _)| (field, name))
        .collect();
    redact_object(after);
    for (field, name) in changed {
        if let Some(value) = after.get_mut("spec").and_then(|spec| spec.get_mut(field)).and_then(|params| params.get_mut(&name)) {
            *value = Value::String(REDACTED_CHANGED.to_string());
        }
    }
}

/// What a diff shows for a plain secret whose value changed.
pub const REDACTED_CHANGED: &str = "(redacted, changed)";

/// The parameters of one object's spec, by the field path of their map.
pub fn parameters_of(spec: &super::Spec) -> Option<(FieldPath, &BTreeMap<String, Param>)> {
    match spec {
        super::Spec::Resource(resource) => Some((FieldPath::of(&["spec", "params"]), &resource.params)),
        super::Spec::FenceDevice(device) => Some((FieldPath::of(&["spec", "params"]), &device.params)),
        super::Spec::Alert(alert) => Some((FieldPath::of(&["spec", "parameters"]), &alert.parameters)),
        _ => None,
    }
}

/// The plain parameters of `spec` whose names are taken for secrets: each a field
/// path and the warning `pacer apply` prints for it.
pub fn plain_secret_warnings(spec: &super::Spec) -> Vec<(FieldPath, String)> {
    let Some((map, params)) = parameters_of(spec) else { return Vec::new() };
    params
        .iter()
        .filter(|(name, param)| is_secret_name(name) && param.plain().is_some())
        .map(|(name, _)| {
            let message = format!("{name} looks like a secret and would be stored in etcd in plain text; put it in a file on each node and write {name}: {{secretFile: /etc/pacer/secrets/...}}");
            (map.clone().key(name.clone()), message)
        })
        .collect()
}

/// Why a secret file reference is refused, if it is: an absolute path to a file, with
/// no `..`, no control character, at most `MAX_SECRET_PATH` bytes.
pub fn check_secret_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_SECRET_PATH {
        return Err(format!("secretFile is longer than {MAX_SECRET_PATH} bytes"));
    }
    if !super::validate::is_absolute_file_path(path) {
        return Err(format!("secretFile {path:?} is not an absolute path to a file, without '..'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_a_scalar_or_a_secret_file() {
        let params: Vec<Param> = serde_json::from_str(r#"["a", 24, true, {"secretFile": "/etc/pacer/secrets/p"}]"#).expect("params");
        assert_eq!(params[0], Param::from("a"));
        assert_eq!(params[1], Param::from("24"));
        assert_eq!(params[2], Param::from("true"));
        assert_eq!(params[3], Param::SecretFile("/etc/pacer/secrets/p".into()));
        // Stored as written: scalars as text, the reference as a map.
        assert_eq!(serde_json::to_string(&params).expect("encode"), r#"["a","24","true",{"secretFile":"/etc/pacer/secrets/p"}]"#);
        for bad in [r#"{"file": "/x"}"#, r#"{}"#, r#"[1]"#, r#"{"secretFile": 1}"#] {
            assert!(serde_json::from_str::<Param>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_names_are_the_fence_agents_passwords_and_keys() {
        for secret in
            ["passwd", "password", "Password", "snmp_priv_passwd", "db-password", "community", "secret_key", "apikey", "api_key", "token", "client_secret"]
        {
            assert!(is_secret_name(secret), "{secret}");
        }
        for plain in
            ["passwd_script", "password_script", "snmp_priv_passwd_script", "token_file", "identity_file", "login", "access_key", "key", "ip", "passwordless"]
        {
            assert!(!is_secret_name(plain), "{plain}");
        }
    }

    #[test]
    fn secret_paths_are_absolute_without_dot_dot() {
        assert!(check_secret_path("/etc/pacer/secrets/ipmi").is_ok());
        for bad in ["secrets/ipmi", "/etc/pacer/../shadow", "/etc/pacer/", "", "/etc/a\nb"] {
            assert!(check_secret_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn outputs_redact_plain_secrets_and_show_references() {
        let mut object = serde_json::json!({
            "kind": "FenceDevice",
            "spec": {"params": {"passwd": "hunter2", "login": "admin", "password": {"secretFile": "/etc/pacer/secrets/p"}}},
        });
        redact_object(&mut object);
        assert_eq!(object["spec"]["params"], serde_json::json!({"passwd": REDACTED, "login": "admin", "password": {"secretFile": "/etc/pacer/secrets/p"}}));
        let mut alert = serde_json::json!({"kind": "Alert", "spec": {"parameters": {"api_token": "t0k"}}});
        redact_object(&mut alert);
        assert_eq!(alert["spec"]["parameters"]["api_token"], REDACTED);
    }

    #[test]
    fn a_diff_says_a_secret_changed_without_its_values() {
        let mut before = serde_json::json!({"kind": "Resource", "spec": {"params": {"password": "old-pw", "db_token": "same", "ip": "10.0.0.1"}}});
        let mut after = serde_json::json!({"kind": "Resource", "spec": {"params": {"password": "new-pw", "db_token": "same", "ip": "10.0.0.2"}}});
        redact_change(Some(&mut before), Some(&mut after));
        assert_eq!(before["spec"]["params"], serde_json::json!({"password": REDACTED, "db_token": REDACTED, "ip": "10.0.0.1"}));
        assert_eq!(after["spec"]["params"], serde_json::json!({"password": REDACTED_CHANGED, "db_token": REDACTED, "ip": "10.0.0.2"}));
    }

    #[test]
    fn messages_about_a_secret_parameter_quote_nothing() {
        let path = FieldPath::of(&["spec", "params", "passwd"]);
        let message = redact_message(&path, "\"hunter2\" is longer than 65536 characters".into());
        assert!(!message.contains("hunter2"), "{message}");
        let plain = FieldPath::of(&["spec", "params", "ip"]);
        assert_eq!(redact_message(&plain, "\"x\" is bad".into()), "\"x\" is bad");
    }
}
