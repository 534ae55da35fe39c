//! Request/reply (`docs/request-reply.md`) against a synthetic lookup partner
//! (`tests/synthetic/synthetic_lookup`): a real HTTP server that verifies the hub's `hub-v1` signatures
//! and answers licence lookups with data. Every request ends in exactly one reply record on the
//! reply contract's topic, caused by the request and in its correlation: answered (with the
//! partner's data, personal fields sealed), refused (a permanent business code), failed after
//! timeouts, and failed because the answer does not fit the reply contract. The three that
//! fail are also dead-lettered, so an operator can replay them.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hub_bus::{now_shanghai, Consumer, Envelope, Producer};
use hub_security::field::{FieldCipher, KeyRing};
use serde_json::{json, Value};
use support::partner::verify_hub_v1;
use support::synthetic::{self, Synthetic};
use support::*;

const SECRET: &str = "request-reply-secret-0123456789";

/// The synthetic lookup partner: what it was asked, and how it answers each licence number
/// (by its prefix).
#[derive(Default)]
struct LookupPartner {
    asked: Mutex<HashMap<String, u32>>,
    bad_signatures: Mutex<u32>,
}

async fn verify(State(p): State<Arc<LookupPartner>>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify_hub_v1(SECRET, &headers, "POST", "/api/licence/verify", &body) {
        *p.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": "E401", "msg": "签名错误"})),
        )
            .into_response();
    }
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let no = asked["zzbh"].as_str().unwrap_or_default().to_string();
    *p.asked.lock().unwrap().entry(no.clone()).or_default() += 1;
    let answer = if no.starts_with("OK-") {
        json!({"code": "0", "msg": "成功", "data": {
            "zzbh": no, "yxbz": "1", "czrxm": asked["czrxm"], "yxqz": "2030-12-31"
        }})
    } else if no.starts_with("GONE-") {
        json!({"code": "E404", "msg": "证照不存在"})
    } else if no.starts_with("SLOW-") {
        // Longer than the hub's timeout: every attempt times out.
        tokio::time::sleep(Duration::from_secs(3)).await;
        json!({"code": "0", "msg": "成功", "data": {"zzbh": no, "yxbz": "1"}})
    } else {
        // "Success" without the licence number the reply mapping needs.
        json!({"code": "0", "msg": "成功", "data": {"yxbz": "1"}})
    };
    Json(answer).into_response()
}

async fn serve(partner: &Arc<LookupPartner>) -> String {
    let app = Router::new()
        .route("/api/licence/verify", post(verify))
        .with_state(Arc::clone(partner));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// The synthetic lookup partner installed under `dir`, with topics of this test alone.
struct Lookup {
    s: Synthetic,
    request_topic: String,
    reply_topic: String,
}

fn lookup(dir: &Path) -> Lookup {
    let s = synthetic::install(dir, "synthetic_lookup", "synthetic");
    Lookup {
        request_topic: s.topic("synthetic.lookup.requested.v1"),
        reply_topic: s.topic("synthetic.lookup.answered.v1"),
        s,
    }
}

fn config(dir: &Path, l: &Lookup, base_url: &str, admin: u16, gateway: u16) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [bus]\nbootstrap_servers = \"{}\"\n[state]\nurl = \"sqlite://state/hub.db\"\n\
             [contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n\
             [log]\nformat = \"json\"\n[gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"rr-{}\"\n\
             [partners.synthetic_lookup]\nbase_url = \"{base_url}\"\napp_id = \"licensing-app\"\n\
             hmac_secret = \"{SECRET}\"\ntimeout_ms = 500\nmax_attempts = 2\n\
             backoff_initial_ms = 50\nbackoff_max_ms = 100\nbreaker_failures = 1000\n",
            kafka(),
            l.s.contracts.display(),
            l.s.mappings.display(),
            l.s.adapters.display(),
            repo().join("ops/dev-keyring.toml").display(),
            uuid::Uuid::new_v4().simple(),
        ),
    )
}

