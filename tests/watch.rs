//! PrefixWatcher (through a raw in-memory copy, `Reflector`) against a real etcd: the initial listing, resume after
//! a reconnect, relist after compaction, and deletes made while the watch was down.
//!
//! Every test starts its own etcd (from PATH, on free loopback ports, in its own
//! TempDir) and stops it when the test ends. Every wait is bounded by a timeout.

use std::time::Duration;

use etcd_client::{Client, DeleteOptions, GetOptions, KeyValue};
use pacer::local::etcd::EtcdServer;
use pacer::store::Store;
use pacer::store::watch::{Entry, PrefixWatcher, WatchEvent};
use tempfile::TempDir;
use tokio::time::timeout;

/// The longest any single request or `next()` may take.
const STEP: Duration = Duration::from_secs(10);
/// The longest a whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(30);
/// How many errors `next()` may return while etcd is restarting.
const MAX_ERRORS: usize = 15;

/// A private etcd; `server` is declared first so it is dropped (stopped) before its
/// data directory is removed.
struct Etcd {
    server: EtcdServer,
    _dir: TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let dir = TempDir::new().expect("create temp dir");
        // The log goes next to the data dir (`<data>.log`), so keep both inside `dir`.
        let data = dir.path().join("etcd");
        let server = tokio::task::block_in_place(|| EtcdServer::start(&data, &[])).expect("start etcd");
        Etcd { server, _dir: dir }
    }

    fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    fn stop(&mut self) {
        tokio::task::block_in_place(|| self.server.stop());
    }

    fn kill(&mut self) {
        tokio::task::block_in_place(|| self.server.kill());
    }

    fn restart(&mut self) {
        tokio::task::block_in_place(|| self.server.restart()).expect("restart etcd");
    }
}

/// Every key and value as the watch delivered them: the least a follower can do, and
/// what etcd itself holds if the watcher lost nothing.
#[derive(Default)]
struct Reflector {
    entries: std::collections::BTreeMap<String, Entry>,
    revision: i64,
}

