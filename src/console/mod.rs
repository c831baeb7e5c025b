//! `pacer console`: the cluster in a browser.
//!
//! One process serves pages rendered on the server (`page`, `pages`, `config`) from
//! the same status view `pacer status` prints (`ops::status`), kept current by one
//! watch of etcd (`feed`) and pushed to every open page as server-sent events —
//! the whole fragment once, then patches of what changed — coalesced, so a thousand
//! changes a second cost each browser a few frames, and no page polls. Actions
//! (`actions`) call the `ops` functions the CLI verbs call, each in a task of its
//! own, and answer with the equivalent `pacer` command. Assets are compiled into the
//! binary.
//!
//! Access: actions and apply need the token of `--token-file` (an `Authorization:
//! Bearer` header, which a page from another origin cannot send without a CORS
//! preflight this server never grants); `--read-only` renders no action and refuses
//! every writing route with 403; pasted manifests holding plain secret-named values
//! are compared with the cluster only with the token; a loopback console answers
//! only loopback host names (DNS rebinding). Nothing secret is rendered: the token is
//! never echoed or logged.

pub mod actions;
mod config;
mod feed;
mod page;
mod pages;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::ops::OpsError;
use crate::store::Store;

pub use feed::Frame;

/// How the console serves.
pub struct Options {
    /// Show no action and refuse every action request (403).
    pub read_only: bool,
    /// The secret an action request must present; None only with `read_only`.
    pub token: Option<Token>,
    /// Host names the console answers to besides its address (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
}

/// The action token, read from its file. Its `Debug` shows no secret.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Token(..)")
    }
}

impl Token {
    /// Reads the token: the file's first line, trimmed. The file must be a regular
    /// file that neither group nor others may read or write, and not empty.
    pub fn read(path: &Path) -> Result<Token, ConsoleError> {
        use std::os::unix::fs::MetadataExt;
        let error = |reason: String| ConsoleError::Token { path: path.to_path_buf(), reason };
        let metadata = std::fs::metadata(path).map_err(|source| error(source.to_string()))?;
        if !metadata.is_file() {
            return Err(error("not a regular file".to_string()));
        }
        if metadata.mode() & 0o077 != 0 {
            return Err(error(format!("group or others may access it (mode {:04o}); make it 0600", metadata.mode() & 0o7777)));
        }
        let text = std::fs::read_to_string(path).map_err(|source| error(source.to_string()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.len() < 16 {
            return Err(error("the token must be at least 16 characters".to_string()));
        }
        Ok(Token(token))
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    fn matches(&self, presented: &str) -> bool {
        let (expected, presented) = (self.0.as_bytes(), presented.as_bytes());
        let mut difference = u8::from(expected.len() != presented.len());
        for (index, byte) in expected.iter().enumerate() {
            difference |= byte ^ presented.get(index).copied().unwrap_or(0);
        }
        difference == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("read the token file {}: {reason}", path.display())]
    Token { path: PathBuf, reason: String },
    #[error("follow the cluster: {0}")]
    Ops(#[from] OpsError),
    #[error("serve the console: {0}")]
    Serve(std::io::Error),
}

/// What every request handler shares.
#[derive(Clone)]
struct App {
    store: Store,
    read_only: bool,
    token: Option<Arc<Token>>,
    frames: watch::Receiver<Arc<Frame>>,
    /// Becomes true when the console stops: open event streams end, a restart under
    /// way undoes its stop.
    closing: watch::Receiver<bool>,
    /// The host names a request may name (`Host`), besides the listen address's.
    allowed_hosts: Arc<Vec<String>>,
    /// The console listens on loopback: only loopback names are taken.
    loopback: bool,
}

/// A console whose first view of the cluster is built, ready to serve.
pub struct Prepared {
    store: Store,
    options: Options,
    feed: tokio::task::JoinHandle<()>,
    frames: watch::Receiver<Arc<Frame>>,
}

/// Follows the cluster and builds the first view: a console that cannot show the
/// cluster fails here, before it listens for anyone.
pub async fn prepare(store: Store, options: Options) -> Result<Prepared, ConsoleError> {
    let (feed, frames) = feed::start(store.clone(), options.read_only).await?;
    Ok(Prepared { store, options, feed, frames })
}

impl Prepared {
    /// Serves the console on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ConsoleError> {
        let Prepared { store, options, feed, frames } = self;
        let loopback = listener.local_addr().map(|address| address.ip().is_loopback()).map_err(ConsoleError::Serve)?;
        let (close, closing) = watch::channel(false);
        let app = App {
            store,
            read_only: options.read_only,
            token: options.token.map(Arc::new),
            frames,
            closing,
            allowed_hosts: Arc::new(options.allowed_hosts),
            loopback,
        };
        let router = Router::new()
            .route("/", get(status_page))
            .route("/status/stream", get(status_stream))
            .route("/api/status", get(status_json))
            .route("/api/action", post(action))
            .route("/history", get(history))
            .route("/history/diff", get(history_diff))
            .route("/history/{revision}", get(decision))
            .route("/history/{revision}/replay", get(replay))
            .route("/why/{resource}", get(why))
            .route("/sandbox", get(sandbox))
            .route("/api/simulate", post(simulate))
            .route("/config", get(configuration))
            .route("/config/graph.svg", get(graph))
            .route("/api/diff", post(diff))
            .route("/api/apply", post(apply))
            .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/console.js")) }))
            .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/console.css")) }))
            .route("/assets/icon.svg", get(|| async { asset("image/svg+xml", include_str!("assets/icon.svg")) }))
            .layer(axum::middleware::from_fn_with_state(app.clone(), check_host))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(app);
        let stop = async move {
            shutdown.await;
            let _ = close.send(true);
        };
        let served = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(stop).await;
        feed.abort();
        served.map_err(ConsoleError::Serve)
    }
}

/// Refuses a request whose `Host` the console does not answer to (421): on a
/// loopback console only loopback names and `--allowed-host`s, so a web page that
/// rebinds its own name to 127.0.0.1 cannot read the console; elsewhere, when
/// `--allowed-host` is given, only those (and the address itself).
async fn check_host(State(app): State<App>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if host_allowed(host, app.loopback, &app.allowed_hosts) {
        next.run(request).await
    } else {
        (StatusCode::MISDIRECTED_REQUEST, "this console does not answer to that host name (see --allowed-host)\n").into_response()
    }
}

/// Whether `host` (a `Host` header: a name or address, maybe with a port) may be served.
fn host_allowed(host: &str, loopback: bool, allowed: &[String]) -> bool {
    // `[::1]:7070`, `127.0.0.1:7070`, `localhost`, `name:7070`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.bytes().all(|byte| byte.is_ascii_digit()) { name } else { host }),
    };
    let name = name.to_ascii_lowercase();
    if allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(&name)) {
        return true;
    }
    let is_address = name.parse::<std::net::IpAddr>();
    if loopback { name == "localhost" || is_address.is_ok_and(|address| address.is_loopback()) } else { allowed.is_empty() || is_address.is_ok() }
}

/// Headers on every answer: no script, style or connection but the console's own, no
/// framing, no sniffing, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn status_page(State(app): State<App>) -> Html<String> {
    let frame = app.frames.borrow().clone();
    Html(page::status_page(&frame, app.read_only).into_string())
}

