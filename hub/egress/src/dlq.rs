//! Operator actions on dead letters (`hub dlq …` and the console): list, show, replay, discard.
//! Replays and discards are written to the audit chain with who did them.

use std::time::Duration;

use hub_bus::{fetch_record, BusSection, Producer};
use hub_contracts::Catalog;
use hub_state::{DeadLetter, DeadLetterFilter, StateStore};
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};

use crate::deadletter::{decode, DeadLetterRecord};
use crate::{header, DEAD_LETTER_TOPIC, REPLAY_TOPIC};

/// Why an operator action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("DLQ_NOT_FOUND: no dead letter `{0}` (or the prefix is not unique)")]
    NotFound(String),
    #[error("DLQ_NOT_PENDING: dead letter `{id}` was already {status}")]
    NotPending { id: String, status: String },
    #[error(
        "DLQ_RECORD_GONE: dead letter `{0}` is no longer on the dead-letter topic (retention)"
    )]
    RecordGone(String),
    #[error("DLQ_RECORD_UNREADABLE: {0}")]
    Unreadable(String),
    #[error("DLQ_REPLAY_NOT_IMPLEMENTED: 批量文件的死信尚不能重放 / dead letters of batch files (`{0}`) cannot be replayed yet: fix the cause, then move the file back into the partner's inbox under a new name, or discard the dead letter")]
    ReplayNotImplemented(String),
    #[error(transparent)]
    Bus(#[from] hub_bus::BusError),
    #[error(transparent)]
    State(#[from] hub_state::StateError),
}

impl DlqError {
    pub fn code(&self) -> &'static str {
        match self {
            DlqError::NotFound(_) => "DLQ_NOT_FOUND",
            DlqError::NotPending { .. } => "DLQ_NOT_PENDING",
            DlqError::RecordGone(_) => "DLQ_RECORD_GONE",
            DlqError::Unreadable(_) => "DLQ_RECORD_UNREADABLE",
            DlqError::ReplayNotImplemented(_) => "DLQ_REPLAY_NOT_IMPLEMENTED",
            DlqError::Bus(e) => e.code(),
            DlqError::State(e) => e.code(),
        }
    }
}

pub async fn list(
    state: &StateStore,
    filter: &DeadLetterFilter,
) -> Result<Vec<DeadLetter>, DlqError> {
    Ok(state.list_dead_letters(filter).await?)
}

async fn find(state: &StateStore, id: &str) -> Result<DeadLetter, DlqError> {
    state
        .dead_letter(id)
        .await?
        .ok_or_else(|| DlqError::NotFound(id.to_string()))
}

async fn fetch(
    bus: &BusSection,
    catalog: &Catalog,
    entry: &DeadLetter,
) -> Result<DeadLetterRecord, DlqError> {
    let partition = i32::try_from(entry.dlq_partition).unwrap_or_default();
    let d = fetch_record(
        bus,
        &entry.dlq_topic,
        partition,
        entry.dlq_offset,
        Duration::from_secs(10),
    )
    .await?
    .ok_or_else(|| DlqError::RecordGone(entry.id.clone()))?;
    let contract = catalog.contract(DEAD_LETTER_TOPIC).ok_or_else(|| {
        DlqError::Unreadable(format!("contract `{DEAD_LETTER_TOPIC}` is not loaded"))
    })?;
    decode(contract, d.payload.as_deref().unwrap_or_default()).map_err(DlqError::Unreadable)
}

/// One dead letter in full: the index entry, its record's headers, and the original message
/// decoded with its contract. Personal fields stay sealed and are shown masked.
pub async fn show(
    bus: &BusSection,
    catalog: &Catalog,
    state: &StateStore,
    id: &str,
) -> Result<Value, DlqError> {
    let entry = find(state, id).await?;
    let record = fetch(bus, catalog, &entry).await?;
    let headers: serde_json::Map<String, Value> = record
        .original_headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    // The original's contract: from its event type and version headers.
    let event = headers
        .get(hub_bus::header::EVENT_TYPE)
        .and_then(Value::as_str);
    let version = headers
        .get(hub_bus::header::CONTRACT_VERSION)
        .and_then(Value::as_str);
    let original = match (event, version) {
        (Some(e), Some(v)) => {
            let topic = format!("{e}.v{v}");
            match catalog.contract(&topic) {
                Some(c) => match hub_pipeline::read_record(
                    catalog,
                    c,
                    c.schema_id(),
                    &record.original_payload,
                ) {
                    Ok(mut v) => {
                        // Personal fields by the contract first (sealed: key id only; clear:
                        // masked by kind), then anything else that looks sealed.
                        hub_pipeline::pii::mask_record(c, &mut v);
                        mask_sealed(&mut v);
                        v
                    }
                    Err(e) => json!({ "undecodable": e.to_string() }),
                },
                None => json!({ "undecodable": format!("contract `{topic}` is not loaded") }),
            }
        }
        _ => json!({ "undecodable": "the original has no event type headers" }),
    };
    Ok(json!({
        "id": entry.id,
        "route": entry.route,
        "status": entry.status,
        "status_by": entry.status_by,
        "status_at_ms": entry.status_at_ms,
        "reason_code": entry.reason_code,
        "reason": entry.reason,
        "partner_code": entry.partner_code,
        "partner_answer": record.partner_answer,
        "attempts": entry.attempts,
        "object_id": entry.object_id,
        "original_message_id": entry.original_message_id,
        "source": format!("{}[{}]@{}", entry.source_topic, entry.source_partition, entry.source_offset),
        "dead_letter": format!("{}[{}]@{}", entry.dlq_topic, entry.dlq_partition, entry.dlq_offset),
        "dead_lettered_at": record.dead_lettered_at,
        "original_headers": headers,
        "original_payload_bytes": record.original_payload.len(),
        "original": original,
    }))
}

