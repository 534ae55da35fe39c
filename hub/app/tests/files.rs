//! Files wired into an adapter (`docs/files.md`, "Wiring files into an adapter") against a
//! synthetic document partner (`tests/synthetic/synthetic_files`): a PDF pushed as base64 in a JSON field,
//! one pushed as multipart (personal: sealed at rest) and one given as a URL the hub fetches
//! from the partner's file host are stored by the gateway before the
//! mapping, referenced on Kafka by their hub file ids, read back by an app from the same store
//! by id, and delivered onward as base64 to a partner stand-in that checks the SM3 of what it
//! got equals the id. Each refusal answers its `FILE_*` code.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use hub_bus::Consumer;
use hub_files::FileId;
use hub_security::field::{FieldCipher, KeyRing};
use hub_security::signing::SigningCredential;
use serde_json::{json, Value};
use support::partner::verify_hub_v1;
use support::synthetic::{self, Synthetic};
use support::*;

const SECRET: &str = "files-partner-secret-0123456789";
const APP: &str = "files-app";

/// The partner stand-in's archive: what it got, as (document number, SM3 id of the file).
#[derive(Default)]
struct Archive {
    got: Mutex<Vec<(String, String)>>,
    bad: Mutex<u32>,
    /// What `/files/doc.pdf` serves.
    hosted: Mutex<Vec<u8>>,
}

async fn archive(State(a): State<Arc<Archive>>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify_hub_v1(SECRET, &headers, "POST", "/api/archive", &body) {
        *a.bad.lock().unwrap() += 1;
        return Json(json!({"code": "E401", "msg": "签名错误"})).into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["fjnr"].as_str().unwrap_or_default())
        .unwrap_or_default();
    a.got.lock().unwrap().push((
        v["wsbh"].as_str().unwrap_or_default().to_string(),
        FileId::of(&bytes).to_string(),
    ));
    Json(json!({"code": "0", "msg": "成功"})).into_response()
}

/// The partner's file host: the PDF the URL push names.
async fn file_host(State(a): State<Arc<Archive>>) -> Response {
    let body = a.hosted.lock().unwrap().clone();
    ([("content-type", "application/pdf")], body).into_response()
}

