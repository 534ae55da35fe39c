//! The console's JSON API under `/console/api` (`docs/console.md`). Errors answer
//! `{code, message_zh, message_en}` with a stable code: `CONSOLE_AUTH_REQUIRED` (401),
//! `CONSOLE_SESSION_EXPIRED` (401), `CONSOLE_LOGIN_FAILED` (401), `CONSOLE_CSRF` (403),
//! `CONSOLE_FORBIDDEN` (403), `CONSOLE_NOT_FOUND` (404), `CONSOLE_BAD_REQUEST` (400),
//! `CONSOLE_CONFLICT` (409), `CONSOLE_RATE_LIMITED` (429), `CONSOLE_UNAVAILABLE` (503).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{self, LoginOutcome, Role, Session};
use crate::Console;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    zh: String,
    en: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, zh: &str, en: &str) -> Self {
        Self {
            status,
            code: code.to_string(),
            zh: zh.to_string(),
            en: en.to_string(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn auth_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "CONSOLE_AUTH_REQUIRED",
            "请先登录",
            "please sign in",
        )
    }

    pub fn session_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "CONSOLE_SESSION_EXPIRED",
            "会话已过期，请重新登录",
            "the session has expired; please sign in again",
        )
    }

    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "CONSOLE_CSRF",
            "请求缺少有效的 CSRF 令牌，请刷新页面",
            "the request lacks a valid CSRF token; reload the page",
        )
    }

    pub fn forbidden(needed: Role) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "CONSOLE_FORBIDDEN",
            &format!("权限不足：需要 {} 角色", needed.as_str()),
            &format!("not allowed: needs the {} role", needed.as_str()),
        )
    }

    pub fn not_found(what_zh: &str, what_en: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "CONSOLE_NOT_FOUND", what_zh, what_en)
    }

    pub fn bad_request(zh: &str, en: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "CONSOLE_BAD_REQUEST", zh, en)
    }

    pub fn state(e: hub_state::StateError) -> Self {
        tracing::warn!(code = e.code(), error = %e, "console: state store error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CONSOLE_UNAVAILABLE",
            &format!("状态存储不可用（{}）", e.code()),
            &format!("the state store is unavailable ({})", e.code()),
        )
    }

    fn dlq(e: hub_egress::dlq::DlqError) -> Self {
        use hub_egress::dlq::DlqError as E;
        let detail = e.to_string();
        match &e {
            E::NotFound(_) => Self::not_found("未找到该死信", "no such dead letter"),
            E::NotPending { status, .. } => Self::new(
                StatusCode::CONFLICT,
                "CONSOLE_CONFLICT",
                &format!("该死信已处理（{status}）"),
                &format!("the dead letter was already {status}"),
            ),
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "CONSOLE_UNAVAILABLE",
                &format!("操作未完成：{}", e.code()),
                &format!("not done: {detail}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message_zh": self.zh, "message_en": self.en });
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/session", get(session))
        .route("/overview", get(overview))
        .route("/adapters", get(adapters))
        .route("/adapters/{partner}", get(adapter))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}", get(dead_letter))
        .route("/dead-letters/{id}/replay", post(replay))
        .route("/dead-letters/{id}/discard", post(discard))
        .route("/trace/{id}", get(trace))
        .fallback(|| async {
            ApiError::not_found("没有这个接口", "no such console API").into_response()
        })
        .with_state(console)
}

fn session_json(s: &Session, c: &Console) -> Value {
    json!({
        "operator": s.operator,
        "role": s.role.as_str(),
        "csrf_token": s.csrf,
        "expires_at_ms": s.expires_at_ms,
        "idle_minutes": c.section.session_idle_minutes,
        "can_replay": s.role >= Role::Operator,
    })
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
    password: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    extensions: axum::http::Extensions,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Ok(Json(body)) = body else {
        return Err(ApiError::bad_request(
            "请求格式应为 {\"name\", \"password\"}",
            "the body must be {\"name\", \"password\"}",
        ));
    };
    let address = auth::client_address(&extensions);
    match auth::login(&c, &body.name, &body.password, address).await? {
        LoginOutcome::Ok(session, cookie) => {
            let mut r = Json(session_json(&session, &c)).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        LoginOutcome::Refused => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "CONSOLE_LOGIN_FAILED",
            "用户名或密码错误",
            "wrong name or password",
        )),
        LoginOutcome::Limited(wait) => Err(auth::limited(wait)),
    }
}

