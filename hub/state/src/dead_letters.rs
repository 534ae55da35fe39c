//! The index of dead letters: where each one is on the dead-letter topic, why it is there, and
//! what an operator did with it (replayed or discarded, by whom, when).

use sqlx::Row;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// One dead letter as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead-letter record's own message id.
    pub id: String,
    /// `<partner>/<delivery>`.
    pub route: String,
    pub original_message_id: String,
    pub object_id: String,
    pub reason_code: String,
    pub reason: String,
    pub partner_code: Option<String>,
    pub attempts: i64,
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    pub dlq_topic: String,
    pub dlq_partition: i64,
    pub dlq_offset: i64,
    pub dead_lettered_at_ms: i64,
    /// `pending`, `replayed` or `discarded`.
    pub status: String,
    pub status_at_ms: Option<i64>,
    pub status_by: Option<String>,
}

/// Filters of [`StateStore::list_dead_letters`]; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub route: Option<String>,
    pub reason_code: Option<String>,
    pub status: Option<String>,
    /// Original message id or object id (ticket number, …).
    pub about: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

const COLUMNS: &str =
    "id, route, original_message_id, object_id, reason_code, reason, partner_code, \
    attempts, source_topic, source_partition, source_offset, dlq_topic, dlq_partition, dlq_offset, \
    dead_lettered_at_ms, status, status_at_ms, status_by";

fn from_row<R: Row>(r: &R) -> Result<DeadLetter, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DeadLetter {
        id: r.try_get("id")?,
        route: r.try_get("route")?,
        original_message_id: r.try_get("original_message_id")?,
        object_id: r.try_get("object_id")?,
        reason_code: r.try_get("reason_code")?,
        reason: r.try_get("reason")?,
        partner_code: r.try_get("partner_code")?,
        attempts: r.try_get("attempts")?,
        source_topic: r.try_get("source_topic")?,
        source_partition: r.try_get("source_partition")?,
        source_offset: r.try_get("source_offset")?,
        dlq_topic: r.try_get("dlq_topic")?,
        dlq_partition: r.try_get("dlq_partition")?,
        dlq_offset: r.try_get("dlq_offset")?,
        dead_lettered_at_ms: r.try_get("dead_lettered_at_ms")?,
        status: r.try_get("status")?,
        status_at_ms: r.try_get("status_at_ms")?,
        status_by: r.try_get("status_by")?,
    })
}

impl StateStore {
    /// Indexes a dead letter (status `pending`). Recording the same one twice is harmless.
    pub async fn record_dead_letter(&self, d: &DeadLetter) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = format!(
                "INSERT INTO hub_dead_letters ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', NULL, NULL) \
                 ON CONFLICT DO NOTHING"
            );
            on_pool!(self, p => sqlx::query(&sql)
                .bind(&d.id).bind(&d.route).bind(&d.original_message_id).bind(&d.object_id)
                .bind(&d.reason_code).bind(&d.reason).bind(&d.partner_code).bind(d.attempts)
                .bind(&d.source_topic).bind(d.source_partition).bind(d.source_offset)
                .bind(&d.dlq_topic).bind(d.dlq_partition).bind(d.dlq_offset).bind(d.dead_lettered_at_ms)
                .execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("record_dead_letter", result)
    }

    /// The dead letter already written for this record on this route, if any: a record
    /// redelivered after a crash is not dead-lettered twice.
    pub async fn dead_letter_for_source(
        &self,
        route: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<DeadLetter>, StateError> {
        let result: Result<_, StateError> = async {
            let sql = format!(
                "SELECT {COLUMNS} FROM hub_dead_letters WHERE route = $1 AND source_topic = $2 \
                 AND source_partition = $3 AND source_offset = $4"
            );
            Ok(on_pool!(self, p => {
                match sqlx::query(&sql).bind(route).bind(topic).bind(i64::from(partition)).bind(offset)
                    .fetch_optional(p).await? {
                    Some(r) => Some(from_row(&r)?),
                    None => None,
                }
            }))
        }
        .await;
        observed("dead_letter_for_source", result)
    }

    /// One dead letter by its id (or a unique prefix of at least 8 characters).
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StateError> {
        let sql =
            format!("SELECT {COLUMNS} FROM hub_dead_letters WHERE id LIKE $1 ORDER BY id LIMIT 2");
        let pattern = if id.len() >= 8 && id.len() < 36 {
            format!("{}%", id.replace(['%', '_'], ""))
        } else {
            id.to_string()
        };
        let rows: Vec<DeadLetter> = on_pool!(self, p => {
            let rows = sqlx::query(&sql).bind(&pattern).fetch_all(p).await?;
            rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(if rows.len() == 1 {
            rows.into_iter().next()
        } else {
            None
        })
    }

    /// Dead letters matching `filter`, newest first.
    pub async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM hub_dead_letters WHERE \
             ($1 IS NULL OR route = $1) AND ($2 IS NULL OR reason_code = $2) AND \
             ($3 IS NULL OR status = $3) AND ($4 IS NULL OR original_message_id = $4 OR object_id = $4) AND \
             ($5 IS NULL OR dead_lettered_at_ms >= $5) AND ($6 IS NULL OR dead_lettered_at_ms < $6) \
             ORDER BY dead_lettered_at_ms DESC, id DESC LIMIT $7"
        );
        let limit = if filter.limit <= 0 { 100 } else { filter.limit };
        Ok(on_pool!(self, p => {
            let rows = sqlx::query(&sql)
                .bind(&filter.route).bind(&filter.reason_code).bind(&filter.status).bind(&filter.about)
                .bind(filter.since_ms).bind(filter.until_ms).bind(limit)
                .fetch_all(p).await?;
            rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?
        }))
    }

    /// Moves a `pending` dead letter to `status` (`replayed` or `discarded`). Returns `false`
    /// when it was not pending (someone else acted on it first).
    pub async fn settle_dead_letter(
        &self,
        id: &str,
        status: &str,
        actor: &str,
    ) -> Result<bool, StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_dead_letters SET status = $1, status_at_ms = $2, status_by = $3 \
                       WHERE id = $4 AND status = 'pending'";
            let now = now_ms();
            let n = on_pool!(self, p => sqlx::query(sql).bind(status).bind(now).bind(actor).bind(id)
                .execute(p).await?.rows_affected());
            Ok(n == 1)
        }
        .await;
        observed("settle_dead_letter", result)
    }

    /// Puts a dead letter back to `pending` (a replay whose produce failed).
    pub async fn reopen_dead_letter(&self, id: &str) -> Result<(), StateError> {
        let result: Result<_, StateError> = async {
            let sql = "UPDATE hub_dead_letters SET status = 'pending', status_at_ms = NULL, status_by = NULL WHERE id = $1";
            on_pool!(self, p => sqlx::query(sql).bind(id).execute(p).await?.rows_affected());
            Ok(())
        }
        .await;
        observed("reopen_dead_letter", result)
    }
}
