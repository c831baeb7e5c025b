//! etcd: the key layout, typed reads of the desired objects, all-or-nothing applies
//! of any size, and a list+watch helper. The only module that talks to etcd.

pub mod apply;
pub mod archive;
pub mod election;
pub mod events;
mod failover;
pub mod keys;
pub mod lease;
pub mod node;
pub mod requests;
pub mod rights;
pub mod tls;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse, WatchClient};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::{Object, ObjectKey, ObjectSet};
pub use election::LeaderGuard;
pub use keys::Keys;

/// Keys per page of a listing. A page holds at most this many values of at most
/// `api::validate::MAX_OBJECT_BYTES` each (records are far smaller), which
/// `MAX_RESPONSE_BYTES` covers.
pub const PAGE_KEYS: i64 = 500;

/// The largest answer (a page, a watch message) the client accepts. The client's own
/// default, 4 MiB, is less than one page of large objects: a valid apply could store
/// what no listing could read back.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The largest spec an apply may leave behind: the sum of the encoded sizes of every
/// desired object after the change (`store::apply` refuses a change that would grow
/// it beyond this). Every component holds the whole spec in memory — the scheduler's
/// cache and the snapshot built from it, each agent's copy, every `pacer get` and
/// `pacer status` — so this cap is what makes "whatever apply accepts can be read back
/// and held" true. 64 MiB is about twenty times the spec of the 10,000-object
/// benchmark (`benches/apply.rs`, about 3 MiB) and decodes to a few hundred MiB at
/// most; it is 1/32 of etcd's default backend quota (2 GiB), which a full rewrite
/// (the staged intent, then the objects) fills by twice the spec until etcd compacts.
pub const MAX_SPEC_BYTES: usize = 64 * 1024 * 1024;

/// etcd's default limit on operations in one transaction (`--max-txn-ops`).
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// The request size Pacer stays under in one transaction; etcd's default
/// `--max-request-bytes` is 1.5 MiB.
pub const DEFAULT_MAX_TXN_BYTES: usize = 1024 * 1024;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No endpoint answered. Retryable once etcd is reachable.
    #[error("cannot reach etcd at {endpoints}: {}", brief(source))]
    Connect { endpoints: String, source: etcd_client::Error },
    /// A request failed (timeout, leader change, connection lost). Retryable.
    #[error("{action}: {}", brief(source))]
    Etcd { action: String, source: etcd_client::Error },
    /// A stored value does not decode: someone wrote under Pacer's prefix by hand, or a
    /// newer Pacer did. Not retryable; fix or delete the key.
    #[error("read {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The TLS files cannot be used (missing, unreadable, expired, a key that does
    /// not match). Not retryable: found before connecting.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Objects this change touches were changed by another writer between read and
    /// write. Not retried automatically: the other writer's change would be lost.
    #[error("conflict: {} changed by another writer since it was read; re-run to apply on top of it", objects.join(", "))]
    Conflict { objects: Vec<String> },
    /// Other writers kept changing the store faster than this change could land.
    #[error("apply: gave up after {attempts} attempts; the store changed under every one")]
    Contended { attempts: usize },
}

/// The root cause of a client error in a few words: the socket's error when there
/// is one (`connection refused`), else the innermost message. The client's own
/// rendering repeats the transport error at every level of nesting.
fn brief(error: &etcd_client::Error) -> String {
    // The client's error does not name its gRPC status as its source: start there.
    let start: &dyn std::error::Error = match error {
        etcd_client::Error::GRpcStatus(status) => status,
        other => other,
    };
    let mut innermost = start;
    let mut current = Some(start);
    while let Some(level) = current {
        if let Some(io) = level.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => io.to_string(),
            };
        }
        innermost = level;
        current = level.source();
    }
    match error {
        etcd_client::Error::GRpcStatus(status) if std::ptr::addr_eq(innermost, start) => status.message().to_string(),
        _ => innermost.to_string(),
    }
}

