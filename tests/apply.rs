//! `apply`, `diff`, `get` and `delete` against a real etcd each test starts itself.

mod common;

use std::collections::BTreeSet;

use common::{TestEtcd, pacer, text};
use pacer::api::manifest::{Source, load};
use pacer::runtime::cache::ClusterCache;
use pacer::store::apply::{ApplyOutcome, ApplyRequest, Change, apply};
use pacer::store::watch::{PrefixWatcher, WatchEvent};
use pacer::store::{Store, StoreError};

fn node(name: &str, extra: &str) -> String {
    format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec: {{{extra}}}\n")
}

fn resource(name: &str, marker: &str) -> String {
    format!("apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata:\n  name: {name}\nspec:\n  agent: ocf:pacemaker:Dummy\n  params: {{fake: {marker}}}\n")
}

fn request(text: &str) -> ApplyRequest {
    let loaded = load(&[Source { name: "test.yaml".into(), text: text.into() }]);
    assert!(loaded.diagnostics.is_empty(), "test manifests are valid: {:?}", loaded.diagnostics);
    ApplyRequest { loaded, ..Default::default() }
}

async fn store(etcd: &TestEtcd, prefix: &str) -> Store {
    Store::connect(&[etcd.endpoint()], prefix).await.expect("connect")
}

fn applied(outcome: ApplyOutcome) -> Vec<(String, Change)> {
    match outcome {
        ApplyOutcome::Planned(report) => report.objects.iter().map(|p| (p.key.to_string(), p.change)).collect(),
        ApplyOutcome::Invalid(diagnostics) => panic!("refused: {diagnostics:?}"),
    }
}

#[tokio::test]
async fn apply_creates_then_leaves_unchanged_objects_alone() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    let manifest = format!("{}---\n{}", node("n1", ""), resource("web", "a"));
    let first = applied(apply(&store, &request(&manifest)).await.expect("apply"));
    assert_eq!(first, [("Node/n1".to_string(), Change::Created), ("Resource/web".to_string(), Change::Created)]);
    let revision_after_first = store.list_objects().await.expect("list").revision;
    let second = applied(apply(&store, &request(&manifest)).await.expect("apply"));
    assert!(second.iter().all(|(_, change)| *change == Change::Unchanged), "{second:?}");
    // Nothing was written: etcd's revision did not move.
    assert_eq!(store.list_objects().await.expect("list").revision, revision_after_first);
}

#[tokio::test]
async fn generation_bumps_on_spec_change_only() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    apply(&store, &request(&node("n1", ""))).await.expect("create");
    apply(&store, &request(&node("n1", "standby: true"))).await.expect("update spec");
    let labelled = "apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata:\n  name: n1\n  labels: {rack: r1}\nspec: {standby: true}\n";
    let outcome = applied(apply(&store, &request(labelled)).await.expect("update labels"));
    assert_eq!(outcome, [("Node/n1".to_string(), Change::Configured)]);
    let listing = store.list_objects().await.expect("list");
    let stored = &listing.objects.values().next().expect("one object").object;
    assert_eq!(stored.metadata.generation, Some(2), "created 1, spec change 2, label change stays 2");
    assert_eq!(stored.metadata.labels.get("rack").map(String::as_str), Some("r1"));
}

#[tokio::test]
async fn a_thousand_objects_land_in_one_apply_beyond_the_txn_limit() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/big").await;
    let manifest: Vec<String> = (0..1500).map(|index| resource(&format!("r{index:04}"), "x")).collect();
    let outcome = applied(apply(&store, &request(&manifest.join("---\n"))).await.expect("apply 1500"));
    assert_eq!(outcome.len(), 1500);
    assert!(outcome.iter().all(|(_, change)| *change == Change::Created));
    let listing = store.list_objects().await.expect("list");
    assert_eq!(listing.objects.len(), 1500);
    // The staged intent is gone once rolled forward.
    assert!(etcd.dump("/big/intents/").await.is_empty());
    // Update all of them, and delete them all, the same way.
    let changed: Vec<String> = (0..1500).map(|index| resource(&format!("r{index:04}"), "y")).collect();
    let outcome = applied(apply(&store, &request(&changed.join("---\n"))).await.expect("update 1500"));
    assert!(outcome.iter().all(|(_, change)| *change == Change::Configured));
    let keys = store.list_objects().await.expect("list").objects.keys().cloned().collect::<Vec<_>>();
    let delete = ApplyRequest { delete: keys, ..Default::default() };
    let outcome = applied(apply(&store, &delete).await.expect("delete 1500"));
    assert_eq!(outcome.iter().filter(|(_, change)| *change == Change::Deleted).count(), 1500);
    let left: Vec<String> = etcd.dump("/big/spec/").await.into_iter().map(|(key, _)| key).collect();
    assert_eq!(left, ["/big/spec/version"], "every object is gone; the version key stays");
}

