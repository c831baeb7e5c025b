//! Riding out an etcd outage (Patroni's DCS failsafe): an agent that cannot renew its
//! lease keeps running what it runs, instead of self-fencing, while it can prove that
//! etcd is down for everyone rather than that it alone is cut off — every node of the
//! last known membership answers, over the agents' own peer endpoint, that it too is
//! without etcd (or just back from such an outage).
//!
//! - `judge` (pure): a round's answers → enter or stay in failsafe, or self-fence.
//! - `holding` (pure): what this agent answers a peer.
//! - `serve` / `ask_all`: the peer endpoint (one line of JSON each way over TCP) and
//!   the round of questions.
//!
//! Safety does not rest on the answers: failsafe is entered only when the cluster has
//! fencing enabled, where no resource of a node whose lease is gone runs elsewhere
//! before that node is fenced (ARCHITECTURE.md, "Failsafe: riding out an etcd
//! outage"). The answers keep a node that is cut off from its peers doing what it
//! did before: stopping everything before its lease could expire.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::store::lease::LeaseState;

/// The timings of failsafe, all from the lease TTL `T`. An agent self-fences at `T/2`
/// without a confirmed renewal; its first rounds run from `T/4` on, so a verdict is
/// there at `T/2`; in failsafe a round every `T/4`, each given `T/8` to be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Rounds begin once no renewal was confirmed for this long.
    pub first_round_after: Duration,
    /// Least time between the starts of two rounds before failsafe.
    pub retry_every: Duration,
    /// Between the starts of two rounds in failsafe.
    pub round_every: Duration,
    /// How long a round waits for the answers.
    pub round_timeout: Duration,
    /// A node answers that it cannot reach etcd once no renewal was confirmed for
    /// this long: less than `first_round_after` minus a renewal period (`T/6`), so a
    /// peer whose last renewal came a period later than the asker's says so too.
    pub unconfirmed_after: Duration,
    /// After its lease is confirmed again (or re-claimed) following an outage of
    /// everyone — it left failsafe, a round of its own found every member holding, or
    /// it answered a peer's round holding — a node still answers that it is holding for
    /// this long, so the peers that come back later are not made to self-fence by the
    /// first one back. A renewal that was merely slow opens nothing.
    pub returning_for: Duration,
    /// A failed round in failsafe stops everything within this (as the old rule
    /// gives its stops from `T/2` to `3T/4`).
    pub stop_within: Duration,
}

impl Timing {
    pub fn for_ttl(ttl: Duration) -> Timing {
        Timing {
            first_round_after: ttl / 4,
            retry_every: (ttl / 16).max(Duration::from_millis(50)),
            round_every: ttl / 4,
            round_timeout: ttl / 8,
            unconfirmed_after: ttl / 5,
            returning_for: ttl,
            stop_within: ttl / 4,
        }
    }
}

/// What a peer answered (or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It cannot reach etcd either, or is just back from an outage and holding.
    Holding,
    /// It reaches etcd and acts normally.
    Active,
    /// No answer in time, a refused connection, an answer that does not decode or
    /// names another node: why.
    Unanswered(String),
}

/// A round's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every member is holding: keep running, start nothing.
    Failsafe,
    /// Stop everything, as before failsafe existed; why.
    SelfFence(String),
}

/// The last known membership: every other node whose heartbeat this agent saw at its
/// last store access, with its peer endpoint (`None`: it publishes none).
pub type Membership = BTreeMap<String, Option<String>>;

