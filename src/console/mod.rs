//! `pacer console`: the cluster in a browser.
//!
//! One process serves pages rendered on the server (`page`) from the same status
//! view `pacer status` prints (`ops::status`), kept current by one watch of etcd
//! (`feed`) and pushed to every open page as server-sent events, coalesced, so a
//! thousand changes a second cost each browser a few frames, and no page polls.
//! Actions (`actions`) call the `ops` functions the CLI verbs call and answer with
//! the equivalent `pacer` command. Assets are compiled into the binary.
//!
//! Access: actions need the token of `--token-file` (an `Authorization: Bearer`
//! header, which a page from another origin cannot send without a CORS preflight
//! this server never grants); `--read-only` renders no action and refuses every
//! action with 403. Nothing secret is rendered: the token is never echoed or logged.

pub mod actions;
mod feed;
mod page;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
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
    /// Becomes true when the console stops: open event streams end.
    closing: watch::Receiver<bool>,
}

/// Serves the console on `listener` until `shutdown` completes. Returns once the
/// first view of the cluster is built and the server has stopped.
pub async fn serve(
    store: Store,
    listener: tokio::net::TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let (feed, frames) = feed::start(store.clone(), options.read_only).await?;
    let (close, closing) = watch::channel(false);
    let app = App { store, read_only: options.read_only, token: options.token.map(Arc::new), frames, closing };
    let router = Router::new()
        .route("/", get(status_page))
        .route("/status/stream", get(status_stream))
        .route("/api/status", get(status_json))
        .route("/api/action", post(action))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/console.js")) }))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/console.css")) }))
        .route("/assets/icon.svg", get(|| async { asset("image/svg+xml", include_str!("assets/icon.svg")) }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app);
    let stop = async move {
        shutdown.await;
        let _ = close.send(true);
    };
    let served = axum::serve(listener, router).with_graceful_shutdown(stop).await;
    feed.abort();
    served.map_err(ConsoleError::Serve)
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

/// The status view as JSON: what `pacer status -o json` prints.
async fn status_json(State(app): State<App>) -> Response {
    let frame = app.frames.borrow().clone();
    axum::Json(serde_json::json!({ "revision": frame.revision, "error": frame.error, "status": frame.view })).into_response()
}

/// Server-sent events: a `status` event with the status fragment now, then again each
/// time it changes. A slow browser skips frames (a watch channel keeps only the
/// latest), so it never holds up the feed or another browser.
async fn status_stream(State(app): State<App>) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let mut frames = app.frames.clone();
    frames.mark_changed();
    let closing = app.closing.clone();
    let stream = futures_util::stream::unfold((frames, closing), |(mut frames, mut closing)| async move {
        let changed = tokio::select! {
            changed = frames.changed() => changed.is_ok(),
            _ = closing.wait_for(|closed| *closed) => false,
        };
        if !changed {
            return None;
        }
        let frame = frames.borrow_and_update().clone();
        let event = Event::default().event("status").id(frame.version.to_string()).data(frame.html.as_str());
        Some((Ok(event), (frames, closing)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `POST /api/action`: one verb, as JSON (`actions::ActionRequest`).
async fn action(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if app.read_only {
        return refusal(StatusCode::FORBIDDEN, "this console is read-only: it takes no action", None);
    }
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| value.strip_prefix("Bearer "));
    let authorized = matches!((&app.token, presented), (Some(token), Some(presented)) if token.matches(presented));
    if !authorized {
        return refusal(StatusCode::UNAUTHORIZED, "an action needs the console's token", None);
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
    tracing::info!(command = %command, "console action");
    match assert_send(action.run(&app.store)).await {
        Ok(message) => axum::Json(serde_json::json!({ "ok": true, "command": command, "message": message })).into_response(),
        Err(error) => {
            let status = match &error {
                OpsError::NotFound(_) => StatusCode::NOT_FOUND,
                OpsError::Refused(_) | OpsError::Invalid(_) => StatusCode::CONFLICT,
                OpsError::NotReached(_) => StatusCode::GATEWAY_TIMEOUT,
                OpsError::Store(_) => StatusCode::BAD_GATEWAY,
            };
            refusal(status, &error.to_string(), Some(&command))
        }
    }
}

fn refusal(status: StatusCode, message: &str, command: Option<&str>) -> Response {
    (status, axum::Json(serde_json::json!({ "ok": false, "command": command, "message": message }))).into_response()
}

fn assert_send<T: Send>(value: T) -> T {
    value
}