/// The status view as JSON: `{revision, error, status}`, `status` being what `pacer
/// status -o json` prints.
async fn status_json(State(app): State<App>) -> Response {
    let frame = app.frames.borrow().clone();
    axum::Json(serde_json::json!({ "revision": frame.revision, "error": frame.error, "status": frame.view })).into_response()
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    /// The frame the page was rendered with: not sent again.
    since: Option<u64>,
}

/// Server-sent events: a `status` event with the status fragment (unless the page
/// already shows that frame: then a `current` event says so), then again each time
/// it changes. A slow browser skips frames (a watch channel keeps only the latest), so
/// it never holds up the feed or another browser.
async fn status_stream(
    State(app): State<App>,
    Query(query): Query<StreamQuery>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let mut frames = app.frames.clone();
    let version = frames.borrow_and_update().version;
    // (An event with empty data is never dispatched by a browser: it carries the version.)
    let first = if query.since == Some(version) {
        Some(Event::default().event("current").id(version.to_string()).data(version.to_string()))
    } else {
        frames.mark_changed();
        None
    };
    let closing = app.closing.clone();
    // What the page shows: a frame it has (its version) is followed by a patch when
    // the next frame is the one after it, else by the whole fragment.
    let shown = if first.is_some() { version } else { 0 };
    let stream = futures_util::stream::unfold((frames, closing, first, shown), |(mut frames, mut closing, first, shown)| async move {
        if let Some(first) = first {
            return Some((Ok(first), (frames, closing, None, shown)));
        }
        let changed = tokio::select! {
            changed = frames.changed() => changed.is_ok(),
            _ = closing.wait_for(|closed| *closed) => false,
        };
        if !changed {
            return None;
        }
        let frame = frames.borrow_and_update().clone();
        let event = match &frame.patch {
            Some(patch) if shown != 0 && shown + 1 == frame.version => Event::default().event("patch").data(patch.as_str()),
            _ => Event::default().event("status").data(frame.html.as_str()),
        };
        Some((Ok(event.id(frame.version.to_string())), (frames, closing, None, frame.version)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Why a request may not change the cluster, as the answer to give: never on a
/// read-only console (403), else only with the token (401). None: it may.
fn unauthorized(app: &App, headers: &HeaderMap) -> Option<Response> {
    if app.read_only {
        return Some(refusal(StatusCode::FORBIDDEN, "this console is read-only: it takes no action", None));
    }
    (!token_presented(app, headers)).then(|| refusal(StatusCode::UNAUTHORIZED, "an action needs the console's token", None))
}

/// Whether the request carries the console's token (never on a read-only console,
/// which has none).
fn token_presented(app: &App, headers: &HeaderMap) -> bool {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| value.strip_prefix("Bearer "));
    matches!((&app.token, presented), (Some(token), Some(presented)) if token.matches(presented))
}

/// Pasted manifests with plain values of secret-named parameters are compared with
/// the cluster (diff, sandbox) only for a request with the token: whether a diff or a
/// simulation shows a change would tell whether a guessed password is the stored one.
fn secret_guess_refused(app: &App, headers: &HeaderMap, loaded: &crate::api::manifest::Loaded) -> Option<Response> {
    let found = crate::cli::objects::plain_secrets(loaded);
    if found.is_empty() || token_presented(app, headers) {
        return None;
    }
    Some(fragment(
        StatusCode::FORBIDDEN,
        maud::html! {
            div .diagnostics role="alert" {
                p .error { "These manifests hold plain values of secret-named parameters: they are compared with the cluster only with the action token (the answer would tell whether a guessed value is the stored one). Use secretFile references, or set the token." }
                ul { @for diagnostic in &found { li { code { (diagnostic.file) @if let Some(object) = &diagnostic.object { ": " (object) } @if let Some(path) = &diagnostic.path { ": " (path.to_string()) } } } } }
            }
        },
    ))
}

/// `POST /api/action`: one verb, as JSON (`actions::ActionRequest`). The verb runs in
/// a task of its own, so a browser that goes away mid-request does not cut it short
/// (a restart would stay stopped); only the console's stopping interrupts a restart,
/// which then undoes its stop.
async fn action(State(app): State<App>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(refused) = unauthorized(&app, &headers) {
        return refused;
    }
    let request: actions::ActionRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, &format!("the action request: {error}"), None),
    };
    let action = match actions::Action::parse(&request) {
        Ok(action) => action,
        Err(reason) => return refusal(StatusCode::BAD_REQUEST, &reason, None),
    };
    let command = action.command();
    tracing::info!(command = %command, %peer, "console action");
    let store = app.store.clone();
    let mut closing = app.closing.clone();
    let interrupted = async move {
        let _ = closing.wait_for(|closed| *closed).await;
    };
    let task = tokio::spawn(async move { action.run(&store, interrupted).await });
    match task.await {
        Ok(Ok(message)) => axum::Json(serde_json::json!({ "ok": true, "command": command, "message": message })).into_response(),
        Ok(Err(error)) => refusal(status_of(&error), &error.to_string(), Some(&command)),
        Err(error) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("the action's task failed: {error}"), Some(&command)),
    }
}

/// The HTTP status of a verb's failure.
fn status_of(error: &OpsError) -> StatusCode {
    match error {
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        OpsError::Refused(_) => StatusCode::CONFLICT,
        OpsError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        OpsError::NotReached(_) => StatusCode::GATEWAY_TIMEOUT,
        OpsError::Store(_) => StatusCode::BAD_GATEWAY,
    }
}

/// A page saying why a read failed, with the status of the failure.
fn error_page(error: &OpsError, read_only: bool) -> Response {
    let body = page::layout("Error", page::Nav::Status, read_only, maud::html! { main { h2 { "Not available" } p .error { (error.to_string()) } } });
    (status_of(error), Html(body.into_string())).into_response()
}

/// How many decisions the history explorer lists.
const HISTORY_LIMIT: usize = 100;

async fn history(State(app): State<App>) -> Response {
    match crate::ops::history::list(&app.store, HISTORY_LIMIT).await {
        Ok(entries) => Html(pages::history_page(&entries, app.read_only).into_string()).into_response(),
        Err(error) => error_page(&error, app.read_only),
    }
}

async fn decision(State(app): State<App>, UrlPath(revision): UrlPath<i64>) -> Response {
    match crate::ops::history::show(&app.store, revision).await {
        Ok(shown) => Html(pages::decision_page(&shown, app.read_only).into_string()).into_response(),
        Err(error) => error_page(&error, app.read_only),
    }
}

async fn replay(State(app): State<App>, UrlPath(revision): UrlPath<i64>) -> Response {
    match crate::ops::history::replay(&app.store, revision).await {
        Ok(replay) => Html(pages::replay_page(&replay, app.read_only).into_string()).into_response(),
        Err(error) => error_page(&error, app.read_only),
    }
}

#[derive(serde::Deserialize)]
struct DiffQuery {
    from: i64,
    to: i64,
}

async fn history_diff(State(app): State<App>, Query(query): Query<DiffQuery>) -> Response {
    match crate::ops::history::diff(&app.store, query.from, query.to).await {
        Ok(diff) => Html(pages::history_diff_page(&diff, app.read_only).into_string()).into_response(),
        Err(error) => error_page(&error, app.read_only),
    }
}

async fn why(State(app): State<App>, UrlPath(resource): UrlPath<String>) -> Response {
    match crate::ops::why::why(&app.store, &resource).await {
        Ok(why) => Html(pages::why_page(&why, app.read_only).into_string()).into_response(),
        Err(error) => error_page(&error, app.read_only),
    }
}

async fn sandbox(State(app): State<App>) -> Html<String> {
    let nodes: Vec<String> = app.frames.borrow().view.nodes.iter().map(|node| node.name.clone()).collect();
    Html(pages::sandbox_page(&nodes, app.read_only).into_string())
}

/// What the sandbox sends.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimulateRequest {
    #[serde(default)]
    node_fail: Vec<String>,
    /// `RESOURCE:OPERATION:NODE=RC`, one a line.
    #[serde(default)]
    op_fail: String,
    #[serde(default)]
    manifests: String,
}

