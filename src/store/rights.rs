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
use super::{Store, StoreError, prefix_end};

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

    /// The etcd role granted to the user for the cluster under `keys`: `root` for the
    /// administrator, else one of its own named after Pacer, the prefix and the
    /// identity (`pacer:/pacer:node:n1`, `pacer:/pacer:scheduler`), so that Pacer's
    /// roles never clash with others', nor two clusters' sharing one etcd (their users,
    /// named by certificates, may be shared: each holds a role per cluster). etcd
    /// refuses only empty role names; node names hold no `:`, and a node cannot be
    /// named `scheduler` or `reader`, so no two identities' roles are named alike.
    pub fn role(&self, keys: &Keys) -> String {
        match self {
            Identity::Admin => ROOT.to_string(),
            Identity::Node(node) => format!("{}node:{node}", role_prefix(keys)),
            Identity::Scheduler => format!("{}scheduler", role_prefix(keys)),
            Identity::Reader => format!("{}reader", role_prefix(keys)),
        }
    }

    /// The identity whose role (of the cluster under `keys`) is named `role`.
    pub fn of_role(keys: &Keys, role: &str) -> Option<Identity> {
        match role.strip_prefix(&role_prefix(keys))? {
            "scheduler" => Some(Identity::Scheduler),
            "reader" => Some(Identity::Reader),
            other => other.strip_prefix("node:").filter(|node| crate::api::Name::is_valid(node)).map(|node| Identity::Node(node.to_string())),
        }
    }
}

/// What every role of Pacer's for the cluster under `keys` is named with.
fn role_prefix(keys: &Keys) -> String {
    format!("{PACER_ROLES}{}:", keys.prefix())
}

/// What every role of Pacer's is named with (`pacer:<prefix>:…`).
const PACER_ROLES: &str = "pacer:";

/// How roles were named before they carried the prefix (`pacer-<user>`): revoked from
/// users by `bootstrap_auth`, which no longer grants them.
const LEGACY_ROLES: &str = "pacer-";

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

/// A permission as etcd holds it: type, key and range end (for a prefix, the prefix
/// with its last byte increased).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Held {
    access: Access,
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl Held {
    fn of(right: &Right) -> Held {
        Held { access: right.access, key: right.prefix.clone().into_bytes(), range_end: prefix_end(right.prefix.as_bytes()) }
    }

    fn describe(&self) -> String {
        let key = String::from_utf8_lossy(&self.key);
        let whole = if self.range_end == prefix_end(&self.key) { format!("{key}*") } else { format!("{key}..{}", String::from_utf8_lossy(&self.range_end)) };
        format!("{:?} on {whole}", self.access).to_lowercase()
    }
}

/// The permissions of `role` to revoke (held, not wanted) and to grant (wanted, not
/// held as they are), given what it holds and what the table gives it. Pure.
fn permission_changes(held: &[Held], wanted: &[Held]) -> (Vec<Held>, Vec<Held>) {
    let same_range = |a: &Held, b: &Held| a.key == b.key && a.range_end == b.range_end;
    let revoke = held.iter().filter(|held| !wanted.iter().any(|wanted| same_range(held, wanted))).cloned().collect();
    let grant = wanted.iter().filter(|wanted| !held.contains(wanted)).cloned().collect();
    (revoke, grant)
}

/// Whether `user` (a user of etcd, holding `role`) should not hold it for the cluster
/// under `keys`, whose identities are `identities`: a role of this cluster's Pacer or
/// Pacer's old unprefixed roles that the table does not give the user, or any role
/// but this table's and other clusters' Pacer roles on a user that is one of this
/// cluster's identities (a node user granted `root` by hand is a node no longer).
fn role_to_revoke(keys: &Keys, identities: &[Identity], user: &str, role: &str) -> bool {
    let given = identities.iter().any(|identity| identity.user() == user && identity.role(keys) == role);
    if given {
        return false;
    }
    let identity_of_ours = identities.iter().any(|identity| identity.user() == user);
    // Pacer's old role of this very user (`pacer-<user>`), not any role that happens
    // to start with `pacer-` (another application's).
    let legacy = identity_of_ours && role.strip_prefix(LEGACY_ROLES) == Some(user);
    let ours = role.starts_with(&role_prefix(keys)) || legacy;
    let another_clusters = role.starts_with(PACER_ROLES);
    ours || (identity_of_ours && !another_clusters)
}

