//! The app's SQL: tickets and their events, on SQLite or PostgreSQL through `app_kit::db`.
//!
//! Every statement is written once in the dialect both accept. Updates of a ticket by an action
//! are compare-and-set on its `version`, so two handlers acting at once cannot both win.
//! Effects of the platform's urgings, visits and closings are written so that their result does
//! not depend on the order they are applied in (latest by the event's own time, maximum urge
//! count): topics are read in parallel, and a replay must end where the first run ended.

use app_kit::db::{Db, Tx};
use app_kit::{on_db, on_tx};
use serde_json::Value;

use crate::machine::{DeadlineStatus, Status, DUE_SOON_MS};

/// A ticket row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub ticket_no: String,
    pub status: String,
    pub channel: String,
    pub title: String,
    pub appeal_content: String,
    pub category_code: String,
    pub category_name: Option<String>,
    pub urgency: String,
    pub district_code: String,
    pub address_sealed: Option<String>,
    pub address_masked: Option<String>,
    pub caller_name_sealed: Option<String>,
    pub caller_name_masked: Option<String>,
    pub caller_phone_sealed: Option<String>,
    pub caller_phone_masked: Option<String>,
    pub handling_unit_code: String,
    pub handling_unit_name: String,
    pub sign_deadline: String,
    pub sign_deadline_ms: i64,
    pub handle_deadline: String,
    pub handle_deadline_ms: i64,
    pub active_deadline_ms: Option<i64>,
    pub requested_deadline: Option<String>,
    pub dispatched_at: String,
    pub dispatched_at_ms: i64,
    pub attachments: Option<String>,
    pub signed_at: Option<String>,
    pub returned_at: Option<String>,
    pub extension_requested_at: Option<String>,
    pub replied_at: Option<String>,
    pub closed_at: Option<String>,
    pub closed_at_ms: Option<i64>,
    pub close_kind: Option<String>,
    pub urge_count: i64,
    pub last_urged_at: Option<String>,
    pub last_urged_at_ms: Option<i64>,
    pub satisfaction: Option<String>,
    pub visit_resolution: Option<String>,
    pub visited_at: Option<String>,
    pub visited_at_ms: Option<i64>,
    pub dispatch_message_id: String,
    pub correlation_id: String,
    pub dispatch_count: i64,
    pub version: i64,
}

impl Ticket {
    /// The status column as the machine's type (an unknown value reads as closed, the status
    /// that allows nothing).
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Closed)
    }

    pub fn deadline_status(&self, now_ms: i64) -> DeadlineStatus {
        DeadlineStatus::of(self.active_deadline_ms, now_ms)
    }
}

/// An event row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub message_id: String,
    pub ticket_no: String,
    pub kind: String,
    pub direction: String,
    pub contract_topic: String,
    pub occurred_at: String,
    pub occurred_at_ms: i64,
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub record: String,
    pub record_masked: String,
}

const TICKET_COLUMNS: &str = "ticket_no, status, channel, title, appeal_content, category_code, \
    category_name, urgency, district_code, address_sealed, address_masked, caller_name_sealed, \
    caller_name_masked, caller_phone_sealed, caller_phone_masked, handling_unit_code, \
    handling_unit_name, sign_deadline, sign_deadline_ms, handle_deadline, handle_deadline_ms, \
    active_deadline_ms, requested_deadline, dispatched_at, dispatched_at_ms, attachments, \
    signed_at, returned_at, extension_requested_at, replied_at, closed_at, closed_at_ms, \
    close_kind, urge_count, last_urged_at, last_urged_at_ms, satisfaction, visit_resolution, \
    visited_at, visited_at_ms, dispatch_message_id, correlation_id, dispatch_count, version";

const EVENT_COLUMNS: &str = "message_id, ticket_no, kind, direction, contract_topic, \
    occurred_at, occurred_at_ms, actor, correlation_id, causation_id, record, record_masked";

pub async fn ticket(tx: &mut Tx, ticket_no: &str) -> Result<Option<Ticket>, sqlx::Error> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM hotline_tickets WHERE ticket_no = $1");
    Ok(on_tx!(tx, c => sqlx::query_as(&sql).bind(ticket_no).fetch_optional(c).await?))
}

pub async fn ticket_in(db: &Db, ticket_no: &str) -> Result<Option<Ticket>, sqlx::Error> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM hotline_tickets WHERE ticket_no = $1");
    Ok(on_db!(db, p => sqlx::query_as(&sql).bind(ticket_no).fetch_optional(p).await?))
}

