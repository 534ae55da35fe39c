//! Structured logs and traces, configured by `hub-config`'s `[log]` section as the hub's are
//! (the setup is `hub-telemetry`'s): one JSON object per line by default, to stderr, with the
//! fields of the hop span (`trace_id`, …) on every line, and the optional OTLP span export.
//! Personal data never goes into a log field or a span field; apps log ids, codes and counts.
//!
//! Hops of an app: each record the consumer applies (continuing the record's `traceparent`),
//! each API request ([`http_hop`], continuing the caller's `traceparent` header if any). An
//! event an app enqueues in its outbox inside a hop carries that hop's traceparent.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use hub_config::sections::LogSection;
use hub_telemetry::Telemetry;
use tracing::Instrument;

/// Installs the global subscriber (a second call keeps the first). `service` is the
/// `service.name` of exported spans unless `[log] otlp_service_name` is set. Keep the result
/// until the process ends: dropping it exports the last spans.
pub fn init(section: &LogSection, service: &str) -> Telemetry {
    hub_telemetry::init(section, service)
}

/// Middleware (`route_layer(axum::middleware::from_fn(http_hop))`): every API request runs in
/// a hop span (`api`, with method and route template, never path values) that continues the
/// caller's `traceparent` header, or starts a new trace when it is absent or invalid.
pub async fn http_hop(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = hub_telemetry::hop_span!("api", method = %request.method(), route = %route);
    let incoming = request
        .headers()
        .get(hub_telemetry::TRACEPARENT)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let (_, refused) = hub_telemetry::continue_from_header(&span, incoming);
    if let Some(reason) = refused {
        metrics::counter!("app_traceparent_invalid_total", "reason" => reason.code()).increment(1);
    }
    next.run(request).instrument(span).await
}