impl Store {
    /// Makes etcd's users and roles for the cluster under this store's prefix what the
    /// table says, then turns auth on, and returns what it changed (one line each).
    /// For every identity of `identities` (and the administrator's `root` user and
    /// role, always): its role exists with exactly the table's permissions — one
    /// granted that is not in the table is revoked —, its user exists (without a
    /// password: etcd takes the certificate's CN) and holds its role. A role of this
    /// prefix for a node not listed keeps exactly that node's rights. Every user keeps,
    /// of this cluster's roles (and of Pacer's old `pacer-<user>` ones), only those the
    /// table gives it, and a user that is one of this cluster's identities keeps no
    /// other role but other clusters' Pacer roles (`pacer:<other prefix>:…`), so two
    /// clusters sharing one etcd keep theirs. Idempotent: run again, it changes
    /// nothing. Once auth is on it needs the administrator's identity (etcd's root
    /// role).
    pub async fn bootstrap_auth(&self, identities: &[Identity]) -> Result<Vec<String>, StoreError> {
        if let Some(Identity::Node(node)) =
            identities.iter().find(|identity| matches!(identity, Identity::Node(node) if RESERVED_NAMES.contains(&node.as_str())))
        {
            return Err(StoreError::Corrupt { key: format!("node {node}"), reason: format!("a node may not be named {node}: the name is another identity's") });
        }
        let mut auth = self.client().auth_client();
        let mut changes = Vec::new();
        let mut all: Vec<Identity> = identities.to_vec();
        all.push(Identity::Admin);
        all.sort();
        all.dedup();
        ensure_role(&mut auth, ROOT, &mut changes).await?;
        ensure_user(&mut auth, ROOT, ROOT, &mut changes).await?;
        // Roles of this cluster that exist for nodes not listed keep their node's
        // rights, nothing more.
        let roles = auth.role_list().await.map_err(StoreError::etcd("list roles"))?;
        let mut with_roles: Vec<Identity> = roles.roles().iter().filter_map(|role| Identity::of_role(&self.keys, role)).collect();
        with_roles.extend(all.iter().cloned());
        with_roles.sort();
        with_roles.dedup();
        for identity in &with_roles {
            if *identity == Identity::Admin {
                continue;
            }
            let role = identity.role(&self.keys);
            ensure_role(&mut auth, &role, &mut changes).await?;
            let held: Vec<Held> = auth
                .role_get(role.clone())
                .await
                .map_err(StoreError::etcd(format!("read role {role}")))?
                .permissions()
                .iter()
                .map(|permission| Held {
                    access: match etcd_client::PermissionType::try_from(permission.get_type()) {
                        Ok(etcd_client::PermissionType::Read) => Access::Read,
                        Ok(etcd_client::PermissionType::Write) => Access::Write,
                        _ => Access::ReadWrite,
                    },
                    key: permission.key().to_vec(),
                    range_end: permission.range_end().to_vec(),
                })
                .collect();
            let wanted: Vec<Held> = rights(&self.keys, identity).iter().map(Held::of).collect();
            let (revoke, grant) = permission_changes(&held, &wanted);
            for held in revoke {
                let options = etcd_client::RoleRevokePermissionOptions::new().with_range_end(held.range_end.clone());
                let options = if held.range_end.is_empty() { None } else { Some(options) };
                auth.role_revoke_permission(role.clone(), held.key.clone(), options)
                    .await
                    .map_err(StoreError::etcd(format!("revoke role {role} {}", held.describe())))?;
                changes.push(format!("revoked from role {role}: {}", held.describe()));
            }
            for held in grant {
                let permission = match held.access {
                    Access::Read => Permission::read(held.key.clone()),
                    Access::Write => Permission::write(held.key.clone()),
                    Access::ReadWrite => Permission::read_write(held.key.clone()),
                }
                .with_range_end(held.range_end.clone());
                auth.role_grant_permission(role.clone(), permission).await.map_err(StoreError::etcd(format!("grant role {role} {}", held.describe())))?;
                changes.push(format!("granted role {role}: {}", held.describe()));
            }
        }
        for identity in &all {
            ensure_user(&mut auth, &identity.user(), &identity.role(&self.keys), &mut changes).await?;
        }
        // Every user keeps only what the table gives it of this cluster's roles: the
        // identities listed now and those whose role exists already (a node whose
        // Node object is not there yet keeps its role).
        let users = auth.user_list().await.map_err(StoreError::etcd("list users"))?;
        for user in users.users().iter().filter(|user| user.as_str() != ROOT) {
            let held = auth.user_get(user.clone()).await.map_err(StoreError::etcd(format!("read user {user}")))?;
            for role in held.roles().iter().filter(|role| role_to_revoke(&self.keys, &with_roles, user, role)) {
                auth.user_revoke_role(user.clone(), role.clone()).await.map_err(StoreError::etcd(format!("revoke user {user} role {role}")))?;
                changes.push(format!("revoked from user {user}: role {role}"));
            }
        }
        auth.auth_enable().await.map_err(StoreError::etcd("enable auth"))?;
        Ok(changes)
    }
}

