//! `pacer history`: the leader's decisions (`history/<revision>`) and their stored
//! inputs (the archive, `state::history`): list them, show one, replay one — the
//! scheduler run again on the stored input, compared with the recorded decision —
//! and diff two (what changed in the input and in the decision) — and the fencing
//! history (`fencing`: every attempt the leader kept).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::records::{DecisionInput, HistoryRecord};
use crate::api::{Object, ObjectKey};
use crate::scheduler::snapshot::ResourceHistory;
use crate::scheduler::{Plan, Snapshot, schedule};
use crate::state::fence_history::{FenceAttemptView, history_view};
use crate::state::history::{decode_input, digest_of, history_record};
use crate::store::Store;

use super::OpsError;

/// One decision in the list.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(flatten)]
    pub record: HistoryRecord,
    /// Its input is stored (it can be replayed).
    pub input: bool,
}

/// The newest `limit` decisions, newest first.
pub async fn list(store: &Store, limit: usize) -> Result<Vec<Entry>, OpsError> {
    // etcd reads a limit of 0 as none at all.
    if limit == 0 {
        return Ok(Vec::new());
    }
    let records: Vec<HistoryRecord> = store.latest_history(limit).await?;
    let inputs: BTreeSet<i64> = store.input_revisions().await?.into_iter().collect();
    Ok(records.into_iter().map(|record| Entry { input: inputs.contains(&record.input_revision), record }).collect())
}

/// A decision's record and its stored input, read and checked.
pub struct Stored {
    pub record: HistoryRecord,
    pub input: DecisionInput,
    /// The snapshot, or why it cannot be had (a blob missing, changed or damaged).
    pub snapshot: Result<Snapshot, String>,
    /// The compressed bytes of the blobs it names.
    pub blob_bytes: usize,
}

/// Reads the decision at `revision` and its input.
pub async fn read(store: &Store, revision: i64) -> Result<Stored, OpsError> {
    let record = store.read_history(revision).await?.ok_or_else(|| OpsError::NotFound(format!("no decision at revision {revision} (see pacer history)")))?;
    let input = store.read_input(revision).await?.ok_or_else(|| {
        OpsError::NotFound(format!("the input of the decision at revision {revision} is not stored (recorded before inputs were kept, or trimmed)"))
    })?;
    let blobs = store.read_blobs(input.blobs()).await?;
    let blob_bytes = blobs.values().map(Vec::len).sum();
    // The input record against the digest the decision's record keeps of it (its
    // blobs are checked against their names when decoded).
    let input_changed =
        record.input_digest.as_ref().is_some_and(|digest| serde_json::to_vec(&input).map(|bytes| digest_of(&bytes)).ok().as_ref() != Some(digest));
    let snapshot = if input_changed {
        Err("the stored input record does not match the digest its decision recorded: it was changed".to_string())
    } else {
        decode_input(&input, &blobs).map_err(|error| error.to_string())
    };
    Ok(Stored { record, input, snapshot, blob_bytes })
}

/// `pacer history show REV`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shown {
    pub record: HistoryRecord,
    /// Objects, nodes and histories of the input; the problem when it cannot be read.
    pub input: InputSummary,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputSummary {
    pub now: i64,
    pub quorum: bool,
    /// Blobs it names and their stored (compressed) size.
    pub blobs: usize,
    pub stored_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<usize>,
    /// Node name to its liveness, as the decision saw it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histories: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub async fn show(store: &Store, revision: i64) -> Result<Shown, OpsError> {
    let record = store.read_history(revision).await?.ok_or_else(|| OpsError::NotFound(format!("no decision at revision {revision} (see pacer history)")))?;
    let Some(input) = store.read_input(revision).await? else {
        let problem = "not stored (recorded before inputs were kept, or trimmed)".to_string();
        let input = InputSummary {
            now: record.time,
            quorum: true,
            blobs: 0,
            stored_bytes: 0,
            objects: None,
            nodes: BTreeMap::new(),
            histories: None,
            problem: Some(problem),
        };
        return Ok(Shown { record, input });
    };
    let blobs = store.read_blobs(input.blobs()).await?;
    let stored_bytes = blobs.values().map(Vec::len).sum();
    let mut summary = InputSummary {
        now: input.now,
        quorum: input.quorum,
        blobs: input.blobs().map(|blob| &blob.0).collect::<BTreeSet<_>>().len(),
        stored_bytes,
        objects: None,
        nodes: BTreeMap::new(),
        histories: None,
        problem: None,
    };
    match decode_input(&input, &blobs) {
        Ok(snapshot) => {
            summary.objects = Some(snapshot.objects.len());
            summary.nodes = snapshot.observed.nodes.iter().map(|(name, node)| (name.clone(), format!("{:?}", node.liveness))).collect();
            summary.histories = Some(snapshot.observed.history.len());
        }
        Err(problem) => summary.problem = Some(problem.to_string()),
    }
    Ok(Shown { record, input: summary })
}

