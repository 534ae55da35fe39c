//! The producer: one per process, shared by every task that publishes.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use crate::client_config::producer_config;
use crate::{BusError, BusSection, Envelope};

/// Counts a produce by topic and outcome and times it (until the broker's acknowledgement).
fn observe_produce(topic: &str, ok: bool, started: std::time::Instant) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!("hub_bus_produced_total", "topic" => topic.to_string(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("hub_bus_produce_seconds", "topic" => topic.to_string())
        .record(started.elapsed().as_secs_f64());
}

/// Where the broker put a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent `acks=all` producer. Cheap to clone: clones share one librdkafka client.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    /// How long a send may wait for room in librdkafka's queue before it fails (the queue is
    /// full only when the broker is slower than intake for a long time).
    queue_timeout: Duration,
}

impl Producer {
    pub fn new(section: &BusSection) -> Result<Self, BusError> {
        let inner: FutureProducer = producer_config(section)
            .create()
            .map_err(BusError::Config)?;
        Ok(Self {
            inner,
            queue_timeout: Duration::from_millis(section.delivery_timeout_ms),
        })
    }

    /// Sends one record keyed by the envelope's object id, with the envelope as headers, and
    /// returns only when the broker has acknowledged it to all in-sync replicas (or failed).
    pub async fn send(
        &self,
        topic: &str,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<Delivered, BusError> {
        let record = FutureRecord::to(topic)
            .key(envelope.key())
            .payload(payload)
            .headers(envelope.to_headers());
        let started = std::time::Instant::now();
        let sent = self
            .inner
            .send(record, Timeout::After(self.queue_timeout))
            .await;
        observe_produce(topic, sent.is_ok(), started);
        match sent {
            Ok(d) => Ok(Delivered {
                topic: topic.to_string(),
                partition: d.partition,
                offset: d.offset,
            }),
            Err((source, _)) => Err(BusError::Produce {
                topic: topic.to_string(),
                source,
            }),
        }
    }

    /// Sends a record with its own key and headers as they are (a replayed dead letter keeps
    /// the original's headers and id); returns after the broker's acknowledgement.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<Delivered, BusError> {
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        let started = std::time::Instant::now();
        let sent = self
            .inner
            .send(record, Timeout::After(self.queue_timeout))
            .await;
        observe_produce(topic, sent.is_ok(), started);
        match sent {
            Ok(d) => Ok(Delivered {
                topic: topic.to_string(),
                partition: d.partition,
                offset: d.offset,
            }),
            Err((source, _)) => Err(BusError::Produce {
                topic: topic.to_string(),
                source,
            }),
        }
    }

    /// How long one record may take to be acknowledged before it is reported failed.
    pub fn delivery_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Records handed to librdkafka and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits until every record in flight has its delivery report, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(Timeout::After(timeout)))
            .await
            .map_err(|e| BusError::Unreachable(format!("flush task failed: {e}")))?
            .map_err(BusError::Flush)
    }

    /// Asks the cluster for its metadata: proves a broker answers within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<usize, BusError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| BusError::Unreachable(format!("probe task failed: {e}")))?
        .map_err(|e| BusError::Unreachable(e.to_string()))
    }
}
