//! The ingest pipeline behind `POST /v1/{partner}/{mapping}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_pipeline::{normalize, NormalizeError};
use hub_state::{Receipt, ReceiptFingerprint, TraceEvent};
use serde_json::{json, Value};
use tracing::{info, warn, Instrument};

use crate::admission::{declared_length, precheck};
use crate::auth::authenticate;
use crate::encryption::{open_body, Session, ENCRYPTION, ENCRYPT_RESPONSE};
use crate::errors::{ApiError, ErrorCode};
use crate::server::Peer;
use crate::Gateway;

/// Header a partner may send to make a push idempotent.
pub const PARTNER_MESSAGE_ID: &str = "x-partner-message-id";

/// The outcome of a request, for its access-log line.
struct Outcome {
    status: StatusCode,
    code: &'static str,
    app: Option<String>,
    /// The message trace's events of an accepted push (`received`, then `produced` or
    /// `duplicate`); a refused one is traced as `rejected` under its request id.
    trace: Vec<TraceEvent>,
}

pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The route as logs, spans and traces name it: a configured route by its name, anything else
/// the caller typed (of any length) as one fixed token, so an unauthenticated caller cannot
/// write what it likes, or kilobytes of it per line, into the hub's logs.
fn route_label(gw: &Gateway, partner: &str, mapping: &str) -> String {
    match gw.mappings.get(partner, mapping) {
        Some(_) => format!("{partner}/{mapping}"),
        None => crate::refusals::UNKNOWN_ROUTE.to_string(),
    }
}

pub(crate) async fn not_found(request: Request) -> Response {
    let id = request_id(request.headers());
    ApiError::new(ErrorCode::RouteNotFound, &id).into_response()
}

/// `POST /v1/files/{mapping}`: the download route's path taken by a push to a partner named
/// `files`.
pub(crate) async fn ingest_files_partner(
    state: State<Arc<Gateway>>,
    Path(mapping): Path<String>,
    request: Request,
) -> Response {
    ingest(state, Path(("files".to_string(), mapping)), request).await
}

/// The request's place in its trace: the hop's own traceparent (sent on in the envelope) and
/// the caller's `tracestate` when its traceparent was valid.
struct Hop {
    traceparent: hub_telemetry::TraceParent,
    tracestate: Option<String>,
}

/// Every request runs in its hop span (`request_id`, `trace_id`, `route` on each of its log
/// lines). A valid incoming `traceparent` is continued; an absent or invalid one starts a new
/// trace (an invalid one is counted, never refused).
pub(crate) async fn ingest(
    State(gw): State<Arc<Gateway>>,
    Path((partner, mapping)): Path<(String, String)>,
    request: Request,
) -> Response {
    let id = request_id(request.headers());
    let route = route_label(&gw, &partner, &mapping);
    let span = hub_telemetry::hop_span!("ingest", request_id = %id, route = %route);
    let headers = request.headers();
    let incoming = headers
        .get(hub_telemetry::TRACEPARENT)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let (traceparent, refused) = hub_telemetry::continue_from_header(&span, incoming);
    if let Some(reason) = refused {
        crate::metrics::traceparent_invalid(reason.code());
    }
    let tracestate = headers
        .get(hub_telemetry::TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| refused.is_none() && incoming.is_some() && hub_telemetry::tracestate_ok(v))
        .map(str::to_string);
    let hop = Hop {
        traceparent,
        tracestate,
    };
    ingest_in_hop(gw, partner, mapping, route, request, id, hop)
        .instrument(span)
        .await
}

