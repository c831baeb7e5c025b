//! The etcd key layout under the prefix (default `/pacer`).
//!
//! - `spec/<plural>/<name>`: desired objects as JSON.
//! - `meta/spec-version`: rewritten by every change of `spec/`; writers compare its
//!   revision to prove nothing changed since they read.
//! - `intents/<id>/chunk/<n>`, `intents/<id>/commit`: a large apply staged in chunks;
//!   the commit key is its point of no return (see `apply`).

use crate::api::ObjectKey;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') { trimmed.to_string() } else { format!("/{trimmed}") };
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn spec_prefix(&self) -> String {
        format!("{}/spec/", self.prefix)
    }

    pub fn object(&self, key: &ObjectKey) -> String {
        format!("{}/spec/{}/{}", self.prefix, key.kind.plural(), key.name)
    }

    pub fn spec_version(&self) -> String {
        format!("{}/meta/spec-version", self.prefix)
    }

    pub fn intents_prefix(&self) -> String {
        format!("{}/intents/", self.prefix)
    }

    pub fn intent_prefix(&self, id: &str) -> String {
        format!("{}/intents/{id}/", self.prefix)
    }

    pub fn intent_chunk(&self, id: &str, index: usize) -> String {
        format!("{}/intents/{id}/chunk/{index:06}", self.prefix)
    }

    pub fn intent_commit(&self, id: &str) -> String {
        format!("{}/intents/{id}/commit", self.prefix)
    }

    /// The intent id of a commit key, `None` for any other key.
    pub fn committed_intent_id(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.intents_prefix())?;
        let id = rest.strip_suffix("/commit")?;
        (!id.contains('/')).then(|| id.to_string())
    }

    /// The intent id of any key under `intents/`.
    pub fn intent_id(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.intents_prefix())?;
        rest.split('/').next().filter(|id| !id.is_empty()).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Kind, Name};

    #[test]
    fn lays_out_keys_under_the_prefix() {
        let keys = Keys::new("pacer/");
        assert_eq!(keys.prefix(), "/pacer");
        let web = ObjectKey { kind: Kind::Resource, name: Name::from("web") };
        assert_eq!(keys.object(&web), "/pacer/spec/resources/web");
        assert_eq!(keys.intent_commit("42-x"), "/pacer/intents/42-x/commit");
        assert_eq!(keys.committed_intent_id("/pacer/intents/42-x/commit").as_deref(), Some("42-x"));
        assert_eq!(keys.committed_intent_id("/pacer/intents/42-x/chunk/000001"), None);
        assert_eq!(keys.intent_id("/pacer/intents/42-x/chunk/000001").as_deref(), Some("42-x"));
    }
}
