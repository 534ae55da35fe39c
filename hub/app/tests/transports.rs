//! Transports and encodings against stand-in partners that speak them for real (axum servers on
//! 127.0.0.1, reading what the hub sends with their own parsers): a SOAP 1.1 delivery answered
//! first with a Server Fault (retried) then with a response; a SOAP 1.2 delivery answered with a
//! Sender Fault whose Subcode the adapter maps to a permanent code (a dead letter with that
//! code); a form-encoded delivery; a GET delivery with query parameters; a form pushed to the
//! gateway; pulls with offset/limit and with cursor paging, and from a SOAP query operation;
//! and `hub check` naming the file,
//! line and key of each transport problem. The partners are synthetic, kept in `hub/app/tests/synthetic/`.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hub_bus::{now_shanghai, Envelope, Producer};
use serde_json::{json, Value};
use support::logged::start;
use support::synthetic::{install, Synthetic};
use support::*;

const SECRET: &str = "transports-test-secret-0123456789";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    content_type: Option<String>,
    soap_action: Option<String>,
    query: String,
    body: Vec<u8>,
}

/// The stand-in partner: what it received, what it still has to answer with a fault, and the
/// items of its query API.
#[derive(Default)]
struct Partner {
    seen: Mutex<Vec<Seen>>,
    /// Case number → how many SOAP Server Faults to answer before taking it.
    server_faults: Mutex<HashMap<String, u32>>,
    /// Query API: (time ms, item).
    items: Mutex<Vec<(i64, Value)>>,
    /// The paging parameters of every query (offset: `start/rows`; cursor: `after`).
    pages: Mutex<Vec<String>>,
}

type Shared = Arc<Partner>;

fn record(p: &Partner, path: &str, headers: &HeaderMap, query: Option<String>, body: &[u8]) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    p.seen.lock().unwrap().push(Seen {
        path: path.into(),
        content_type: h("content-type"),
        soap_action: h("soapaction"),
        query: query.unwrap_or_default(),
        body: body.to_vec(),
    });
}

fn xml(status: StatusCode, content_type: &str, body: String) -> Response {
    (status, [("content-type", content_type.to_string())], body).into_response()
}

/// The operation element inside a SOAP envelope of namespace `ns`, read with the hub's XML
/// reader (the tree shape is `docs/mappings.md`'s); `None` if it is not such an envelope.
fn operation(body: &[u8], ns: &str) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let (root, tree) = hub_mapping::xml::to_value(text).ok()?;
    if root != "soap:Envelope" || tree["@xmlns:soap"] != ns {
        return None;
    }
    tree["soap:Body"].get("SubmitCase").cloned()
}

async fn soap11(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&p, "/soap11/CaseService", &headers, None, &body);
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    let action = headers.get("soapaction").and_then(|v| v.to_str().ok());
    if ct != Some("text/xml; charset=utf-8") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    // One endpoint, operations told apart by their action, as SOAP services do.
    match action {
        Some("\"urn:synthetic:case#SubmitCase\"") => {}
        Some("\"urn:synthetic:case#QueryCases\"") => return query_cases(&p, &body),
        _ => return StatusCode::BAD_REQUEST.into_response(),
    }
    let Some(op) = operation(&body, SOAP11) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let case = op["CaseNo"].as_str().unwrap_or_default().to_string();
    {
        let mut faults = p.server_faults.lock().unwrap();
        if let Some(n) = faults.get_mut(&case).filter(|n| **n > 0) {
            *n -= 1;
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/xml; charset=utf-8",
                format!(
                    r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>数据库暂不可用 database unavailable</faultstring></soap:Fault></soap:Body></soap:Envelope>"#
                ),
            );
        }
    }
    xml(
        StatusCode::OK,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><S:Envelope xmlns:S="{SOAP11}"><S:Body><ns2:SubmitCaseResponse xmlns:ns2="urn:synthetic:case"><ns2:ResultCode>0</ns2:ResultCode><ns2:ResultMessage>已受理 {case}</ns2:ResultMessage></ns2:SubmitCaseResponse></S:Body></S:Envelope>"#
        ),
    )
}