impl StoreError {
    /// Whether etcd could not be reached at all (no endpoint answered).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Connect { .. })
    }

    /// Whether etcd refused for lack of rights (auth on, the identity's role does not
    /// cover the key). Not retryable by the same identity.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            // etcd's `ErrPermissionDenied`, as its gRPC status says it.
            StoreError::Etcd { source: etcd_client::Error::GRpcStatus(status), .. } => status.message().contains("permission denied"),
            _ => false,
        }
    }

    /// The cause without the key, for a caller that shows the key beside it: a
    /// `Corrupt` value's reason, else the whole message.
    pub fn reason(&self) -> String {
        match self {
            StoreError::Corrupt { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    fn etcd(action: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> StoreError {
        let action = action.into();
        move |source| StoreError::Etcd { action, source }
    }
}

/// A stored object and the etcd revision it was last written at. Shared (`Arc`): a
/// watch cache hands its objects out without copying them, and the agents of one
/// process (hollow nodes) hold one decoded copy of each (`runtime::SharedDecodes`).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredObject {
    pub object: Arc<Object>,
    pub mod_revision: i64,
}

/// The desired objects at one etcd revision.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The etcd revision the listing was read at.
    pub revision: i64,
    pub objects: BTreeMap<ObjectKey, StoredObject>,
    /// The revision of the spec-version key: every spec write bumps it, so comparing
    /// it is how a write proves that nothing changed since this listing.
    pub spec_version: i64,
    /// The size of each object in `objects` as stored (its value's bytes).
    pub stored_bytes: BTreeMap<ObjectKey, usize>,
    /// Keys under `spec/` whose value does not decode (written by hand, or by another
    /// version): left out of `objects`, so that one bad key blinds nobody to the rest.
    pub undecodable: Vec<Undecodable>,
}

/// A stored key that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub key: String,
    pub reason: String,
}

/// The end of the key range of everything under `prefix` (etcd's prefix rule: the
/// prefix with its last byte below 0xff incremented).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

/// Decodes a stored object and checks that it sits under the key its kind and name
/// imply; `resourceVersion` is the key's mod revision.
pub fn decode_object(keys: &Keys, key: &str, value: &[u8], mod_revision: i64) -> Result<Object, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { key: key.to_string(), reason };
    let json: serde_json::Value = serde_json::from_slice(value).map_err(|error| corrupt(format!("not JSON: {error}")))?;
    let mut object = Object::from_value(json).map_err(|error| corrupt(error.to_string()))?;
    if keys.object(&object.key()) != key {
        return Err(corrupt(format!("holds {} but that belongs under {}", object.key(), keys.object(&object.key()))));
    }
    object.metadata.resource_version = Some(mod_revision.to_string());
    Ok(object)
}

impl Listing {
    /// The objects, owned (a listing's are not shared with anyone, so not copied).
    pub fn into_objects(self) -> impl Iterator<Item = Object> {
        self.objects.into_values().map(|stored| Arc::unwrap_or_clone(stored.object))
    }

    pub fn object_set(&self) -> ObjectSet {
        self.objects.iter().map(|(key, stored)| (key.clone(), Object::clone(&stored.object))).collect()
    }
}

/// What a `Store` (and its clones) measured of etcd: how many requests it sent, by
/// kind — what a scheduler turn or a command costs etcd —, how long each took, and how
/// the lease renewals went (`lease::keep_alive`). Watches are not counted, nor lease
/// renewals among the requests. Counters and histograms are atomics: recording costs
/// the request nothing. `/metrics` exports them (`register`).
#[derive(Debug)]
pub struct StoreMetrics {
    reads: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    /// `pacer_etcd_request_duration_seconds{kind="read"|"write"}`.
    request_duration: RequestDurations,
    pub(crate) lease: LeaseMetrics,
}

/// Request round trips by kind, each histogram with `etcd_buckets`.
type RequestDurations = Family<[(&'static str, &'static str); 1], Histogram, fn() -> Histogram>;

/// How the lease renewals of this process went (its agent's or its leader's lease).
#[derive(Debug)]
pub(crate) struct LeaseMetrics {
    /// Round trips of the renewals etcd confirmed.
    pub(crate) renewal_duration: Histogram,
    /// Renewals confirmed, but only after another attempt had been sent alongside
    /// (`lease::keep_alive`'s patience, an eighth of the TTL, ran out first).
    pub(crate) late: Counter,
    /// Renewals that failed, or got no answer while one could still help.
    pub(crate) missed: Counter,
}

/// Histogram buckets for etcd round trips, in seconds: half a millisecond on a quiet
/// loopback to the 2 s agent requests' timeout and beyond.
fn etcd_buckets() -> Histogram {
    Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
}

impl Default for StoreMetrics {
    fn default() -> StoreMetrics {
        StoreMetrics {
            reads: Default::default(),
            writes: Default::default(),
            request_duration: Family::new_with_constructor(etcd_buckets),
            lease: LeaseMetrics { renewal_duration: etcd_buckets(), late: Counter::default(), missed: Counter::default() },
        }
    }
}

