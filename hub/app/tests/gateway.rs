//! The gateway on a running hub, against the real broker: a signed push lands on its topic as
//! a Confluent-framed contract record with its personal fields sealed; every refusal answers
//! its status and code; replays and retried pushes produce nothing twice; a request signed by
//! Python gmssl is accepted, and one signed and encrypted by npm sm-crypto; no personal data
//! reaches the logs or Kafka in clear text.

mod support;

use std::time::Duration;

use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::{RequestParts, SignatureMethod, SigningCredential};
use hub_security::sm::Sm2PrivateKey;
use serde_json::{json, Value};
use support::isolate::copy_dir;
use support::*;

const SECRET: &str = "test-only-hmac-secret-0123456789";
const DISPATCH: &str = "/v1/hotline12345/dispatch_json";
const PRESHARED_SM4: &str = "00112233445566778899aabbccddeeff";

struct Hub {
    serving: Serving,
    gateway: String,
    sm2: Sm2PrivateKey,
    _dir: tempfile::TempDir,
}

fn start() -> Hub {
    start_with("", &[])
}

fn start_with(gateway_extra: &str, env: &[(&str, &str)]) -> Hub {
    start_full(gateway_extra, env, 1000, "")
}

/// A hub whose gateway has the test apps; `gateway_extra` adds gateway keys (before the apps),
/// `env` adds `HUB_*` overrides, `rate` is the hotline app's rate and burst.
fn start_full(gateway_extra: &str, env: &[(&str, &str)], rate: u32, tail: &str) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sm2 = Sm2PrivateKey::generate();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nmax_body_bytes = 65536\n\
         {gateway_extra}key_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n\
         sm2_public_key = \"{}\"\nrate_per_second = {rate}\nburst = {rate}\nsm4_key = \"{PRESHARED_SM4}\"\n\
         [[gateway.apps]]\napp_id = \"elicense-test\"\npartner = \"elicense\"\nhmac_secret = \"{SECRET}\"\n{tail}",
        repo().join("ops/dev-keyring.toml").display(),
        sm2.public_key_hex()
    );
    let serving = start_serving_env(dir.path(), &kafka(), &extra, env);
    Hub {
        serving,
        gateway: format!("http://127.0.0.1:{port}"),
        sm2,
        _dir: dir,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("mappings/hotline12345/fixtures").join(path)).unwrap()
}

/// Sends `body` to `path`, signed by `app` with HMAC-SM3 at `ts`, plus `extra` headers, which
/// are signed too (`X-Hub-Signed-Headers`).
async fn push(
    hub: &Hub,
    app: &str,
    path: &str,
    body: &[u8],
    ts: i64,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let headers = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request_with(app, "POST", path, "", body, ts, extra);
    send(hub, path, body, headers, extra).await
}

/// Sends `body` to `path` with `headers` (e.g. signature headers) and `extra`; the raw answer.
async fn send_raw(
    hub: &Hub,
    path: &str,
    body: &[u8],
    headers: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", hub.gateway))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Like [`send_raw`], answering the status and the JSON body.
async fn send(
    hub: &Hub,
    path: &str,
    body: &[u8],
    headers: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let r = send_raw(hub, path, body, headers, extra).await;
    let status = r.status().as_u16();
    (status, hub_answer(r.json().await.unwrap_or(Value::Null)))
}

/// HMAC-signed headers of the hotline test app for `body` on `path`, now.
fn signed(path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request("hotline-test", "POST", path, "", body, now_ms())
}

async fn wait_ready(hub: &Hub) {
    wait_for_status(
        &format!("{}/readyz", hub.serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
}

/// Reads `topic` from the beginning with a fresh group until the record with `message_id`.
async fn find_on_kafka(topic: &str, message_id: &str) -> Vec<hub_bus::Delivery> {
    let bus = bus_section("gateway-test");
    let group = format!("gateway-test-{}", uuid::Uuid::new_v4().simple());
    let consumer = hub_bus::Consumer::new(&bus, &group, &[topic]).unwrap();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Before the record shows up, wait up to the deadline; after, read on until the topic
        // has been quiet for 3 s, so a duplicate written after it would be seen too.
        let wait = if found.is_empty() {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        } else {
            Duration::from_secs(3)
        };
        match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Ok(d)) => {
                if d.envelope
                    .as_ref()
                    .is_ok_and(|e| e.message_id.to_string() == message_id)
                {
                    found.push(d);
                }
            }
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => return found,
        }
    }
}