/// QueryCases: the items of `[From, To)` from `Offset`, `Rows` of them, as `<Case>` elements.
/// The request's children must come in the XSD's order (From, To, Offset, Rows).
fn query_cases(p: &Partner, body: &[u8]) -> Response {
    let text = String::from_utf8_lossy(body).into_owned();
    let Some(op) = (|| {
        let (root, tree) = hub_mapping::xml::to_value(&text).ok()?;
        (root == "soap:Envelope" && tree["@xmlns:soap"] == SOAP11).then_some(())?;
        tree["soap:Body"].get("QueryCases").cloned()
    })() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let at = |tag: &str| text.find(&format!("<{tag}>")).unwrap_or(usize::MAX);
    if !(text.contains("<QueryCases xmlns=\"urn:synthetic:case\"><From>")
        && at("From") < at("To")
        && at("To") < at("Offset")
        && at("Offset") < at("Rows"))
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let n = |k: &str| op[k].as_str().and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to), Some(offset), Some(rows)) =
        (n("From"), n("To"), n("Offset"), n("Rows"))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    p.pages.lock().unwrap().push(format!("{offset}/{rows}"));
    let cases: String = window(p, from, to)
        .into_iter()
        .skip(offset as usize)
        .take(rows as usize)
        .map(|c| {
            format!(
                "<c:Case><c:Id>{}</c:Id><c:Status>{}</c:Status></c:Case>",
                c["id"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            )
        })
        .collect();
    xml(
        StatusCode::OK,
        "text/xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><c:QueryCasesResponse xmlns:c="urn:synthetic:case"><c:ResultCode>0</c:ResultCode><c:Cases>{cases}</c:Cases></c:QueryCasesResponse></soap:Body></soap:Envelope>"#
        ),
    )
}

async fn soap12(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&p, "/soap12/CaseService", &headers, None, &body);
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    if ct != Some("application/soap+xml; charset=utf-8; action=\"urn:synthetic:case#SubmitCase12\"")
        || headers.contains_key("soapaction")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Some(op) = operation(&body, SOAP12) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let case = op["CaseNo"].as_str().unwrap_or_default().to_string();
    if case.ends_with("CLOSED") {
        return xml(
            StatusCode::BAD_REQUEST,
            "application/soap+xml; charset=utf-8",
            format!(
                r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="{SOAP12}"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value xmlns:c="urn:synthetic:case">c:CaseClosed</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="zh">案件已办结</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#
            ),
        );
    }
    xml(
        StatusCode::OK,
        "application/soap+xml; charset=utf-8",
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="{SOAP12}"><env:Body><c:SubmitCaseResponse xmlns:c="urn:synthetic:case"><c:ResultCode>0</c:ResultCode><c:ResultMessage>ok</c:ResultMessage></c:SubmitCaseResponse></env:Body></env:Envelope>"#
        ),
    )
}

fn ok_json() -> Response {
    axum::Json(json!({"code": "0", "msg": "成功"})).into_response()
}

async fn form(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&p, "/form/cases", &headers, None, &body);
    ok_json()
}

/// The partner's newer API: its own answer envelope; a title with 拒绝 is refused.
async fn v2(State(p): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    record(&p, "/v2/cases", &headers, None, &body);
    let refused = String::from_utf8_lossy(&body).contains("拒绝");
    let status = if refused { "DENIED" } else { "OK" };
    axum::Json(json!({"result": {"status": status, "reason": "测试 / test"}})).into_response()
}

async fn by_get(
    State(p): State<Shared>,
    headers: HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    record(&p, "/get/cases", &headers, q, &body);
    ok_json()
}

/// The items of `[from, to)`, oldest first.
fn window(p: &Partner, from: i64, to: i64) -> Vec<Value> {
    let mut items: Vec<(i64, Value)> = p
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .cloned()
        .collect();
    items.sort_by_key(|(at, _)| *at);
    items.into_iter().map(|(_, v)| v).collect()
}

