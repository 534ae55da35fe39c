//! The consumer building block: read, do the work, then commit that exact record.

use std::sync::Arc;

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
        let inner: StreamConsumer = consumer_config(section, group_id)
            .create()
            .map_err(BusError::Config)?;
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