/// A reading of the request counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub reads: u64,
    pub writes: u64,
}

impl Requests {
    /// What was sent between `earlier` and this reading.
    pub fn since(self, earlier: Requests) -> Requests {
        Requests { reads: self.reads.saturating_sub(earlier.reads), writes: self.writes.saturating_sub(earlier.writes) }
    }
}

impl StoreMetrics {
    /// Sends a read: counted, and timed until etcd answers (or it fails).
    pub(crate) async fn read<T>(&self, request: impl std::future::Future<Output = T>) -> T {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.timed("read", request).await
    }

    /// Sends a write (any transaction that may write, lease grants and revocations).
    pub(crate) async fn write<T>(&self, request: impl std::future::Future<Output = T>) -> T {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.timed("write", request).await
    }

    async fn timed<T>(&self, kind: &'static str, request: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let answer = request.await;
        self.request_duration.get_or_create(&[("kind", kind)]).observe(started.elapsed().as_secs_f64());
        answer
    }

    /// Adds what this store measures to `registry` (the metrics share the store's
    /// counters: registering is not copying).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "pacer_etcd_request_duration",
            "Round trips of the requests this process sent to etcd (watches and lease renewals aside), by kind",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        registry.register_with_unit(
            "pacer_lease_renewal_duration",
            "Round trips of the lease renewals etcd confirmed (the node agent's lease, or the scheduler leader's)",
            Unit::Seconds,
            self.lease.renewal_duration.clone(),
        );
        registry.register(
            "pacer_lease_renewals_late",
            "Lease renewals confirmed only after another attempt was sent alongside (no answer within an eighth of the TTL)",
            self.lease.late.clone(),
        );
        registry.register(
            "pacer_lease_renewals_missed",
            "Lease renewals that failed or got no answer; at half the TTL without one the holder stops (self-fencing, or a leader stepping down)",
            self.lease.missed.clone(),
        );
    }
}

/// A connection to etcd under one key prefix.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    max_txn_ops: usize,
    max_txn_bytes: usize,
    metrics: std::sync::Arc<StoreMetrics>,
    /// Where and as whom it connected, for a second connection of its own
    /// (`lease::keep_alive`).
    config: std::sync::Arc<tls::ConnectConfig>,
    /// The TLS material read at connect (so a second connection does not re-read).
    tls: Option<std::sync::Arc<tls::TlsMaterial>>,
}

impl Store {
    /// Connects in plaintext to the first reachable endpoint (`http://host:port`,
    /// comma-separated lists accepted).
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Store, StoreError> {
        Store::connect_with(&tls::ConnectConfig { endpoints: endpoints.to_vec(), prefix: prefix.to_string(), tls: None }).await
    }

    /// Connects as `config` says: its TLS files are read and checked first (bad ones
    /// are `StoreError::Tls`, before any connection is tried).
    pub async fn connect_with(config: &tls::ConnectConfig) -> Result<Store, StoreError> {
        let material = match &config.tls {
            Some(files) if !files.is_empty() => Some(std::sync::Arc::new(files.load(unix_now())?)),
            _ => None,
        };
        Store::connect_loaded(config, material).await
    }