async fn by_offset(State(p): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let n = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to), Some(start), Some(rows)) =
        (n("from"), n("to"), n("start"), n("rows"))
    else {
        return (StatusCode::BAD_REQUEST, "from, to, start, rows").into_response();
    };
    p.pages.lock().unwrap().push(format!("{start}/{rows}"));
    let all = window(&p, from, to);
    let page: Vec<Value> = all
        .into_iter()
        .skip(start as usize)
        .take(rows as usize)
        .collect();
    axum::Json(json!({"code": "0", "data": {"rows": page}})).into_response()
}

async fn by_cursor(State(p): State<Shared>, body: Bytes) -> Response {
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let n = |k: &str| q[k].as_str().and_then(|v| v.parse::<i64>().ok());
    let (Some(from), Some(to), Some(size)) = (n("from"), n("to"), q["size"].as_u64()) else {
        return (StatusCode::BAD_REQUEST, "from, to, size").into_response();
    };
    let after = q["after"].as_str().unwrap_or_default().to_string();
    p.pages.lock().unwrap().push(after.clone());
    // The token is opaque to the hub: `c+<index>/=`, characters that need escaping elsewhere.
    let start = match after.as_str() {
        "" => 0,
        t => match t
            .strip_prefix("c+")
            .and_then(|r| r.strip_suffix("/="))
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) => i,
            None => return (StatusCode::BAD_REQUEST, "bad cursor").into_response(),
        },
    };
    let all = window(&p, from, to);
    let end = (start + size as usize).min(all.len());
    let page = all[start.min(end)..end].to_vec();
    let mut data = json!({"rows": page});
    if end < all.len() {
        data["next"] = json!(format!("c+{end}/="));
    }
    axum::Json(json!({"code": "0", "data": data})).into_response()
}

async fn serve(p: Shared) -> String {
    let app = Router::new()
        .route("/soap11/CaseService", post(soap11))
        .route("/soap12/CaseService", post(soap12))
        .route("/form/cases", post(form))
        .route("/get/cases", get(by_get))
        .route("/v2/cases", post(v2))
        .route("/query/offset", get(by_offset))
        .route("/query/cursor", post(by_cursor))
        .with_state(p);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// The hub's configuration for one synthetic partner; `partner` is the rest of its
/// `[partners.<name>]` section (which deliveries and pulls run).
fn config(dir: &Path, s: &Synthetic, base_url: &str, partner: &str) -> PathBuf {
    let admin = free_port();
    write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics_open = true\nregistry_open = true\n[bus]\nbootstrap_servers = \"{}\"\n\
             [state]\nurl = \"sqlite://state/hub.db\"\n[contracts]\ndir = \"{}\"\n\
             [mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n[log]\nformat = \"json\"\n\
             [gateway]\nlisten = \"127.0.0.1:{}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [[gateway.apps]]\napp_id = \"synthetic-test\"\npartner = \"{}\"\nhmac_secret = \"{SECRET}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"transports{}\"\n\
             [poller]\nlease_ttl_ms = 5000\n\
             [partners.{}]\nbase_url = \"{base_url}\"\napp_id = \"water-bureau-hub\"\n\
             hmac_secret = \"{SECRET}\"\ntimeout_ms = 2000\nmax_attempts = 4\n\
             backoff_initial_ms = 50\nbackoff_max_ms = 300\nbreaker_failures = 1000\n{partner}\n",
            std::env::var("HUB_TEST_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:1".into()),
            s.contracts.display(),
            s.mappings.display(),
            s.adapters.display(),
            free_port(),
            repo().join("ops/dev-keyring.toml").display(),
            s.partner,
            s.suffix,
            s.partner,
        ),
    )
}