/// A follower of the `spec/` watch alone (a node agent) can tell when its copy of the
/// spec is whole: every time `spec_settled` says so, the copy is the state after a
/// whole apply, small or large (rolled forward in batches), never part of one. The
/// watch replays the applies' events from before the first.
#[tokio::test]
async fn a_follower_of_the_spec_watch_knows_when_its_copy_is_whole() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/w").await;
    let before = store.list_objects().await.expect("list").revision;
    let small: Vec<String> = (0..2).map(|index| resource(&format!("r{index:04}"), "a")).collect();
    applied(apply(&store, &request(&small.join("---\n"))).await.expect("small apply"));
    // Beyond one transaction's 128 operations: staged, committed, rolled forward.
    let large: Vec<String> = (0..300).map(|index| resource(&format!("r{index:04}"), "b")).collect();
    applied(apply(&store, &request(&large.join("---\n"))).await.expect("large apply"));
    let keys = store.list_objects().await.expect("list").objects.keys().cloned().collect::<Vec<_>>();
    applied(apply(&store, &ApplyRequest { delete: keys, ..Default::default() }).await.expect("large delete"));
    let last = store.list_objects().await.expect("list").revision;

    let mut watcher = PrefixWatcher::from_revision(&store, store.keys().spec_prefix(), before);
    let mut cache = ClusterCache::new(store.keys().clone());
    // Each state the copy went through: (objects, their markers when settled, settled).
    let mut seen: Vec<(usize, BTreeSet<String>, Option<bool>)> = Vec::new();
    while cache.revision() < last {
        cache.apply_event(&next_event(&mut watcher).await);
        let settled = cache.spec_settled();
        let markers = if settled == Some(true) { markers(&cache) } else { BTreeSet::new() };
        seen.push((cache.objects().len(), markers, settled));
    }
    let whole = [(2, BTreeSet::from(["a".to_string()])), (300, BTreeSet::from(["b".to_string()])), (0, BTreeSet::new())];
    for (count, markers, _) in seen.iter().filter(|(_, _, settled)| *settled == Some(true)) {
        assert!(whole.contains(&(*count, markers.clone())), "settled on part of an apply: {count} objects, markers {markers:?}");
    }
    // Each whole state was reached and said so, and the copy did pass through halves
    // (the batches of the large applies), which were not called whole.
    for state in &whole {
        assert!(seen.iter().any(|(count, markers, settled)| (*count, markers.clone()) == *state && *settled == Some(true)), "never settled on {state:?}");
    }
    assert!(seen.iter().any(|(count, _, settled)| ![0, 2, 300].contains(count) && *settled == Some(false)), "the large applies arrive in batches");
    assert_eq!(seen.last().map(|(count, _, settled)| (*count, *settled)), Some((0, Some(true))));
}