async fn serve_archive(a: &Arc<Archive>) -> String {
    let app = Router::new()
        .route("/api/archive", post(archive))
        .route("/files/doc.pdf", axum::routing::get(file_host))
        .with_state(Arc::clone(a));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// The synthetic files partner under `dir`, with topics of this test alone; the documents' topic.
fn synthetic(dir: &Path) -> (Synthetic, String) {
    let s = synthetic::install(dir, "synthetic_files", "synthetic");
    let topic = s.topic("synthetic.files.document_received.v1");
    (s, topic)
}

fn config(dir: &Path, s: &Synthetic, base_url: &str, admin: u16, gateway: u16) -> PathBuf {
    config_with(dir, s, base_url, admin, gateway, &["forward"], "")
}

/// The hub's configuration running `deliveries` of the synthetic partner, with `files_extra`
/// added to `[files]`.
fn config_with(
    dir: &Path,
    s: &Synthetic,
    base_url: &str,
    admin: u16,
    gateway: u16,
    deliveries: &[&str],
    files_extra: &str,
) -> PathBuf {
    let deliveries = deliveries
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    write_config(
        dir,
        &format!(
            "[hub]\nprofile = \"development\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [bus]\nbootstrap_servers = \"{}\"\n[state]\nurl = \"sqlite://state/hub.db\"\n\
             [contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n[adapters]\ndir = \"{}\"\n\
             [log]\nformat = \"json\"\n[files]\ndir = \"var/files\"\nmax_bytes = 1048576\n{files_extra}\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway}\"\nplain_http = true\nkey_ring = \"{}\"\n\
             [[gateway.apps]]\napp_id = \"{APP}\"\npartner = \"synthetic_files\"\nhmac_secret = \"{SECRET}\"\n\
             [egress]\ncommit_interval_ms = 200\ngroup_prefix = \"files-{}\"\n\
             [partners.synthetic_files]\nbase_url = \"{base_url}\"\napp_id = \"hub\"\n\
             hmac_secret = \"{SECRET}\"\ntimeout_ms = 2000\nmax_attempts = 3\ndeliveries = [{deliveries}]\n\
             backoff_initial_ms = 50\nbackoff_max_ms = 100\nbreaker_failures = 1000\n",
            kafka(),
            s.contracts.display(),
            s.mappings.display(),
            s.adapters.display(),
            repo().join("ops/dev-keyring.toml").display(),
            uuid::Uuid::new_v4().simple(),
        ),
    )
}

fn cipher() -> FieldCipher {
    FieldCipher::new(KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap())
}

/// A small, distinct PDF.
fn pdf(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("%PDF-1.7\n% {tag}\n").into_bytes();
    while b.len() < len {
        b.extend_from_slice(b"1 0 obj << /Type /Catalog >> endobj\n");
    }
    b
}

/// POSTs `body` signed with hub-v1 by the test app; the status and the unified answer.
async fn push(gateway: &str, path: &str, body: &[u8], content_type: &str) -> (u16, Value) {
    let headers = SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request(
        APP,
        "POST",
        path,
        "",
        body,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}{path}"))
        .header("content-type", content_type)
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn multipart(boundary: &str, doc_no: &str, file: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"wsbh\"\r\n\r\n{doc_no}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"sj\"\r\n\r\n2026-12-03T10:00:00.000+08:00\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"张三.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pushed_file_is_stored_referenced_read_by_an_app_and_delivered_with_the_same_sm3() {
    let dir = tempfile::tempdir().unwrap();
    let (s, topic) = synthetic(dir.path());
    let partner = Arc::new(Archive::default());
    let base_url = serve_archive(&partner).await;
    let (admin, gw) = (free_port(), free_port());
    let config = config(dir.path(), &s, &base_url, admin, gw);
    let serving = check_and_serve(&config, admin).await;
    let gateway = format!("http://127.0.0.1:{gw}");
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];

    // The OpenAPI document shows the multipart route as multipart, and every route's files.
    let doc = openapi(&gateway).await;
    let form = &doc["paths"]["/v1/synthetic_files/document_form"]["post"];
    assert_eq!(
        form["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]
            ["format"],
        "binary",
        "{form}"
    );
    assert_eq!(form["x-hub-files"][0]["style"], "multipart", "{form}");
    let by_json = &doc["paths"]["/v1/synthetic_files/document_json"]["post"];
    assert_eq!(by_json["x-hub-files"][0]["pointer"], "/fj", "{by_json}");

    // Base64 in a JSON field.
    let json_pdf = pdf(&format!("json-{suffix}"), 2_000);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&json_pdf);
    let doc_json = format!("WS-J-{suffix}");
    let body = json!({"wsbh": doc_json, "sj": "2026-12-03T10:00:00.000+08:00", "fj": b64});
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_json",
        &serde_json::to_vec(&body).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Multipart, personal: sealed at rest.
    let form_pdf = pdf(&format!("form-{suffix}"), 3_000);
    let doc_form = format!("WS-M-{suffix}");
    let boundary = "hub-test-boundary-7d1c";
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_form",
        &multipart(boundary, &doc_form, &form_pdf),
        &format!("multipart/form-data; boundary={boundary}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // A URL the hub fetches from the partner's file host.
    let url_pdf = pdf(&format!("url-{suffix}"), 4_000);
    *partner.hosted.lock().unwrap() = url_pdf.clone();
    let doc_url = format!("WS-U-{suffix}");
    let body = json!({"wsbh": doc_url, "sj": "2026-12-03T10:00:00.000+08:00",
                      "fj": format!("{base_url}/files/doc.pdf")});
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_url",
        &serde_json::to_vec(&body).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let body = json!({"wsbh": "X", "sj": "2026-12-03T10:00:00.000+08:00",
                      "fj": "https://10.0.0.1/files/doc.pdf"});
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_url",
        &serde_json::to_vec(&body).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("FILE_URL_REFUSED")),
        "{answer}"
    );

    // Refusals, each with its code; nothing is produced for them.
    let refusals = [
        (
            json!({"wsbh": "X", "sj": "2026-12-03T10:00:00.000+08:00", "fj": "%%% not base64"}),
            400,
            "FILE_BASE64_INVALID",
        ),
        (
            json!({"wsbh": "X", "sj": "2026-12-03T10:00:00.000+08:00",
                   "fj": base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n0000IHDR")}),
            415,
            "FILE_TYPE_NOT_ALLOWED",
        ),
        (
            json!({"wsbh": "X", "sj": "2026-12-03T10:00:00.000+08:00",
                   "fj": base64::engine::general_purpose::STANDARD.encode(pdf("big", 70_000))}),
            413,
            "FILE_TOO_LARGE",
        ),
    ];
    for (body, want_status, want_code) in refusals {
        let (status, answer) = push(
            &gateway,
            "/v1/synthetic_files/document_json",
            &serde_json::to_vec(&body).unwrap(),
            "application/json",
        )
        .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (want_status, Some(want_code)),
            "{answer}"
        );
        assert!(answer["message_zh"].is_string() && answer["message_en"].is_string());
    }
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_form",
        b"{\"wsbh\": \"X\"}",
        "application/json",
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("FILE_MULTIPART_INVALID")),
        "{answer}"
    );

    // A push whose file is stored but whose record the mapping refuses (no `sj`): the file
    // stays held provisional (`hub_file_refs`), for the sweep of unreferenced files.
    let refused_pdf = pdf(&format!("refused-{suffix}"), 1_500);
    let body =
        json!({"wsbh": "X", "fj": base64::engine::general_purpose::STANDARD.encode(&refused_pdf)});
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_json",
        &serde_json::to_vec(&body).unwrap(),
        "application/json",
    )
    .await;
    assert_eq!(answer["code"], "MAPPING_FAILED", "{status} {answer}");

    // On Kafka: the ids, never the bytes.
    let catalog = hub_contracts::load_dir(&s.contracts).unwrap();
    let contract = catalog.contract(&topic).unwrap().clone();
    let consumer = Consumer::new(
        &bus_section("files-reader"),
        &format!("files-reader-{}", uuid::Uuid::new_v4().simple()),
        &[&topic],
    )
    .unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, consumer.next()).await else {
            break;
        };
        let d = next.unwrap();
        let (_, datum) = hub_contracts::unframe(d.payload.as_deref().unwrap()).unwrap();
        records.push(contract.decode_json(None, datum).unwrap());
    }
    assert_eq!(records.len(), 3, "{records:?}");
    let id_of = |doc: &str| -> String {
        records
            .iter()
            .find(|r| r["doc_no"] == doc)
            .map(|r| r["file_id"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no record for {doc}: {records:?}"))
    };
    assert_eq!(id_of(&doc_json), FileId::of(&json_pdf).to_string());
    assert_eq!(id_of(&doc_form), FileId::of(&form_pdf).to_string());
    assert_eq!(id_of(&doc_url), FileId::of(&url_pdf).to_string());

    // An app reads the same store by id, with the same configuration and key ring.
    let section = hub_files::config::FilesSection::default(); // dir = "var/files"
    let store = section.open(dir.path(), Some(cipher())).unwrap();
    for (doc, bytes, personal) in [
        (&doc_json, &json_pdf, false),
        (&doc_form, &form_pdf, true),
        (&doc_url, &url_pdf, false),
    ] {
        let id = FileId::parse(&id_of(doc)).unwrap();
        let (meta, got) = store.read_all(&id, 1 << 20).await.unwrap();
        assert_eq!(&got[..], &bytes[..]);
        assert_eq!(meta.media_type, "application/pdf");
        assert_eq!(
            meta.encrypted, personal,
            "personal files are sealed at rest"
        );
    }

    // Delivered onward: the partner got each file, with the SM3 of its id.
    let deadline = Instant::now() + Duration::from_secs(60);
    while partner.got.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, logs) = stop_and_collect_logs(serving);
    let mut got = partner.got.lock().unwrap().clone();
    got.sort();
    got.dedup();
    let mut want = vec![
        (doc_json.clone(), FileId::of(&json_pdf).to_string()),
        (doc_form.clone(), FileId::of(&form_pdf).to_string()),
        (doc_url.clone(), FileId::of(&url_pdf).to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "hub log:\n{logs}");
    assert_eq!(*partner.bad.lock().unwrap(), 0);
    // File names may be personal: never in the logs.
    assert!(!logs.contains("张三"), "a file name was logged");

    // The files of acknowledged pushes are referenced for good; the refused push's file is
    // provisional, and the sweep (past its grace) removes it and only it.
    let state = hub_state::StateStore::connect(
        &hub_state::StateSection {
            url: "sqlite://state/hub.db".into(),
            ..Default::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    for bytes in [&json_pdf, &form_pdf, &url_pdf] {
        let id = FileId::of(bytes).to_string();
        assert_eq!(
            state.file_ref(&id).await.unwrap().as_deref(),
            Some("referenced")
        );
    }
    let refused = FileId::of(&refused_pdf);
    assert_eq!(
        state
            .file_ref(&refused.to_string())
            .await
            .unwrap()
            .as_deref(),
        Some("provisional")
    );
    let removed = hub_files::sweep::remove_unreferenced(&store, &state, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        store.head(&refused).await.unwrap_err().code,
        hub_files::FileErrorCode::NotFound
    );
    for bytes in [&json_pdf, &form_pdf, &url_pdf] {
        store.head(&FileId::of(bytes)).await.unwrap();
    }
    state.close().await;
}

#[test]
fn check_refuses_a_file_on_a_delivery_that_has_no_body_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = synthetic(dir.path());
    let manifest = s.adapter_toml();
    let original = std::fs::read_to_string(&manifest).unwrap();
    let changed = original.replacen(
        "name = \"forward\"\n",
        "name = \"forward\"\nmethod = \"GET\"\n",
        1,
    );
    assert_ne!(changed, original, "the test must change the delivery");
    std::fs::write(&manifest, changed).unwrap();
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
    let line = changed_line(
        &std::fs::read_to_string(&manifest).unwrap(),
        "name = \"forward\"",
    );
    assert!(
        err.contains(&format!(
            "adapter.toml:{line}: delivery `forward`: key `file`"
        )) && err.contains("a base64 file is sent only in the body of an HTTP POST"),
        "{err}"
    );
}

/// The 1-based line of the first line of `text` that is `wanted`.
fn changed_line(text: &str, wanted: &str) -> usize {
    text.lines().position(|l| l.trim() == wanted).unwrap() + 1
}

/// The download-link secret of the sending test (in a file beside hub.toml).
const DOWNLOAD_SECRET: &str = "download-link-secret-7f3a9c0e5b";

/// What the sending partner's stand-in received, one per request.
#[derive(Debug)]
enum Received {
    /// A multipart upload: the text fields, the file part's name and type, the SM3 id of its
    /// bytes.
    Upload {
        fields: std::collections::BTreeMap<String, String>,
        file_name: Option<String>,
        media_type: Option<String>,
        id: String,
    },
    /// A GBK XML archive request: its content type, the document number and the SM3 id of the
    /// base64 in <fjnr>.
    Xml {
        content_type: String,
        doc: String,
        id: String,
    },
    /// A form with a download link.
    Link {
        doc: String,
        link: String,
    },
    Refused(String),
}

type Outbox = tokio::sync::mpsc::UnboundedSender<Received>;

fn ok_answer() -> Response {
    Json(json!({"code": "0", "msg": "成功"})).into_response()
}

async fn upload(State(tx): State<Outbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify_hub_v1(SECRET, &headers, "POST", "/api/upload", &body) {
        tx.send(Received::Refused("upload: bad signature".into()))
            .unwrap();
        return Json(json!({"code": "E401", "msg": "签名错误"})).into_response();
    }
    // A real multipart parser, independent of the hub's.
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).unwrap();
    let mut form = multer::Multipart::new(
        futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) }),
        boundary,
    );
    let mut fields = std::collections::BTreeMap::new();
    let mut file = None;
    while let Some(part) = form.next_field().await.unwrap() {
        let name = part.name().unwrap_or_default().to_string();
        if name == "file" {
            let file_name = part.file_name().map(str::to_string);
            let media_type = part.content_type().map(|m| m.to_string());
            let bytes = part.bytes().await.unwrap();
            file = Some((file_name, media_type, FileId::of(&bytes).to_string()));
        } else {
            fields.insert(name, part.text().await.unwrap());
        }
    }
    let (file_name, media_type, id) = file.expect("a part named `file`");
    tx.send(Received::Upload {
        fields,
        file_name,
        media_type,
        id,
    })
    .unwrap();
    ok_answer()
}

