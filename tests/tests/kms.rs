//! The HTTP KMS client against the KMS simulator, a real HTTP server in its own process:
//! data keys wrapped by the KMS are unwrapped into the key ring at start; a wrong credential,
//! an unknown master key, a KMS that is down, or a wrapped key without a KMS are refused; plain
//! http is refused except on loopback with an explicit opt-in; an answer not signed by the KMS
//! for this very request (forged, unsigned, or replayed from another request) is refused.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use hub_security::field::FieldCipher;
use hub_security::kms::{load_key_ring, HttpKms};

const MASTER: &str = "000102030405060708090a0b0c0d0e0f";

struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms-sim"))
        .args([
            "--app-id",
            "hub",
            "--secret",
            "kms-test-secret-0123456789",
            "--master",
            &format!("m1={MASTER}"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kms-sim starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("LISTENING ")
        .expect("kms-sim announces its address")
        .to_string();
    Sim {
        child,
        url: format!("http://{addr}"),
    }
}

#[tokio::test]
async fn wrapped_data_keys_are_unwrapped_by_the_kms_into_a_working_key_ring() {
    let sim = start_sim();
    let kms = HttpKms::new(&sim.url, "hub", "kms-test-secret-0123456789", true).unwrap();
    let data_key = hub_security::sm::random::<16>();
    let wrapped = kms.wrap_key("m1", &data_key).await.unwrap();
    assert_ne!(
        &wrapped[12..28],
        &data_key[..],
        "the file never holds the key itself"
    );

    let dir = tempfile::tempdir().unwrap();
    let ring_path = dir.path().join("ring.toml");
    std::fs::write(
        &ring_path,
        format!("current = \"k2\"\n[keys]\nk1 = \"0123456789abcdeffedcba9876543210\"\nk2 = \"kms:m1:{}\"\n", hex::encode(&wrapped)),
    )
    .unwrap();
    assert_eq!(
        hub_security::kms::check_key_ring_file(&ring_path).unwrap(),
        1
    );
    let ring = load_key_ring(&ring_path, Some(&kms)).await.unwrap();
    assert_eq!(ring.current_id(), "k2");
    // The unwrapped key is the one that was wrapped: a value sealed with it opens with a ring
    // built from the plain key.
    let sealed = FieldCipher::new(ring).seal("t/f", "13800138000").unwrap();
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("k2".to_string(), data_key);
    let direct = FieldCipher::new(hub_security::field::KeyRing::new("k2", keys).unwrap());
    assert_eq!(direct.open("t/f", &sealed).unwrap(), "13800138000");

    // Refusals.
    let wrong = HttpKms::new(&sim.url, "hub", "not-the-kms-secret-0123", true).unwrap();
    let err = load_key_ring(&ring_path, Some(&wrong))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS_SIGNATURE_INVALID"), "{err}");
    let err = load_key_ring::<HttpKms>(&ring_path, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `k2` is wrapped by a KMS, but no KMS is configured"),
        "{err}"
    );
    std::fs::write(
        &ring_path,
        format!(
            "current = \"k2\"\n[keys]\nk2 = \"kms:m9:{}\"\n",
            hex::encode(&wrapped)
        ),
    )
    .unwrap();
    let err = load_key_ring(&ring_path, Some(&kms))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS_MASTER_KEY_UNKNOWN"), "{err}");
    drop(sim);
    std::fs::write(
        &ring_path,
        format!(
            "current = \"k2\"\n[keys]\nk2 = \"kms:m1:{}\"\n",
            hex::encode(&wrapped)
        ),
    )
    .unwrap();
    let err = load_key_ring(&ring_path, Some(&kms))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS unreachable"), "{err}");
}

#[test]
fn plain_http_is_refused_except_on_loopback_with_an_opt_in() {
    let new = |url: &str, allow: bool| {
        HttpKms::new(url, "hub", "kms-test-secret-0123456789", allow)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(new("https://kms.example.invalid", false), None);
    for url in [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://[::1]:9000",
    ] {
        assert_eq!(new(url, true), None, "{url} with the opt-in");
        let err = new(url, false).unwrap();
        assert!(err.contains("KMS_PLAIN_HTTP"), "{url}: {err}");
    }
    for url in [
        "http://10.0.0.5:9000",
        "http://kms.internal",
        "http://127.0.0.1.nip.io",
    ] {
        let err = new(url, true).unwrap();
        assert!(err.contains("KMS_PLAIN_HTTP"), "{url}: {err}");
    }
    assert!(new("ftp://kms", true).unwrap().contains("KMS_URL_INVALID"));
    assert!(new("not a url", true).unwrap().contains("KMS_URL_INVALID"));
}

/// A server that answers every unwrap 200 with `plaintext` and the given signature header
/// (or none): what a man in the middle, or a server without the KMS's secret, would send.
async fn impostor(signature: Option<String>, plaintext: [u8; 16]) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/unwrap",
        post(move || {
            let signature = signature.clone();
            async move {
                let body = serde_json::json!({ "plaintext": hex::encode(plaintext) }).to_string();
                let mut r = axum::response::Response::new(axum::body::Body::from(body));
                if let Some(s) = signature {
                    r.headers_mut()
                        .insert(hub_security::kms::ANSWER_SIGNATURE, s.parse().unwrap());
                }
                r
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_answer_the_kms_did_not_sign_for_this_request_is_refused() {
    use hub_security::kms::Unwrap;
    let secret = "kms-test-secret-0123456789";
    let attacker_key = [7u8; 16];
    // Unsigned; signed with another secret; signed correctly but for another request's nonce.
    let body = serde_json::json!({ "plaintext": hex::encode(attacker_key) }).to_string();
    let replayed = hub_security::kms::sign_answer(
        secret.as_bytes(),
        "/v1/unwrap",
        "0123456789abcdef0123456789abcdef",
        body.as_bytes(),
    );
    let wrong_secret = hub_security::kms::sign_answer(
        b"not-the-kms-secret-0123",
        "/v1/unwrap",
        "0123456789abcdef0123456789abcdef",
        body.as_bytes(),
    );
    for signature in [
        None,
        Some(wrong_secret),
        Some(replayed),
        Some("zz".to_string()),
    ] {
        let url = impostor(signature.clone(), attacker_key).await;
        let kms = HttpKms::new(&url, "hub", secret, true).unwrap();
        let err = kms
            .unwrap_key("m1", &[1u8; 44])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KMS_ANSWER_UNAUTHENTICATED"),
            "{signature:?}: {err}"
        );
    }
    // The real simulator's answers pass (see the test above), so the check is not vacuous.
    let sim = start_sim();
    let kms = HttpKms::new(&sim.url, "hub", secret, true).unwrap();
    let wrapped = kms.wrap_key("m1", &attacker_key).await.unwrap();
    assert_eq!(kms.unwrap_key("m1", &wrapped).await.unwrap(), attacker_key);
}