/// `pacer history replay REV`: the scheduler on the stored input, against the record.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    pub revision: i64,
    /// The replayed decision is the recorded one.
    pub matches: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_digest: Option<String>,
    /// What differs, in words (empty when it matches).
    pub differences: Vec<String>,
}

pub async fn replay(store: &Store, revision: i64) -> Result<Replay, OpsError> {
    let stored = read(store, revision).await?;
    Ok(replay_of(&stored))
}

/// Compares a new run of the scheduler on the stored input with the record. Pure.
pub fn replay_of(stored: &Stored) -> Replay {
    let record = &stored.record;
    let revision = record.input_revision;
    let snapshot = match &stored.snapshot {
        Ok(snapshot) => snapshot,
        Err(problem) => {
            return Replay { revision, matches: false, recorded_digest: record.digest.clone(), replayed_digest: None, differences: vec![problem.clone()] };
        }
    };
    let plan = schedule(snapshot);
    let replayed = history_record(&plan, record.input_revision, record.term, record.time);
    let mut differences = Vec::new();
    if record.digest.is_none() {
        differences.push("the record has no decision digest (written before inputs were kept)".to_string());
    } else if record.digest != replayed.digest {
        differences.push("the decision digest differs".to_string());
    }
    // Records written before `NOT_RUNNING_NAMED` name every resource that cannot run:
    // compared by total and against the whole list.
    let every_not_running = crate::state::history::not_running_lines(&plan);
    let (recorded_total, replayed_total) = (record.not_running.len() + record.not_running_more, every_not_running.len());
    if recorded_total != replayed_total {
        differences.push(format!("{recorded_total} resources recorded as unable to run, {replayed_total} decided now"));
    }
    // Every action of the plan, fence devices' included: records written before
    // `Plan::live_actions` left those out still list them.
    let every_action: Vec<String> = plan.actions.iter().map(|action| format!("{} {} {}", action.verb, action.resource, action.detail)).collect();
    for (label, recorded, now, any) in [
        ("action", &record.actions, &replayed.actions, &every_action),
        ("not running", &record.not_running, &replayed.not_running, &every_not_running),
        ("fencing", &record.fencing, &replayed.fencing, &replayed.fencing),
    ] {
        for line in recorded.iter().filter(|line| !any.contains(line)) {
            differences.push(format!("recorded {label} not decided again: {line}"));
        }
        for line in now.iter().filter(|line| !recorded.contains(line)) {
            differences.push(format!("{label} decided now but not recorded: {line}"));
        }
    }
    Replay { revision, matches: differences.is_empty(), recorded_digest: record.digest.clone(), replayed_digest: replayed.digest, differences }
}

/// `pacer history diff REV1 REV2`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryDiff {
    pub from: i64,
    pub to: i64,
    /// What changed in the input: objects, nodes, node attributes, histories, time.
    pub input: Vec<String>,
    /// What changed in the decision: where each instance goes, fencing.
    pub decision: Vec<String>,
}

pub async fn diff(store: &Store, from: i64, to: i64) -> Result<HistoryDiff, OpsError> {
    let first = read(store, from).await?;
    let second = read(store, to).await?;
    let (first, second) = match (first.snapshot, second.snapshot) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(problem), _) => return Err(OpsError::Refused(format!("the input of {from} cannot be read: {problem}"))),
        (_, Err(problem)) => return Err(OpsError::Refused(format!("the input of {to} cannot be read: {problem}"))),
    };
    Ok(HistoryDiff { from, to, input: input_changes(&first, &second), decision: decision_changes(&schedule(&first), &schedule(&second)) })
}

