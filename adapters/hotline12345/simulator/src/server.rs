//! The HTTP side: the platform's APIs (`/api/v1/tickets/...`, signed) and the control API
//! (`/sim/...`, unsigned, for local use only), on one listener.
//!
//! Connections are served one task each, by hand rather than with `axum::serve`, so that a
//! planned fault can drop a connection without an answer (a reset the hub must survive).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::codes;
use crate::faults::FaultRule;
use crate::model::Action;
use crate::platform::{Platform, Reply, TicketBatch};

/// Per connection: a handler notifies it to drop the connection.
#[derive(Clone)]
struct ConnControl {
    reset: Arc<Notify>,
}

pub(crate) fn router(p: Arc<Platform>) -> Router {
    Router::new()
        .route("/api/v1/tickets/query", post(query))
        .route("/api/v1/tickets/{action}", post(action))
        .route("/sim/tickets", get(sim_tickets))
        .route("/sim/tickets/{no}", get(sim_ticket))
        .route("/sim/tickets/{no}/{op}", post(sim_ticket_op))
        .route("/sim/stats", get(sim_stats))
        .route("/sim/push", post(sim_push))
        .route(
            "/sim/faults",
            get(sim_faults).post(sim_add_fault).delete(sim_clear_faults),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "code": codes::MALFORMED, "msg": "接口不存在", "data": {} })),
            )
        })
        .with_state(p)
}

/// Accepts connections until the platform is cancelled; open connections are then closed
/// gracefully.
pub(crate) async fn serve(listener: TcpListener, p: Arc<Platform>) {
    let app = router(Arc::clone(&p));
    loop {
        let stream = tokio::select! {
            _ = p.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let control = ConnControl {
            reset: Arc::new(Notify::new()),
        };
        let service = TowerToHyperService::new(app.clone().layer(Extension(control.clone())));
        let cancel = p.cancel.clone();
        p.tasks.spawn(async move {
            // A clone of the socket, to make the drop a reset (SO_LINGER 0) when asked.
            let raw = stream
                .into_std()
                .and_then(|s| s.try_clone().map(|c| (s, c)));
            let Ok((std_stream, clone)) = raw else { return };
            let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
                return;
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(error = %e, "connection ended");
                    }
                }
                _ = control.reset.notified() => {
                    if let Ok(s) = tokio::net::TcpStream::from_std(clone) {
                        let _ = s.set_zero_linger();
                    }
                    // Dropping the connection (and the clone above) closes the socket.
                }
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

async fn render(reply: Reply, control: Option<&ConnControl>) -> Response {
    let mut reply = reply;
    loop {
        match reply {
            Reply::Json {
                status,
                body,
                retry_after,
            } => {
                let mut r = (status, Json(body)).into_response();
                if let Some(secs) = retry_after {
                    if let Ok(v) = secs.to_string().parse() {
                        r.headers_mut().insert("retry-after", v);
                    }
                }
                return r;
            }
            Reply::Late(delay, inner) => {
                tokio::time::sleep(delay).await;
                reply = *inner;
            }
            Reply::Reset => {
                if let Some(c) = control {
                    c.reset.notify_one();
                    // The connection task drops the connection; this answer is never sent.
                    std::future::pending::<()>().await;
                }
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    }
}

async fn action(
    State(p): State<Arc<Platform>>,
    Path(action): Path<String>,
    control: Option<Extension<ConnControl>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "code": codes::MALFORMED, "msg": "接口不存在", "data": {} })),
        )
            .into_response();
    };
    let reply = p.handle_action(
        action,
        &headers,
        uri.path(),
        uri.query().unwrap_or(""),
        &body,
    );
    render(reply, control.as_ref().map(|c| &c.0)).await
}

async fn query(
    State(p): State<Arc<Platform>>,
    control: Option<Extension<ConnControl>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = p.handle_query(&headers, uri.path(), uri.query().unwrap_or(""), &body);
    render(reply, control.as_ref().map(|c| &c.0)).await
}

// ---- control API ------------------------------------------------------------------------

async fn sim_tickets(State(p): State<Arc<Platform>>) -> Response {
    Json(p.tickets()).into_response()
}

async fn sim_ticket(State(p): State<Arc<Platform>>, Path(no): Path<String>) -> Response {
    match p.ticket(&no) {
        Some(t) => Json(t).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "unknown ticket" })),
        )
            .into_response(),
    }
}

async fn sim_ticket_op(
    State(p): State<Arc<Platform>>,
    Path((no, op)): Path<(String, String)>,
) -> Response {
    let result = match op.as_str() {
        "duplicate" => p.push_dispatch(&no).await,
        "urge" => p.push_urge(&no).await,
        "close" => p.push_close(&no).await,
        "visit" => p.push_visit(&no).await,
        "approve_extension" => {
            return Json(json!({ "approved": p.approve_extension(&no) })).into_response()
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "unknown operation" })),
            )
                .into_response()
        }
    };
    match result {
        Ok(record) => Json(record).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn sim_stats(State(p): State<Arc<Platform>>) -> Response {
    Json(p.stats()).into_response()
}

#[derive(Deserialize)]
struct PushRequest {
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    xml_ratio: f64,
    /// `false`: only offered to the query API.
    #[serde(default = "yes")]
    push: bool,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

async fn sim_push(State(p): State<Arc<Platform>>, body: Bytes) -> Response {
    let req: PushRequest = match serde_json::from_slice(if body.is_empty() { b"{}" } else { &body })
    {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    };
    let tickets = p
        .create_tickets(TicketBatch {
            count: req.count.min(1000),
            xml_ratio: req.xml_ratio,
            dispatched_at: None,
            push: req.push,
        })
        .await;
    let views: Vec<Value> = tickets
        .iter()
        .map(|no| {
            let t = p.ticket(no);
            json!({
                "ticket_no": no,
                "format": t.as_ref().map(|t| t.format),
                "hub_accepted": t.and_then(|t| t.hub_accepted),
            })
        })
        .collect();
    Json(json!({ "tickets": views })).into_response()
}

async fn sim_faults(State(p): State<Arc<Platform>>) -> Response {
    Json(p.faults()).into_response()
}

async fn sim_add_fault(State(p): State<Arc<Platform>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            p.inject(rule.clone());
            Json(rule).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn sim_clear_faults(State(p): State<Arc<Platform>>) -> Response {
    p.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}