/// Judges a round: failsafe only with fencing enabled and when every member of the
/// membership answered `Holding`. With no other member the answer is vacuously yes:
/// a lone node cannot tell a cut-off from an outage, and with fencing enabled nothing
/// it runs can run elsewhere before it is fenced.
pub fn judge(fencing_enabled: bool, membership: &Membership, answers: &BTreeMap<String, PeerAnswer>) -> Verdict {
    if !fencing_enabled {
        return Verdict::SelfFence("fencing is disabled: failsafe needs it".into());
    }
    for (member, address) in membership {
        if address.is_none() {
            return Verdict::SelfFence(format!("{member} publishes no peer endpoint"));
        }
        match answers.get(member) {
            Some(PeerAnswer::Holding) => {}
            Some(PeerAnswer::Active) => return Verdict::SelfFence(format!("{member} reaches etcd")),
            Some(PeerAnswer::Unanswered(why)) => return Verdict::SelfFence(format!("{member} did not answer: {why}")),
            None => return Verdict::SelfFence(format!("{member} was not asked")),
        }
    }
    Verdict::Failsafe
}

/// Whether this agent answers `Holding`: in failsafe, returning from it (until
/// `returning_until`), between sessions (no lease: claiming or self-fencing), or no
/// renewal confirmed for `unconfirmed_after`. A lease etcd said is gone means etcd
/// answers: `Active`.
pub fn holding(failsafe: bool, returning_until: Option<Instant>, lease: Option<LeaseState>, timing: &Timing, now: Instant) -> bool {
    if failsafe || returning_until.is_some_and(|until| now < until) {
        return true;
    }
    match lease {
        None => true,
        Some(LeaseState::Lost) => false,
        Some(LeaseState::Held { renewed_at }) => now.saturating_duration_since(renewed_at) >= timing.unconfirmed_after,
    }
}

/// What an agent knows that its peer endpoint answers from; shared by the session's
/// loop (which sets it) and the endpoint (which reads it).
#[derive(Debug)]
pub struct PeerState {
    node: String,
    timing: Timing,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    lease: Option<watch::Receiver<LeaseState>>,
    /// Counts `set_lease` calls: a gap watcher of an older lease stops.
    generation: u64,
    failsafe: bool,
    returning_until: Option<Instant>,
    /// Since the last confirmed renewal, this node saw an outage of everyone: it told a
    /// peer's round it is holding, or its own round found every member holding. Only
    /// then does the renewal that ends the gap open a returning time: peers may count on
    /// its answer. A slow renewal alone (renewals come every `T/6`, so a round trip over
    /// `T/30` passes `unconfirmed_after`) must not make it answer holding for `T`, or a
    /// peer cut off alone from etcd would ride it out in failsafe instead of stopping.
    outage_seen: bool,
}