#[tokio::test]
async fn a_signed_dispatch_lands_on_kafka_sealed_framed_and_enveloped() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/normal.input.json");
    let (status, answer) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-correlation-id", "case-42")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["code"], "ACCEPTED");
    // In the 12345 platform's own envelope (mappings/hotline12345/answer.vrl).
    assert_eq!(answer["partner_code"], "0000", "{answer}");
    assert_eq!(answer["topic"], "hotline.ticket.dispatched.v1");
    let message_id = answer["message_id"].as_str().unwrap().to_string();

    let found = find_on_kafka("hotline.ticket.dispatched.v1", &message_id).await;
    assert_eq!(found.len(), 1, "exactly one record for the push");
    let d = &found[0];
    let env = d.envelope.as_ref().unwrap();
    assert_eq!(env.object_id, "GD20261122000123");
    assert_eq!(d.key.as_deref(), Some("GD20261122000123".as_bytes()));
    assert_eq!(env.event_type, "hotline.ticket.dispatched");
    assert_eq!(env.contract_version, 1);
    assert_eq!(env.source_adapter, "hotline12345");
    assert_eq!(env.partner, "hotline-test");
    assert_eq!(env.correlation_id, "case-42");
    assert_eq!(env.occurred_at.to_rfc3339(), "2026-11-22T09:30:00+08:00");

    // No personal data in clear anywhere in the record's bytes.
    let value = d.payload.as_ref().unwrap();
    for clear in ["13800138000", "张三", "浦东新区张江路 100 号"] {
        assert!(
            !String::from_utf8_lossy(value).contains(clear),
            "{clear} is on Kafka in clear text"
        );
    }
    // Confluent framing with the contract's id, and sealed fields that open with the key ring.
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == "hotline.ticket.dispatched.v1")
        .unwrap();
    let (id, datum) = hub_contracts::unframe(value).unwrap();
    assert_eq!(id, contract.schema_id());
    let apache_avro::types::Value::Record(fields) = contract.decode(datum).unwrap() else {
        panic!("a record")
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let apache_avro::types::Value::Union(_, phone) = field("caller_phone") else {
        panic!("a union")
    };
    let apache_avro::types::Value::String(sealed) = *phone else {
        panic!("a string")
    };
    assert!(sealed.starts_with("sm4gcm:v1:dev-2026-11:"), "{sealed}");
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    let opened = FieldCipher::new(ring)
        .open("hotline.ticket.dispatched.v1/caller_phone", &sealed)
        .unwrap();
    assert_eq!(opened, "13800138000");
    assert_eq!(
        field("title"),
        apache_avro::types::Value::String("张江路路灯不亮且积水".into())
    );

    // The GBK XML variant goes through the same entry.
    let (status, answer) = push(
        &hub,
        "hotline-test",
        "/v1/hotline12345/dispatch_xml",
        &fixture("dispatch_xml/normal_gbk.input.xml"),
        now_ms(),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
    for clear in ["13800138000", "张三", "李四", "021-64000000"] {
        assert!(!logs.contains(clear), "{clear} appears in the hub's logs");
    }
    assert!(
        logs.contains("\"code\":\"ACCEPTED\""),
        "an access-log line per request"
    );
}

#[tokio::test]
async fn a_personal_field_that_only_looks_sealed_is_sealed_before_kafka() {
    let hub = start();
    wait_ready(&hub).await;
    let mut doc: Value =
        serde_json::from_slice(&fixture("dispatch_json/normal.input.json")).unwrap();
    // Clear text behind the sealed prefix: it must not pass as already sealed.
    let disguised = "sm4gcm:v1:dev-2026-11:13900139000";
    doc["lxdh"] = json!(disguised);
    doc["gdbh"] = json!(format!("GD{}", now_ms()));
    let body = serde_json::to_vec(&doc).unwrap();
    let (status, answer) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let message_id = answer["message_id"].as_str().unwrap().to_string();
    let found = find_on_kafka("hotline.ticket.dispatched.v1", &message_id).await;
    assert_eq!(found.len(), 1);
    let value = found[0].payload.as_ref().unwrap();
    assert!(
        !String::from_utf8_lossy(value).contains("13900139000"),
        "the disguised phone number is on Kafka in clear text"
    );
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let contract = catalog.contract("hotline.ticket.dispatched.v1").unwrap();
    let record =
        hub_pipeline::read_record(&catalog, contract, contract.schema_id(), value).unwrap();
    let sealed = record["caller_phone"].as_str().unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    assert_eq!(
        FieldCipher::new(ring)
            .open("hotline.ticket.dispatched.v1/caller_phone", sealed)
            .unwrap(),
        disguised,
        "sealed once more, it opens to what the partner sent"
    );
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
    assert!(!logs.contains("13900139000"));
}

#[tokio::test]
async fn every_refusal_answers_its_status_and_code() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/normal.input.json");
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_string();

    let (s, v) = send(&hub, DISPATCH, &body, vec![], &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_HEADERS_MISSING".into()));
    assert!(
        v["message_zh"].as_str().is_some()
            && v["message_en"].as_str().is_some()
            && v["request_id"].as_str().is_some(),
        "{v}"
    );

    // An unknown app id answers exactly like a wrong signature (no enumeration of app ids):
    // same status, code and body apart from the request id; the audit keeps the reason.
    let (s_unknown, mut unknown) = push(&hub, "nobody", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(
        (s_unknown, code(&unknown)),
        (401, "AUTH_SIGNATURE_INVALID".into())
    );

    let mut headers = SigningCredential::HmacSm3 {
        secret: b"a-wrong-secret-of-enough-length".to_vec(),
    }
    .sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
    let (s, v) = send(&hub, DISPATCH, &body, headers.clone(), &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_SIGNATURE_INVALID".into()));
    let mut wrong = v.clone();
    unknown.as_object_mut().unwrap().remove("request_id");
    wrong.as_object_mut().unwrap().remove("request_id");
    assert_eq!(
        unknown, wrong,
        "an unknown app and a bad signature answer alike"
    );

    // Timestamps at the ends of i64 are out of the window, never an overflow.
    for ts in [i64::MIN, i64::MAX] {
        let (s, v) = push(&hub, "hotline-test", DISPATCH, &body, ts, &[]).await;
        assert_eq!(
            (s, code(&v)),
            (401, "AUTH_TIMESTAMP_OUT_OF_WINDOW".into()),
            "{ts}"
        );
    }

    // A header that steers the request must be signed; a changed signed one fails.
    let plain = signed(DISPATCH, &body);
    let (s, v) = send(
        &hub,
        DISPATCH,
        &body,
        plain,
        &[("x-partner-message-id", "pm-unsigned")],
    )
    .await;
    assert_eq!((s, code(&v)), (401, "AUTH_HEADER_UNSIGNED".into()));
    let with_id = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request_with(
        "hotline-test",
        "POST",
        DISPATCH,
        "",
        &body,
        now_ms(),
        &[("x-partner-message-id", "pm-signed")],
    );
    let (s, v) = send(
        &hub,
        DISPATCH,
        &body,
        with_id.clone(),
        &[("x-partner-message-id", "pm-changed")],
    )
    .await;
    assert_eq!((s, code(&v)), (401, "AUTH_SIGNATURE_INVALID".into()));
    let (s, v) = send(&hub, DISPATCH, &body, with_id, &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_SIGNED_HEADERS_INVALID".into()));
    assert_eq!(
        v["partner_code"], "4001",
        "12345's code for a bad signature: {v}"
    );
    headers.retain(|(k, _)| *k != "x-hub-signature-method");
    headers.push(("x-hub-signature-method", "RSA-SHA256".into()));
    let (s, v) = send(&hub, DISPATCH, &body, headers, &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_METHOD_UNSUPPORTED".into()));

    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms() - 3_600_000,
        &[],
    )
    .await;
    assert_eq!((s, code(&v)), (401, "AUTH_TIMESTAMP_OUT_OF_WINDOW".into()));

    let mut headers = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
    headers.retain(|(k, _)| *k != "x-hub-nonce");
    headers.push(("x-hub-nonce", "short".into()));
    let (s, v) = send(&hub, DISPATCH, &body, headers, &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_NONCE_INVALID".into()));

    // elicense-test has only an HMAC secret: an SM2 signature is not allowed for it.
    let sm2_signed = SigningCredential::Sm2 {
        key: Sm2PrivateKey::generate(),
    }
    .sign_request("elicense-test", "POST", DISPATCH, "", &body, now_ms());
    let (s, v) = send(&hub, DISPATCH, &body, sm2_signed, &[]).await;
    assert_eq!((s, code(&v)), (401, "AUTH_SIGNATURE_INVALID".into()));

    // The same signed request twice: the second is a replay.
    let signed = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
    let (s, _) = send(&hub, DISPATCH, &body, signed.clone(), &[]).await;
    assert_eq!(s, 200);
    let (s, v) = send(&hub, DISPATCH, &body, signed, &[]).await;
    assert_eq!((s, code(&v)), (409, "AUTH_REPLAY".into()));

    // A correctly signed request from another partner's app may not use this route.
    let (s, v) = push(&hub, "elicense-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!((s, code(&v)), (403, "AUTH_PARTNER_MISMATCH".into()));

    let big = vec![b' '; 70_000];
    let (s, v) = push(&hub, "hotline-test", DISPATCH, &big, now_ms(), &[]).await;
    assert_eq!((s, code(&v)), (413, "BODY_TOO_LARGE".into()));

    let (s, v) = push(
        &hub,
        "hotline-test",
        "/v1/hotline12345/no_such_mapping",
        &body,
        now_ms(),
        &[],
    )
    .await;
    assert_eq!((s, code(&v)), (404, "ROUTE_NOT_FOUND".into()));
    let (s, v) = push(
        &hub,
        "hotline-test",
        "/v1/hotline12345/sign_json",
        &body,
        now_ms(),
        &[],
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (404, "ROUTE_NOT_FOUND".into()),
        "outbound mappings are not entries"
    );

    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        b"{\"gdbh\": ",
        now_ms(),
        &[],
    )
    .await;
    assert_eq!((s, code(&v)), (400, "MAPPING_INPUT_UNREADABLE".into()));
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &fixture("dispatch_json/unknown_district.input.json"),
        now_ms(),
        &[],
    )
    .await;
    assert_eq!((s, code(&v)), (422, "MAPPING_FAILED".into()));
    assert_eq!(v["partner_code"], "1005", "{v}");
    assert!(
        v["detail"]["at"]
            .as_str()
            .unwrap()
            .starts_with("dispatch.inbound.vrl:"),
        "{v}"
    );

    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-partner-message-id", "has space")],
    )
    .await;
    assert_eq!((s, code(&v)), (400, "PARTNER_MESSAGE_ID_INVALID".into()));

    let config = hub.serving_config();
    let Hub {
        serving, _dir: dir, ..
    } = hub;
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    // Security events are in the audit chain.
    let tail = text(&support::hub(&["audit", "tail", "-n", "50", "--config", &config], &[]).stdout);
    for action in [
        "auth.app_unknown",
        "auth.method_not_allowed",
        "auth.header_unsigned",
        "keys.loaded",
        "auth.signature_invalid",
        "auth.timestamp_out_of_window",
        "auth.replay",
        "auth.partner_mismatch",
    ] {
        assert!(tail.contains(action), "{action} not audited:\n{tail}");
    }
    let verify = support::hub(&["audit", "verify", "--config", &config], &[]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    drop(dir);
}

impl Hub {
    fn serving_config(&self) -> String {
        self._dir
            .path()
            .join("hub.toml")
            .to_string_lossy()
            .into_owned()
    }
}

#[tokio::test]
async fn a_retried_push_with_the_same_partner_message_id_produces_one_event() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/anonymous_no_attachments.input.json");
    let pmid = format!("12345-{}", uuid::Uuid::new_v4().simple());
    let (s1, first) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-partner-message-id", &pmid)],
    )
    .await;
    let (s2, second) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-partner-message-id", &pmid)],
    )
    .await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(
        (first["duplicate"].clone(), second["duplicate"].clone()),
        (json!(false), json!(true))
    );
    let found = find_on_kafka(
        "hotline.ticket.dispatched.v1",
        first["message_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(found.len(), 1, "one event for two pushes");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

/// A partner message id names one message: reusing it for another body or another route is
/// refused (409 IDEMPOTENCY_KEY_REUSED) and nothing is produced, instead of being answered as a
/// duplicate while the new message is dropped; the true retry still gets the first answer.
#[tokio::test]
async fn a_partner_message_id_reused_for_another_body_or_route_is_refused() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/anonymous_no_attachments.input.json");
    let other_body = fixture("dispatch_json/normal.input.json");
    let pmid = format!("12345-{}", uuid::Uuid::new_v4().simple());
    let header = [("x-partner-message-id", pmid.as_str())];
    let (s1, first) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &header).await;
    assert_eq!(s1, 200, "{first}");
    let (s2, second) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &other_body,
        now_ms(),
        &header,
    )
    .await;
    assert_eq!(
        (s2, second["code"].as_str()),
        (409, Some("IDEMPOTENCY_KEY_REUSED")),
        "{second}"
    );
    assert_eq!(second["detail"]["body_differs"], json!(true), "{second}");
    let xml = "/v1/hotline12345/dispatch_xml";
    let xml_body = fixture("dispatch_xml/normal_gbk.input.xml");
    let (s3, third) = push(&hub, "hotline-test", xml, &xml_body, now_ms(), &header).await;
    assert_eq!(
        (s3, third["code"].as_str()),
        (409, Some("IDEMPOTENCY_KEY_REUSED")),
        "{third}"
    );
    assert_eq!(third["detail"]["route_differs"], json!(true), "{third}");
    // The true retry: the first answer.
    let (s4, fourth) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &header).await;
    assert_eq!(s4, 200, "{fourth}");
    assert_eq!(fourth["message_id"], first["message_id"]);
    assert_eq!(fourth["duplicate"], json!(true));
    let found = find_on_kafka(
        "hotline.ticket.dispatched.v1",
        first["message_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(found.len(), 1, "only the first message was produced");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("IDEMPOTENCY_KEY_REUSED"),
        "the refusal is in the access log"
    );
}

#[tokio::test]
async fn a_request_signed_by_python_gmssl_is_accepted() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/normal.input.json");
    let ts = now_ms();
    let nonce = format!("{}", uuid::Uuid::new_v4().simple());
    let parts = RequestParts {
        method: SignatureMethod::Sm2Sm3,
        http_method: "POST",
        path: DISPATCH,
        raw_query: "",
        app_id: "hotline-test",
        timestamp_ms: ts,
        nonce: &nonce,
        body: &body,
        signed_headers: &[],
    };
    let canonical = parts.canonical();
    // The partner's side: gmssl signs the canonical string with the app's SM2 key.
    let ops = json!([{
        "op": "sm2_sign",
        "private_key": hex::encode(hub.sm2.to_bytes()),
        "public_key": &hub.sm2.public_key_hex()[2..],
        "data": hex::encode(canonical.as_bytes()),
    }]);
    let signature: Vec<String> = peer::run("gmssl_interop.py", &ops);
    let headers = vec![
        ("x-hub-app-id", "hotline-test".to_string()),
        ("x-hub-timestamp", ts.to_string()),
        ("x-hub-nonce", nonce.clone()),
        ("x-hub-signature-method", "SM2-SM3".to_string()),
        ("x-hub-signature", signature[0].clone()),
    ];
    let (status, answer) = send(&hub, DISPATCH, &body, headers, &[]).await;
    assert_eq!(status, 200, "{answer}");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn a_replay_to_a_second_hub_sharing_postgresql_is_refused() {
    use sqlx::Connection;
    let admin = std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("hub_gateway_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL for this test");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);

    let a = start_with("", &[("HUB_STATE__URL", &url)]);
    let b = start_with("", &[("HUB_STATE__URL", &url)]);
    wait_ready(&a).await;
    wait_ready(&b).await;
    let body = fixture("dispatch_json/normal.input.json");
    let signed = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
    let (s, v) = send(&a, DISPATCH, &body, signed.clone(), &[]).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = send(&b, DISPATCH, &body, signed, &[]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("AUTH_REPLAY")),
        "the second replica knows the nonce: {v}"
    );

    for hub in [a, b] {
        let (status, logs) = stop_and_collect_logs(hub.serving);
        assert!(status.success(), "{logs}");
    }
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_app_over_its_rate_gets_429_with_retry_after() {
    // The hotline app may send one request per second, with no burst.
    let hub = start_full("", &[], 1, "");
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/normal.input.json");
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = send_raw(&hub, DISPATCH, &body, signed(DISPATCH, &body), &[]).await;
        answers.push((
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
    }
    assert_eq!(answers[0].0, 200);
    let limited = answers
        .iter()
        .find(|(s, _)| *s == 429)
        .expect("a request over the rate is refused");
    assert_eq!(limited.1.as_deref(), Some("1"), "Retry-After says when");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");

    // A route limit holds across apps and answers with its scope.
    let hub = start_full(
        "",
        &[],
        1000,
        "[[gateway.route_limits]]\nroute = \"hotline12345/dispatch_json\"\nrate_per_second = 1\nburst = 1\n",
    );
    wait_ready(&hub).await;
    let (s1, _) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    let (s2, v2) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!((s1, s2), (200, 429), "{v2}");
    assert_eq!(v2["detail"]["scope"], "route");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn a_stalled_upload_times_out_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = start_with("body_timeout_ms = 1000\n", &[]);
    wait_ready(&hub).await;
    let addr = hub.gateway.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Announce 100 bytes, send 10, then stall. (Signed: an anonymous upload is refused
    // before its body is read.)
    let head = signed_head(DISPATCH, "content-length: 100\r\n", "") + "0123456789";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&answer).contains("BODY_TIMEOUT") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled upload");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("BODY_TIMEOUT"), "{text}");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn encrypted_bodies_are_accepted_and_answers_encrypted_on_request() {
    use hub_security::sm::{sm4_cbc_decrypt, sm4_gcm_encrypt};
    // The hub's SM2 key, with which gmssl wraps a fresh SM4 key.
    let hub_key = Sm2PrivateKey::generate();
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("hub-sm2.key");
    std::fs::write(&key_file, hex::encode(hub_key.to_bytes())).unwrap();
    let hub = start_with(
        &format!("sm2_private_key_file = \"{}\"\n", key_file.display()),
        &[],
    );
    wait_ready(&hub).await;
    let plain = fixture("dispatch_json/normal.input.json");

    // 1. The partner encrypts with gmssl: SM4-CBC under a fresh key, the key wrapped with SM2.
    let sm4_key = hub_security::sm::random::<16>();
    let iv = hub_security::sm::random::<16>();
    let ops = json!([
        {"op": "sm4_cbc_encrypt", "key": hex::encode(sm4_key), "iv": hex::encode(iv), "data": hex::encode(&plain)},
        {"op": "sm2_encrypt", "public_key": &hub_key.public_key_hex()[2..], "data": hex::encode(sm4_key)},
    ]);
    let out: Vec<String> = peer::run("gmssl_interop.py", &ops);
    let mut body = iv.to_vec();
    body.extend(hex::decode(&out[0]).unwrap());
    let r = reqwest::Client::new()
        .post(format!("{}{DISPATCH}", hub.gateway))
        .headers({
            let mut h = reqwest::header::HeaderMap::new();
            let signer = SigningCredential::HmacSm3 {
                secret: SECRET.as_bytes().to_vec(),
            };
            let steering = [
                ("x-hub-encryption", "SM4-CBC"),
                ("x-hub-encryption-key", out[1].as_str()),
                ("x-hub-encrypt-response", "true"),
            ];
            for (k, v) in signer.sign_request_with(
                "hotline-test",
                "POST",
                DISPATCH,
                "",
                &body,
                now_ms(),
                &steering,
            ) {
                h.insert(k, v.parse().unwrap());
            }
            for (k, v) in steering {
                h.insert(k, v.parse().unwrap());
            }
            h
        })
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-hub-encryption"], "SM4-CBC");
    let sealed = r.bytes().await.unwrap();
    let answer: Value = hub_answer(
        serde_json::from_slice(&sm4_cbc_decrypt(&sm4_key, &sealed[..16], &sealed[16..]).unwrap())
            .unwrap(),
    );
    assert_eq!(answer["code"], "ACCEPTED", "{answer}");

    // 2. The app's pre-shared key with SM4-GCM; the answer comes back in clear when not asked.
    let key = hex::decode(PRESHARED_SM4).unwrap();
    let nonce = hub_security::sm::random::<12>();
    let mut body = nonce.to_vec();
    body.extend(sm4_gcm_encrypt(&key, &nonce, b"", &plain).unwrap());
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-hub-encryption", "SM4-GCM")],
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ACCEPTED")), "{v}");

    // 2b. A wrapped key written as sm-crypto writes it (C1 without 0x04) whose x coordinate
    // starts with byte 0x04: decided by length, not misread as prefixed.
    let fresh = hub_security::sm::random::<16>();
    let wrapped = loop {
        let c = hub_security::sm::sm2_encrypt(&hub_key.public_key(), &fresh).unwrap();
        if c[1] == 4 {
            break c[1..].to_vec();
        }
    };
    let nonce = hub_security::sm::random::<12>();
    let mut fresh_body = nonce.to_vec();
    fresh_body.extend(sm4_gcm_encrypt(&fresh, &nonce, b"", &plain).unwrap());
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &fresh_body,
        now_ms(),
        &[
            ("x-hub-encryption", "SM4-GCM"),
            ("x-hub-encryption-key", hex::encode(&wrapped).as_str()),
        ],
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ACCEPTED")), "{v}");

    // 3. Damaged ciphertext, an unknown mode, a wrong wrapped key: refused, nothing accepted.
    let mut damaged = body.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &damaged,
        now_ms(),
        &[("x-hub-encryption", "SM4-GCM")],
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("DECRYPTION_FAILED")));
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[("x-hub-encryption", "AES-GCM")],
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("ENCRYPTION_UNSUPPORTED"))
    );
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        &body,
        now_ms(),
        &[
            ("x-hub-encryption", "SM4-GCM"),
            ("x-hub-encryption-key", "00ff"),
        ],
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("DECRYPTION_FAILED")));

    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

