//! The platform's routes: its APIs (`/api/v1/tickets/...`, signed) and its own control routes
//! (`/sim/tickets...`, `/sim/push`); the simulator kit adds `/sim/stats`, `/sim/faults` and
//! `/sim/bad_signatures` and serves them all on one listener.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sim_kit::auth::Inbound;
use sim_kit::control::bad_request;
use sim_kit::Conn;

use crate::codes;
use crate::model::Action;
use crate::platform::{Platform, TicketBatch};

pub(crate) fn router(p: Arc<Platform>) -> Router {
    Router::new()
        .route("/api/v1/tickets/query", post(query))
        .route("/api/v1/tickets/{action}", post(action))
        .route("/sim/tickets", get(sim_tickets))
        .route("/sim/tickets/{no}", get(sim_ticket))
        .route("/sim/tickets/{no}/{op}", post(sim_ticket_op))
        .route("/sim/push", post(sim_push))
        .fallback(|| async { not_found() })
        .with_state(p)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "code": codes::MALFORMED, "msg": "接口不存在", "data": {} })),
    )
        .into_response()
}

fn inbound<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Inbound<'a> {
    Inbound {
        http_method: method.as_str(),
        path: uri.path(),
        raw_query: uri.query().unwrap_or(""),
        headers,
        body,
    }
}

async fn action(
    State(p): State<Arc<Platform>>,
    Path(action): Path<String>,
    conn: Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return not_found();
    };
    let reply = p.handle_action(action, inbound(&method, &uri, &headers, &body));
    conn.answer(reply).await
}

async fn query(
    State(p): State<Arc<Platform>>,
    conn: Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = p.handle_query(inbound(&method, &uri, &headers, &body));
    conn.answer(reply).await
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
        Err(e) => return bad_request(e),
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