impl Reflector {
    fn apply_event(&mut self, event: &WatchEvent) {
        match event {
            WatchEvent::Restarted { revision, entries, .. } => {
                self.entries = entries.iter().map(|entry| (entry.key.clone(), entry.clone())).collect();
                self.revision = *revision;
            }
            WatchEvent::Put(entry) => {
                if self.entries.get(&entry.key).is_none_or(|known| known.mod_revision < entry.mod_revision) {
                    self.entries.insert(entry.key.clone(), entry.clone());
                }
                self.revision = self.revision.max(entry.mod_revision);
            }
            WatchEvent::Deleted { key, revision } => {
                if self.entries.get(key).is_some_and(|known| known.mod_revision < *revision) {
                    self.entries.remove(key);
                }
                self.revision = self.revision.max(*revision);
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn revision(&self) -> i64 {
        self.revision
    }
}

/// A store for the watcher (its own prefix does not matter: the watcher names one).
async fn store(endpoint: &str) -> Store {
    timeout(STEP, Store::connect(&[endpoint.to_string()], "/pacer")).await.expect("connect timed out").expect("connect to etcd")
}

async fn connect(endpoint: &str) -> Client {
    timeout(STEP, Client::connect([endpoint], None)).await.expect("connect timed out").expect("connect to etcd")
}

/// Puts `key`, returning the revision of the write.
async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = timeout(STEP, client.put(key, value, None)).await.expect("put timed out").expect("put");
    response.header().expect("put header").revision()
}

/// Deletes `key`, which must exist, returning the revision of the delete.
async fn delete(client: &mut Client, key: &str) -> i64 {
    let response = timeout(STEP, client.delete(key, None)).await.expect("delete timed out").expect("delete");
    assert_eq!(response.deleted(), 1, "delete {key}: expected the key to exist");
    response.header().expect("delete header").revision()
}

/// Deletes every key under `prefix`; exactly `count` must exist. Returns the revision.
async fn delete_prefix(client: &mut Client, prefix: &str, count: i64) -> i64 {
    let response = timeout(STEP, client.delete(prefix, Some(DeleteOptions::new().with_prefix()))).await.expect("delete timed out").expect("delete prefix");
    assert_eq!(response.deleted(), count, "delete --prefix {prefix}");
    response.header().expect("delete header").revision()
}

async fn compact(client: &mut Client, revision: i64) {
    timeout(STEP, client.compact(revision, None)).await.expect("compact timed out").expect("compact");
}

fn entry_of(kv: &KeyValue) -> Entry {
    Entry {
        key: String::from_utf8(kv.key().to_vec()).expect("utf-8 key"),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        lease: kv.lease(),
    }
}

/// A fresh `get --prefix`: the store's revision and every entry under `prefix`.
async fn etcd_entries(client: &mut Client, prefix: &str) -> (i64, Vec<Entry>) {
    let response = timeout(STEP, client.get(prefix, Some(GetOptions::new().with_prefix()))).await.expect("get timed out").expect("get --prefix");
    let revision = response.header().expect("get header").revision();
    (revision, response.kvs().iter().map(entry_of).collect())
}

fn reflector_entries(reflector: &Reflector) -> Vec<Entry> {
    reflector.entries().cloned().collect()
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.key.as_str()).collect()
}

/// Asserts that the reflector holds exactly what etcd holds under `prefix` (keys,
/// values, revisions, leases) and is current to etcd's revision.
async fn assert_reflector_matches_etcd(reflector: &Reflector, client: &mut Client, prefix: &str) {
    let (revision, entries) = etcd_entries(client, prefix).await;
    assert_eq!(reflector_entries(reflector), entries, "reflector differs from etcd under {prefix}");
    assert_eq!(reflector.len(), entries.len());
    assert_eq!(reflector.revision(), revision, "reflector revision vs etcd revision");
}

/// The next event; etcd is up, so no error is acceptable.
async fn next_event(watcher: &mut PrefixWatcher) -> WatchEvent {
    timeout(STEP, watcher.next()).await.expect("watcher.next() timed out").expect("watcher.next() failed with etcd up")
}

/// The next event, tolerating errors while etcd comes back; counts them in `errors`.
async fn next_event_tolerant(watcher: &mut PrefixWatcher, errors: &mut usize) -> WatchEvent {
    loop {
        match timeout(STEP, watcher.next()).await.expect("watcher.next() hung") {
            Ok(event) => return event,
            Err(error) => {
                *errors += 1;
                eprintln!("watch error #{errors} (tolerated): {error}");
                assert!(*errors <= MAX_ERRORS, "too many watch errors; last: {error}");
            }
        }
    }
}

/// Asserts that `watcher.next()` fails (etcd is down) within `STEP`.
async fn expect_error(watcher: &mut PrefixWatcher) {
    let result = timeout(STEP, watcher.next()).await.expect("watcher.next() hung while etcd was down");
    match result {
        Err(error) => eprintln!("watch error while etcd is down (expected): {error}"),
        Ok(event) => panic!("expected an error while etcd is down, got {event:?}"),
    }
}

/// What an event should be.
#[derive(Debug)]
enum Expect<'a> {
    /// key, value, mod revision, create revision
    Put(&'a str, &'a str, i64, i64),
    /// key, revision
    Deleted(&'a str, i64),
}

fn assert_event(event: &WatchEvent, expected: &Expect) {
    match (event, expected) {
        (WatchEvent::Put(entry), Expect::Put(key, value, mod_revision, create_revision)) => {
            let want =
                Entry { key: key.to_string(), value: value.as_bytes().to_vec(), mod_revision: *mod_revision, create_revision: *create_revision, lease: 0 };
            assert_eq!(entry, &want, "Put event");
        }
        (WatchEvent::Deleted { key, revision }, Expect::Deleted(want_key, want_revision)) => {
            assert_eq!((key.as_str(), *revision), (*want_key, *want_revision), "Deleted event");
        }
        _ => panic!("expected {expected:?}, got {event:?}"),
    }
}

/// Writes a sentinel key and asserts it is the very next event: nothing else (no
/// duplicate, no stray Restarted) was queued before it.
async fn assert_next_is_sentinel(watcher: &mut PrefixWatcher, reflector: &mut Reflector, client: &mut Client, prefix: &str) {
    let key = format!("{prefix}zz-sentinel");
    let revision = put(client, &key, "end").await;
    let event = next_event(watcher).await;
    assert_event(&event, &Expect::Put(&key, "end", revision, revision));
    reflector.apply_event(&event);
    assert_eq!(watcher.revision(), revision);
}

/// 1. The first event is a listing of exactly the prefix at the right revision; then
/// puts and deletes arrive in order, and a reflector fed with them matches etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_listing_then_changes_in_order() {
    timeout(TEST_LIMIT, async {
        let etcd = Etcd::start();
        let mut client = connect(&etcd.endpoint()).await;
        let prefix = "/t1/items/";

        // Outside the prefix, though sharing most of it.
        put(&mut client, "/t1/items", "outside").await;
        put(&mut client, "/t1/itemz/x", "outside").await;
        let r_a = put(&mut client, "/t1/items/a", "1").await;
        let r_b = put(&mut client, "/t1/items/b", "2").await;
        let r_c = put(&mut client, "/t1/items/c/nested", "3").await;
        // The listing's revision is a write under the prefix, so a watch started at it
        // (rather than after it) would show up as a duplicate Put.
        let r_a2 = put(&mut client, "/t1/items/a", "1b").await;
        let (revision, listed) = etcd_entries(&mut client, prefix).await;
        assert_eq!(revision, r_a2);
        assert_eq!(keys(&listed), ["/t1/items/a", "/t1/items/b", "/t1/items/c/nested"]);
        assert_eq!((listed[0].create_revision, listed[0].mod_revision), (r_a, r_a2));
        assert_eq!(listed[1].mod_revision, r_b);
        assert_eq!(listed[2].mod_revision, r_c);

        let mut watcher = PrefixWatcher::new(&store(&etcd.endpoint()).await, prefix);
        assert_eq!(watcher.revision(), 0);
        let first = next_event(&mut watcher).await;
        match &first {
            WatchEvent::Restarted { revision: listed_at, entries, .. } => {
                assert_eq!(*listed_at, revision, "listing revision");
                assert_eq!(entries, &listed, "listing entries");
            }
            other => panic!("first event must be Restarted, got {other:?}"),
        }
        assert_eq!(watcher.revision(), revision);
        let mut reflector = Reflector::default();
        reflector.apply_event(&first);
        assert_eq!(reflector.revision(), revision);
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;

        let r1 = put(&mut client, "/t1/items/d", "4").await;
        put(&mut client, "/t1/other", "outside").await;
        let r2 = put(&mut client, "/t1/items/b", "2b").await;
        let r3 = delete(&mut client, "/t1/items/a").await;
        put(&mut client, "/t1/items", "outside again").await;
        let r4 = put(&mut client, "/t1/items/a", "again").await;
        let r5 = delete(&mut client, "/t1/items/c/nested").await;
        let expected = [
            Expect::Put("/t1/items/d", "4", r1, r1),
            Expect::Put("/t1/items/b", "2b", r2, r_b),
            Expect::Deleted("/t1/items/a", r3),
            Expect::Put("/t1/items/a", "again", r4, r4),
            Expect::Deleted("/t1/items/c/nested", r5),
        ];
        for want in &expected {
            let event = next_event(&mut watcher).await;
            assert_event(&event, want);
            reflector.apply_event(&event);
        }
        assert_eq!(watcher.revision(), r5);
        assert_eq!(reflector.revision(), r5);
        // The outside writes advanced etcd past r5 but are not the reflector's concern;
        // the sentinel brings both to the same revision.
        assert_next_is_sentinel(&mut watcher, &mut reflector, &mut client, prefix).await;
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;
        assert_eq!(
            reflector_entries(&reflector).iter().map(|e| (e.key.as_str(), e.value.as_slice())).collect::<Vec<_>>(),
            [("/t1/items/a", &b"again"[..]), ("/t1/items/b", b"2b"), ("/t1/items/d", b"4"), ("/t1/items/zz-sentinel", b"end")]
        );
    })
    .await
    .expect("test timed out");
}