/// Headers of a push signed with SM2-SM3 by npm sm-crypto with the hotline app's key: the
/// canonical string (its construction is checked against Python in hub-protocols' interop
/// tests) covers `body` and the `steering` headers, and sm-crypto signs its bytes.
fn signed_by_sm_crypto(
    hub: &Hub,
    body: &[u8],
    steering: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let ts = now_ms();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let signed_headers = hub_security::signing::headers_to_sign(steering);
    let canonical = RequestParts {
        method: SignatureMethod::Sm2Sm3,
        http_method: "POST",
        path: DISPATCH,
        raw_query: "",
        app_id: "hotline-test",
        timestamp_ms: ts,
        nonce: &nonce,
        body,
        signed_headers: &signed_headers,
    }
    .canonical();
    let signature: Vec<String> = node_peer::run(
        "sm_crypto_interop.js",
        &json!([{
            "op": "sm2_sign",
            "private_key": hex::encode(hub.sm2.to_bytes()),
            "public_key": hub.sm2.public_key_hex(),
            "data": hex::encode(canonical.as_bytes()),
        }]),
    );
    let names: Vec<&str> = signed_headers.iter().map(|(n, _)| n.as_str()).collect();
    vec![
        ("x-hub-app-id", "hotline-test".to_string()),
        ("x-hub-timestamp", ts.to_string()),
        ("x-hub-nonce", nonce),
        ("x-hub-signature-method", "SM2-SM3".to_string()),
        ("x-hub-signature", signature[0].clone()),
        ("x-hub-signed-headers", names.join(";")),
    ]
}

