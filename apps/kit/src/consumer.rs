//! A Kafka consumer whose offsets live in the app's own database, written in the same
//! transaction as the app's table writes.
//!
//! For each record, one database transaction:
//!
//! 1. reads the partition's stored next offset (`app_consumer_offsets`); a record below it was
//!    applied already and is skipped;
//! 2. claims the envelope's message id (`app_processed_messages`, primary key): a message seen
//!    before — a retried push, a replay, a second copy from the outbox relay — is absorbed
//!    without effect;
//! 3. lets the app's [`Handler`] write its tables in that transaction;
//! 4. moves the stored offset past the record, compare-and-set against the value read in 1, so
//!    a second consumer that wrongly holds the same partition (a zombie after a rebalance) cannot
//!    apply it too: one of the two transactions finds the offset moved and rolls back;
//! 5. commits. Only then is the record done; a crash anywhere before leaves nothing.
//!
//! Where a partition is read from is decided by the database, never by the group's committed
//! offsets: on every assignment (the rebalance callback) the consumer assigns each partition at
//! its stored offset, or at the configured start for a partition it has never seen. Offsets are
//! also committed to Kafka afterwards, asynchronously, for lag monitoring only.
//!
//! A record that can never be applied (its envelope is malformed, the handler says so) is
//! written to `app_rejected_messages` with a stable code, its offset moves on, and the consumer
//! keeps going rather than crash-looping on it. A failure that may pass (the database) rolls
//! back; after a pause the partitions are re-assigned at their stored offsets and the record is
//! read again.
//!
//! The loop runs on a thread of its own: librdkafka calls the rebalance callback from inside
//! `poll`, and the callback must read the database before it returns. On a dedicated thread it
//! may block on the async database call, and records and rebalances are handled strictly one
//! after the other.
//!
//! The app's migrations create the tables (same DDL in every app; see the crate docs).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_bus::{BusSection, Delivery, Envelope};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, RebalanceProtocol,
};
use rdkafka::message::{Message as _, OwnedHeaders};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sqlx::Row;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::config::StartAt;
use crate::db::{now_ms, Db, DbError, Tx};
use crate::{on_db, on_tx};

/// What the app does with one record, inside the transaction that also moves the offset.
pub trait Handler: Send + Sync + 'static {
    /// Applies `record` (whose envelope is `envelope`) to the app's tables through `tx`. Must
    /// not commit or roll back. Called once per message id.
    fn handle(
        &self,
        tx: &mut Tx,
        record: &Delivery,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<(), HandleError>>;
}

/// Why a handler did not apply a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The record can never be applied (wrong schema, unreadable personal data, a contract
    /// violation). It is recorded as rejected with `code`, and the consumer moves on.
    Reject { code: &'static str, reason: String },
    /// Applying failed for a reason that may pass (typically the database). Nothing is kept;
    /// the record is read again after a pause.
    Retry(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Retry(format!("DB_UNAVAILABLE: {e}"))
    }
}

impl From<DbError> for HandleError {
    fn from(e: DbError) -> Self {
        HandleError::Retry(e.to_string())
    }
}

/// What became of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler applied it.
    Applied,
    /// Its message id was applied before: absorbed without effect.
    Duplicate,
    /// It can never be applied: recorded in `app_rejected_messages`.
    Rejected,
    /// It lies below the partition's stored offset: it was applied before.
    Behind,
    /// Another consumer moved the partition's offset meanwhile: this one did nothing.
    LostRace,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Behind => "behind",
            Outcome::LostRace => "lost_race",
        }
    }
}

/// Counts of what became of the records this process read, by outcome (for tests, logs and
/// future metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub applied: AtomicU64,
    pub duplicate: AtomicU64,
    pub rejected: AtomicU64,
    pub behind: AtomicU64,
    pub lost_race: AtomicU64,
    /// Records that failed and will be read again.
    pub retried: AtomicU64,
}

impl Stats {
    fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Applied => &self.applied,
            Outcome::Duplicate => &self.duplicate,
            Outcome::Rejected => &self.rejected,
            Outcome::Behind => &self.behind,
            Outcome::LostRace => &self.lost_race,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// (applied, duplicate, rejected, behind, lost_race, retried) now.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            &self.applied,
            &self.duplicate,
            &self.rejected,
            &self.behind,
            &self.lost_race,
            &self.retried,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// What the consumer reads and under which name it keeps its offsets.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Name of this consumer in the offsets and message tables (one app may run several).
    pub name: String,
    pub group_id: String,
    pub topics: Vec<String>,
    pub start_at: StartAt,
}

