//! Writing what a verb changed: edited objects go through `store::apply` like any
//! manifest (schema, semantic checks of the whole set, the spec-version guard), with
//! the resourceVersion they were read at as a precondition, so a verb never
//! overwrites a change it did not see.

use crate::api::manifest::{Source, load};
use crate::api::yaml::to_yaml_string;
use crate::api::{Kind, Name, Object, ObjectKey};
use crate::store::apply::{ApplyOutcome, ApplyReport, ApplyRequest, apply};
use crate::store::{Listing, Store};

use super::OpsError;

/// Annotation keys of objects a verb made or changed.
pub mod annotations {
    /// The verb that owns the object (`move`, `ban`); such objects are shown under
    /// their own heading and removed by `clear`.
    pub const OWNER: &str = "pacer.io/owner";
    /// Who ran the verb (`user@host`).
    pub const CREATED_BY: &str = "pacer.io/created-by";
}

/// Who runs this command: `user@host`, for the record in an object's annotations.
pub fn operator() -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME"].iter().find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty())).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions and cannot fail.
        format!("uid {}", unsafe { libc::getuid() })
    });
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default();
    if host.is_empty() { user } else { format!("{user}@{host}") }
}

/// Finds a stored object, or says it does not exist in a user's words.
pub fn find<'a>(listing: &'a Listing, kind: Kind, name: &str) -> Result<&'a Object, OpsError> {
    let key = ObjectKey { kind, name: Name(name.to_string()) };
    listing.objects.get(&key).map(|stored| &*stored.object).ok_or_else(|| OpsError::NotFound(format!("{} {name} not found", kind.as_str())))
}

/// Writes `objects` (created or updated; an object read from the store keeps its
/// `resourceVersion`, the precondition) and deletes `delete`, all or nothing.
/// `source` names the change in diagnostics (`pacer move`). A dry run checks and plans
/// but writes nothing. An invalid change is `OpsError::Invalid`.
pub async fn write(store: &Store, objects: &[Object], delete: Vec<ObjectKey>, dry_run: bool, source: &str) -> Result<ApplyReport, OpsError> {
    let text: String = objects.iter().map(|object| to_yaml_string(&object.to_value())).collect::<Vec<_>>().join("---\n");
    let loaded = load(&[Source { name: source.to_string(), text }]);
    let request = ApplyRequest { loaded, delete, dry_run, ..ApplyRequest::default() };
    match apply(store, &request).await? {
        ApplyOutcome::Invalid(diagnostics) => Err(OpsError::Invalid(diagnostics)),
        ApplyOutcome::Planned(report) => Ok(report),
    }
}
