//! The message envelope: the facts every event on Kafka carries as headers, plus its key.
//!
//! Header names are stable and documented in `docs/envelope.md`; any Kafka consumer can read
//! them without this crate. Values are UTF-8 text: UUIDs in their hyphenated form, timestamps in
//! RFC 3339 with an explicit offset.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use uuid::Uuid;

/// Kafka header names of the envelope.
pub mod header {
    pub const MESSAGE_ID: &str = "hub-message-id";
    pub const EVENT_TYPE: &str = "hub-event-type";
    pub const CONTRACT_VERSION: &str = "hub-contract-version";
    pub const SOURCE_ADAPTER: &str = "hub-source-adapter";
    pub const PARTNER: &str = "hub-partner";
    pub const OBJECT_ID: &str = "hub-object-id";
    pub const OCCURRED_AT: &str = "hub-occurred-at";
    pub const RECEIVED_AT: &str = "hub-received-at";
    pub const CORRELATION_ID: &str = "hub-correlation-id";
    pub const CAUSATION_ID: &str = "hub-causation-id";
    /// W3C trace context, under its standard name so tracing tools find it.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// China Standard Time, the offset the hub writes its own timestamps in (no daylight saving).
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// Now, in China Standard Time.
pub fn now_shanghai() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&shanghai())
}

/// What every message on the bus carries besides its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique id of this message (UUIDv7: time-ordered). A retried push keeps its id.
    pub message_id: Uuid,
    /// Event type, e.g. `hotline.ticket.dispatched`.
    pub event_type: String,
    /// Major version of the contract the payload follows.
    pub contract_version: u32,
    /// The adapter the message came in through (or `hub` for the hub's own events).
    pub source_adapter: String,
    /// The partner platform (and system) the message came from.
    pub partner: String,
    /// The partner's own id for the object (ticket number, licence number, …). It is the Kafka
    /// key, so one object's events stay in one partition and in order.
    pub object_id: String,
    /// When the business event happened, as the partner says.
    pub occurred_at: DateTime<FixedOffset>,
    /// When the hub received it.
    pub received_at: DateTime<FixedOffset>,
    /// Follows one business case across systems; the message id of the first message when the
    /// partner gives none.
    pub correlation_id: String,
    /// The message that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// W3C `traceparent`, when the message is part of a trace.
    pub traceparent: Option<String>,
    /// W3C `tracestate`, carried unchanged.
    pub tracestate: Option<String>,
}

