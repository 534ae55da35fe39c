//! The consumer building block: read, do the work, then commit that exact record.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};

use crate::client_config::consumer_config;
use crate::{BusError, BusSection, Envelope, EnvelopeError};

/// One record read from the bus, detached from the consumer so it can be handed to a task.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The raw headers, kept so that a dead letter can carry them unchanged.
    pub headers: Option<OwnedHeaders>,
    /// The envelope read from the headers; an error here means the record is malformed and
    /// belongs in the dead-letter topic, not that the consumer failed.
    pub envelope: Result<Envelope, EnvelopeError>,
}

/// A member of a consumer group that never commits on its own.
///
/// Use: `let d = consumer.next().await?; work(&d).await?; consumer.commit(&d).await?;`.
/// If the process dies between the work and the commit, the record comes again after the
/// group rebalances: work must be idempotent (keyed by the envelope's message id).
pub struct Consumer {
    inner: Arc<StreamConsumer>,
    group_id: String,
}

impl Consumer {
    /// Joins `group_id` and subscribes to `topics`.
    pub fn new(section: &BusSection, group_id: &str, topics: &[&str]) -> Result<Self, BusError> {
        Self::with_properties(section, group_id, topics, &[])
    }

    /// Like [`Consumer::new`], with librdkafka properties of this consumer's own.
    pub fn with_properties(
        section: &BusSection,
        group_id: &str,
        topics: &[&str],
        properties: &[(&str, &str)],
    ) -> Result<Self, BusError> {
        let mut config = consumer_config(section, group_id);
        for (k, v) in properties {
            config.set(*k, *v);
        }
        let inner: StreamConsumer = config.create().map_err(BusError::Config)?;
        inner.subscribe(topics).map_err(BusError::Config)?;
        Ok(Self {
            inner: Arc::new(inner),
            group_id: group_id.to_string(),
        })
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The next record of the assigned partitions. Waits until there is one.
    pub async fn next(&self) -> Result<Delivery, BusError> {
        let m = self.inner.recv().await.map_err(BusError::Consume)?;
        let headers = m.headers().map(|h| h.detach());
        let envelope = match &headers {
            Some(h) => Envelope::from_headers(h),
            None => Envelope::from_headers(&OwnedHeaders::new()),
        };
        Ok(Delivery {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            envelope,
        })
    }

    /// A handle that measures this member's lag from another task (see [`LagProbe`]).
    pub fn lag_probe(&self) -> LagProbe {
        LagProbe {
            inner: Arc::clone(&self.inner),
            group_id: self.group_id.clone(),
        }
    }

    /// Commits, for each `(topic, partition, next_offset)`, the offset of the next record to
    /// read (everything before it is done). Synchronous: on Ok the coordinator stored them.
    pub async fn commit_offsets(&self, offsets: Vec<(String, i32, i64)>) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, next) in &offsets {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                    .map_err(|source| BusError::Commit {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: *next,
                        source,
                    })?;
            }
            inner.commit(&tpl, CommitMode::Sync).map_err(|source| {
                let (topic, partition, offset) = offsets[0].clone();
                BusError::Commit {
                    topic,
                    partition,
                    offset,
                    source,
                }
            })
        })
        .await
        .map_err(|e| BusError::Unreachable(format!("commit task failed: {e}")))?
    }

    /// Commits `delivery` (and so everything before it in its partition) synchronously: when
    /// this returns Ok the group coordinator has stored the offset.
    pub async fn commit(&self, delivery: &Delivery) -> Result<(), BusError> {
        let inner = Arc::clone(&self.inner);
        let (topic, partition, offset) =
            (delivery.topic.clone(), delivery.partition, delivery.offset);
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, Offset::Offset(offset + 1))
                .and_then(|()| inner.commit(&tpl, CommitMode::Sync))
                .map_err(|source| BusError::Commit {
                    topic,
                    partition,
                    offset,
                    source,
                })
        })
        .await
        .map_err(|e| BusError::Unreachable(format!("commit task failed: {e}")))?
    }
}

/// Measures a [`Consumer`]'s lag beside it: the consumer keeps reading while a sampler asks the
/// broker for watermarks and committed offsets.
#[derive(Clone)]
pub struct LagProbe {
    inner: Arc<StreamConsumer>,
    group_id: String,
}

impl LagProbe {
    /// The lag of each partition assigned to the member: the partition's high watermark minus
    /// the group's committed offset (the records not yet done), as `(topic, partition, lag)`.
    /// A partition the group never committed counts from its low watermark. Asks the broker,
    /// so it takes up to `timeout` per partition; call it from a periodic sampler.
    pub async fn lag(&self, timeout: Duration) -> Result<Vec<(String, i32, i64)>, BusError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let assigned = inner.assignment().map_err(BusError::Consume)?;
            if assigned.count() == 0 {
                return Ok(Vec::new());
            }
            let committed = inner
                .committed_offsets(assigned, timeout)
                .map_err(BusError::Consume)?;
            let mut out = Vec::new();
            for e in committed.elements() {
                let (low, high) = inner
                    .fetch_watermarks(e.topic(), e.partition(), timeout)
                    .map_err(BusError::Consume)?;
                let done = match e.offset() {
                    Offset::Offset(o) => o.max(low),
                    _ => low,
                };
                out.push((e.topic().to_string(), e.partition(), (high - done).max(0)));
            }
            Ok(out)
        })
        .await
        .map_err(|e| BusError::Unreachable(format!("lag task failed: {e}")))?
    }

    /// Samples [`Consumer::lag`] into the gauge `hub_bus_consumer_lag_records{group, topic,
    /// partition}`. Errors are left to the next sample (the broker may be away).
    pub async fn record_lag(&self, timeout: Duration) {
        match self.lag(timeout).await {
            Ok(parts) => {
                for (topic, partition, lag) in parts {
                    metrics::gauge!(
                        "hub_bus_consumer_lag_records",
                        "group" => self.group_id.clone(),
                        "topic" => topic,
                        "partition" => partition.to_string()
                    )
                    .set(lag as f64);
                }
            }
            Err(e) => {
                tracing::debug!(group = %self.group_id, error = %e, "consumer lag not sampled")
            }
        }
    }

    /// Calls [`LagProbe::record_lag`] every `every` until `stop` is cancelled.
    pub async fn run(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.record_lag(every.min(Duration::from_secs(5))).await;
        }
    }
}

/// Reads the one record at `topic[partition]@offset` without joining a group (a dead letter to
/// show or replay). `Ok(None)` when the offset is not (or no longer) in the log.
pub async fn fetch_record(
    section: &BusSection,
    topic: &str,
    partition: i32,
    offset: i64,
    timeout: std::time::Duration,
) -> Result<Option<Delivery>, BusError> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = consumer_config(section, "hub-fetch-one")
        .create()
        .map_err(BusError::Config)?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
            .map_err(BusError::Config)?;
        consumer.assign(&tpl).map_err(BusError::Config)?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match consumer.poll(std::time::Duration::from_millis(200)) {
                None => continue,
                Some(Err(e)) => return Err(BusError::Consume(e)),
                Some(Ok(m)) => {
                    if m.offset() != offset {
                        return Ok(None);
                    }
                    let headers = m.headers().map(|h| h.detach());
                    let envelope = match &headers {
                        Some(h) => Envelope::from_headers(h),
                        None => Envelope::from_headers(&OwnedHeaders::new()),
                    };
                    return Ok(Some(Delivery {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                        envelope,
                    }));
                }
            }
        }
        Ok(None)
    })
    .await
    .map_err(|e| BusError::Unreachable(format!("fetch task failed: {e}")))?
}
