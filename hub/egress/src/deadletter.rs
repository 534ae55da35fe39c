//! Writing a dead letter: the original record, untouched, inside a `MessageDeadLettered`
//! contract record on `hub.message.deadlettered.v1`, then indexed in the state store.
//!
//! The record is built as an Avro value directly (not through the JSON shape the mappings
//! use) because the original payload is binary Avro and must be kept byte for byte.

use std::collections::HashMap;

use apache_avro::types::Value as Avro;
use hub_bus::{now_shanghai, Delivery, Envelope, Producer};
use hub_contracts::Contract;
use hub_state::{DeadLetter, StateStore};
use rdkafka::message::Headers;
use uuid::Uuid;

use crate::header;

/// The dead-letter topic (the `hub/message_deadlettered.v1` contract).
pub const DEAD_LETTER_TOPIC: &str = "hub.message.deadlettered.v1";

/// The value of the [`header::PAYLOAD_SEALED`] header: the payload is the UTF-8 text of one
/// SM4-GCM field ciphertext (`sm4gcm:v1:<key id>:…`) of the original bytes.
pub const SEALED_PAYLOAD_SCHEME: &str = "sm4gcm:v1";

/// Seals a raw payload that cannot be sealed field by field (a pulled partner item, in the
/// partner's own shape) as a whole, for `context` (its source, `pull/<partner>/pull.<job>`).
/// The payload must be UTF-8 (the poller's items are JSON).
pub fn seal_payload(
    cipher: &hub_security::field::FieldCipher,
    context: &str,
    payload: &[u8],
) -> Result<Vec<u8>, hub_security::CryptoError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| hub_security::CryptoError::Format("the payload is not UTF-8".into()))?;
    Ok(cipher.seal(context, text)?.into_bytes())
}

/// `headers` with [`header::PAYLOAD_SEALED`] added, for a record whose payload
/// [`seal_payload`] sealed.
pub fn mark_sealed(headers: rdkafka::message::OwnedHeaders) -> rdkafka::message::OwnedHeaders {
    headers.insert(rdkafka::message::Header {
        key: header::PAYLOAD_SEALED,
        value: Some(SEALED_PAYLOAD_SCHEME.as_bytes()),
    })
}

/// Is the payload of `d` sealed as a whole ([`mark_sealed`])?
pub fn is_payload_sealed(d: &Delivery) -> bool {
    header_value(d, header::PAYLOAD_SEALED) == Some(SEALED_PAYLOAD_SCHEME.as_bytes())
}

/// Opens what [`seal_payload`] sealed for `context`.
pub fn open_payload(
    cipher: &hub_security::field::FieldCipher,
    context: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, hub_security::CryptoError> {
    let text = std::str::from_utf8(sealed)
        .map_err(|_| hub_security::CryptoError::Format("the sealed payload is not UTF-8".into()))?;
    Ok(cipher.open(context, text)?.into_bytes())
}

/// Why a record is given up.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Stable reason code (`docs/errors.md`).
    pub reason_code: String,
    /// What happened, for people; never payload values.
    pub reason: String,
    /// The partner's business code of the last answer, if any.
    pub partner_code: Option<String>,
    /// The partner's last answer, masked and cut.
    pub partner_answer: Option<String>,
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("DEAD_LETTER_CONTRACT: {0}")]
    Contract(String),
    #[error(transparent)]
    Bus(#[from] hub_bus::BusError),
    #[error(transparent)]
    State(#[from] hub_state::StateError),
}

/// The record's headers as text pairs (header values are ASCII or UTF-8 in this hub). Replay
/// bookkeeping headers are left out so a replay of a replay carries the original's only.
pub fn headers_of(d: &Delivery) -> Vec<(String, Vec<u8>)> {
    let Some(h) = &d.headers else {
        return Vec::new();
    };
    h.iter()
        .filter(|h| h.key != header::REPLAY_ROUTE && h.key != header::REPLAY_OF)
        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
        .collect()
}

/// The value of header `name` of a record, if it has one.
pub fn header_value<'a>(d: &'a Delivery, name: &str) -> Option<&'a [u8]> {
    d.headers
        .as_ref()
        .and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
}

