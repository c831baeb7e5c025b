//! `pacer pki` (the small certificate authority, `pki`) and `pacer auth bootstrap`
//! (etcd's roles and users from `store::rights`, then auth on).

use std::path::PathBuf;

use anyhow::Context;

use super::Global;
use crate::api::Kind;
use crate::pki::{IssueRequest, Role, Validity};
use crate::store::rights::Identity;

#[derive(clap::Subcommand, Debug)]
pub(super) enum PkiCommand {
    /// Create a CA in DIR (ca.key, mode 0600, and ca.crt); refuses to overwrite.
    Init { dir: PathBuf },
    /// Issue DIR/NAME.crt and DIR/NAME.key (0600), signed by DIR's CA, with common name
    /// NAME (the etcd user). With --host: a server certificate (etcd's) for those IP
    /// addresses and DNS names.
    Issue(IssueArgs),
}

#[derive(clap::Args, Debug)]
pub(super) struct IssueArgs {
    dir: PathBuf,
    name: String,
    /// What the identity may do in etcd; scheduler, admin and reader certificates
    /// are named like their role.
    #[arg(long, value_enum, default_value = "node")]
    role: Role,
    /// A server certificate for this IP address or DNS name (repeatable).
    #[arg(long = "host", value_name = "IP|DNS")]
    hosts: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
pub(super) enum AuthCommand {
    /// Create etcd's users and roles — one per node (the Node objects in the spec,
    /// and --node), scheduler, admin (etcd's root role) and reader — with the rights
    /// of each, then enable auth. Idempotent; once auth is on, it needs the admin
    /// identity.
    Bootstrap {
        /// A node to create an identity for, besides the Node objects (repeatable).
        #[arg(long = "node")]
        nodes: Vec<String>,
    },
}

pub(super) fn pki(command: &PkiCommand) -> anyhow::Result<u8> {
    match command {
        PkiCommand::Init { dir } => {
            crate::pki::init(dir)?;
            println!("created {} and {}", dir.join(crate::pki::CA_CERT).display(), dir.join(crate::pki::CA_KEY).display());
        }
        PkiCommand::Issue(args) => {
            let request = IssueRequest { name: &args.name, role: args.role, hosts: &args.hosts, validity: Validity::Years(crate::pki::CERT_YEARS) };
            let (cert, key) = crate::pki::issue(&args.dir, &request)?;
            println!("created {} and {}", cert.display(), key.display());
        }
    }
    Ok(0)
}

pub(super) async fn auth(global: &Global, command: &AuthCommand) -> anyhow::Result<u8> {
    let AuthCommand::Bootstrap { nodes } = command;
    for node in nodes {
        anyhow::ensure!(crate::api::Name::is_valid(node), "--node {node:?}: not a node name");
        anyhow::ensure!(!crate::store::rights::RESERVED_NAMES.contains(&node.as_str()), "--node {node}: the name is another identity's");
    }
    let store = global.connect().await?;
    let identities = identities(&store, nodes).await?;
    if let Some(warning) = store.lease_renewal_warning().await {
        eprintln!("warning: {warning}");
    }
    let changes = store.bootstrap_auth(&identities).await.context("bootstrap etcd auth")?;
    for change in &changes {
        println!("{change}");
    }
    if changes.is_empty() {
        println!("users and roles already as the table says; nothing changed");
    }
    let names: Vec<String> = identities.iter().map(Identity::user).collect();
    println!("auth enabled; users: {}", names.join(", "));
    Ok(0)
}

/// Every identity: the nodes of the spec and of `--node`, the scheduler, the reader
/// (the administrator is always added by `bootstrap_auth`).
pub(crate) async fn identities(store: &crate::store::Store, nodes: &[String]) -> anyhow::Result<Vec<Identity>> {
    let listing = store.list_objects().await.context("read the Node objects")?;
    let mut identities: Vec<Identity> = listing
        .objects
        .keys()
        .filter(|key| key.kind == Kind::Node)
        .map(|key| Identity::Node(key.name.as_str().to_string()))
        .chain(nodes.iter().map(|node| Identity::Node(node.clone())))
        .chain([Identity::Scheduler, Identity::Admin, Identity::Reader])
        .collect();
    identities.sort();
    identities.dedup();
    Ok(identities)
}
