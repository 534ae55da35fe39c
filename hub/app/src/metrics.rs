//! Every metric the hub exports, described in one place, and the Prometheus exporter behind
//! `GET /metrics` on the admin listener.
//!
//! The instruments live where the work happens (`hub-gateway`, `hub-bus`, `hub-state`,
//! `hub-egress`, `hub-poller`, and the sampler below) and record through the `metrics` facade;
//! [`EXPORTED`] names each one with its kind, unit, labels and help text. [`install`] describes
//! them all to the recorder, so `/metrics` carries `# HELP` and `# TYPE` for each, and the
//! checks in `hub/app/tests/metrics.rs` hold the dashboards, the alert rules, `docs/metrics.md`
//! and a live scrape to this list. Add a metric here first.
//!
//! Conventions (https://prometheus.io/docs/practices/naming/): `hub_<part>_<what>_<unit>`,
//! `_total` for counters, base units (seconds, bytes), and bounded labels only (partner, route,
//! mapping, topic, group, partition, job, code, outcome, reason, operation, action): never a
//! message id, a ticket number or personal data.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{error, warn};

use crate::admin::AdminState;

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The `# TYPE` word Prometheus shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// The labels it carries (the exporter adds none).
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric the hub exports.
pub const EXPORTED: &[Metric] = &[
    // The process.
    m("hub_build_info", Gauge, &["version", "commit"], "Always 1; the labels name the running build."),
    m("hub_up", Gauge, &[], "1 while /readyz would answer ready (broker, state store, topics, not stopping), else 0."),
    // Gateway (pushes in).
    m("hub_gateway_requests_total", Counter, &["partner", "route", "outcome", "code"], "Pushes answered by the gateway, by outcome (accepted, duplicate, rejected) and answer code."),
    m("hub_gateway_request_duration_seconds", Histogram, &["partner", "route", "outcome"], "Time from a push's arrival to its answer (including the broker's acknowledgement)."),
    m("hub_gateway_request_body_bytes", Histogram, &["partner", "route"], "Size of push bodies as received."),
    m("hub_gateway_file_downloads_total", Counter, &["code"], "Download links served (FILE_SERVED) or refused (FILE_URL_REFUSED, FILE_ID_INVALID, FILE_NOT_FOUND, …) at GET /v1/files/{id}."),
    m("hub_gateway_mapping_failures_total", Counter, &["partner", "mapping", "code"], "Pushes the inbound mapping or the contract validation refused, by error code."),
    m("hub_gateway_auth_refusals_total", Counter, &["reason"], "Pushes whose signature check failed, by the reason the answer does not tell: auth.app_unknown, auth.method_not_allowed, auth.signature_invalid (all answered AUTH_SIGNATURE_INVALID)."),
    m("hub_gateway_replays_refused_total", Counter, &["partner"], "Pushes refused because their nonce was used before (AUTH_REPLAY)."),
    m("hub_gateway_uploads_refused_total", Counter, &["scope"], "Pushes refused before their body was read: their source address (source_uploads) or app (app_uploads) had as many bodies being read as allowed."),
    m("hub_gateway_traceparent_invalid_total", Counter, &["reason"], "Pushes whose `traceparent` header did not parse (`shape`, `version`, `not_hex`, `zero_trace_id`, `zero_parent_id`); they went on in a new trace (`tracing.md`)."),
    m("hub_ingest_stage_seconds", Histogram, &["stage"], "Cost of one stage of taking in a message (gateway pushes and pulled items): verify, nonce_claim, decrypt, map, seal, encode, receipt, produce."),
    m("hub_gateway_tls_cert_expiry_seconds", Gauge, &[], "Unix time at which the gateway's TLS certificate expires (its notAfter)."),
    // Bus (Kafka).
    m("hub_bus_produced_total", Counter, &["topic", "outcome"], "Records produced, by topic and outcome (ok: acknowledged by all in-sync replicas; failed)."),
    m("hub_bus_produce_seconds", Histogram, &["topic"], "Time from handing a record to the producer to the broker's acknowledgement."),
    m("hub_bus_producer_renewed_total", Counter, &[], "Times the producer's client was replaced because the broker fenced it or it hit a fatal idempotence error."),
    m("hub_bus_producer_queue_records", Gauge, &[], "Records handed to the producer and not yet acknowledged or failed (librdkafka's in-flight count)."),
    m("hub_bus_consumer_lag_records", Gauge, &["group", "topic", "partition"], "Records not yet done by a hub consumer group: high watermark minus committed offset."),
    // State store and audit chain.
    m("hub_state_errors_total", Counter, &["operation", "code"], "Failed operations of the hub's state store."),
    m("hub_state_batch_operations", Histogram, &[], "Operations (nonce claims, receipt claims, completions, releases) the state store's writer committed in one transaction."),
    m("hub_state_batch_seconds", Histogram, &[], "Time the state store's writer took to commit one batch, retries included."),
    m("hub_state_batches_failed_total", Counter, &[], "Batches the state store's writer could not commit; every request in them was refused (503) and may be retried."),
    m("hub_audit_events_total", Counter, &["action"], "Records appended to the audit chain, by action."),
    m("hub_audit_chain_ok", Gauge, &[], "1 when the last verification of the audit chain found it intact, 0 when it found a break."),
    m("hub_audit_chain_verified_seconds", Gauge, &[], "Unix time of the last completed verification of the audit chain."),
    m("hub_trace_events_dropped_total", Counter, &["reason"], "Message trace events not stored: full (the write queue was full) or store (the state store refused the batch)."),
    // Egress (deliveries out).
    m("hub_egress_attempts_total", Counter, &["route", "outcome"], "Delivery attempts, by outcome (DELIVERED or the reason code of the failure)."),
    m("hub_egress_messages_total", Counter, &["route", "outcome"], "Messages finished by a delivery route: delivered or dead_lettered."),
    m("hub_egress_retries_total", Counter, &["route", "reason"], "Delivery attempts that will be retried, by reason code."),
    m("hub_egress_dead_letters_total", Counter, &["route", "reason"], "Messages written to the dead-letter topic, by reason code."),
    m("hub_egress_replies_total", Counter, &["route", "outcome"], "Reply records produced for requests (routes with a reply mapping), by outcome: answered, refused, failed, or unencodable (a hub defect)."),
    m("hub_egress_replays_total", Counter, &["route"], "Dead letters replayed to a route."),
    m("hub_egress_delivery_seconds", Histogram, &["route"], "Time from a record's pick-up to its delivery, retries included."),
    m("hub_egress_held_messages", Gauge, &["route"], "Records a route has read and not finished (bounded by its window)."),
    m("hub_egress_breaker_open", Gauge, &["partner"], "1 while the partner's circuit breaker is open or half-open, 0 when closed."),
    // Poller (pulls).
    m("hub_poller_runs_total", Counter, &["pull", "outcome"], "Pull job runs, by outcome (ok, lease_held or an error code)."),
    m("hub_poller_items_total", Counter, &["pull", "outcome"], "Items pulled, by outcome (produced, duplicate, dead_lettered)."),
    m("hub_poller_lag_seconds", Gauge, &["pull"], "How far a pull job's watermark is behind now."),
    m("hub_poller_replays_total", Counter, &["pull"], "Dead-lettered items of a pull job replayed (opened and mapped again)."),
    // SFTP batch pickups.
    m("hub_batch_files_total", Counter, &["batch", "outcome"], "Batch files picked up over SFTP and handed over, by outcome (announced, dead_lettered: refused by the batch's mapping)."),
    // Admin listener.
    m("hub_admin_unauthorized_total", Counter, &[], "Requests to /metrics, /registry or the trace API refused for want of the admin token."),
];