/// 2. After etcd goes down and comes back (no compaction), the watcher resumes where it
/// left off: exactly the new events, no duplicates, no Restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_reconnect_without_relisting() {
    timeout(TEST_LIMIT, async {
        let mut etcd = Etcd::start();
        let mut client = connect(&etcd.endpoint()).await;
        let prefix = "/t2/items/";
        let r_a = put(&mut client, "/t2/items/a", "1").await;
        put(&mut client, "/t2/items/b", "2").await;

        let mut watcher = PrefixWatcher::new(&store(&etcd.endpoint()).await, prefix);
        let mut reflector = Reflector::default();
        let first = next_event(&mut watcher).await;
        assert!(matches!(&first, WatchEvent::Restarted { entries, .. } if entries.len() == 2), "got {first:?}");
        reflector.apply_event(&first);
        let r_c = put(&mut client, "/t2/items/c", "3").await;
        let event = next_event(&mut watcher).await;
        assert_event(&event, &Expect::Put("/t2/items/c", "3", r_c, r_c));
        reflector.apply_event(&event);
        assert_eq!(watcher.revision(), r_c);

        etcd.stop();
        // The broken stream is reported, and so is every attempt while etcd is down.
        expect_error(&mut watcher).await;
        expect_error(&mut watcher).await;
        assert_eq!(watcher.revision(), r_c, "no progress while etcd is down");
        etcd.restart();

        let mut client = connect(&etcd.endpoint()).await;
        let r1 = put(&mut client, "/t2/items/d", "4").await;
        let r2 = put(&mut client, "/t2/items/a", "1b").await;
        put(&mut client, "/t2/outside", "x").await;
        let r3 = put(&mut client, "/t2/items/e", "5").await;
        assert_eq!(r1, r_c + 1, "the restarted etcd kept its revisions");
        let expected = [Expect::Put("/t2/items/d", "4", r1, r1), Expect::Put("/t2/items/a", "1b", r2, r_a), Expect::Put("/t2/items/e", "5", r3, r3)];
        let mut errors = 0;
        for want in &expected {
            let event = next_event_tolerant(&mut watcher, &mut errors).await;
            assert!(!matches!(event, WatchEvent::Restarted { .. }), "relisted although nothing was compacted: {event:?}");
            assert_event(&event, want);
            reflector.apply_event(&event);
        }
        eprintln!("errors after restart: {errors}");
        assert_eq!(watcher.revision(), r3);
        assert_next_is_sentinel(&mut watcher, &mut reflector, &mut client, prefix).await;
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;
        assert_eq!(reflector.len(), 6);
    })
    .await
    .expect("test timed out");
}