/// Events of a ticket, oldest first.
pub async fn events_in(db: &Db, ticket_no: &str) -> Result<Vec<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM hotline_ticket_events WHERE ticket_no = $1 \
         ORDER BY occurred_at_ms, message_id"
    );
    Ok(on_db!(db, p => sqlx::query_as(&sql).bind(ticket_no).fetch_all(p).await?))
}

/// Message ids of a ticket's events still waiting in the outbox (rows produced to Kafka are
/// marked sent, and purged after a while).
pub async fn queued_in(
    db: &Db,
    ticket_no: &str,
) -> Result<std::collections::BTreeSet<String>, sqlx::Error> {
    let sql = "SELECT message_id FROM app_outbox WHERE object_id = $1 AND sent_at_ms IS NULL";
    let ids: Vec<String> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(ticket_no).fetch_all(p).await?);
    Ok(ids.into_iter().collect())
}

/// Inbound events of a ticket that arrived before its dispatch, oldest first.
pub async fn inbound_events(tx: &mut Tx, ticket_no: &str) -> Result<Vec<Event>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM hotline_ticket_events \
         WHERE ticket_no = $1 AND direction = 'inbound' AND kind <> 'dispatched' \
         ORDER BY occurred_at_ms, message_id"
    );
    Ok(on_tx!(tx, c => sqlx::query_as(&sql).bind(ticket_no).fetch_all(c).await?))
}

/// Adds an event; a message id already there is left as it is.
pub async fn insert_event(tx: &mut Tx, e: &Event) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO hotline_ticket_events ({EVENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (message_id) DO NOTHING"
    );
    on_tx!(tx, c => sqlx::query(&sql)
        .bind(&e.message_id).bind(&e.ticket_no).bind(&e.kind).bind(&e.direction)
        .bind(&e.contract_topic).bind(&e.occurred_at).bind(e.occurred_at_ms).bind(&e.actor)
        .bind(&e.correlation_id).bind(&e.causation_id).bind(&e.record).bind(&e.record_masked)
        .execute(c).await?.rows_affected());
    Ok(())
}

