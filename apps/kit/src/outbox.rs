//! The transactional outbox: what an app tells the outside world reaches Kafka at least once,
//! with a message id fixed when the decision was made.
//!
//! An action writes its state change and an outbox row ([`enqueue`]) in one database
//! transaction, so either both happen or neither. The [`Relay`] task produces unsent rows in
//! the order they were written, each with the envelope stored in its row, and marks a row sent
//! only after the broker acknowledged it (`acks=all`). If the process dies between the
//! acknowledgement and the mark, the row is produced again after restart with the *same*
//! message id, and consumers de-duplicate on it. A row that fails stops the batch (later rows
//! may concern the same object and must not overtake it); it is retried after a pause.
//!
//! One relay per database is the intended deployment; a second replica's relay would only
//! cause more duplicates (same ids), never a loss.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use hub_bus::{Envelope, Producer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::db::{now_ms, Db, DbError, Tx};
use crate::{on_db, on_tx};

/// Adds a message to the outbox inside the caller's transaction. An envelope without a
/// `traceparent` gets the current hop's ([`hub_telemetry::current`]), if any.
pub async fn enqueue(
    tx: &mut Tx,
    topic: &str,
    envelope: &Envelope,
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    let ts =
        |t: &DateTime<chrono::FixedOffset>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    // Enqueued inside a hop (an API action, a record applied): the event carries its trace.
    let traceparent = envelope
        .traceparent
        .clone()
        .or_else(|| hub_telemetry::current().map(|t| t.to_string()));
    let sql = "INSERT INTO app_outbox (message_id, topic, event_type, contract_version, \
               source_adapter, partner, object_id, occurred_at, received_at, correlation_id, \
               causation_id, traceparent, tracestate, payload, created_at_ms, attempts) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0)";
    on_tx!(tx, c => sqlx::query(sql)
        .bind(envelope.message_id.to_string())
        .bind(topic)
        .bind(&envelope.event_type)
        .bind(i64::from(envelope.contract_version))
        .bind(&envelope.source_adapter)
        .bind(&envelope.partner)
        .bind(&envelope.object_id)
        .bind(ts(&envelope.occurred_at))
        .bind(ts(&envelope.received_at))
        .bind(&envelope.correlation_id)
        .bind(envelope.causation_id.map(|c| c.to_string()))
        .bind(&traceparent)
        .bind(&envelope.tracestate)
        .bind(payload)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected());
    Ok(())
}

/// One unsent row as stored.
#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    message_id: String,
    topic: String,
    event_type: String,
    contract_version: i64,
    source_adapter: String,
    partner: String,
    object_id: String,
    occurred_at: String,
    received_at: String,
    correlation_id: String,
    causation_id: Option<String>,
    traceparent: Option<String>,
    tracestate: Option<String>,
    payload: Vec<u8>,
}

/// One unsent row, ready to produce.
struct Pending {
    seq: i64,
    topic: String,
    envelope: Envelope,
    payload: Vec<u8>,
}

impl TryFrom<Row> for Pending {
    type Error = String;

    fn try_from(r: Row) -> Result<Self, String> {
        let time = |name: &str, v: &str| {
            DateTime::parse_from_rfc3339(v).map_err(|e| format!("{name}: {e}"))
        };
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| e.to_string());
        Ok(Pending {
            seq: r.seq,
            envelope: Envelope {
                message_id: uuid(&r.message_id)?,
                event_type: r.event_type,
                contract_version: u32::try_from(r.contract_version).map_err(|e| e.to_string())?,
                source_adapter: r.source_adapter,
                partner: r.partner,
                object_id: r.object_id,
                occurred_at: time("occurred_at", &r.occurred_at)?,
                received_at: time("received_at", &r.received_at)?,
                correlation_id: r.correlation_id,
                causation_id: r.causation_id.as_deref().map(uuid).transpose()?,
                traceparent: r.traceparent,
                tracestate: r.tracestate,
            },
            topic: r.topic,
            payload: r.payload,
        })
    }
}