/// The first etcd release that no longer lets any user renew any lease (before it, a
/// node could keep another node's lease, or a dead leader's, alive).
pub const LEASE_RENEWAL_FIXED: &str = "3.5.28";

/// Whether etcd `version` (`3.4.30`) lets any user renew any lease: older than
/// `LEASE_RENEWAL_FIXED`. A version that does not parse is not judged. Pure.
pub fn renews_any_lease(version: &str) -> Option<bool> {
    let parse = |text: &str| -> Option<(u64, u64, u64)> {
        let mut parts = text.trim().trim_start_matches('v').split(['.', '-', '+']).map(str::parse::<u64>);
        Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    };
    Some(parse(version)? < parse(LEASE_RENEWAL_FIXED)?)
}

impl Store {
    /// A warning to show when etcd lets any user renew any lease (older than
    /// `LEASE_RENEWAL_FIXED`), read from etcd's status. An identity refused the status
    /// call is talking to a release that reserves it for root, which is fixed; any
    /// other failure is a note that the version is unknown.
    pub async fn lease_renewal_warning(&self) -> Option<String> {
        match self.client().maintenance_client().status().await {
            Ok(status) => match renews_any_lease(status.version()) {
                Some(true) => Some(format!(
                    "etcd {} lets any user renew any lease (a node could keep another node's lease, or a dead leader's, alive): run etcd {LEASE_RENEWAL_FIXED} or later",
                    status.version()
                )),
                Some(false) => None,
                None => Some(format!("cannot judge etcd's version {:?}: etcd before {LEASE_RENEWAL_FIXED} lets any user renew any lease", status.version())),
            },
            Err(etcd_client::Error::GRpcStatus(status)) if status.message().contains("permission denied") => None,
            Err(error) => Some(format!("cannot read etcd's version ({error}): etcd before {LEASE_RENEWAL_FIXED} lets any user renew any lease")),
        }
    }
}

/// Whether etcd refused because the thing already exists.
fn already_exists(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("already exists"))
}

async fn ensure_role(auth: &mut etcd_client::AuthClient, role: &str, changes: &mut Vec<String>) -> Result<(), StoreError> {
    match auth.role_add(role).await {
        Ok(_) => {
            changes.push(format!("added role {role}"));
            Ok(())
        }
        Err(error) if already_exists(&error) => Ok(()),
        Err(source) => Err(StoreError::Etcd { action: format!("add role {role}"), source }),
    }
}