/// 3. `from_revision` replays the changes after a revision that still exists, and
/// relists (one Restarted with the full current contents) when it was compacted away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_revision_replays_or_relists_after_compaction() {
    timeout(TEST_LIMIT, async {
        let etcd = Etcd::start();
        let mut client = connect(&etcd.endpoint()).await;
        let prefix = "/t3/items/";
        let r_a = put(&mut client, "/t3/items/a", "1").await;
        let old_revision = put(&mut client, "/t3/items/b", "2").await;

        let r1 = put(&mut client, "/t3/items/c", "3").await;
        let r2 = put(&mut client, "/t3/items/a", "1b").await;
        let r3 = delete(&mut client, "/t3/items/b").await;
        put(&mut client, "/t3/outside", "x").await;
        let r4 = put(&mut client, "/t3/items/d", "4").await;
        let (current, contents) = etcd_entries(&mut client, prefix).await;
        assert_eq!(keys(&contents), ["/t3/items/a", "/t3/items/c", "/t3/items/d"]);

        // Not compacted: exactly the changes after old_revision, no listing.
        let mut replay = PrefixWatcher::from_revision(&store(&etcd.endpoint()).await, prefix, old_revision);
        assert_eq!(replay.revision(), old_revision);
        let expected = [
            Expect::Put("/t3/items/c", "3", r1, r1),
            Expect::Put("/t3/items/a", "1b", r2, r_a),
            Expect::Deleted("/t3/items/b", r3),
            Expect::Put("/t3/items/d", "4", r4, r4),
        ];
        for want in &expected {
            assert_event(&next_event(&mut replay).await, want);
        }
        assert_eq!(replay.revision(), r4);
        drop(replay);

        compact(&mut client, current).await;
        let mut watcher = PrefixWatcher::from_revision(&store(&etcd.endpoint()).await, prefix, old_revision);
        let first = next_event(&mut watcher).await;
        match &first {
            WatchEvent::Restarted { revision, entries, .. } => {
                assert_eq!(*revision, current, "relist revision");
                assert_eq!(entries, &contents, "relist entries");
            }
            other => panic!("expected Restarted after compaction, got {other:?}"),
        }
        assert_eq!(watcher.revision(), current);
        let mut reflector = Reflector::default();
        reflector.apply_event(&first);
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;

        // And it keeps watching from the relisted revision.
        let r5 = put(&mut client, "/t3/items/e", "5").await;
        assert_eq!(r5, current + 1);
        let event = next_event(&mut watcher).await;
        assert_event(&event, &Expect::Put("/t3/items/e", "5", r5, r5));
        reflector.apply_event(&event);
        assert_next_is_sentinel(&mut watcher, &mut reflector, &mut client, prefix).await;
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;
    })
    .await
    .expect("test timed out");
}