async fn ingest_in_hop(
    gw: Arc<Gateway>,
    partner: String,
    mapping: String,
    route: String,
    request: Request,
    id: String,
    hop: Hop,
) -> Response {
    let started = Instant::now();
    let mut sealer: Option<Session> = None;
    let (response, outcome, size) =
        handle(&gw, &id, &partner, &mapping, request, &mut sealer, &hop).await;
    // The partner's own acknowledgement envelope, when its mappings declare one.
    let response = match gw.mappings.answer_of(&partner) {
        Some(envelope) => wrap_answer(envelope, response, &id).await,
        None => response,
    };
    // The partner asked for an encrypted answer: same key and mode, fresh IV.
    let response = match sealer {
        Some(session) => seal_response(response, &session).await,
        None => response,
    };
    crate::metrics::request(
        &gw,
        &partner,
        &mapping,
        outcome.code,
        size,
        started.elapsed(),
    );
    // One access-log line per request; never a payload, never personal data.
    info!(
        target: "hub_gateway::access",
        request_id = %id,
        route = %route,
        app = outcome.app.as_deref().unwrap_or("-"),
        status = outcome.status.as_u16(),
        code = outcome.code,
        bytes = size,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    trace(&gw, &id, &route, outcome, size);
    let mut response = response;
    if let Ok(v) = id.parse() {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn handle(
    gw: &Gateway,
    id: &str,
    partner: &str,
    mapping_name: &str,
    request: Request,
    sealer: &mut Option<Session>,
    hop: &Hop,
) -> (Response, Outcome, usize) {
    let (parts, body) = request.into_parts();
    let refuse = |e: ApiError, app: Option<String>, size: usize| {
        let outcome = Outcome {
            status: e.code.status(),
            code: e.code.code(),
            app,
            trace: Vec::new(),
        };
        (e.into_response(), outcome, size)
    };

    // Before the body is read (`admission`): its declared length, the header part of
    // authentication, and an upload slot of its source and its app. A refusal here closes the
    // connection rather than reading a body nobody will use.
    if declared_length(&parts.headers).is_some_and(|n| n > gw.config.max_body_bytes as u64) {
        return refuse_unread(gw, ApiError::new(ErrorCode::BodyTooLarge, id), body);
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let upload_key = match precheck(gw, id, partner, &parts.headers, now_ms) {
        Ok(key) => key,
        Err(e) => {
            audit_refusal(gw, &parts, &e, partner, mapping_name).await;
            return refuse_unread(gw, e, body);
        }
    };
    let source = parts.extensions.get::<Peer>().map(|p| p.0.ip());
    let slot = match gw.uploads.acquire(
        source,
        &upload_key,
        gw.config.max_uploads_per_source,
        gw.config.max_uploads_per_app,
    ) {
        Ok(slot) => slot,
        Err(scope) => {
            crate::metrics::uploads_refused(scope.as_str());
            let e = ApiError::new(ErrorCode::RateLimited, id)
                .with_detail(json!({ "scope": scope.as_str() }))
                .retry_after(1);
            return refuse_unread(gw, e, body);
        }
    };
    let body = match read_body(body, gw.config.max_body_bytes, gw.config.body_timeout_ms).await {
        Ok(b) => b,
        Err(code) => {
            // Part of the body may still be on its way: the connection is not reused.
            let (mut response, outcome, size) = refuse(ApiError::new(code, id), None, 0);
            close_connection(&mut response);
            return (response, outcome, size);
        }
    };
    drop(slot);
    let size = body.len();
    // The expensive part (signature, decryption, mapping, produce) runs under the global
    // concurrency limit, taken only now: a slow or anonymous upload never holds it.
    let Ok(_permit) = gw.concurrency.try_acquire() else {
        return refuse(
            ApiError::new(ErrorCode::Overloaded, id).retry_after(1),
            None,
            size,
        );
    };
    let client_cert = parts
        .extensions
        .get::<crate::tls::ClientCertificate>()
        .and_then(|c| c.0.clone());
    let caller = match authenticate(
        gw,
        id,
        &parts.headers,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        partner,
        &body,
        now_ms,
        client_cert.as_deref(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            audit_refusal(gw, &parts, &e, partner, mapping_name).await;
            return refuse(e, None, size);
        }
    };
    let app_id = caller.app.app_id.clone();
    let refuse_app = |e: ApiError| refuse(e, Some(app_id.clone()), size);

    if let Err(wait) = gw.charge_route(&format!("{partner}/{mapping_name}")) {
        return refuse_app(
            ApiError::new(ErrorCode::RateLimited, id)
                .with_detail(json!({ "scope": "route" }))
                .retry_after(wait),
        );
    }

    // An encrypted body is decrypted after its signature (over the bytes as sent) verified.
    let decrypting = std::time::Instant::now();
    let opened = open_body(
        &parts.headers,
        body,
        caller.app.sm4_key.as_ref(),
        gw.sm2_key.as_ref(),
    );
    if parts.headers.contains_key(ENCRYPTION) {
        hub_pipeline::stage_done("decrypt", decrypting);
    }
    let body = match opened {
        Ok((plain, session)) => {
            let wants_sealed = parts
                .headers
                .get(ENCRYPT_RESPONSE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            if wants_sealed {
                *sealer = session;
            }
            plain
        }
        Err(code) => return refuse_app(ApiError::new(code, id)),
    };

    let Some(mapping) = gw.pushable(partner, mapping_name) else {
        return refuse_app(ApiError::new(ErrorCode::RouteNotFound, id));
    };
    // Idempotency: the partner's own id of this push, when it sends one.
    let partner_message_id = match parts.headers.get(PARTNER_MESSAGE_ID) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s)
                if !s.is_empty()
                    && s.len() <= 128
                    && s.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
            {
                Some(s.to_string())
            }
            _ => return refuse_app(ApiError::new(ErrorCode::PartnerMessageIdInvalid, id)),
        },
    };

    // Files the route carries are stored (durably) and replaced by their ids before the
    // mapping, which then sees only ids (`files`, `docs/files.md`).
    // The ids of the files stored for this push, held provisional until its record is on Kafka.
    let mut files_held: Vec<String> = Vec::new();
    let body = match &gw.files {
        None => body,
        Some(intake) => {
            match intake
                .intake(
                    &format!("{partner}/{mapping_name}"),
                    mapping,
                    &parts.headers,
                    body,
                    &gw.state,
                )
                .await
            {
                Ok(Ok((replaced, held))) => {
                    files_held = held;
                    replaced
                }
                Ok(Err(unchanged)) => unchanged,
                Err(e) => {
                    warn!(request_id = %id, code = e.code(), detail = %e.detail, "file refused");
                    let outcome = Outcome {
                        status: axum::http::StatusCode::from_u16(e.code.status())
                            .unwrap_or(StatusCode::BAD_REQUEST),
                        code: e.code(),
                        app: Some(app_id.clone()),
                        trace: Vec::new(),
                    };
                    return (crate::files::refusal(&e, id), outcome, size);
                }
            }
        }
    };

    // Map, validate, seal and encode before claiming anything: a payload that cannot be
    // mapped is refused the same way however often it is retried.
    let normalized = match normalize(mapping, &gw.catalog, &gw.cipher, |c| gw.schema_id(c), &body) {
        Ok(n) => n,
        Err(NormalizeError::NoContract(_)) => {
            return refuse_app(ApiError::new(ErrorCode::RouteNotFound, id))
        }
        Err(NormalizeError::Mapping(e)) => {
            let code = match e.code {
                "MAPPING_INPUT_UNREADABLE" => ErrorCode::MappingInputUnreadable,
                hub_mapping::limits::INPUT_TOO_DEEP => ErrorCode::InputTooDeep,
                hub_mapping::limits::INPUT_TOO_MANY_NODES => ErrorCode::InputTooManyNodes,
                "MAPPING_OUTPUT_INVALID" => ErrorCode::MappingOutputInvalid,
                _ => ErrorCode::MappingFailed,
            };
            // Field paths and program lines help the partner; values are never echoed.
            let fields: Vec<Value> = e
                .fields
                .iter()
                .map(|(f, _)| json!({ "path": f.path, "problem": f.problem }))
                .collect();
            crate::metrics::mapping_failure(partner, mapping_name, code.code());
            let detail =
                json!({ "mapping": e.mapping, "at": e.at, "reason": e.message, "fields": fields });
            return refuse_app(ApiError::new(code, id).with_detail(detail));
        }
        Err(NormalizeError::Unprotected(e)) => {
            warn!(request_id = %id, error = %e, "personal data could not be sealed");
            return refuse_app(ApiError::new(ErrorCode::PersonalDataUnprotected, id));
        }
        Err(NormalizeError::Invalid(errors)) => {
            crate::metrics::mapping_failure(
                partner,
                mapping_name,
                ErrorCode::MappingOutputInvalid.code(),
            );
            let fields: Vec<Value> = errors
                .iter()
                .map(|f| json!({ "path": f.path, "problem": f.problem }))
                .collect();
            return refuse_app(
                ApiError::new(ErrorCode::MappingOutputInvalid, id)
                    .with_detail(json!({ "fields": fields })),
            );
        }
    };
    let topic = normalized.topic.clone();
    let framed = &normalized.framed;
    let mut envelope = normalized.envelope(partner, &app_id);
    if let Some(c) = parts
        .headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty() && c.len() <= 128)
    {
        envelope.correlation_id = c.to_string();
    }
    // The hub's hop: same trace as the caller's, this request's span as the parent.
    envelope.traceparent = Some(hop.traceparent.to_string());
    envelope.tracestate.clone_from(&hop.tracestate);

    if let Some(pmid) = &partner_message_id {
        let stale_after = i64::try_from(gw.producer.delivery_timeout().as_millis())
            .unwrap_or(i64::MAX)
            .saturating_mul(2);
        let claiming = std::time::Instant::now();
        // A retry must be the same message: same route, same body (as read, after decryption).
        let route = format!("{partner}/{mapping_name}");
        let body_sm3 = hub_security::sm::sm3_hex(&body);
        let fingerprint = ReceiptFingerprint {
            route: &route,
            body_sm3: &body_sm3,
        };
        let claimed = gw
            .state
            .claim_receipt_checked(
                &app_id,
                pmid,
                fingerprint,
                &envelope.message_id.to_string(),
                &topic,
                stale_after,
            )
            .await;
        hub_pipeline::stage_done("receipt", claiming);
        let claimed = match claimed {
            Ok(Err(conflict)) => {
                let detail = json!({
                    "route_differs": conflict.route_differs,
                    "body_differs": conflict.body_differs,
                });
                return refuse_app(
                    ApiError::new(ErrorCode::IdempotencyKeyReused, id).with_detail(detail),
                );
            }
            Ok(Ok(receipt)) => Ok(receipt),
            Err(e) => Err(e),
        };
        match claimed {
            Ok(Receipt::Claimed { message_id }) => {
                if let Ok(m) = message_id.parse() {
                    envelope.message_id = m;
                    if partner_message_id.is_some()
                        && parts.headers.get("x-correlation-id").is_none()
                    {
                        envelope.correlation_id = message_id.clone();
                    }
                }
            }
            Ok(Receipt::Done { message_id, topic }) => {
                // The record is on Kafka: its files are referenced (again, if marking failed).
                crate::files::reference(&gw.state, std::mem::take(&mut files_held)).await;
                let body = accepted(id, &message_id, &topic, true);
                let duplicate = TraceEvent::new("duplicate", message_id.as_str())
                    .object(envelope.object_id.as_str())
                    .detail(json!({
                        "request_id": id, "app_id": app_id, "partner_message_id": pmid,
                        "bytes": size, "topic": topic,
                    }));
                let outcome = Outcome {
                    status: StatusCode::OK,
                    code: "ACCEPTED_DUPLICATE",
                    app: Some(app_id.clone()),
                    trace: vec![duplicate],
                };
                return (body, outcome, size);
            }
            Ok(Receipt::InProgress) => {
                return refuse_app(ApiError::new(ErrorCode::IngestInProgress, id).retry_after(1))
            }
            Err(_) => {
                return refuse_app(ApiError::new(ErrorCode::StateUnavailable, id).retry_after(1))
            }
        }
    }

    // The push's files are marked referenced before its record can reach Kafka, not after:
    // once a record names a file, no crash or state-store outage may leave that file to the
    // sweep. A push whose produce then fails keeps its files (referenced, never swept):
    // storage, not loss. Refused here, nothing has been produced and the partner retries.
    if !files_held.is_empty() {
        if let Err(e) = gw.state.reference_files(&files_held).await {
            warn!(request_id = %id, error = %e, "files not marked referenced; refusing before produce");
            if let Some(pmid) = &partner_message_id {
                let _ = gw.state.release_receipt(&app_id, pmid).await;
            }
            return refuse_app(ApiError::new(ErrorCode::StateUnavailable, id).retry_after(1));
        }
        // Marked; and still there (a sweep that claimed the row before the mark, only possible
        // for a push slower than the grace, may have removed the file): never produce a record
        // naming a missing file. The partner's retry stores it again.
        if let Some(intake) = &gw.files {
            if let Err(e) = crate::files::still_stored(&intake.store, &files_held).await {
                warn!(request_id = %id, code = e.code(), "a file of the push is gone; refusing before produce");
                if let Some(pmid) = &partner_message_id {
                    let _ = gw.state.release_receipt(&app_id, pmid).await;
                }
                let outcome = Outcome {
                    status: StatusCode::from_u16(e.code.status())
                        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    code: e.code(),
                    app: Some(app_id.clone()),
                    trace: Vec::new(),
                };
                return (crate::files::refusal(&e, id), outcome, size);
            }
        }
    }

    let producing = std::time::Instant::now();
    let produced = gw.producer.send(&topic, &envelope, framed).await;
    hub_pipeline::stage_done("produce", producing);
    match produced {
        Ok(put) => {
            if let Some(pmid) = &partner_message_id {
                if let Err(e) = gw.state.complete_receipt(&app_id, pmid).await {
                    // The message is on Kafka; a retry would be answered "in progress" until
                    // the claim goes stale and is then produced again with the same message id.
                    warn!(request_id = %id, error = %e, "receipt not completed");
                }
            }
            let message_id = envelope.message_id.to_string();
            let event = |stage: &str| {
                TraceEvent::new(stage, message_id.as_str())
                    .correlation(envelope.correlation_id.as_str())
                    .object(envelope.object_id.as_str())
            };
            let received = TraceEvent {
                at_ms: now_ms,
                ..event("received").detail(json!({
                    "request_id": id, "app_id": app_id, "route": format!("{partner}/{mapping_name}"),
                    "bytes": size, "partner_message_id": partner_message_id, "verdict": "ACCEPTED",
                }))
            };
            let produced = event("produced").detail(json!({
                "contract": envelope.event_type, "version": envelope.contract_version,
                "topic": put.topic, "partition": put.partition, "offset": put.offset,
            }));
            let outcome = Outcome {
                status: StatusCode::OK,
                code: "ACCEPTED",
                app: Some(app_id.clone()),
                trace: vec![received, produced],
            };
            (accepted(id, &message_id, &topic, false), outcome, size)
        }
        Err(e) => {
            warn!(request_id = %id, code = e.code(), error = %e, "produce failed; the partner will retry");
            if let Some(pmid) = &partner_message_id {
                let _ = gw.state.release_receipt(&app_id, pmid).await;
            }
            refuse_app(ApiError::new(ErrorCode::BusUnavailable, id).retry_after(1))
        }
    }
}

/// Hands the request's trace events to the state store's trace sink (never waits). A refused
/// push has no message id: it is traced under its request id, with its code.
fn trace(gw: &Gateway, request_id: &str, route: &str, outcome: Outcome, size: usize) {
    if outcome.trace.is_empty() {
        let rejected = TraceEvent::new("rejected", request_id).detail(json!({
            "route": route, "app_id": outcome.app, "bytes": size,
            "status": outcome.status.as_u16(), "code": outcome.code,
        }));
        gw.state.trace_event(rejected);
        return;
    }
    for e in outcome.trace {
        gw.state.trace_event(e);
    }
}

fn accepted(request_id: &str, message_id: &str, topic: &str, duplicate: bool) -> Response {
    (
        StatusCode::OK,
        Json(json!({
            "code": "ACCEPTED",
            "message_zh": if duplicate { "重复报文，已按首次接收处理" } else { "已接收" },
            "message_en": if duplicate { "duplicate of a message already accepted" } else { "accepted" },
            "request_id": request_id,
            "message_id": message_id,
            "topic": topic,
            "duplicate": duplicate,
        })),
    )
        .into_response()
}

/// How long, and how many bytes, a body refused before it was read is still drained so that
/// the answer reaches the client before the connection closes (a close with unread data would
/// reset the connection, and the client could lose the answer with it).
const LINGER: Duration = Duration::from_secs(2);

/// Marks an answer as the connection's last.
fn close_connection(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
}

/// A refusal answered before the body was read: `Connection: close`, and the body drained for
/// at most [`LINGER`] and `max_body_bytes` in the background, then the connection closes.
fn refuse_unread(gw: &Gateway, e: ApiError, body: Body) -> (Response, Outcome, usize) {
    let outcome = Outcome {
        status: e.code.status(),
        code: e.code.code(),
        app: None,
        trace: Vec::new(),
    };
    let mut response = e.into_response();
    close_connection(&mut response);
    let budget = gw.config.max_body_bytes;
    tokio::spawn(async move {
        let mut body = body;
        let mut seen = 0usize;
        let _ = tokio::time::timeout(LINGER, async {
            while let Some(Ok(frame)) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
            {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > budget {
                    break;
                }
            }
        })
        .await;
    });
    (response, outcome, 0)
}

async fn read_body(body: Body, limit: usize, timeout_ms: u64) -> Result<Vec<u8>, ErrorCode> {
    match tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => Err(ErrorCode::BodyTimeout),
        Ok(Err(_)) => Err(ErrorCode::BodyTooLarge),
        Ok(Ok(b)) => Ok(b.to_vec()),
    }
}