/// The manifests a page sent, loaded as `pacer apply` loads a file.
fn load_manifests(text: &str) -> crate::api::manifest::Loaded {
    crate::api::manifest::load(&[crate::api::manifest::Source { name: MANIFESTS_NAME.to_string(), text: text.to_string() }])
}

/// The file name diagnostics give pasted manifests.
const MANIFESTS_NAME: &str = "manifests";

/// A fragment answer (the page puts it in place), with the status of its outcome.
fn fragment(status: StatusCode, markup: maud::Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// `POST /api/simulate`: the sandbox's what-if, as an HTML fragment. Writes nothing,
/// so a read-only console offers it too.
async fn simulate(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: SimulateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return fragment(StatusCode::BAD_REQUEST, maud::html! { p .error { "the sandbox request: " (error.to_string()) } }),
    };
    let mut injections: Vec<crate::ops::simulate::Injection> =
        request.node_fail.iter().map(|node| crate::ops::simulate::Injection::NodeFail(node.clone())).collect();
    for line in request.op_fail.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match crate::ops::simulate::Injection::op_fail(line) {
            Ok(injection) => injections.push(injection),
            Err(error) => return fragment(StatusCode::BAD_REQUEST, maud::html! { p .error role="alert" { (error.to_string()) } }),
        }
    }
    let loaded = (!request.manifests.trim().is_empty()).then(|| load_manifests(&request.manifests));
    if let Some(refused) = loaded.as_ref().and_then(|loaded| secret_guess_refused(&app, &headers, loaded)) {
        return refused;
    }
    match crate::ops::simulate::simulate_live(&app.store, loaded.as_ref(), &injections).await {
        Ok(simulation) => fragment(StatusCode::OK, pages::simulation_fragment(&simulation)),
        Err(OpsError::Invalid(diagnostics)) => fragment(StatusCode::UNPROCESSABLE_ENTITY, pages::diagnostics_fragment(&diagnostics)),
        Err(error) => fragment(status_of(&error), maud::html! { p .error role="alert" { (error.to_string()) } }),
    }
}