/// Sealed personal values are shown as `sm4gcm:v1:<key id>:…` only; a value that merely starts
/// like one (clear text behind the prefix) is not shown at all.
fn mask_sealed(v: &mut Value) {
    match v {
        Value::String(s)
            if hub_security::field::FieldCipher::is_sealed(s)
                && !hub_pipeline::pii::is_shown_sealed(s) =>
        {
            *s = match hub_security::field::FieldCipher::sealed_label(s) {
                Some(label) => format!("{label}{}", hub_pipeline::pii::SHOWN_SEALED),
                None => "…（格式不符，已隐藏 / malformed, hidden）".to_string(),
            };
        }
        Value::Array(items) => items.iter_mut().for_each(mask_sealed),
        Value::Object(o) => o.values_mut().for_each(mask_sealed),
        _ => {}
    }
}

/// Replays a pending dead letter: the original record, with its original id and headers, goes
/// to the replay topic for its route, and the dead letter is marked replayed by `actor`.
pub async fn replay(
    bus: &BusSection,
    catalog: &Catalog,
    producer: &Producer,
    state: &StateStore,
    id: &str,
    actor: &str,
) -> Result<DeadLetter, DlqError> {
    let entry = find(state, id).await?;
    if entry.status != "pending" {
        return Err(DlqError::NotPending {
            id: entry.id,
            status: entry.status,
        });
    }
    // Nothing consumes the replay topic for an SFTP batch (`<partner>/batch.<name>`): refused,
    // rather than marked replayed and then never read.
    if entry.route.contains("/batch.") {
        return Err(DlqError::ReplayNotImplemented(entry.route));
    }
    let record = fetch(bus, catalog, &entry).await?;
    // Claim it first so two operators cannot replay it twice.
    if !state
        .settle_dead_letter(&entry.id, "replayed", actor)
        .await?
    {
        let now = find(state, &entry.id).await?;
        return Err(DlqError::NotPending {
            id: now.id,
            status: now.status,
        });
    }
    let mut headers = OwnedHeaders::new_with_capacity(record.original_headers.len() + 2);
    for (k, v) in &record.original_headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    headers = headers
        .insert(Header {
            key: header::REPLAY_ROUTE,
            value: Some(entry.route.as_bytes()),
        })
        .insert(Header {
            key: header::REPLAY_OF,
            value: Some(entry.id.as_bytes()),
        });
    let sent = producer
        .send_raw(
            REPLAY_TOPIC,
            record.original_key.as_deref(),
            &record.original_payload,
            headers,
        )
        .await;
    let put = match sent {
        Ok(put) => put,
        Err(e) => {
            state.reopen_dead_letter(&entry.id).await?;
            return Err(e.into());
        }
    };
    // The message trace, written at once: an operator's replay is rare, and the command line
    // that does it runs no background trace writer.
    let replayed = hub_state::TraceEvent::new("replayed", entry.original_message_id.as_str())
        .object(entry.object_id.as_str())
        .actor(actor)
        .detail(json!({
            "route": entry.route, "dead_letter_id": entry.id, "reason_code": entry.reason_code,
            "topic": put.topic, "partition": put.partition, "offset": put.offset,
        }));
    if let Err(e) = state.record_trace(&[replayed]).await {
        tracing::warn!(code = e.code(), error = %e, "replay not recorded in the message trace");
    }
    state
        .append_audit(
            actor,
            "dlq.replay",
            &entry.route,
            &json!({ "dead_letter": entry.id, "original_message_id": entry.original_message_id, "reason_code": entry.reason_code }),
        )
        .await?;
    find(state, &entry.id).await
}

/// Discards a pending dead letter (it stays on the topic; it is marked and audited).
pub async fn discard(
    state: &StateStore,
    id: &str,
    actor: &str,
    note: &str,
) -> Result<DeadLetter, DlqError> {
    let entry = find(state, id).await?;
    if !state
        .settle_dead_letter(&entry.id, "discarded", actor)
        .await?
    {
        let now = find(state, &entry.id).await?;
        return Err(DlqError::NotPending {
            id: now.id,
            status: now.status,
        });
    }
    state
        .append_audit(
            actor,
            "dlq.discard",
            &entry.route,
            &json!({ "dead_letter": entry.id, "original_message_id": entry.original_message_id, "note": note }),
        )
        .await?;
    find(state, &entry.id).await
}
