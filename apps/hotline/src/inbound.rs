//! What the platform tells us: dispatched, urged, visited and closed records, applied to the
//! app's tables inside the consumer's transaction (`app_kit::consumer`).
//!
//! Each record is decoded with its contract (an older writer version is resolved into the
//! current one), checked against the handling units this app serves, stored as a ticket event
//! (personal fields sealed as they came, plus a masked copy) and applied to its ticket. Urgings,
//! visits and closings may be read before their ticket's dispatch (the topics are read in
//! parallel); they wait in the events table and are applied when the dispatch arrives, with the
//! same order-independent effects, so a replay ends where the first run ended.

use std::collections::BTreeSet;
use std::sync::Arc;

use app_kit::consumer::{HandleError, Handler};
use app_kit::db::Tx;
use chrono::DateTime;
use hub_bus::{Delivery, Envelope};
use hub_contracts::Contract;
use hub_security::field::FieldCipher;
use serde_json::Value;
use tracing::debug;

use crate::config::TopicsSection;
use crate::kinds::{Contracts, Kind};
use crate::machine::Status;
use crate::store::{self, text, Event, Ticket};

/// The consumer's handler.
pub struct Inbound {
    pub contracts: Arc<Contracts>,
    pub cipher: Arc<FieldCipher>,
    pub topics: TopicsSection,
    /// Handling unit codes served; empty: all.
    pub units: BTreeSet<String>,
}

fn reject(code: &'static str, reason: impl Into<String>) -> HandleError {
    HandleError::Reject {
        code,
        reason: reason.into(),
    }
}

/// RFC 3339 text → epoch milliseconds; the contracts guarantee the form, so a failure means a
/// malformed record.
fn millis(record: &Value, key: &str) -> Result<(String, i64), HandleError> {
    let s = text(record, key)
        .ok_or_else(|| reject("HOTLINE_RECORD_MALFORMED", format!("`{key}` is missing")))?;
    let t = DateTime::parse_from_rfc3339(s).map_err(|e| {
        reject(
            "HOTLINE_RECORD_MALFORMED",
            format!("`{key}` is not RFC 3339: {e}"),
        )
    })?;
    Ok((s.to_string(), t.timestamp_millis()))
}

fn required(record: &Value, key: &str) -> Result<String, HandleError> {
    text(record, key)
        .map(str::to_string)
        .ok_or_else(|| reject("HOTLINE_RECORD_MALFORMED", format!("`{key}` is missing")))
}

fn optional(record: &Value, key: &str) -> Option<String> {
    text(record, key).map(str::to_string)
}

/// A copy of `record` with its personal fields opened and then masked, for callers who may not
/// see them.
pub fn masked_copy(
    cipher: &FieldCipher,
    contract: &Contract,
    record: &Value,
) -> Result<Value, hub_security::CryptoError> {
    let mut copy = record.clone();
    hub_pipeline::pii::open_record(cipher, contract, &mut copy)?;
    app_kit::personal::mask_record(contract, &mut copy);
    Ok(copy)
}

impl Inbound {
    fn serves(&self, unit: &str) -> bool {
        self.units.is_empty() || self.units.contains(unit)
    }

    async fn dispatched(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        ticket_no: &str,
        record: &Value,
        masked: &Value,
    ) -> Result<(), HandleError> {
        let (sign_deadline, sign_ms) = millis(record, "sign_deadline")?;
        let (handle_deadline, handle_ms) = millis(record, "handle_deadline")?;
        let (dispatched_at, dispatched_ms) = millis(record, "dispatched_at")?;
        let mut fresh = Ticket {
            ticket_no: ticket_no.to_string(),
            status: Status::Dispatched.as_str().into(),
            channel: required(record, "channel")?,
            title: required(record, "title")?,
            appeal_content: required(record, "appeal_content")?,
            category_code: required(record, "category_code")?,
            category_name: optional(record, "category_name"),
            urgency: required(record, "urgency")?,
            district_code: required(record, "district_code")?,
            address_sealed: optional(record, "address"),
            address_masked: optional(masked, "address"),
            caller_name_sealed: optional(record, "caller_name"),
            caller_name_masked: optional(masked, "caller_name"),
            caller_phone_sealed: optional(record, "caller_phone"),
            caller_phone_masked: optional(masked, "caller_phone"),
            handling_unit_code: required(record, "handling_unit_code")?,
            handling_unit_name: required(record, "handling_unit_name")?,
            sign_deadline,
            sign_deadline_ms: sign_ms,
            handle_deadline,
            handle_deadline_ms: handle_ms,
            active_deadline_ms: Status::Dispatched.active_deadline(sign_ms, handle_ms),
            requested_deadline: None,
            dispatched_at,
            dispatched_at_ms: dispatched_ms,
            attachments: record
                .get("attachments")
                .filter(|a| !a.is_null())
                .map(Value::to_string),
            signed_at: None,
            returned_at: None,
            extension_requested_at: None,
            replied_at: None,
            closed_at: None,
            closed_at_ms: None,
            close_kind: None,
            urge_count: 0,
            last_urged_at: None,
            last_urged_at_ms: None,
            satisfaction: None,
            visit_resolution: None,
            visited_at: None,
            visited_at_ms: None,
            dispatch_message_id: envelope.message_id.to_string(),
            correlation_id: envelope.correlation_id.clone(),
            dispatch_count: 1,
            version: 1,
        };
        let Some(old) = store::ticket(tx, ticket_no).await? else {
            store::insert_ticket(tx, &fresh).await?;
            // What the platform said about this ticket before its dispatch was read.
            for e in store::inbound_events(tx, ticket_no).await? {
                let Some(kind) = Kind::parse(&e.kind) else {
                    continue;
                };
                let earlier: Value = serde_json::from_str(&e.record).map_err(|err| {
                    HandleError::Retry(format!("stored event {} unreadable: {err}", e.message_id))
                })?;
                apply_effect(tx, kind, ticket_no, &earlier).await?;
            }
            return Ok(());
        };
        if dispatched_ms <= old.dispatched_at_ms {
            // The same dispatch pushed again (or an older one): kept as an event only.
            debug!(
                ticket_no,
                "dispatch not newer than the one applied; recorded only"
            );
            return Ok(());
        }
        // The platform sent the ticket to us again: new fields and deadlines.
        let status = old.status().on_redispatch();
        let back = status == Status::Dispatched && old.status() != Status::Dispatched;
        fresh.status = status.as_str().into();
        fresh.active_deadline_ms = status.active_deadline(sign_ms, handle_ms);
        if !back {
            fresh.signed_at = old.signed_at.clone();
            fresh.returned_at = old.returned_at.clone();
            fresh.extension_requested_at = old.extension_requested_at.clone();
            fresh.replied_at = old.replied_at.clone();
            fresh.requested_deadline = old.requested_deadline.clone();
        }
        fresh.correlation_id = old.correlation_id.clone();
        fresh.dispatch_count = old.dispatch_count + 1;
        fresh.version = old.version + 1;
        if !store::update_ticket(tx, &fresh, old.version).await? {
            return Err(HandleError::Retry(format!(
                "ticket {ticket_no} changed while its dispatch was applied"
            )));
        }
        Ok(())
    }
}

