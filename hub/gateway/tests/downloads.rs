//! The download route of links the hub sends files as (`docs/files.md`, "Sending a file as a
//! link"): the real gateway router on 127.0.0.1 with a local file store and no reachable
//! broker (downloads never produce). A valid link streams the file with its type and length; a
//! forged, expired or malformed link is refused before the store is asked; a file that does not
//! match its id is cut off, never delivered complete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hub_files::transfer::DownloadLinks;
use hub_files::{FileId, FileStore, PutOptions};
use hub_gateway::{Dependencies, Gateway, GatewaySection, KeyFiles};
use serde_json::Value;

const LINK_SECRET: &[u8] = b"download-test-secret-0123456789";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The gateway serving downloads from `store` (when given), and its base URL.
async fn gateway(dir: &std::path::Path, store: Option<FileStore>) -> String {
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let mappings = hub_mapping::MappingSet::load(&repo().join("mappings"), &catalog).unwrap();
    let config: GatewaySection = toml::from_str(&format!(
        "plain_http = true\nkey_ring = \"{}\"\n",
        repo().join("ops/dev-keyring.toml").display()
    ))
    .unwrap();
    let state = hub_state::StateStore::connect(
        &hub_config::sections::StateSection {
            url: "sqlite://state.db".into(),
            ..Default::default()
        },
        dir,
    )
    .await
    .unwrap();
    let producer = hub_bus::Producer::new(&hub_config::sections::BusSection {
        bootstrap_servers: "127.0.0.1:1".into(),
        client_id: "download-test".into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 1_000,
        linger_ms: 0,
        session_timeout_ms: 10_000,
        replication_factor: 1,
        librdkafka: Default::default(),
    })
    .unwrap();
    let gw = Gateway::new(
        config,
        KeyFiles {
            key_ring: hub_security::field::KeyRing::from_file(&repo().join("ops/dev-keyring.toml"))
                .unwrap(),
            sm2_private_key: None,
        },
        Dependencies {
            catalog: Arc::new(catalog),
            mappings: Arc::new(mappings),
            producer,
            state,
            actor: "hub:test".into(),
            schema_ids: HashMap::new(),
            auth: HashMap::new(),
            config_dir: dir.to_path_buf(),
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let gw = match store {
        Some(store) => gw.with_downloads(store, links(&base)),
        None => gw,
    };
    let router = Arc::new(gw).router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn links(base: &str) -> DownloadLinks {
    DownloadLinks::new(&format!("{base}/v1/files"), LINK_SECRET).unwrap()
}

/// A PDF of about `len` bytes, distinct by `tag`.
fn pdf(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("%PDF-1.7\n% {tag}\n").into_bytes();
    while b.len() < len {
        b.extend_from_slice(b"1 0 obj << /Type /Catalog >> endobj\n");
    }
    b
}

async fn refused(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_link_streams_its_file_and_anything_else_is_refused_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::local(&dir.path().join("files"), None, Default::default()).unwrap();
    // Larger than a chunk of the store's stream, so the answer really streams.
    let bytes = pdf("download", 300_000);
    let meta = store
        .put_bytes(bytes.clone().into(), &PutOptions::default())
        .await
        .unwrap();
    let base = gateway(dir.path(), Some(store)).await;
    let links = links(&base);

    let link = links.issue(&meta.id);
    let r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(
        r.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().contains_key("x-request-id"));
    let got = r.bytes().await.unwrap();
    assert_eq!(
        FileId::of(&got),
        meta.id,
        "the SM3 of what arrived is the id"
    );

    let id = meta.id.to_string();
    let (_, query) = link.split_once('?').unwrap();
    let q: HashMap<&str, &str> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let other_sig = DownloadLinks::new("https://x/v1/files", b"another-secret-0123456789")
        .unwrap()
        .issue(&meta.id);
    let cases = [
        // Signed with another secret.
        (
            format!(
                "{base}/v1/files/{id}?{}",
                other_sig.split_once('?').unwrap().1
            ),
            400,
            "FILE_URL_REFUSED",
        ),
        // A later expiry than the one signed.
        (
            format!(
                "{base}/v1/files/{id}?expires={}&sig={}",
                q["expires"].parse::<i64>().unwrap() + 1,
                q["sig"]
            ),
            400,
            "FILE_URL_REFUSED",
        ),
        // Expired.
        (
            links.link_until(&meta.id, chrono::Utc::now().timestamp() - 1),
            400,
            "FILE_URL_REFUSED",
        ),
        // No signature at all.
        (format!("{base}/v1/files/{id}"), 400, "FILE_URL_REFUSED"),
        // Not a file id.
        (
            format!("{base}/v1/files/sm3:xyz?{query}"),
            400,
            "FILE_ID_INVALID",
        ),
        // Validly signed, but never stored.
        (
            links.link(&FileId::of(b"never stored"), Duration::from_secs(60)),
            404,
            "FILE_NOT_FOUND",
        ),
    ];
    for (url, status, code) in cases {
        let (got_status, answer) = refused(&url).await;
        assert_eq!(
            (got_status, answer["code"].as_str()),
            (status, Some(code)),
            "{url}: {answer}"
        );
        assert!(answer["message_zh"].is_string() && answer["message_en"].is_string());
        assert!(answer["request_id"].is_string());
    }
}

#[tokio::test]
async fn a_stored_file_that_no_longer_matches_its_id_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let store = FileStore::local(&root, None, Default::default()).unwrap();
    let bytes = pdf("damaged", 200_000);
    let meta = store
        .put_bytes(bytes.clone().into(), &PutOptions::default())
        .await
        .unwrap();
    // Damage the object in place: same length, one byte different.
    let hex = meta.id.sm3_hex();
    let object = root.join(format!("objects/{}/{hex}.clear", &hex[..2]));
    let mut damaged = std::fs::read(&object).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    std::fs::write(&object, damaged).unwrap();
    let base = gateway(dir.path(), Some(store)).await;
    let r = reqwest::get(links(&base).issue(&meta.id)).await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "the headers go before the content"
    );
    assert!(
        r.bytes().await.is_err(),
        "the body breaks off: the partner never gets a complete, wrong file"
    );
}

#[tokio::test]
async fn a_hub_that_serves_no_links_has_no_download_route() {
    let dir = tempfile::tempdir().unwrap();
    let base = gateway(dir.path(), None).await;
    let id = FileId::of(b"x");
    let (status, answer) = refused(&format!("{base}/v1/files/{id}?expires=1&sig=00")).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("ROUTE_NOT_FOUND")),
        "{answer}"
    );
}