async fn logout(State(c): State<Arc<Console>>, s: Session) -> ApiResult {
    c.deps
        .state
        .delete_console_session(&s.token_digest)
        .await
        .map_err(ApiError::state)?;
    audit(&c, &s, "console.logout", &s.operator, json!({})).await?;
    let mut r = Json(json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::cleared_cookie(c.section.secure_cookie)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn session(State(c): State<Arc<Console>>, s: Session) -> ApiResult {
    Ok(Json(session_json(&s, &c)).into_response())
}

async fn audit(
    c: &Console,
    s: &Session,
    action: &str,
    subject: &str,
    detail: Value,
) -> Result<(), ApiError> {
    c.deps
        .state
        .append_audit(&s.actor(), action, subject, &detail)
        .await
        .map(|_| ())
        .map_err(ApiError::state)
}

fn rendered(c: &Console) -> String {
    c.deps
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default()
}

async fn overview(State(c): State<Arc<Console>>, _s: Session) -> ApiResult {
    c.overview_wanted();
    let mut v = c.stats.overview(&rendered(&c), &c.deps.topology);
    v["instance_id"] = json!(c.deps.instance_id);
    v["metrics_available"] = json!(c.deps.metrics.is_some());
    Ok(Json(v).into_response())
}

/// The overview's rows grouped by partner.
fn adapter_rows(c: &Console, text: &str) -> Vec<Value> {
    let v = c.stats.overview(text, &c.deps.topology);
    let samples = crate::stats::parse(text);
    let mut names: Vec<String> = Vec::new();
    for key in ["partners", "routes", "pulls"] {
        for row in v[key].as_array().into_iter().flatten() {
            if let Some(p) = row["partner"].as_str() {
                if !p.is_empty() && !names.iter().any(|n| n == p) {
                    names.push(p.to_string());
                }
            }
        }
    }
    names.sort();
    names
        .iter()
        .map(|p| {
            let of = |key: &str| -> Vec<Value> {
                v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["partner"] == p.as_str())
                    .cloned()
                    .collect()
            };
            let ingress = of("partners").into_iter().next().map(|r| r["ingress"].clone());
            // Refusals since start by answer code, from the gateway's counter.
            let mut codes: Vec<(String, f64)> = Vec::new();
            for s in samples.iter().filter(|s| {
                s.name == "hub_gateway_requests_total"
                    && s.label("partner") == p
                    && s.label("outcome") == "rejected"
            }) {
                match codes.iter_mut().find(|(c, _)| c == s.label("code")) {
                    Some((_, n)) => *n += s.value,
                    None => codes.push((s.label("code").to_string(), s.value)),
                }
            }
            let breaker = crate::stats::breaker(&samples, p);
            let pulls = of("pulls");
            let max_lag = pulls
                .iter()
                .filter_map(|r| r["lag_seconds"].as_f64())
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let failing = breaker == "open";
            json!({
                "partner": p,
                "health": if failing { "down" } else if breaker == "unknown" { "unknown" } else { "up" },
                "breaker": breaker,
                "ingress": ingress,
                "rejected_by_code": codes.iter().map(|(c, n)| json!({ "code": c, "count": n })).collect::<Vec<_>>(),
                "routes": of("routes"),
                "pulls": pulls,
                "max_pull_lag_seconds": max_lag,
            })
        })
        .collect()
}

async fn adapters(State(c): State<Arc<Console>>, _s: Session) -> ApiResult {
    let text = rendered(&c);
    Ok(Json(json!({ "adapters": adapter_rows(&c, &text) })).into_response())
}

async fn adapter(
    State(c): State<Arc<Console>>,
    _s: Session,
    Path(partner): Path<String>,
) -> ApiResult {
    let text = rendered(&c);
    let Some(mut row) = adapter_rows(&c, &text)
        .into_iter()
        .find(|r| r["partner"] == partner.as_str())
    else {
        return Err(ApiError::not_found("未找到该合作方", "no such partner"));
    };
    let state = &c.deps.state;
    let prefix = format!("{partner}/");
    // The latest refusals of its pushes (the trace's `rejected` events) with their codes.
    let rejected: Vec<Value> = state
        .recent_trace_events("rejected", 500)
        .await
        .map_err(ApiError::state)?
        .into_iter()
        .filter(|e| {
            e.event.detail["route"]
                .as_str()
                .is_some_and(|r| r.starts_with(&prefix))
        })
        .take(20)
        .map(|e| {
            let d = &e.event.detail;
            json!({
                "at_ms": e.event.at_ms, "request_id": e.event.message_id, "route": d["route"],
                "code": d["code"], "status": d["status"], "app_id": d["app_id"],
            })
        })
        .collect();
    let filter = hub_state::DeadLetterFilter {
        limit: 500,
        ..Default::default()
    };
    let dead: Vec<Value> = hub_egress::dlq::list(state, &filter)
        .await
        .map_err(ApiError::dlq)?
        .into_iter()
        .filter(|d| d.route.starts_with(&prefix))
        .take(20)
        .map(|d| dead_letter_row(&d))
        .collect();
    // Pull cursors as saved (a watermark and the partner's page position, no personal data).
    let mut cursors = Vec::new();
    for p in row["pulls"].as_array().cloned().unwrap_or_default() {
        let name = p["pull"].as_str().unwrap_or_default().to_string();
        let saved = state
            .cursor(&format!("pull:{name}"))
            .await
            .map_err(ApiError::state)?;
        cursors.push(json!({ "pull": name, "cursor": saved, "lag_seconds": p["lag_seconds"] }));
    }
    row["recent_rejections"] = json!(rejected);
    row["recent_dead_letters"] = json!(dead);
    row["cursors"] = json!(cursors);
    Ok(Json(row).into_response())
}

fn dead_letter_row(d: &hub_state::DeadLetter) -> Value {
    json!({
        "id": d.id, "route": d.route, "reason_code": d.reason_code,
        "partner_code": d.partner_code, "attempts": d.attempts, "object_id": d.object_id,
        "original_message_id": d.original_message_id, "status": d.status,
        "status_by": d.status_by, "status_at_ms": d.status_at_ms,
        "dead_lettered_at_ms": d.dead_lettered_at_ms,
    })
}

#[derive(Deserialize, Default)]
struct DeadLetterQuery {
    route: Option<String>,
    reason: Option<String>,
    status: Option<String>,
    about: Option<String>,
    /// RFC 3339 or an age: 30m, 2h, 7d.
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
}

/// `30m`, `2h`, `7d` back from now, or an RFC 3339 time → Unix ms.
fn parse_time(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = number.parse().ok()?;
    let ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(chrono::Utc::now().timestamp_millis() - n * ms)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn dead_letters(
    State(c): State<Arc<Console>>,
    _s: Session,
    q: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Ok(Query(q)) = q else {
        return Err(ApiError::bad_request(
            "查询参数有误",
            "bad query parameters",
        ));
    };
    let time = |v: Option<String>| -> Result<Option<i64>, ApiError> {
        match non_empty(v) {
            None => Ok(None),
            Some(t) => parse_time(&t).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "时间应为 RFC 3339 或 30m、2h、7d 这样的时长",
                    "a time must be RFC 3339 or an age such as 30m, 2h, 7d",
                )
            }),
        }
    };
    let status = non_empty(q.status);
    if let Some(s) = &status {
        if !["pending", "replayed", "discarded"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(
                "状态应为 pending、replayed 或 discarded",
                "status must be pending, replayed or discarded",
            ));
        }
    }
    let filter = hub_state::DeadLetterFilter {
        route: non_empty(q.route),
        reason_code: non_empty(q.reason),
        status,
        about: non_empty(q.about),
        since_ms: time(q.since)?,
        until_ms: time(q.until)?,
        limit: q.limit.unwrap_or(100).clamp(1, 1_000),
    };
    let rows = hub_egress::dlq::list(&c.deps.state, &filter)
        .await
        .map_err(ApiError::dlq)?;
    Ok(
        Json(json!({ "dead_letters": rows.iter().map(dead_letter_row).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// Masks what a dead letter shows beyond what `hub_egress::dlq::show` masked (personal fields of
/// the original by its contract: sealed ones show their key id only, any in clear are masked by
/// kind): digit runs in the partner's free text, and the whole original when its contract is
/// unknown.
pub fn mask_dead_letter(catalog: &hub_contracts::Catalog, v: &mut Value) {
    for key in ["partner_answer", "reason"] {
        if let Some(s) = v[key].as_str() {
            v[key] = Value::String(hub_security::mask::free_text(s, 2_000));
        }
    }
    let headers = &v["original_headers"];
    let topic = match (
        headers[hub_bus::header::EVENT_TYPE].as_str(),
        headers[hub_bus::header::CONTRACT_VERSION].as_str(),
    ) {
        (Some(e), Some(ver)) => Some(format!("{e}.v{ver}")),
        _ => None,
    };
    // The original's personal fields were masked by `dlq::show` from the raw record (masking
    // its output again would take a sealed value's label for clear text). Without the contract
    // nobody knows which fields are personal: nothing is shown.
    if topic.as_deref().and_then(|t| catalog.contract(t)).is_none() {
        v["original"] = json!({ "hidden": "contract unknown; not shown" });
    }
}

async fn dead_letter(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
) -> ApiResult {
    let mut v = hub_egress::dlq::show(&c.deps.bus, &c.deps.catalog, &c.deps.state, &id)
        .await
        .map_err(ApiError::dlq)?;
    mask_dead_letter(&c.deps.catalog, &mut v);
    audit(
        &c,
        &s,
        "console.dlq_viewed",
        &id,
        json!({ "route": v["route"] }),
    )
    .await?;
    Ok(Json(v).into_response())
}

async fn replay(State(c): State<Arc<Console>>, s: Session, Path(id): Path<String>) -> ApiResult {
    s.require(Role::Operator)?;
    let d = hub_egress::dlq::replay(
        &c.deps.bus,
        &c.deps.catalog,
        &c.deps.producer,
        &c.deps.state,
        &id,
        &s.actor(),
    )
    .await
    .map_err(ApiError::dlq)?;
    Ok(Json(dead_letter_row(&d)).into_response())
}

#[derive(Deserialize)]
struct DiscardBody {
    note: String,
}

async fn discard(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    body: Result<Json<DiscardBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    s.require(Role::Operator)?;
    let note = match body {
        Ok(Json(b)) if !b.note.trim().is_empty() => {
            b.note.trim().chars().take(500).collect::<String>()
        }
        _ => {
            return Err(ApiError::bad_request(
                "丢弃需要填写原因 {\"note\"}",
                "a discard needs a reason {\"note\"}",
            ))
        }
    };
    let d = hub_egress::dlq::discard(&c.deps.state, &id, &s.actor(), &note)
        .await
        .map_err(ApiError::dlq)?;
    Ok(Json(dead_letter_row(&d)).into_response())
}

async fn trace(State(c): State<Arc<Console>>, s: Session, Path(id): Path<String>) -> ApiResult {
    let id = id.trim().to_string();
    if id.is_empty() || id.chars().count() > 200 {
        return Err(ApiError::bad_request("编号无效", "not a valid id"));
    }
    audit(&c, &s, "console.trace", &id, json!({})).await?;
    match (c.deps.trace)(id.clone()).await {
        Ok(answer) if answer["found"] == Value::Bool(true) => Ok(Json(answer).into_response()),
        Ok(_) => Err(ApiError::not_found(
            "未找到该编号的消息轨迹（可用消息编号、关联编号、工单号或证照号查询）",
            "no message trace for this id (ask by message id, correlation id, ticket or licence number)",
        )),
        Err((code, message)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CONSOLE_UNAVAILABLE",
            &format!("消息轨迹暂不可用（{code}）"),
            &format!("the message trace is unavailable ({code}: {message})"),
        )),
    }
}
