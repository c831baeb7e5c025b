//! Imports every Pacemaker 2.1.5 scenario of the conformance corpus and checks that
//! the result is a valid Pacer object set, plus spot checks of a few scenarios.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pacer::api::records::ExecStatus;
use pacer::api::validate::{ObjectSet, check_objects};
use pacer::api::{Kind, Object, Score, Spec};
use pacer::cib::{Imported, import};
use pacer::scheduler::snapshot::NodeLiveness;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases")
}

fn case(name: &str) -> Imported {
    let path = corpus().join(format!("{name}.xml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    import(&text).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn object_set(objects: &[Object]) -> ObjectSet {
    objects.iter().map(|object| (object.key(), object.clone())).collect()
}

fn find<'a>(imported: &'a Imported, kind: Kind, name: &str) -> &'a Object {
    imported.objects.iter().find(|object| object.kind() == kind && object.name().as_str() == name).unwrap_or_else(|| panic!("no {kind}/{name}"))
}

#[test]
fn every_scenario_imports_into_a_valid_object_set() {
    let directory = corpus();
    let entries = std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("the conformance corpus must be at {}: {error}", directory.display()));
    let mut paths: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|ext| ext == "xml")).collect();
    paths.sort();
    assert!(paths.len() >= 300, "expected the whole corpus, found {} scenarios", paths.len());
    let mut failures = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for path in &paths {
        let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        let imported = match import(&text) {
            Ok(imported) => imported,
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        let set = object_set(&imported.objects);
        assert_eq!(set.len(), imported.objects.len(), "{name}: two objects share a kind and name");
        for problem in check_objects(&set) {
            failures.push(format!("{name}: {}: {}: {}", problem.key, problem.path, problem.message));
        }
        for unmapped in &imported.unmapped {
            let reason: String = unmapped.reason.split(['=', '"']).next().unwrap_or_default().to_string();
            *reasons.entry(format!("{} | {reason}", unmapped.element)).or_default() += 1;
        }
    }
    if std::env::var_os("CIB_UNMAPPED_REPORT").is_some() {
        for (reason, count) in &reasons {
            eprintln!("{count:5} {reason}");
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn clone_ids_are_folded_and_constraints_follow() {
    let imported = case("bug-1765");
    assert_eq!(imported.clone_ids.get("ms-drbd0").map(String::as_str), Some("drbd0"));
    let Spec::Resource(drbd0) = &find(&imported, Kind::Resource, "drbd0").spec else { panic!("drbd0 is a Resource") };
    let clone = drbd0.clone.as_ref().expect("drbd0 is cloned");
    assert!(clone.promotable.is_some(), "ms-drbd0 is promotable");
    let Spec::Colocation(colocation) = &find(&imported, Kind::Colocation, "drbd0_drbd1_promoted").spec else { panic!("a Colocation") };
    assert_eq!(colocation.resource.as_ref().map(|name| name.as_str()), Some("drbd0"));
    assert_eq!(colocation.with_resource.as_ref().map(|name| name.as_str()), Some("drbd1"));
    assert_eq!(colocation.score, Score::INFINITY);
    assert!(!imported.objects.iter().any(|object| object.name().as_str() == "ms-drbd0"), "no object for the clone id");
}

#[test]
fn transient_attributes_are_kept_verbatim() {
    let imported = case("bug-1765");
    assert!(imported.observed.quorum);
    let node = imported.observed.nodes.get("sles236").expect("sles236 was seen");
    assert_eq!(node.liveness, NodeLiveness::Online);
    assert_eq!(node.attributes.get("fail-count-drbd0:0").map(String::as_str), Some("2"));
    assert!(!node.shutdown, "shutdown=0 is no shutdown");
}

#[test]
fn liveness_follows_pacemaker() {
    // Lost from the membership while expected up, with fencing: unclean.
    let lost = case("rec-node-15");
    assert_eq!(lost.observed.nodes.get("sapcl03").map(|node| node.liveness), Some(NodeLiveness::Unclean));
    assert_eq!(lost.observed.nodes.get("sapcl01").map(|node| node.liveness), Some(NodeLiveness::Online));
    // Left cleanly (expected down): offline.
    let left = case("bug-5186-partial-migrate");
    assert_eq!(left.observed.nodes.get("bl460g1n7").map(|node| node.liveness), Some(NodeLiveness::Offline));
    // Controller up but out of the membership while expected: unclean.
    let pending = case("promoted-7");
    assert_eq!(pending.observed.nodes.get("c001n01").map(|node| node.liveness), Some(NodeLiveness::Unclean));
}

#[test]
fn histories_are_ordered_with_expected_codes() {
    let imported = case("1-a-then-bm-move-b");
    let history = imported.observed.history.iter().find(|history| history.resource == "B" && history.node == "18node2").expect("B's history on 18node2");
    assert_eq!(history.agent.as_deref(), Some("ocf:heartbeat:Dummy"));
    let summary: Vec<(&str, u64, i64, i32, i32)> =
        history.operations.iter().map(|op| (op.operation.as_str(), op.interval_ms, op.call_id, op.rc, op.expected_rc)).collect();
    assert_eq!(summary, [("start", 0, 13, 0, 0), ("monitor", 60_000, 16, 0, 0)]);
    assert!(history.operations.iter().all(|op| op.status == ExecStatus::Done));
    assert_eq!(imported.now, None);
    assert_eq!(case("anti-colocation-promoted").now, Some(1_461_920_819));
}

#[test]
fn a_missing_corpus_fails_loudly() {
    // The corpus test must not pass vacuously: the directory has to be there.
    assert!(corpus().is_dir(), "the conformance corpus is missing at {}", corpus().display());
}
