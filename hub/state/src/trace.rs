//! The message trace: where each message went (received, mapped to which contract, produced to
//! which topic, partition and offset, delivered or dead-lettered, replayed), kept in
//! `hub_message_trace` and asked for by message id, correlation id or the partner's object id
//! (ticket number, licence number).
//!
//! Writers never wait for the database: they hand events to a [`TraceSink`], a bounded queue
//! that a background task empties in batches (one transaction per batch). When the queue is
//! full the event is dropped and counted (`hub_trace_events_dropped_total{reason="full"}`): a
//! trace is an operator's aid, and a slow state store must not slow down pushes or deliveries.
//!
//! An event's `detail` holds codes, sizes, topics, offsets, routes and partner codes, never
//! payload values: the trace is kept for weeks and must hold no personal data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{now_ms, observed, Pool, StateError, StateStore};

/// One step of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEvent {
    /// The hub's message id; for a push refused before it got one, the request id.
    pub message_id: String,
    pub correlation_id: Option<String>,
    /// The partner's id of the object (ticket number, licence number…).
    pub object_id: Option<String>,
    /// Unix epoch milliseconds (UTC).
    pub at_ms: i64,
    /// `received`, `produced`, `rejected`, `duplicate`, `pulled`, `delivered`,
    /// `dead_lettered`, `replayed`.
    pub stage: String,
    /// Who acted: `hub:<instance>` for the hub's own steps (filled in by the sink when left
    /// empty), the operator for a replay.
    pub actor: String,
    /// Codes, sizes, topics, offsets, routes; never payload values.
    pub detail: Value,
}

impl TraceEvent {
    /// An event of `stage` for `message_id`, now, with no detail yet.
    pub fn new(stage: &str, message_id: impl Into<String>) -> Self {
        Self {
            message_id: message_id.into(),
            correlation_id: None,
            object_id: None,
            at_ms: now_ms(),
            stage: stage.to_string(),
            actor: String::new(),
            detail: Value::Object(Default::default()),
        }
    }

    pub fn correlation(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn object(mut self, id: impl Into<String>) -> Self {
        self.object_id = Some(id.into()).filter(|s: &String| !s.is_empty());
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored event, with its position in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTraceEvent {
    pub seq: i64,
    pub event: TraceEvent,
}

/// The events found for an id.
#[derive(Debug, Clone, Default)]
pub struct TraceResult {
    /// Every event of every message found, ordered by time (then by insertion).
    pub events: Vec<StoredTraceEvent>,
    /// More events exist than the limit allowed.
    pub truncated: bool,
}

impl StateStore {
    /// Stores `events` in one transaction.
    pub async fn record_trace(&self, events: &[TraceEvent]) -> Result<(), StateError> {
        if events.is_empty() {
            return Ok(());
        }
        let result: Result<_, StateError> = async {
            let sql = "INSERT INTO hub_message_trace \
                       (message_id, correlation_id, object_id, at_ms, stage, actor, detail) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
            let _gate = self.write_gate().await;
            on_pool!(self, p => {
                let mut tx = p.begin().await?;
                for e in events {
                    sqlx::query(sql)
                        .bind(&e.message_id).bind(&e.correlation_id).bind(&e.object_id)
                        .bind(e.at_ms).bind(&e.stage).bind(&e.actor)
                        .bind(e.detail.to_string())
                        .execute(&mut *tx).await?;
                }
                tx.commit().await?;
            });
            Ok(())
        }
        .await;
        observed("record_trace", result)
    }

    /// The events of every message whose message id, correlation id or object id is `id`:
    /// a ticket number finds all its messages, each with all its events (also those that do
    /// not carry the ticket number). At most `limit` events, oldest first.
    pub async fn trace(&self, id: &str, limit: i64) -> Result<TraceResult, StateError> {
        let result: Result<_, StateError> = async {
            // UNION of three indexed look-ups rather than one OR, so each uses its index.
            let sql =
                "SELECT seq, message_id, correlation_id, object_id, at_ms, stage, actor, detail \
                       FROM hub_message_trace WHERE message_id IN ( \
                         SELECT message_id FROM hub_message_trace WHERE message_id = $1 \
                         UNION SELECT message_id FROM hub_message_trace WHERE correlation_id = $1 \
                         UNION SELECT message_id FROM hub_message_trace WHERE object_id = $1) \
                       ORDER BY at_ms, seq LIMIT $2";
            let limit = limit.clamp(1, 100_000);
            let mut events = on_pool!(self, p => {
                let rows = sqlx::query(sql).bind(id).bind(limit + 1).fetch_all(p).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let detail: String = r.try_get("detail")?;
                    out.push(StoredTraceEvent {
                        seq: r.try_get("seq")?,
                        event: TraceEvent {
                            message_id: r.try_get("message_id")?,
                            correlation_id: r.try_get("correlation_id")?,
                            object_id: r.try_get("object_id")?,
                            at_ms: r.try_get("at_ms")?,
                            stage: r.try_get("stage")?,
                            actor: r.try_get("actor")?,
                            detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                        },
                    });
                }
                out
            });
            let truncated = events.len() as i64 > limit;
            events.truncate(limit as usize);
            Ok(TraceResult { events, truncated })
        }
        .await;
        observed("trace", result)
    }

    /// The newest `limit` events of `stage` (e.g. `rejected`), newest first: the console's
    /// recent refusals of a partner.
    pub async fn recent_trace_events(
        &self,
        stage: &str,
        limit: i64,
    ) -> Result<Vec<StoredTraceEvent>, StateError> {
        let result: Result<_, StateError> = async {
            let sql =
                "SELECT seq, message_id, correlation_id, object_id, at_ms, stage, actor, detail \
                 FROM hub_message_trace WHERE stage = $1 ORDER BY seq DESC LIMIT $2";
            let limit = limit.clamp(1, 10_000);
            Ok(on_pool!(self, p => {
                let rows = sqlx::query(sql).bind(stage).bind(limit).fetch_all(p).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let detail: String = r.try_get("detail")?;
                    out.push(StoredTraceEvent {
                        seq: r.try_get("seq")?,
                        event: TraceEvent {
                            message_id: r.try_get("message_id")?,
                            correlation_id: r.try_get("correlation_id")?,
                            object_id: r.try_get("object_id")?,
                            at_ms: r.try_get("at_ms")?,
                            stage: r.try_get("stage")?,
                            actor: r.try_get("actor")?,
                            detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                        },
                    });
                }
                out
            }))
        }
        .await;
        observed("recent_trace_events", result)
    }

    /// Deletes the events older than `at_ms`; returns how many. Deletes in slices so a large
    /// purge never holds one long transaction.
    pub async fn purge_trace_before(&self, at_ms: i64) -> Result<u64, StateError> {
        const SLICE: i64 = 5_000;
        let result: Result<_, StateError> = async {
            let sql = "DELETE FROM hub_message_trace WHERE seq IN \
                       (SELECT seq FROM hub_message_trace WHERE at_ms < $1 ORDER BY seq LIMIT $2)";
            let mut total = 0;
            loop {
                let n = {
                    let _gate = self.write_gate().await;
                    on_pool!(self, p => sqlx::query(sql).bind(at_ms).bind(SLICE).execute(p).await?.rows_affected())
                };
                total += n;
                if n < SLICE as u64 {
                    return Ok(total);
                }
            }
        }
        .await;
        observed("purge_trace_before", result)
    }

    /// Attaches `sink`: [`StateStore::trace_event`] on this handle (and its clones made from
    /// now on) queues to it, and [`StateStore::close`] flushes it first.
    pub fn with_trace_sink(mut self, sink: TraceSink) -> Self {
        self.trace = Some(sink);
        self
    }

    /// Queues `event` for the trace without waiting; ignored when no sink is attached (tools
    /// that do not run the hub), dropped and counted when the queue is full.
    pub fn trace_event(&self, event: TraceEvent) {
        if let Some(sink) = &self.trace {
            sink.record(event);
        }
    }
}

/// Queue and batching of a [`TraceSink`].
#[derive(Debug, Clone, Copy)]
pub struct SinkOptions {
    /// Events waiting at most; more are dropped.
    pub capacity: usize,
    /// Events per transaction at most.
    pub batch: usize,
    /// How long the first event of a batch waits for others.
    pub interval: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            batch: 500,
            interval: Duration::from_millis(200),
        }
    }
}

