//! `pacer move`, `ban` and `clear` on a real local cluster (`pacer up --nodes 3`, real
//! agents running ocf:pacemaker:Dummy): a move that succeeds leaves no constraint
//! behind; one that cannot succeed exits 1 and writes nothing; a ban with a 3 s
//! lifetime is gone at 3 s, not at the recheck interval (15 min); bad input exits 1
//! with one line and writes nothing. Also `store::apply`'s revision preconditions,
//! which the verbs and the leader's deletions rely on.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{LocalCluster, TestEtcd, text};
use pacer::api::manifest::{Source, load};
use pacer::api::{Kind, Name, ObjectKey};
use pacer::store::apply::{ApplyOutcome, ApplyRequest, apply};
use pacer::store::{Store, StoreError};
use serde_json::Value;

const PREFIX: &str = common::LOCAL_PREFIX;

/// `pacer up --nodes 3 --fencing off` (`common::LocalCluster`), with the helpers
/// these tests use.
struct Up(LocalCluster);

fn up() -> Up {
    Up(LocalCluster::start(3, &["--fencing", "off"]))
}

impl Up {
    fn pacer(&self, args: &[&str]) -> Output {
        common::pacer(&self.0.endpoint, PREFIX, args, None)
    }

    fn apply(&self, manifests: &str) {
        let output = common::pacer(&self.0.endpoint, PREFIX, &["apply", "-f", "-"], Some(manifests));
        assert!(output.status.success(), "{}", text(&output.stderr));
    }

