//! The message steps every path of the hub shares, so the gateway, the poller, the egress and
//! the domain apps treat a message the same way:
//!
//! * [`pii`]: personal fields (`x-pii` in the contract) sealed with SM4-GCM before Kafka, and
//!   opened again only where a partner or an authorised person must read them;
//! * [`normalize`]: partner bytes → contract record (mapping, validation), sealed, Avro-encoded
//!   in the Confluent wire format, with the envelope that goes with it (gateway and poller);
//! * [`outbound`]: a record read from Kafka → the partner's payload (egress).

pub mod normalize;
pub mod outbound;
pub mod pii;

pub use normalize::{
    frame_record, normalize, normalize_with, split_topic, stage_done, NormalizeError, Normalized,
};
pub use outbound::{read_record, render, OutboundError, Rendered};