#[tokio::test]
async fn a_push_signed_and_encrypted_by_npm_sm_crypto_is_accepted() {
    // The sibling of the gmssl tests above with the other implementation partners use: a
    // JavaScript client on sm-crypto encrypts the body with SM4-CBC under a fresh key, wraps the
    // key with the hub's SM2 key as doEncrypt writes it (C1 without 04), signs with SM2-SM3, and
    // reads the encrypted answer.
    let hub_key = Sm2PrivateKey::generate();
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("hub-sm2.key");
    std::fs::write(&key_file, hex::encode(hub_key.to_bytes())).unwrap();
    let hub = start_with(
        &format!("sm2_private_key_file = \"{}\"\n", key_file.display()),
        &[],
    );
    wait_ready(&hub).await;
    let plain = fixture("dispatch_json/normal.input.json");
    let sm4_key = hex::encode(hub_security::sm::random::<16>());
    let iv = hub_security::sm::random::<16>();
    let out: Vec<String> = node_peer::run(
        "sm_crypto_interop.js",
        &json!([
            {"op": "sm4_cbc_encrypt", "key": sm4_key, "iv": hex::encode(iv), "data": hex::encode(&plain)},
            {"op": "sm2_encrypt", "public_key": hub_key.public_key_hex(), "data": sm4_key},
        ]),
    );
    assert_eq!(out[1].len(), 2 * 112, "C1 without its 04 prefix");
    let mut body = iv.to_vec();
    body.extend(hex::decode(&out[0]).unwrap());
    let steering = [
        ("x-hub-encryption", "SM4-CBC"),
        ("x-hub-encryption-key", out[1].as_str()),
        ("x-hub-encrypt-response", "true"),
    ];
    let headers = signed_by_sm_crypto(&hub, &body, &steering);
    let r = send_raw(&hub, DISPATCH, &body, headers, &steering).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-hub-encryption"], "SM4-CBC");
    let sealed = r.bytes().await.unwrap();
    // The partner decrypts the answer with sm-crypto.
    let opened: Vec<String> = node_peer::run(
        "sm_crypto_interop.js",
        &json!([{"op": "sm4_cbc_decrypt", "key": sm4_key, "iv": hex::encode(&sealed[..16]), "data": hex::encode(&sealed[16..])}]),
    );
    let answer = hub_answer(serde_json::from_slice(&hex::decode(&opened[0]).unwrap()).unwrap());
    assert_eq!(answer["code"], "ACCEPTED", "{answer}");

    // The same push with one bit of sm-crypto's signature flipped: refused.
    let mut headers = signed_by_sm_crypto(&hub, &body, &steering);
    let sig = &mut headers
        .iter_mut()
        .find(|(n, _)| *n == "x-hub-signature")
        .unwrap()
        .1;
    let flipped = if sig.ends_with('0') { '1' } else { '0' };
    sig.pop();
    sig.push(flipped);
    let (s, v) = send(&hub, DISPATCH, &body, headers, &steering).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    // A wrapped key with a damaged C3, signed as sent: the signature holds, the key does not.
    let mut damaged = hex::decode(&out[1]).unwrap();
    damaged[70] ^= 1;
    let damaged = hex::encode(damaged);
    let steering = [
        ("x-hub-encryption", "SM4-CBC"),
        ("x-hub-encryption-key", damaged.as_str()),
    ];
    let headers = signed_by_sm_crypto(&hub, &body, &steering);
    let (s, v) = send(&hub, DISPATCH, &body, headers, &steering).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("DECRYPTION_FAILED")),
        "{v}"
    );

    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_entry_and_error_code() {
    let hub = start();
    wait_ready(&hub).await;
    let doc = openapi(&hub.gateway).await;
    assert_eq!(doc["openapi"], "3.0.3");
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let set = hub_mapping::MappingSet::load(&repo().join("mappings"), &catalog).unwrap();
    let inbound: Vec<String> = set
        .mappings
        .iter()
        .filter(|m| m.direction == hub_mapping::Direction::Inbound)
        .map(|m| format!("/v1/{}/{}", m.partner, m.name))
        .collect();
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        inbound.len(),
        "one path per inbound mapping, no more"
    );
    for p in &inbound {
        assert!(paths.contains_key(p), "{p} is not documented");
        // And the documented path is really served (an unsigned call is refused by the gateway,
        // not answered 404).
        let r = reqwest::Client::new()
            .post(format!("{}{p}", hub.gateway))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{p}");
    }
    assert!(
        paths["/v1/hotline12345/dispatch_xml"]["post"]["requestBody"]["content"]
            ["application/xml; charset=GBK"]
            .is_object()
    );
    let codes = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap();
    for c in hub_gateway::ErrorCode::ALL {
        assert!(
            codes.contains(&json!(c.code())),
            "{} is not in the document",
            c.code()
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["signature"]["name"],
        "X-Hub-Signature"
    );
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

/// Copies a folder tree.
#[tokio::test]
async fn a_partner_declared_envelope_wraps_every_answer() {
    // The mappings as shipped, with 12345's JSON envelope replaced by a GBK XML one.
    let mappings = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("mappings"), mappings.path());
    let partner = mappings.path().join("hotline12345");
    let mut manifest = std::fs::read_to_string(partner.join("mappings.toml")).unwrap();
    let shipped = manifest
        .find("name = \"answer\"")
        .and_then(|at| manifest[..at].rfind("[[mapping]]"))
        .expect("12345 ships an answer envelope");
    manifest.truncate(shipped);
    manifest.push_str("\n[[mapping]]\nname = \"answer\"\ndirection = \"answer\"\nprogram = \"answer.vrl\"\nformat = \"xml\"\nencoding = \"gbk\"\nxml_root = \"fhxx\"\n");
    std::fs::write(partner.join("mappings.toml"), manifest).unwrap();
    std::fs::write(
        partner.join("answer.vrl"),
        "ok = .code == \"ACCEPTED\"\nrtn = \"9999\"\nif ok { rtn = \"0000\" }\n\
         . = {\"rtnCode\": rtn, \"rtnMsg\": .message_zh, \"hubCode\": .code, \"lsh\": .message_id, \"qqid\": .request_id}\n",
    )
    .unwrap();
    let dir_var = mappings.path().to_string_lossy().into_owned();
    let hub = start_with("", &[("HUB_MAPPINGS__DIR", &dir_var)]);
    wait_ready(&hub).await;

    let body = fixture("dispatch_json/normal.input.json");
    let r = send_raw(&hub, DISPATCH, &body, signed(DISPATCH, &body), &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml; charset=GBK");
    let bytes = r.bytes().await.unwrap();
    let (text, _, malformed) = encoding_rs::GBK.decode(&bytes);
    assert!(!malformed);
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"GBK\"?><fhxx>"),
        "{text}"
    );
    assert!(
        text.contains("<rtnCode>0000</rtnCode>") && text.contains("<rtnMsg>已接收</rtnMsg>"),
        "{text}"
    );
    assert!(text.contains("<hubCode>ACCEPTED</hubCode>"), "{text}");

    // Refusals are wrapped too, with their HTTP status kept.
    let r = reqwest::Client::new()
        .post(format!("{}{DISPATCH}", hub.gateway))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let bytes = r.bytes().await.unwrap();
    let (text, _, _) = encoding_rs::GBK.decode(&bytes);
    assert!(
        text.contains("<rtnCode>9999</rtnCode>")
            && text.contains("<hubCode>AUTH_HEADERS_MISSING</hubCode>"),
        "{text}"
    );
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn a_push_the_broker_cannot_take_is_refused_not_acknowledged() {
    // The bus points at a closed port and gives up on a record after 1 s.
    let closed = format!("127.0.0.1:{}", free_port());
    let hub = start_with(
        "",
        &[
            ("HUB_BUS__BOOTSTRAP_SERVERS", &closed),
            ("HUB_BUS__DELIVERY_TIMEOUT_MS", "1000"),
        ],
    );
    // Alive, not ready: the gateway still answers, and must not say 200.
    wait_for_status(
        &format!("{}/readyz", hub.serving.admin),
        503,
        Duration::from_secs(30),
    )
    .await;
    let body = fixture("dispatch_json/normal.input.json");
    let (s, v) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (503, Some("BUS_UNAVAILABLE")),
        "{v}"
    );
    assert_eq!(v["partner_code"], "2001", "12345 sends it again later: {v}");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

