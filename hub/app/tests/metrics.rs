//! `GET /metrics` on a running hub, against the real broker: after a signed push, a refused
//! push and a push to a path the hub does not serve, the ingress counters moved with bounded
//! labels, latency histograms have their buckets, every exported `hub_*` metric is described
//! in `hub::metrics::EXPORTED` with the right type, and no message id or ticket number
//! reached a label.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hub_security::signing::SigningCredential;
use support::*;

const SECRET: &str = "test-only-hmac-secret-0123456789";
const DISPATCH: &str = "/v1/hotline12345/dispatch_json";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One sample line of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format: `# TYPE` lines and samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                // Values here never hold `",` (bounded, code-like labels).
                for pair in body.split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap();
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        samples.push(Sample {
            name,
            labels,
            value: value.parse().unwrap(),
        });
    }
    (types, samples)
}

/// The described metric a sample belongs to (histogram series drop their suffix).
fn family(name: &str) -> Option<&'static hub::metrics::Metric> {
    hub::metrics::find(name).or_else(|| {
        ["_bucket", "_sum", "_count"].iter().find_map(|s| {
            name.strip_suffix(s)
                .and_then(hub::metrics::find)
                .filter(|m| m.kind == hub::metrics::Kind::Histogram)
        })
    })
}