async fn ensure_user(auth: &mut etcd_client::AuthClient, user: &str, role: &str, changes: &mut Vec<String>) -> Result<(), StoreError> {
    match auth.user_add(user, "", Some(UserAddOptions::new().with_no_pwd())).await {
        Ok(_) => changes.push(format!("added user {user}")),
        Err(error) if already_exists(&error) => {}
        Err(source) => return Err(StoreError::Etcd { action: format!("add user {user}"), source }),
    }
    let held = auth.user_get(user).await.map_err(StoreError::etcd(format!("read user {user}")))?;
    if !held.roles().iter().any(|held| held == role) {
        auth.user_grant_role(user, role).await.map_err(StoreError::etcd(format!("grant user {user} role {role}")))?;
        changes.push(format!("granted user {user}: role {role}"));
    }
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
    fn roles_are_named_apart_from_etcds_and_by_prefix() {
        let keys = keys();
        assert_eq!(Identity::Admin.role(&keys), ROOT);
        assert_eq!(Identity::Node("n1".into()).role(&keys), "pacer:/pacer:node:n1");
        assert_eq!(Identity::Scheduler.role(&keys), "pacer:/pacer:scheduler");
        assert_eq!(Identity::Node("n1".into()).role(&Keys::new("/other")), "pacer:/other:node:n1");
        assert_eq!(Identity::Scheduler.user(), "scheduler");
        for identity in [Identity::Node("n1".into()), Identity::Scheduler, Identity::Reader] {
            assert_eq!(Identity::of_role(&keys, &identity.role(&keys)), Some(identity.clone()));
            assert_eq!(Identity::of_role(&Keys::new("/other"), &identity.role(&keys)), None);
        }
        assert_eq!(Identity::of_role(&keys, "pacer:/pacer:node:-x"), None);
    }

    #[test]
    fn etcd_versions_before_the_fix_are_named() {
        assert_eq!(renews_any_lease("3.4.30"), Some(true));
        assert_eq!(renews_any_lease("3.5.27"), Some(true));
        assert_eq!(renews_any_lease("3.5.28"), Some(false));
        assert_eq!(renews_any_lease("3.6.0"), Some(false));
        assert_eq!(renews_any_lease("v3.5.9-rc.0"), Some(true));
        assert_eq!(renews_any_lease("garbage"), None);
    }

    #[test]
    fn bootstrap_revokes_what_the_table_does_not_give() {
        let keys = keys();
        let n1 = Identity::Node("n1".into());
        let wanted: Vec<Held> = rights(&keys, &n1).iter().map(Held::of).collect();
        // A stale grant on fencing/, a right whose type changed, the rest as wanted.
        let mut held = wanted.clone();
        held[0].access = Access::ReadWrite;
        held.push(Held::of(&Right { prefix: keys.fencing_prefix(), access: Access::Write }));
        let (revoke, grant) = permission_changes(&held, &wanted);
        assert_eq!(revoke, [Held::of(&Right { prefix: keys.fencing_prefix(), access: Access::Write })]);
        assert_eq!(grant, [wanted[0].clone()]);
        assert_eq!(permission_changes(&wanted, &wanted), (Vec::new(), Vec::new()));
        assert_eq!(prefix_end(b"/pacer/"), b"/pacer0");
        // Users: this cluster's roles only as the table gives them; a node's user keeps
        // other clusters' Pacer roles, not others.
        let identities = [n1.clone(), Identity::Scheduler, Identity::Admin];
        assert!(!role_to_revoke(&keys, &identities, "n1", "pacer:/pacer:node:n1"));
        assert!(role_to_revoke(&keys, &identities, "n1", "pacer:/pacer:scheduler"));
        assert!(role_to_revoke(&keys, &identities, "n1", ROOT));
        assert!(role_to_revoke(&keys, &identities, "n1", "pacer-n1"));
        assert!(!role_to_revoke(&keys, &identities, "n1", "pacer:/other:node:n1"));
        assert!(role_to_revoke(&keys, &identities, "mallory", "pacer:/pacer:scheduler"));
        assert!(!role_to_revoke(&keys, &identities, "mallory", "someone-elses"));
        // Another application's role that starts like Pacer's old ones stays.
        assert!(!role_to_revoke(&keys, &identities, "app", "pacer-app"));
        assert!(!role_to_revoke(&keys, &identities, "admin", ROOT));
    }
}
