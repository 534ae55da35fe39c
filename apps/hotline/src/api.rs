//! The case handlers' HTTP API (axum). Authentication is a layer the app runtime puts around
//! these routes (`app_kit::auth::require_caller`); each handler checks the role it needs.
//!
//! | method and path | role | does |
//! |---|---|---|
//! | `GET /healthz` | — | the process is alive |
//! | `GET /readyz` | — | the database answers |
//! | `GET /metrics` | — | Prometheus metrics (`docs/metrics.md`); no personal data |
//! | `GET /api/v1/tickets` | viewer | list, filtered and paged |
//! | `GET /api/v1/tickets/{ticket_no}` | viewer | one ticket with its history |
//! | `POST /api/v1/tickets/{ticket_no}/sign` | handler | 签收 |
//! | `POST /api/v1/tickets/{ticket_no}/return` | handler | 退单 |
//! | `POST /api/v1/tickets/{ticket_no}/extension` | handler | 延期申请 |
//! | `POST /api/v1/tickets/{ticket_no}/reply` | handler | 办结回复 |

use std::collections::HashMap;
use std::sync::Arc;

use app_kit::api::ApiError;
use app_kit::auth::{Caller, Role};
use app_kit::db::now_ms;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::info;

use crate::actions::{self, ActionDeps, ActionRequest};
use crate::machine::{DeadlineStatus, Status};
use crate::store::{self, ListFilter};
use crate::view::{self, Personal};

/// What the handlers share.
pub struct ApiState {
    pub deps: ActionDeps,
}

/// The app's own routes, each needing a caller; the app runtime adds the token check,
/// `/healthz`, `/readyz`, `/metrics`, the body limit, metrics and trace hops
/// (`app_kit::runtime::http_router`).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/tickets", get(list))
        .route("/api/v1/tickets/{ticket_no}", get(show))
        .route("/api/v1/tickets/{ticket_no}/sign", post(sign))
        .route("/api/v1/tickets/{ticket_no}/return", post(return_ticket))
        .route("/api/v1/tickets/{ticket_no}/extension", post(extension))
        .route("/api/v1/tickets/{ticket_no}/reply", post(reply))
        .with_state(state)
}

fn bad_query(field: &str, zh: &str, en: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "HOTLINE_INVALID_QUERY",
        format!("查询参数 {field} 不正确：{zh}"),
        format!("query parameter `{field}` is not valid: {en}"),
    )
    .with_detail(json!({ "field": field }))
}

fn parse_filter(q: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    let known = [
        "status", "district", "category", "unit", "deadline", "limit", "offset",
    ];
    if let Some(unknown) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad_query(
            unknown,
            &format!("未知参数，可用：{}", known.join(", ")),
            &format!("unknown; known parameters: {}", known.join(", ")),
        ));
    }
    let mut f = ListFilter {
        limit: 50,
        ..ListFilter::default()
    };
    if let Some(s) = q.get("status") {
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = Status::parse(&part.to_ascii_uppercase()).ok_or_else(|| {
                let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                bad_query(
                    "status",
                    &format!("可选值：{}", all.join(", ")),
                    &format!("one or more of {}, comma-separated", all.join(", ")),
                )
            })?;
            f.statuses.push(st);
        }
    }
    if let Some(d) = q.get("district") {
        if d.len() != 6 || !d.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad_query(
                "district",
                "须为 6 位行政区划代码",
                "a 6-digit administrative code",
            ));
        }
        f.district_code = Some(d.clone());
    }
    f.category_code = q.get("category").filter(|c| !c.is_empty()).cloned();
    f.handling_unit_code = q.get("unit").filter(|c| !c.is_empty()).cloned();
    if let Some(d) = q.get("deadline") {
        f.deadline = Some(DeadlineStatus::parse(d).ok_or_else(|| {
            bad_query(
                "deadline",
                "可选值：overdue, due_within_24h, on_time",
                "one of overdue, due_within_24h, on_time",
            )
        })?);
    }
    if let Some(l) = q.get("limit") {
        f.limit = l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| bad_query("limit", "须为 1 到 200 的整数", "a whole number 1..=200"))?;
    }
    if let Some(o) = q.get("offset") {
        f.offset = o
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad_query("offset", "须为非负整数", "a whole number ≥ 0"))?;
    }
    Ok(f)
}

async fn list(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(q) = query.map_err(|e| bad_query("?", "无法解析", &e.body_text()))?;
    let filter = parse_filter(&q)?;
    let now = now_ms();
    let (tickets, total) = store::list(&s.deps.db, &filter, now)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    Ok(Json(json!({
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
        "items": tickets.iter().map(|t| view::summary(t, now)).collect::<Vec<_>>(),
    })))
}

async fn show(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ticket_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let db = &s.deps.db;
    let t = store::ticket_in(db, &ticket_no)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| actions::not_found(&ticket_no))?;
    let events = store::events_in(db, &ticket_no)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let queued = store::queued_in(db, &ticket_no)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let personal = if caller.personal_data {
        // Who read personal data in clear, and of which ticket (never the data itself).
        info!(caller = %caller.name, ticket_no = %ticket_no, "personal data shown in clear");
        Personal::Clear {
            cipher: &s.deps.cipher,
            contracts: &s.deps.contracts,
        }
    } else {
        Personal::Masked
    };
    Ok(Json(view::detail(
        &t,
        &events,
        &queued,
        &personal,
        now_ms(),
    )?))
}

/// The body as `T`; an empty body reads as `{}`.
fn body<T: DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|e| {
        ApiError::new(
            e.status(),
            "HOTLINE_BODY_UNREADABLE",
            "请求体无法读取（过大或不完整）",
            "the request body cannot be read (too large or incomplete)",
        )
    })?;
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|e| {
        // serde's message names the field and what was expected; it is sent back to the
        // caller who wrote it and never logged.
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "HOTLINE_INVALID_JSON",
            "请求体不是所需的 JSON",
            "the request body is not the JSON expected",
        )
        .with_detail(json!({ "problem": e.to_string() }))
    })
}

async fn act(
    s: &ApiState,
    caller: &Caller,
    ticket_no: &str,
    req: ActionRequest,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Handler)?;
    let done = actions::perform(&s.deps, caller, ticket_no, req).await?;
    Ok(Json(json!({
        "code": "OK",
        "message_zh": "操作已受理，事件将发送至 12345 平台",
        "message_en": "done; the event is on its way to the 12345 platform",
        "message_id": done.message_id.to_string(),
        "topic": done.topic,
        "ticket": view::summary(&done.ticket, now_ms()),
    })))
}

async fn sign(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ticket_no): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Handler)?;
    act(&s, &caller, &ticket_no, ActionRequest::Sign(body(bytes)?)).await
}

async fn return_ticket(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ticket_no): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Handler)?;
    act(&s, &caller, &ticket_no, ActionRequest::Return(body(bytes)?)).await
}

async fn extension(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ticket_no): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Handler)?;
    act(
        &s,
        &caller,
        &ticket_no,
        ActionRequest::RequestExtension(body(bytes)?),
    )
    .await
}

async fn reply(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(ticket_no): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Handler)?;
    act(&s, &caller, &ticket_no, ActionRequest::Reply(body(bytes)?)).await
}