    async fn connect_loaded(config: &tls::ConnectConfig, material: Option<std::sync::Arc<tls::TlsMaterial>>) -> Result<Store, StoreError> {
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .flat_map(|endpoint| endpoint.split(','))
            .map(|endpoint| endpoint.trim().to_string())
            .filter(|endpoint| !endpoint.is_empty())
            .collect();
        // HTTP/2 keep-alive pings while a stream is open: a member that hangs (a machine
        // lost, a partition that drops packets) breaks its connection within 15 s, so
        // watches and lease streams on it end and fail over rather than wait silently.
        // etcd refuses pings more often than every 5 s (`--grpc-keepalive-min-time`) or
        // without a stream (it answers GOAWAY), hence 10 s and not while idle.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(30))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(material) = &material {
            options = options.with_tls(material.options());
        }
        let client = Client::connect_with_balanced_channel(&endpoints, Some(options), failover::Failover)
            .await
            .map_err(|source| StoreError::Connect { endpoints: endpoints.join(","), source })?;
        let store = Store {
            client,
            keys: Keys::new(&config.prefix),
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            max_txn_bytes: DEFAULT_MAX_TXN_BYTES,
            metrics: Default::default(),
            config: std::sync::Arc::new(tls::ConnectConfig { endpoints: endpoints.clone(), prefix: config.prefix.clone(), tls: config.tls.clone() }),
            tls: material,
        };
        // Connecting is lazy; a first request tells whether anyone answers. A read every
        // identity may make (etcd 3.6 and 3.5.28 reserve the status call for root).
        // A member that fails it hands the next request to the next member
        // (`failover`): each is tried once.
        let mut tries = endpoints.len().max(1);
        loop {
            let probe = GetOptions::new().with_count_only();
            match store.kv().get(store.keys.spec_version(), Some(probe)).await {
                Ok(_) => return Ok(store),
                Err(_) if tries > 1 => tries -= 1,
                Err(source) => return Err(StoreError::Connect { endpoints: endpoints.join(","), source }),
            }
        }
    }

    /// A second connection like this one (same endpoints, prefix, identity and
    /// transaction limit).
    pub(crate) async fn reconnect(&self) -> Result<Store, StoreError> {
        Ok(Store::connect_loaded(&self.config, self.tls.clone()).await?.with_max_txn_ops(self.max_txn_ops))
    }

    /// The TLS material this store connects with, if any (the agents' peer endpoint
    /// uses the same CA and certificate).
    pub(crate) fn tls_material(&self) -> Option<std::sync::Arc<tls::TlsMaterial>> {
        self.tls.clone()
    }

    /// The etcd user this store acts as: its certificate's common name, if any.
    pub fn identity(&self) -> Option<&str> {
        self.tls.as_ref().and_then(|material| material.common_name.as_deref())
    }

    /// Use when etcd runs with a non-default `--max-txn-ops`.
    pub fn with_max_txn_ops(mut self, max_txn_ops: usize) -> Store {
        self.max_txn_ops = max_txn_ops.max(2);
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The requests sent so far by this store and its clones.
    pub fn requests(&self) -> Requests {
        Requests {
            reads: self.metrics.reads.load(std::sync::atomic::Ordering::Relaxed),
            writes: self.metrics.writes.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// What this store and its clones measured of etcd (for `/metrics`).
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// etcd's current revision: how many writes the cluster has made (benchmarks count
    /// an idle cluster's writes with it).
    pub async fn current_revision(&self) -> Result<i64, StoreError> {
        let mut client = self.client.clone();
        let response = self.metrics.read(client.status()).await.map_err(StoreError::etcd("read etcd's status"))?;
        Ok(response.header().map(|header| header.revision()).unwrap_or_default())
    }

    /// The key-value client for reads, sized for a whole page.
    pub(crate) fn kv(&self) -> KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The watch client, sized like reads: a watch message can carry many events.
    pub(crate) fn watch_client(&self) -> WatchClient {
        self.client.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Every key under `prefix` at one revision (`at`, or the current one), read in
    /// pages of `PAGE_KEYS` so that no answer is too large, whatever the total.
    pub async fn list_prefix(&self, prefix: &str, at: Option<i64>) -> Result<(i64, Vec<watch::Entry>), StoreError> {
        self.list_range(prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()), at.unwrap_or(0), Vec::new()).await
    }

    /// The keys in `[start, end)` at `revision` (0: the current one), appended to
    /// `entries`, page by page.
    async fn list_range(
        &self,
        mut start: Vec<u8>,
        end: Vec<u8>,
        mut revision: i64,
        mut entries: Vec<watch::Entry>,
    ) -> Result<(i64, Vec<watch::Entry>), StoreError> {
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE_KEYS);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let response = self
                .metrics
                .read(self.kv().get(start.clone(), Some(options)))
                .await
                .map_err(StoreError::etcd(format!("list {}", String::from_utf8_lossy(&start))))?;
            if revision <= 0 {
                revision = response.header().map(|header| header.revision()).unwrap_or_default();
            }
            entries.extend(response.kvs().iter().map(watch::Entry::from_kv));
            match response.kvs().last() {
                Some(last) if response.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => return Ok((revision, entries)),
            }
        }
    }

    /// Reads every desired object at one revision. An apply that committed but has not
    /// yet been rolled forward (its writer died half-way) is finished first, so the
    /// listing never shows half of an apply.
    pub async fn list_objects(&self) -> Result<Listing, StoreError> {
        // An identity that may not write the spec (a node, a reader) waits, up to a
        // minute, for one that may (the writer itself, the scheduler) to finish it.
        let mut denied_waits = 0;
        let mut attempts = 0;
        while attempts < 10 {
            let (listing, pending) = self.read_listing().await?;
            if pending.is_empty() {
                return Ok(listing);
            }
            attempts += 1;
            for intent in pending {
                match apply::roll_forward(self, &intent).await {
                    Ok(_) => {}
                    Err(error) if error.is_permission_denied() && denied_waits < 120 => {
                        denied_waits += 1;
                        attempts -= 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        Err(StoreError::Contended { attempts: 10 })
    }

    /// Reads every desired object at one revision without writing anything: `None`
    /// while an apply is committed but not rolled forward (the listing would show half
    /// of it). For readers that may not write the spec (node agents): the leader, or
    /// any command that lists, finishes the apply.
    pub async fn list_objects_read_only(&self) -> Result<Option<Listing>, StoreError> {
        let (listing, pending) = self.read_listing().await?;
        Ok(pending.is_empty().then_some(listing))
    }

    /// One consistent read of the spec objects, the spec version and committed intents:
    /// one transaction with the first page of objects, then the other pages at its
    /// revision. A value that does not decode is left out and named in `undecodable`.
    async fn read_listing(&self) -> Result<(Listing, Vec<String>), StoreError> {
        let spec_prefix = self.keys.spec_prefix();
        let spec_end = prefix_end(spec_prefix.as_bytes());
        let txn = Txn::new().and_then([
            TxnOp::get(spec_prefix.as_str(), Some(GetOptions::new().with_range(spec_end.clone()).with_limit(PAGE_KEYS))),
            TxnOp::get(self.keys.spec_version(), None),
            TxnOp::get(self.keys.intents_prefix(), Some(GetOptions::new().with_prefix().with_keys_only())),
        ]);
        let response = self.metrics.read(self.kv().txn(txn)).await.map_err(StoreError::etcd("list objects"))?;
        let revision = response.header().map(|header| header.revision()).unwrap_or_default();
        let mut responses = response.op_responses().into_iter();
        let (Some(TxnOpResponse::Get(specs)), Some(TxnOpResponse::Get(version)), Some(TxnOpResponse::Get(intents))) =
            (responses.next(), responses.next(), responses.next())
        else {
            return Err(StoreError::Corrupt { key: self.keys.spec_prefix(), reason: "etcd answered the listing with unexpected responses".into() });
        };
        let mut entries: Vec<watch::Entry> = specs.kvs().iter().map(watch::Entry::from_kv).collect();
        if specs.more()
            && let Some(last) = specs.kvs().last()
        {
            let mut start = last.key().to_vec();
            start.push(0);
            entries = self.list_range(start, spec_end, revision, entries).await?.1;
        }
        let mut objects = BTreeMap::new();
        let mut stored_bytes = BTreeMap::new();
        let mut undecodable = Vec::new();
        let version_key = self.keys.spec_version();
        // The version key lives under `spec/` too (read on its own above).
        for entry in entries.into_iter().filter(|entry| entry.key != version_key) {
            match decode_object(&self.keys, &entry.key, &entry.value, entry.mod_revision) {
                Ok(object) => {
                    stored_bytes.insert(object.key(), entry.value.len());
                    objects.insert(object.key(), StoredObject { object: Arc::new(object), mod_revision: entry.mod_revision });
                }
                // The caller says so, once (`Listing::undecodable`): an apply that
                // re-reads would otherwise log it at every attempt.
                Err(error) => {
                    tracing::debug!(%error, "skipping a stored object that does not decode");
                    undecodable.push(Undecodable { key: entry.key, reason: error.reason() });
                }
            }
        }
        let spec_version = version.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0);
        let pending = intents.kvs().iter().filter_map(|kv| self.keys.committed_intent_id(&String::from_utf8_lossy(kv.key()))).collect();
        Ok((Listing { revision, objects, spec_version, stored_bytes, undecodable }, pending))
    }

    /// Decodes a stored object and checks that it sits under the key its kind and name
    /// imply.
    pub fn decode_object(&self, key: &str, value: &[u8], mod_revision: i64) -> Result<Object, StoreError> {
        decode_object(&self.keys, key, value, mod_revision)
    }

    /// Encodes an object for storage: without `resourceVersion`, which is etcd's own
    /// mod revision and filled in on read.
    pub fn encode_object(object: &Object) -> String {
        let mut stored = object.clone();
        stored.metadata.resource_version = None;
        stored.to_value().to_string()
    }
}

/// Seconds since the epoch, for certificate validity.
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or_default()
}