impl PeerState {
    pub fn new(node: &str, ttl: Duration) -> Arc<PeerState> {
        Arc::new(PeerState { node: node.to_string(), timing: Timing::for_ttl(ttl), inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session's lease (`None` between sessions). A task follows its renewals: a
    /// renewal confirmed when the one before was sent `unconfirmed_after` ago or more,
    /// after this node saw an outage of everyone meanwhile (`outage_seen`), starts a
    /// returning time.
    pub fn set_lease(self: &Arc<Self>, lease: Option<watch::Receiver<LeaseState>>) {
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            inner.lease = lease.clone();
            inner.generation
        };
        let Some(mut receiver) = lease else { return };
        let state = Arc::downgrade(self);
        tokio::spawn(async move {
            let renewed = |lease: LeaseState| match lease {
                LeaseState::Held { renewed_at } => Some(renewed_at),
                LeaseState::Lost => None,
            };
            let mut previous = renewed(*receiver.borrow_and_update());
            while receiver.changed().await.is_ok() {
                let Some(state) = state.upgrade() else { return };
                let current = renewed(*receiver.borrow_and_update());
                let mut inner = state.lock();
                if inner.generation != generation {
                    return;
                }
                if current.is_some() {
                    let gap = previous.is_some_and(|previous| previous.elapsed() >= state.timing.unconfirmed_after);
                    if gap && inner.outage_seen {
                        inner.returning_until = Some(Instant::now() + state.timing.returning_for);
                    }
                    inner.outage_seen = false;
                }
                previous = current;
            }
        });
    }

    /// A round of this agent's found every member holding: etcd is down for everyone.
    pub fn saw_outage(&self) {
        self.lock().outage_seen = true;
    }

    pub fn set_failsafe(&self, failsafe: bool) {
        let mut inner = self.lock();
        if inner.failsafe && !failsafe {
            inner.returning_until = Some(Instant::now() + self.timing.returning_for);
        }
        inner.failsafe = failsafe;
    }

    /// This agent's answer now. Answering a peer holding for want of a confirmed
    /// renewal is an outage seen: that peer runs rounds, and may count on this answer.
    pub fn answer(&self) -> bool {
        let mut inner = self.lock();
        let lease = inner.lease.as_ref().map(|lease| *lease.borrow());
        let now = Instant::now();
        let holds = holding(inner.failsafe, inner.returning_until, lease, &self.timing, now);
        if holds && matches!(lease, Some(LeaseState::Held { .. })) {
            inner.outage_seen = true;
        }
        holds
    }
}

/// The question, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct PeerQuestion {
    from: String,
}

/// The answer, one JSON line: `holding` is "I cannot reach etcd, or I am just back
/// from an outage and hold".
#[derive(Debug, Serialize, Deserialize)]
struct PeerReply {
    node: String,
    holding: bool,
}

/// Longest question accepted, in bytes.
const MAX_QUESTION: u64 = 4096;

/// The peer endpoint's mutual TLS, where the cluster is secure: the agent's own
/// certificate and key (the one it connects to etcd with) on both sides, and the
/// cluster's CA as the only root. A peer must present a certificate the CA signed,
/// and an answer counts only from the certificate whose common name is the member
/// asked. Node certificates are client certificates (no server EKU, no host names):
/// the asker checks the answering side's chain as a client chain, and its name by the
/// common name.
pub struct PeerTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PeerTls")
    }
}

/// Why the peer endpoint's TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("set up the peer endpoint's TLS: {0}")]
pub struct PeerTlsError(String);

impl PeerTls {
    /// From the store's TLS material; `None` for a plaintext store.
    pub fn from_store(store: &crate::store::Store) -> Result<Option<Arc<PeerTls>>, PeerTlsError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let Some(material) = store.tls_material() else { return Ok(None) };
        let failed = |what: &str, error: &dyn std::fmt::Display| PeerTlsError(format!("{what}: {error}"));
        let Some((cert_pem, key_pem)) = material.identity.as_ref() else {
            return Err(PeerTlsError("the agent connects to etcd without a client certificate".into()));
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&material.ca_pem) {
            roots.add(ca.map_err(|error| failed("read the CA", &error))?).map_err(|error| failed("add the CA", &error))?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>().map_err(|error| failed("read the certificate", &error))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| failed("read the key", &error))?;
        // rustls deprecates ring's provider only for lacking post-quantum key exchange;
        // etcd's client (tonic's tls-ring) uses the same.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|error| failed("build the verifier", &error))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| failed("choose the versions", &error))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|error| failed("use the certificate", &error))?;
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| failed("choose the versions", &error))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier { chain: verifier, provider }))
            .with_client_auth_cert(chain, key)
            .map_err(|error| failed("use the certificate", &error))?;
        Ok(Some(Arc::new(PeerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })))
    }
}

