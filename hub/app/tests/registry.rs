//! The schema registry API on a running hub, and an independent decoder (Python fastavro with
//! confluent-kafka, from PyPI) reading a contract message framed by the hub's code, with the
//! schema fetched from the hub's registry.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.schemaregistry.v1+json",
        "{url}"
    );
    (status, r.json().await.unwrap())
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const DLQ: &str = "hub.message.deadlettered.v1-value";

#[tokio::test]
async fn the_registry_answers_like_a_confluent_registry() {
    let dir = tempfile::tempdir().unwrap();
    let serving = start_serving(dir.path(), &kafka());
    let base = format!("{}/registry", serving.admin);
    wait_for_status(
        &format!("{}/healthz", serving.admin),
        200,
        Duration::from_secs(30),
    )
    .await;

    let (status, subjects) = get(&format!("{base}/subjects")).await;
    assert_eq!(status, 200);
    let subjects: Vec<String> = serde_json::from_value(subjects).unwrap();
    assert!(subjects.contains(&DLQ.to_string()), "{subjects:?}");
    assert!(subjects.contains(&"hotline.ticket.dispatched.v1-value".to_string()));

    assert_eq!(
        get(&format!("{base}/subjects/{DLQ}/versions")).await,
        (200, json!([1]))
    );
    let (status, latest) = get(&format!("{base}/subjects/{DLQ}/versions/latest")).await;
    assert_eq!(status, 200);
    assert_eq!(latest["subject"], DLQ);
    assert_eq!(latest["version"], 1);
    let id = latest["id"].as_u64().unwrap();
    let (status, by_id) = get(&format!("{base}/schemas/ids/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(by_id["schema"], latest["schema"]);
    assert_eq!(
        get(&format!("{base}/schemas/ids/{id}/versions")).await.1,
        json!([{ "subject": DLQ, "version": 1 }])
    );
    assert_eq!(
        get(&format!("{base}/config/{DLQ}")).await.1,
        json!({ "compatibilityLevel": "BACKWARD" })
    );

    // Looking up the exact schema finds its id; the registry is read-only.
    let schema = latest["schema"].as_str().unwrap().to_string();
    let (status, found) = post(
        &format!("{base}/subjects/{DLQ}"),
        json!({ "schema": schema }),
    )
    .await;
    assert_eq!((status, found["id"].as_u64()), (200, Some(id)));
    let (status, refused) = post(
        &format!("{base}/subjects/{DLQ}/versions"),
        json!({ "schema": schema }),
    )
    .await;
    assert_eq!((status, refused["error_code"].as_u64()), (405, Some(40501)));

    // Compatibility: dropping a required field is fine for BACKWARD readers; adding one is not.
    let mut candidate: Value = serde_json::from_str(&schema).unwrap();
    candidate["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "operator", "type": "string" }));
    let (status, verdict) = post(
        &format!("{base}/compatibility/subjects/{DLQ}/versions/latest"),
        json!({ "schema": candidate.to_string() }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(verdict["is_compatible"], false);
    assert!(
        verdict["messages"][0]
            .as_str()
            .unwrap()
            .contains("field `operator`"),
        "{verdict}"
    );

    // Errors carry Confluent's codes.
    let (status, e) = get(&format!("{base}/subjects/nope-value/versions")).await;
    assert_eq!((status, e["error_code"].as_u64()), (404, Some(40401)));
    let (status, e) = get(&format!("{base}/subjects/{DLQ}/versions/7")).await;
    assert_eq!((status, e["error_code"].as_u64()), (404, Some(40402)));
    let (status, e) = get(&format!("{base}/subjects/{DLQ}/versions/first")).await;
    assert_eq!((status, e["error_code"].as_u64()), (422, Some(42202)));
    let (status, e) = get(&format!("{base}/schemas/ids/1")).await;
    assert_eq!((status, e["error_code"].as_u64()), (404, Some(40403)));

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn fastavro_decodes_a_contract_message_with_the_schema_from_the_hub_registry() {
    let python = std::env::var("HUB_TEST_PYTHON").expect(
        "HUB_TEST_PYTHON is not set: run the tests with ops/test.sh, which prepares a Python \
         environment with tests/python/requirements.txt",
    );
    let dir = tempfile::tempdir().unwrap();
    let serving = start_serving(dir.path(), &kafka());
    wait_for_status(
        &format!("{}/healthz", serving.admin),
        200,
        Duration::from_secs(30),
    )
    .await;

    // Encode a dead letter with the contract, frame it, and put it on a fresh topic.
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == "hub.message.deadlettered.v1")
        .unwrap();
    let record = json!({
        "original_message_id": "0190f4a2-7c1e-7b3a-9d1e-2f3a4b5c6d7e",
        "route": "hotline12345.reply",
        "source_topic": "hotline.ticket.replied.v1",
        "source_partition": 2,
        "source_offset": 1234,
        "reason_code": "PARTNER_REFUSED",
        "reason": "工单已办结，不能重复回复 / ticket already closed",
        "partner_answer": "{\"code\":\"E102\"}",
        "attempts": 3,
        "original_headers": { "hub-partner": "12345-city" },
        "original_payload": "{\"gdbh\":\"GD2026\"}",
        "dead_lettered_at": "2026-11-22T10:00:00.000+08:00"
    });
    let datum = contract.encode(&record).unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &datum);
    let bus = bus_section("registry-test");
    let topic = format!(
        "test.registry.fastavro.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut spec = contract.topic_spec();
    spec.name = topic.clone();
    hub_bus::admin::TopicAdmin::new(&bus, Duration::from_secs(10))
        .unwrap()
        .ensure(&[spec])
        .await
        .unwrap();
    let envelope = hub_bus::Envelope::new(
        "hub.message.deadlettered",
        1,
        "hub",
        "hub",
        "0190f4a2-7c1e-7b3a-9d1e-2f3a4b5c6d7e",
        hub_bus::now_shanghai(),
    );
    hub_bus::Producer::new(&bus)
        .unwrap()
        .send(&topic, &envelope, &framed)
        .await
        .unwrap();

    let script = repo().join("tests/python/decode_confluent.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            kafka(),
            topic.clone(),
            format!("{}/registry", serving.admin),
        ])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "decoder failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        decoded["schema_id"].as_u64(),
        Some(u64::from(contract.schema_id()))
    );
    assert_eq!(decoded["key"], "0190f4a2-7c1e-7b3a-9d1e-2f3a4b5c6d7e");
    assert_eq!(
        decoded["headers"]["hub-event-type"],
        "hub.message.deadlettered"
    );
    let r = &decoded["record"];
    for field in [
        "route",
        "source_topic",
        "source_partition",
        "source_offset",
        "reason_code",
        "reason",
        "partner_answer",
        "attempts",
        "original_headers",
        "original_payload",
        "dead_lettered_at",
    ] {
        assert_eq!(r[field], record[field], "field {field}: {decoded}");
    }
    assert_eq!(r["original_message_id"], record["original_message_id"]);
    assert_eq!(
        r["original_key"],
        Value::Null,
        "absent optional field decoded as its default"
    );

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
}