async fn configuration(State(app): State<App>) -> Response {
    match app.store.list_objects().await {
        Ok(listing) => {
            let revision = listing.revision;
            let objects = crate::runtime::cache::in_definition_order(listing.into_objects().collect());
            Html(config::config_page(&objects, revision, app.read_only).into_string()).into_response()
        }
        Err(error) => error_page(&OpsError::Store(error), app.read_only),
    }
}

async fn graph(State(app): State<App>) -> Response {
    match app.store.list_objects().await {
        Ok(listing) => {
            let objects = crate::runtime::cache::in_definition_order(listing.into_objects().collect());
            ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], config::graph_svg(&objects)).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

/// What the configuration page sends to diff or apply.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestsRequest {
    manifests: String,
}

/// `POST /api/diff`: `pacer diff --simulate` of pasted manifests, as a fragment: the
/// problems (file, line, object, field), or each change as a unified diff and what
/// would move. Writes nothing.
async fn diff(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: ManifestsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return fragment(StatusCode::BAD_REQUEST, maud::html! { p .error { "the diff request: " (error.to_string()) } }),
    };
    let loaded = load_manifests(&request.manifests);
    if let Some(refused) = secret_guess_refused(&app, &headers, &loaded) {
        return refused;
    }
    let apply = crate::store::apply::ApplyRequest { loaded, dry_run: true, ..Default::default() };
    let report = match crate::store::apply::apply_listed(&app.store, &apply).await {
        Ok((crate::store::apply::ApplyOutcome::Invalid(diagnostics), _)) => {
            return fragment(StatusCode::UNPROCESSABLE_ENTITY, pages::diagnostics_fragment(&diagnostics));
        }
        Ok((crate::store::apply::ApplyOutcome::Planned(report), _)) => report,
        Err(error) => return fragment(StatusCode::BAD_GATEWAY, maud::html! { p .error { (error.to_string()) } }),
    };
    let mut changed: Vec<_> = report.objects.iter().filter(|planned| planned.change.writes()).collect();
    changed.sort_by(|a, b| a.key.cmp(&b.key));
    let changes = changed.iter().map(|planned| (planned.key.clone(), planned.after.clone())).collect();
    let simulation = crate::ops::simulate::simulate_changes(&app.store, changes).await;
    fragment(
        StatusCode::OK,
        maud::html! {
            div #diff-result {
                @if changed.is_empty() { p #no-change { "No change: the cluster already has these objects." } }
                @for planned in &changed { pre .diff { (crate::cli::output::unified_diff(planned)) } }
                @match &simulation {
                    Ok(simulation) if !changed.is_empty() => { (pages::simulation_fragment(simulation)) }
                    Ok(_) => {}
                    Err(error) => { p .error { "simulating the change: " (error.to_string()) } }
                }
            }
        },
    )
}

