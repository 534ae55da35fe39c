//! The gateway in process, without a broker (its producer points nowhere): what is refused
//! before a body is read, the depth limits, and the connection time limits. A push that passes
//! all of them ends in BUS_UNAVAILABLE here, which proves it got through; the same paths with
//! a real broker are in hub/app/tests/gateway.rs.

use std::sync::Arc;
use std::time::Duration;

use hub_gateway::server::{serve_plain, ConnectionLimits};
use hub_gateway::{Dependencies, Gateway, GatewaySection, KeyFiles};
use hub_security::signing::SigningCredential;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "test-only-hmac-secret-0123456789";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Running {
    addr: std::net::SocketAddr,
    lifecycle: hub_bus::Lifecycle,
    _dir: tempfile::TempDir,
}

async fn start(extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let body_limit = if extra.contains("max_body_bytes") {
        ""
    } else {
        "max_body_bytes = 65536\n"
    };
    let config: GatewaySection = toml::from_str(&format!(
        "plain_http = true\nkey_ring = \"x\"\n{body_limit}{extra}\n\
         [[apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n\
         [[apps]]\napp_id = \"elicense-test\"\npartner = \"elicense\"\nhmac_secret = \"{SECRET}\"\n"
    ))
    .unwrap();
    let catalog = Arc::new(hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap());
    let mappings = Arc::new(
        hub_mapping::MappingSet::load(&repo().join("mappings"), &catalog)
            .unwrap_or_else(|_| panic!("mappings load")),
    );
    let bus: hub_config::sections::BusSection =
        toml::from_str("bootstrap_servers = \"127.0.0.1:9\"\ndelivery_timeout_ms = 1000\n")
            .unwrap();
    let producer = hub_bus::Producer::new(&bus).unwrap();
    let state = hub_state::StateStore::connect(
        &toml::from_str("url = \"sqlite://state.db\"").unwrap(),
        dir.path(),
    )
    .await
    .unwrap();
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("k1".to_string(), [7u8; 16]);
    let ring = hub_security::field::KeyRing::new("k1", keys).unwrap();
    let limits = ConnectionLimits::of(&config);
    let gw = Arc::new(
        Gateway::new(
            config,
            KeyFiles {
                key_ring: ring,
                sm2_private_key: None,
            },
            Dependencies {
                catalog,
                mappings,
                producer,
                state,
                actor: "hub:test".into(),
                schema_ids: Default::default(),
                // Every partner on the hub's own scheme (hub-v1).
                auth: Default::default(),
                config_dir: dir.path().to_path_buf(),
            },
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lifecycle = hub_bus::Lifecycle::new();
    tokio::spawn(serve_plain(
        listener,
        gw.router(),
        limits,
        lifecycle.clone(),
    ));
    Running {
        addr,
        lifecycle,
        _dir: dir,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn head(path: &str, length: &str, signed_by: Option<&str>, body: &[u8]) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: g\r\n{length}");
    if let Some(app) = signed_by {
        let headers = SigningCredential::HmacSm3 {
            secret: SECRET.as_bytes().to_vec(),
        }
        .sign_request(app, "POST", path, "", body, now_ms());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

/// Writes `bytes`, reads until `until` or the close; the stream stays open.
async fn exchange(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    until: &str,
) -> (tokio::net::TcpStream, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 8192];
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

async fn closed(stream: &mut tokio::net::TcpStream) -> bool {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 8192];
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

async fn push(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> String {
    let mut bytes = head(
        path,
        &format!("content-length: {}\r\n", body.len()),
        Some("hotline-test"),
        body,
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    exchange(addr, &bytes, "\"request_id\"").await.1
}

#[tokio::test]
async fn deep_payloads_are_refused_and_the_gateway_keeps_serving() {
    let hub = start("max_body_bytes = 1048576").await;
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><gd>{}{}</gd>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let answer = push(hub.addr, "/v1/hotline12345/dispatch_xml", xml.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INPUT_TOO_DEEP"), "{answer}");
    let json = format!(
        "{{\"gdbh\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let answer = push(hub.addr, "/v1/hotline12345/dispatch_json", json.as_bytes()).await;
    assert!(answer.contains("INPUT_TOO_DEEP"), "{answer}");
    // Still serving: a normal push is mapped and reaches the producer.
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let answer = push(hub.addr, "/v1/hotline12345/dispatch_json", &body).await;
    assert!(answer.contains("BUS_UNAVAILABLE"), "{answer}");
    hub.lifecycle.stop();
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_answered_before_the_body() {
    let hub = start("").await;
    let bytes = head(
        "/v1/hotline12345/dispatch_json",
        "content-length: 67108864\r\n",
        None,
        b"",
    ) + "0123456789";
    let (mut stream, answer) = exchange(hub.addr, bytes.as_bytes(), "BODY_TOO_LARGE").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(closed(&mut stream).await);
    let mut chunked = head(
        "/v1/hotline12345/dispatch_json",
        "transfer-encoding: chunked\r\n",
        Some("hotline-test"),
        b"x",
    )
    .into_bytes();
    for _ in 0..17 {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", "x".repeat(4096)).as_bytes());
    }
    let (mut stream, answer) = exchange(hub.addr, &chunked, "BODY_TOO_LARGE").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(closed(&mut stream).await);
    hub.lifecycle.stop();
}

#[tokio::test]
async fn slow_uploads_hold_no_permit_and_are_bounded_per_app() {
    let hub =
        start("max_concurrent_requests = 2\nmax_uploads_per_app = 2\nmax_uploads_per_source = 100")
            .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let bytes = head(
            "/v1/hotline12345/dispatch_json",
            "content-length: 1000\r\n",
            None,
            b"",
        ) + "0123";
        let (s, answer) = exchange(hub.addr, bytes.as_bytes(), "AUTH_HEADERS_MISSING").await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        held.push(s);
    }
    let mut refused = 0;
    for _ in 0..5 {
        let bytes = head(
            "/v1/elicense/x",
            "content-length: 1000\r\n",
            Some("elicense-test"),
            b"y",
        ) + "0123";
        let mut s = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        s.write_all(bytes.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(
                text.starts_with("HTTP/1.1 429") && text.contains("app_uploads"),
                "{text}"
            );
            refused += 1;
        }
        held.push(s);
    }
    assert_eq!(refused, 3);
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let answer = push(hub.addr, "/v1/hotline12345/dispatch_json", &body).await;
    assert!(!answer.contains("OVERLOADED"), "{answer}");
    assert!(
        answer.contains("BUS_UNAVAILABLE"),
        "got through to the producer: {answer}"
    );
    hub.lifecycle.stop();
}

#[tokio::test]
async fn a_connection_without_headers_is_closed() {
    let hub = start("header_timeout_ms = 300").await;
    let (mut s, _) = exchange(hub.addr, b"", "never").await;
    assert!(closed(&mut s).await);
    let (mut s, _) = exchange(hub.addr, b"POST / HTTP/1.1\r\nhost: g\r\n", "never").await;
    assert!(closed(&mut s).await);
    hub.lifecycle.stop();
}
