//! Dynamic shell completion: subcommands and flags from clap, resource and node names
//! from the live cluster (read with a short deadline, so a cluster out of reach only
//! means no names are offered).

use std::time::Duration;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::api::Kind;
use crate::store::Store;

/// The environment variable the shell scripts set when they ask `pacer` to complete.
pub(super) const VAR: &str = "COMPLETE";

/// How long completion waits for etcd.
const DEADLINE: Duration = Duration::from_millis(1500);

/// Names of stored objects of these kinds, read from the cluster `PACER_ETCD` and
/// `PACER_PREFIX` point at (the defaults otherwise); none when it cannot be read.
fn names(kinds: &'static [Kind]) -> Vec<CompletionCandidate> {
    let endpoint = std::env::var("PACER_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_string());
    let prefix = std::env::var("PACER_PREFIX").unwrap_or_else(|_| "/pacer".to_string());
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let listed = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let store = Store::connect(&[endpoint], &prefix).await.ok()?;
            store.list_objects().await.ok()
        })
        .await
        .ok()
        .flatten()
    });
    let Some(listing) = listed else { return Vec::new() };
    listing
        .objects
        .keys()
        .filter(|key| kinds.contains(&key.kind))
        .map(|key| CompletionCandidate::new(key.name.as_str()).help(Some(key.kind.as_str().into())))
        .collect()
}

/// Completes a resource name (Resource, Group or FenceDevice).
pub(super) fn resources() -> ArgValueCandidates {
    ArgValueCandidates::new(|| names(&[Kind::Resource, Kind::Group, Kind::FenceDevice]))
}

/// Completes a node name.
pub(super) fn nodes() -> ArgValueCandidates {
    ArgValueCandidates::new(|| names(&[Kind::Node]))
}
