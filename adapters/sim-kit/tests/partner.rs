//! A small synthetic partner built on the kit (a "licence library" with one action and one
//! lookup), driven over real HTTP as the hub drives a partner: the kit's pipeline
//! (authentication, idempotency, planned faults including wrong signatures), pushes signed
//! rightly and wrongly, the control API and the state file across a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use hub_security::signing::{
    received_signed_headers, RequestParts, SignatureMethod, SigningCredential, VerifyingCredential,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sim_kit::auth::hub_v1::{HubV1Signer, HubV1Verifier};
use sim_kit::auth::Inbound;
use sim_kit::{
    Call, CallKind, Codes, Conn, Decision, Fault, FaultRule, Kit, KitConfig, PartnerState, Push,
    PushOutcome, RetryConfig,
};

const HUB_SECRET: &[u8] = b"hub-secret";
const PARTNER_SECRET: &[u8] = b"partner-secret";

// ---- the partner: its codes, its state, its endpoints ---------------------------------------

struct LibraryCodes;

impl Codes for LibraryCodes {
    fn ok(&self) -> &'static str {
        "00"
    }
    fn signature_failed(&self) -> &'static str {
        "40"
    }
    fn busy(&self) -> &'static str {
        "50"
    }
    fn maintenance(&self) -> &'static str {
        "51"
    }
    fn message(&self, code: &str) -> &'static str {
        match code {
            "00" => "成功",
            "40" => "签名错误",
            "44" => "证照不存在",
            _ => "失败",
        }
    }
    fn envelope_code<'a>(&self, answer: &'a Value) -> Option<&'a str> {
        answer
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| c.len() == 2)
    }
}

#[derive(Default)]
struct Library {
    /// Licence number → revoked.
    licences: BTreeMap<String, bool>,
}

