//! A record read from Kafka → the partner's payload, for the egress.
//!
//! The record is decoded from the Confluent wire format (an older writer version of the
//! contract is resolved into the current one), its personal fields are opened (the partner
//! receives them in clear over TLS; a protocol that encrypts bodies encrypts the whole payload
//! afterwards), and the outbound mapping writes the partner's bytes.

use hub_contracts::{unframe, Catalog, Contract};
use hub_mapping::{Direction, Mapping, MappingError};
use hub_security::field::FieldCipher;
use hub_security::CryptoError;
use serde_json::Value;

use crate::pii::open_record;

/// A partner payload with its content type.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: String,
}

/// Why a record could not be turned into the partner's payload. Each is permanent for that
/// record: it goes to the dead-letter topic with the code.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Not the Confluent wire format, or a schema id this contract never had, or Avro that does
    /// not decode with it.
    #[error("EGRESS_MALFORMED: {0}")]
    Malformed(String),
    /// A sealed personal field could not be opened (unknown key id, tampered value).
    #[error("EGRESS_PERSONAL_DATA_UNREADABLE: {0}")]
    Unreadable(#[source] CryptoError),
    /// The outbound mapping failed on this record.
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

impl OutboundError {
    /// The stable reason code, for dead letters and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            OutboundError::Malformed(_) => "EGRESS_MALFORMED",
            OutboundError::Unreadable(_) => "EGRESS_PERSONAL_DATA_UNREADABLE",
            OutboundError::Mapping(m) => m.code,
        }
    }
}

/// Decodes a framed message of `contract` into its JSON record (personal fields still sealed).
/// `schema_id` is the id the hub frames the current version with.
pub fn read_record(
    catalog: &Catalog,
    contract: &Contract,
    schema_id: u32,
    framed: &[u8],
) -> Result<Value, OutboundError> {
    let (id, datum) = unframe(framed).map_err(|e| OutboundError::Malformed(e.to_string()))?;
    let writer = if id == schema_id || id == contract.schema_id() {
        None
    } else {
        // An older version of the same contract, kept in contracts/history.
        Some(
            catalog
                .history
                .get(&contract.declaration.topic)
                .into_iter()
                .flatten()
                .find(|h| hub_contracts::schema_id(&h.schema) == id)
                .map(|h| &h.schema)
                .ok_or_else(|| {
                    OutboundError::Malformed(format!(
                        "schema id {id} is not a version of {}",
                        contract.declaration.topic
                    ))
                })?,
        )
    };
    contract
        .decode_json(writer, datum)
        .map_err(|e| OutboundError::Malformed(format!("Avro does not decode: {e}")))
}

/// Decodes, opens the personal fields and runs the outbound `mapping`.
pub fn render(
    mapping: &Mapping,
    catalog: &Catalog,
    contract: &Contract,
    cipher: &FieldCipher,
    schema_id: u32,
    framed: &[u8],
) -> Result<Rendered, OutboundError> {
    debug_assert_eq!(mapping.direction, Direction::Outbound);
    let mut record = read_record(catalog, contract, schema_id, framed)?;
    open_record(cipher, contract, &mut record).map_err(OutboundError::Unreadable)?;
    let body = mapping.outbound(&record)?;
    Ok(Rendered {
        body,
        content_type: mapping.content_type(),
    })
}
