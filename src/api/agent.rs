//! Agent names: `ocf:<provider>:<type>`, `lsb:<script>`, `systemd:<unit>` for resources,
//! `fence_<name>` (optionally `stonith:fence_<name>`) for fence devices.
//!
//! A name becomes a file name under an agent directory, so each part is restricted to
//! a plain file-name alphabet: never `/`, never `..`, never a control character. The
//! executor relies on this (it still resolves names only inside its directories).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The standard a resource agent follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentClass {
    Ocf,
    Lsb,
    Systemd,
}

impl AgentClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentClass::Ocf => "ocf",
            AgentClass::Lsb => "lsb",
            AgentClass::Systemd => "systemd",
        }
    }
}

/// A resource agent: class, provider (OCF only) and type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentRef {
    pub class: AgentClass,
    pub provider: Option<String>,
    pub agent_type: String,
}

/// Why a text is not a valid agent name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent {text:?}: {reason}")]
pub struct ParseAgentError {
    text: String,
    reason: String,
}

/// Checks one part of an agent name (provider, type, unit, fence agent).
pub(crate) fn check_name_part(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if part.len() > 128 {
        return Err(format!("{what} is longer than 128 characters"));
    }
    // Byte by byte where the text is ASCII: a CIB import checks thousands of agents,
    // and a substring search costs more to set up than these parts take to scan.
    let control = if part.is_ascii() { part.bytes().any(|byte| byte.is_ascii_control()) } else { part.chars().any(char::is_control) };
    if control {
        return Err(format!("{what} contains a control character"));
    }
    if part.as_bytes().contains(&b'/') {
        return Err(format!("{what} contains '/'"));
    }
    if part.as_bytes().windows(2).any(|pair| pair == b"..") {
        return Err(format!("{what} contains '..'"));
    }
    if part.starts_with('.') || part.starts_with('-') {
        return Err(format!("{what} starts with '{}'", &part[..1]));
    }
    if let Some(bad) = part.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.-@+".contains(*c))) {
        return Err(format!("{what} contains {bad:?} (allowed: letters, digits, _ . - @ +)"));
    }
    Ok(())
}

impl FromStr for AgentRef {
    type Err = ParseAgentError;

    fn from_str(text: &str) -> Result<AgentRef, ParseAgentError> {
        let error = |reason: String| ParseAgentError { text: text.to_string(), reason };
        let parts: Vec<&str> = text.split(':').collect();
        let agent = match parts.as_slice() {
            ["ocf", provider, agent_type] => {
                check_name_part(provider, "provider").map_err(error)?;
                check_name_part(agent_type, "type").map_err(error)?;
                AgentRef { class: AgentClass::Ocf, provider: Some(provider.to_string()), agent_type: agent_type.to_string() }
            }
            ["ocf", ..] => return Err(error("an OCF agent is written ocf:<provider>:<type>".into())),
            ["lsb", script] => {
                check_name_part(script, "script").map_err(error)?;
                AgentRef { class: AgentClass::Lsb, provider: None, agent_type: script.to_string() }
            }
            ["systemd", unit] => {
                check_name_part(unit, "unit").map_err(error)?;
                AgentRef { class: AgentClass::Systemd, provider: None, agent_type: unit.to_string() }
            }
            ["stonith", ..] => {
                return Err(error("fence agents are configured as a FenceDevice, not a Resource".into()));
            }
            [class, ..] if parts.len() > 1 => {
                return Err(error(format!("unknown class {class:?} (use ocf, lsb or systemd)")));
            }
            _ => return Err(error("expected ocf:<provider>:<type>, lsb:<script> or systemd:<unit>".into())),
        };
        Ok(agent)
    }
}

impl AgentRef {
    /// The agent as `Display` writes it, built in one allocation of its size (the
    /// scheduler compares every history's agent with this text).
    pub fn text(&self) -> String {
        let class = self.class.as_str();
        let provider = self.provider.as_deref();
        let mut text = String::with_capacity(class.len() + provider.map_or(0, |provider| provider.len() + 1) + 1 + self.agent_type.len());
        text.push_str(class);
        if let Some(provider) = provider {
            text.push(':');
            text.push_str(provider);
        }
        text.push(':');
        text.push_str(&self.agent_type);
        text
    }
}