/// The consumer loop failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("BUS_CONFIG: cannot create the consumer: {0}")]
    Config(#[source] rdkafka::error::KafkaError),
    #[error("BUS_CONSUME_FAILED: {0}")]
    Thread(String),
}

/// Runs `handler` over `spec.topics` until `stop` is cancelled. Returns when the loop has
/// finished the record in hand and left the group.
pub async fn run<H: Handler>(
    db: Db,
    bus: BusSection,
    spec: ConsumerSpec,
    handler: Arc<H>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> Result<(), ConsumerError> {
    let rt = Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("consumer-{}", spec.name))
        .spawn(move || {
            let result = consume_loop(rt, db, &bus, &spec, handler.as_ref(), &stats, &stop);
            let _ = done_tx.send(result);
        })
        .map_err(|e| ConsumerError::Thread(format!("cannot start the consumer thread: {e}")))?;
    done_rx
        .await
        .map_err(|_| ConsumerError::Thread("the consumer thread panicked".into()))?
}

/// The rebalance side of the consumer: assigns partitions at the offsets the database holds.
struct DbOffsets {
    rt: Handle,
    db: Db,
    consumer: String,
    start_at: StartAt,
    /// The partitions the group gave this member.
    owned: Mutex<BTreeSet<(String, i32)>>,
    /// Set when the partitions must be assigned again from the database (the offsets could not
    /// be read in the callback, or a record failed and must be read again).
    resync: AtomicBool,
}

impl ClientContext for DbOffsets {}

impl ConsumerContext for DbOffsets {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                {
                    let mut owned = self.owned.lock().expect("owned set lock");
                    if !cooperative {
                        owned.clear();
                    }
                    owned.extend(parts.iter().cloned());
                }
                match self.positions(&parts) {
                    Ok(with_offsets) => {
                        let assigned = if cooperative {
                            consumer.incremental_assign(&with_offsets)
                        } else {
                            consumer.assign(&with_offsets)
                        };
                        if let Err(e) = assigned {
                            error!(error = %e, "cannot assign the partitions; will retry");
                            self.resync.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(e) => {
                        // Reading nothing rather than reading from the wrong place: the loop
                        // assigns them once the database answers.
                        warn!(code = e.code(), error = %e, "stored offsets unreadable at assignment; will retry");
                        if !cooperative {
                            let _ = consumer.assign(&TopicPartitionList::new());
                        }
                        self.resync.store(true, Ordering::SeqCst);
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(partitions = ?parts, "partitions revoked");
                {
                    let mut owned = self.owned.lock().expect("owned set lock");
                    if cooperative {
                        for p in &parts {
                            owned.remove(p);
                        }
                    } else {
                        owned.clear();
                    }
                }
                let _ = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
            }
            other => {
                error!(error = ?other, "rebalance failed; giving up the partitions");
                self.owned.lock().expect("owned set lock").clear();
                let _ = consumer.unassign();
            }
        }
    }
}

impl DbOffsets {
    /// `parts` at their stored offsets (or the configured start), read from the database.
    fn positions(&self, parts: &[(String, i32)]) -> Result<TopicPartitionList, DbError> {
        let stored = self
            .rt
            .block_on(stored_offsets(&self.db, &self.consumer, parts))?;
        let mut tpl = TopicPartitionList::new();
        let mut shown = Vec::new();
        for ((topic, partition), next) in parts.iter().zip(stored) {
            let offset = match (next, self.start_at) {
                (Some(n), _) => Offset::Offset(n),
                (None, StartAt::Earliest) => Offset::Beginning,
                (None, StartAt::Latest) => Offset::End,
            };
            shown.push(format!("{topic}[{partition}]@{offset:?}"));
            // Adding a partition to a fresh list cannot fail.
            let _ = tpl.add_partition_offset(topic, *partition, offset);
        }
        info!(consumer = %self.consumer, positions = ?shown, "partitions assigned at the stored offsets");
        Ok(tpl)
    }

