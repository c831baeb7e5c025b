//! Webhook receivers: the event POSTed as JSON through reqwest — rustls with the
//! system's certificate store (verified, never disabled), no redirects followed (a
//! secret header must not follow a redirect elsewhere), each attempt bounded by the
//! alert's timeout, three attempts one then two seconds apart. Header values read
//! from a file are read at each delivery, marked sensitive (reqwest's `Debug` hides
//! them) and never put in a log line, an error or an event.

use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde::Serialize;

use super::select::AlertConfig;
use crate::api::cluster::{WebhookHeader, WebhookReceiver};
use crate::api::records::EventRecord;

/// The pause before each retry: three attempts per event.
pub const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
pub const ATTEMPTS: u32 = BACKOFF.len() as u32 + 1;

/// The most read of a header value's file.
const HEADER_FILE_BYTES: u64 = 64 * 1024;

/// The JSON body: the event (with its sequence), the alert's name, its recipients.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<'a> {
    pub alert: &'a str,
    pub recipients: &'a [String],
    pub event: &'a EventRecord,
    /// Pacer's version (as `CRM_alert_version`).
    pub version: &'static str,
}

/// One HTTP client per alert worker (connections are kept between deliveries).
pub fn client() -> Result<reqwest::Client, String> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // reqwest is built without a crypto provider of its own (its default builds
        // aws-lc, C and assembly); ring is installed as the process's (another may
        // already be). rustls deprecates ring's provider only for lacking
        // post-quantum key exchange, which a webhook does not need.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    });
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(|error| format!("set up the HTTP client: {}", describe(&error)))
}

/// Delivers one event: up to three attempts. `Err` is why the last one failed.
pub async fn deliver(client: &reqwest::Client, alert: &AlertConfig, webhook: &WebhookReceiver, event: &EventRecord) -> Result<(), String> {
    let headers = headers(&webhook.headers).await?;
    let body = WebhookBody { alert: &alert.name, recipients: &alert.spec.recipients, event, version: env!("CARGO_PKG_VERSION") };
    let body = Arc::new(serde_json::to_vec(&body).map_err(|error| format!("encode the event: {error}"))?);
    let mut attempt = 0;
    loop {
        let outcome = post(client, &webhook.url, headers.clone(), body.as_ref().clone(), alert.timeout).await;
        match outcome {
            Ok(()) => return Ok(()),
            Err((reason, retry)) => {
                let Some(pause) = BACKOFF.get(attempt).filter(|_| retry) else {
                    let tries = attempt + 1;
                    return Err(if tries > 1 { format!("{reason} ({tries} attempts)") } else { reason });
                };
                tracing::debug!(alert = %alert.name, sequence = event.sequence, %reason, "webhook attempt failed; retrying");
                tokio::time::sleep(*pause).await;
                attempt += 1;
            }
        }
    }
}

/// One POST. `Err` carries the reason and whether another attempt may help (the
/// connection failed, it timed out, 408, 429, 5xx).
async fn post(client: &reqwest::Client, url: &str, headers: HeaderMap, body: Vec<u8>, timeout: Duration) -> Result<(), (String, bool)> {
    let request = client.post(url).headers(headers).body(body).timeout(timeout);
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => {
            let status = response.status();
            let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
            Err((format!("HTTP {status}"), retry))
        }
        // The URL is the spec's, but may hold credentials: errors are described
        // without it.
        Err(error) if error.is_timeout() => Err((format!("timed out after {}", humantime::format_duration(timeout)), true)),
        Err(error) => Err((describe(&error.without_url()), true)),
    }
}

/// An error with its causes, on one line (reqwest's own text is only the outermost).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The request's headers: JSON, Pacer's user agent, and the alert's own (values from
/// files read now, as sensitive values).
async fn headers(configured: &[WebhookHeader]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(concat!("pacer/", env!("CARGO_PKG_VERSION"))));
    for header in configured {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| format!("{:?} is not an HTTP header name", header.name))?;
        let mut value = match (&header.value, &header.value_from) {
            (Some(value), _) => HeaderValue::from_str(value).map_err(|_| format!("the value of header {name} is not a valid header value"))?,
            (None, Some(source)) => {
                let text = read_header_file(&source.file).await.map_err(|error| format!("read the value of header {name} from {}: {error}", source.file))?;
                let text = text.strip_suffix('\n').map(|text| text.strip_suffix('\r').unwrap_or(text)).unwrap_or(&text);
                HeaderValue::from_str(text).map_err(|_| format!("the value of header {name} read from {} is not a valid header value", source.file))?
            }
            (None, None) => return Err(format!("header {name} has no value")),
        };
        // Any header may carry a credential: none is ever shown.
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// A header value's file: a regular file (never a FIFO or a device, which could block
/// the delivery), at most `HEADER_FILE_BYTES`.
async fn read_header_file(path: &str) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let metadata = tokio::fs::metadata(path).await.map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    let file = tokio::fs::File::open(path).await.map_err(|error| error.to_string())?;
    let mut text = String::new();
    file.take(HEADER_FILE_BYTES).read_to_string(&mut text).await.map_err(|error| error.to_string())?;
    Ok(text)
}
