//! The file store against a real S3-compatible server: moto's server mode (PyPI `moto[server]`,
//! installed by ops/test.sh into its own cached virtual environment; `HUB_TEST_MOTO_SERVER`
//! names its `moto_server`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use hub_files::config::S3Section;
use hub_files::{FileStore, Limits};
use support::*;

/// A moto server on a free loopback port, stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let exe = std::env::var("HUB_TEST_MOTO_SERVER").expect(
        "HUB_TEST_MOTO_SERVER is not set: run the tests with ops/test.sh, which installs moto's \
         S3 server (tests/python/s3-requirements.txt) and names its moto_server",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let m = Moto { child, endpoint };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(&m.endpoint).send().await.is_ok() {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer on {}", m.endpoint);
}

async fn s3_store(m: &Moto, bucket: &str) -> FileStore {
    // Buckets are created by operators, not by the hub: here with a plain PUT.
    let r = reqwest::Client::new()
        .put(format!("{}/{bucket}", m.endpoint))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let section: S3Section = toml::from_str(&format!(
        "endpoint = \"{}\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\npath_style = true\nallow_http = true\n",
        m.endpoint
    ))
    .unwrap();
    let s3 = section.build(std::path::Path::new(".")).unwrap();
    FileStore::new(Arc::new(s3), Some(cipher("k1", &[])), Limits::default())
}

#[tokio::test]
async fn the_store_works_the_same_on_s3() {
    let m = moto().await;
    stored_and_read_back(&s3_store(&m, "plain").await).await;
    personal_files_are_encrypted_at_rest(&s3_store(&m, "personal").await).await;
    let s = s3_store(&m, "refusals").await;
    refusals_leave_nothing(&s).await;
    a_large_personal_file_streams(&s3_store(&m, "large").await).await;
}

#[tokio::test]
async fn orphaned_temporary_objects_on_s3_are_removed() {
    use object_store::ObjectStoreExt;
    let m = moto().await;
    let s = s3_store(&m, "orphans").await;
    let leftover = object_store::path::Path::from("tmp/0193a5c2-dead-7000-8000-000000000000");
    s.backend()
        .put(&leftover, bytes::Bytes::from_static(b"%PDF-half").into())
        .await
        .unwrap();
    assert_eq!(
        s.remove_orphans(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.remove_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(listed(&s, "tmp").await.is_empty());
}