/// Checks the answering peer's chain against the cluster's CA as a client chain (node
/// certificates are client certificates); its name is checked after the handshake.
#[derive(Debug)]
struct PeerVerifier {
    chain: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.chain.verify_client_cert(end_entity, intermediates, now)?;
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, signature, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, signature, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The common name of the certificate the other side presented.
fn peer_name(certificates: Option<&[rustls_pki_types::CertificateDer<'static>]>) -> Option<String> {
    crate::store::tls::common_name_of(certificates?.first()?)
}

/// How many peer questions are answered at once (a cluster's members ask once per
/// round each).
const PEER_CONNECTIONS: usize = 64;

/// Answers peers on `listener` until the process ends: each connection gets one
/// answer and is closed; with `tls`, only over mutual TLS with a certificate the
/// cluster's CA signed.
pub fn serve(listener: TcpListener, state: Arc<PeerState>, tls: Option<Arc<PeerTls>>) {
    // At most this many questions at once: a flood of connections (each a TLS
    // handshake, each held up to 2 s) cannot take the node's file descriptors or CPU.
    let room = Arc::new(tokio::sync::Semaphore::new(PEER_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "peer endpoint: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = room.clone().try_acquire_owned() else {
                tracing::debug!(%from, "peer endpoint: too many questions at once; connection closed");
                continue;
            };
            let state = state.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let answer = async {
                    match &tls {
                        Some(tls) => answer_one(tls.acceptor.accept(stream).await?, &state).await,
                        None => answer_one(stream, &state).await,
                    }
                };
                let answered = tokio::time::timeout(Duration::from_secs(2), answer).await;
                if let Ok(Err(error)) = answered {
                    tracing::debug!(%error, %from, "peer endpoint: cannot answer");
                }
            });
        }
    });
}

async fn answer_one(stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, state: &PeerState) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut line = String::new();
    BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_QUESTION)).read_line(&mut line).await?;
    let question: PeerQuestion = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let holding = state.answer();
    tracing::debug!(from = %question.from, holding, "peer asked whether etcd can be reached");
    let mut reply = serde_json::to_string(&PeerReply { node: state.node.clone(), holding }).map_err(std::io::Error::other)?;
    reply.push('\n');
    write.write_all(reply.as_bytes()).await?;
    write.shutdown().await
}

/// Asks one member at `address`, expecting the answer to name `member` (and, over
/// TLS, its certificate too).
async fn ask(from: &str, member: &str, address: &str, tls: Option<&PeerTls>) -> PeerAnswer {
    let tcp = match TcpStream::connect(address).await {
        Ok(tcp) => tcp,
        Err(error) => return PeerAnswer::Unanswered(format!("connect to {address}: {error}")),
    };
    match tls {
        None => exchange(from, member, address, tcp).await,
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from("pacer-peer").expect("a valid DNS name");
            match tls.connector.connect(name, tcp).await {
                Err(error) => PeerAnswer::Unanswered(format!("TLS with {address}: {error}")),
                Ok(stream) => match peer_name(stream.get_ref().1.peer_certificates()) {
                    Some(name) if name == member => exchange(from, member, address, stream).await,
                    name => PeerAnswer::Unanswered(format!("{address} presented the certificate of {}", name.unwrap_or_else(|| "nobody".into()))),
                },
            }
        }
    }
}