/// Authentication failures and replays are security events: they go to the audit chain,
/// aggregated per source ([`crate::refusals`]).
async fn audit_refusal(
    gw: &Gateway,
    parts: &axum::http::request::Parts,
    e: &ApiError,
    partner: &str,
    mapping: &str,
) {
    let action = match e.code {
        ErrorCode::AuthReplay => "auth.replay",
        // The answer is the same for an unknown app id; the record keeps which it was.
        ErrorCode::AuthSignatureInvalid => e.reason.unwrap_or("auth.signature_invalid"),
        ErrorCode::AuthHeaderUnsigned => "auth.header_unsigned",
        ErrorCode::AuthTimestampOutOfWindow => "auth.timestamp_out_of_window",
        ErrorCode::AuthPartnerMismatch => "auth.partner_mismatch",
        ErrorCode::AuthClientCertRequired => "auth.client_cert_required",
        ErrorCode::AuthClientCertMismatch => "auth.client_cert_mismatch",
        _ => return,
    };
    let app = parts
        .headers
        .get(hub_security::signing::header::APP_ID)
        .and_then(|v| v.to_str().ok())
        .map(crate::refusals::bounded_app_id)
        .unwrap_or_default();
    let subject = route_label(gw, partner, mapping);
    let source = parts
        .extensions
        .get::<Peer>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string());
    let first = gw.refusals.note(crate::refusals::Refusal {
        source,
        action,
        subject: &subject,
        app_id: app,
        request_id: &e.request_id,
        at_ms: chrono::Utc::now().timestamp_millis(),
    });
    // The first of its source and kind in the interval is written now; the others are counted
    // and written as one record at the end of the interval (`refusals`).
    if let Some((action, subject, detail)) = first {
        if let Err(err) = gw
            .state
            .append_audit(&gw.actor, action, &subject, &detail)
            .await
        {
            warn!(error = %err, "audit record not written");
        }
    }
}

async fn seal_response(response: Response, session: &Session) -> Response {
    let (mut parts, body) = response.into_parts();
    let plain = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    parts.headers.insert(
        ENCRYPTION,
        axum::http::HeaderValue::from_static(session.mode.as_str()),
    );
    Response::from_parts(parts, Body::from(session.seal(&plain)))
}

/// Rewrites the unified answer (plus its `http_status`) into the partner's envelope with the
/// partner's `answer` mapping. If that mapping fails, the unified answer goes out unchanged:
/// an answer is never lost to a broken envelope.
async fn wrap_answer(
    envelope: &hub_mapping::Mapping,
    response: Response,
    request_id: &str,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut answer {
        o.insert("http_status".into(), json!(parts.status.as_u16()));
    }
    match envelope.outbound(&answer) {
        Ok(wrapped) => {
            if let Ok(ct) = envelope.content_type().parse() {
                parts.headers.insert(axum::http::header::CONTENT_TYPE, ct);
            }
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(wrapped))
        }
        Err(e) => {
            warn!(request_id = %request_id, error = %e, "the partner's answer envelope failed; answering in the unified shape");
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