/// Creates a ticket from its first dispatch.
pub async fn insert_ticket(tx: &mut Tx, t: &Ticket) -> Result<(), sqlx::Error> {
    let placeholders: Vec<String> = (1..=44).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO hotline_tickets ({TICKET_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    );
    on_tx!(tx, c => sqlx::query(&sql)
        .bind(&t.ticket_no).bind(&t.status).bind(&t.channel).bind(&t.title)
        .bind(&t.appeal_content).bind(&t.category_code).bind(&t.category_name).bind(&t.urgency)
        .bind(&t.district_code).bind(&t.address_sealed).bind(&t.address_masked)
        .bind(&t.caller_name_sealed).bind(&t.caller_name_masked).bind(&t.caller_phone_sealed)
        .bind(&t.caller_phone_masked).bind(&t.handling_unit_code).bind(&t.handling_unit_name)
        .bind(&t.sign_deadline).bind(t.sign_deadline_ms).bind(&t.handle_deadline)
        .bind(t.handle_deadline_ms).bind(t.active_deadline_ms).bind(&t.requested_deadline)
        .bind(&t.dispatched_at).bind(t.dispatched_at_ms).bind(&t.attachments).bind(&t.signed_at)
        .bind(&t.returned_at).bind(&t.extension_requested_at).bind(&t.replied_at)
        .bind(&t.closed_at).bind(t.closed_at_ms).bind(&t.close_kind).bind(t.urge_count)
        .bind(&t.last_urged_at).bind(t.last_urged_at_ms).bind(&t.satisfaction)
        .bind(&t.visit_resolution).bind(&t.visited_at).bind(t.visited_at_ms)
        .bind(&t.dispatch_message_id).bind(&t.correlation_id).bind(t.dispatch_count)
        .bind(t.version)
        .execute(c).await?.rows_affected());
    Ok(())
}

/// Writes back everything a dispatch or an action may change, if the ticket is still at
/// `expected_version` (it becomes `t.version`). False: someone else changed it first.
pub async fn update_ticket(
    tx: &mut Tx,
    t: &Ticket,
    expected_version: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE hotline_tickets SET status = $1, channel = $2, title = $3, \
               appeal_content = $4, category_code = $5, category_name = $6, urgency = $7, \
               district_code = $8, address_sealed = $9, address_masked = $10, \
               caller_name_sealed = $11, caller_name_masked = $12, caller_phone_sealed = $13, \
               caller_phone_masked = $14, handling_unit_code = $15, handling_unit_name = $16, \
               sign_deadline = $17, sign_deadline_ms = $18, handle_deadline = $19, \
               handle_deadline_ms = $20, active_deadline_ms = $21, requested_deadline = $22, \
               dispatched_at = $23, dispatched_at_ms = $24, attachments = $25, signed_at = $26, \
               returned_at = $27, extension_requested_at = $28, replied_at = $29, \
               dispatch_message_id = $30, dispatch_count = $31, version = $32 \
               WHERE ticket_no = $33 AND version = $34";
    let done = on_tx!(tx, c => sqlx::query(sql)
        .bind(&t.status).bind(&t.channel).bind(&t.title).bind(&t.appeal_content)
        .bind(&t.category_code).bind(&t.category_name).bind(&t.urgency).bind(&t.district_code)
        .bind(&t.address_sealed).bind(&t.address_masked).bind(&t.caller_name_sealed)
        .bind(&t.caller_name_masked).bind(&t.caller_phone_sealed).bind(&t.caller_phone_masked)
        .bind(&t.handling_unit_code).bind(&t.handling_unit_name).bind(&t.sign_deadline)
        .bind(t.sign_deadline_ms).bind(&t.handle_deadline).bind(t.handle_deadline_ms)
        .bind(t.active_deadline_ms).bind(&t.requested_deadline).bind(&t.dispatched_at)
        .bind(t.dispatched_at_ms).bind(&t.attachments).bind(&t.signed_at).bind(&t.returned_at)
        .bind(&t.extension_requested_at).bind(&t.replied_at).bind(&t.dispatch_message_id)
        .bind(t.dispatch_count).bind(t.version).bind(&t.ticket_no).bind(expected_version)
        .execute(c).await?.rows_affected());
    Ok(done == 1)
}

/// 督办: the highest urge count and the latest urging win, whatever order they arrive in.
/// Urgings and visits leave `version` alone: they never race with a handler's action.
pub async fn apply_urge(
    tx: &mut Tx,
    ticket_no: &str,
    urge_count: i64,
    urged_at: &str,
    urged_at_ms: i64,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE hotline_tickets SET \
               urge_count = CASE WHEN urge_count < $1 THEN $1 ELSE urge_count END, \
               last_urged_at = CASE WHEN last_urged_at_ms IS NULL OR last_urged_at_ms < $2 \
                               THEN $3 ELSE last_urged_at END, \
               last_urged_at_ms = CASE WHEN last_urged_at_ms IS NULL OR last_urged_at_ms < $2 \
                                  THEN $2 ELSE last_urged_at_ms END \
               WHERE ticket_no = $4";
    on_tx!(tx, c => sqlx::query(sql)
        .bind(urge_count).bind(urged_at_ms).bind(urged_at).bind(ticket_no)
        .execute(c).await?.rows_affected());
    Ok(())
}

/// 回访: the latest visit's satisfaction and resolution win.
pub async fn apply_visit(
    tx: &mut Tx,
    ticket_no: &str,
    satisfaction: &str,
    resolution: Option<&str>,
    visited_at: &str,
    visited_at_ms: i64,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE hotline_tickets SET \
               satisfaction = $1, visit_resolution = $2, visited_at = $3, visited_at_ms = $4 \
               WHERE ticket_no = $5 AND (visited_at_ms IS NULL OR visited_at_ms <= $4)";
    on_tx!(tx, c => sqlx::query(sql)
        .bind(satisfaction).bind(resolution).bind(visited_at).bind(visited_at_ms).bind(ticket_no)
        .execute(c).await?.rows_affected());
    Ok(())
}

/// 销单: final, whatever the status; the latest closing's kind and time are kept.
pub async fn apply_close(
    tx: &mut Tx,
    ticket_no: &str,
    close_kind: &str,
    closed_at: &str,
    closed_at_ms: i64,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE hotline_tickets SET status = 'CLOSED', active_deadline_ms = NULL, \
               close_kind = CASE WHEN closed_at_ms IS NULL OR closed_at_ms <= $1 THEN $2 ELSE close_kind END, \
               closed_at = CASE WHEN closed_at_ms IS NULL OR closed_at_ms <= $1 THEN $3 ELSE closed_at END, \
               closed_at_ms = CASE WHEN closed_at_ms IS NULL OR closed_at_ms <= $1 THEN $1 ELSE closed_at_ms END, \
               version = version + 1 \
               WHERE ticket_no = $4";
    on_tx!(tx, c => sqlx::query(sql)
        .bind(closed_at_ms).bind(close_kind).bind(closed_at).bind(ticket_no)
        .execute(c).await?.rows_affected());
    Ok(())
}

/// Filters of the ticket list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<Status>,
    pub district_code: Option<String>,
    pub category_code: Option<String>,
    pub handling_unit_code: Option<String>,
    pub deadline: Option<DeadlineStatus>,
    pub limit: i64,
    pub offset: i64,
}

