//! etcd: the key layout, typed reads of the desired objects, all-or-nothing applies
//! of any size, and a list+watch helper. The only module that talks to etcd.

pub mod apply;
pub mod keys;
pub mod lease;
pub mod node;
pub mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse};

use crate::api::{Object, ObjectKey, ObjectSet};
pub use keys::Keys;

/// etcd's default limit on operations in one transaction (`--max-txn-ops`).
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// The request size Pacer stays under in one transaction; etcd's default
/// `--max-request-bytes` is 1.5 MiB.
pub const DEFAULT_MAX_TXN_BYTES: usize = 1024 * 1024;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No endpoint answered. Retryable once etcd is reachable.
    #[error("connect to etcd at {endpoints}: {source}")]
    Connect { endpoints: String, source: etcd_client::Error },
    /// A request failed (timeout, leader change, connection lost). Retryable.
    #[error("{action}: {source}")]
    Etcd { action: String, source: etcd_client::Error },
    /// A stored value does not decode: someone wrote under Pacer's prefix by hand, or a
    /// newer Pacer did. Not retryable; fix or delete the key.
    #[error("read {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// Objects this change touches were changed by another writer between read and
    /// write. Not retried automatically: the other writer's change would be lost.
    #[error("conflict: {} changed by another writer since it was read; re-run to apply on top of it", objects.join(", "))]
    Conflict { objects: Vec<String> },
    /// Other writers kept changing the store faster than this change could land.
    #[error("apply: gave up after {attempts} attempts; the store changed under every one")]
    Contended { attempts: usize },
}

impl StoreError {
    fn etcd(action: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> StoreError {
        let action = action.into();
        move |source| StoreError::Etcd { action, source }
    }
}

/// A stored object and the etcd revision it was last written at.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredObject {
    pub object: Object,
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
}

impl Listing {
    pub fn object_set(&self) -> ObjectSet {
        self.objects.iter().map(|(key, stored)| (key.clone(), stored.object.clone())).collect()
    }
}

/// A connection to etcd under one key prefix.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    max_txn_ops: usize,
    max_txn_bytes: usize,
}

impl Store {
    /// Connects to the first reachable endpoint (`http://host:port`, comma-separated
    /// lists accepted).
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Store, StoreError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .flat_map(|endpoint| endpoint.split(','))
            .map(|endpoint| endpoint.trim().to_string())
            .filter(|endpoint| !endpoint.is_empty())
            .collect();
        let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(3)).with_timeout(Duration::from_secs(30));
        let client = Client::connect(&endpoints, Some(options)).await.map_err(|source| StoreError::Connect { endpoints: endpoints.join(","), source })?;
        let mut store = Store { client, keys: Keys::new(prefix), max_txn_ops: DEFAULT_MAX_TXN_OPS, max_txn_bytes: DEFAULT_MAX_TXN_BYTES };
        // Connecting is lazy; a first request tells whether anyone answers.
        store.client.status().await.map_err(|source| StoreError::Connect { endpoints: endpoints.join(","), source })?;
        Ok(store)
    }

    /// Use when etcd runs with a non-default `--max-txn-ops`.
    pub fn with_max_txn_ops(mut self, max_txn_ops: usize) -> Store {
        self.max_txn_ops = max_txn_ops.max(2);
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Reads every desired object at one revision. An apply that committed but has not
    /// yet been rolled forward (its writer died half-way) is finished first, so the
    /// listing never shows half of an apply.
    pub async fn list_objects(&self) -> Result<Listing, StoreError> {
        for _ in 0..10 {
            let (listing, pending) = self.read_listing().await?;
            if pending.is_empty() {
                return Ok(listing);
            }
            for intent in pending {
                apply::roll_forward(self, &intent).await?;
            }
        }
        Err(StoreError::Contended { attempts: 10 })
    }

    /// One consistent read of the spec objects, the spec version and committed intents.
    async fn read_listing(&self) -> Result<(Listing, Vec<String>), StoreError> {
        let mut client = self.client.clone();
        let txn = Txn::new().and_then([
            TxnOp::get(self.keys.spec_prefix(), Some(GetOptions::new().with_prefix())),
            TxnOp::get(self.keys.spec_version(), None),
            TxnOp::get(self.keys.intents_prefix(), Some(GetOptions::new().with_prefix().with_keys_only())),
        ]);
        let response = client.txn(txn).await.map_err(StoreError::etcd("list objects"))?;
        let revision = response.header().map(|header| header.revision()).unwrap_or_default();
        let mut responses = response.op_responses().into_iter();
        let (Some(TxnOpResponse::Get(specs)), Some(TxnOpResponse::Get(version)), Some(TxnOpResponse::Get(intents))) =
            (responses.next(), responses.next(), responses.next())
        else {
            return Err(StoreError::Corrupt { key: self.keys.spec_prefix(), reason: "etcd answered the listing with unexpected responses".into() });
        };
        let mut objects = BTreeMap::new();
        for kv in specs.kvs() {
            let key = String::from_utf8_lossy(kv.key()).to_string();
            let object = self.decode_object(&key, kv.value(), kv.mod_revision())?;
            objects.insert(object.key(), StoredObject { object, mod_revision: kv.mod_revision() });
        }
        let spec_version = version.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0);
        let pending = intents.kvs().iter().filter_map(|kv| self.keys.committed_intent_id(&String::from_utf8_lossy(kv.key()))).collect();
        Ok((Listing { revision, objects, spec_version }, pending))
    }

    /// Decodes a stored object and checks that it sits under the key its kind and name
    /// imply.
    pub fn decode_object(&self, key: &str, value: &[u8], mod_revision: i64) -> Result<Object, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { key: key.to_string(), reason };
        let json: serde_json::Value = serde_json::from_slice(value).map_err(|error| corrupt(format!("not JSON: {error}")))?;
        let mut object = Object::from_value(json).map_err(|error| corrupt(error.to_string()))?;
        if self.keys.object(&object.key()) != key {
            return Err(corrupt(format!("holds {} but that belongs under {}", object.key(), self.keys.object(&object.key()))));
        }
        object.metadata.resource_version = Some(mod_revision.to_string());
        Ok(object)
    }

    /// Encodes an object for storage: without `resourceVersion`, which is etcd's own
    /// mod revision and filled in on read.
    pub fn encode_object(object: &Object) -> String {
        let mut stored = object.clone();
        stored.metadata.resource_version = None;
        stored.to_value().to_string()
    }
}
