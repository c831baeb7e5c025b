//! Who may read and write what in etcd: the one table of rights, built from `Keys`
//! so that the layout and the rights cannot drift apart, and `Store::bootstrap_auth`,
//! which makes etcd enforce it (roles by key prefix, users named by their
//! certificate's common name, then auth on).
//!
//! etcd checks keys, never values: a node's identity can only write under its own
//! prefixes, and what it writes there is still checked by its readers (a body that
//! names another node is dropped).

use etcd_client::{Permission, UserAddOptions};

use super::keys::Keys;
use super::{Store, StoreError};

/// An identity: an etcd user, named like the certificate's common name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    /// A node's agent (user and CN: the node's name).
    Node(String),
    /// Every scheduler (user and CN `scheduler`): the control plane.
    Scheduler,
    /// The administrator (user and CN `admin`), with etcd's `root` role: it runs
    /// `pacer apply`, `pacer fence confirm` and `pacer auth bootstrap`.
    Admin,
    /// Read-only (user and CN `reader`): `pacer status`, `get`, `history`, monitoring.
    Reader,
}

/// What a right allows on a range of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// A right on every key starting with `prefix`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Right {
    pub prefix: String,
    pub access: Access,
}

/// User names that are not nodes': a node so named would share a role or a user with
/// another identity (a node `reader` would give the reader its writes).
pub const RESERVED_NAMES: [&str; 4] = ["scheduler", "admin", "reader", ROOT];

/// The name of etcd's all-powerful role (and of the user auth needs before it can be
/// enabled).
pub const ROOT: &str = "root";

impl Identity {
    /// The etcd user name (and certificate CN).
    pub fn user(&self) -> String {
        match self {
            Identity::Node(node) => node.clone(),
            Identity::Scheduler => "scheduler".to_string(),
            Identity::Admin => "admin".to_string(),
            Identity::Reader => "reader".to_string(),
        }
    }

    /// The etcd role granted to the user: `root` for the administrator, else one of
    /// its own (`pacer-<user>`), so that Pacer's roles never clash with others'.
    pub fn role(&self) -> String {
        match self {
            Identity::Admin => ROOT.to_string(),
            other => format!("pacer-{}", other.user()),
        }
    }
}

/// The rights of an identity on the cluster under `keys` (the administrator's are
/// etcd's root role, not listed: none).
///
/// - a node reads everything under the prefix and the events, and writes only its own
///   prefixes: `nodes/N/` (lease, activity), `status/N/`, `attributes/N/`,
///   `requests/N/` (it deletes what it applied), `<prefix>.events/pending/N/`, and
///   `fence-results/N/` (fencing results it ran);
/// - the scheduler reads and writes the prefix, the events and the archive;
/// - the reader reads them, and writes nothing.
pub fn rights(keys: &Keys, identity: &Identity) -> Vec<Right> {
    let tree = format!("{}/", keys.prefix());
    let read = |prefix: String| Right { prefix, access: Access::Read };
    let write = |prefix: String| Right { prefix, access: Access::Write };
    let both = |prefix: String| Right { prefix, access: Access::ReadWrite };
    match identity {
        Identity::Node(node) => vec![
            read(tree),
            read(keys.events_prefix()),
            write(format!("{}{node}/", keys.nodes_prefix())),
            write(keys.node_statuses_prefix(node)),
            write(keys.node_attributes_prefix(node)),
            write(keys.node_requests_prefix(node)),
            write(keys.node_pending_events_prefix(node)),
            write(keys.node_fence_results_prefix(node)),
        ],
        Identity::Scheduler => vec![both(tree), both(keys.events_prefix()), both(keys.archive_prefix())],
        Identity::Admin => Vec::new(),
        Identity::Reader => vec![read(tree), read(keys.events_prefix()), read(keys.archive_prefix())],
    }
}

/// Whether `identity` may write `key` by `rights` (what etcd will answer, for tests
/// and for the CLI to explain a refusal).
pub fn may_write(keys: &Keys, identity: &Identity, key: &str) -> bool {
    *identity == Identity::Admin || rights(keys, identity).iter().any(|right| right.access != Access::Read && key.starts_with(&right.prefix))
}

/// Whether `identity` may read `key` by `rights`.
pub fn may_read(keys: &Keys, identity: &Identity, key: &str) -> bool {
    *identity == Identity::Admin || rights(keys, identity).iter().any(|right| right.access != Access::Write && key.starts_with(&right.prefix))
}