/// Dead-letters `d` for `route` unless that was done already (a record redelivered after a
/// crash); returns the index entry either way.
pub async fn dead_letter(
    contract: &Contract,
    schema_id: u32,
    producer: &Producer,
    state: &StateStore,
    route: &str,
    d: &Delivery,
    f: &Failure,
) -> Result<DeadLetter, DeadLetterError> {
    if let Some(existing) = state
        .dead_letter_for_source(route, &d.topic, d.partition, d.offset)
        .await?
    {
        return Ok(existing);
    }
    let original_id = d
        .envelope
        .as_ref()
        .map(|e| e.message_id)
        .ok()
        .or_else(|| {
            header_value(d, hub_bus::header::MESSAGE_ID)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or_else(Uuid::nil);
    let object_id = d
        .envelope
        .as_ref()
        .map(|e| e.object_id.clone())
        .ok()
        .or_else(|| {
            d.key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
        })
        .unwrap_or_default();
    let now = now_shanghai();
    let headers: HashMap<String, Avro> = headers_of(d)
        .into_iter()
        .map(|(k, v)| (k, Avro::Bytes(v)))
        .collect();
    let optional = |v: Option<Avro>| match v {
        Some(v) => Avro::Union(1, Box::new(v)),
        None => Avro::Union(0, Box::new(Avro::Null)),
    };
    let value = Avro::Record(vec![
        ("original_message_id".into(), Avro::Uuid(original_id)),
        ("route".into(), Avro::String(route.to_string())),
        ("source_topic".into(), Avro::String(d.topic.clone())),
        ("source_partition".into(), Avro::Int(d.partition)),
        ("source_offset".into(), Avro::Long(d.offset)),
        ("reason_code".into(), Avro::String(f.reason_code.clone())),
        ("reason".into(), Avro::String(f.reason.clone())),
        (
            "partner_answer".into(),
            optional(f.partner_answer.clone().map(Avro::String)),
        ),
        (
            "attempts".into(),
            Avro::Int(i32::try_from(f.attempts).unwrap_or(i32::MAX)),
        ),
        (
            "original_key".into(),
            optional(d.key.clone().map(Avro::Bytes)),
        ),
        ("original_headers".into(), Avro::Map(headers)),
        (
            "original_payload".into(),
            Avro::Bytes(d.payload.clone().unwrap_or_default()),
        ),
        (
            "dead_lettered_at".into(),
            Avro::String(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(&contract.schema, value)
        .map_err(|e| DeadLetterError::Contract(e.to_string()))?;
    let framed = hub_contracts::frame(schema_id, &datum);
    let partner = route.split('/').next().unwrap_or(route);
    let mut envelope = Envelope::new(
        "hub.message.deadlettered",
        1,
        "hub",
        partner,
        original_id.to_string(),
        now,
    );
    envelope.causation_id = Some(original_id);
    if let Ok(e) = &d.envelope {
        envelope.correlation_id = e.correlation_id.clone();
        envelope.traceparent = e.traceparent.clone();
    }
    let put = producer.send(DEAD_LETTER_TOPIC, &envelope, &framed).await?;
    let entry = DeadLetter {
        id: envelope.message_id.to_string(),
        route: route.to_string(),
        original_message_id: original_id.to_string(),
        object_id,
        reason_code: f.reason_code.clone(),
        reason: f.reason.clone(),
        partner_code: f.partner_code.clone(),
        attempts: i64::from(f.attempts),
        source_topic: d.topic.clone(),
        source_partition: i64::from(d.partition),
        source_offset: d.offset,
        dlq_topic: DEAD_LETTER_TOPIC.to_string(),
        dlq_partition: i64::from(put.partition),
        dlq_offset: put.offset,
        dead_lettered_at_ms: now.timestamp_millis(),
        status: "pending".into(),
        status_at_ms: None,
        status_by: None,
    };
    state.record_dead_letter(&entry).await?;
    // The message trace: reason and partner codes, never the partner's answer text.
    let mut event = hub_state::TraceEvent::new("dead_lettered", entry.original_message_id.as_str())
        .object(entry.object_id.as_str())
        .detail(serde_json::json!({
            "route": route, "reason_code": entry.reason_code, "partner_code": entry.partner_code,
            "attempts": entry.attempts, "dead_letter_id": entry.id,
            "source": { "topic": entry.source_topic, "partition": entry.source_partition, "offset": entry.source_offset },
            "topic": entry.dlq_topic, "partition": entry.dlq_partition, "offset": entry.dlq_offset,
        }));
    if let Ok(e) = &d.envelope {
        event = event.correlation(e.correlation_id.as_str());
    }
    state.trace_event(event);
    Ok(entry)
}

/// A `MessageDeadLettered` record read back.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub original_message_id: String,
    pub route: String,
    pub source_topic: String,
    pub reason_code: String,
    pub reason: String,
    pub partner_answer: Option<String>,
    pub attempts: i32,
    pub original_key: Option<Vec<u8>>,
    pub original_headers: Vec<(String, Vec<u8>)>,
    pub original_payload: Vec<u8>,
    pub dead_lettered_at: String,
}

/// Decodes a framed `MessageDeadLettered` record.
pub fn decode(contract: &Contract, framed: &[u8]) -> Result<DeadLetterRecord, String> {
    let (_, datum) = hub_contracts::unframe(framed).map_err(|e| e.to_string())?;
    let value = contract.decode(datum).map_err(|e| e.to_string())?;
    let Avro::Record(fields) = value else {
        return Err("not a record".into());
    };
    let mut f: HashMap<String, Avro> = fields.into_iter().collect();
    let mut take = |name: &str| f.remove(name).unwrap_or(Avro::Null);
    fn text(v: Avro) -> String {
        match v {
            Avro::String(s) => s,
            Avro::Uuid(u) => u.to_string(),
            Avro::Union(_, inner) => text(*inner),
            _ => String::new(),
        }
    }
    fn bytes(v: Avro) -> Option<Vec<u8>> {
        match v {
            Avro::Bytes(b) => Some(b),
            Avro::Union(_, inner) => bytes(*inner),
            _ => None,
        }
    }
    let partner_answer = match take("partner_answer") {
        Avro::Union(_, inner) if *inner != Avro::Null => Some(text(*inner)),
        _ => None,
    };
    let mut original_headers: Vec<(String, Vec<u8>)> = match take("original_headers") {
        Avro::Map(m) => m
            .into_iter()
            .map(|(k, v)| (k, bytes(v).unwrap_or_default()))
            .collect(),
        _ => Vec::new(),
    };
    original_headers.sort();
    Ok(DeadLetterRecord {
        original_message_id: text(take("original_message_id")),
        route: text(take("route")),
        source_topic: text(take("source_topic")),
        reason_code: text(take("reason_code")),
        reason: text(take("reason")),
        partner_answer,
        attempts: match take("attempts") {
            Avro::Int(i) => i,
            _ => 0,
        },
        original_key: bytes(take("original_key")),
        original_headers,
        original_payload: bytes(take("original_payload")).unwrap_or_default(),
        dead_lettered_at: text(take("dead_lettered_at")),
    })
}