    /// Assigns every owned partition again at its stored offset.
    fn resync(&self, consumer: &BaseConsumer<Self>) -> Result<(), String> {
        let parts: Vec<(String, i32)> = self
            .owned
            .lock()
            .expect("owned set lock")
            .iter()
            .cloned()
            .collect();
        let with_offsets = self.positions(&parts).map_err(|e| e.to_string())?;
        if matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        ) {
            let current = consumer.assignment().map_err(|e| e.to_string())?;
            if current.count() > 0 {
                consumer
                    .incremental_unassign(&current)
                    .map_err(|e| e.to_string())?;
            }
            consumer
                .incremental_assign(&with_offsets)
                .map_err(|e| e.to_string())?;
        } else {
            consumer.assign(&with_offsets).map_err(|e| e.to_string())?;
        }
        self.resync.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Pauses after failures: 0.5 s, doubling up to 30 s; cut short by `stop`.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn wait(&mut self, rt: &Handle, stop: &CancellationToken) {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        rt.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn consume_loop<H: Handler>(
    rt: Handle,
    db: Db,
    bus: &BusSection,
    spec: &ConsumerSpec,
    handler: &H,
    stats: &Stats,
    stop: &CancellationToken,
) -> Result<(), ConsumerError> {
    let context = DbOffsets {
        rt: rt.clone(),
        db: db.clone(),
        consumer: spec.name.clone(),
        start_at: spec.start_at,
        owned: Mutex::new(BTreeSet::new()),
        resync: AtomicBool::new(false),
    };
    let consumer: BaseConsumer<DbOffsets> = hub_bus::consumer_config(bus, &spec.group_id)
        .create_with_context(context)
        .map_err(ConsumerError::Config)?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(ConsumerError::Config)?;
    info!(consumer = %spec.name, group = %spec.group_id, topics = ?spec.topics, "consumer started");
    let mut backoff = Backoff::new();
    let mut lag_sampled = std::time::Instant::now();
    while !stop.is_cancelled() {
        if lag_sampled.elapsed() >= LAG_SAMPLE_EVERY {
            lag_sampled = std::time::Instant::now();
            record_lag(&rt, &db, &spec.name, &consumer);
        }
        if consumer.context().resync.load(Ordering::SeqCst) {
            match consumer.context().resync(&consumer) {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    warn!(error = %e, "cannot re-assign at the stored offsets; pausing");
                    backoff.wait(&rt, stop);
                    continue;
                }
            }
        }
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => {
                // librdkafka reports broker trouble here and recovers by itself.
                warn!(error = %e, "consumer poll reported an error");
                continue;
            }
            Some(Ok(m)) => m,
        };
        let delivery = delivery_of(&message);
        match rt.block_on(apply(&db, &spec.name, handler, &delivery)) {
            Ok(outcome) => {
                stats.count(outcome);
                metrics::counter!("app_consumer_records_total", "topic" => delivery.topic.clone(), "outcome" => outcome.as_str())
                    .increment(1);
                debug!(
                    consumer = %spec.name,
                    topic = %delivery.topic,
                    partition = delivery.partition,
                    offset = delivery.offset,
                    outcome = outcome.as_str(),
                    "record done"
                );
                // For lag monitoring only: positions come from the database.
                let _ = consumer.commit_message(&message, CommitMode::Async);
                backoff.reset();
            }
            Err(e) => {
                warn!(
                    consumer = %spec.name,
                    topic = %delivery.topic,
                    partition = delivery.partition,
                    offset = delivery.offset,
                    error = %e,
                    "record not applied; it will be read again"
                );
                stats.retried.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("app_consumer_records_total", "topic" => delivery.topic.clone(), "outcome" => "retried")
                    .increment(1);
                consumer.context().resync.store(true, Ordering::SeqCst);
                backoff.wait(&rt, stop);
            }
        }
    }
    let [applied, duplicate, rejected, behind, lost_race, retried] = stats.snapshot();
    info!(
        consumer = %spec.name,
        applied, duplicate, rejected, behind, lost_race, retried,
        "consumer stopping"
    );
    // Dropping the consumer leaves the group (its partitions move to the other members).
    drop(consumer);
    Ok(())
}

/// How often the consumer's lag is sampled.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// How long the broker may take to give a partition's watermarks.
const LAG_TIMEOUT: Duration = Duration::from_secs(1);

/// Sets `app_consumer_lag_records{topic, partition}` for each owned partition: its high
/// watermark minus the next offset stored in the database (or the low watermark when nothing
/// is stored). A partition whose watermarks the broker does not give is skipped.
fn record_lag(rt: &Handle, db: &Db, name: &str, consumer: &BaseConsumer<DbOffsets>) {
    let parts: Vec<(String, i32)> = consumer
        .context()
        .owned
        .lock()
        .expect("owned set lock")
        .iter()
        .cloned()
        .collect();
    if parts.is_empty() {
        return;
    }
    let stored = match rt.block_on(stored_offsets(db, name, &parts)) {
        Ok(s) => s,
        Err(e) => {
            debug!(error = %e, "consumer lag not sampled");
            return;
        }
    };
    for ((topic, partition), next) in parts.iter().zip(stored) {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, *partition, LAG_TIMEOUT) else {
            continue; // the broker is away: the next sample tries again
        };
        let done = next.unwrap_or(low).max(low.max(0));
        metrics::gauge!("app_consumer_lag_records", "topic" => topic.clone(), "partition" => partition.to_string())
            .set((high - done).max(0) as f64);
    }
}

