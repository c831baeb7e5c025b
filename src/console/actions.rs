//! The console's actions: a request from the page, checked, turned into the `pacer`
//! command that does the same, and run through the very `ops` function that command
//! calls (never a second implementation).

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use crate::api::records::RequestKind;
use crate::api::{Duration as Lifetime, Name};
use crate::ops::OpsError;
use crate::ops::flags::{NodeFlag, ResourceFlag, drain, set_node_flag, set_resource_flag};
use crate::ops::placement::{BanRequest, ClearRequest, MoveRequest, ban, clear, move_resource};
use crate::ops::requests::{RequestSpec, request};
use crate::ops::restart::restart;
use crate::store::Store;

/// How long a drain from the console waits for the node to empty: `pacer drain`'s default.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a restart from the console waits for each step: `pacer restart`'s default.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// What the page sends: a verb and what it acts on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRequest {
    pub verb: String,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub node: Option<String>,
    /// For `move` and `ban`: the constraint's lifetime (`10min`).
    #[serde(default)]
    pub lifetime: Option<String>,
}

/// A checked action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Node { flag: NodeFlag, on: bool, node: String },
    Drain { node: String },
    Move { resource: String, node: String, lifetime: Option<String> },
    Ban { resource: String, node: String, lifetime: Option<String> },
    Clear { resource: String },
    Request { kind: RequestKind, resource: String, node: Option<String> },
    Restart { resource: String },
    Resource { flag: ResourceFlag, resource: String },
}

impl Action {
    /// Checks a request: a known verb, the names it needs (valid object names), a
    /// lifetime that parses. The reason names the field.
    pub fn parse(request: &ActionRequest) -> Result<Action, String> {
        let name = |field: &str, value: &Option<String>| -> Result<String, String> {
            match value.as_deref().filter(|value| !value.is_empty()) {
                None => Err(format!("{}: `{field}` is required", request.verb)),
                Some(value) if Name::is_valid(value) => Ok(value.to_string()),
                Some(_) => Err(format!("{}: `{field}` is not a valid name", request.verb)),
            }
        };
        let optional_node =
            || -> Result<Option<String>, String> { request.node.as_ref().filter(|node| !node.is_empty()).map(|_| name("node", &request.node)).transpose() };
        let lifetime = || -> Result<Option<String>, String> {
            match request.lifetime.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
                None => Ok(None),
                // The parsed duration's own form, so the command shown is one the CLI takes.
                Some(text) => {
                    text.parse::<Lifetime>().map(|lifetime| Some(lifetime.to_string())).map_err(|error| format!("{}: `lifetime`: {error}", request.verb))
                }
            }
        };
        let node_flag = |flag, on| -> Result<Action, String> { Ok(Action::Node { flag, on, node: name("node", &request.node)? }) };
        let resource_flag = |flag| -> Result<Action, String> { Ok(Action::Resource { flag, resource: name("resource", &request.resource)? }) };
        match request.verb.as_str() {
            "standby" => node_flag(NodeFlag::Standby, true),
            "unstandby" => node_flag(NodeFlag::Standby, false),
            "maintenance" => node_flag(NodeFlag::Maintenance, true),
            "unmaintenance" => node_flag(NodeFlag::Maintenance, false),
            "drain" => Ok(Action::Drain { node: name("node", &request.node)? }),
            "move" => Ok(Action::Move { resource: name("resource", &request.resource)?, node: name("node", &request.node)?, lifetime: lifetime()? }),
            "ban" => Ok(Action::Ban { resource: name("resource", &request.resource)?, node: name("node", &request.node)?, lifetime: lifetime()? }),
            "clear" => Ok(Action::Clear { resource: name("resource", &request.resource)? }),
            "cleanup" => Ok(Action::Request { kind: RequestKind::Cleanup, resource: name("resource", &request.resource)?, node: optional_node()? }),
            "refresh" => Ok(Action::Request { kind: RequestKind::Refresh, resource: name("resource", &request.resource)?, node: optional_node()? }),
            "restart" => Ok(Action::Restart { resource: name("resource", &request.resource)? }),
            "enable" => resource_flag(ResourceFlag::Enable),
            "disable" => resource_flag(ResourceFlag::Disable),
            "manage" => resource_flag(ResourceFlag::Manage),
            "unmanage" => resource_flag(ResourceFlag::Unmanage),
            other => Err(format!("unknown action `{other}`")),
        }
    }

    /// The `pacer` command that does the same. Names are valid object names, which
    /// need no shell quoting.
    pub fn command(&self) -> String {
        let lifetime = |lifetime: &Option<String>| lifetime.as_ref().map(|lifetime| format!(" --lifetime {lifetime}")).unwrap_or_default();
        match self {
            Action::Node { flag, on, node } => {
                let verb = match (flag, on) {
                    (NodeFlag::Standby, true) => "standby",
                    (NodeFlag::Standby, false) => "unstandby",
                    (NodeFlag::Maintenance, true) => "maintenance",
                    (NodeFlag::Maintenance, false) => "unmaintenance",
                };
                format!("pacer node {verb} {node}")
            }
            Action::Drain { node } => format!("pacer drain {node}"),
            Action::Move { resource, node, lifetime: life } => format!("pacer move {resource} {node}{}", lifetime(life)),
            Action::Ban { resource, node, lifetime: life } => format!("pacer ban {resource} {node}{}", lifetime(life)),
            Action::Clear { resource } => format!("pacer clear {resource}"),
            Action::Request { kind, resource, node } => {
                format!("pacer {} {resource}{}", kind.as_str(), node.as_ref().map(|node| format!(" --node {node}")).unwrap_or_default())
            }
            Action::Restart { resource } => format!("pacer restart {resource}"),
            Action::Resource { flag, resource } => {
                let verb = match flag {
                    ResourceFlag::Enable => "enable",
                    ResourceFlag::Disable => "disable",
                    ResourceFlag::Manage => "manage",
                    ResourceFlag::Unmanage => "unmanage",
                };
                format!("pacer {verb} {resource}")
            }
        }
    }

    /// Runs the action; the text is what the command prints (its notices too).
    /// `interrupted` ending cuts a restart's waits short (its stop is undone all the
    /// same), as Ctrl-C does the command's.
    pub async fn run(&self, store: &Store, interrupted: impl Future<Output = ()> + Send) -> Result<String, OpsError> {
        let parse_lifetime = |lifetime: &Option<String>| -> Result<Option<Lifetime>, OpsError> {
            lifetime.as_deref().map(|text| text.parse::<Lifetime>().map_err(|error| OpsError::Refused(format!("--lifetime: {error}")))).transpose()
        };
        match self {
            Action::Node { flag, on, node } => Ok(set_node_flag(store, std::slice::from_ref(node), false, *flag, *on, false).await?.describe()),
            Action::Drain { node } => {
                let outcome = drain(store, node, DRAIN_TIMEOUT, false).await?;
                Ok(format!("{}{node} is drained: nothing runs there\n", outcome.standby.describe()))
            }
            Action::Move { resource, node, lifetime } => {
                let request = MoveRequest {
                    resource: resource.clone(),
                    node: Some(node.clone()),
                    lifetime: parse_lifetime(lifetime)?,
                    promoted: false,
                    keep: false,
                    dry_run: false,
                };
                let change = move_resource(store, &request).await?;
                Ok(with_notices(change.describe(), &change.notices))
            }
            Action::Ban { resource, node, lifetime } => {
                let request =
                    BanRequest { resource: resource.clone(), node: Some(node.clone()), lifetime: parse_lifetime(lifetime)?, promoted: false, dry_run: false };
                let change = ban(store, &request).await?;
                Ok(with_notices(change.describe(), &change.notices))
            }
            Action::Clear { resource } => {
                let request = ClearRequest { resource: resource.clone(), node: None, expired: false, dry_run: false };
                let change = clear(store, &request).await?;
                Ok(with_notices(change.describe(), &change.notices))
            }
            Action::Request { kind, resource, node } => {
                let spec = RequestSpec { kind: *kind, resource: Some(resource.clone()), node: node.clone(), operation: None, interval_ms: None };
                let outcome = request(store, &spec, false).await?;
                match &outcome.nothing {
                    Some(nothing) => Err(OpsError::Refused(nothing.clone())),
                    None => Ok(outcome.describe()),
                }
            }
            Action::Restart { resource } => {
                let outcome = restart(store, resource, None, RESTART_TIMEOUT, false, interrupted).await?;
                Ok(outcome.steps.iter().map(|step| format!("{step}\n")).collect())
            }
            Action::Resource { flag, resource } => Ok(set_resource_flag(store, resource, *flag, false).await?.describe()),
        }
    }
}