async fn scrape(admin: &str) -> String {
    let r = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    r.text().await.unwrap()
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

#[tokio::test]
async fn metrics_show_a_push_with_bounded_labels_and_only_described_names() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nkey_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n",
        repo().join("ops/dev-keyring.toml").display(),
    );
    let serving = start_serving_with(dir.path(), &kafka(), &extra);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    let gateway = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let partner_message_id = format!("pm-{}", uuid::Uuid::new_v4().simple());

    // Accepted.
    let signed = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request_with(
        "hotline-test",
        "POST",
        DISPATCH,
        "",
        &body,
        now_ms(),
        &[("x-partner-message-id", &partner_message_id)],
    );
    let mut req = client
        .post(format!("{gateway}{DISPATCH}"))
        .header("x-partner-message-id", &partner_message_id)
        .body(body.clone());
    for (k, v) in &signed {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // Refused: a wrong signature.
    let bad = SigningCredential::HmacSm3 {
        secret: b"not-the-secret".to_vec(),
    }
    .sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
    let mut req = client
        .post(format!("{gateway}{DISPATCH}"))
        .body(body.clone());
    for (k, v) in &bad {
        req = req.header(*k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    // A path the hub does not serve: counted, but under `unknown`.
    let odd = format!("/v1/made-up-{}/x", uuid::Uuid::new_v4().simple());
    let r = client
        .post(format!("{gateway}{odd}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());

    // The audit chain is verified by the sampler shortly after start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (types, samples, text) = loop {
        let text = scrape(&serving.admin).await;
        let (types, samples) = parse(&text);
        if value(&samples, "hub_audit_chain_ok", &[]).is_some() || Instant::now() > deadline {
            break (types, samples, text);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let route = [
        ("partner", "hotline12345"),
        ("route", "hotline12345/dispatch_json"),
    ];
    let accepted = value(
        &samples,
        "hub_gateway_requests_total",
        &[
            route[0],
            route[1],
            ("outcome", "accepted"),
            ("code", "ACCEPTED"),
        ],
    );
    assert_eq!(accepted, Some(1.0), "{text}");
    let refused = value(
        &samples,
        "hub_gateway_requests_total",
        &[
            route[0],
            route[1],
            ("outcome", "rejected"),
            ("code", "AUTH_SIGNATURE_INVALID"),
        ],
    );
    assert_eq!(refused, Some(1.0), "{text}");
    assert!(
        value(
            &samples,
            "hub_gateway_requests_total",
            &[("partner", "unknown"), ("route", "unknown")]
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    // Histograms with the configured buckets.
    let fastest = value(
        &samples,
        "hub_gateway_request_duration_seconds_bucket",
        &[
            route[0],
            route[1],
            ("outcome", "accepted"),
            ("le", "0.0005"),
        ],
    );
    assert!(fastest.is_some(), "no 0.5 ms bucket: {text}");
    assert_eq!(
        value(
            &samples,
            "hub_gateway_request_duration_seconds_count",
            &[route[0], route[1], ("outcome", "accepted")]
        ),
        Some(1.0)
    );
    assert!(value(
        &samples,
        "hub_gateway_request_body_bytes_bucket",
        &[route[0], ("le", "4096")]
    )
    .is_some());
    assert_eq!(
        value(
            &samples,
            "hub_bus_produced_total",
            &[("topic", "hotline.ticket.dispatched.v1"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    // The process.
    assert_eq!(
        value(
            &samples,
            "hub_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "hub_up", &[]).is_some(), "{text}");
    assert_eq!(
        value(&samples, "hub_audit_chain_ok", &[]),
        Some(1.0),
        "{text}"
    );
    assert!(value(
        &samples,
        "hub_audit_events_total",
        &[("action", "config.loaded")]
    )
    .is_some_and(|v| v >= 1.0));

    // Every exported name is described, with its type and labels.
    let mut problems = Vec::new();
    for s in &samples {
        let Some(m) = family(&s.name) else {
            problems.push(format!("`{}` is exported but not described", s.name));
            continue;
        };
        for l in s.labels.keys() {
            if !m.labels.contains(&l.as_str()) && l != "le" {
                problems.push(format!("`{}` has undescribed label `{l}`", s.name));
            }
        }
    }
    for (name, kind) in &types {
        match hub::metrics::find(name) {
            Some(m) if m.kind.as_str() == kind => {}
            Some(m) => problems.push(format!("`{name}` is a {kind}, described as {:?}", m.kind)),
            None => problems.push(format!("`{name}` has a TYPE but no description")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for m in hub::metrics::EXPORTED {
        if types.contains_key(m.name) {
            assert!(
                text.contains(&format!("# HELP {} ", m.name)),
                "`{}` has no HELP",
                m.name
            );
        }
    }
    // Never an id or a ticket number in a label.
    assert!(!text.contains(&partner_message_id));
    assert!(!text.contains("GD20261122000123"));
    assert!(!text.contains("made-up"));

    let (status, _) = stop_and_collect_logs(serving);
    assert!(status.success());
}

#[tokio::test]
async fn metrics_registry_and_trace_need_the_admin_token_unless_opened_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // The tests' hubs open /metrics and /registry on loopback; this one does not.
    let serving = start_serving_env(
        dir.path(),
        &kafka(),
        "",
        &[
            ("HUB_ADMIN__METRICS_OPEN", "false"),
            ("HUB_ADMIN__REGISTRY_OPEN", "false"),
        ],
    );
    let admin = serving.admin.clone();
    wait_for_status(&format!("{admin}/healthz"), 200, Duration::from_secs(60)).await;
    let client = reqwest::Client::new();
    for path in [
        "/metrics",
        "/registry/subjects",
        "/api/v1/trace/GD20261122000123",
    ] {
        let r = client.get(format!("{admin}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} without a token");
        assert!(r.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "ADMIN_UNAUTHORIZED", "{path}");
        let r = client
            .get(format!("{admin}{path}"))
            .bearer_auth("not-the-admin-token-0123")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
    }
    let r = client
        .get(format!("{admin}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("hub_admin_unauthorized_total"));
    // A Confluent client that only speaks HTTP Basic sends the token as its password.
    let r = client
        .get(format!("{admin}/registry/subjects"))
        .basic_auth("schema-reader", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Probes stay open.
    let r = client.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_ne!(r.status().as_u16(), 401);
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(ADMIN_TOKEN), "the admin token in the logs");
}