    fn status(&self) -> Value {
        let output = self.pacer(&["status", "-o", "json"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Where `resource` runs (its first active entry), if anywhere.
    fn node_of(&self, resource: &str) -> Option<String> {
        node_of(&self.status(), resource)
    }

    fn wait_for(&self, what: &str, limit: Duration, condition: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let view = self.status();
            if condition(&view) {
                return view;
            }
            assert!(started.elapsed() < limit, "timed out waiting for {what}: {view}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every stored spec object with its mod revision, and the spec version's
    /// revision: what "nothing written" compares.
    fn spec(&self) -> (i64, Vec<(String, i64)>) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let store = Store::connect(std::slice::from_ref(&self.0.endpoint), PREFIX).await.expect("connect");
            let listing = store.list_objects().await.expect("list");
            (listing.spec_version, listing.objects.iter().map(|(key, stored)| (key.to_string(), stored.mod_revision)).collect())
        })
    }

    /// The names of the stored Locations.
    fn locations(&self) -> Vec<String> {
        self.spec().1.into_iter().filter_map(|(key, _)| key.strip_prefix("Location/").map(str::to_string)).collect()
    }
}

fn node_of(view: &Value, resource: &str) -> Option<String> {
    view["resources"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == resource && entry["role"] != "Stopped")
        .and_then(|entry| entry["node"].as_str().map(str::to_string))
}

const MANIFESTS: &str = "\
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: web}
spec: {agent: 'ocf:pacemaker:Dummy', meta: {resourceStickiness: 100}, operations: [{name: monitor, interval: 10s}]}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: everywhere}
spec: {agent: 'ocf:pacemaker:Dummy', clone: {}}
---
apiVersion: pacer.io/v1alpha1
kind: Resource
metadata: {name: db}
spec: {agent: 'ocf:pacemaker:Stateful', clone: {promotable: {}}}
";

/// A refused command: exit 1, one line on stderr containing `message`, nothing written.
fn assert_refused(up: &Up, args: &[&str], message: &str) {
    let before = up.spec();
    let output = up.pacer(args);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "pacer {args:?}: {stderr}{}", text(&output.stdout));
    assert_eq!(stderr.lines().count(), 1, "pacer {args:?} says it in one line: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(message), "pacer {args:?}: {stderr:?} lacks {message:?}");
    assert_eq!(up.spec(), before, "pacer {args:?} wrote to the spec");
}

#[test]
fn move_ban_and_clear_on_a_live_cluster() {
    let up = up();
    up.apply(MANIFESTS);
    let view = up.wait_for("web and db to run", Duration::from_secs(60), |view| {
        node_of(view, "web").is_some() && view["resources"].as_array().is_some_and(|all| all.iter().any(|entry| entry["role"] == "Promoted"))
    });
    let from = node_of(&view, "web").expect("web runs");
    let others: Vec<String> = ["n1", "n2", "n3"].iter().filter(|node| **node != from).map(|node| node.to_string()).collect();

    // A move that succeeds: web runs on the target when --wait returns, and the
    // cluster removes the constraint (stickiness keeps web there without it).
    let target = others[0].clone();
    let output = up.pacer(&["move", "web", &target, "--wait=30s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Location/cli-prefer-web written: web prefers") && stdout.contains(&format!("web runs on {target} (waited")), "{stdout}");
    assert_eq!(up.node_of("web").as_deref(), Some(target.as_str()));
    let started = Instant::now();
    while !up.locations().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the move's constraint stayed: {:?}", up.locations());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(up.node_of("web").as_deref(), Some(target.as_str()), "web stays where it was moved");

    // Moves that cannot succeed exit 1, say why, and write nothing: the other node is
    // banned by a Location a user wrote, then in standby.
    let blocked = others[1].clone();
    up.apply(&format!(
        "apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-never-{blocked}}}\nspec: {{resource: web, node: {blocked}, score: -INFINITY}}\n"
    ));
    assert_refused(
        &up,
        &["move", "web", &blocked],
        &format!(
            "cannot move web to {blocked}: it would run on {target} (web scores -INFINITY there; Location web-never-{blocked} scores -INFINITY on {blocked})"
        ),
    );
    up.apply(&format!("apiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {{name: web-never-{blocked}}}\nspec: {{resource: web, node: {blocked}, score: 0}}\n---\napiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {blocked}}}\nspec: {{standby: true}}\n"));
    assert_refused(&up, &["move", "web", &blocked], &format!("{blocked} is in standby"));
    up.apply(&format!("apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {{name: {blocked}}}\nspec: {{standby: false}}\n"));
    // A user's Location is never cleared, and never taken for a command's.
    assert_refused(&up, &["clear", "web"], "nothing to clear: no constraint made by pacer move or ban for web");

    // Bad input: one line, exit 1, nothing written.
    assert_refused(&up, &["move", "ghost", "n1"], "resource ghost not found");
    assert_refused(&up, &["ban", "ghost"], "resource ghost not found");
    assert_refused(&up, &["move", "web", "n9"], "node n9 not found");
    assert_refused(&up, &["ban", "web", "n9"], "node n9 not found");
    assert_refused(&up, &["clear", "web", "--node", "n9"], "node n9 not found");
    assert_refused(&up, &["ban", "web", "n1", "--lifetime", "ten"], "--lifetime: invalid duration \"ten\"");
    assert_refused(&up, &["move", "web", &blocked, "--lifetime", "3 days"], "--lifetime: invalid duration");
    assert_refused(&up, &["move", "everywhere", "n1"], "everywhere is a clone: its instances run on many nodes, so it cannot be moved");
    assert_refused(&up, &["move", "db", "n1"], "db is a promotable clone: move its promoted instance with --promoted");
    assert_refused(&up, &["move", "web", "n1", "--promoted"], "--promoted applies to a promotable clone, and web is not one");
    assert_refused(&up, &["move", "web", &target], &format!("web already runs on {target}: nothing to move"));
    assert_refused(&up, &["ban", "everywhere"], "everywhere runs on n1, n2, n3 now: name the node to ban it from");
    // A dry run checks and shows, and writes nothing.
    let before = up.spec();
    let output = up.pacer(&["move", "web", &blocked, "--dry-run", "-o", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let change: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!((change["dryRun"].as_bool(), change["written"][0]["name"].as_str(), change["revision"].is_null()), (Some(true), Some("cli-prefer-web"), true));
    assert_eq!(up.spec(), before, "a dry run wrote to the spec");

    // A ban with a 3 s lifetime: there before 3 s, gone soon after — the leader wakes
    // at the expiry, not at the recheck interval (15 min).
    let banned = others[1].clone();
    let asked = Instant::now();
    let output = up.pacer(&["ban", "web", &banned, "--lifetime", "3s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let name = format!("cli-ban-web-on-{banned}");
    let view = up.status();
    let shown = view["constraints"].as_array().and_then(|all| all.iter().find(|entry| entry["name"] == name.as_str())).cloned().unwrap_or_default();
    assert_eq!((shown["owner"].as_str(), shown["score"].as_str(), shown["state"].as_str()), (Some("ban"), Some("-INFINITY"), Some("in_force")), "{view}");
    assert!(shown["expires"].is_string() && shown["created_by"].is_string(), "{shown}");
    let table = text(&up.pacer(&["status"]).stdout);
    assert!(table.contains("Constraints made by commands") && table.contains(&name), "{table}");
    let gone = loop {
        let present = up.locations().contains(&name);
        let elapsed = asked.elapsed();
        if elapsed < Duration::from_millis(2900) {
            assert!(present, "the ban went before its lifetime, at {elapsed:?}");
        }
        if !present {
            break elapsed;
        }
        assert!(elapsed < Duration::from_secs(5), "the ban outlived its 3 s lifetime by 2 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("ban with a 3 s lifetime gone after {gone:?}");

    // A ban from every node is allowed, with a notice; clear says what it removed.
    for node in ["n1", "n2", "n3"] {
        let output = up.pacer(&["ban", "web", node]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert_eq!(stderr.contains("notice: web can run nowhere after this ban"), node == "n3", "{node}: {stderr}");
    }
    up.wait_for("web to stop", Duration::from_secs(30), |view| node_of(view, "web").is_none());
    assert_refused(&up, &["clear", "web", "--expired"], "nothing to clear: no expired constraint made by pacer move or ban for web");
    let output = up.pacer(&["clear", "web", "--node", "n1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).lines().next(), Some("Location/cli-ban-web-on-n1 deleted: made by pacer ban for web on n1"));
    let output = up.pacer(&["clear", "web", "--wait=30s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Location/cli-ban-web-on-n2 deleted") && stdout.contains("Location/cli-ban-web-on-n3 deleted"), "{stdout}");
    assert_eq!(up.locations(), [format!("web-never-{blocked}")]);
    assert!(up.node_of("web").is_some(), "web runs again once cleared");

    // move --keep stays after the move; the promoted instance moves with --promoted.
    let keep_target = ["n1", "n2", "n3"].into_iter().find(|node| up.node_of("web").as_deref() != Some(*node)).expect("another node");
    let output = up.pacer(&["move", "web", keep_target, "--keep", "--wait=30s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::thread::sleep(Duration::from_secs(1));
    assert!(up.locations().contains(&"cli-prefer-web".to_string()), "--keep kept it: {:?}", up.locations());
    let promoted_on = |view: &Value| {
        view["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["role"] == "Promoted")
            .and_then(|entry| entry["node"].as_str().map(str::to_string))
    };
    let promoted = promoted_on(&up.status()).expect("db is promoted somewhere");
    let output = up.pacer(&["move", "db", "--promoted", "--wait=30s"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_ne!(promoted_on(&up.status()), Some(promoted.clone()), "the promoted instance left {promoted}");
}

/// The preconditions the verbs and the leader write with: an object expected at a
/// revision is only changed (or deleted) at that revision; expected absent (0), only
/// created if still absent.
#[tokio::test]
async fn apply_with_expected_revisions_touches_only_what_was_read() {
    let etcd = TestEtcd::start();
    let store = Store::connect(&[etcd.endpoint()], "/t").await.expect("connect");
    let manifests = "apiVersion: pacer.io/v1alpha1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: web}\nspec: {agent: 'ocf:pacemaker:Dummy'}\n---\napiVersion: pacer.io/v1alpha1\nkind: Location\nmetadata: {name: l}\nspec: {resource: web, node: n1, score: 10}\n";
    let loaded = load(&[Source { name: "test.yaml".into(), text: manifests.into() }]);
    let outcome = apply(&store, &ApplyRequest { loaded, ..ApplyRequest::default() }).await.expect("apply");
    assert!(matches!(outcome, ApplyOutcome::Planned(_)));
    let key = ObjectKey { kind: Kind::Location, name: Name("l".into()) };
    let stored = store.list_objects().await.expect("list").objects[&key].mod_revision;
    let delete = |revision: i64| ApplyRequest { delete: vec![key.clone()], expect_revisions: [(key.clone(), revision)].into(), ..ApplyRequest::default() };
    match apply(&store, &delete(stored - 1)).await {
        Err(StoreError::Conflict { objects }) => assert_eq!(objects, [format!("Location/l (revision {} read, {stored} stored)", stored - 1)]),
        other => panic!("a deletion at a revision no longer stored went ahead: {other:?}"),
    }
    assert!(store.list_objects().await.expect("list").objects.contains_key(&key));
    assert!(matches!(apply(&store, &delete(stored)).await, Ok(ApplyOutcome::Planned(_))));
    assert!(!store.list_objects().await.expect("list").objects.contains_key(&key));
    // Deleted by someone else first (two leaders racing): a conflict, not a second delete.
    assert!(matches!(apply(&store, &delete(stored)).await, Err(StoreError::Conflict { .. })));
}