enum Param {
    Text(String),
    Int(i64),
}

/// One page of tickets and the total that match, most urgent deadline first (tickets without
/// an active deadline last).
pub async fn list(db: &Db, f: &ListFilter, now_ms: i64) -> Result<(Vec<Ticket>, i64), sqlx::Error> {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let push = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        format!("${}", params.len())
    };
    if !f.statuses.is_empty() {
        let ph: Vec<String> = f
            .statuses
            .iter()
            .map(|s| push(&mut params, Param::Text(s.as_str().into())))
            .collect();
        conds.push(format!("status IN ({})", ph.join(", ")));
    }
    if let Some(d) = &f.district_code {
        conds.push(format!(
            "district_code = {}",
            push(&mut params, Param::Text(d.clone()))
        ));
    }
    if let Some(c) = &f.category_code {
        conds.push(format!(
            "category_code = {}",
            push(&mut params, Param::Text(c.clone()))
        ));
    }
    if let Some(u) = &f.handling_unit_code {
        conds.push(format!(
            "handling_unit_code = {}",
            push(&mut params, Param::Text(u.clone()))
        ));
    }
    match f.deadline {
        Some(DeadlineStatus::Overdue) => conds.push(format!(
            "active_deadline_ms < {}",
            push(&mut params, Param::Int(now_ms))
        )),
        Some(DeadlineStatus::DueWithin24h) => {
            let a = push(&mut params, Param::Int(now_ms));
            let b = push(&mut params, Param::Int(now_ms + DUE_SOON_MS));
            conds.push(format!(
                "active_deadline_ms >= {a} AND active_deadline_ms <= {b}"
            ));
        }
        Some(DeadlineStatus::OnTime) => conds.push(format!(
            "active_deadline_ms > {}",
            push(&mut params, Param::Int(now_ms + DUE_SOON_MS))
        )),
        Some(DeadlineStatus::NotApplicable) => conds.push("active_deadline_ms IS NULL".into()),
        None => {}
    }
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let count_sql = format!("SELECT COUNT(*) FROM hotline_tickets{where_}");
    let limit_ph = push(&mut params, Param::Int(f.limit));
    let offset_ph = push(&mut params, Param::Int(f.offset));
    let page_sql = format!(
        "SELECT {TICKET_COLUMNS} FROM hotline_tickets{where_} \
         ORDER BY (active_deadline_ms IS NULL), active_deadline_ms, ticket_no \
         LIMIT {limit_ph} OFFSET {offset_ph}"
    );
    let filter_params = &params[..params.len() - 2];
    on_db!(db, p => {
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        for prm in filter_params {
            count = match prm {
                Param::Text(s) => count.bind(s),
                Param::Int(i) => count.bind(*i),
            };
        }
        let total = count.fetch_one(p).await?;
        let mut page = sqlx::query_as::<_, Ticket>(&page_sql);
        for prm in &params {
            page = match prm {
                Param::Text(s) => page.bind(s),
                Param::Int(i) => page.bind(*i),
            };
        }
        Ok((page.fetch_all(p).await?, total))
    })
}

/// Deletes inbound events whose ticket never arrived (another unit's closings the platform sent
/// without a handling unit) once they are older than `older_than_ms`. Returns how many.
pub async fn purge_orphan_events(db: &Db, older_than_ms: i64) -> Result<u64, sqlx::Error> {
    let cutoff = app_kit::db::now_ms() - older_than_ms;
    let sql = "DELETE FROM hotline_ticket_events WHERE occurred_at_ms < $1 AND direction = 'inbound' \
               AND NOT EXISTS (SELECT 1 FROM hotline_tickets t WHERE t.ticket_no = hotline_ticket_events.ticket_no)";
    Ok(on_db!(db, p => sqlx::query(sql).bind(cutoff).execute(p).await?.rows_affected()))
}

/// The string at `key` of a record, if it is one.
pub fn text<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record.get(key).and_then(Value::as_str)
}
