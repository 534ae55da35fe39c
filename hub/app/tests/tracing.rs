//! Tracing on a running hub, against the real broker: every log line of a push carries its
//! request id and trace id; the Kafka record's `traceparent` continues the caller's trace with
//! the hub's own parent id; a push without one, or with an invalid one, gets a fresh valid
//! trace; the egress sends the partner a `traceparent` of the record's trace. The hubs run with
//! an OTLP endpoint nobody listens on: the export fails in the background and changes nothing.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_bus::{now_shanghai, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::SigningCredential;
use serde_json::{json, Value};
use support::isolate::{isolate, Isolated};
use support::partner::Platform;
use support::*;

const SECRET: &str = "test-only-hmac-secret-0123456789";
const DISPATCH: &str = "/v1/hotline12345/dispatch_json";
const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Nothing listens there: exports fail, quietly, in the background.
const DEAD_COLLECTOR: (&str, &str) = ("HUB_LOG__OTLP_ENDPOINT", "http://127.0.0.1:9");

fn is_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts[1..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// Signs and pushes `body` with `extra` headers; returns the unified answer.
async fn push(gateway: &str, body: &[u8], extra: &[(&str, &str)]) -> Value {
    let headers = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request(
        "hotline-test",
        "POST",
        DISPATCH,
        "",
        body,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}{DISPATCH}"))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    hub_answer(r.json().await.unwrap())
}

/// The record with `message_id` on `topic` (read from the beginning with a fresh group).
async fn record(topic: &str, message_id: &str) -> hub_bus::Delivery {
    let bus = bus_section("tracing-test");
    let group = format!("tracing-test-{}", uuid::Uuid::new_v4().simple());
    let consumer = hub_bus::Consumer::new(&bus, &group, &[topic]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Ok(d)) => {
                if d.envelope
                    .as_ref()
                    .is_ok_and(|e| e.message_id.to_string() == message_id)
                {
                    return d;
                }
            }
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => panic!("{message_id} not found on {topic}"),
        }
    }
}

/// The fields of every span on a JSON log line (`span` and `spans`).
fn span_fields(line: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut out: Vec<_> = line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    out.extend(line["span"].as_object());
    out
}

#[tokio::test]
async fn a_push_is_traced_on_every_log_line_and_continued_on_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nkey_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n",
        repo().join("ops/dev-keyring.toml").display(),
    );
    let serving = start_serving_env(dir.path(), &kafka(), &extra, &[DEAD_COLLECTOR]);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    let gateway = format!("http://127.0.0.1:{port}");
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();

    let traced = push(
        &gateway,
        &body,
        &[
            ("traceparent", INCOMING),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("x-request-id", "trace-test-1"),
        ],
    )
    .await;
    let plain = push(&gateway, &body, &[("x-request-id", "trace-test-2")]).await;
    let invalid_value = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let invalid = push(
        &gateway,
        &body,
        &[
            ("traceparent", invalid_value),
            ("tracestate", "dropped=1"),
            ("x-request-id", "trace-test-3"),
        ],
    )
    .await;
    let topic = traced["topic"].as_str().unwrap().to_string();

    // The caller's trace continues, under the hub's own parent id; tracestate is carried.
    let r = record(&topic, traced["message_id"].as_str().unwrap()).await;
    let e = r.envelope.as_ref().unwrap();
    let tp = e.traceparent.as_deref().unwrap();
    assert!(is_traceparent(tp), "{tp}");
    assert_eq!(&tp[3..35], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(&tp[36..52], "00f067aa0ba902b7");
    assert_eq!(e.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));

    // No traceparent: a fresh valid one.
    let r = record(&topic, plain["message_id"].as_str().unwrap()).await;
    let fresh = r.envelope.as_ref().unwrap().traceparent.clone().unwrap();
    assert!(is_traceparent(&fresh), "{fresh}");
    assert_ne!(&fresh[3..35], &tp[3..35]);

    // An invalid one: replaced by a fresh valid trace, its tracestate dropped.
    let r = record(&topic, invalid["message_id"].as_str().unwrap()).await;
    let e = r.envelope.as_ref().unwrap();
    let replaced = e.traceparent.clone().unwrap();
    assert!(is_traceparent(&replaced), "{replaced}");
    assert_ne!(&replaced[3..35], "00000000000000000000000000000000");
    assert_ne!(&replaced[3..35], &fresh[3..35]);
    assert_eq!(e.tracestate, None);

    let metrics = reqwest::get(format!("{}/metrics", serving.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("hub_gateway_traceparent_invalid_total{reason=\"zero_trace_id\"} 1")),
        "the invalid traceparent is counted"
    );

    let started = Instant::now();
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    // The dead collector does not hold the exit up beyond its short flush.
    assert!(started.elapsed() < Duration::from_secs(15));

    // Every line of each request has its request id and trace id.
    for (request_id, trace_id) in [
        ("trace-test-1", &tp[3..35]),
        ("trace-test-2", &fresh[3..35]),
        ("trace-test-3", &replaced[3..35]),
    ] {
        let lines: Vec<Value> = logs
            .lines()
            .filter(|l| l.contains(request_id))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        assert!(!lines.is_empty(), "no line of {request_id}");
        assert!(
            lines.iter().any(|l| l["message"] == "request"),
            "the access line of {request_id}"
        );
        for line in &lines {
            let spans = span_fields(line);
            assert!(
                spans
                    .iter()
                    .any(|s| s.get("request_id") == Some(&json!(request_id))
                        && s.get("trace_id") == Some(&json!(trace_id))),
                "{request_id}: a line without its request and trace ids: {line}"
            );
        }
    }
    // The failed export is logged at most once a minute (once here), never an error.
    let export_lines = logs
        .lines()
        .filter(|l| l.contains("could not be exported to the OTLP collector"))
        .count();
    assert!(export_lines <= 1, "{logs}");
}