fn cipher() -> FieldCipher {
    FieldCipher::new(KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap())
}

/// Asks about `licence`; returns the request's envelope.
async fn ask(producer: &Producer, s: &Lookup, licence: &str) -> Envelope {
    let catalog = hub_contracts::load_dir(&s.s.contracts).unwrap();
    let contract = catalog.contract(&s.request_topic).unwrap();
    let mut record = json!({
        "licence_no": licence,
        "holder_name": "张三",
        "occurred_at": "2026-12-03T10:00:00+08:00",
    });
    hub_pipeline::pii::seal_record(&cipher(), contract, &mut record).unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let mut envelope = Envelope::new(
        s.request_topic.trim_end_matches(".v1"),
        1,
        "licensing-app",
        "transport-commission",
        licence,
        now_shanghai(),
    );
    envelope.correlation_id = format!("case-{licence}");
    producer
        .send(&s.request_topic, &envelope, &framed)
        .await
        .unwrap();
    envelope
}

/// One reply as the asking app reads it: envelope and record, personal fields opened.
struct ReplyRead {
    envelope: Envelope,
    record: Value,
    holder_name_on_kafka: Value,
}

/// Reads the reply topic until `want` replies arrived or `within` passed.
async fn replies(s: &Lookup, want: usize, within: Duration) -> Vec<ReplyRead> {
    let catalog = hub_contracts::load_dir(&s.s.contracts).unwrap();
    let contract = catalog.contract(&s.reply_topic).unwrap().clone();
    let group = format!("rr-reader-{}", uuid::Uuid::new_v4().simple());
    let consumer = Consumer::new(&bus_section("rr-reader"), &group, &[&s.reply_topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, consumer.next()).await else {
            break;
        };
        let d = next.unwrap();
        let (_, datum) = hub_contracts::unframe(d.payload.as_deref().unwrap()).unwrap();
        let mut record = contract.decode_json(None, datum).unwrap();
        let holder_name_on_kafka = record["holder_name"].clone();
        hub_pipeline::pii::open_record(&cipher(), &contract, &mut record).unwrap();
        out.push(ReplyRead {
            envelope: d.envelope.unwrap(),
            record,
            holder_name_on_kafka,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_ends_in_one_reply_answered_refused_or_failed() {
    let dir = tempfile::tempdir().unwrap();
    let s = lookup(dir.path());
    let partner = Arc::new(LookupPartner::default());
    let base_url = serve(&partner).await;
    let (admin, gateway) = (free_port(), free_port());
    let config = config(dir.path(), &s, &base_url, admin, gateway);
    let serving = check_and_serve(&config, admin).await;

    // A reply is produced by the hub for its own request, never pushed: the gateway neither
    // serves nor documents the reply mapping.
    let doc = openapi(&format!("http://127.0.0.1:{gateway}")).await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        !paths.contains_key("/v1/synthetic_lookup/verify_reply"),
        "{doc}"
    );

    let producer = Producer::new(&bus_section("rr-test")).unwrap();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut asked = HashMap::new();
    for prefix in ["OK", "GONE", "SLOW", "ODD"] {
        let licence = format!("{prefix}-{suffix}");
        asked.insert(licence.clone(), ask(&producer, &s, &licence).await);
    }

    let got = replies(&s, 4, Duration::from_secs(60)).await;
    let (_, logs) = stop_and_collect_logs(serving);
    assert_eq!(
        got.len(),
        4,
        "one reply per request; got {:?}\nhub log:\n{logs}",
        got.iter().map(|r| &r.record).collect::<Vec<_>>()
    );
    let by_licence: HashMap<String, &ReplyRead> = got
        .iter()
        .map(|r| (r.record["licence_no"].as_str().unwrap().to_string(), r))
        .collect();
    for (licence, request) in &asked {
        let reply = by_licence
            .get(licence)
            .unwrap_or_else(|| panic!("no reply for {licence}"));
        // Caused by the request, in its correlation, keyed like it.
        assert_eq!(reply.envelope.causation_id, Some(request.message_id));
        assert_eq!(reply.envelope.correlation_id, request.correlation_id);
        assert_eq!(reply.envelope.object_id, *licence);
        assert_eq!(
            reply.record["request_id"],
            json!(request.message_id.to_string())
        );
    }

    let ok = by_licence[&format!("OK-{suffix}")];
    assert_eq!(ok.record["outcome"], "answered");
    assert_eq!(ok.record["valid"], true);
    assert_eq!(ok.record["expires_on"], "2030-12-31");
    assert_eq!(ok.record["partner_code"], "0");
    assert_eq!(ok.record["reason_code"], Value::Null);
    // The partner sent the holder's name back: on Kafka it is sealed, to the app it opens.
    assert_eq!(ok.record["holder_name"], "张三");
    let sealed = ok.holder_name_on_kafka.as_str().unwrap_or_default();
    assert!(FieldCipher::is_sealed(sealed), "{sealed}");

    let gone = by_licence[&format!("GONE-{suffix}")];
    assert_eq!(gone.record["outcome"], "refused");
    assert_eq!(gone.record["reason_code"], "EGRESS_PARTNER_REFUSED");
    assert_eq!(gone.record["partner_code"], "E404");
    assert_eq!(gone.record["valid"], Value::Null);

    let slow = by_licence[&format!("SLOW-{suffix}")];
    assert_eq!(slow.record["outcome"], "failed");
    assert_eq!(slow.record["reason_code"], "EGRESS_RETRY_EXHAUSTED");
    assert!(
        slow.record["reason"]
            .as_str()
            .unwrap()
            .contains("EGRESS_TIMEOUT"),
        "{}",
        slow.record["reason"]
    );

    let odd = by_licence[&format!("ODD-{suffix}")];
    assert_eq!(odd.record["outcome"], "failed");
    assert_eq!(odd.record["reason_code"], "MAPPING_FAILED");
    assert_eq!(odd.record["partner_code"], "0");

    // Each request was asked (the slow one twice: max_attempts = 2), all signed correctly.
    assert_eq!(*partner.bad_signatures.lock().unwrap(), 0);
    let counts = partner.asked.lock().unwrap().clone();
    assert_eq!(counts[&format!("OK-{suffix}")], 1);
    assert_eq!(counts[&format!("GONE-{suffix}")], 1);
    assert_eq!(counts[&format!("SLOW-{suffix}")], 2);

    // The three that were not answered are dead letters too, for a replay.
    let reasons: Vec<String> = dlq_list(&config, None)
        .iter()
        .map(|v| v["reason_code"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut reasons = reasons;
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "EGRESS_PARTNER_REFUSED",
            "EGRESS_RETRY_EXHAUSTED",
            "MAPPING_FAILED"
        ]
    );
    // Nothing personal in the hub's log: the holder's name went out and came back.
    assert!(!logs.contains("张三"), "the holder's name is in the log");
}

#[test]
fn a_reply_contract_without_the_reply_fields_is_refused_by_check_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = lookup(dir.path());
    // The reply mapping points at the request contract, which has none of the reply fields.
    let file = s.s.mappings.join("synthetic_lookup/mappings.toml");
    let text_ = std::fs::read_to_string(&file).unwrap();
    let broken = text_.replacen(
        &format!(
            "contract = \"{}\"\nprogram = \"verify.inbound.vrl\"",
            s.reply_topic
        ),
        &format!(
            "contract = \"{}\"\nprogram = \"verify.inbound.vrl\"",
            s.request_topic
        ),
        1,
    );
    assert_ne!(broken, text_, "the test must change the reply mapping");
    std::fs::write(&file, broken).unwrap();
    let config = config(
        dir.path(),
        &s,
        "http://127.0.0.1:9",
        free_port(),
        free_port(),
    );
    let out = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("adapter.toml:")
            && err.contains("delivery `verify` key `reply`")
            && err.contains("field `request_id` is missing")
            && err.contains("field `outcome` is missing"),
        "{err}"
    );
}
