//! The `/metrics` endpoint, and `/healthz` (the loop's progress, for Kubernetes'
//! probes): axum on a listener bound at start (a bad or busy address
//! is refused before the component does anything), rendered by prometheus-client in
//! the format the scraper asks for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::Exporter;
use crate::notify::Health;

/// The exposition format of a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: what Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format (0.0.4): for promtool, curl and older
    /// scrapers. Counters are named with their `_total` in `# TYPE`, which the classic
    /// parsers need.
    Text,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when named.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Listens on `address` (port 0: any free port; `TcpListener::local_addr` says which).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// How long a loop may go without a healthy turn before `/healthz` says it is not:
/// the units' `WatchdogSec`, so Kubernetes' liveness probe and systemd's watchdog judge
/// alike.
pub const HEALTH_LIMIT: Duration = Duration::from_secs(30);

/// Serves `/metrics` and `/healthz` on `listener` until the process ends. Errors of single
/// connections are axum's to handle; the task ends only if the listener fails.
pub fn serve(listener: TcpListener, exporter: Exporter) -> tokio::task::JoinHandle<()> {
    let served = Served { exporter, renders: tokio::sync::Semaphore::new(RENDERS_AT_ONCE) };
    let router = axum::Router::new().route("/metrics", get(scrape)).route("/healthz", get(healthz)).with_state(Arc::new(served));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    })
}

/// Renders at once: a whole cluster's families take tens of milliseconds and megabytes
/// at 10,000 resources; more scrapers than this wait their turn rather than compete
/// with the decisions for the CPU and memory.
const RENDERS_AT_ONCE: usize = 2;

/// What the endpoint serves from.
struct Served {
    exporter: Exporter,
    renders: tokio::sync::Semaphore,
}

/// 200 while the component's loop turns with a healthy lease (within `HEALTH_LIMIT`),
/// 503 when it has not for longer (hung, or cut off from etcd) or has not turned yet.
/// The same signal as systemd's watchdog; no etcd request is made here.
async fn healthz(State(served): State<Arc<Served>>) -> Response {
    match served.exporter.progress().health(Instant::now(), HEALTH_LIMIT) {
        Health::Healthy(age) => (StatusCode::OK, format!("ok: the loop turned {} ms ago\n", age.as_millis())).into_response(),
        Health::Stale(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale: the loop last turned with a healthy lease {} s ago (limit {} s)\n", age.as_secs(), HEALTH_LIMIT.as_secs()),
        )
            .into_response(),
        Health::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting: the loop has not turned yet\n").into_response(),
    }
}

async fn scrape(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(ACCEPT).and_then(|value| value.to_str().ok()));
    let Ok(_permit) = served.renders.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the metrics endpoint is closing\n").into_response();
    };
    // Gathered here (the leader's published state is a pointer; the agent's view comes
    // from its loop), rendered on the blocking pool.
    let state = served.exporter.collector().await;
    let exporter = Arc::clone(&served);
    let rendered = tokio::task::spawn_blocking(move || render(exporter.exporter.registry(), state, format)).await;
    match rendered {
        Ok(Ok(body)) => ([(CONTENT_TYPE, format.content_type())], body).into_response(),
        Ok(Err(_)) | Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the metrics\n").into_response(),
    }
}

/// The exposition of `registry` followed by what `state` computes now.
pub fn render(registry: &Registry, state: Option<Box<dyn Collector>>, format: Format) -> Result<String, std::fmt::Error> {
    let mut scraped = Registry::default();
    if let Some(state) = state {
        scraped.register_collector(state);
    }
    let mut body = String::new();
    match format {
        Format::OpenMetrics => {
            text::encode_registry(&mut body, registry)?;
            text::encode_registry(&mut body, &scraped)?;
            text::encode_eof(&mut body)?;
        }
        Format::Text => {
            prometheus_text::encode(&mut body, registry)?;
            prometheus_text::encode(&mut body, &scraped)?;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_the_scraper_names_it() {
        // Prometheus 2.x's scrape header.
        let prometheus =
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }

    #[test]
    fn counters_are_named_for_each_format() {
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        counter.inc();
        registry.register("pacer_example", "An example", counter);
        let text = render(&registry, None, Format::Text).expect("render");
        assert!(text.contains("# TYPE pacer_example_total counter\npacer_example_total 1\n"), "{text}");
        let open = render(&registry, None, Format::OpenMetrics).expect("render");
        assert!(open.contains("# TYPE pacer_example counter\npacer_example_total 1\n") && open.ends_with("# EOF\n"), "{open}");
    }
}
