//! What case handlers do to a ticket: sign, return, request an extension, reply.
//!
//! One database transaction per action: read the ticket, check the state machine, build the
//! outbound contract record (personal fields sealed with `hub_pipeline::pii::seal_record`,
//! validated and framed with the contract's schema id), write the new ticket state
//! (compare-and-set on its version), the ticket event and the outbox row, commit. The relay
//! produces the row afterwards with the message id fixed here. The envelope names the ticket as
//! object (the Kafka key), the dispatch message that brought the ticket as causation, and
//! carries the case's correlation id over.

use std::sync::Arc;

use app_kit::api::ApiError;
use app_kit::auth::Caller;
use app_kit::db::{now_ms, Db};
use axum::http::StatusCode;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use hub_bus::{now_shanghai, shanghai, Envelope};
use hub_security::field::FieldCipher;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tracing::info;
use uuid::Uuid;

use crate::config::TopicsSection;
use crate::kinds::{Contracts, Kind};
use crate::machine::{self, Action, Status};
use crate::store::{self, Event, Ticket};

/// `envelope.source_adapter` of what this app produces.
pub const SOURCE_ADAPTER: &str = "hotline-app";

/// 签收. Body optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// 签收人 (personal data: sealed on Kafka, masked for callers without the right).
    #[serde(default)]
    pub signer_name: Option<String>,
}

/// 退单.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// 退单理由, required.
    pub reason: String,
    #[serde(default)]
    pub suggested_unit_code: Option<String>,
    #[serde(default)]
    pub suggested_unit_name: Option<String>,
    /// 经办人 (personal data).
    #[serde(default)]
    pub operator_name: Option<String>,
}

/// 延期申请.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRequest {
    /// RFC 3339 with offset, later than the current handling deadline.
    pub requested_deadline: String,
    pub reason: String,
    /// 申请人 (personal data).
    #[serde(default)]
    pub applicant_name: Option<String>,
}

/// One attached file of a reply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentInput {
    pub file_id: String,
    pub file_name: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<i64>,
    #[serde(default)]
    pub sm3_digest: Option<String>,
}

/// 办结回复.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// 办理结果, required.
    pub result: String,
    /// RESOLVED, PARTLY_RESOLVED or UNRESOLVED.
    #[serde(default)]
    pub resolution: Option<String>,
    pub caller_contacted: bool,
    /// 承办人 (personal data), required by the contract.
    pub handler_name: String,
    /// 承办人电话 (personal data).
    #[serde(default)]
    pub handler_phone: Option<String>,
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentInput>>,
}

/// One of the four actions with its body.
#[derive(Debug, Clone)]
pub enum ActionRequest {
    Sign(SignRequest),
    Return(ReturnRequest),
    RequestExtension(ExtensionRequest),
    Reply(ReplyRequest),
}

impl ActionRequest {
    pub fn action(&self) -> Action {
        match self {
            ActionRequest::Sign(_) => Action::Sign,
            ActionRequest::Return(_) => Action::Return,
            ActionRequest::RequestExtension(_) => Action::RequestExtension,
            ActionRequest::Reply(_) => Action::Reply,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            ActionRequest::Sign(_) => Kind::Signed,
            ActionRequest::Return(_) => Kind::Returned,
            ActionRequest::RequestExtension(_) => Kind::ExtensionRequested,
            ActionRequest::Reply(_) => Kind::Replied,
        }
    }
}

/// What an action needs from the app.
pub struct ActionDeps {
    pub db: Db,
    pub contracts: Arc<Contracts>,
    pub cipher: Arc<FieldCipher>,
    pub topics: TopicsSection,
    pub partner: String,
    pub return_window_ms: i64,
    /// Wakes the outbox relay after a commit.
    pub relay: Arc<Notify>,
}

/// The result of an action.
#[derive(Debug, Clone)]
pub struct Done {
    pub ticket: Ticket,
    pub message_id: Uuid,
    pub topic: String,
}

fn invalid(fields: Vec<Value>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "HOTLINE_INVALID_REQUEST",
        "请求内容不符合要求",
        "the request does not meet the requirements",
    )
    .with_detail(json!({ "fields": fields }))
}

fn field(path: &str, zh: &str, en: &str) -> Value {
    json!({ "field": path, "message_zh": zh, "message_en": en })
}

