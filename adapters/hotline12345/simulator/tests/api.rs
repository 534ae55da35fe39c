//! The platform's APIs over real HTTP: signatures, the state machine's codes, idempotency,
//! the query API's paging, planned faults and the control API.

use std::time::Duration;

use chrono::Utc;
use hotline12345_simulator::{
    Endpoint, Fault, FaultRule, Simulator, SimulatorConfig, SimulatorHandle, TicketState,
};
use hub_security::signing::SigningCredential;
use serde_json::{json, Value};

const HUB_APP: &str = "water-bureau-hub";
const HUB_SECRET: &str = "dev-only-12345-secret-change-me";

async fn start(cfg: SimulatorConfig) -> SimulatorHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

/// A request as the hub's egress sends it.
struct Hub {
    client: reqwest::Client,
    base: String,
    secret: String,
    app_id: String,
}

impl Hub {
    fn new(sim: &SimulatorHandle) -> Self {
        Hub {
            client: reqwest::Client::new(),
            base: sim.base_url().to_string(),
            secret: HUB_SECRET.into(),
            app_id: HUB_APP.into(),
        }
    }

    async fn raw(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
        ts_ms: i64,
        headers_override: Option<Vec<(&'static str, String)>>,
    ) -> reqwest::Result<reqwest::Response> {
        let bytes = serde_json::to_vec(body).unwrap();
        let cred = SigningCredential::HmacSm3 {
            secret: self.secret.as_bytes().to_vec(),
        };
        let headers = headers_override
            .unwrap_or_else(|| cred.sign_request(&self.app_id, "POST", path, "", &bytes, ts_ms));
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(bytes);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(k) = key {
            req = req.header("X-Idempotency-Key", k);
        }
        req.send().await
    }

    async fn post(&self, action: &str, body: &Value, key: Option<&str>) -> Value {
        let path = format!("/api/v1/tickets/{action}");
        let r = self
            .raw(&path, body, key, Utc::now().timestamp_millis(), None)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn unit() -> Value {
    json!({"dm": "11310000002420347T", "mc": "上海市水务局"})
}

fn sign(no: &str) -> Value {
    json!({"gdbh": no, "cbdw": unit(), "qsr": "王五", "qssj": "2026-11-22 09:45:00"})
}

fn ret(no: &str) -> Value {
    json!({"gdbh": no, "cbdw": unit(), "tdly": "不属于水务部门职责", "jycbdwmc": null,
           "jycbdwdm": null, "jbr": null, "tdsj": "2026-11-22 10:10:00"})
}

fn ext(no: &str) -> Value {
    json!({"gdbh": no, "cbdw": unit(), "yblsx": "2026-11-29 18:00:00",
           "sqblsx": "2026-12-13 18:00:00", "yqly": "需开挖施工", "sqr": null,
           "sqsj": "2026-11-27 14:20:00"})
}

fn reply(no: &str) -> Value {
    json!({"gdbh": no, "cbdw": unit(), "bljg": "已疏通排水管道，积水已排除。", "jjqk": "1",
           "sflxldr": "1", "cbr": "孙八", "cbrdh": null, "fj": null,
           "bjsj": "2026-11-28 16:30:00"})
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap()
}

#[tokio::test]
async fn the_state_machine_answers_every_code() {
    let sim = start(SimulatorConfig {
        extension_approve_after: None,
        ..SimulatorConfig::default()
    })
    .await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(3, None).await;
    let (a, b, c) = (&t[0], &t[1], &t[2]);

    // Unknown ticket, malformed body.
    assert_eq!(
        code(&hub.post("sign", &sign("GD20990101000001"), None).await),
        "1001"
    );
    assert_eq!(
        code(&hub.post("sign", &json!({"gdbh": a}), None).await),
        "1005"
    );
    let mut blank = ret(a);
    blank["tdly"] = json!("  ");
    assert_eq!(code(&hub.post("return", &blank, None).await), "1005");

    // Before signing: no extension, no reply.
    assert_eq!(code(&hub.post("extension", &ext(a), None).await), "1004");
    assert_eq!(code(&hub.post("reply", &reply(a), None).await), "1004");

    let ok = hub.post("sign", &sign(a), Some("k-a-sign")).await;
    assert_eq!(ok["code"], "0000");
    assert_eq!(ok["msg"], "成功");
    assert_eq!(ok["data"]["gdzt"], "已签收");
    assert_eq!(code(&hub.post("sign", &sign(a), None).await), "1002");

    assert_eq!(code(&hub.post("extension", &ext(a), None).await), "0000");
    assert_eq!(
        code(&hub.post("extension", &ext(a), None).await),
        "1004",
        "one pending"
    );
    assert!(sim.approve_extension(a));
    assert_eq!(
        sim.ticket(a).unwrap().handle_deadline,
        "2026-12-13 18:00:00"
    );

    assert_eq!(code(&hub.post("reply", &reply(a), None).await), "0000");
    assert_eq!(
        code(&hub.post("return", &ret(a), None).await),
        "1004",
        "not after reply"
    );
    assert_eq!(code(&hub.post("reply", &reply(a), None).await), "1004");
    assert_eq!(code(&hub.post("extension", &ext(a), None).await), "1004");
    assert_eq!(sim.ticket(a).unwrap().state, TicketState::Replied);

    // Return while dispatched; then nothing more.
    assert_eq!(code(&hub.post("return", &ret(b), None).await), "0000");
    assert_eq!(code(&hub.post("sign", &sign(b), None).await), "1004");
    assert_eq!(code(&hub.post("reply", &reply(b), None).await), "1004");

    // Return within the window after signing.
    assert_eq!(code(&hub.post("sign", &sign(c), None).await), "0000");
    assert_eq!(code(&hub.post("return", &ret(c), None).await), "0000");
    assert_eq!(sim.ticket(c).unwrap().state, TicketState::Returned);

    let view = sim.ticket(a).unwrap();
    let effects: Vec<&str> = view.effects().iter().map(|h| h.action.as_str()).collect();
    assert_eq!(effects, ["sign", "extension", "reply"]);
    assert!(
        view.history.iter().any(|h| h.code == "1002"),
        "refusals are kept too"
    );
    assert_eq!(view.idempotency_keys, ["k-a-sign"]);

    let stats = sim.stats();
    assert_eq!(stats.refusals_by_code["1001"], 1);
    assert_eq!(stats.refusals_by_code["1004"], 8);
    assert_eq!(stats.applied, 6);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_return_window_closes() {
    let sim = start(SimulatorConfig {
        return_window: Duration::from_millis(200),
        ..SimulatorConfig::default()
    })
    .await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(1, None).await;
    assert_eq!(code(&hub.post("sign", &sign(&t[0]), None).await), "0000");
    // The platform's clock has second precision.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(code(&hub.post("return", &ret(&t[0]), None).await), "1003");
    sim.shutdown().await;
}

#[tokio::test]
async fn extensions_are_approved_after_the_delay() {
    let sim = start(SimulatorConfig {
        extension_approve_after: Some(Duration::from_millis(50)),
        ..SimulatorConfig::default()
    })
    .await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(1, None).await;
    hub.post("sign", &sign(&t[0]), None).await;
    assert_eq!(
        code(&hub.post("extension", &ext(&t[0]), None).await),
        "0000"
    );
    let v = sim
        .wait_for_ticket(&t[0], Duration::from_secs(5), |t| {
            t.history.iter().any(|h| h.action == "extension_approved")
        })
        .await
        .expect("approved");
    assert_eq!(v.handle_deadline, "2026-12-13 18:00:00");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_has_one_effect() {
    let sim = start(SimulatorConfig::default()).await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(1, None).await;
    let first = hub.post("sign", &sign(&t[0]), Some("idem-1")).await;
    let again = hub.post("sign", &sign(&t[0]), Some("idem-1")).await;
    assert_eq!(first, again, "the stored first answer");
    assert_eq!(code(&again), "0000");
    // A new key is a new request: already signed.
    assert_eq!(
        code(&hub.post("sign", &sign(&t[0]), Some("idem-2")).await),
        "1002"
    );
    // A refusal is stored too.
    assert_eq!(
        code(&hub.post("sign", &sign(&t[0]), Some("idem-2")).await),
        "1002"
    );
    let v = sim.ticket(&t[0]).unwrap();
    assert_eq!(v.effects().len(), 1);
    assert_eq!(v.duplicates, 2);
    assert_eq!(v.idempotency_keys, ["idem-1", "idem-2"]);
    assert_eq!(sim.stats().duplicates, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restarted_platform_remembers_its_tickets_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimulatorConfig {
        state_file: Some(dir.path().join("state/sim.json")),
        ..SimulatorConfig::default()
    };
    let sim = start(cfg.clone()).await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(2, None).await;
    let first = hub.post("sign", &sign(&t[0]), Some("idem-r1")).await;
    assert_eq!(code(&first), "0000");
    sim.shutdown().await;

    // Started again on the same file: the same tickets in the same states, and a request
    // sent again with its key gets the first answer without a second effect.
    let sim = start(cfg).await;
    let hub = Hub::new(&sim);
    assert_eq!(sim.tickets().len(), 2);
    assert_eq!(sim.ticket(&t[0]).unwrap().state, TicketState::Signed);
    assert_eq!(sim.ticket(&t[1]).unwrap().state, TicketState::Dispatched);
    let again = hub.post("sign", &sign(&t[0]), Some("idem-r1")).await;
    assert_eq!(again, first);
    assert_eq!(sim.ticket(&t[0]).unwrap().effects().len(), 1);
    // New tickets do not reuse the numbers of the remembered ones.
    let more = sim.offer_tickets(3, None).await;
    assert!(more.iter().all(|n| !t.contains(n)));
    sim.shutdown().await;

    // A file that is not a state file stops the start with a clear error.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let err = Simulator::start(SimulatorConfig {
        state_file: Some(bad),
        ..SimulatorConfig::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(
        err.to_string().contains("not a simulator state file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_signature_is_4001_and_has_no_effect() {
    let sim = start(SimulatorConfig::default()).await;
    let t = sim.offer_tickets(1, None).await;
    let path = "/api/v1/tickets/sign";
    let body = sign(&t[0]);
    let now = Utc::now().timestamp_millis();

    let mut wrong_secret = Hub::new(&sim);
    wrong_secret.secret = "not-the-secret".into();
    let mut wrong_app = Hub::new(&sim);
    wrong_app.app_id = "someone-else".into();
    let hub = Hub::new(&sim);
    let stale = now - 6 * 60 * 1000;

    let answers = [
        wrong_secret
            .raw(path, &body, Some("s1"), now, None)
            .await
            .unwrap(),
        wrong_app
            .raw(path, &body, Some("s2"), now, None)
            .await
            .unwrap(),
        hub.raw(path, &body, Some("s3"), stale, None).await.unwrap(),
        hub.raw(path, &body, Some("s4"), now, Some(vec![]))
            .await
            .unwrap(),
    ];
    for r in answers {
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "4001");
        assert_eq!(v["msg"], "签名验证失败");
    }
    // A reused nonce: the same signed headers twice.
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = SigningCredential::HmacSm3 {
        secret: HUB_SECRET.as_bytes().to_vec(),
    }
    .sign_request(HUB_APP, "POST", path, "", &bytes, now);
    let first: Value = hub
        .raw(path, &body, None, now, Some(headers.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["code"], "0000");
    let replay: Value = hub
        .raw(path, &body, None, now, Some(headers))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay["code"], "4001");

    let v = sim.ticket(&t[0]).unwrap();
    assert_eq!(v.effects().len(), 1, "only the good request applied");
    assert!(v.idempotency_keys.is_empty(), "refused keys are not kept");
    let s = sim.stats();
    assert_eq!(s.bad_signatures, 5);
    assert_eq!(s.refusals_by_code["4001"], 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_query_pages_a_window_by_dispatch_time() {
    let sim = start(SimulatorConfig::default()).await;
    let hub = Hub::new(&sim);
    let at = |s: &str| hotline12345_simulator::time::parse_local(s).unwrap();
    let early = sim.offer_tickets(2, Some(at("2026-11-22 09:00:00"))).await;
    let inside = sim.offer_tickets(5, Some(at("2026-11-22 09:30:00"))).await;
    let edge = sim.offer_tickets(1, Some(at("2026-11-22 10:00:00"))).await;
    let query = |page: u64| {
        json!({"kssj": "2026-11-22 09:30:00", "jssj": "2026-11-22 10:00:00",
               "pageNo": page, "pageSize": 2})
    };
    let mut seen = vec![];
    for page in 1..=3 {
        let v = hub.post("query", &query(page), None).await;
        assert_eq!(v["code"], "0000");
        assert_eq!(v["data"]["total"], 5);
        for item in v["data"]["list"].as_array().unwrap() {
            assert!(item["pdsj"].is_string() && item["cbdw"]["dm"].is_string());
            seen.push(item["gdbh"].as_str().unwrap().to_string());
        }
    }
    let mut expected = inside.clone();
    expected.sort();
    assert_eq!(
        seen, expected,
        "[kssj, jssj), by time then number, no repeats"
    );
    assert!(!seen.contains(&early[0]) && !seen.contains(&edge[0]));

    // Page numbers as strings (a filled-in template) work; a missing time is 1005.
    let v = hub
        .post(
            "query",
            &json!({"kssj": "2026-11-22 09:00:00", "jssj": "2026-11-22 10:00:01",
                                "pageNo": "1", "pageSize": "50"}),
            None,
        )
        .await;
    assert_eq!(v["data"]["total"], 8);
    let v = hub
        .post(
            "query",
            &json!({"kssj": "2026-11-22 09:00:00", "pageNo": 1, "pageSize": 5}),
            None,
        )
        .await;
    assert_eq!(v["code"], "1005");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_query_waits_for_the_index_delay() {
    let sim = start(SimulatorConfig {
        index_delay: Duration::from_millis(300),
        ..SimulatorConfig::default()
    })
    .await;
    let hub = Hub::new(&sim);
    let now = Utc::now();
    sim.offer_tickets(1, None).await;
    let q = json!({"kssj": hotline12345_simulator::time::fmt_local(now - chrono::Duration::minutes(1)),
                   "jssj": hotline12345_simulator::time::fmt_local(now + chrono::Duration::minutes(1)),
                   "pageNo": 1, "pageSize": 10});
    assert_eq!(hub.post("query", &q, None).await["data"]["total"], 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(hub.post("query", &q, None).await["data"]["total"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn planned_faults_refuse_without_effect() {
    let sim = start(SimulatorConfig::default()).await;
    let hub = Hub::new(&sim);
    let t = sim.offer_tickets(2, None).await;
    let now = || Utc::now().timestamp_millis();
    let path = "/api/v1/tickets/sign";

    sim.inject(
        FaultRule::new(Fault::Status { status: 503 })
            .on(Endpoint::Sign)
            .for_ticket(&t[0])
            .times(1),
    );
    let r = hub
        .raw(path, &sign(&t[0]), Some("f1"), now(), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    sim.inject(
        FaultRule::new(Fault::Throttle {
            retry_after_secs: 3,
        })
        .on(Endpoint::Sign)
        .times(1),
    );
    let r = hub
        .raw(path, &sign(&t[0]), Some("f1"), now(), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");

    sim.inject(FaultRule::new(Fault::Reset).for_ticket(&t[0]).times(1));
    assert!(
        hub.raw(path, &sign(&t[0]), Some("f1"), now(), None)
            .await
            .is_err(),
        "connection dropped"
    );

    sim.inject(
        FaultRule::new(Fault::Code {
            code: "2001".into(),
        })
        .times(1),
    );
    let v: Value = hub
        .raw(path, &sign(&t[0]), Some("f1"), now(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], "2001");
    assert_eq!(v["msg"], "系统繁忙，请稍后重试");
    assert_eq!(
        sim.ticket(&t[0]).unwrap().state,
        TicketState::Dispatched,
        "nothing applied yet"
    );

    // The same key once the faults are used up: handled, and only now.
    assert_eq!(
        code(&hub.post("sign", &sign(&t[0]), Some("f1")).await),
        "0000"
    );
    assert_eq!(sim.ticket(&t[0]).unwrap().effects().len(), 1);

    // A slow answer is applied first: the retry with the same key is a duplicate.
    sim.inject(
        FaultRule::new(Fault::Delay { ms: 1500 })
            .on(Endpoint::Sign)
            .times(1),
    );
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let bytes = serde_json::to_vec(&sign(&t[1])).unwrap();
    let mut req = short
        .post(format!("{}{path}", sim.base_url()))
        .header("X-Idempotency-Key", "slow")
        .body(bytes.clone());
    for (k, v) in (SigningCredential::HmacSm3 {
        secret: HUB_SECRET.as_bytes().to_vec(),
    })
    .sign_request(HUB_APP, "POST", path, "", &bytes, now())
    {
        req = req.header(k, v);
    }
    assert!(req.send().await.is_err(), "timed out");
    assert_eq!(sim.ticket(&t[1]).unwrap().state, TicketState::Signed);
    assert_eq!(
        code(&hub.post("sign", &sign(&t[1]), Some("slow")).await),
        "0000"
    );
    assert_eq!(sim.ticket(&t[1]).unwrap().duplicates, 1);

    // Rules without a count stay until cleared; the query can be faulted too.
    sim.inject(
        FaultRule::new(Fault::Code {
            code: "2002".into(),
        })
        .on(Endpoint::Query),
    );
    let q = json!({"kssj": "2026-11-22 09:00:00", "jssj": "2026-11-22 10:00:00", "pageNo": 1, "pageSize": 5});
    assert_eq!(code(&hub.post("query", &q, None).await), "2002");
    assert_eq!(code(&hub.post("query", &q, None).await), "2002");
    assert_eq!(sim.faults().len(), 1);
    sim.clear_faults();
    assert_eq!(code(&hub.post("query", &q, None).await), "0000");

    let s = sim.stats();
    assert_eq!(s.faults_injected, 7);
    assert_eq!(s.refusals_by_code["2002"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_control_api_shows_and_steers() {
    let sim = start(SimulatorConfig::default()).await;
    let c = reqwest::Client::new();
    let base = sim.base_url();
    let made: Value = c
        .post(format!("{base}/sim/push"))
        .json(&json!({"count": 4, "xml_ratio": 0.5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = made["tickets"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list.iter().filter(|t| t["format"] == "xml").count(), 2);
    assert!(
        list.iter().all(|t| t["hub_accepted"].is_null()),
        "no hub: not pushed"
    );
    let no = list[0]["ticket_no"].as_str().unwrap();

    let all: Value = c
        .get(format!("{base}/sim/tickets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let one: Value = c
        .get(format!("{base}/sim/tickets/{no}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["state"], "dispatched");
    assert_eq!(one["state_zh"], "待签收");
    assert_eq!(
        c.get(format!("{base}/sim/tickets/GD0"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let r = c
        .post(format!("{base}/sim/faults"))
        .json(&json!({"action": "sign", "count": 1, "fault": {"kind": "code", "code": "2001"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.faults().len(), 1);
    assert_eq!(
        c.delete(format!("{base}/sim/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(sim.faults().is_empty());

    // No hub configured: a platform push is refused with a reason.
    let r = c
        .post(format!("{base}/sim/tickets/{no}/urge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let stats: Value = c
        .get(format!("{base}/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["requests"], 0,
        "control calls are not platform requests"
    );
    sim.shutdown().await;
}