/// What changed between two inputs, one line per change. Pure.
pub fn input_changes(first: &Snapshot, second: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if first.now != second.now {
        out.push(format!("time: {} -> {} ({:+} s)", first.now, second.now, second.now - first.now));
    }
    if first.observed.quorum != second.observed.quorum {
        out.push(format!("quorum: {} -> {}", first.observed.quorum, second.observed.quorum));
    }
    let objects = |snapshot: &Snapshot| -> BTreeMap<ObjectKey, Object> { snapshot.objects.iter().map(|object| (object.key(), object.clone())).collect() };
    let (before, after) = (objects(first), objects(second));
    for (key, object) in &after {
        match before.get(key) {
            None => out.push(format!("{key}: created")),
            Some(old)
                if old.spec != object.spec || old.metadata.annotations != object.metadata.annotations || old.metadata.labels != object.metadata.labels =>
            {
                out.push(format!("{key}: changed (generation {} -> {})", old.metadata.generation.unwrap_or(0), object.metadata.generation.unwrap_or(0)))
            }
            Some(_) => {}
        }
    }
    out.extend(before.keys().filter(|key| !after.contains_key(*key)).map(|key| format!("{key}: deleted")));
    let names: BTreeSet<&String> = first.observed.nodes.keys().chain(second.observed.nodes.keys()).collect();
    for name in names {
        match (first.observed.nodes.get(name), second.observed.nodes.get(name)) {
            (None, Some(node)) => out.push(format!("node {name}: appeared ({:?})", node.liveness)),
            (Some(_), None) => out.push(format!("node {name}: gone")),
            (Some(old), Some(new)) => {
                if old.liveness != new.liveness {
                    out.push(format!("node {name}: {:?} -> {:?}", old.liveness, new.liveness));
                }
                if old.shutdown != new.shutdown {
                    out.push(format!("node {name}: shutdown {} -> {}", old.shutdown, new.shutdown));
                }
                let keys: BTreeSet<&String> = old.attributes.keys().chain(new.attributes.keys()).collect();
                for key in keys {
                    let (was, is) = (old.attributes.get(key), new.attributes.get(key));
                    if was != is {
                        let show = |value: Option<&String>| value.map_or("(unset)".to_string(), Clone::clone);
                        out.push(format!("node {name}: attribute {key}: {} -> {}", show(was), show(is)));
                    }
                }
            }
            (None, None) => {}
        }
    }
    let histories = |snapshot: &Snapshot| -> BTreeMap<(String, String), ResourceHistory> {
        snapshot.observed.history.iter().map(|history| ((history.resource.clone(), history.node.clone()), history.clone())).collect()
    };
    let (before, after) = (histories(first), histories(second));
    let last = |history: Option<&ResourceHistory>| {
        history.and_then(|history| history.operations.last()).map_or("nothing".to_string(), |op| format!("{} rc {} (call {})", op.operation, op.rc, op.call_id))
    };
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (was, is) = (before.get(key), after.get(key));
        if was != is {
            out.push(format!("history of {} on {}: {} -> {}", key.0, key.1, last(was), last(is)));
        }
    }
    out
}

/// What changed between two decisions: each instance's next placements (or reason),
/// and fencing. Pure.
pub fn decision_changes(first: &Plan, second: &Plan) -> Vec<String> {
    let describe = |plan: &Plan| -> BTreeMap<String, String> {
        plan.resources
            .iter()
            .map(|resource| {
                let text = if resource.next.is_empty() {
                    format!("Stopped{}", resource.reason.as_ref().map(|reason| format!(" ({reason})")).unwrap_or_default())
                } else {
                    resource.next.iter().map(|placement| format!("{} {}", placement.role.as_str(), placement.node)).collect::<Vec<_>>().join(", ")
                };
                (resource.id.clone(), text)
            })
            .collect()
    };
    let (before, after) = (describe(first), describe(second));
    let mut out = Vec::new();
    let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for id in ids {
        match (before.get(id), after.get(id)) {
            (Some(was), Some(is)) if was != is => out.push(format!("{id}: {was} -> {is}")),
            (None, Some(is)) => out.push(format!("{id}: (new) {is}")),
            (Some(was), None) => out.push(format!("{id}: {was} -> (gone)")),
            _ => {}
        }
    }
    let fencing = |plan: &Plan| -> BTreeSet<String> { plan.fencing.iter().map(|fencing| format!("{} {}", fencing.action, fencing.node)).collect() };
    let (was, is) = (fencing(first), fencing(second));
    out.extend(is.difference(&was).map(|fence| format!("fence {fence}: now asked")));
    out.extend(was.difference(&is).map(|fence| format!("fence {fence}: no longer asked")));
    out
}