async fn exchange(from: &str, member: &str, address: &str, mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) -> PeerAnswer {
    let exchange = async {
        let mut question = serde_json::to_string(&PeerQuestion { from: from.to_string() }).map_err(std::io::Error::other)?;
        question.push('\n');
        stream.write_all(question.as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(tokio::io::AsyncReadExt::take(stream, MAX_QUESTION)).read_line(&mut line).await?;
        serde_json::from_str::<PeerReply>(&line).map_err(std::io::Error::other)
    };
    match exchange.await {
        Ok(reply) if reply.node != member => PeerAnswer::Unanswered(format!("{address} answered as {}", reply.node)),
        Ok(reply) if reply.holding => PeerAnswer::Holding,
        Ok(_) => PeerAnswer::Active,
        Err(error) => PeerAnswer::Unanswered(format!("ask {address}: {error}")),
    }
}

/// Asks every member with an endpoint at once, each within `timeout`.
pub async fn ask_all(from: &str, membership: &Membership, timeout: Duration, tls: Option<Arc<PeerTls>>) -> BTreeMap<String, PeerAnswer> {
    let mut asks = tokio::task::JoinSet::new();
    for (member, address) in membership {
        let Some(address) = address.clone() else { continue };
        let (from, member, tls) = (from.to_string(), member.clone(), tls.clone());
        asks.spawn(async move {
            let answer = tokio::time::timeout(timeout, ask(&from, &member, &address, tls.as_deref()))
                .await
                .unwrap_or_else(|_| PeerAnswer::Unanswered(format!("no answer from {address} within {timeout:?}")));
            (member, answer)
        });
    }
    let mut answers = BTreeMap::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok((member, answer)) = joined {
            answers.insert(member, answer);
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(members: &[(&str, Option<&str>)]) -> Membership {
        members.iter().map(|(name, address)| (name.to_string(), address.map(str::to_string))).collect()
    }

    fn answers(answers: &[(&str, PeerAnswer)]) -> BTreeMap<String, PeerAnswer> {
        answers.iter().map(|(name, answer)| (name.to_string(), answer.clone())).collect()
    }

    #[test]
    fn failsafe_needs_every_member_holding_and_fencing() {
        let members = membership(&[("n2", Some("127.0.0.1:1")), ("n3", Some("127.0.0.1:2"))]);
        let all = answers(&[("n2", PeerAnswer::Holding), ("n3", PeerAnswer::Holding)]);
        assert_eq!(judge(true, &members, &all), Verdict::Failsafe);
        assert!(matches!(judge(false, &members, &all), Verdict::SelfFence(why) if why.contains("fencing is disabled")));
        let one_active = answers(&[("n2", PeerAnswer::Holding), ("n3", PeerAnswer::Active)]);
        assert!(matches!(judge(true, &members, &one_active), Verdict::SelfFence(why) if why == "n3 reaches etcd"));
        let one_silent = answers(&[("n2", PeerAnswer::Holding), ("n3", PeerAnswer::Unanswered("refused".into()))]);
        assert!(matches!(judge(true, &members, &one_silent), Verdict::SelfFence(why) if why.contains("n3 did not answer")));
        let one_missing = answers(&[("n2", PeerAnswer::Holding)]);
        assert!(matches!(judge(true, &members, &one_missing), Verdict::SelfFence(why) if why.contains("n3")));
        // An answer from a node outside the membership proves nothing about n3.
        let stranger = answers(&[("n2", PeerAnswer::Holding), ("n9", PeerAnswer::Holding)]);
        assert!(matches!(judge(true, &members, &stranger), Verdict::SelfFence(_)));
    }

    #[test]
    fn a_member_without_an_endpoint_cannot_confirm() {
        let members = membership(&[("n2", Some("127.0.0.1:1")), ("old", None)]);
        let all = answers(&[("n2", PeerAnswer::Holding)]);
        assert!(matches!(judge(true, &members, &all), Verdict::SelfFence(why) if why.contains("old publishes no peer endpoint")));
    }

    #[test]
    fn a_lone_node_holds_with_fencing_only() {
        assert_eq!(judge(true, &Membership::new(), &BTreeMap::new()), Verdict::Failsafe);
        assert!(matches!(judge(false, &Membership::new(), &BTreeMap::new()), Verdict::SelfFence(_)));
    }

    #[test]
    fn a_node_holds_while_unconfirmed_in_failsafe_or_returning() {
        let timing = Timing::for_ttl(Duration::from_secs(4));
        let now = Instant::now() + Duration::from_secs(10);
        let renewed = |ago_ms: u64| Some(LeaseState::Held { renewed_at: now - Duration::from_millis(ago_ms) });
        assert!(!holding(false, None, renewed(100), &timing, now), "confirmed 100 ms ago: reaches etcd");
        assert!(holding(false, None, renewed(800), &timing, now), "unconfirmed for a fifth of the TTL");
        assert!(!holding(false, None, Some(LeaseState::Lost), &timing, now), "etcd answered");
        assert!(holding(false, None, None, &timing, now), "between sessions");
        assert!(holding(true, None, renewed(100), &timing, now), "in failsafe");
        assert!(holding(false, Some(now + Duration::from_millis(1)), Some(LeaseState::Lost), &timing, now), "returning");
        assert!(!holding(false, Some(now), renewed(100), &timing, now), "returning is over");
    }

    /// The returning time follows an outage of everyone, not a slow renewal: a renewal
    /// answered after `unconfirmed_after` with nobody asked and no round of its own
    /// leaves the node answering that it reaches etcd.
    #[tokio::test]
    async fn only_an_outage_seen_opens_a_returning_time() {
        let ttl = Duration::from_secs(6);
        let timing = Timing::for_ttl(ttl);
        let slow = timing.unconfirmed_after + Duration::from_millis(100);
        // Waits until the watcher has taken in the renewal just sent.
        async fn settle() {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A slow renewal (the one before sent longer ago than unconfirmed_after).
        let state = PeerState::new("n1", ttl);
        let (renewals, receiver) = watch::channel(LeaseState::Held { renewed_at: Instant::now() - slow });
        state.set_lease(Some(receiver));
        settle().await;
        renewals.send_replace(LeaseState::Held { renewed_at: Instant::now() });
        settle().await;
        assert!(!state.answer(), "a slow renewal alone opens no returning time");

        // The same gap, during which a peer's round was told this node holds.
        let state = PeerState::new("n1", ttl);
        let (renewals, receiver) = watch::channel(LeaseState::Held { renewed_at: Instant::now() - slow });
        state.set_lease(Some(receiver));
        settle().await;
        assert!(state.answer(), "unconfirmed: holding");
        renewals.send_replace(LeaseState::Held { renewed_at: Instant::now() });
        settle().await;
        assert!(state.answer(), "back from an outage a peer counted on: returning");

        // The same gap, during which a round of its own found every member holding.
        let state = PeerState::new("n1", ttl);
        let (renewals, receiver) = watch::channel(LeaseState::Held { renewed_at: Instant::now() - slow });
        state.set_lease(Some(receiver));
        settle().await;
        state.saw_outage();
        renewals.send_replace(LeaseState::Held { renewed_at: Instant::now() });
        settle().await;
        assert!(state.answer(), "back from an outage of everyone: returning");
    }

    #[test]
    fn timings_fit_in_the_lease() {
        for seconds in [2, 5, 30] {
            let ttl = Duration::from_secs(seconds);
            let timing = Timing::for_ttl(ttl);
            // A round started at the first moment is answered before the self-fencing
            // point, and a peer whose renewals are a period (T/6) behind says it holds
            // in the rounds after the first (which start up to T/8 later).
            assert!(timing.first_round_after + timing.round_timeout < ttl / 2);
            assert!(timing.first_round_after + timing.round_timeout - ttl / 6 >= timing.unconfirmed_after);
            // A failed round in failsafe stops everything within the old rule's time.
            assert!(timing.round_every + timing.round_timeout + timing.stop_within < ttl);
        }
    }

    #[tokio::test]
    async fn peers_answer_for_themselves() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let state = PeerState::new("n2", Duration::from_secs(4));
        serve(listener, state.clone(), None);
        let members = membership(&[("n2", Some(&address))]);
        let timeout = Duration::from_secs(2);
        assert_eq!(ask_all("n1", &members, timeout, None).await["n2"], PeerAnswer::Holding, "no lease yet");
        let (sender, receiver) = watch::channel(LeaseState::Held { renewed_at: Instant::now() });
        state.set_lease(Some(receiver));
        assert_eq!(ask_all("n1", &members, timeout, None).await["n2"], PeerAnswer::Active);
        state.set_failsafe(true);
        assert_eq!(ask_all("n1", &members, timeout, None).await["n2"], PeerAnswer::Holding);
        drop(sender);
        // Asked under another name, the answer is not the member's.
        let wrong = membership(&[("n3", Some(&address))]);
        assert!(matches!(&ask_all("n1", &wrong, timeout, None).await["n3"], PeerAnswer::Unanswered(why) if why.contains("answered as n2")));
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let refused = closed.local_addr().expect("address").to_string();
        drop(closed);
        let gone = membership(&[("n4", Some(&refused))]);
        assert!(matches!(ask_all("n1", &gone, timeout, None).await["n4"], PeerAnswer::Unanswered(_)));
    }
}