/// A listing taken while a large apply is half rolled forward (its writer died after
/// the first batch) is not whole, though it is one revision; it is once a reader has
/// finished the apply and the watch has brought the rest.
#[tokio::test]
async fn a_listing_of_a_half_rolled_apply_is_not_whole() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/h").await;
    let mut client = etcd.client().await;
    let object = |name: &str| {
        serde_json::json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Node", "metadata": {"name": name, "generation": 1}, "spec": {}}).to_string()
    };
    let ops: Vec<serde_json::Value> =
        ["n1", "n2", "n3"].iter().map(|name| serde_json::json!({"key": format!("/h/spec/nodes/{name}"), "value": object(name)})).collect();
    client.put("/h/intents/0000000000001-dead/chunk/000000", serde_json::Value::from(ops).to_string(), None).await.expect("put chunk");
    client.put("/h/intents/0000000000001-dead/commit", r#"{"chunks":1,"operations":3}"#, None).await.expect("put commit");
    client.put("/h/spec/version", r#"{"change":"commit 0000000000001-dead","time":1}"#, None).await.expect("put version");
    // The first batch landed, the second did not.
    client.put("/h/spec/nodes/n1", object("n1"), None).await.expect("put n1");

    let mut watcher = PrefixWatcher::new(&store, store.keys().spec_prefix());
    let mut cache = ClusterCache::new(store.keys().clone());
    cache.apply_event(&next_event(&mut watcher).await);
    assert_eq!((cache.objects().len(), cache.spec_settled()), (1, Some(false)), "a listing of half an apply");
    // A reader that may write the spec finishes it.
    let finished = store.list_objects().await.expect("list").revision;
    while cache.revision() < finished {
        cache.apply_event(&next_event(&mut watcher).await);
    }
    assert_eq!((cache.objects().len(), cache.spec_settled()), (3, Some(true)));
}

async fn next_event(watcher: &mut PrefixWatcher) -> WatchEvent {
    tokio::time::timeout(std::time::Duration::from_secs(30), watcher.next()).await.expect("the watch answers").expect("an event")
}

/// The `fake` parameter of every resource held.
fn markers(cache: &ClusterCache) -> BTreeSet<String> {
    cache.objects().values().filter_map(|stored| stored.object.to_value().pointer("/spec/params/fake")?.as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn one_invalid_object_among_a_thousand_writes_nothing() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    let mut manifest: Vec<String> = (0..1200).map(|index| resource(&format!("r{index:04}"), "x")).collect();
    manifest.push("apiVersion: pacer.io/v1alpha1\nkind: Order\nmetadata: {name: o}\nspec: {first: r0001, then: missing}\n".into());
    let loaded = load(&[Source { name: "big.yaml".into(), text: manifest.join("---\n") }]);
    let outcome = apply(&store, &ApplyRequest { loaded, ..Default::default() }).await.expect("apply");
    let ApplyOutcome::Invalid(diagnostics) = outcome else { panic!("an order to a missing resource was accepted") };
    assert_eq!(diagnostics.len(), 1);
    assert!(diagnostics[0].to_string().starts_with("big.yaml:"), "{}", diagnostics[0]);
    assert!(diagnostics[0].to_string().ends_with("Order/o: spec.then: refers to missing, which is not a Resource, Group or FenceDevice"), "{}", diagnostics[0]);
    assert!(etcd.dump("/t/").await.is_empty(), "nothing may be written");
}

#[tokio::test]
async fn a_committed_apply_whose_writer_died_is_finished_by_the_next_reader() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    let mut client = etcd.client().await;
    // What a writer leaves behind when it dies right after its commit point: chunks and
    // a commit key, none of the objects written yet.
    let object = |name: &str| {
        serde_json::json!({"apiVersion": "pacer.io/v1alpha1", "kind": "Node", "metadata": {"name": name, "generation": 1}, "spec": {}}).to_string()
    };
    let chunk = serde_json::json!([
        {"key": "/t/spec/nodes/n1", "value": object("n1")},
        {"key": "/t/spec/nodes/n2", "value": object("n2")},
    ]);
    client.put("/t/intents/0000000000001-dead/chunk/000000", chunk.to_string(), None).await.expect("put chunk");
    client.put("/t/intents/0000000000001-dead/commit", r#"{"chunks":1,"operations":2}"#, None).await.expect("put commit");
    // And one that died before committing: never applied.
    let orphan = serde_json::json!([{"key": "/t/spec/nodes/ghost", "value": object("ghost")}]);
    client.put("/t/intents/0000000000002-orphan/chunk/000000", orphan.to_string(), None).await.expect("put orphan");
    let listing = store.list_objects().await.expect("list");
    let names: Vec<String> = listing.objects.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["Node/n1", "Node/n2"]);
    let left: Vec<String> = etcd.dump("/t/intents/").await.into_iter().map(|(key, _)| key).collect();
    assert_eq!(left, ["/t/intents/0000000000002-orphan/chunk/000000"], "the finished intent is removed; the orphan stays invisible");
}

#[tokio::test]
async fn concurrent_applies_of_different_objects_all_land() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Half of them large enough to take the staged path.
            let count = if writer % 2 == 0 { 1 } else { 200 };
            let manifest: Vec<String> = (0..count).map(|index| resource(&format!("w{writer}-{index}"), "x")).collect();
            apply(&store, &request(&manifest.join("---\n"))).await
        }));
    }
    for task in tasks {
        let outcome = task.await.expect("task").expect("every apply lands, retrying past the others");
        assert!(matches!(outcome, ApplyOutcome::Planned(_)));
    }
    let listing = store.list_objects().await.expect("list");
    assert_eq!(listing.objects.len(), 4 + 4 * 200, "no write was lost");
}