// ── egress ──────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn the_partner_receives_the_records_trace() {
    const PARTNER_SECRET: &str = "egress-test-secret-0123456789";
    let platform = Platform::new(PARTNER_SECRET);
    let base_url = platform.serve().await;
    let dir = tempfile::tempdir().unwrap();

    // This test's own signed-ticket topic, so its hub reads only its records.
    let Isolated {
        contracts,
        mappings,
        topic,
    } = isolate(dir.path());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let admin = free_port();
    let gateway = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"tracing-{}\"\n\
             [partners.hotline12345]\nbase_url = \"{base_url}\"\napp_id = \"water-bureau-hub\"\n\
             hmac_secret = \"{PARTNER_SECRET}\"\ndeliveries = [\"sign\"]\ntimeout_ms = 1000\n",
            kafka(),
            contracts.display(),
            mappings.display(),
            repo().join("adapters").display(),
            repo().join("ops/dev-keyring.toml").display(),
            &id[..8],
        ),
    );
    let log = std::fs::File::create(dir.path().join("hub.log")).unwrap();
    let mut cmd = Command::new(HUB);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUB_")) {
        cmd.env_remove(k);
    }
    let child = cmd
        .env(DEAD_COLLECTOR.0, DEAD_COLLECTOR.1)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let serving = Serving::new(child, format!("http://127.0.0.1:{admin}"));
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;

    // A signed-ticket event with a trace, as the hotline app's outbox would produce it.
    let catalog = hub_contracts::load_dir(&contracts).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == topic)
        .unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let ticket = format!("GDT{}", &id[..8].to_uppercase());
    let mut record = json!({
        "ticket_no": ticket,
        "handling_unit_code": "11310000002420347T",
        "handling_unit_name": "上海市水务局",
        "signer_name": "张三",
        "signed_at": "2026-11-22T09:45:00+08:00",
        "occurred_at": "2026-11-22T09:45:00+08:00"
    });
    hub_pipeline::pii::seal_record(&FieldCipher::new(ring), contract, &mut record).unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let mut envelope = Envelope::new(
        topic.trim_end_matches(".v1"),
        1,
        "hotline-app",
        "water-bureau",
        ticket.as_str(),
        now_shanghai(),
    );
    envelope.traceparent = Some(INCOMING.to_string());
    let producer = Producer::new(&bus_section("tracing-egress-test")).unwrap();
    producer.send(&topic, &envelope, &framed).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while platform.effects_for(&ticket).is_empty() {
        assert!(Instant::now() < deadline, "not delivered within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = platform.traceparents.lock().unwrap().clone();
    let sent = seen
        .last()
        .cloned()
        .flatten()
        .expect("a traceparent header");
    assert!(is_traceparent(&sent), "{sent}");
    assert_eq!(&sent[3..35], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        &sent[36..52],
        "00f067aa0ba902b7",
        "the hub's delivery is the parent"
    );
    drop(serving);

    // The delivery's log lines carry the record's trace id.
    let logs = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    let delivered: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "delivered")
        .collect();
    assert!(!delivered.is_empty(), "{logs}");
    assert!(delivered.iter().all(|l| span_fields(l)
        .iter()
        .any(|s| s.get("trace_id") == Some(&json!("4bf92f3577b34da6a3ce929d0e0e4736")))));
}
