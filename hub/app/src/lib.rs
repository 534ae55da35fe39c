//! The integration hub (政务集成枢纽).
//!
//! This crate wires the hub's parts into one program: configuration ([`config`]), the command
//! line ([`cli`]: `serve`, `check`, `topics`, `version`, …; `hub adapter new` in
//! [`adapter_new`]), the running service ([`serve`]) and the
//! operators' admin listener ([`admin`]: `/healthz`, `/readyz`, `/metrics`, described in
//! [`metrics`]), the partners a deployment
//! delivers to and pulls from ([`partners`]), the dead-letter commands ([`dlq_cli`]) and the
//! message trace ([`trace`], `hub trace`, `GET /api/v1/trace/{id}`). The
//! parts themselves live in their own crates: `hub-config`, `hub-bus` (Kafka), `hub-state` (the
//! hub's own state), `hub-contracts` (Avro contracts and their topics), `hub-mapping`,
//! `hub-security`, `hub-pipeline`, `hub-gateway` (pushes in), `hub-adapter` (partner
//! protocols), `hub-egress` (deliveries out, dead letters) and `hub-poller` (scheduled pulls).

pub mod adapter_new;
pub mod admin;
pub mod batches;
pub mod cli;
pub mod config;
pub mod contracts_gate;
pub mod dlq_cli;
pub mod external_registry;
pub mod logging;
pub mod metrics;
pub mod operator_cli;
pub mod partners;
pub mod profile;
pub mod registry_api;
pub mod serve;
pub mod trace;
pub mod trace_cli;

/// Version line: crate version, git commit, librdkafka version.
pub fn version_line() -> String {
    let (_, rdkafka) = rdkafka::util::get_rdkafka_version();
    format!(
        "hub {} (commit {}, librdkafka {rdkafka})",
        env!("CARGO_PKG_VERSION"),
        env!("HUB_GIT_COMMIT")
    )
}
