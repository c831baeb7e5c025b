//! Dynamic shell completion: subcommands and flags from clap, resource and node names
//! from the live cluster (read with a short deadline, so a cluster out of reach only
//! means no names are offered).

use std::time::Duration;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::api::Kind;

/// The environment variable the shell scripts set when they ask `pacer` to complete.
pub(super) const VAR: &str = "COMPLETE";

/// How long completion waits for etcd.
const DEADLINE: Duration = Duration::from_millis(1500);

/// Names of stored objects of these kinds, read from the cluster the environment
/// (`PACER_ETCD`, `PACER_PREFIX`, `PACER_ETCD_CA`… and `PACER_CONFIG`) points at (the
/// defaults otherwise); none when it cannot be read.
fn names(kinds: &'static [Kind]) -> Vec<CompletionCandidate> {
    let variable = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let global = super::config::Global {
        etcd: variable("PACER_ETCD").and_then(|value| value.into_string().ok()),
        prefix: variable("PACER_PREFIX").and_then(|value| value.into_string().ok()),
        etcd_ca: variable("PACER_ETCD_CA").map(Into::into),
        etcd_cert: variable("PACER_ETCD_CERT").map(Into::into),
        etcd_key: variable("PACER_ETCD_KEY").map(Into::into),
        config: variable("PACER_CONFIG").map(Into::into),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let listed = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let store = global.connect().await.ok()?;
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