impl PartnerState for Library {
    fn save(&self) -> serde_json::Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("licences".into(), serde_json::to_value(&self.licences)?);
        Ok(m)
    }
    fn restore(&mut self, mut saved: Map<String, Value>) -> serde_json::Result<usize> {
        self.licences = serde_json::from_value(saved.remove("licences").unwrap_or_default())?;
        Ok(self.licences.len())
    }
    fn fingerprint(&self) -> u64 {
        self.licences.values().filter(|r| **r).count() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Endpoint {
    Revoke,
    Verify,
}

type LibraryKit = Kit<Library, FaultRule<Endpoint>>;

async fn api(
    State(kit): State<Arc<LibraryKit>>,
    conn: Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let doc: Value = serde_json::from_slice(&body).unwrap_or_default();
    let no = doc["licence_no"].as_str().map(str::to_string);
    let (endpoint, name, kind) = if uri.path().ends_with("revoke") {
        (Endpoint::Revoke, "revoke", CallKind::Action)
    } else {
        (Endpoint::Verify, "verify", CallKind::Query)
    };
    let call = Call {
        endpoint,
        name,
        kind,
        object: no.as_deref(),
        http: Inbound {
            http_method: method.as_str(),
            path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            headers: &headers,
            body: &body,
        },
    };
    let (reply, _) = kit.handle(call, |lib: &mut Library, _key| {
        let no = no.clone().unwrap_or_default();
        let code = match (endpoint, lib.licences.get_mut(&no)) {
            (_, None) => "44",
            (Endpoint::Revoke, Some(revoked)) => {
                *revoked = true;
                "00"
            }
            (Endpoint::Verify, Some(_)) => "00",
        };
        let data = json!({ "revoked": lib.licences.get(&no) });
        (
            Decision {
                code: code.into(),
                data,
            },
            Vec::<()>::new(),
        )
    });
    conn.answer(reply).await
}

fn new_kit(hub_url: Option<String>, state_file: Option<std::path::PathBuf>) -> Arc<LibraryKit> {
    let mut lib = Library::default();
    lib.licences.insert("L1".into(), false);
    lib.licences.insert("L2".into(), false);
    Kit::new(
        KitConfig {
            adapter: "library".into(),
            hub_url,
            push: true,
            retry: RetryConfig {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(10),
                timeout: Duration::from_secs(2),
            },
            state_file,
        },
        lib,
        Arc::new(LibraryCodes),
        Box::new(HubV1Verifier {
            app_id: "hub".into(),
            secret: HUB_SECRET.to_vec(),
            window: Duration::from_secs(300),
        }),
        Box::new(HubV1Signer {
            app_id: "library".into(),
            secret: PARTNER_SECRET.to_vec(),
        }),
    )
}

async fn start(
    hub_url: Option<String>,
    state_file: Option<std::path::PathBuf>,
) -> (Arc<LibraryKit>, String) {
    let kit = new_kit(hub_url, state_file);
    kit.keep_state().expect("state restored");
    let routes = Router::new()
        .route("/api/revoke", post(api))
        .route("/api/verify", post(api))
        .with_state(Arc::clone(&kit));
    let (addr, _task) = sim_kit::listen(&kit, "127.0.0.1:0".parse().unwrap(), routes)
        .await
        .unwrap();
    (kit, format!("http://{addr}"))
}

/// The hub's call, signed `hub-v1` (the headers are kept so a test can replay them).
async fn call(
    base: &str,
    path: &str,
    body: Value,
    key: Option<&str>,
    headers: Option<Vec<(&'static str, String)>>,
) -> (reqwest::StatusCode, Value, Vec<(&'static str, String)>) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = headers.unwrap_or_else(|| {
        SigningCredential::HmacSm3 {
            secret: HUB_SECRET.to_vec(),
        }
        .sign_request(
            "hub",
            "POST",
            path,
            "",
            &bytes,
            Utc::now().timestamp_millis(),
        )
    });
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .body(bytes);
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    if let Some(k) = key {
        req = req.header("x-idempotency-key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or_default(), headers)
}

#[tokio::test]
async fn the_pipeline_verifies_deduplicates_and_applies_planned_faults() {
    let (kit, base) = start(None, None).await;
    let (s, v, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L1"}),
        Some("k1"),
        None,
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::OK, Some("00")));
    assert_eq!(v["msg"], "成功");
    // The same key: the stored answer, no second effect.
    let (_, again, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L1"}),
        Some("k1"),
        None,
    )
    .await;
    assert_eq!(again, v);
    // An unknown licence is the partner's refusal; a lookup is a query (no idempotency).
    let (_, v, _) = call(
        &base,
        "/api/verify",
        json!({"licence_no": "L9"}),
        None,
        None,
    )
    .await;
    assert_eq!(v["code"], "44");

    // A planned wrong signature: refused with the partner's code, nothing applied.
    kit.inject(
        FaultRule::new(Fault::Signature)
            .on(Endpoint::Revoke)
            .for_object("L2")
            .times(1),
    );
    let (_, v, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L2"}),
        Some("k2"),
        None,
    )
    .await;
    assert_eq!(
        (v["code"].as_str(), v["msg"].as_str()),
        (Some("40"), Some("签名错误"))
    );
    assert!(!kit.lock().state.licences["L2"]);
    // Faults are not stored: the retry with the same key is handled.
    let (_, v, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L2"}),
        Some("k2"),
        None,
    )
    .await;
    assert_eq!(v["code"], "00");

    // A real bad signature, and a replayed nonce.
    let (_, v, headers) = call(
        &base,
        "/api/verify",
        json!({"licence_no": "L1"}),
        None,
        None,
    )
    .await;
    assert_eq!(v["code"], "00");
    let (_, v, _) = call(
        &base,
        "/api/verify",
        json!({"licence_no": "L1"}),
        None,
        Some(headers),
    )
    .await;
    assert_eq!(v["code"], "40", "nonce replayed");

    // The generic control API reads the kit's rule shape.
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/sim/faults"))
        .json(&json!({"endpoint": "verify", "count": 1, "fault": {"kind": "throttle", "retry_after_secs": 4}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v, _) = call(
        &base,
        "/api/verify",
        json!({"licence_no": "L1"}),
        None,
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("50"))
    );
    let r = c
        .post(format!("{base}/sim/faults"))
        .json(&json!({"fault": {"kind": "melt"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let stats: Value = c
        .get(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["applied"], 2);
    assert_eq!(stats["duplicates"], 1);
    assert_eq!(stats["queries"], 4);
    assert_eq!(stats["bad_signatures"], 1);
    assert_eq!(stats["faults_injected"], 2);
    assert_eq!(stats["refusals_by_code"]["40"], 2);
    assert_eq!(stats["refusals_by_code"]["44"], 1);
    // No hub: a planned bad push is refused with a reason.
    let r = c
        .post(format!("{base}/sim/bad_signatures"))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    kit.shutdown().await;
}

/// A stand-in hub gateway that verifies `hub-v1` like the real one and records what it saw.
async fn hub(seen: Arc<Mutex<Vec<(String, bool)>>>) -> String {
    let app = Router::new().route(
        "/v1/library/{mapping}",
        post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                // Like the gateway: the headers the push lists as signed are part of the
                // canonical string, and the partner message id must be among them.
                let signed = received_signed_headers(
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
                let parts = RequestParts {
                    method: SignatureMethod::HmacSm3,
                    http_method: "POST",
                    path: uri.path(),
                    raw_query: "",
                    app_id: &h("x-hub-app-id"),
                    timestamp_ms: h("x-hub-timestamp").parse().unwrap_or(0),
                    nonce: &h("x-hub-nonce"),
                    body: &body,
                    signed_headers: &signed,
                };
                let ok = VerifyingCredential::HmacSm3 {
                    secret: PARTNER_SECRET.to_vec(),
                }
                .verify(&parts.canonical(), &h("x-hub-signature"))
                .is_ok()
                    && signed.iter().any(|(n, _)| n == "x-partner-message-id");
                seen.lock().unwrap().push((h("x-partner-message-id"), ok));
                if ok {
                    (StatusCode::OK, Json(json!({"code": "ACCEPTED"}))).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"code": "AUTH_SIGNATURE_INVALID"})),
                    )
                        .into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn pushes_are_signed_and_a_planned_bad_signature_is_refused_by_the_hub() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = hub(Arc::clone(&seen)).await;
    let (kit, base) = start(Some(url), None).await;
    let push = |id: &'static str| Push {
        kind: "changed",
        mapping: "changed_json",
        content_type: "application/json",
        body: b"{\"licence_no\":\"L1\"}",
        partner_message_id: id,
    };
    let good = kit.send(push("m1")).await.unwrap();
    assert_eq!(good.outcome, PushOutcome::Accepted);
    let r = reqwest::Client::new()
        .post(format!("{base}/sim/bad_signatures"))
        .json(&json!({"count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = kit.send(push("m2")).await.unwrap();
    assert_eq!(bad.outcome, PushOutcome::Refused);
    assert_eq!(bad.http_status, Some(401));
    assert_eq!(bad.attempts, 1, "a 401 is not retried");
    let again = kit.send(push("m3")).await.unwrap();
    assert_eq!(again.outcome, PushOutcome::Accepted, "only the planned one");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("m1".into(), true),
            ("m2".into(), false),
            ("m3".into(), true)
        ]
    );
    let s = kit.stats();
    assert_eq!(
        (s.pushes_accepted, s.pushes_refused, s.push_attempts),
        (2, 1, 3)
    );
    kit.shutdown().await;
}

#[tokio::test]
async fn state_answers_and_nonces_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim/state.json");
    let (kit, base) = start(None, Some(file.clone())).await;
    let (_, first, headers) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L1"}),
        Some("r1"),
        None,
    )
    .await;
    assert_eq!(first["code"], "00");
    kit.shutdown().await;
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["licences"]["L1"], true);
    assert!(saved["answers"]["r1"].is_object() && saved["nonces"].is_object());
    assert!(
        !file.with_extension("tmp").exists(),
        "written, then renamed"
    );

    // Restarted on the same file: the object's state, the stored answer and the used nonce.
    let (kit, base) = start(None, Some(file.clone())).await;
    assert!(kit.lock().state.licences["L1"]);
    let (_, again, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L1"}),
        Some("r1"),
        None,
    )
    .await;
    assert_eq!(again, first);
    let (_, replay, _) = call(
        &base,
        "/api/revoke",
        json!({"licence_no": "L2"}),
        None,
        Some(headers),
    )
    .await;
    assert_eq!(
        replay["code"], "40",
        "the nonce is remembered across the restart"
    );
    kit.shutdown().await;

    std::fs::write(&file, "[1,2]").unwrap();
    let kit = new_kit(None, Some(file));
    let err = kit.keep_state().unwrap_err();
    assert!(
        err.to_string().contains("not a simulator state file"),
        "{err}"
    );
}