async fn archive_xml(State(tx): State<Outbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify_hub_v1(SECRET, &headers, "POST", "/api/archive_xml", &body) {
        tx.send(Received::Refused("archive_xml: bad signature".into()))
            .unwrap();
        return Json(json!({"code": "E401", "msg": "签名错误"})).into_response();
    }
    let (text, _, bad) = encoding_rs::GBK.decode(&body);
    assert!(!bad, "the body is GBK");
    let (root, v) = hub_mapping::xml::to_value(&text).unwrap();
    assert_eq!(root, "archive");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["fjnr"].as_str().unwrap_or_default())
        .unwrap_or_default();
    tx.send(Received::Xml {
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        doc: v["wsbh"].as_str().unwrap_or_default().to_string(),
        id: FileId::of(&bytes).to_string(),
    })
    .unwrap();
    ok_answer()
}

async fn link(State(tx): State<Outbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !verify_hub_v1(SECRET, &headers, "POST", "/api/link", &body) {
        tx.send(Received::Refused("link: bad signature".into()))
            .unwrap();
        return Json(json!({"code": "E401", "msg": "签名错误"})).into_response();
    }
    let form = hub_mapping::form::decode(
        &body,
        hub_mapping::Charset::Utf8,
        &hub_mapping::InputLimits::default(),
    )
    .unwrap();
    tx.send(Received::Link {
        doc: form["wsbh"].as_str().unwrap_or_default().to_string(),
        link: form["fjdz"].as_str().unwrap_or_default().to_string(),
    })
    .unwrap();
    ok_answer()
}