/// The effect of an urging, visit or closing on its ticket (nothing when the ticket is not
/// there yet). Order-independent: see `store`.
async fn apply_effect(
    tx: &mut Tx,
    kind: Kind,
    ticket_no: &str,
    record: &Value,
) -> Result<(), HandleError> {
    match kind {
        Kind::Urged => {
            let count = record
                .get("urge_count")
                .and_then(Value::as_i64)
                .ok_or_else(|| reject("HOTLINE_RECORD_MALFORMED", "`urge_count` is missing"))?;
            let (at, at_ms) = millis(record, "urged_at")?;
            store::apply_urge(tx, ticket_no, count, &at, at_ms).await?;
        }
        Kind::Visited => {
            let satisfaction = required(record, "satisfaction")?;
            let (at, at_ms) = millis(record, "visited_at")?;
            store::apply_visit(
                tx,
                ticket_no,
                &satisfaction,
                text(record, "resolution"),
                &at,
                at_ms,
            )
            .await?;
        }
        Kind::Closed => {
            let close_kind = required(record, "close_kind")?;
            let (at, at_ms) = millis(record, "closed_at")?;
            store::apply_close(tx, ticket_no, &close_kind, &at, at_ms).await?;
        }
        _ => {}
    }
    Ok(())
}

impl Handler for Inbound {
    async fn handle(
        &self,
        tx: &mut Tx,
        record: &Delivery,
        envelope: &Envelope,
    ) -> Result<(), HandleError> {
        let kind = self.topics.inbound_kind(&record.topic).ok_or_else(|| {
            reject(
                "HOTLINE_UNKNOWN_TOPIC",
                format!("`{}` is not an inbound topic of the app", record.topic),
            )
        })?;
        let contract = self.contracts.get(kind);
        let (event_type, _) = hub_pipeline::split_topic(kind.contract_topic());
        if envelope.event_type != event_type {
            return Err(reject(
                "HOTLINE_EVENT_TYPE_MISMATCH",
                format!(
                    "event type `{}` on the topic of `{event_type}`",
                    envelope.event_type
                ),
            ));
        }
        let payload = record
            .payload
            .as_deref()
            .ok_or_else(|| reject("HOTLINE_RECORD_MALFORMED", "the record has no payload"))?;
        let data = hub_pipeline::read_record(
            &self.contracts.catalog,
            contract,
            contract.schema_id(),
            payload,
        )
        .map_err(|e| reject("HOTLINE_RECORD_MALFORMED", e.to_string()))?;
        let ticket_no = required(&data, "ticket_no")?;
        if let Some(unit) = text(&data, "handling_unit_code") {
            if !self.serves(unit) {
                debug!(
                    ticket_no,
                    kind = kind.as_str(),
                    "another handling unit's ticket; skipped"
                );
                return Ok(());
            }
        }
        let masked = masked_copy(&self.cipher, contract, &data)
            .map_err(|e| reject("HOTLINE_PERSONAL_DATA_UNREADABLE", e.to_string()))?;
        let (occurred_at, occurred_at_ms) = millis(&data, "occurred_at")?;
        store::insert_event(
            tx,
            &Event {
                message_id: envelope.message_id.to_string(),
                ticket_no: ticket_no.clone(),
                kind: kind.as_str().into(),
                direction: "inbound".into(),
                contract_topic: kind.contract_topic().into(),
                occurred_at,
                occurred_at_ms,
                actor: envelope.partner.clone(),
                correlation_id: envelope.correlation_id.clone(),
                causation_id: envelope.causation_id.map(|c| c.to_string()),
                record: data.to_string(),
                record_masked: masked.to_string(),
            },
        )
        .await?;
        match kind {
            Kind::Dispatched => {
                self.dispatched(tx, envelope, &ticket_no, &data, &masked)
                    .await
            }
            other => apply_effect(tx, other, &ticket_no, &data).await,
        }
    }
}