/// A Confluent-compatible registry simulator (an external platform, run in this test): assigns
/// ids from 101, answers the existing id for a schema already registered under a subject.
mod registry_sim {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::routing::{get, post, put};
    use axum::{Json, Router};
    use serde_json::{json, Value};

    #[derive(Default)]
    pub struct Sim {
        pub schemas: Vec<(String, String, u32)>,
        pub modes: BTreeMap<String, String>,
    }

    pub type Shared = Arc<Mutex<Sim>>;

    async fn register(
        State(s): State<Shared>,
        Path(subject): Path<String>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let schema = body["schema"].as_str().unwrap_or_default().to_string();
        let mut sim = s.lock().unwrap();
        if let Some((_, _, id)) = sim
            .schemas
            .iter()
            .find(|(sub, sch, _)| *sub == subject && *sch == schema)
        {
            return Json(json!({ "id": id }));
        }
        let id = 101 + sim.schemas.len() as u32;
        sim.schemas.push((subject, schema, id));
        Json(json!({ "id": id }))
    }

    async fn config(
        State(s): State<Shared>,
        Path(subject): Path<String>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let mode = body["compatibility"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.lock().unwrap().modes.insert(subject, mode.clone());
        Json(json!({ "compatibility": mode }))
    }

    async fn by_id(State(s): State<Shared>, Path(id): Path<u32>) -> Json<Value> {
        let sim = s.lock().unwrap();
        let schema = sim
            .schemas
            .iter()
            .find(|(_, _, i)| *i == id)
            .map(|(_, sch, _)| sch.clone());
        Json(json!({ "schema": schema }))
    }

    pub async fn start() -> (String, Shared) {
        let shared: Shared = Arc::default();
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(register))
            .route("/config/{subject}", put(config))
            .route("/schemas/ids/{id}", get(by_id))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, shared)
    }
}