struct SinkShared {
    tx: mpsc::Sender<TraceEvent>,
    actor: String,
    dropped: AtomicU64,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The trace's writer: a bounded queue and a task that stores it in batches. Cheap to clone.
#[derive(Clone)]
pub struct TraceSink {
    shared: Arc<SinkShared>,
}

impl TraceSink {
    /// Starts the writer task on the current tokio runtime. `actor` (`hub:<instance>`) is
    /// stamped on events that name none.
    pub fn start(store: StateStore, actor: &str, options: SinkOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        // The task's handle has no sink of its own: closing the store it writes to must not
        // wait for itself.
        let store = StateStore {
            trace: None,
            ..store
        };
        let task = tokio::spawn(write_batches(store, rx, stop_rx, options));
        Self {
            shared: Arc::new(SinkShared {
                tx,
                actor: actor.to_string(),
                dropped: AtomicU64::new(0),
                stop: Mutex::new(Some(stop_tx)),
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Queues `event`; never waits. A full queue drops it and counts the drop.
    pub fn record(&self, mut event: TraceEvent) {
        if event.actor.is_empty() {
            event.actor.clone_from(&self.shared.actor);
        }
        if self.shared.tx.try_send(event).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("hub_trace_events_dropped_total", "reason" => "full").increment(1);
        }
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Stores what is queued and stops the writer. Events recorded afterwards are dropped.
    pub async fn close(&self) {
        let stop = self.shared.stop.lock().expect("not poisoned").take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self.shared.task.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn write_batches(
    store: StateStore,
    mut rx: mpsc::Receiver<TraceEvent>,
    mut stop: oneshot::Receiver<()>,
    options: SinkOptions,
) {
    let batch_max = options.batch.max(1);
    let mut batch = Vec::with_capacity(batch_max);
    let mut stopping = false;
    while !stopping {
        // Wait for a first event (or the stop), then give others `interval` to join it.
        tokio::select! {
            _ = &mut stop => stopping = true,
            first = rx.recv() => match first {
                Some(e) => batch.push(e),
                None => stopping = true,
            },
        }
        if !stopping {
            let deadline = tokio::time::Instant::now() + options.interval;
            while batch.len() < batch_max {
                tokio::select! {
                    _ = &mut stop => { stopping = true; break; }
                    next = tokio::time::timeout_at(deadline, rx.recv()) => match next {
                        Ok(Some(e)) => batch.push(e),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        }
        if stopping {
            // Shutdown: take everything still queued.
            rx.close();
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
        }
        for chunk in batch.chunks(batch_max) {
            if let Err(e) = store.record_trace(chunk).await {
                metrics::counter!("hub_trace_events_dropped_total", "reason" => "store")
                    .increment(chunk.len() as u64);
                tracing::warn!(code = e.code(), error = %e, events = chunk.len(), "trace events not stored");
            }
        }
        batch.clear();
    }
}