/// Waits for `done`; on time-out fails with the tail of the hub's log.
async fn until(config: &Path, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(config.with_file_name("hub.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "not within {within:?}: {what}\nhub log (last lines):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces `record` on the synthetic partner's (renamed) `topic`.
async fn produce(s: &Synthetic, topic: &str, object_id: &str, record: Value) {
    let topic = s.topic(topic);
    let catalog = hub_contracts::load_dir(&s.contracts).unwrap();
    let contract = catalog
        .contracts
        .iter()
        .find(|c| c.declaration.topic == topic)
        .unwrap();
    let framed = hub_contracts::frame(contract.schema_id(), &contract.encode(&record).unwrap());
    let envelope = Envelope::new(
        topic.trim_end_matches(".v1"),
        1,
        "transports-test",
        s.partner.as_str(),
        object_id,
        now_shanghai(),
    );
    let producer = Producer::new(&bus_section("transports-test")).unwrap();
    producer.send(&topic, &envelope, &framed).await.unwrap();
}

fn seen_on(p: &Partner, path: &str) -> Vec<Seen> {
    p.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == path)
        .cloned()
        .collect()
}

fn case_no() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("SC{}", &id[..8].to_uppercase())
}

fn soap_case(no: &str) -> Value {
    json!({"case_no": no, "title": "路灯不亮 a+b & c=d", "district": "黄浦区", "submitted_at": "2026-11-22T01:45:00Z"})
}

#[tokio::test]
async fn a_soap11_delivery_survives_a_server_fault_and_is_taken_in_the_xsd_order() {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_soap", "synthsoap");
    let cfg = config(dir.path(), &s, &base, "deliveries = [\"submit11\"]");
    let _hub = start(&cfg, &[]).await;
    let case = case_no();
    partner
        .server_faults
        .lock()
        .unwrap()
        .insert(case.clone(), 1);
    produce(&s, "synthsoap.case.submitted.v1", &case, soap_case(&case)).await;
    until(
        &cfg,
        "the SOAP 1.1 delivery",
        Duration::from_secs(60),
        || {
            partner.server_faults.lock().unwrap()[&case] == 0
                && seen_on(&partner, "/soap11/CaseService").len() >= 2
        },
    )
    .await;
    // Taken on the second attempt: nothing more is sent, nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = seen_on(&partner, "/soap11/CaseService");
    assert_eq!(seen.len(), 2, "one Server Fault, one retry: {seen:?}");
    assert!(dlq_list(&cfg, Some(&case)).is_empty());
    let body = String::from_utf8(seen[1].body.clone()).unwrap();
    assert!(
        body.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{SOAP11}\"><soap:Body><SubmitCase xmlns=\"urn:synthetic:case\">"
        )),
        "{body}"
    );
    // SubmitCase.xsd's order, not the sorted one (CaseNo, District, SubmittedAt, Title).
    assert!(
        body.contains(&format!(
            "<CaseNo>{case}</CaseNo><Title>路灯不亮 a+b &amp; c=d</Title><District>黄浦区</District><SubmittedAt>2026-11-22T09:45:00</SubmittedAt></SubmitCase></soap:Body></soap:Envelope>"
        )),
        "{body}"
    );
    assert_eq!(
        seen[1].soap_action.as_deref(),
        Some("\"urn:synthetic:case#SubmitCase\"")
    );
}

#[tokio::test]
async fn a_soap12_sender_fault_is_dead_lettered_with_the_partners_mapped_code() {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_soap", "synthsoap");
    let cfg = config(dir.path(), &s, &base, "deliveries = [\"submit12\"]");
    let _hub = start(&cfg, &[]).await;
    let taken = case_no();
    let closed = format!("{}CLOSED", case_no());
    produce(&s, "synthsoap.case.submitted.v1", &taken, soap_case(&taken)).await;
    produce(
        &s,
        "synthsoap.case.submitted.v1",
        &closed,
        soap_case(&closed),
    )
    .await;
    until(&cfg, "the dead letter", Duration::from_secs(60), || {
        dlq_list(&cfg, Some(&closed)).len() == 1
    })
    .await;
    let dl = &dlq_list(&cfg, Some(&closed))[0];
    assert_eq!(dl["reason_code"], "EGRESS_SOAP_FAULT");
    assert_eq!(dl["partner_code"], "CaseClosed");
    assert_eq!(dl["attempts"], 1, "a permanent fault is not retried");
    until(&cfg, "the accepted case", Duration::from_secs(30), || {
        seen_on(&partner, "/soap12/CaseService")
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&format!(">{taken}<")))
    })
    .await;
    assert!(
        dlq_list(&cfg, Some(&taken)).is_empty(),
        "the response was read"
    );
    let seen = seen_on(&partner, "/soap12/CaseService");
    assert!(seen.iter().all(|r| r.soap_action.is_none()));
    assert!(String::from_utf8_lossy(&seen[0].body).contains(&format!("xmlns:soap=\"{SOAP12}\"")));
}