/// Why headers could not be read back as an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("header `{0}` is missing")]
    Missing(&'static str),
    #[error("header `{name}` is not valid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl Envelope {
    /// A new message with a fresh id, received now, and its own id as correlation id.
    pub fn new(
        event_type: impl Into<String>,
        contract_version: u32,
        source_adapter: impl Into<String>,
        partner: impl Into<String>,
        object_id: impl Into<String>,
        occurred_at: DateTime<FixedOffset>,
    ) -> Self {
        let message_id = Uuid::now_v7();
        Self {
            message_id,
            event_type: event_type.into(),
            contract_version,
            source_adapter: source_adapter.into(),
            partner: partner.into(),
            object_id: object_id.into(),
            occurred_at,
            received_at: now_shanghai(),
            correlation_id: message_id.to_string(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
        }
    }

    /// The Kafka record key.
    pub fn key(&self) -> &str {
        &self.object_id
    }

    /// The envelope as Kafka headers.
    pub fn to_headers(&self) -> OwnedHeaders {
        let ts = |t: &DateTime<FixedOffset>| t.to_rfc3339_opts(SecondsFormat::Millis, false);
        let mut pairs: Vec<(&str, String)> = vec![
            (header::MESSAGE_ID, self.message_id.to_string()),
            (header::EVENT_TYPE, self.event_type.clone()),
            (header::CONTRACT_VERSION, self.contract_version.to_string()),
            (header::SOURCE_ADAPTER, self.source_adapter.clone()),
            (header::PARTNER, self.partner.clone()),
            (header::OBJECT_ID, self.object_id.clone()),
            (header::OCCURRED_AT, ts(&self.occurred_at)),
            (header::RECEIVED_AT, ts(&self.received_at)),
            (header::CORRELATION_ID, self.correlation_id.clone()),
        ];
        if let Some(c) = &self.causation_id {
            pairs.push((header::CAUSATION_ID, c.to_string()));
        }
        if let Some(t) = &self.traceparent {
            pairs.push((header::TRACEPARENT, t.clone()));
        }
        if let Some(t) = &self.tracestate {
            pairs.push((header::TRACESTATE, t.clone()));
        }
        pairs.iter().fold(
            OwnedHeaders::new_with_capacity(pairs.len()),
            |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            },
        )
    }

    /// Reads an envelope back from Kafka headers.
    pub fn from_headers<H: Headers>(headers: &H) -> Result<Self, EnvelopeError> {
        let get = |name: &'static str| -> Option<Result<String, EnvelopeError>> {
            headers.iter().find(|h| h.key == name).map(|h| {
                let bytes = h.value.unwrap_or_default();
                String::from_utf8(bytes.to_vec()).map_err(|_| EnvelopeError::Invalid {
                    name,
                    problem: "not UTF-8".into(),
                })
            })
        };
        let required = |name: &'static str| get(name).unwrap_or(Err(EnvelopeError::Missing(name)));
        let uuid = |name: &'static str, v: String| {
            Uuid::parse_str(&v).map_err(|e| EnvelopeError::Invalid {
                name,
                problem: e.to_string(),
            })
        };
        let time = |name: &'static str, v: String| {
            DateTime::parse_from_rfc3339(&v).map_err(|e| EnvelopeError::Invalid {
                name,
                problem: format!("not RFC 3339 with an offset: {e}"),
            })
        };
        // Read in header order, so the first missing header is the one reported.
        let message_id = uuid(header::MESSAGE_ID, required(header::MESSAGE_ID)?)?;
        let event_type = required(header::EVENT_TYPE)?;
        let contract_version = required(header::CONTRACT_VERSION)?;
        Ok(Self {
            message_id,
            event_type,
            contract_version: contract_version
                .parse()
                .map_err(|_| EnvelopeError::Invalid {
                    name: header::CONTRACT_VERSION,
                    problem: format!("`{contract_version}` is not a whole number"),
                })?,
            source_adapter: required(header::SOURCE_ADAPTER)?,
            partner: required(header::PARTNER)?,
            object_id: required(header::OBJECT_ID)?,
            occurred_at: time(header::OCCURRED_AT, required(header::OCCURRED_AT)?)?,
            received_at: time(header::RECEIVED_AT, required(header::RECEIVED_AT)?)?,
            correlation_id: required(header::CORRELATION_ID)?,
            causation_id: get(header::CAUSATION_ID)
                .transpose()?
                .map(|v| uuid(header::CAUSATION_ID, v))
                .transpose()?,
            traceparent: get(header::TRACEPARENT).transpose()?,
            tracestate: get(header::TRACESTATE).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedHeaders;

    fn sample() -> Envelope {
        let occurred = DateTime::parse_from_rfc3339("2026-11-22T09:30:00.123+08:00").unwrap();
        let mut e = Envelope::new(
            "hotline.ticket.dispatched",
            1,
            "hotline12345",
            "12345-city",
            "GD20261122000123",
            occurred,
        );
        e.causation_id = Some(Uuid::now_v7());
        e.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        e
    }

    #[test]
    fn headers_round_trip() {
        let e = sample();
        let back = Envelope::from_headers(&e.to_headers()).unwrap();
        // Timestamps are written at millisecond precision.
        let mut expected = e.clone();
        expected.received_at = DateTime::parse_from_rfc3339(
            &e.received_at.to_rfc3339_opts(SecondsFormat::Millis, false),
        )
        .unwrap();
        assert_eq!(back, expected);
        assert_eq!(back.occurred_at.offset().local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn a_missing_header_is_named() {
        let h = OwnedHeaders::new().insert(Header {
            key: header::MESSAGE_ID,
            value: Some(Uuid::now_v7().to_string().as_bytes()),
        });
        assert_eq!(
            Envelope::from_headers(&h),
            Err(EnvelopeError::Missing(header::EVENT_TYPE))
        );
    }

    #[test]
    fn a_bad_timestamp_is_named() {
        let e = sample();
        let mut h = OwnedHeaders::new();
        for hd in e.to_headers().iter() {
            let value = if hd.key == header::OCCURRED_AT {
                Some("2026-11-22 09:30".as_bytes())
            } else {
                hd.value
            };
            h = h.insert(Header { key: hd.key, value });
        }
        match Envelope::from_headers(&h) {
            Err(EnvelopeError::Invalid { name, .. }) => assert_eq!(name, header::OCCURRED_AT),
            other => panic!("expected an invalid occurred-at, got {other:?}"),
        }
    }
}