/// Trimmed text; `None` when absent or blank.
fn clean(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Checks the body alone (before the ticket is read). Every problem at once.
fn validate(req: &ActionRequest) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    let mut required = |path: &str, v: &str, zh: &str, en: &str| {
        if v.trim().is_empty() {
            problems.push(field(path, zh, en));
        }
    };
    match req {
        ActionRequest::Sign(_) => {}
        ActionRequest::Return(r) => {
            required(
                "reason",
                &r.reason,
                "退单理由不能为空",
                "the return reason is required",
            );
        }
        ActionRequest::RequestExtension(r) => {
            required(
                "reason",
                &r.reason,
                "延期理由不能为空",
                "the extension reason is required",
            );
            if DateTime::parse_from_rfc3339(r.requested_deadline.trim()).is_err() {
                problems.push(field(
                    "requested_deadline",
                    "申请延期时限须为带时区的 RFC 3339 时间，如 2026-12-05T17:00:00+08:00",
                    "requested_deadline must be RFC 3339 with an offset, e.g. 2026-12-05T17:00:00+08:00",
                ));
            }
        }
        ActionRequest::Reply(r) => {
            required(
                "result",
                &r.result,
                "办理结果不能为空",
                "the handling result is required",
            );
            required(
                "handler_name",
                &r.handler_name,
                "承办人不能为空",
                "the handler's name is required",
            );
            for (i, a) in r.attachments.iter().flatten().enumerate() {
                if a.file_id.trim().is_empty() || a.file_name.trim().is_empty() {
                    problems.push(field(
                        &format!("attachments[{i}]"),
                        "附件须有文件标识和文件名",
                        "an attachment needs a file id and a file name",
                    ));
                }
                let digest_ok = a
                    .sm3_digest
                    .as_deref()
                    .is_none_or(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()));
                if !digest_ok {
                    problems.push(field(
                        &format!("attachments[{i}].sm3_digest"),
                        "SM3 摘要须为 64 位十六进制",
                        "the SM3 digest must be 64 hex digits",
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems))
    }
}

fn illegal(status: Status, action: Action) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "HOTLINE_ILLEGAL_TRANSITION",
        format!("工单当前状态为“{}”，不能{}", status.zh(), action.zh()),
        format!(
            "a ticket in status {} cannot be given the action `{}`",
            status.as_str(),
            action.as_str()
        ),
    )
    .with_detail(json!({
        "status": status.as_str(),
        "action": action.as_str(),
        "allowed": machine::allowed(status).iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    }))
}

pub fn not_found(ticket_no: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "HOTLINE_TICKET_NOT_FOUND",
        "工单不存在",
        "no such ticket",
    )
    .with_detail(json!({ "ticket_no": ticket_no }))
}

/// The outbound record of `req` on `t`, with personal values in clear.
fn record(req: &ActionRequest, t: &Ticket, now: &str) -> Value {
    let base = |extra: Value| {
        let mut r = json!({
            "ticket_no": t.ticket_no,
            "handling_unit_code": t.handling_unit_code,
            "handling_unit_name": t.handling_unit_name,
            "occurred_at": now,
        });
        if let (Some(o), Value::Object(e)) = (r.as_object_mut(), extra) {
            o.extend(e);
        }
        r
    };
    match req {
        ActionRequest::Sign(s) => base(json!({
            "signer_name": clean(&s.signer_name),
            "signed_at": now,
        })),
        ActionRequest::Return(r) => base(json!({
            "reason": r.reason.trim(),
            "suggested_unit_name": clean(&r.suggested_unit_name),
            "suggested_unit_code": clean(&r.suggested_unit_code),
            "operator_name": clean(&r.operator_name),
            "returned_at": now,
        })),
        ActionRequest::RequestExtension(e) => base(json!({
            "current_deadline": t.handle_deadline,
            "requested_deadline": DateTime::parse_from_rfc3339(e.requested_deadline.trim())
                .map(|d| rfc3339(&d.with_timezone(&shanghai())))
                .unwrap_or_default(),
            "reason": e.reason.trim(),
            "applicant_name": clean(&e.applicant_name),
            "requested_at": now,
        })),
        ActionRequest::Reply(r) => base(json!({
            "result": r.result.trim(),
            "resolution": clean(&r.resolution),
            "caller_contacted": r.caller_contacted,
            "handler_name": r.handler_name.trim(),
            "handler_phone": clean(&r.handler_phone),
            "attachments": r.attachments.as_ref().map(|list| list.iter().map(|a| json!({
                "file_id": a.file_id.trim(),
                "file_name": a.file_name.trim(),
                "content_type": clean(&a.content_type),
                "size_bytes": a.size_bytes,
                "sm3_digest": a.sm3_digest.as_ref().map(|d| d.to_ascii_lowercase()),
            })).collect::<Vec<_>>()),
            "replied_at": now,
        })),
    }
}