/// A verb's text followed by its notices, as the CLI prints them (`notice: …`).
fn with_notices(text: String, notices: &[String]) -> String {
    notices.iter().fold(text, |text, notice| format!("{text}notice: {notice}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verb: &str, resource: Option<&str>, node: Option<&str>, lifetime: Option<&str>) -> ActionRequest {
        ActionRequest { verb: verb.into(), resource: resource.map(Into::into), node: node.map(Into::into), lifetime: lifetime.map(Into::into) }
    }

    #[test]
    fn each_action_is_the_command_that_does_the_same() {
        let cases = [
            (request("standby", None, Some("n1"), None), "pacer node standby n1"),
            (request("unmaintenance", None, Some("n2"), None), "pacer node unmaintenance n2"),
            (request("drain", None, Some("n3"), None), "pacer drain n3"),
            (request("move", Some("web"), Some("n2"), Some("10min")), "pacer move web n2 --lifetime 10min"),
            (request("move", Some("web"), Some("n2"), Some("1h 30min")), "pacer move web n2 --lifetime 90min"),
            (request("ban", Some("web"), Some("n1"), Some("")), "pacer ban web n1"),
            (request("clear", Some("web"), None, None), "pacer clear web"),
            (request("cleanup", Some("db"), Some("n1"), None), "pacer cleanup db --node n1"),
            (request("refresh", Some("db"), None, None), "pacer refresh db"),
            (request("restart", Some("web"), None, None), "pacer restart web"),
            (request("unmanage", Some("web"), None, None), "pacer unmanage web"),
        ];
        for (request, command) in cases {
            let action = Action::parse(&request).unwrap_or_else(|reason| panic!("{}: {reason}", request.verb));
            assert_eq!(action.command(), command);
        }
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        let refused = |request: ActionRequest| Action::parse(&request).err().unwrap_or_default();
        assert_eq!(refused(request("standby", None, None, None)), "standby: `node` is required");
        assert_eq!(refused(request("move", Some("web"), Some("n1; rm -rf /"), None)), "move: `node` is not a valid name");
        assert_eq!(refused(request("reboot", Some("web"), None, None)), "unknown action `reboot`");
        assert!(refused(request("ban", Some("web"), Some("n1"), Some("soon"))).starts_with("ban: `lifetime`: "));
    }
}
