//! The example API over real HTTP, called as the hub calls it: a signed call is taken once (a
//! repeated idempotency key gets the first answer), a call without an id and a wrongly signed
//! call are refused with the partner's codes.

use serde_json::{json, Value};

use {{crate}}::{start, SimulatorConfig};

const HUB_SECRET: &[u8] = b"test-hub-secret";

async fn call(base: &str, body: Value, secret: &[u8], key: &str) -> Value {
    let path = "/api/example/submit";
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = hub_security::signing::SigningCredential::HmacSm3 {
        secret: secret.to_vec(),
    }
    .sign_request(
        "hub",
        "POST",
        path,
        "",
        &bytes,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("x-idempotency-key", key)
        .body(bytes);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn submit_keeps_a_record_once_and_refuses_with_the_partner_codes() {
    let sim = start(
        "127.0.0.1:0".parse().unwrap(),
        SimulatorConfig {
            hub_url: None,
            hub_app_id: "hub".into(),
            hub_secret: HUB_SECRET.to_vec(),
            app_id: "{{partner}}".into(),
            secret: b"test-partner-secret".to_vec(),
            state_file: None,
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", sim.addr);

    let first = call(&base, json!({"id": "EX1"}), HUB_SECRET, "k1").await;
    assert_eq!(first["code"], "0", "{first}");
    let again = call(&base, json!({"id": "EX1"}), HUB_SECRET, "k1").await;
    assert_eq!(again, first);
    assert_eq!(call(&base, json!({}), HUB_SECRET, "k2").await["code"], "1");
    assert_eq!(
        call(&base, json!({"id": "EX2"}), b"wrong", "k3").await["code"],
        "3"
    );

    let stats = sim.kit.stats();
    assert_eq!(
        (stats.applied, stats.duplicates, stats.bad_signatures),
        (1, 1, 1)
    );
    assert_eq!(sim.kit.lock().state.received.len(), 1);
    sim.kit.shutdown().await;
}
