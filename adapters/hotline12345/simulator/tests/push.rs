//! Pushes to a stand-in hub gateway: signed, de-duplicated by partner message id, retried
//! after refusals, and the platform's follow-ups (urge, close, visit).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hotline12345_simulator::{
    LifecycleConfig, PushFormat, PushOutcome, RetryConfig, Simulator, SimulatorConfig, TicketState,
};
use hub_security::signing::{RequestParts, SignatureMethod, VerifyingCredential};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Received {
    mapping: String,
    pmid: String,
    content_type: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct FakeHub {
    received: Mutex<Vec<Received>>,
    seen: Mutex<HashSet<String>>,
    /// Refuse this many requests with 503 first.
    refuse: Mutex<u32>,
    /// Wrap answers in the platform's envelope.
    wrap: bool,
    bad_signatures: Mutex<u32>,
}

async fn ingest(
    State(hub): State<Arc<FakeHub>>,
    Path(mapping): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = format!("/v1/hotline12345/{mapping}");
    // The simulator must sign X-Partner-Message-Id (the hub refuses it unsigned).
    let signed_headers = hub_security::signing::received_signed_headers(
        headers
            .get("x-hub-signed-headers")
            .and_then(|v| v.to_str().ok()),
        |n| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        },
    )
    .unwrap_or_default();
    let unsigned = headers.contains_key("x-partner-message-id")
        && !signed_headers
            .iter()
            .any(|(n, _)| n == "x-partner-message-id");
    let parts = RequestParts {
        method: SignatureMethod::HmacSm3,
        http_method: "POST",
        path: &path,
        raw_query: "",
        app_id: &h("x-hub-app-id"),
        timestamp_ms: h("x-hub-timestamp").parse().unwrap_or(0),
        nonce: &h("x-hub-nonce"),
        body: &body,
        signed_headers: &signed_headers,
    };
    let cred = VerifyingCredential::HmacSm3 {
        secret: b"dev-only-hotline-secret-change-me".to_vec(),
    };
    if h("x-hub-app-id") != "hotline12345-city"
        || unsigned
        || cred
            .verify(&parts.canonical(), &h("x-hub-signature"))
            .is_err()
    {
        *hub.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "AUTH_SIGNATURE_INVALID"})),
        )
            .into_response();
    }
    {
        let mut refuse = hub.refuse.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "0")],
                Json(json!({"code": "BUS_UNAVAILABLE"})),
            )
                .into_response();
        }
    }
    let pmid = h("x-partner-message-id");
    hub.received.lock().unwrap().push(Received {
        mapping,
        pmid: pmid.clone(),
        content_type: h("content-type"),
        body: body.to_vec(),
    });
    let duplicate = !hub.seen.lock().unwrap().insert(pmid);
    let answer = json!({"code": "ACCEPTED", "duplicate": duplicate, "message_id": "m"});
    if hub.wrap {
        let code = if duplicate {
            "ACCEPTED_DUPLICATE"
        } else {
            "ACCEPTED"
        };
        Json(json!({"code": "0000", "msg": "成功", "data": {"hub_code": code}})).into_response()
    } else {
        Json(answer).into_response()
    }
}