/// `POST /api/apply`: `pacer apply -f` of pasted manifests (the same checks), with the
/// token. The answer is JSON like an action's, with the problems as a fragment.
async fn apply(State(app): State<App>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(refused) = unauthorized(&app, &headers) {
        return refused;
    }
    let request: ManifestsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, &format!("the apply request: {error}"), None),
    };
    let command = format!("pacer apply -f {MANIFESTS_NAME}.yaml");
    let mut loaded = load_manifests(&request.manifests);
    // What `pacer apply` warns of on stderr comes first in the answer.
    let warnings: String = crate::cli::objects::plain_secrets(&loaded).iter().map(|diagnostic| format!("warning: {diagnostic}\n")).collect();
    let receivers = crate::cli::objects::check_receivers_here(&loaded);
    loaded.diagnostics.extend(receivers);
    let apply = crate::store::apply::ApplyRequest { loaded, ..Default::default() };
    match crate::store::apply::apply_listed(&app.store, &apply).await {
        Ok((crate::store::apply::ApplyOutcome::Invalid(diagnostics), _)) => {
            let message = diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            let html = pages::diagnostics_fragment(&diagnostics).into_string();
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(serde_json::json!({ "ok": false, "command": command, "message": message, "html": html })))
                .into_response()
        }
        Ok((crate::store::apply::ApplyOutcome::Planned(report), _)) => {
            let mut objects: Vec<_> = report.objects.iter().collect();
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            let message: String = warnings + &objects.iter().map(|planned| format!("{} {}\n", planned.key, planned.change.as_str())).collect::<String>();
            tracing::info!(command = %command, %peer, "console apply");
            axum::Json(serde_json::json!({ "ok": true, "command": command, "message": message })).into_response()
        }
        Err(error) => refusal(StatusCode::BAD_GATEWAY, &error.to_string(), Some(&command)),
    }
}

fn refusal(status: StatusCode, message: &str, command: Option<&str>) -> Response {
    (status, axum::Json(serde_json::json!({ "ok": false, "command": command, "message": message }))).into_response()
}
