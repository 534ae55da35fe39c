//! The OTLP export against a stand-in collector (a bare HTTP listener in the test): hop spans
//! arrive with the trace id they continued, and an unreachable collector changes nothing for
//! the hop. One test per file: the subscriber is global.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_config::sections::LogSection;
use hub_telemetry::{continue_trace, current, hop_span, TraceParent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Accepts OTLP/HTTP posts, keeps (path, body) of each and answers 200 with an empty
/// `ExportTraceServiceResponse`.
async fn collector() -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    keep.lock().unwrap().push((path, body));
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    buf.drain(..end + 4 + length);
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_spans_reach_the_collector_with_the_continued_trace_id() {
    let (endpoint, seen) = collector().await;
    let section = LogSection {
        otlp_endpoint: Some(endpoint),
        otlp_service_name: Some("telemetry-test".into()),
        ..LogSection::default()
    };
    let telemetry = hub_telemetry::init(&section, "unused");
    assert!(telemetry.exporting());

    let incoming =
        TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let span = hop_span!("test_hop", request_id = "r-1");
    let hop = continue_trace(&span, Some(&incoming));
    assert_eq!(hop.trace_id(), incoming.trace_id());
    assert_ne!(hop.parent_id(), incoming.parent_id());
    {
        let _entered = span.enter();
        assert_eq!(current(), Some(hop));
        // A child span inside the hop still finds it.
        let inner = tracing::info_span!("inner");
        let _inner = inner.enter();
        assert_eq!(current(), Some(hop));
        tracing::info!("inside the hop");
    }
    drop(span);
    // A new trace: a valid root, different trace id.
    let root_span = hop_span!("test_root");
    let root = continue_trace(&root_span, None);
    assert_ne!(root.trace_id(), incoming.trace_id());
    drop(root_span);
    assert_eq!(current(), None);

    // Shutdown flushes the batch; the collector got the hop span under /v1/traces.
    tokio::task::spawn_blocking(move || telemetry.shutdown(Duration::from_secs(5)))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "nothing was exported");
    assert!(
        seen.iter().all(|(path, _)| path == "/v1/traces"),
        "{seen:?}"
    );
    let bodies: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    let contains = |needle: &[u8]| bodies.windows(needle.len()).any(|w| w == needle);
    // Protobuf carries ids as raw bytes.
    assert!(
        contains(&incoming.trace_id()),
        "the continued trace id was not exported"
    );
    assert!(
        contains(&hop.parent_id()),
        "the hop span id was not exported"
    );
    assert!(
        contains(&incoming.parent_id()),
        "the remote parent id was not exported"
    );
    assert!(contains(&root.trace_id()), "the new trace was not exported");
    assert!(contains(b"telemetry-test"), "service.name missing");
    assert!(contains(b"test_hop"));
    // Only hop spans are exported, and no log line becomes a span event.
    assert!(!contains(b"inner"));
    assert!(!contains(b"inside the hop"));
}
