//! What the hub knows of a partner platform, shared by the egress and the poller.
//!
//! Two sources, kept apart on purpose:
//!
//! * the **adapter manifest**, `adapters/<partner>/adapter.toml` ([`manifest`]): the partner's
//!   protocol as it is everywhere — the paths of its APIs, which outbound mapping feeds which
//!   delivery, its pull jobs (schedule, paging, cursor fields), and its business answer codes
//!   with whether each is success, retryable or permanent. It is reviewed with the adapter and
//!   never differs between deployments;
//! * the **partner section** of the hub's configuration, `[partners.<partner>]` ([`partner`]):
//!   what one deployment sets — the base URL, the hub's credentials at that partner, and the
//!   delivery policy (concurrency, rate, timeout, retry budget, circuit breaker).
//!
//! [`client::PartnerClient`] joins them: every call to a partner is signed (`docs/security.md`,
//! the same scheme partners use towards the hub), optionally body-encrypted, rate-limited,
//! bounded in concurrency and time, and watched by a [`breaker::Breaker`]; its answer is
//! classified by [`answer::classify`] into delivered, retryable or permanent (a SOAP Fault by
//! its code). [`transport`] puts a delivery's body on the wire: plain HTTP (JSON, XML, a form,
//! or a GET's query string) or SOAP 1.1/1.2. A delivery with a `reply` mapping is a request
//! whose answer becomes a reply record (`hub_contracts::reply`).

pub mod answer;
pub mod backoff;
pub mod breaker;
pub mod client;
mod files;
pub mod manifest;
pub mod partner;
pub mod reference;
pub mod schedule;
pub mod transport;

pub use answer::{classify, Verdict};
pub use client::{PartnerAnswer, PartnerClient};
pub use manifest::{AdapterSet, Manifest};
pub use partner::PartnerSection;