/// Performs `req` on ticket `ticket_no` for `caller` (who must be a handler).
pub async fn perform(
    deps: &ActionDeps,
    caller: &Caller,
    ticket_no: &str,
    req: ActionRequest,
) -> Result<Done, ApiError> {
    caller.require(app_kit::auth::Role::Handler)?;
    validate(&req)?;
    let action = req.action();
    let kind = req.kind();
    let db_err = |e: &dyn std::fmt::Display| ApiError::unavailable(e);
    let mut tx = deps.db.begin().await.map_err(|e| db_err(&e))?;
    let t = store::ticket(&mut tx, ticket_no)
        .await
        .map_err(|e| db_err(&e))?
        .ok_or_else(|| not_found(ticket_no))?;
    let status = t.status();
    let next = machine::next(status, action).ok_or_else(|| illegal(status, action))?;
    let now = now_shanghai();
    let now_text = rfc3339(&now);
    if action == Action::Return
        && !machine::return_in_window(status, t.dispatched_at_ms, now_ms(), deps.return_window_ms)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "HOTLINE_RETURN_WINDOW_CLOSED",
            "已超过退单时限，不能退单",
            "the window for returning this ticket has passed",
        )
        .with_detail(json!({
            "dispatched_at": t.dispatched_at,
            "window_hours": deps.return_window_ms / 3_600_000,
        })));
    }
    if let ActionRequest::RequestExtension(e) = &req {
        let requested = DateTime::parse_from_rfc3339(e.requested_deadline.trim())
            .map(|d| d.timestamp_millis())
            .unwrap_or(i64::MIN);
        if requested <= t.handle_deadline_ms {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "HOTLINE_EXTENSION_NOT_LATER",
                "申请延期时限须晚于当前办理时限",
                "the requested deadline must be later than the current handling deadline",
            )
            .with_detail(json!({ "current_deadline": t.handle_deadline })));
        }
    }

    let contract = deps.contracts.get(kind);
    let clear = record(&req, &t, &now_text);
    let mut sealed = clear.clone();
    hub_pipeline::pii::seal_record(&deps.cipher, contract, &mut sealed).map_err(|e| {
        tracing::error!(code = "PERSONAL_DATA_UNPROTECTED", error = %e, "cannot seal personal fields");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "PERSONAL_DATA_UNPROTECTED",
            "个人信息无法加密，操作未执行",
            "personal fields could not be encrypted; nothing was done",
        )
    })?;
    let datum = contract.encode(&sealed).map_err(|errors| {
        invalid(
            errors
                .iter()
                .map(|e| {
                    field(
                        &e.path,
                        "不符合事件契约",
                        &format!("breaks the contract: {}", e.problem),
                    )
                })
                .collect(),
        )
    })?;
    let framed = hub_contracts::frame(contract.schema_id(), &datum);
    let mut masked = clear;
    app_kit::personal::mask_record(contract, &mut masked);

    let (event_type, contract_version) = hub_pipeline::split_topic(kind.contract_topic());
    let envelope = Envelope {
        message_id: Uuid::now_v7(),
        event_type,
        contract_version,
        source_adapter: SOURCE_ADAPTER.into(),
        partner: deps.partner.clone(),
        object_id: t.ticket_no.clone(),
        occurred_at: now,
        received_at: now,
        correlation_id: t.correlation_id.clone(),
        causation_id: Uuid::parse_str(&t.dispatch_message_id).ok(),
        traceparent: None,
        tracestate: None,
    };

    let mut after = t.clone();
    after.status = next.as_str().into();
    after.active_deadline_ms = next.active_deadline(t.sign_deadline_ms, t.handle_deadline_ms);
    after.version = t.version + 1;
    match &req {
        ActionRequest::Sign(_) => after.signed_at = Some(now_text.clone()),
        ActionRequest::Return(_) => after.returned_at = Some(now_text.clone()),
        ActionRequest::RequestExtension(_) => {
            after.extension_requested_at = Some(now_text.clone());
            after.requested_deadline = sealed
                .get("requested_deadline")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        ActionRequest::Reply(_) => after.replied_at = Some(now_text.clone()),
    }
    if !store::update_ticket(&mut tx, &after, t.version)
        .await
        .map_err(|e| db_err(&e))?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "HOTLINE_CONFLICT",
            "工单已被同时修改，请刷新后重试",
            "the ticket was changed at the same time; reload and retry",
        ));
    }
    let topic = deps.topics.of(kind).to_string();
    store::insert_event(
        &mut tx,
        &Event {
            message_id: envelope.message_id.to_string(),
            ticket_no: t.ticket_no.clone(),
            kind: kind.as_str().into(),
            direction: "outbound".into(),
            contract_topic: kind.contract_topic().into(),
            occurred_at: now_text.clone(),
            occurred_at_ms: now.timestamp_millis(),
            actor: caller.name.clone(),
            correlation_id: envelope.correlation_id.clone(),
            causation_id: envelope.causation_id.map(|c| c.to_string()),
            record: sealed.to_string(),
            record_masked: masked.to_string(),
        },
    )
    .await
    .map_err(|e| db_err(&e))?;
    app_kit::outbox::enqueue(&mut tx, &topic, &envelope, &framed)
        .await
        .map_err(|e| db_err(&e))?;
    tx.commit().await.map_err(|e| db_err(&e))?;
    deps.relay.notify_one();
    info!(
        ticket_no = %t.ticket_no,
        action = action.as_str(),
        from = status.as_str(),
        to = next.as_str(),
        caller = %caller.name,
        message_id = %envelope.message_id,
        "ticket action"
    );
    Ok(Done {
        ticket: after,
        message_id: envelope.message_id,
        topic,
    })
}