/// Every fencing attempt kept (`fence-history/<target>/<id>`), newest first, of
/// `node` only when given, with the keys that did not decode (key, reason).
pub async fn fencing(store: &Store, node: Option<&str>) -> Result<(Vec<FenceAttemptView>, Vec<(String, String)>), OpsError> {
    let prefix = store.keys().fence_history_prefix();
    let (revision, entries) = store.list_prefix(&prefix, None).await?;
    // The cache decodes and checks each record against its key, as every reader does.
    let mut cache = crate::runtime::ClusterCache::new(store.keys().clone());
    cache.apply_event(&crate::store::watch::WatchEvent::Restarted { prefix, revision, entries });
    let skipped = cache.undecodable().iter().map(|(key, reason)| (key.to_string(), reason.to_string())).collect();
    Ok((history_view(cache.fence_history().values(), node), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::history::InputEncoder;

    fn snapshot(extra: &str) -> Snapshot {
        let text = format!(
            "apiVersion: pacer.io/v1alpha1\nkind: ClusterPolicy\nmetadata: {{name: cluster}}\nspec: {{stonithEnabled: false}}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: n1}}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: n2}}\n---\n\
             apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: web}}\nspec: {{agent: \"ocf:heartbeat:Dummy\"}}\n{extra}"
        );
        let loaded = crate::api::manifest::load(&[crate::api::manifest::Source { name: "t.yaml".into(), text }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let objects = loaded.manifests.into_iter().map(|manifest| manifest.object).collect();
        let mut observed = crate::scheduler::snapshot::Observed { quorum: true, ..Default::default() };
        for name in ["n1", "n2"] {
            let node = crate::scheduler::snapshot::ObservedNode {
                liveness: crate::scheduler::snapshot::NodeLiveness::Online,
                shutdown: false,
                attributes: Default::default(),
            };
            observed.nodes.insert(name.into(), node);
        }
        Snapshot { objects, observed, now: 100 }
    }

    fn stored(snapshot: &Snapshot, record: HistoryRecord) -> Stored {
        let mut encoder = InputEncoder::default();
        let input = encoder.encode(snapshot);
        let blobs = input.blobs().map(|blob| (blob.0.clone(), encoder.blob(blob).expect("blob").to_vec())).collect();
        let decoded = decode_input(&input, &blobs).map_err(|error| error.to_string());
        Stored { record, input, snapshot: decoded, blob_bytes: 0 }
    }

    #[test]
    fn a_replay_of_an_untouched_decision_matches_and_a_changed_record_does_not() {
        let snapshot = snapshot("");
        let record = history_record(&schedule(&snapshot), 9, 1, 100);
        let replay = replay_of(&stored(&snapshot, record.clone()));
        assert!(replay.matches, "{:?}", replay.differences);
        let mut tampered = record;
        tampered.actions = vec!["Start web n2".into()];
        tampered.digest = Some("0".repeat(32));
        let replay = replay_of(&stored(&snapshot, tampered));
        assert!(!replay.matches);
        assert!(replay.differences.iter().any(|line| line.contains("Start web n2")), "{:?}", replay.differences);
    }

    #[test]
    fn a_record_naming_every_resource_that_cannot_run_replays_as_one_that_counts_them() {
        let stopped: String = (0..crate::state::history::NOT_RUNNING_NAMED + 5)
            .map(|n| format!("---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {{name: s{n}}}\nspec: {{agent: \"ocf:heartbeat:Dummy\", meta: {{targetRole: Stopped}}}}\n"))
            .collect();
        let snapshot = snapshot(&stopped);
        let plan = schedule(&snapshot);
        let record = history_record(&plan, 9, 1, 100);
        assert_eq!(record.not_running_more, 5);
        assert!(replay_of(&stored(&snapshot, record.clone())).matches);
        // As written before records named at most NOT_RUNNING_NAMED: every one named.
        let every = HistoryRecord { not_running: crate::state::history::not_running_lines(&plan), not_running_more: 0, ..record.clone() };
        let replay = replay_of(&stored(&snapshot, every));
        assert!(replay.matches, "{:?}", replay.differences);
        // A record that counts one fewer does not match.
        let fewer = HistoryRecord { not_running_more: 4, ..record };
        let replay = replay_of(&stored(&snapshot, fewer));
        assert!(!replay.matches);
        assert!(replay.differences.iter().any(|line| line.contains("104 resources recorded as unable to run, 105 decided now")), "{:?}", replay.differences);
    }

    #[test]
    fn a_diff_names_the_changed_object_and_the_move() {
        let first = snapshot("");
        let second = snapshot("---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: web-n2}\nspec: {resource: web, node: n2, score: 100}\n");
        let input = input_changes(&first, &second);
        assert_eq!(input, vec!["Location/web-n2: created".to_string()]);
        assert_eq!(decision_changes(&schedule(&first), &schedule(&second)), vec!["web: Started n1 -> Started n2".to_string()]);
    }
}