#[tokio::test]
async fn with_an_external_registry_messages_carry_its_ids() {
    let (url, sim) = registry_sim::start().await;
    let hub = start_with("", &[("HUB_REGISTRY__EXTERNAL_URL", &url)]);
    wait_ready(&hub).await;
    let registered = sim.lock().unwrap().schemas.len();
    assert!(registered >= 49, "every contract registered: {registered}");
    let subject = "hotline.ticket.dispatched.v1-value";
    let id = sim
        .lock()
        .unwrap()
        .schemas
        .iter()
        .find(|(s, _, _)| s == subject)
        .unwrap()
        .2;
    assert_eq!(
        sim.lock().unwrap().modes.get(subject).map(String::as_str),
        Some("BACKWARD")
    );

    let body = fixture("dispatch_json/normal.input.json");
    let (status, answer) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let found = find_on_kafka(
        "hotline.ticket.dispatched.v1",
        answer["message_id"].as_str().unwrap(),
    )
    .await;
    let (framed_id, datum) = hub_contracts::unframe(found[0].payload.as_deref().unwrap()).unwrap();
    assert_eq!(framed_id, id, "framed with the external registry's id");
    // A consumer of that registry decodes it with the schema it serves.
    let served: Value = reqwest::get(format!("{url}/schemas/ids/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = apache_avro::Schema::parse_str(served["schema"].as_str().unwrap()).unwrap();
    assert!(apache_avro::from_avro_datum(&schema, &mut &datum[..], None).is_ok());
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");

    // A restart registers nothing new; a registry that is down stops the start.
    let again = start_with("", &[("HUB_REGISTRY__EXTERNAL_URL", &url)]);
    wait_ready(&again).await;
    assert_eq!(sim.lock().unwrap().schemas.len(), registered);
    let (status, logs) = stop_and_collect_logs(again.serving);
    assert!(status.success(), "{logs}");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let down = start_with("", &[("HUB_REGISTRY__EXTERNAL_URL", &closed)]);
    let Hub { serving: mut s, .. } = down;
    let exit = tokio::task::spawn_blocking(move || s.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(1));
}

/// Writes `head` (and any bytes after it) on a fresh connection to the gateway and reads the
/// answer until `until` appears in it or the connection closes; the stream stays open.
async fn raw_answer(hub: &Hub, head: &[u8], until: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.gateway.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    // A guard against a hang only: the assertions are on what arrives, not when.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&answer).contains(until) {
                break;
            }
        }
    })
    .await;
    (stream, String::from_utf8_lossy(&answer).into_owned())
}

