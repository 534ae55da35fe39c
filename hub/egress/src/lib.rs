//! The egress: messages on Kafka delivered to partner platforms, at least once, in order per
//! object, with every message ending delivered or dead-lettered.
//!
//! For each `[[delivery]]` of an adapter manifest that a deployment enables under
//! `[partners.<partner>]`, one [`worker::RouteWorker`] runs as a member of the consumer group
//! `hub-egress.<partner>.<delivery>` on the delivery's contract topic (and the replay topic):
//!
//! 1. the record is decoded, its personal fields opened, and the outbound mapping writes the
//!    partner's payload ([`hub_pipeline::outbound`]); a record that cannot be is dead-lettered
//!    at once (`EGRESS_MALFORMED`, `MAPPING_*`, `EGRESS_PERSONAL_DATA_UNREADABLE`);
//! 2. it is sent through the partner's [`hub_adapter::PartnerClient`] (signed, rate-limited,
//!    bounded concurrency and time) with the message id as idempotency key, after the circuit
//!    breaker lets it through;
//! 3. the answer is classified ([`hub_adapter::answer`]): delivered; retryable (wait with full
//!    jitter, honouring Retry-After, until the retry budget is spent); or permanent;
//! 4. a record's offset is committed only when it and every record before it in its partition
//!    were delivered or dead-lettered ([`offsets::OffsetTracker`]).
//!
//! Records with the same key (one ticket, one licence) are delivered one after another; other
//! keys go on beside a key that is retrying, until `window` records are held, when the worker
//! pauses its partitions. Dead letters ([`deadletter`]) carry the original bytes and headers to
//! `hub.message.deadlettered.v1` and are indexed in the state store; [`dlq`] lists, shows,
//! replays and discards them. A replay goes to the replay topic with the original message id
//! and is picked up by its route's worker only.

pub mod deadletter;
pub mod dlq;
mod files;
pub mod offsets;
pub mod sftp;
pub mod worker;

pub use deadletter::DEAD_LETTER_TOPIC;
pub use worker::{start_routes, EgressContext, RouteSpec};

/// The topic replays go to; every delivery worker reads it and keeps the records of its route.
pub const REPLAY_TOPIC: &str = "hub.egress.replay.v1";

/// Kafka headers the egress adds to a replayed record.
pub mod header {
    /// The route (`<partner>/<delivery>`) the replay is for.
    pub const REPLAY_ROUTE: &str = "hub-replay-route";
    /// The dead letter it replays.
    pub const REPLAY_OF: &str = "hub-replay-of";
    /// On a dead letter's original: the payload is sealed as a whole
    /// ([`crate::deadletter::seal_payload`]); the value names the scheme.
    pub const PAYLOAD_SEALED: &str = "hub-payload-sealed";
}

/// The replay topic as the hub creates it at start.
pub fn replay_topic_spec() -> hub_bus::admin::TopicSpec {
    hub_bus::admin::TopicSpec {
        name: REPLAY_TOPIC.to_string(),
        partitions: 3,
        config: [
            (
                "retention.ms".to_string(),
                (30_i64 * 86_400_000).to_string(),
            ),
            ("cleanup.policy".to_string(), "delete".to_string()),
        ]
        .into_iter()
        .collect(),
    }
}