async fn fake_hub(hub: Arc<FakeHub>) -> String {
    let app = Router::new()
        .route("/v1/hotline12345/{mapping}", post(ingest))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn fast_retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn tickets_are_pushed_signed_in_both_forms_and_duplicates_are_recognised() {
    let hub = Arc::new(FakeHub::default());
    let url = fake_hub(Arc::clone(&hub)).await;
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(url),
        retry: fast_retry(),
        seed: Some(11),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let made = sim.push_tickets(10, 0.3).await;
    assert_eq!(made.len(), 10);
    let received = hub.received.lock().unwrap().clone();
    assert_eq!(received.len(), 10);
    assert_eq!(*hub.bad_signatures.lock().unwrap(), 0);
    let xml: Vec<&Received> = received
        .iter()
        .filter(|r| r.mapping == "dispatch_xml")
        .collect();
    assert_eq!(xml.len(), 3);
    for r in &xml {
        assert_eq!(r.content_type, "application/xml; charset=GBK");
        let (text, _, bad) = encoding_rs::GBK.decode(&r.body);
        assert!(!bad && text.contains("encoding=\"GBK\""));
    }
    for no in &made {
        let t = sim.ticket(no).unwrap();
        assert_eq!(t.hub_accepted, Some(true));
        assert_eq!(t.pushes[0].partner_message_id, format!("{no}-PD"));
        let expected = if t.format == PushFormat::Xml {
            "dispatch_xml"
        } else {
            "dispatch_json"
        };
        assert!(received
            .iter()
            .any(|r| r.pmid == format!("{no}-PD") && r.mapping == expected));
    }

    let dup = sim.push_duplicate(&made[0]).await.unwrap();
    assert_eq!(dup.outcome, PushOutcome::Accepted);
    assert!(dup.duplicate);
    let received = hub.received.lock().unwrap().clone();
    let same: Vec<&Received> = received
        .iter()
        .filter(|r| r.pmid == format!("{}-PD", made[0]))
        .collect();
    assert_eq!(same.len(), 2);
    assert_eq!(same[0].body, same[1].body, "byte for byte the same push");
    let s = sim.stats();
    assert_eq!(s.pushes_accepted, 11);
    assert_eq!(s.pushes_duplicate, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_pushes_are_retried_and_the_wrapped_answer_is_read() {
    let hub = Arc::new(FakeHub {
        wrap: true,
        refuse: Mutex::new(2),
        ..FakeHub::default()
    });
    let url = fake_hub(Arc::clone(&hub)).await;
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(url),
        retry: fast_retry(),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let made = sim.push_tickets(1, 0.0).await;
    let t = sim.ticket(&made[0]).unwrap();
    assert_eq!(t.pushes[0].attempts, 3);
    assert_eq!(t.pushes[0].outcome, PushOutcome::Accepted);
    assert_eq!(t.pushes[0].hub_code.as_deref(), Some("ACCEPTED"));
    let dup = sim.push_duplicate(&made[0]).await.unwrap();
    assert_eq!(dup.hub_code.as_deref(), Some("ACCEPTED_DUPLICATE"));
    assert!(dup.duplicate);
    assert_eq!(sim.stats().push_attempts, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_hub_is_reported_after_the_attempts() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(format!("http://127.0.0.1:{port}")),
        retry: fast_retry(),
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let made = sim.push_tickets(2, 0.5).await;
    for no in &made {
        let t = sim.ticket(no).unwrap();
        assert_eq!(t.hub_accepted, Some(false));
        assert_eq!(t.pushes[0].outcome, PushOutcome::Unreachable);
        assert_eq!(t.pushes[0].attempts, 4);
        assert!(t.pushes[0].error.is_some());
    }
    assert_eq!(sim.stats().pushes_unreachable, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn push_off_only_offers_tickets_to_the_query() {
    let hub = Arc::new(FakeHub::default());
    let url = fake_hub(Arc::clone(&hub)).await;
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(url),
        push: false,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let made = sim.push_tickets(3, 0.0).await;
    assert_eq!(made.len(), 3);
    assert!(hub.received.lock().unwrap().is_empty());
    assert_eq!(sim.ticket(&made[0]).unwrap().hub_accepted, None);
    assert!(sim.push_duplicate(&made[0]).await.is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_lifecycle_urges_closes_and_visits() {
    let hub = Arc::new(FakeHub::default());
    let url = fake_hub(Arc::clone(&hub)).await;
    let sim = Simulator::start(SimulatorConfig {
        hub_url: Some(url),
        retry: fast_retry(),
        lifecycle: LifecycleConfig {
            enabled: true,
            urge_after: Some(Duration::from_millis(100)),
            close_after: Duration::from_millis(50),
            visit_after: Duration::from_millis(50),
        },
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let made = sim.push_tickets(1, 0.0).await;
    let no = &made[0];
    let urged = sim
        .wait_for_ticket(no, Duration::from_secs(5), |t| {
            t.pushes.iter().any(|p| p.kind == "urge")
        })
        .await
        .expect("urged");
    assert_eq!(
        urged.pushes.last().unwrap().partner_message_id,
        format!("{no}-DB1")
    );

    // The bureau signs and replies (as the hub would); the platform closes, then visits.
    let client = reqwest::Client::new();
    let cred = hub_security::signing::SigningCredential::HmacSm3 {
        secret: b"dev-only-12345-secret-change-me".to_vec(),
    };
    for (action, body) in [
        (
            "sign",
            json!({"gdbh": no, "cbdw": {"dm": "D", "mc": "M"}, "qssj": "2026-11-22 09:45:00"}),
        ),
        (
            "reply",
            json!({"gdbh": no, "cbdw": {"dm": "D", "mc": "M"}, "bljg": "已处理", "sflxldr": "1",
                         "cbr": "孙八", "bjsj": "2026-11-22 10:45:00"}),
        ),
    ] {
        let path = format!("/api/v1/tickets/{action}");
        let bytes = serde_json::to_vec(&body).unwrap();
        let mut req = client
            .post(format!("{}{path}", sim.base_url()))
            .body(bytes.clone());
        for (k, v) in cred.sign_request(
            "water-bureau-hub",
            "POST",
            &path,
            "",
            &bytes,
            chrono::Utc::now().timestamp_millis(),
        ) {
            req = req.header(k, v);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(v["code"], "0000", "{action}");
    }
    let done = sim
        .wait_for_ticket(no, Duration::from_secs(5), |t| {
            t.pushes.iter().any(|p| p.kind == "visit")
        })
        .await
        .expect("closed and visited");
    assert_eq!(done.state, TicketState::Closed);
    let kinds: Vec<&str> = done.pushes.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["dispatch", "urge", "close", "visit"]);
    let received = hub.received.lock().unwrap().clone();
    let close = received.iter().find(|r| r.mapping == "close_json").unwrap();
    let close: Value = serde_json::from_slice(&close.body).unwrap();
    assert_eq!(close["xdfs"], "1", "completed after a reply");
    assert!(received
        .iter()
        .any(|r| r.mapping == "visit_json" && r.pmid == format!("{no}-HF1")));
    // A closed ticket cannot be urged or closed again.
    assert!(sim.push_urge(no).await.is_err());
    assert!(sim.push_close(no).await.is_err());
    sim.shutdown().await;
}