#[tokio::test]
async fn a_form_delivery_and_a_get_delivery_carry_chinese_and_reserved_characters() {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_rest", "synthrest");
    let cfg = config(
        dir.path(),
        &s,
        &base,
        "deliveries = [\"submit_form\", \"submit_get\"]",
    );
    let _hub = start(&cfg, &[]).await;
    let case = case_no();
    let title = "路灯不亮 a+b & c=d 100%";
    produce(
        &s,
        "synthrest.case.submitted.v1",
        &case,
        json!({"case_no": case, "title": title, "district": "黄浦区"}),
    )
    .await;
    until(&cfg, "both deliveries", Duration::from_secs(60), || {
        !seen_on(&partner, "/form/cases").is_empty() && !seen_on(&partner, "/get/cases").is_empty()
    })
    .await;
    // Read with the url crate's form parser (reqwest's), not the hub's.
    let pairs = |text: &str| -> HashMap<String, String> {
        reqwest::Url::parse(&format!("http://x/?{text}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    };
    let expected: HashMap<String, String> =
        [("ajbh", case.as_str()), ("bt", title), ("qx", "黄浦区")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let posted = &seen_on(&partner, "/form/cases")[0];
    assert_eq!(
        posted.content_type.as_deref(),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    assert_eq!(
        pairs(&String::from_utf8(posted.body.clone()).unwrap()),
        expected
    );
    let got = &seen_on(&partner, "/get/cases")[0];
    assert!(got.body.is_empty(), "a GET has no body");
    assert_eq!(got.content_type, None, "nor a content type");
    assert_eq!(pairs(&got.query), expected);
    assert!(dlq_list(&cfg, Some(&case)).is_empty());
}

#[tokio::test]
async fn a_delivery_is_read_by_the_answer_it_names_not_the_partners_default() {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_rest", "synthrest");
    let cfg = config(dir.path(), &s, &base, "deliveries = [\"submit_v2\"]");
    let _hub = start(&cfg, &[]).await;
    let taken = case_no();
    let refused = case_no();
    for (case, title) in [(&taken, "路灯不亮"), (&refused, "请拒绝")] {
        produce(
            &s,
            "synthrest.case.submitted.v1",
            case,
            json!({"case_no": case, "title": title, "district": "黄浦区"}),
        )
        .await;
    }
    until(&cfg, "the refusal", Duration::from_secs(60), || {
        dlq_list(&cfg, Some(&refused)).len() == 1
    })
    .await;
    let dl = &dlq_list(&cfg, Some(&refused))[0];
    // `[answers.v2]` read the code at /result/status; `[answer]` (code at /code) would have
    // found none and refused both with another code.
    assert_eq!(dl["partner_code"], "DENIED");
    assert_eq!(dl["attempts"], 1, "a permanent code is not retried");
    until(&cfg, "both calls", Duration::from_secs(30), || {
        seen_on(&partner, "/v2/cases").len() >= 2
    })
    .await;
    assert!(
        dlq_list(&cfg, Some(&taken)).is_empty(),
        "OK at /result/status is taken"
    );
}

/// Every record on `topic` whose object id starts with `prefix`: object id → how often.
async fn on_kafka(topic: &str, prefix: &str, expected: usize) -> HashMap<String, usize> {
    let group = format!("transports-readback-{}", uuid::Uuid::new_v4().simple());
    let consumer =
        hub_bus::Consumer::new(&bus_section("transports-readback"), &group, &[topic]).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wait = if seen.len() >= expected {
            Duration::from_secs(1)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Ok(d)) => {
                let Ok(e) = d.envelope else { continue };
                if e.object_id.starts_with(prefix) {
                    *seen.entry(e.object_id).or_default() += 1;
                }
            }
            Ok(Err(e)) => panic!("reading back failed: {e}"),
            Err(_) if seen.len() >= expected => return seen,
            Err(_) => panic!("only {} of {expected} items reached Kafka", seen.len()),
        }
    }
}

/// Seven items over the last half hour.
fn seed(p: &Partner, prefix: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let mut items = p.items.lock().unwrap();
    for i in 0..7i64 {
        items.push((
            now - 30 * 60_000 + i * 60_000,
            json!({"id": format!("{prefix}{i:02}"), "status": "办结"}),
        ));
    }
}

/// Runs the pull job `job` of the synthetic REST partner over seven seeded items: each reaches
/// Kafka once; returns the paging values the partner was asked for, in order.
async fn pages_of_pull(job: &str) -> Vec<String> {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let prefix = case_no();
    seed(&partner, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_rest", "synthrest");
    let cfg = config(
        dir.path(),
        &s,
        &base,
        &format!("deliveries = []\npulls = [\"{}\"]", s.pull(job)),
    );
    let _hub = start(&cfg, &[]).await;
    let seen = on_kafka(&s.topic("synthrest.case.updated.v1"), &prefix, 7).await;
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "each item once: {seen:?}");
    let pages = partner.pages.lock().unwrap();
    pages.clone()
}

#[tokio::test]
async fn a_pull_with_offset_paging_asks_page_by_offset_and_limit() {
    let pages = pages_of_pull("cases_offset").await;
    assert_eq!(
        pages[..3],
        ["0/3", "3/3", "6/3"],
        "offsets 0, 3, 6 with limit 3; the short third page ends the window"
    );
}

#[tokio::test]
async fn a_pull_with_cursor_paging_follows_the_partners_token_until_it_ends() {
    let pages = pages_of_pull("cases_cursor").await;
    assert_eq!(
        pages[..3],
        ["", "c+3/=", "c+6/="],
        "no token first, then the partner's tokens as given; no token on the last page"
    );
}

/// Every record on `topic` about an object starting with `prefix`, decoded with `s`'s
/// contract of that topic.
async fn records_on_kafka(s: &Synthetic, topic: &str, prefix: &str, expected: usize) -> Vec<Value> {
    let catalog = hub_contracts::load_dir(&s.contracts).unwrap();
    let contract = catalog.contract(topic).unwrap().clone();
    let group = format!("transports-records-{}", uuid::Uuid::new_v4().simple());
    let consumer =
        hub_bus::Consumer::new(&bus_section("transports-readback"), &group, &[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected {
        let wait = deadline.saturating_duration_since(Instant::now());
        let d = match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => panic!("reading back failed: {e}"),
            Err(_) => panic!("only {} of {expected} records reached Kafka", out.len()),
        };
        if !d
            .envelope
            .as_ref()
            .is_ok_and(|e| e.object_id.starts_with(prefix))
        {
            continue;
        }
        let (_, datum) = hub_contracts::unframe(d.payload.as_deref().unwrap()).unwrap();
        out.push(contract.decode_json(None, datum).unwrap());
    }
    out
}

#[tokio::test]
async fn a_form_push_at_the_gateway_is_read_as_flat_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_rest", "synthrest");
    let cfg = config(dir.path(), &s, "http://127.0.0.1:9", "deliveries = []");
    let _hub = start(&cfg, &[]).await;
    let gateway = std::fs::read_to_string(&cfg)
        .unwrap()
        .split("[gateway]\nlisten = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let case = case_no();
    // "办结 +1&x" percent-encoded as a browser's form would send it.
    let body = format!("id={case}&status=%E5%8A%9E%E7%BB%93+%2B1%26x");
    let path = "/v1/synthetic_rest/case_form";
    let headers = hub_security::signing::SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request(
        "synthetic-test",
        "POST",
        path,
        "",
        body.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("http://{gateway}{path}"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.clone());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let answer = req.send().await.unwrap();
    let status = answer.status().as_u16();
    assert_eq!(status, 200, "{}", answer.text().await.unwrap_or_default());
    let records = records_on_kafka(&s, &s.topic("synthrest.case.updated.v1"), &case, 1).await;
    assert_eq!(records[0], json!({"case_no": case, "status": "办结 +1&x"}));
}

#[tokio::test]
async fn a_soap_pull_asks_page_by_page_in_the_xsd_order_and_reads_the_cases() {
    let partner: Shared = Arc::default();
    let base = serve(Arc::clone(&partner)).await;
    let prefix = case_no();
    seed(&partner, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_soap", "synthsoap");
    let cfg = config(
        dir.path(),
        &s,
        &base,
        &format!("deliveries = []\npulls = [\"{}\"]", s.pull("cases_soap")),
    );
    let _hub = start(&cfg, &[]).await;
    let topic = s.topic("synthsoap.case.updated.v1");
    let records = records_on_kafka(&s, &topic, &prefix, 7).await;
    let mut cases: Vec<String> = records
        .iter()
        .map(|r| r["case_no"].as_str().unwrap().to_string())
        .collect();
    cases.sort();
    cases.dedup();
    assert_eq!(cases.len(), 7, "{records:?}");
    assert!(records.iter().all(|r| r["status"] == "办结"));
    // The last page holds one <Case>: read as one item, not refused as "not an array".
    let pages = partner.pages.lock().unwrap().clone();
    assert_eq!(pages[..3], ["0/3", "3/3", "6/3"]);
}

/// The line (1-based) of the first line of `text` containing `needle`.
fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn hub_check_names_file_line_and_key_of_each_transport_problem() {
    let dir = tempfile::tempdir().unwrap();
    let s = install(dir.path(), "synthetic_soap", "synthsoap");
    // The REST partner beside it, in the same folders.
    let (rest, cursor_pull) = source_install(dir.path(), &s, "synthetic_rest", "synthrest");
    let cfg = config(dir.path(), &s, "http://127.0.0.1:9", "");
    let out = hub(&["check", "--config", cfg.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "the synthetic partners pass as written: {}",
        text(&out.stderr)
    );

    // An action the WSDL does not declare, an XSD that is not there, cursor paging without a
    // token pointer.
    let adapter = s.adapter_toml();
    let t = std::fs::read_to_string(&adapter)
        .unwrap()
        .replace("#SubmitCase12\"", "#Nope\"");
    std::fs::write(&adapter, &t).unwrap();
    let action_line = line_with(&t, "#Nope");
    let mappings = s.mappings.join("synthetic_soap/mappings.toml");
    let m = std::fs::read_to_string(&mappings)
        .unwrap()
        .replace("xsd = \"SubmitCase.xsd\"", "xsd = \"Missing.xsd\"");
    std::fs::write(&mappings, &m).unwrap();
    let xsd_line = line_with(&m, "xsd = \"Missing.xsd\"");
    let r = std::fs::read_to_string(&rest)
        .unwrap()
        .replace("next_cursor = \"/data/next\"\n", "");
    std::fs::write(&rest, &r).unwrap();
    let paging_line = line_with(&r, "paging = \"cursor\"");

    let out = hub(&["check", "--config", cfg.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    // The mappings are refused first (the adapters are checked against loaded mappings).
    assert!(
        err.contains(&format!(
            "{}:{xsd_line}: mapping `submit_soap`: key `xsd`",
            mappings.display()
        )),
        "{err}"
    );
    std::fs::write(
        &mappings,
        m.replace("\"Missing.xsd\"", "\"SubmitCase.xsd\""),
    )
    .unwrap();
    let out = hub(&["check", "--config", cfg.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:{action_line}: delivery `submit12`: key `delivery.soap_action`",
            adapter.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:{paging_line}: pull `{cursor_pull}`: key `pull.paging`",
            rest.display(),
        )),
        "{err}"
    );
}

/// Installs a second synthetic partner into the folders of `s`; returns its adapter.toml and
/// the name its cursor pull got.
fn source_install(dir: &Path, s: &Synthetic, partner: &str, family: &str) -> (PathBuf, String) {
    let other = install(&dir.join(partner), partner, family);
    support::isolate::copy_dir(&other.contracts.join(family), &s.contracts.join(family));
    support::isolate::copy_dir(&other.mappings.join(partner), &s.mappings.join(partner));
    support::isolate::copy_dir(&other.adapters.join(partner), &s.adapters.join(partner));
    (
        s.adapters.join(partner).join("adapter.toml"),
        other.pull("cases_cursor"),
    )
}