/// GETs `url`: status, headers and body.
async fn fetch(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_pushed_in_gbk_xml_is_sent_as_multipart_as_xml_base64_and_as_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = synthetic(dir.path());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Router::new()
        .route("/api/upload", post(upload))
        .route("/api/archive_xml", post(archive_xml))
        .route("/api/link", post(link))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (admin, gw) = (free_port(), free_port());
    let gateway = format!("http://127.0.0.1:{gw}");
    std::fs::write(
        dir.path().join("download.secret"),
        format!("{DOWNLOAD_SECRET}\n"),
    )
    .unwrap();
    let config = config_with(
        dir.path(),
        &s,
        &base_url,
        admin,
        gw,
        &["upload", "forward_xml", "link"],
        &format!("download_base_url = \"{gateway}\"\ndownload_secret_file = \"download.secret\"\ndownload_ttl_seconds = 600"),
    );
    let serving = check_and_serve(&config, admin).await;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];

    // The OpenAPI document lists the download route.
    let doc = openapi(&gateway).await;
    assert_eq!(
        doc["paths"]["/v1/files/{id}"]["get"]["operationId"], "files_download",
        "{}",
        doc["paths"]
    );

    // A PDF as base64 (wrapped at 76, as XML senders do) in a GBK XML document.
    let pdf = pdf(&format!("xml-{suffix}"), 5_000);
    let id = FileId::of(&pdf).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let wrapped = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let doc_no = format!("WS-路灯-{suffix}");
    let xml = |fj: &str| {
        let text = format!(
            "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<wsxx>\n  <wsbh>{doc_no}</wsbh>\n  <sj>2026-12-03T10:00:00.000+08:00</sj>\n  <fj>\n{fj}\n  </fj>\n</wsxx>\n"
        );
        let (bytes, _, bad) = encoding_rs::GBK.encode(&text);
        assert!(!bad);
        bytes.into_owned()
    };
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_xml",
        &xml(&wrapped),
        "application/xml; charset=GBK",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = push(
        &gateway,
        "/v1/synthetic_files/document_xml",
        &xml("%%% not base64"),
        "application/xml; charset=GBK",
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("FILE_BASE64_INVALID")),
        "{answer}"
    );

    // The record carries the id; each delivery sends the file its way. At least once: a
    // repeat is possible, so wait for one of each.
    let (mut uploaded, mut archived, mut linked) = (None, None, None);
    while uploaded.is_none() || archived.is_none() || linked.is_none() {
        let got = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("every delivery within a minute")
            .unwrap();
        match got {
            Received::Upload { .. } => uploaded = Some(got),
            Received::Xml { .. } => archived = Some(got),
            Received::Link { .. } => linked = Some(got),
            Received::Refused(why) => panic!("{why}"),
        }
    }
    let Some(Received::Upload {
        fields,
        file_name,
        media_type,
        id: uploaded_id,
    }) = uploaded
    else {
        unreachable!()
    };
    assert_eq!(uploaded_id, id, "the uploaded part has the SM3 of the id");
    assert_eq!(media_type.as_deref(), Some("application/pdf"));
    assert_eq!(file_name, Some(format!("{doc_no}.pdf")));
    assert_eq!(
        fields,
        [
            ("wjm".to_string(), format!("{doc_no}.pdf")),
            ("wsbh".to_string(), doc_no.clone())
        ]
        .into_iter()
        .collect(),
        "the other fields as text parts, the file id not among them"
    );
    let Some(Received::Xml {
        content_type,
        doc,
        id: archived_id,
    }) = archived
    else {
        unreachable!()
    };
    assert_eq!(
        (doc.as_str(), archived_id.as_str()),
        (doc_no.as_str(), id.as_str())
    );
    assert!(content_type.contains("GBK"), "{content_type}");
    let Some(Received::Link { doc, link }) = linked else {
        unreachable!()
    };
    assert_eq!(doc, doc_no);
    assert!(
        link.starts_with(&format!("{gateway}/v1/files/{id}?expires=")),
        "{link}"
    );

    // The partner fetches the link from the hub: the file, its type and length, not cached.
    let (status, headers, body) = fetch(&link).await;
    assert_eq!(status, 200);
    assert_eq!(FileId::of(&body).to_string(), id);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], pdf.len().to_string().as_str());
    assert_eq!(headers["cache-control"], "no-store");

    // A tampered signature, an expired link and a file the store does not have.
    let sig = link.rsplit("sig=").next().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        &link[..link.len() - 1],
        if link.ends_with('0') { '1' } else { '0' }
    );
    let links = hub_files::transfer::DownloadLinks::new(
        &format!("{gateway}/v1/files"),
        DOWNLOAD_SECRET.as_bytes(),
    )
    .unwrap();
    let file = FileId::parse(&id).unwrap();
    let expired = links.link_until(&file, chrono::Utc::now().timestamp() - 60);
    let missing = links.link(&FileId::of(b"never stored"), Duration::from_secs(60));
    let longer = links.link(&file, Duration::from_secs(100_000));
    for (url, want_status, want_code, reason) in [
        (&flipped, 400, "FILE_URL_REFUSED", "does not verify"),
        (&expired, 400, "FILE_URL_REFUSED", "expired"),
        (&missing, 404, "FILE_NOT_FOUND", ""),
    ] {
        let (status, _, body) = fetch(url).await;
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, answer["code"].as_str()),
            (want_status, Some(want_code)),
            "{answer}"
        );
        assert!(answer["message_zh"].is_string() && answer["message_en"].is_string());
        assert!(
            answer["detail"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{answer}"
        );
    }
    // Signed by the same secret, any lifetime verifies: the hub checks the link, not the TTL.
    assert_eq!(fetch(&longer).await.0, 200);

    let (_, logs) = stop_and_collect_logs(serving);
    assert!(!logs.contains(&sig), "a link's signature was logged");
    assert!(
        !logs.contains(DOWNLOAD_SECRET),
        "the link secret was logged"
    );
    assert!(logs.contains("file served"), "{logs}");
}

#[test]
fn check_refuses_a_link_delivery_unless_the_hub_serves_links() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = synthetic(dir.path());
    let all = ["forward", "upload", "forward_xml", "link"];
    let without = config_with(
        dir.path(),
        &s,
        "http://127.0.0.1:9",
        free_port(),
        free_port(),
        &all,
        "",
    );
    let out = hub(&["check", "--config", without.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("key `files`: delivery `link` of adapter `synthetic_files` sends its file as a link (key `file`, style = \"url\")")
            && err.contains("download_base_url"),
        "{err}"
    );
    // With a base URL and a secret from the environment, every delivery (and every fixture of
    // their mappings) passes.
    let with = config_with(
        dir.path(),
        &s,
        "http://127.0.0.1:9",
        free_port(),
        free_port(),
        &all,
        "download_base_url = \"https://hub.example.gov.cn\"",
    );
    let out = hub(
        &["check", "--config", with.to_str().unwrap()],
        &[("HUB_FILES__DOWNLOAD_SECRET", DOWNLOAD_SECRET)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(DOWNLOAD_SECRET));
}