#[tokio::test]
async fn concurrent_applies_of_one_object_never_lose_a_write_silently() {
    let etcd = TestEtcd::start();
    let store = store(&etcd, "/t").await;
    apply(&store, &request(&resource("shared", "v0"))).await.expect("create");
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { (writer, apply(&store, &request(&resource("shared", &format!("v{}", writer + 1)))).await) }));
    }
    let mut landed: Vec<(i64, usize)> = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task") {
            (writer, Ok(ApplyOutcome::Planned(report))) => {
                if let Some(revision) = report.revision {
                    landed.push((revision, writer + 1));
                }
            }
            (_, Err(StoreError::Conflict { objects })) => {
                assert_eq!(objects, ["Resource/shared"]);
                conflicts += 1;
            }
            (_, other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert!(!landed.is_empty(), "at least one writer wins");
    assert_eq!(landed.len() + conflicts, 8, "every writer either landed or was told of the conflict");
    // The stored value is the one written last.
    landed.sort();
    let (_, last_writer) = landed[landed.len() - 1];
    let listing = store.list_objects().await.expect("list");
    let stored = listing.objects.values().next().expect("shared").object.to_value();
    assert_eq!(stored["spec"]["params"]["fake"], serde_json::json!(format!("v{last_writer}")));
}

#[tokio::test]
async fn dry_run_validates_against_the_store_and_writes_nothing() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-", "--dry-run"], Some(&resource("web", "a")));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "Resource/web created (dry run)\n");
    assert!(etcd.dump("/t/").await.is_empty());
    // Server-side: a reference to something only the store has is resolved.
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&node("n1", "")));
    let location = "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: l}\nspec: {resource: web, node: n1, score: 5}\n";
    let both = format!("{}---\n{location}", resource("web", "a"));
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-", "--dry-run"], Some(&both));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored_keys: Vec<String> = etcd.objects("/t").await.into_iter().map(|(key, _)| key).collect();
    assert_eq!(stored_keys, ["/t/spec/nodes/n1"]);
}

#[tokio::test]
async fn diff_exit_codes_say_whether_anything_would_change() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    let output = pacer(&endpoint, "/t", &["diff", "-f", "-"], Some(&resource("web", "a")));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("+++ Resource/web (applied)"));
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&resource("web", "a")));
    let output = pacer(&endpoint, "/t", &["diff", "-f", "-"], Some(&resource("web", "a")));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout), "");
    let output = pacer(&endpoint, "/t", &["diff", "-f", "-"], Some(&resource("web", "b")));
    assert_eq!(output.status.code(), Some(1));
    let diff = text(&output.stdout);
    assert!(diff.contains("-    fake: a\n") && diff.contains("+    fake: b\n"), "{diff}");
    let output = pacer(&endpoint, "/t", &["diff", "-f", "-"], Some("kind: Nope\n"));
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn prune_deletes_members_of_the_apply_set_that_are_gone() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    let both = format!("{}---\n{}", resource("a", "1"), resource("b", "1"));
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-", "--applyset", "demo"], Some(&both));
    assert!(output.status.success(), "{}", text(&output.stderr));
    // An object outside the set is never pruned.
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&resource("other", "1")));
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-", "--applyset", "demo", "--prune"], Some(&resource("a", "1")));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "Resource/a unchanged\nResource/b pruned\n");
    let keys: BTreeSet<String> = etcd.objects("/t").await.into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["/t/spec/resources/a", "/t/spec/resources/other"].iter().map(|key| key.to_string()).collect());
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-", "--prune"], Some(&resource("a", "1")));
    assert_eq!(output.status.code(), Some(2), "--prune without --applyset is a usage error");
}

