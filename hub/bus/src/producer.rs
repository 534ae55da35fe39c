//! The producer: one per process, shared by every task that publishes.
//!
//! It renews its librdkafka client when the broker fences it. After records time out (the
//! broker was away longer than `delivery_timeout_ms`), the idempotent producer bumps its epoch
//! (KIP-360); a broker that does not follow (Tansu 0.6 answers `ProducerFenced` to every
//! produce from then on, `docs/broker.md`) would otherwise refuse this process until it is
//! restarted. A fatal error of the idempotent producer is renewed the same way, as
//! librdkafka's documentation asks. Records that failed stay failed: their callers retry them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tracing::warn;

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
    client: Arc<RwLock<Client>>,
    config: ClientConfig,
    /// How long a send may wait for room in librdkafka's queue before it fails (the queue is
    /// full only when the broker is slower than intake for a long time).
    queue_timeout: Duration,
}

/// The current librdkafka client and how many times it was renewed.
struct Client {
    producer: FutureProducer,
    generation: u64,
}

/// Errors after which this client cannot produce again: the broker fenced its producer id or
/// epoch, or its idempotence state is broken.
fn needs_new_client(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::Fatal
        )
    )
}

impl Producer {
    pub fn new(section: &BusSection) -> Result<Self, BusError> {
        let config = producer_config(section);
        let producer: FutureProducer = config.create().map_err(BusError::Config)?;
        Ok(Self {
            client: Arc::new(RwLock::new(Client {
                producer,
                generation: 0,
            })),
            config,
            queue_timeout: Duration::from_millis(section.delivery_timeout_ms),
        })
    }

    /// The current client and its generation.
    fn current(&self) -> (FutureProducer, u64) {
        let c = self.client.read().unwrap_or_else(|p| p.into_inner());
        (c.producer.clone(), c.generation)
    }

    /// Replaces the client of `generation` after `error` (once: concurrent failures of the same
    /// client renew it once). The old client is dropped when its last send finishes.
    fn renew(&self, generation: u64, error: &KafkaError) {
        let mut c = self.client.write().unwrap_or_else(|p| p.into_inner());
        if c.generation != generation {
            return;
        }
        match self.config.create::<FutureProducer>() {
            Ok(producer) => {
                c.producer = producer;
                c.generation += 1;
                metrics::counter!("hub_bus_producer_renewed_total").increment(1);
                warn!(error = %error, generation = c.generation, "the broker fenced the producer; a new one takes over");
            }
            Err(e) => warn!(error = %e, "a new producer could not be made; the current one stays"),
        }
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
        self.deliver(topic, record).await
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
        self.deliver(topic, record).await
    }

    /// Sends `record` with the current client and waits for its delivery report; renews the
    /// client when the report says it can produce no more.
    async fn deliver<K, P>(
        &self,
        topic: &str,
        record: FutureRecord<'_, K, P>,
    ) -> Result<Delivered, BusError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let (producer, generation) = self.current();
        let started = std::time::Instant::now();
        let sent = producer
            .send(record, Timeout::After(self.queue_timeout))
            .await;
        observe_produce(topic, sent.is_ok(), started);
        match sent {
            Ok(d) => Ok(Delivered {
                topic: topic.to_string(),
                partition: d.partition,
                offset: d.offset,
            }),
            Err((source, _)) => {
                if needs_new_client(&source) || producer.client().fatal_error().is_some() {
                    self.renew(generation, &source);
                }
                Err(BusError::Produce {
                    topic: topic.to_string(),
                    source,
                })
            }
        }
    }

    /// How long one record may take to be acknowledged before it is reported failed.
    pub fn delivery_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Records handed to librdkafka and not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.current().0.in_flight_count()
    }

    /// Waits until every record in flight has its delivery report, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let inner = self.current().0;
        tokio::task::spawn_blocking(move || inner.flush(Timeout::After(timeout)))
            .await
            .map_err(|e| BusError::Unreachable(format!("flush task failed: {e}")))?
            .map_err(BusError::Flush)
    }

    /// Asks the cluster for its metadata: proves a broker answers within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<usize, BusError> {
        let inner = self.current().0;
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
