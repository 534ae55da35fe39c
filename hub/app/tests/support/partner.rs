//! A stand-in for the 12345 platform's APIs, for the egress and poller tests: a real HTTP
//! server that verifies the hub's signatures, removes duplicates by idempotency key, records
//! every effect, answers the platform's codes, and injects the faults a test plans per ticket.
//! (The full platform simulator, with the ticket state machine, lives with its adapter.)
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hub_security::signing::{RequestParts, SignatureMethod, VerifyingCredential};
use serde_json::{json, Value};

/// One planned answer for the next request about a ticket.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer after this long (longer than the hub's timeout: the hub gives up, the platform
    /// still takes the message).
    Slow(Duration),
    /// Hold the request this long, then refuse it with 503 (not taken).
    Hold(Duration),
    Status(u16),
    Throttle(u64),
    /// Drop the connection without an answer.
    Reset,
    /// 200 with this business code.
    Code(&'static str),
    /// 200 with this business code and this message (a refusal that quotes personal data).
    CodeSaying(&'static str, &'static str),
}

/// What the platform took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub action: String,
    pub ticket: String,
    pub idempotency_key: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Platform {
    pub secret: String,
    pub faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// A ticket whose every request fails with this status (retry budget tests).
    pub always: Mutex<HashMap<String, u16>>,
    pub effects: Mutex<Vec<Effect>>,
    pub answered: Mutex<HashMap<String, (u16, Value)>>,
    pub duplicates: Mutex<u32>,
    pub bad_signatures: Mutex<u32>,
    pub requests: Mutex<u32>,
    /// The `traceparent` header of every action request, in arrival order (None: absent).
    pub traceparents: Mutex<Vec<Option<String>>>,
    /// Query API: (dispatch time ms, item), served by window and page.
    pub items: Mutex<Vec<(i64, Value)>>,
    pub query_delay: Mutex<Duration>,
    pub queries_in_flight: Mutex<u32>,
    pub max_queries_in_flight: Mutex<u32>,
    pub queries: Mutex<u32>,
}

impl Platform {
    pub fn new(secret: &str) -> Arc<Self> {
        Arc::new(Self {
            secret: secret.into(),
            ..Default::default()
        })
    }

    pub fn plan(&self, ticket: &str, faults: Vec<Fault>) {
        self.faults
            .lock()
            .unwrap()
            .insert(ticket.to_string(), faults.into());
    }

    pub fn effects_for(&self, ticket: &str) -> Vec<Effect> {
        self.effects
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.ticket == ticket)
            .cloned()
            .collect()
    }

    /// Serves on a free port; returns the base URL.
    pub async fn serve(self: &Arc<Self>) -> String {
        let app = Router::new()
            .route("/api/v1/tickets/query", post(query))
            .route("/api/v1/tickets/{action}", post(action))
            .with_state(Arc::clone(self));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    }

    fn verify(&self, headers: &HeaderMap, path: &str, body: &[u8]) -> bool {
        verify_hub_v1(&self.secret, headers, "POST", path, body)
    }
}

/// Does a request carry a valid `hub-v1` HMAC-SM3 signature (`docs/security.md`) with
/// `secret`? The partner side of the hub's default scheme, for the stand-ins of these tests.
pub fn verify_hub_v1(
    secret: &str,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    // The hub signs the headers it names in X-Hub-Signed-Headers (the idempotency key, the
    // encryption mode); a protected header outside the signature is refused.
    let Ok(signed_headers) = hub_security::signing::received_signed_headers(
        headers
            .get("x-hub-signed-headers")
            .and_then(|v| v.to_str().ok()),
        |n| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        },
    ) else {
        return false;
    };
    let parts = RequestParts {
        method: SignatureMethod::parse(h("x-hub-signature-method"))
            .unwrap_or(SignatureMethod::HmacSm3),
        http_method: method,
        path,
        raw_query: "",
        app_id: h("x-hub-app-id"),
        timestamp_ms: h("x-hub-timestamp").parse().unwrap_or(0),
        nonce: h("x-hub-nonce"),
        body,
        signed_headers: &signed_headers,
    };
    let cred = VerifyingCredential::HmacSm3 {
        secret: secret.as_bytes().to_vec(),
    };
    cred.verify(&parts.canonical(), h("x-hub-signature"))
        .is_ok()
}

fn answer(code: &str, msg: &str) -> Value {
    json!({ "code": code, "msg": msg })
}

