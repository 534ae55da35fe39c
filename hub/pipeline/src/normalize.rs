//! Partner bytes → a sealed, validated contract record in the Confluent wire format.
//!
//! The gateway (pushes) and the poller (pulls) both call [`normalize`], so a message reaches
//! Kafka the same way whichever side started the exchange.

use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use hub_bus::{now_shanghai, Envelope};
use hub_contracts::{Catalog, Contract, RecordError};
use hub_mapping::{Direction, Mapping, MappingError};
use hub_security::field::FieldCipher;
use hub_security::CryptoError;
use serde_json::Value;

use crate::pii::seal_record;

/// A partner message ready for the bus.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The contract's topic.
    pub topic: String,
    /// The record's key field: the partner's id of the object (ticket number, …).
    pub object_id: String,
    /// `occurred_at` of the record, or now when the contract has none.
    pub occurred_at: DateTime<FixedOffset>,
    /// Magic byte, schema id, Avro binary.
    pub framed: Vec<u8>,
}

impl Normalized {
    /// A fresh envelope for this message: `source_adapter` is the partner family
    /// (`hotline12345`), `partner` the partner system (the app id, or the pull job).
    pub fn envelope(&self, source_adapter: &str, partner: &str) -> Envelope {
        let (event_type, version) = split_topic(&self.topic);
        Envelope::new(
            event_type,
            version,
            source_adapter,
            partner,
            self.object_id.clone(),
            self.occurred_at,
        )
    }
}

/// Why a partner message could not be normalized. None of these is helped by retrying the same
/// bytes: the sender must be told (gateway) or the item dead-lettered (poller).
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// The mapping is not an inbound one, or its contract is not loaded.
    #[error("NORMALIZE_NO_CONTRACT: mapping `{0}` has no loaded contract to map into")]
    NoContract(String),
    /// Reading, running or validating the mapping failed (the error says where).
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A personal field could not be sealed: the message must not reach Kafka.
    #[error("PERSONAL_DATA_UNPROTECTED: {0}")]
    Unprotected(#[source] CryptoError),
    /// The sealed record no longer fits the contract (a sealed value in a constrained field).
    #[error("MAPPING_OUTPUT_INVALID: the sealed record does not fit the contract")]
    Invalid(Vec<RecordError>),
}

impl NormalizeError {
    /// The stable code (`docs/errors.md`), for dead letters, replies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::NoContract(_) => "NORMALIZE_NO_CONTRACT",
            NormalizeError::Mapping(m) => m.code,
            NormalizeError::Unprotected(_) => "PERSONAL_DATA_UNPROTECTED",
            NormalizeError::Invalid(_) => "MAPPING_OUTPUT_INVALID",
        }
    }
}

/// Maps `body` with the inbound `mapping`, validates it, seals its personal fields and frames
/// the Avro encoding with `schema_id(contract)`.
pub fn normalize(
    mapping: &Mapping,
    catalog: &Catalog,
    cipher: &FieldCipher,
    schema_id: impl Fn(&Contract) -> u32,
    body: &[u8],
) -> Result<Normalized, NormalizeError> {
    normalize_with(mapping, catalog, cipher, schema_id, body, |_| {})
}

/// As [`normalize`], with `complete` applied to what the mapping made before it is validated:
/// the hub's own fields of a record, such as a reply's `request_id` and `outcome`.
pub fn normalize_with(
    mapping: &Mapping,
    catalog: &Catalog,
    cipher: &FieldCipher,
    schema_id: impl Fn(&Contract) -> u32,
    body: &[u8],
    complete: impl FnOnce(&mut Value),
) -> Result<Normalized, NormalizeError> {
    let contract = catalog
        .contract(&mapping.contract)
        .filter(|_| mapping.direction == Direction::Inbound)
        .ok_or_else(|| {
            NormalizeError::NoContract(format!("{}/{}", mapping.partner, mapping.name))
        })?;
    let started = Instant::now();
    // Validation and encoding are one pass over the record (the Avro value is built once, by
    // `encode` after sealing); the mapping's own check runs only to explain a failure, on the
    // record as the program made it, so every refusal is the one it was with two passes.
    let mut record = mapping.inbound_unvalidated(body)?;
    complete(&mut record);
    let started = stage_done("map", started);
    seal_and_frame(
        contract,
        cipher,
        schema_id(contract),
        record,
        started,
        |record| mapping.validate(record, catalog),
    )
}

/// A record the hub made itself (not a partner's bytes through a mapping), sealed, validated
/// and framed like a mapped one: e.g. the reply that says a request failed.
pub fn frame_record(
    contract: &Contract,
    cipher: &FieldCipher,
    schema_id: u32,
    record: Value,
) -> Result<Normalized, NormalizeError> {
    seal_and_frame(contract, cipher, schema_id, record, Instant::now(), |_| {
        Ok(())
    })
}

/// Seals, encodes and frames `record` of `contract`; `explain` names what is wrong with the
/// record as it was before sealing when it does not encode.
fn seal_and_frame(
    contract: &Contract,
    cipher: &FieldCipher,
    schema_id: u32,
    mut record: Value,
    started: Instant,
    explain: impl Fn(&Value) -> Result<(), MappingError>,
) -> Result<Normalized, NormalizeError> {
    let unsealed = (!contract.pii.is_empty()).then(|| record.clone());
    let object_id = record
        .get(&contract.declaration.key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let occurred_at = record
        .get("occurred_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(now_shanghai);
    if let Err(e) = seal_record(cipher, contract, &mut record) {
        explain(unsealed.as_ref().unwrap_or(&record))?;
        return Err(NormalizeError::Unprotected(e));
    }
    let started = stage_done("seal", started);
    let datum = match contract.encode(&record) {
        Ok(datum) => datum,
        Err(errors) => {
            explain(unsealed.as_ref().unwrap_or(&record))?;
            return Err(NormalizeError::Invalid(errors));
        }
    };
    let framed = hub_contracts::frame(schema_id, &datum);
    stage_done("encode", started);
    Ok(Normalized {
        topic: contract.declaration.topic.clone(),
        object_id,
        occurred_at,
        framed,
    })
}

/// Records the time since `since` as one `stage` of normalizing an inbound message
/// (`hub_ingest_stage_seconds`; the gateway records its own stages the same way) and returns
/// now, the start of the next stage.
pub fn stage_done(stage: &'static str, since: Instant) -> Instant {
    let now = Instant::now();
    metrics::histogram!("hub_ingest_stage_seconds", "stage" => stage)
        .record(now.duration_since(since).as_secs_f64());
    now
}

/// `hotline.ticket.dispatched.v1` → (`hotline.ticket.dispatched`, 1).
pub fn split_topic(topic: &str) -> (String, u32) {
    match topic.rsplit_once(".v") {
        Some((event, v)) if v.parse::<u32>().is_ok() => (event.to_string(), v.parse().unwrap_or(1)),
        _ => (topic.to_string(), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::split_topic;

    #[test]
    fn topics_split_into_event_type_and_major_version() {
        assert_eq!(
            split_topic("hotline.ticket.dispatched.v1"),
            ("hotline.ticket.dispatched".to_string(), 1)
        );
        assert_eq!(split_topic("no.version"), ("no.version".to_string(), 1));
    }
}
