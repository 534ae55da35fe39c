//! The optional OTLP export: spans batched in the SDK's background thread and sent as OTLP/HTTP
//! protobuf (`POST <endpoint>/v1/traces`) by the hub's own `reqwest` client on the tokio
//! runtime. A collector that is away never slows or stops anything: the batch queue is bounded
//! (spans beyond it are dropped), every send has a timeout, and failures are logged at most
//! once a minute with the number of failed sends since the last line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing::warn;

/// How long one export request may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one line about failed exports per this period.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The collector's traces URL: the configured endpoint with `/v1/traces` appended unless it is
/// already there.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Sends export requests with the workspace's `reqwest` on the tokio runtime that installed
/// the exporter (the SDK's batch thread has no runtime of its own).
#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    failures: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

impl Sender {
    fn failed(&self, what: &str) {
        let failed = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            *last = Some(Instant::now());
            self.failures.store(0, Ordering::Relaxed);
            warn!(
                target: "hub_telemetry::otlp",
                failed_sends = failed,
                problem = what,
                "spans could not be exported to the OTLP collector (reported at most once a minute)"
            );
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Sender {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move {
                let answer = client.execute(request).await?;
                let status = answer.status();
                let body = answer.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await;
        match sent {
            Ok(Ok((status, body))) => {
                if !status.is_success() {
                    self.failed(&format!("HTTP {}", status.as_u16()));
                }
                Ok(Response::builder().status(status).body(body)?)
            }
            Ok(Err(e)) => {
                // Without the URL: it may carry credentials in its user-info.
                let e = e.without_url();
                self.failed(&e.to_string());
                Err(Box::new(e))
            }
            Err(e) => {
                self.failed("the runtime is shutting down");
                Err(Box::new(e))
            }
        }
    }
}

/// Builds the tracer provider exporting to `endpoint`. Must run inside a tokio runtime.
pub fn provider(
    endpoint: &str,
    service_name: &str,
    sample_ratio: f64,
) -> Result<SdkTracerProvider, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the OTLP export needs a tokio runtime".to_string())?;
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let sender = Sender {
        client,
        runtime,
        failures: AtomicU64::new(0),
        last_report: Mutex::new(None),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(SEND_TIMEOUT)
        .with_http_client(sender)
        .build()
        .map_err(|e| e.to_string())?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_secs(2))
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("https://c/otlp/v1/traces"),
            "https://c/otlp/v1/traces"
        );
    }
}