impl Store {
    /// Creates the roles and users of `identities` (the administrator's `root` user
    /// and role always) with the rights of `rights`, then turns auth on. Idempotent:
    /// what exists is kept, missing rights are granted, and run again once auth is on
    /// it needs the administrator's identity (etcd's root role).
    pub async fn bootstrap_auth(&self, identities: &[Identity]) -> Result<(), StoreError> {
        if let Some(Identity::Node(node)) =
            identities.iter().find(|identity| matches!(identity, Identity::Node(node) if RESERVED_NAMES.contains(&node.as_str())))
        {
            return Err(StoreError::Corrupt { key: format!("node {node}"), reason: format!("a node may not be named {node}: the name is another identity's") });
        }
        let mut auth = self.client().auth_client();
        let mut all: Vec<Identity> = identities.to_vec();
        all.push(Identity::Admin);
        all.sort();
        all.dedup();
        ensure_role(&mut auth, ROOT).await?;
        ensure_user(&mut auth, ROOT, ROOT).await?;
        for identity in &all {
            let role = identity.role();
            ensure_role(&mut auth, &role).await?;
            for right in rights(&self.keys, identity) {
                let permission = match right.access {
                    Access::Read => Permission::read(right.prefix.clone()),
                    Access::Write => Permission::write(right.prefix.clone()),
                    Access::ReadWrite => Permission::read_write(right.prefix.clone()),
                }
                .with_prefix();
                auth.role_grant_permission(role.clone(), permission)
                    .await
                    .map_err(StoreError::etcd(format!("grant role {role} {:?} on {}", right.access, right.prefix)))?;
            }
            ensure_user(&mut auth, &identity.user(), &role).await?;
        }
        auth.auth_enable().await.map_err(StoreError::etcd("enable auth"))?;
        Ok(())
    }
}

/// Whether etcd refused because the thing already exists.
fn already_exists(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("already exists"))
}

async fn ensure_role(auth: &mut etcd_client::AuthClient, role: &str) -> Result<(), StoreError> {
    match auth.role_add(role).await {
        Ok(_) => Ok(()),
        Err(error) if already_exists(&error) => Ok(()),
        Err(source) => Err(StoreError::Etcd { action: format!("add role {role}"), source }),
    }
}

async fn ensure_user(auth: &mut etcd_client::AuthClient, user: &str, role: &str) -> Result<(), StoreError> {
    match auth.user_add(user, "", Some(UserAddOptions::new().with_no_pwd())).await {
        Ok(_) => {}
        Err(error) if already_exists(&error) => {}
        Err(source) => return Err(StoreError::Etcd { action: format!("add user {user}"), source }),
    }
    // Granting a role the user already has is accepted by etcd.
    auth.user_grant_role(user, role).await.map_err(StoreError::etcd(format!("grant user {user} role {role}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("/pacer")
    }

    #[test]
    fn a_node_writes_only_its_own_prefixes() {
        let keys = keys();
        let n1 = Identity::Node("n1".to_string());
        for own in [
            keys.node_lease("n1"),
            keys.node_activity("n1"),
            keys.status("n1", "web"),
            keys.attribute("n1", "pingd"),
            keys.request("n1", "r1"),
            keys.pending_event("n1", "e1"),
            keys.fence_result("n1", "n2"),
        ] {
            assert!(may_write(&keys, &n1, &own), "n1 should write {own}");
        }
        for other in [
            keys.node_lease("n2"),
            keys.node_lease("n10"),
            keys.status("n2", "web"),
            keys.status("n10", "web"),
            keys.attribute("n2", "pingd"),
            keys.plan("n1"),
            keys.plan("n2"),
            keys.election(),
            keys.spec_version(),
            keys.history(7),
            keys.event(1),
            keys.pending_event("n2", "e1"),
            keys.archive_input(3),
            "/pacer/spec/nodes/n1".to_string(),
            keys.fence_result("n2", "n1"),
            keys.fence_request("n2"),
            keys.fence_request("n1"),
            keys.fence_confirmation("n2"),
        ] {
            assert!(!may_write(&keys, &n1, &other), "n1 should not write {other}");
        }
        assert!(may_read(&keys, &n1, &keys.plan("n1")));
        assert!(may_read(&keys, &n1, "/pacer/spec/resources/web"));
        assert!(!may_read(&keys, &n1, &keys.archive_input(3)));
    }

    #[test]
    fn a_node_name_that_prefixes_another_does_not_reach_it() {
        // `n1`'s prefixes end with a slash: `n10`'s keys are not `n1`'s.
        let keys = keys();
        for right in rights(&keys, &Identity::Node("n1".to_string())) {
            assert!(right.prefix.ends_with('/'), "{right:?}");
        }
    }

    #[test]
    fn the_scheduler_writes_the_control_plane_and_the_reader_nothing() {
        let keys = keys();
        for key in [keys.plan("n1"), keys.election(), keys.fence_request("n2"), keys.history(3), keys.event(1), keys.archive_input(1)] {
            assert!(may_write(&keys, &Identity::Scheduler, &key), "{key}");
            assert!(!may_write(&keys, &Identity::Reader, &key), "{key}");
            assert!(may_read(&keys, &Identity::Reader, &key), "{key}");
        }
        assert!(rights(&keys, &Identity::Reader).iter().all(|right| right.access == Access::Read));
        // Nobody but the administrator reaches another cluster's prefix.
        assert!(!may_write(&keys, &Identity::Scheduler, "/other/plans/n1"));
        assert!(!may_read(&keys, &Identity::Reader, "/other/plans/n1"));
    }

    #[test]
    fn roles_are_named_apart_from_etcds() {
        assert_eq!(Identity::Admin.role(), ROOT);
        assert_eq!(Identity::Node("n1".into()).role(), "pacer-n1");
        assert_eq!(Identity::Scheduler.user(), "scheduler");
    }
}
