//! Object names and free-form string values shared by every kind.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, de};

/// Longest object name, as in Kubernetes.
pub const MAX_NAME_LEN: usize = 253;

/// Splits the id a node records a clone instance under (`rsc:3`) into the
/// resource's name and the instance number; any other id is a name of its own.
pub fn split_instance(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once(':') {
        Some((base, instance)) if !instance.is_empty() && instance.bytes().all(|b| b.is_ascii_digit()) => (base, Some(instance)),
        _ => (id, None),
    }
}

/// The alphabet of object names: Pacemaker's XML ids plus leading digits (node names).
pub(crate) const NAME_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$";

/// The name of an object, or a reference to one.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(pub String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` is a valid object name; the same rule as the schema's.
    pub fn is_valid(text: &str) -> bool {
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        first_ok && text.len() <= MAX_NAME_LEN && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Name {
        Name(text.to_string())
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LEN,
            "pattern": NAME_PATTERN,
        })
    }
}

/// A parameter or attribute value. YAML users write `cidr_netmask: 24` or
/// `enabled: true`; agents receive strings, so scalars are kept as their text.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ParamValue(pub String);

impl ParamValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ParamValue, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ParamValue, E> {
                Ok(ParamValue(text.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ParamValue, E> {
                Ok(ParamValue(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for ParamValue {
    fn schema_name() -> Cow<'static, str> {
        "ParamValue".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer", "number", "boolean"],
            "maxLength": 65536,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for good in ["web", "node-1", "1node", "_x", "a.b_c-d"] {
            assert!(Name::is_valid(good), "{good}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", &"x".repeat(254)] {
            assert!(!Name::is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn param_values_keep_scalars_as_text() {
        let values: Vec<ParamValue> = serde_json::from_str(r#"["a", 24, 1.5, true]"#).expect("scalars");
        let texts: Vec<&str> = values.iter().map(ParamValue::as_str).collect();
        assert_eq!(texts, ["a", "24", "1.5", "true"]);
        assert!(serde_json::from_str::<ParamValue>("[1]").is_err());
    }
}