/// Unsent rows, oldest first.
async fn unsent(db: &Db, limit: i64) -> Result<Vec<Pending>, String> {
    let sql = "SELECT seq, message_id, topic, event_type, contract_version, source_adapter, \
               partner, object_id, occurred_at, received_at, correlation_id, causation_id, \
               traceparent, tracestate, payload FROM app_outbox \
               WHERE sent_at_ms IS NULL ORDER BY seq LIMIT $1";
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(sql).bind(limit).fetch_all(p).await)
        .map_err(|e| e.to_string())?;
    rows.into_iter().map(Pending::try_from).collect()
}

/// How many rows wait to be produced.
pub async fn pending_count(db: &Db) -> Result<i64, DbError> {
    let sql = "SELECT COUNT(*) FROM app_outbox WHERE sent_at_ms IS NULL";
    Ok(on_db!(db, p => sqlx::query_scalar(sql).fetch_one(p).await?))
}

/// Deletes rows produced more than `older_than` ago. Returns how many.
pub async fn purge_sent(db: &Db, older_than: Duration) -> Result<u64, DbError> {
    let cutoff = now_ms() - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let sql = "DELETE FROM app_outbox WHERE sent_at_ms IS NOT NULL AND sent_at_ms < $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(cutoff).execute(p).await?.rows_affected()))
}

/// Produces outbox rows to Kafka. Wake it with [`Relay::notifier`] after a commit that
/// enqueued; it also looks on its own every `poll_every` (rows written by another process, or
/// left by a crash).
pub struct Relay {
    db: Db,
    producer: Producer,
    notify: Arc<Notify>,
    poll_every: Duration,
}

impl Relay {
    pub fn new(db: Db, producer: Producer) -> Self {
        Self {
            db,
            producer,
            notify: Arc::new(Notify::new()),
            poll_every: Duration::from_secs(2),
        }
    }

    /// Call `notify_one()` on it after committing a transaction that enqueued.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Runs until `stop` is cancelled; a send in progress finishes first.
    pub async fn run(self, stop: CancellationToken) {
        let mut pause = Duration::from_millis(500);
        while !stop.is_cancelled() {
            if let Ok(n) = pending_count(&self.db).await {
                metrics::gauge!("app_outbox_pending").set(n as f64);
            }
            let batch = match unsent(&self.db, 100).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "outbox unreadable; pausing");
                    self.wait(&stop, pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = self.notify.notified() => {}
                    () = tokio::time::sleep(self.poll_every) => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            let mut failed = false;
            for row in batch {
                if stop.is_cancelled() {
                    break;
                }
                match self
                    .producer
                    .send(&row.topic, &row.envelope, &row.payload)
                    .await
                {
                    Ok(d) => {
                        let sql = "UPDATE app_outbox SET sent_at_ms = $1, sent_partition = $2, \
                                   sent_offset = $3 WHERE seq = $4";
                        let marked = on_db!(&self.db, p => sqlx::query(sql)
                            .bind(now_ms()).bind(d.partition).bind(d.offset).bind(row.seq)
                            .execute(p).await.map(|r| r.rows_affected()));
                        if let Err(e) = marked {
                            // Sent but not marked: it will be sent again with the same id.
                            warn!(error = %e, message_id = %row.envelope.message_id, "sent, but not marked in the outbox");
                            failed = true;
                            break;
                        }
                        metrics::counter!("app_outbox_relayed_total", "topic" => row.topic.clone(), "outcome" => "ok").increment(1);
                        debug!(message_id = %row.envelope.message_id, topic = %row.topic,
                               partition = d.partition, offset = d.offset, "outbox message produced");
                    }
                    Err(e) => {
                        metrics::counter!("app_outbox_relayed_total", "topic" => row.topic.clone(), "outcome" => "failed").increment(1);
                        warn!(code = e.code(), error = %e, message_id = %row.envelope.message_id,
                              topic = %row.topic, "outbox message not produced; retrying later");
                        let sql = "UPDATE app_outbox SET attempts = attempts + 1, last_error = $1 \
                                   WHERE seq = $2";
                        let _ = on_db!(&self.db, p => sqlx::query(sql)
                            .bind(e.code()).bind(row.seq).execute(p).await.map(|r| r.rows_affected()));
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                self.wait(&stop, pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            } else {
                pause = Duration::from_millis(500);
            }
        }
    }

    async fn wait(&self, stop: &CancellationToken, pause: Duration) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => {}
        }
    }
}
