//! The hub's Kafka bus, built on `rdkafka` (librdkafka).
//!
//! Everything that reaches Kafka or reads from it goes through this crate, so the delivery
//! guarantees of `ARCHITECTURE.md` are kept in one place:
//!
//! * [`Producer`]: idempotent, `acks=all`; [`Producer::send`] returns only after the broker's
//!   delivery report, so an ingress that answers 2xx after it has really handed the message over.
//! * [`Consumer`]: consumer groups with automatic commits switched off; the caller commits a
//!   [`Delivery`] only after its work is durably done, so a crash repeats work instead of
//!   losing it.
//! * [`admin`]: topics are created explicitly from declarations (no broker auto-creation), and
//!   existing topics are compared with what is declared.
//! * [`Envelope`]: the message id, event type, partner, object key, timestamps, correlation and
//!   causation ids, and W3C trace context, carried as Kafka headers.
//!
//! Nothing here depends on the development broker (Tansu); the same code runs against Apache
//! Kafka or Redpanda.

pub mod admin;
mod client_config;
mod consumer;
mod envelope;
mod groups;
mod lifecycle;
mod producer;

pub use client_config::{consumer_config, producer_config};
pub use consumer::{fetch_record, Consumer, Delivery, LagProbe};
pub use envelope::{header, now_shanghai, shanghai, Envelope, EnvelopeError};
pub use groups::{
    app_groups, consumed_by, is_hub_group, partition_lag, AppGroup, AppGroups, AppTopic,
    ConsumedBy, GroupPosition, HUB_INTERNAL_GROUPS,
};
pub use lifecycle::{DrainReport, Lifecycle};
pub use producer::{Delivered, Producer};

pub use hub_config::sections::BusSection;

/// Errors of the bus, each with a stable code for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The client could not be created from the settings.
    #[error("BUS_CONFIG: cannot configure the Kafka client: {0}")]
    Config(#[source] rdkafka::error::KafkaError),
    /// The broker did not acknowledge the record (after librdkafka's own retries).
    #[error("BUS_PRODUCE_FAILED: the broker did not take the record for `{topic}`: {source}")]
    Produce {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The producer was dropped before it reported on the record.
    #[error(
        "BUS_PRODUCE_CANCELLED: the producer shut down before the broker answered for `{topic}`"
    )]
    ProduceCancelled { topic: String },
    /// Reading from the consumer failed.
    #[error("BUS_CONSUME_FAILED: {0}")]
    Consume(#[source] rdkafka::error::KafkaError),
    /// A commit was not accepted by the group coordinator.
    #[error("BUS_COMMIT_FAILED: commit of {topic}[{partition}]@{offset} failed: {source}")]
    Commit {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Flushing the producer at shutdown did not finish in time.
    #[error("BUS_FLUSH_FAILED: {0}")]
    Flush(#[source] rdkafka::error::KafkaError),
    /// An admin (topic) operation failed.
    #[error("BUS_ADMIN_FAILED: {0}")]
    Admin(String),
    /// The broker could not be reached in time.
    #[error("BUS_UNREACHABLE: {0}")]
    Unreachable(String),
}

impl BusError {
    /// The stable code, for metrics labels and error answers.
    pub fn code(&self) -> &'static str {
        match self {
            BusError::Config(_) => "BUS_CONFIG",
            BusError::Produce { .. } => "BUS_PRODUCE_FAILED",
            BusError::ProduceCancelled { .. } => "BUS_PRODUCE_CANCELLED",
            BusError::Consume(_) => "BUS_CONSUME_FAILED",
            BusError::Commit { .. } => "BUS_COMMIT_FAILED",
            BusError::Flush(_) => "BUS_FLUSH_FAILED",
            BusError::Admin(_) => "BUS_ADMIN_FAILED",
            BusError::Unreachable(_) => "BUS_UNREACHABLE",
        }
    }
}