async fn action(
    State(p): State<Arc<Platform>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *p.requests.lock().unwrap() += 1;
    p.traceparents.lock().unwrap().push(
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    let path = format!("/api/v1/tickets/{action}");
    if !p.verify(&headers, &path, &body) {
        *p.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(answer("4001", "签名验证失败")),
        )
            .into_response();
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return Json(answer("1005", "报文格式错误")).into_response();
    };
    let ticket = doc["gdbh"].as_str().unwrap_or_default().to_string();
    let key = headers
        .get("x-idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some((status, a)) = p.answered.lock().unwrap().get(&key).cloned() {
        *p.duplicates.lock().unwrap() += 1;
        return (StatusCode::from_u16(status).unwrap(), Json(a)).into_response();
    }
    if let Some(status) = p.always.lock().unwrap().get(&ticket).copied() {
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(answer("9999", "故障")),
        )
            .into_response();
    }
    let fault = p
        .faults
        .lock()
        .unwrap()
        .get_mut(&ticket)
        .and_then(VecDeque::pop_front);
    let take = |p: &Platform| {
        p.effects.lock().unwrap().push(Effect {
            action: action.clone(),
            ticket: ticket.clone(),
            idempotency_key: key.clone(),
            body: doc.clone(),
        });
        let a = answer("0000", "成功");
        p.answered
            .lock()
            .unwrap()
            .insert(key.clone(), (200, a.clone()));
        Json(a).into_response()
    };
    match fault {
        None => take(&p),
        Some(Fault::Slow(d)) => {
            // The platform takes it, but answers too late for the hub.
            let r = take(&p);
            tokio::time::sleep(d).await;
            r
        }
        Some(Fault::Hold(d)) => {
            tokio::time::sleep(d).await;
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(answer("9999", "维护中")),
            )
                .into_response()
        }
        Some(Fault::Status(s)) => (
            StatusCode::from_u16(s).unwrap(),
            Json(answer("9999", "内部错误")),
        )
            .into_response(),
        Some(Fault::Throttle(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            Json(answer("2001", "系统繁忙")),
        )
            .into_response(),
        Some(Fault::Reset) => panic!("simulated connection reset (the connection is dropped)"),
        Some(Fault::Code(code)) => coded(&p, &key, code, "业务拒绝"),
        Some(Fault::CodeSaying(code, msg)) => coded(&p, &key, code, msg),
    }
}

/// A 200 answer with a business `code`; remembered for the idempotency key unless busy.
fn coded(p: &Platform, key: &str, code: &str, msg: &str) -> Response {
    let a = answer(code, msg);
    if code != "2001" && code != "2002" {
        p.answered
            .lock()
            .unwrap()
            .insert(key.to_string(), (200, a.clone()));
    }
    Json(a).into_response()
}

fn parse_local(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc().timestamp_millis() - 8 * 3_600_000)
        .unwrap_or(0)
}

async fn query(State(p): State<Arc<Platform>>, headers: HeaderMap, body: Bytes) -> Response {
    if !p.verify(&headers, "/api/v1/tickets/query", &body) {
        *p.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(answer("4001", "签名验证失败")),
        )
            .into_response();
    }
    {
        let mut n = p.queries_in_flight.lock().unwrap();
        *n += 1;
        let mut max = p.max_queries_in_flight.lock().unwrap();
        *max = (*max).max(*n);
        *p.queries.lock().unwrap() += 1;
    }
    let delay = *p.query_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let doc: Value = serde_json::from_slice(&body).unwrap_or_default();
    // Times are local (Shanghai) without offset, second precision: [kssj, jssj].
    let since = parse_local(doc["kssj"].as_str().unwrap_or_default());
    let until = parse_local(doc["jssj"].as_str().unwrap_or_default());
    let page = doc["pageNo"].as_u64().unwrap_or(1).max(1) as usize;
    let size = doc["pageSize"].as_u64().unwrap_or(50).max(1) as usize;
    let mut matching: Vec<(i64, Value)> = p
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t > since && *t <= until)
        .cloned()
        .collect();
    matching.sort_by_key(|(t, v)| (*t, v["gdbh"].as_str().unwrap_or_default().to_string()));
    let total = matching.len();
    let list: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|(_, v)| v)
        .collect();
    *p.queries_in_flight.lock().unwrap() -= 1;
    Json(json!({ "code": "0000", "msg": "成功", "data": { "total": total, "list": list } }))
        .into_response()
}