#[tokio::test]
async fn delete_refuses_referenced_resources_unless_cascading() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    let manifest = format!(
        "{}---\n{}---\n{}---\napiVersion: pacer.io/v1alpha1\nkind: Group\nmetadata: {{name: g}}\nspec: {{members: [web, db]}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: l}}\nspec: {{resource: web, node: n1, score: 5}}\n",
        node("n1", ""),
        resource("web", "1"),
        resource("db", "1")
    );
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&manifest));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = pacer(&endpoint, "/t", &["delete", "resource", "web"], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("etcd: Location/l: spec.resource: still refers to Resource/web, which this change deletes"), "{stderr}");
    assert!(stderr.contains("etcd: Group/g: spec.members[0]: still refers to Resource/web"), "{stderr}");
    assert_eq!(etcd.objects("/t").await.len(), 5, "nothing deleted");
    let output = pacer(&endpoint, "/t", &["delete", "resource", "web", "--cascade"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "Resource/web deleted\nGroup/g configured\nLocation/l deleted\n");
    let output = pacer(&endpoint, "/t", &["get", "group", "g", "-o", "json"], None);
    let group: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(group["spec"]["members"], serde_json::json!(["db"]));
    let output = pacer(&endpoint, "/t", &["delete", "resource", "nope"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("Resource/nope: not found"));
}

#[tokio::test]
async fn get_prints_tables_yaml_and_json() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&format!("{}---\n{}", resource("web", "1"), node("n1", "standby: true"))));
    let output = pacer(&endpoint, "/t", &["get", "rsc"], None);
    let table = text(&output.stdout);
    // Live columns: nothing runs it (no agent in this cluster).
    assert!(
        table.starts_with(
            "NAME   AGENT                 CLONE   NODES   ROLE      FAILURES   AGE\nweb    ocf:pacemaker:Dummy   -       -       Stopped   0          "
        ),
        "{table}"
    );
    let output = pacer(&endpoint, "/t", &["get", "nodes", "-o", "wide"], None);
    assert!(text(&output.stdout).contains("GENERATION"));
    let output = pacer(&endpoint, "/t", &["get", "resource", "web", "-o", "yaml"], None);
    let yaml = text(&output.stdout);
    assert!(yaml.contains("kind: Resource\n") && yaml.contains("resourceVersion:"), "{yaml}");
    let output = pacer(&endpoint, "/t", &["get", "all", "-o", "json"], None);
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let output = pacer(&endpoint, "/t", &["get", "pods"], None);
    assert_eq!(output.status.code(), Some(2));
    let output = pacer(&endpoint, "/t", &["get", "rsc", "missing"], None);
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn resource_version_in_a_manifest_is_a_precondition() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&node("n1", "")));
    let output = pacer(&endpoint, "/t", &["get", "node", "n1", "-o", "yaml"], None);
    let current = text(&output.stdout);
    let edited = current.replace("spec: {}", "spec:\n  standby: true");
    assert_ne!(edited, current, "the edit applies");
    // Someone else changes the node first; applying the stale edit must fail.
    pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&node("n1", "maintenance: true")));
    let output = pacer(&endpoint, "/t", &["apply", "-f", "-"], Some(&edited));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    assert!(text(&output.stderr).contains("conflict: Node/n1 (resourceVersion"), "{}", text(&output.stderr));
}
