//! Prometheus metrics of a domain app, on `GET /metrics` of its HTTP listener.
//!
//! [`KIT`] describes the metrics the kit's parts record for every app (consumer, outbox, HTTP
//! API); an app adds its own list (the hotline app: `hotline_app::metrics::HOTLINE`) when it
//! calls [`install`]. Every series carries the label `app` (the app's name), so one dashboard
//! serves all apps. The checks in `apps/hotline/tests/metrics.rs` hold the dashboards and
//! `docs/metrics.md` to these lists. Labels stay bounded: topic, partition, route template,
//! method, status, outcome; never a ticket number or personal data.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// Its labels, besides `app` which every series has.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Every metric the kit records for an app.
pub const KIT: &[Metric] = &[
    Metric {
        name: "app_consumer_records_total",
        kind: Kind::Counter,
        labels: &["topic", "outcome"],
        help: "Records the app's consumer finished, by outcome (applied, duplicate, rejected, behind, lost_race) or retried (failed, read again).",
    },
    Metric {
        name: "app_consumer_lag_records",
        kind: Kind::Gauge,
        labels: &["topic", "partition"],
        help: "Records of an assigned partition not applied yet: high watermark minus the next offset stored in the app's database.",
    },
    Metric {
        name: "app_outbox_pending",
        kind: Kind::Gauge,
        labels: &[],
        help: "Outbox rows waiting to be produced to Kafka.",
    },
    Metric {
        name: "app_outbox_relayed_total",
        kind: Kind::Counter,
        labels: &["topic", "outcome"],
        help: "Outbox rows the relay produced (ok) or failed to produce (failed, retried later).",
    },
    Metric {
        name: "app_http_requests_total",
        kind: Kind::Counter,
        labels: &["route", "method", "status"],
        help: "Requests answered by the app's HTTP API, by route template and status code.",
    },
    Metric {
        name: "app_http_request_duration_seconds",
        kind: Kind::Histogram,
        labels: &["route", "method"],
        help: "Time to answer a request of the app's HTTP API.",
    },
    Metric {
        name: "app_traceparent_invalid_total",
        kind: Kind::Counter,
        labels: &["reason"],
        help: "API requests whose `traceparent` header did not parse; they went on in a new trace.",
    },
];

/// Buckets of every latency histogram (seconds): 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process with the label `app = <app>` on every
/// series, and describes [`KIT`] and the app's own `extra` metrics. `None` (logged) when
/// another recorder was installed first; `/metrics` then answers 503.
pub fn install(app: &str, extra: &[Metric]) -> Option<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h.clone());
    }
    let built = PrometheusBuilder::new()
        .add_global_label("app", app)
        .set_buckets(LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match built {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "metrics recorder not installed: /metrics will be empty");
            return None;
        }
    };
    for m in KIT.iter().chain(extra) {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
    Some(HANDLE.get_or_init(|| handle).clone())
}

/// The handle [`install`] made, if any.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

/// `GET /metrics`: the Prometheus text exposition of everything recorded. Also runs the
/// exporter's upkeep (histogram maintenance), as scrapes come regularly.
pub async fn render() -> Response {
    match HANDLE.get() {
        Some(h) => {
            h.run_upkeep();
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                h.render(),
            )
                .into_response()
        }
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

/// A middleware (`axum::middleware::from_fn(app_kit::metrics::track_http)`) that counts and
/// times every request by its route template (`/api/v1/tickets/{ticket_no}`, never the
/// concrete path) and status. Requests no route matched count as `unmatched`.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::counter!(
        "app_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("app_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
