//! Tickets as the API shows them. Personal fields (the caller's name, phone and address; the
//! names and phones of staff in the history) are opened only for a caller whose token may see
//! personal data; everyone else gets the masked copy stored beside them, so their reads never
//! decrypt anything.

use app_kit::api::ApiError;
use axum::http::StatusCode;
use hub_security::field::FieldCipher;
use serde_json::{json, Value};

use crate::kinds::{Contracts, Kind};
use crate::machine;
use crate::store::{Event, Ticket};

/// How personal fields are shown to this caller.
pub enum Personal<'a> {
    Masked,
    Clear {
        cipher: &'a FieldCipher,
        contracts: &'a Contracts,
    },
}

fn unreadable(e: &hub_security::CryptoError) -> ApiError {
    tracing::error!(code = "HOTLINE_PERSONAL_DATA_UNREADABLE", error = %e, "a sealed field does not open");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "HOTLINE_PERSONAL_DATA_UNREADABLE",
        "个人信息无法解密（密钥环缺少密钥或数据已损坏）",
        "personal data cannot be decrypted (a key is missing from the key ring, or the value is damaged)",
    )
}

fn deadline(t: &Ticket, now_ms: i64) -> Value {
    let status = t.deadline_status(now_ms);
    let (which, at) = match t.status() {
        machine::Status::Dispatched => ("sign", Some(&t.sign_deadline)),
        machine::Status::Signed | machine::Status::ExtensionRequested => {
            ("handle", Some(&t.handle_deadline))
        }
        _ => ("none", None),
    };
    json!({
        "status": status.as_str(),
        "status_zh": status.zh(),
        "kind": which,
        "at": at,
    })
}

/// A line of the ticket list (no personal fields).
pub fn summary(t: &Ticket, now_ms: i64) -> Value {
    let status = t.status();
    json!({
        "ticket_no": t.ticket_no,
        "status": status.as_str(),
        "status_zh": status.zh(),
        "title": t.title,
        "channel": t.channel,
        "urgency": t.urgency,
        "category_code": t.category_code,
        "category_name": t.category_name,
        "district_code": t.district_code,
        "handling_unit_code": t.handling_unit_code,
        "dispatched_at": t.dispatched_at,
        "sign_deadline": t.sign_deadline,
        "handle_deadline": t.handle_deadline,
        "deadline": deadline(t, now_ms),
        "urge_count": t.urge_count,
        "version": t.version,
    })
}

/// A ticket with everything known about it, and its history.
/// `queued` names the outbound message ids still waiting in the outbox.
pub fn detail(
    t: &Ticket,
    events: &[Event],
    queued: &std::collections::BTreeSet<String>,
    personal: &Personal<'_>,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let dispatched = Kind::Dispatched.contract_topic();
    let person = |field: &str, sealed: &Option<String>, masked: &Option<String>| match personal {
        Personal::Masked => Ok(masked.clone()),
        Personal::Clear { cipher, .. } => sealed
            .as_deref()
            .map(|s| {
                if FieldCipher::is_sealed(s) {
                    cipher.open(&format!("{dispatched}/{field}"), s)
                } else {
                    Ok(s.to_string())
                }
            })
            .transpose()
            .map_err(|e| unreadable(&e)),
    };
    let mut v = summary(t, now_ms);
    let status = t.status();
    let extra = json!({
        "appeal_content": t.appeal_content,
        "address": person("address", &t.address_sealed, &t.address_masked)?,
        "caller_name": person("caller_name", &t.caller_name_sealed, &t.caller_name_masked)?,
        "caller_phone": person("caller_phone", &t.caller_phone_sealed, &t.caller_phone_masked)?,
        "personal_data": match personal { Personal::Masked => "masked", Personal::Clear { .. } => "clear" },
        "handling_unit_name": t.handling_unit_name,
        "requested_deadline": t.requested_deadline,
        "attachments": t.attachments.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
        "signed_at": t.signed_at,
        "returned_at": t.returned_at,
        "extension_requested_at": t.extension_requested_at,
        "replied_at": t.replied_at,
        "closed_at": t.closed_at,
        "close_kind": t.close_kind,
        "last_urged_at": t.last_urged_at,
        "satisfaction": t.satisfaction,
        "visit_resolution": t.visit_resolution,
        "visited_at": t.visited_at,
        "dispatch_count": t.dispatch_count,
        "correlation_id": t.correlation_id,
        "allowed_actions": machine::allowed(status).iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "history": events
            .iter()
            .map(|e| history(e, queued, personal))
            .collect::<Result<Vec<_>, _>>()?,
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Ok(v)
}

fn history(
    e: &Event,
    queued: &std::collections::BTreeSet<String>,
    personal: &Personal<'_>,
) -> Result<Value, ApiError> {
    let record = match personal {
        Personal::Masked => serde_json::from_str::<Value>(&e.record_masked),
        Personal::Clear { .. } => serde_json::from_str::<Value>(&e.record),
    }
    .unwrap_or(Value::Null);
    let record = match (personal, record) {
        (Personal::Clear { cipher, contracts }, mut r) => {
            if let Some(contract) = contracts.by_topic(&e.contract_topic) {
                hub_pipeline::pii::open_record(cipher, contract, &mut r)
                    .map_err(|err| unreadable(&err))?;
            }
            r
        }
        (Personal::Masked, r) => r,
    };
    Ok(json!({
        "message_id": e.message_id,
        "kind": e.kind,
        "direction": e.direction,
        "occurred_at": e.occurred_at,
        "actor": e.actor,
        "causation_id": e.causation_id,
        // Our own events: still in the outbox, or produced to Kafka.
        "delivery": (e.direction == "outbound").then(|| {
            if queued.contains(&e.message_id) {
                "queued"
            } else {
                "produced"
            }
        }),
        "record": record,
    }))
}