/// Reads until the peer closes the connection (true) or 30 s pass (false).
async fn closed_by_peer(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// The request head of a push signed by the hotline test app, for a body of `length` bytes
/// (the signature is over other bytes: the body is refused before it is checked).
fn signed_head(path: &str, length: &str, extra: &str) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: gateway\r\n{length}{extra}");
    for (k, v) in signed(path, b"not the body") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[tokio::test]
async fn a_payload_nesting_100000_levels_is_refused_and_the_hub_keeps_serving() {
    // Bodies of 700 KB get through the size limit, so the depth limit is what answers.
    let hub = start_with("", &[("HUB_GATEWAY__MAX_BODY_BYTES", "1048576")]);
    wait_ready(&hub).await;
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_string();

    // Once enough to overflow the stack and abort the process, answers in flight included.
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><gd>{}{}</gd>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let path = "/v1/hotline12345/dispatch_xml";
    let (s, v) = push(&hub, "hotline-test", path, xml.as_bytes(), now_ms(), &[]).await;
    assert_eq!((s, code(&v)), (400, "INPUT_TOO_DEEP".into()), "{v}");
    assert!(v["message_zh"].as_str().is_some(), "{v}");

    let json = format!(
        "{{\"gdbh\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (s, v) = push(
        &hub,
        "hotline-test",
        DISPATCH,
        json.as_bytes(),
        now_ms(),
        &[],
    )
    .await;
    assert_eq!((s, code(&v)), (400, "INPUT_TOO_DEEP".into()), "{v}");

    // Still serving: a normal push is accepted, in XML and in JSON.
    let (s, v) = push(
        &hub,
        "hotline-test",
        path,
        &fixture("dispatch_xml/normal_gbk.input.xml"),
        now_ms(),
        &[],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let body = fixture("dispatch_json/normal.input.json");
    let (s, v) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(s, 200, "{v}");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_read() {
    let hub = start();
    wait_ready(&hub).await;
    // 64 MB announced, 10 bytes sent, and nothing more until the answer is in: the 413 can
    // only come from the declared length.
    let head = format!(
        "POST {DISPATCH} HTTP/1.1\r\nhost: gateway\r\ncontent-length: 67108864\r\n\r\n0123456789"
    );
    let (mut stream, answer) = raw_answer(&hub, head.as_bytes(), "BODY_TOO_LARGE").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("BODY_TOO_LARGE"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        closed_by_peer(&mut stream).await,
        "the connection is closed after the answer"
    );

    // The same for a signed push: the declared length is checked before anything else.
    let head = signed_head(DISPATCH, "content-length: 67108864\r\n", "");
    let (mut stream, answer) = raw_answer(&hub, head.as_bytes(), "BODY_TOO_LARGE").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(closed_by_peer(&mut stream).await);

    // A chunked body is refused as soon as it crosses the limit (65536 here), with the rest
    // of it never sent.
    let mut head = signed_head(DISPATCH, "transfer-encoding: chunked\r\n", "").into_bytes();
    for _ in 0..17 {
        head.extend_from_slice(format!("1000\r\n{}\r\n", "x".repeat(4096)).as_bytes());
    }
    let (mut stream, answer) = raw_answer(&hub, &head, "BODY_TOO_LARGE").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(closed_by_peer(&mut stream).await);

    // And the hub goes on serving.
    let body = fixture("dispatch_json/normal.input.json");
    let (s, v) = push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]).await;
    assert_eq!(s, 200, "{v}");
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn slow_uploads_without_credentials_cannot_starve_a_signed_push() {
    use tokio::io::AsyncWriteExt;
    // Four requests in their expensive part at once; bodies read at once: 100 per source
    // (every test connection comes from 127.0.0.1), 4 per app.
    let hub = start_with(
        "max_concurrent_requests = 4\nmax_uploads_per_source = 100\nmax_uploads_per_app = 4\n",
        &[],
    );
    wait_ready(&hub).await;
    let addr = hub.gateway.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    // 40 anonymous uploads announcing 1000 bytes and sending 10: refused at once (401), they
    // hold nothing.
    for _ in 0..40 {
        let (stream, answer) = raw_answer(
            &hub,
            format!(
                "POST {DISPATCH} HTTP/1.1\r\nhost: g\r\ncontent-length: 1000\r\n\r\n0123456789"
            )
            .as_bytes(),
            "AUTH_HEADERS_MISSING",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        held.push(stream);
    }
    // 8 slow uploads claiming another partner's app id (its secret unknown): 4 are read, the
    // others answer 429 at once; none holds the concurrency limit while it trickles in.
    let mut slow = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let mut head =
            "POST /v1/elicense/x HTTP/1.1\r\nhost: g\r\ncontent-length: 1000\r\n".to_string();
        let guessed = SigningCredential::HmacSm3 {
            secret: b"a-guessed-secret-not-the-apps".to_vec(),
        };
        for (k, v) in guessed.sign_request(
            "elicense-test",
            "POST",
            "/v1/elicense/x",
            "",
            b"x",
            now_ms(),
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n0123456789");
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    // The ones over the app's bound are answered 429 without being read.
    for stream in &mut slow {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(text.starts_with("HTTP/1.1 429"), "{text}");
            assert!(text.contains("app_uploads"), "{text}");
            refused += 1;
        }
    }
    assert_eq!(
        refused, 4,
        "4 of the 8 slow uploads are read, the rest refused"
    );

    // With all of that going on, real partners' pushes are accepted, several at once.
    let body = fixture("dispatch_json/normal.input.json");
    let pushes = (0..3).map(|_| push(&hub, "hotline-test", DISPATCH, &body, now_ms(), &[]));
    for (s, v) in futures::future::join_all(pushes).await {
        assert_eq!(s, 200, "{v}");
    }
    drop(slow);
    drop(held);
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn a_connection_that_sends_no_headers_is_closed() {
    let hub = start_with("header_timeout_ms = 500\n", &[]);
    wait_ready(&hub).await;
    // Nothing at all, then half a request head: both closed after the header timeout.
    let (mut silent, answer) = raw_answer(&hub, b"", "never").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        closed_by_peer(&mut silent).await,
        "a silent connection is closed"
    );
    let (mut half, _) = raw_answer(
        &hub,
        b"POST /v1/hotline12345/dispatch_json HTTP/1.1\r\nhost: g\r\n",
        "never",
    )
    .await;
    assert!(
        closed_by_peer(&mut half).await,
        "a half-sent head is closed"
    );
    let (status, logs) = stop_and_collect_logs(hub.serving);
    assert!(status.success(), "{logs}");
}
#[tokio::test]
async fn a_flood_of_failed_authentications_is_audited_as_counts_with_bounded_subjects() {
    let hub = start();
    wait_ready(&hub).await;
    let body = fixture("dispatch_json/normal.input.json");
    let forged = SigningCredential::HmacSm3 {
        secret: b"a-wrong-secret-of-enough-length".to_vec(),
    };
    // 60 forged signatures on a real route, 30 unknown app ids on a made-up 3000-character
    // route: answered one by one, audited as a few records.
    for _ in 0..60 {
        let headers = forged.sign_request("hotline-test", "POST", DISPATCH, "", &body, now_ms());
        let (s, _) = send(&hub, DISPATCH, &body, headers, &[]).await;
        assert_eq!(s, 401);
    }
    let long = format!("/v1/{}/x", "p".repeat(3000));
    for _ in 0..30 {
        let (s, _) = push(&hub, "nobody", &long, &body, now_ms(), &[]).await;
        assert_eq!(s, 401);
    }
    let config = hub.serving_config();
    let Hub {
        serving, _dir: dir, ..
    } = hub;
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    // Nor is it written to the hub's log: a path of no configured route is one fixed token.
    assert!(!logs.contains("ppppp"), "the caller's path is in the log");
    assert!(logs.contains("unknown-route"), "{logs}");
    let tail =
        text(&support::hub(&["audit", "tail", "-n", "200", "--config", &config], &[]).stdout);
    let lines =
        |action: &str| -> Vec<&str> { tail.lines().filter(|l| l.contains(action)).collect() };
    let forged_lines = lines("auth.signature_invalid");
    // The first at once, the other 59 as one count at the end of the interval (or the stop).
    assert_eq!(forged_lines.len(), 2, "{tail}");
    assert!(
        forged_lines[0].contains("hotline12345/dispatch_json"),
        "{tail}"
    );
    assert!(forged_lines[1].contains("\"count\":59"), "{tail}");
    let unknown = lines("auth.app_unknown");
    assert_eq!(unknown.len(), 2, "{tail}");
    assert!(
        unknown.iter().all(|l| l.contains("unknown-route")),
        "{tail}"
    );
    assert!(
        !tail.contains("ppppp"),
        "the caller's path is never a subject:\n{tail}"
    );
    let verify = support::hub(&["audit", "verify", "--config", &config], &[]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    drop(dir);
}