/// The metric named `name`, if the hub exports it.
pub fn find(name: &str) -> Option<&'static Metric> {
    EXPORTED.iter().find(|m| m.name == name)
}

/// Buckets of every latency histogram (seconds): 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of body sizes (bytes): 256 B to 4 MiB.
pub const BYTES_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and describes every metric; the handle
/// renders `/metrics`. `None` (logged) when another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Some(h.clone());
    }
    let built = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("hub_gateway_request_body_bytes".into()),
                BYTES_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match built {
        Ok(h) => h,
        Err(e) => {
            error!(error = %e, "metrics recorder not installed: /metrics will be empty");
            return None;
        }
    };
    describe();
    metrics::gauge!(
        "hub_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => env!("HUB_GIT_COMMIT")
    )
    .set(1.0);
    Some(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    for m in EXPORTED {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// How often the sampler measures what no event reports.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// How often the whole audit chain is verified (it is read end to end).
const AUDIT_VERIFY_EVERY: Duration = Duration::from_secs(600);

/// Samples, until shutdown, what no event reports: readiness (`hub_up`), the producer's
/// queue, and the audit chain's verification (at start, then every 10 minutes). Also runs the
/// exporter's upkeep (histogram maintenance) since no HTTP listener of its own does.
pub async fn sample(state: Arc<AdminState>, handle: Option<PrometheusHandle>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_verify: Option<tokio::time::Instant> = None;
    let stop = state.lifecycle.token().clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                metrics::gauge!("hub_up").set(0.0);
                return;
            }
            _ = tick.tick() => {}
        }
        if let Some(h) = &handle {
            h.run_upkeep();
        }
        metrics::gauge!("hub_bus_producer_queue_records")
            .set(f64::from(state.producer.in_flight()));
        let (ready, _) = crate::admin::readiness(&state).await;
        metrics::gauge!("hub_up").set(if ready { 1.0 } else { 0.0 });
        if last_verify.is_none_or(|t| t.elapsed() >= AUDIT_VERIFY_EVERY) {
            verify_audit(&state).await;
            last_verify = Some(tokio::time::Instant::now());
        }
    }
}

/// Set when signed checkpoints are configured: the checkpoint task then verifies the chain
/// (incrementally, from the newest checkpoint) and this loop does not read it all again.
static AUDIT_BY_CHECKPOINTS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Hands the chain's periodic verification to the checkpoint task.
pub(crate) fn audit_verified_by_checkpoints() {
    AUDIT_BY_CHECKPOINTS.store(true, std::sync::atomic::Ordering::Relaxed);
}

async fn verify_audit(state: &AdminState) {
    if AUDIT_BY_CHECKPOINTS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    audit_verdict(state.state.verify_audit().await);
}

/// Publishes a verification's outcome (`hub_audit_chain_ok`, `hub_audit_chain_verified_seconds`).
pub(crate) fn audit_verdict(verdict: Result<hub_state::AuditVerdict, hub_state::StateError>) {
    match verdict {
        Ok(v) => {
            if !v.problems.is_empty() {
                error!(records = v.records, first_problem = %v.problems[0], problems = v.problems.len(), "the audit chain is broken");
            }
            metrics::gauge!("hub_audit_chain_ok").set(if v.problems.is_empty() {
                1.0
            } else {
                0.0
            });
            metrics::gauge!("hub_audit_chain_verified_seconds")
                .set(chrono::Utc::now().timestamp() as f64);
        }
        // Not verified is not broken: the gauge keeps its last value; the verification
        // timestamp going stale says the check is not running.
        Err(e) => warn!(code = e.code(), error = %e, "audit chain not verified"),
    }
}
