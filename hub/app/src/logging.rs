//! Structured logs with `tracing`: one JSON object per line by default, with the fields of the
//! hop span (`request_id`, `trace_id`, …) on every line, and the optional OTLP span export of
//! `[log] otlp_endpoint`. The setup lives in `hub-telemetry`, shared with the domain apps.

use hub_config::sections::LogSection;
use hub_telemetry::Telemetry;

/// `service.name` of the hub's exported spans unless `[log] otlp_service_name` says otherwise.
pub const SERVICE_NAME: &str = "shanghai-hub";

/// Installs the global subscriber (logs to stderr so stdout stays for command output). Keep
/// the result until the process ends: dropping it exports the last spans.
pub fn init(section: &LogSection) -> Telemetry {
    hub_telemetry::init(section, SERVICE_NAME)
}