/// Starts etcd with keys a, b, c1, c2 under `prefix`, a watcher that has delivered the
/// listing and one Put (key e), and a reflector fed with them; then takes etcd down and back up while the
/// watcher is disconnected.
/// `crash` takes it down with SIGKILL rather than SIGTERM.
async fn watcher_across_restart(prefix: &str, crash: bool) -> (Etcd, PrefixWatcher, Reflector, Client) {
    let mut etcd = Etcd::start();
    let mut client = connect(&etcd.endpoint()).await;
    for (key, value) in [("a", "1"), ("b", "2"), ("c1", "3"), ("c2", "4")] {
        put(&mut client, &format!("{prefix}{key}"), value).await;
    }
    let mut watcher = PrefixWatcher::new(&store(&etcd.endpoint()).await, prefix);
    let mut reflector = Reflector::default();
    let first = next_event(&mut watcher).await;
    assert!(matches!(&first, WatchEvent::Restarted { entries, .. } if entries.len() == 4), "got {first:?}");
    reflector.apply_event(&first);
    // The watch itself is only created on the call after the listing; see it deliver
    // an event so that it is the live stream that breaks below.
    let key = format!("{prefix}e");
    let revision = put(&mut client, &key, "5").await;
    let event = next_event(&mut watcher).await;
    assert_event(&event, &Expect::Put(&key, "5", revision, revision));
    reflector.apply_event(&event);

    if crash {
        etcd.kill();
    } else {
        etcd.stop();
    }
    expect_error(&mut watcher).await;
    etcd.restart();
    let client = connect(&etcd.endpoint()).await;
    (etcd, watcher, reflector, client)
}

