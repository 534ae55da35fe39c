//! Tracing for the hub and its domain apps, in one place:
//!
//! * [`TraceParent`]: the W3C `traceparent` value, parsed strictly, made for a new trace, or
//!   continued by a child id for the next hop;
//! * [`hop_span!`] and [`continue_trace`]: one span per hop (a push at the gateway, a delivery,
//!   a pull run, a record applied by an app, an API action) with its `trace_id` field, so every
//!   log line written inside the hop has it, and the hop's own traceparent to send on (Kafka
//!   header, partner request); [`current`] finds it from code deep inside the hop;
//! * [`init`]: the log subscriber of `[log]` (JSON lines with the span fields, or text, with the
//!   `level` filter) and, when `[log] otlp_endpoint` is set, the OpenTelemetry layer exporting
//!   hop spans over OTLP/HTTP in the background ([`otlp`]).
//!
//! Span fields hold ids, codes and counts only: never payload values, never personal data
//! (they are written to every log line of the hop and exported to the collector).

mod hop;
pub mod otlp;
mod traceparent;

use std::time::Duration;

use hub_config::sections::{LogFormat, LogSection};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use hop::{continue_from_header, continue_trace, current, HOP_LEVEL};
pub use traceparent::{tracestate_ok, TraceParent, TraceParentError};

#[doc(hidden)]
pub use tracing as __tracing;

/// The standard header names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// What [`init`] installed; keep it until the process ends and call [`Telemetry::shutdown`]
/// to send the last spans.
#[must_use = "keep it and call shutdown() at the end so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported to a collector.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued, waiting at most `timeout` (a collector that is away
    /// does not hold the exit up longer).
    pub fn shutdown(mut self, timeout: Duration) {
        self.flush(timeout);
    }

    fn flush(&mut self, timeout: Duration) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // On its own thread: the SDK blocks while the batch thread finishes, and the export
        // itself runs on the tokio runtime the caller may be blocking.
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = provider.shutdown_with_timeout(timeout);
            let _ = done.send(());
        });
        let _ = wait.recv_timeout(timeout + Duration::from_millis(200));
    }
}

impl Drop for Telemetry {
    /// Dropped without [`Telemetry::shutdown`] (an early exit): the last spans get two seconds.
    fn drop(&mut self) {
        self.flush(Duration::from_secs(2));
    }
}

/// Whether `metadata` is a hop span (the only spans exported: they carry `trace_id`).
fn is_hop_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && metadata.fields().field("trace_id").is_some()
}

/// Installs the global subscriber: logs to stderr (stdout stays for command output), as JSON
/// lines (the event's fields at the top level, the current span's fields under `span` and every
/// enclosing span's under `spans`) or text, filtered by `level`; plus the OTLP export when
/// `otlp_endpoint` is set (`service.name` = `otlp_service_name`, else `default_service`).
/// A second call keeps the first subscriber (tests).
pub fn init(section: &LogSection, default_service: &str) -> Telemetry {
    let filter = EnvFilter::try_new(&section.level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: in a file or a pipe they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = match section.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let mut problem = None;
    let provider = section.otlp_endpoint.as_deref().and_then(|endpoint| {
        let service = section
            .otlp_service_name
            .as_deref()
            .unwrap_or(default_service);
        otlp::provider(endpoint, service, section.trace_sample_ratio)
            .map_err(|e| problem = Some(e))
            .ok()
    });
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("shanghai-hub"))
            .with_filter(filter_fn(is_hop_span))
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(e) = problem {
        tracing::warn!(error = %e, "the OTLP span export is off");
    }
    match provider {
        Some(p) if installed => {
            tracing::info!(
                endpoint = %otlp::traces_url(section.otlp_endpoint.as_deref().unwrap_or_default()),
                ratio = section.trace_sample_ratio,
                "spans are exported over OTLP/HTTP"
            );
            Telemetry { provider: Some(p) }
        }
        Some(p) => {
            let _ = p.shutdown();
            Telemetry { provider: None }
        }
        None => Telemetry { provider: None },
    }
}
