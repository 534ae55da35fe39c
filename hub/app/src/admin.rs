//! The operators' listener: `/healthz`, `/readyz`, `/metrics` (Prometheus text format, see
//! `docs/metrics.md`), the message trace under `/api/v1/trace/{id}` (`docs/trace.md`) and the
//! schema registry under `/registry`, and the console under `/console` (its own sessions).
//!
//! `/healthz` and `/readyz` are open (probes). `/metrics`, `/registry/…` and
//! `/api/v1/trace/…` need `[admin] token` (`Authorization: Bearer <token>`, or HTTP Basic with
//! the token as password for registry clients that only speak Basic), answered 401
//! `ADMIN_UNAUTHORIZED` otherwise; `metrics_open` and `registry_open` open the first two
//! without it, on a loopback listener only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use hub_bus::{Lifecycle, Producer};
use hub_state::StateStore;

/// What the admin handlers look at.
pub struct AdminState {
    pub instance_id: String,
    pub producer: Producer,
    pub state: StateStore,
    pub lifecycle: Lifecycle,
    /// Set once the declared topics exist on the cluster.
    pub topics_ready: Arc<AtomicBool>,
    /// The contracts as a schema registry (`/registry`).
    pub registry: Arc<hub_contracts::Registry>,
    /// Renders `/metrics`; `None` when no recorder could be installed (answered 503).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The cluster, asked which consumer groups have read a traced message.
    pub bus: hub_bus::BusSection,
    /// Who may read `/metrics`, `/registry` and the trace API (`[admin]`).
    pub access: hub_config::sections::AdminSection,
}

pub fn router(state: Arc<AdminState>) -> Router {
    let access = Arc::new(state.access.clone());
    let guard = || from_fn_with_state(Arc::clone(&access), require_token);
    let mut registry = crate::registry_api::router(Arc::clone(&state.registry));
    if !access.registry_open {
        registry = registry.layer(guard());
    }
    let mut metrics_route = Router::new().route("/metrics", get(metrics));
    if !access.metrics_open {
        metrics_route = metrics_route.layer(guard());
    }
    let trace_route = Router::new()
        .route("/api/v1/trace/{id}", get(trace))
        .layer(guard());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics_route)
        .merge(trace_route)
        .with_state(state)
        .nest("/registry", registry)
}

/// The `[admin] token` a request presents: `Authorization: Bearer <token>`, or HTTP Basic
/// whose password is the token (any user name).
fn presented_token(req: &Request) -> Option<String> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, p)| p.to_string());
    }
    None
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 401 `ADMIN_UNAUTHORIZED` unless the request carries the admin token.
async fn require_token(
    State(access): State<Arc<hub_config::sections::AdminSection>>,
    req: Request,
    next: Next,
) -> Response {
    let ok = match (&access.token, presented_token(&req)) {
        (Some(expected), Some(given)) => same(expected, &given),
        _ => false,
    };
    if ok {
        return next.run(req).await;
    }
    metrics::counter!("hub_admin_unauthorized_total").increment(1);
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"hub-admin\"")],
        Json(json!({
            "code": "ADMIN_UNAUTHORIZED",
            "message_zh": "需要管理令牌（Authorization: Bearer <[admin] token>）",
            "message_en": "the admin token is required (Authorization: Bearer <[admin] token>)",
        })),
    )
        .into_response()
}

/// The process is alive and answering. Says nothing about its dependencies on purpose: a
/// liveness probe that fails when Kafka is down would restart healthy hubs in a loop.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive", "version": crate::version_line() }))
}

#[derive(Debug, serde::Deserialize)]
struct TraceQuery {
    limit: Option<i64>,
    /// `false` leaves out the live consumer-group check.
    consumers: Option<bool>,
}

/// Where a message went (`docs/trace.md`): 200 with the messages the id names, 404
/// `TRACE_NOT_FOUND` when nothing is recorded for it, 503 `STATE_UNAVAILABLE`.
async fn trace(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(q): Query<TraceQuery>,
) -> (StatusCode, Json<Value>) {
    let bus = q.consumers.unwrap_or(true).then_some(&s.bus);
    let limit = q.limit.unwrap_or(crate::trace::DEFAULT_LIMIT);
    match crate::trace::lookup(&s.state, bus, &id, limit).await {
        Ok(answer) if answer["found"] == Value::Bool(true) => (StatusCode::OK, Json(answer)),
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "code": "TRACE_NOT_FOUND",
                "message_zh": "未找到该编号的消息轨迹（可用消息编号、关联编号、工单号或证照号查询）",
                "message_en": "no message trace for this id (ask by message id, correlation id, ticket or licence number)",
                "id": id,
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "code": e.code(), "message_en": e.to_string(), "id": id })),
        ),
    }
}

/// Every metric of `crate::metrics::EXPORTED` that has been recorded, in the Prometheus text
/// exposition format.
async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    match &s.metrics {
        Some(h) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

/// Ready to take traffic: a broker answers, the state store accepts a write, the declared
/// topics exist, and the process is not shutting down.
async fn readyz(State(s): State<Arc<AdminState>>) -> (StatusCode, Json<Value>) {
    let (ready, checks) = readiness(&s).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "instance_id": s.instance_id,
            "checks": checks,
        })),
    )
}

/// The readiness checks (`/readyz`, and `hub_up` in the metrics sampler): whether all pass,
/// and each one's result.
pub(crate) async fn readiness(s: &AdminState) -> (bool, Value) {
    let broker = match s.producer.probe(Duration::from_secs(2)).await {
        Ok(n) => json!({ "ok": true, "brokers": n }),
        Err(e) => json!({ "ok": false, "code": e.code(), "error": e.to_string() }),
    };
    let store = match s
        .state
        .heartbeat(&s.instance_id, env!("CARGO_PKG_VERSION"))
        .await
    {
        Ok(()) => json!({ "ok": true, "backend": s.state.backend().as_str() }),
        Err(e) => json!({ "ok": false, "code": e.code(), "error": e.to_string() }),
    };
    let topics = json!({ "ok": s.topics_ready.load(Ordering::Acquire) });
    let running = json!({ "ok": !s.lifecycle.is_stopping() });
    let ready = [&broker, &store, &topics, &running]
        .iter()
        .all(|c| c["ok"] == Value::Bool(true));
    (
        ready,
        json!({ "broker": broker, "state_store": store, "topics": topics, "running": running }),
    )
}