/// 4a. Keys deleted while the watcher was disconnected (etcd crashed and came back)
/// arrive as Deleted events after it resumes (nothing was compacted), and the reflector
/// ends equal to etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_while_disconnected_arrive_after_resume() {
    timeout(TEST_LIMIT, async {
        let prefix = "/t4a/items/";
        let (_etcd, mut watcher, mut reflector, mut client) = watcher_across_restart(prefix, true).await;
        let before = watcher.revision();

        // The watcher is not being polled and its stream is dead: it is disconnected.
        let r1 = delete(&mut client, "/t4a/items/a").await;
        let r2 = delete_prefix(&mut client, "/t4a/items/c", 2).await;
        let r3 = put(&mut client, "/t4a/items/f", "6").await;
        assert_eq!(r1, before + 1);

        let mut errors = 0;
        let mut events = Vec::new();
        while events.len() < 4 {
            let event = next_event_tolerant(&mut watcher, &mut errors).await;
            assert!(!matches!(event, WatchEvent::Restarted { .. }), "relisted although nothing was compacted: {event:?}");
            reflector.apply_event(&event);
            events.push(event);
        }
        eprintln!("errors after restart: {errors}");
        assert_event(&events[0], &Expect::Deleted("/t4a/items/a", r1));
        // Both keys of the one delete-range share its revision.
        let mut range: Vec<_> = events[1..3]
            .iter()
            .map(|event| match event {
                WatchEvent::Deleted { key, revision } => (key.as_str(), *revision),
                other => panic!("expected Deleted, got {other:?}"),
            })
            .collect();
        range.sort();
        assert_eq!(range, [("/t4a/items/c1", r2), ("/t4a/items/c2", r2)]);
        assert_event(&events[3], &Expect::Put("/t4a/items/f", "6", r3, r3));
        assert_eq!(watcher.revision(), r3);

        assert_next_is_sentinel(&mut watcher, &mut reflector, &mut client, prefix).await;
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;
        assert_eq!(keys(&reflector_entries(&reflector)), ["/t4a/items/b", "/t4a/items/e", "/t4a/items/f", "/t4a/items/zz-sentinel"]);
    })
    .await
    .expect("test timed out");
}

/// 4b. Keys deleted while the watcher was disconnected, and the history then compacted:
/// the watcher relists, and the listing no longer has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_while_disconnected_then_compacted_relist() {
    timeout(TEST_LIMIT, async {
        let prefix = "/t4b/items/";
        let (_etcd, mut watcher, mut reflector, mut client) = watcher_across_restart(prefix, false).await;

        delete(&mut client, "/t4b/items/a").await;
        delete_prefix(&mut client, "/t4b/items/c", 2).await;
        put(&mut client, "/t4b/items/b", "2b").await;
        let (current, contents) = etcd_entries(&mut client, prefix).await;
        compact(&mut client, current).await;
        assert_eq!(keys(&contents), ["/t4b/items/b", "/t4b/items/e"]);

        let mut errors = 0;
        let event = next_event_tolerant(&mut watcher, &mut errors).await;
        eprintln!("errors after restart: {errors}");
        match &event {
            WatchEvent::Restarted { revision, entries, .. } => {
                assert_eq!(*revision, current, "relist revision");
                assert_eq!(entries, &contents, "relist entries");
            }
            other => panic!("expected Restarted after compaction, got {other:?}"),
        }
        reflector.apply_event(&event);
        assert_eq!(watcher.revision(), current);
        assert!(reflector.get("/t4b/items/a").is_none() && reflector.get("/t4b/items/c1").is_none() && reflector.get("/t4b/items/c2").is_none());
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;

        assert_next_is_sentinel(&mut watcher, &mut reflector, &mut client, prefix).await;
        assert_reflector_matches_etcd(&reflector, &mut client, prefix).await;
    })
    .await
    .expect("test timed out");
}
