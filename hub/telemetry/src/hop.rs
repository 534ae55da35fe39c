//! One span per hop (a request at the gateway, a delivery, a pull run, a record applied by an
//! app, an API action), carrying the hop's `trace_id` so that every log line written inside it
//! has it, and the hop's own [`TraceParent`] for whatever it sends on.
//!
//! ```ignore
//! let span = hub_telemetry::hop_span!("ingest", request_id = %id);
//! let hop = hub_telemetry::continue_trace(&span, incoming.as_ref());
//! envelope.traceparent = Some(hop.to_string());
//! async { … }.instrument(span).await
//! ```
//!
//! When the OTLP export is on, the hop span is an OpenTelemetry span whose parent is the
//! incoming context, and the returned traceparent names that span; otherwise the ids are made
//! here. Either way the hop's trace id is the incoming one when there is one.

use opentelemetry::trace::{TraceContextExt, TraceFlags, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::{LookupSpan, Registry};

use crate::TraceParent;

/// The level of hop spans. A span's level only decides whether it exists; hop spans are at
/// `ERROR` so that they exist under any filter that lets a line through, and every line keeps
/// its trace id even with `level = "warn"`.
pub const HOP_LEVEL: tracing::Level = tracing::Level::ERROR;

/// A hop span: `hop_span!("name", field = value, …)`, with an empty `trace_id` field that
/// [`continue_trace`] fills. Field values must be ids, codes and counts, never payload values.
#[macro_export]
macro_rules! hop_span {
    ($name:expr $(,)?) => {
        $crate::__tracing::span!($crate::HOP_LEVEL, $name, trace_id = $crate::__tracing::field::Empty)
    };
    ($name:expr, $($fields:tt)+) => {
        $crate::__tracing::span!(
            $crate::HOP_LEVEL,
            $name,
            trace_id = $crate::__tracing::field::Empty,
            $($fields)+
        )
    };
}

/// The hop's trace context, kept in its span so that code inside it can ask for it.
#[derive(Clone, Copy)]
struct HopContext(TraceParent);

/// Makes `span` the next hop of `parent` (or the first of a new trace when `None`), records
/// its `trace_id`, and returns the hop's own traceparent: same trace id as `parent`, a parent
/// id naming this hop. Send that one on (Kafka header, partner request).
pub fn continue_trace(span: &Span, parent: Option<&TraceParent>) -> TraceParent {
    // With the OpenTelemetry layer installed, the span's parent is the remote context (or none:
    // a new trace, not a child of whatever long-lived span encloses the hop).
    let cx = match parent {
        Some(p) => opentelemetry::Context::new().with_remote_span_context(span_context(p)),
        None => opentelemetry::Context::new(),
    };
    let _ = span.set_parent(cx);
    let otel = span.context().span().span_context().clone();
    let hop = if otel.is_valid() {
        TraceParent::from_parts(
            otel.trace_id().to_bytes(),
            otel.span_id().to_bytes(),
            otel.trace_flags().to_u8(),
        )
    } else {
        None
    };
    let hop = hop.unwrap_or_else(|| parent.map_or_else(TraceParent::new_root, TraceParent::child));
    span.record("trace_id", tracing::field::display(hop.trace_id_hex()));
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch.downcast_ref::<Registry>().and_then(|r| r.span(id)) {
            span.extensions_mut().replace(HopContext(hop));
        }
    });
    hop
}

/// [`continue_trace`] from a header value: a value that does not parse starts a new trace.
/// Returns the hop's traceparent and, when the value was present but refused, why.
pub fn continue_from_header(
    span: &Span,
    value: Option<&str>,
) -> (TraceParent, Option<crate::TraceParentError>) {
    let (parent, refused) = match value.map(TraceParent::parse) {
        None => (None, None),
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
    };
    (continue_trace(span, parent.as_ref()), refused)
}

/// The traceparent of the innermost hop around the current span, if any (and if the
/// subscriber keeps span data: always with [`crate::init`]).
pub fn current() -> Option<TraceParent> {
    Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let span = registry.span(id)?;
            span.scope()
                .find_map(|s| s.extensions().get::<HopContext>().map(|h| h.0))
        })
        .flatten()
}

fn span_context(p: &TraceParent) -> opentelemetry::trace::SpanContext {
    opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(p.trace_id()),
        opentelemetry::trace::SpanId::from_bytes(p.parent_id()),
        TraceFlags::new(p.flags()),
        true,
        TraceState::default(),
    )
}