/// The record, detached from the consumer.
fn delivery_of(m: &rdkafka::message::BorrowedMessage<'_>) -> Delivery {
    let headers = m.headers().map(|h| h.detach());
    let envelope = match &headers {
        Some(h) => Envelope::from_headers(h),
        None => Envelope::from_headers(&OwnedHeaders::new()),
    };
    Delivery {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec),
        headers,
        envelope,
    }
}

/// Stored next offsets of `parts`, in order (`None`: never stored).
pub async fn stored_offsets(
    db: &Db,
    consumer: &str,
    parts: &[(String, i32)],
) -> Result<Vec<Option<i64>>, DbError> {
    let sql = "SELECT next_offset FROM app_consumer_offsets \
               WHERE consumer = $1 AND topic = $2 AND partition_no = $3";
    let mut out = Vec::with_capacity(parts.len());
    for (topic, partition) in parts {
        let next: Option<i64> = on_db!(db, p => sqlx::query_scalar(sql)
            .bind(consumer)
            .bind(topic)
            .bind(partition)
            .fetch_optional(p)
            .await?);
        out.push(next);
    }
    Ok(out)
}

async fn stored_offset(
    tx: &mut Tx,
    consumer: &str,
    d: &Delivery,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT next_offset FROM app_consumer_offsets \
               WHERE consumer = $1 AND topic = $2 AND partition_no = $3";
    Ok(on_tx!(tx, c => sqlx::query(sql)
        .bind(consumer)
        .bind(&d.topic)
        .bind(d.partition)
        .fetch_optional(c)
        .await?
        .map(|r| r.try_get::<i64, _>("next_offset"))
        .transpose()?))
}

/// Moves the partition's offset past `d`, if it still is `expected`. False: someone else
/// moved it.
async fn advance(
    tx: &mut Tx,
    consumer: &str,
    d: &Delivery,
    expected: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let next = d.offset + 1;
    let now = now_ms();
    let done = match expected {
        Some(old) => {
            let sql = "UPDATE app_consumer_offsets SET next_offset = $1, updated_at_ms = $2 \
                       WHERE consumer = $3 AND topic = $4 AND partition_no = $5 AND next_offset = $6";
            on_tx!(tx, c => sqlx::query(sql)
                .bind(next).bind(now).bind(consumer).bind(&d.topic).bind(d.partition).bind(old)
                .execute(c).await?.rows_affected())
        }
        None => {
            let sql = "INSERT INTO app_consumer_offsets (consumer, topic, partition_no, next_offset, updated_at_ms) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, topic, partition_no) DO NOTHING";
            on_tx!(tx, c => sqlx::query(sql)
                .bind(consumer).bind(&d.topic).bind(d.partition).bind(next).bind(now)
                .execute(c).await?.rows_affected())
        }
    };
    Ok(done == 1)
}

/// Claims a message id for this consumer. False: it was applied (or rejected) before.
async fn claim(
    tx: &mut Tx,
    consumer: &str,
    message_id: &str,
    d: &Delivery,
    outcome: Outcome,
) -> Result<bool, sqlx::Error> {
    let sql = "INSERT INTO app_processed_messages \
               (consumer, message_id, topic, partition_no, record_offset, outcome, processed_at_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (consumer, message_id) DO NOTHING";
    let done = on_tx!(tx, c => sqlx::query(sql)
        .bind(consumer).bind(message_id).bind(&d.topic).bind(d.partition).bind(d.offset)
        .bind(outcome.as_str()).bind(now_ms())
        .execute(c).await?.rows_affected());
    Ok(done == 1)
}