impl fmt::Display for AgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Piece by piece rather than through `write!`: histories compare against the
        // text of every configured agent.
        f.write_str(self.class.as_str())?;
        if let Some(provider) = &self.provider {
            f.write_str(":")?;
            f.write_str(provider)?;
        }
        f.write_str(":")?;
        f.write_str(&self.agent_type)
    }
}

impl Serialize for AgentRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AgentRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for AgentRef {
    fn schema_name() -> Cow<'static, str> {
        "AgentRef".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 300,
            "description": "ocf:<provider>:<type>, lsb:<script> or systemd:<unit>",
        })
    }
}

/// A fence agent from fence-agents, such as `fence_ipmilan`. `stonith:fence_ipmilan`
/// is accepted and stored without the class.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FenceAgentRef(String);

impl FenceAgentRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FenceAgentRef {
    type Err = ParseAgentError;
    fn from_str(text: &str) -> Result<FenceAgentRef, ParseAgentError> {
        let name = text.strip_prefix("stonith:").unwrap_or(text);
        // cluster-glue's legacy stonith plugins live in their own namespace
        // (`external/ssh`, `external/sbd`, run through fence_legacy): that one prefix is
        // the only `/` a fence agent name may hold.
        let plugin = name.strip_prefix("external/").unwrap_or(name);
        check_name_part(plugin, "fence agent").map_err(|reason| ParseAgentError { text: text.to_string(), reason })?;
        Ok(FenceAgentRef(name.to_string()))
    }
}

impl fmt::Display for FenceAgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for FenceAgentRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FenceAgentRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FenceAgentRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FenceAgentRef {
    fn schema_name() -> Cow<'static, str> {
        "FenceAgentRef".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 140,
            "description": "a fence agent such as fence_ipmilan (stonith:fence_ipmilan is accepted)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_classes() {
        let ip: AgentRef = "ocf:heartbeat:IPaddr2".parse().expect("valid");
        assert_eq!((ip.class, ip.provider.as_deref(), ip.agent_type.as_str()), (AgentClass::Ocf, Some("heartbeat"), "IPaddr2"));
        assert_eq!(ip.to_string(), "ocf:heartbeat:IPaddr2");
        let named: AgentRef = "lsb:named".parse().expect("valid");
        assert_eq!((named.class, named.provider), (AgentClass::Lsb, None));
        let unit: AgentRef = "systemd:getty@tty1.service".parse().expect("valid");
        assert_eq!(unit.agent_type, "getty@tty1.service");
    }

    #[test]
    fn text_is_what_display_writes() {
        for written in ["ocf:heartbeat:IPaddr2", "lsb:named", "systemd:getty@tty1.service"] {
            let agent: AgentRef = written.parse().expect("valid");
            assert_eq!(agent.text(), written);
            assert_eq!(agent.text(), agent.to_string());
        }
    }

    #[test]
    fn refuses_paths_and_control_characters() {
        for bad in [
            "ocf:heartbeat:../../bin/sh",
            "ocf:../x:Dummy",
            "ocf:heartbeat:a/b",
            "lsb:..",
            "lsb:.hidden",
            "ocf:heartbeat:Dum\nmy",
            "ocf:heartbeat:Dum\u{7f}my",
            "ocf:heartbeat",
            "ocf::Dummy",
            "lsb:",
            "nagios:check_x",
            "stonith:fence_ipmilan",
            "Dummy",
            "lsb:a b",
        ] {
            assert!(bad.parse::<AgentRef>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn fence_agents_drop_the_stonith_class() {
        let agent: FenceAgentRef = "stonith:fence_ipmilan".parse().expect("valid");
        assert_eq!(agent.as_str(), "fence_ipmilan");
        assert!("fence_../x".parse::<FenceAgentRef>().is_err());
        // cluster-glue plugins keep their one namespace; nothing else may hold a `/`.
        assert_eq!("external/nut".parse::<FenceAgentRef>().expect("valid").as_str(), "external/nut");
        assert!("external/../nut".parse::<FenceAgentRef>().is_err());
        assert!("other/nut".parse::<FenceAgentRef>().is_err());
        assert!("external/nut/x".parse::<FenceAgentRef>().is_err());
    }
}