async fn record_rejection(
    tx: &mut Tx,
    consumer: &str,
    d: &Delivery,
    message_id: Option<&str>,
    code: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO app_rejected_messages \
               (consumer, topic, partition_no, record_offset, message_id, code, reason, rejected_at_ms) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
               ON CONFLICT (consumer, topic, partition_no, record_offset) DO NOTHING";
    on_tx!(tx, c => sqlx::query(sql)
        .bind(consumer).bind(&d.topic).bind(d.partition).bind(d.offset).bind(message_id)
        .bind(code).bind(reason).bind(now_ms())
        .execute(c).await?.rows_affected());
    Ok(())
}

/// Why a record was not done; it is read again.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Handler(String),
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Db(DbError::Unavailable(e))
    }
}

/// Applies one record in one transaction (see the module docs). Public so an app's tests can
/// drive records through exactly the path the loop uses.
///
/// The record is applied in a hop span (`consume`) continuing the record's `traceparent`, so
/// every line logged while it is applied has its `trace_id`, and events enqueued in the outbox
/// meanwhile carry the trace on.
pub async fn apply<H: Handler>(
    db: &Db,
    consumer: &str,
    handler: &H,
    d: &Delivery,
) -> Result<Outcome, ApplyError> {
    let message_id = d.envelope.as_ref().map(|e| e.message_id.to_string());
    let span = hub_telemetry::hop_span!(
        "consume",
        consumer,
        message_id = message_id.as_deref().unwrap_or("-"),
        topic = %d.topic,
        partition = d.partition,
        offset = d.offset
    );
    let record_trace = d
        .envelope
        .as_ref()
        .ok()
        .and_then(|e| e.traceparent.as_deref());
    hub_telemetry::continue_from_header(&span, record_trace);
    apply_in_hop(db, consumer, handler, d)
        .instrument(span)
        .await
}

async fn apply_in_hop<H: Handler>(
    db: &Db,
    consumer: &str,
    handler: &H,
    d: &Delivery,
) -> Result<Outcome, ApplyError> {
    let mut tx = db.begin().await?;
    let stored = stored_offset(&mut tx, consumer, d).await?;
    if stored.is_some_and(|next| d.offset < next) {
        tx.rollback().await?;
        return Ok(Outcome::Behind);
    }
    let (outcome, rejection) = match &d.envelope {
        Err(e) => (
            Outcome::Rejected,
            Some((None, "ENVELOPE_INVALID", e.to_string())),
        ),
        Ok(envelope) => {
            let id = envelope.message_id.to_string();
            if !claim(&mut tx, consumer, &id, d, Outcome::Applied).await? {
                (Outcome::Duplicate, None)
            } else {
                match handler.handle(&mut tx, d, envelope).await {
                    Ok(()) => (Outcome::Applied, None),
                    Err(HandleError::Reject { code, reason }) => {
                        (Outcome::Rejected, Some((Some(id), code, reason)))
                    }
                    Err(HandleError::Retry(reason)) => {
                        tx.rollback().await?;
                        return Err(ApplyError::Handler(reason));
                    }
                }
            }
        }
    };
    if let Some((message_id, code, reason)) = rejection {
        // Nothing the handler wrote may stay: only the rejection, the claim and the offset.
        tx.rollback().await?;
        tx = db.begin().await?;
        if stored_offset(&mut tx, consumer, d).await? != stored {
            tx.rollback().await?;
            return Ok(Outcome::LostRace);
        }
        if let Some(id) = &message_id {
            claim(&mut tx, consumer, id, d, Outcome::Rejected).await?;
        }
        record_rejection(&mut tx, consumer, d, message_id.as_deref(), code, &reason).await?;
        warn!(
            consumer,
            topic = %d.topic,
            partition = d.partition,
            offset = d.offset,
            code,
            reason = %reason,
            "record rejected"
        );
    }
    if !advance(&mut tx, consumer, d, stored).await? {
        tx.rollback().await?;
        warn!(consumer, topic = %d.topic, partition = d.partition, offset = d.offset,
              "another consumer moved this partition's offset; record left to it");
        return Ok(Outcome::LostRace);
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Forgets message ids applied more than `older_than` ago (they can no longer be replayed:
/// the topics' retention is shorter). Returns how many.
pub async fn purge_processed(db: &Db, older_than: Duration) -> Result<u64, DbError> {
    let cutoff = now_ms() - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let sql = "DELETE FROM app_processed_messages WHERE processed_at_ms < $1";
    Ok(on_db!(db, p => sqlx::query(sql).bind(cutoff).execute(p).await?.rows_affected()))
}
