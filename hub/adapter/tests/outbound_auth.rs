//! `PartnerClient` signs its calls with the adapter's scheme: a stand-in partner on 127.0.0.1
//! records each request as it arrives, and an independent implementation
//! (`tests/python/partner_auth.py`: Python `hmac`/`hashlib`, `gmssl`; `tests/node`: npm
//! `sm-crypto` for sm2-cert) recomputes or verifies the signature from those bytes. Mutual TLS and a pinned server CA against a rustls server that requires a
//! client certificate.

use std::sync::{Arc, Mutex};

use hub_adapter::{PartnerClient, PartnerSection};
use hub_protocols::AuthSpec;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../../tests/python/peer.rs"]
mod peer;

fn python(ops: Value) -> Vec<Value> {
    peer::run("partner_auth.py", &ops)
}

/// One request as the partner received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }
    fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
}

/// What a stand-in answers to a request: status and JSON body.
type Responder = Arc<dyn Fn(&Seen) -> (u16, String) + Send + Sync>;

fn ok() -> Responder {
    Arc::new(|_| (200, "{\"code\":\"0\"}".to_string()))
}

/// Reads one HTTP/1.1 request (Content-Length bodies) and answers with `respond`.
async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    seen: &Mutex<Vec<Seen>>,
    respond: &Responder,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let (method, target) = (
        first.next().unwrap().to_string(),
        first.next().unwrap().to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let request = Seen {
        method,
        target,
        headers,
        body,
    };
    let (status, answer) = respond(&request);
    seen.lock().unwrap().push(request);
    let _ = stream
        .write_all(
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            )
            .as_bytes(),
        )
        .await;
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A plain-HTTP stand-in partner; returns its base URL and what it saw.
async fn partner() -> (String, Arc<Mutex<Vec<Seen>>>) {
    partner_with(ok()).await
}

async fn partner_with(respond: Responder) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            serve_one(tcp, &s, &respond).await;
        }
    });
    (format!("http://{addr}"), seen)
}

fn section(base_url: &str, extra: &str) -> PartnerSection {
    toml::from_str(&format!(
        "base_url = \"{base_url}\"\napp_id = \"hub-app\"\nhmac_secret = \"hub-secret-0123456789\"\ntimeout_ms = 5000\n{extra}"
    ))
    .unwrap()
}

fn spec(text: &str) -> AuthSpec {
    let table: toml::Table = toml::from_str(text).unwrap();
    AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
        .unwrap()
        .0
}

#[tokio::test]
async fn ak_sk_calls_verify_with_an_independent_sigv4() {
    let (url, seen) = partner().await;
    let auth = spec("[auth]\nscheme = \"ak-sk\"\nregion = \"cn-north-1\"\nservice = \"execute-api\"\nsign_headers = [\"content-type\", \"x-idempotency-key\"]");
    let client =
        PartnerClient::new("p", &section(&url, ""), std::path::Path::new("."), &auth).unwrap();
    assert_eq!(client.scheme(), "ak-sk");
    let body = r#"{"licenceNo":"310101-L-1","holder":"张三"}"#.as_bytes().to_vec();
    let answer = client
        .call(
            "POST",
            "/v1/licences/verify",
            "lang=zh-CN&b=2",
            body.clone(),
            "application/json",
            &[("X-Idempotency-Key", "msg-1".to_string())],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let got = seen.lock().unwrap()[0].clone();
    let auth =
        hub_protocols::ak_sk::parse_authorization(got.header("authorization").unwrap()).unwrap();
    assert_eq!(auth.access_key, "hub-app");
    let signed: Vec<Value> = auth
        .signed_headers
        .iter()
        .map(|n| json!([n, got.header(n).unwrap()]))
        .collect();
    let py = python(json!([{
        "op": "sigv4", "method": got.method, "path": got.path(), "query": got.query(),
        "headers": signed, "body": String::from_utf8(got.body.clone()).unwrap(),
        "amz_date": got.header("x-amz-date").unwrap(), "region": "cn-north-1",
        "service": "execute-api", "secret": "hub-secret-0123456789",
    }]));
    assert_eq!(py[0]["signature"].as_str().unwrap(), auth.signature);
    assert_eq!(
        py[0]["signed_headers"].as_str().unwrap(),
        "content-type;host;x-amz-date;x-idempotency-key"
    );
}

#[tokio::test]
async fn app_key_sign_json_calls_verify_in_python() {
    let (url, seen) = partner().await;
    let auth = spec("[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sm3\"\nplacement = \"json\"\nbody = \"fields\"\nsignature_case = \"upper\"");
    let client =
        PartnerClient::new("p", &section(&url, ""), std::path::Path::new("."), &auth).unwrap();
    let body = br#"{"noticeNo":"3100001","amount":"12.50","items":[{"code":"A"}]}"#.to_vec();
    client
        .call(
            "POST",
            "/api/notice/revoke",
            "",
            body,
            "application/json",
            &[],
        )
        .await
        .unwrap();
    let got = seen.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(sent["appKey"], "hub-app");
    assert_eq!(sent["items"][0]["code"], "A", "the payload is kept");
    let params: Vec<Value> = sent
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| json!([k, s])))
        .collect();
    let py = python(json!([{
        "op": "app_key_sign", "params": params, "digest": "hmac-sm3",
        "secret": "hub-secret-0123456789", "upper": true,
    }]));
    assert_eq!(py[0]["signature"], sent["sign"], "over {}", py[0]["string"]);
}

#[tokio::test]
async fn hub_v1_calls_sign_the_idempotency_key_and_the_encryption_mode() {
    let (url, seen) = partner().await;
    let client = PartnerClient::new(
        "p",
        &section(&url, "sm4_key = \"00112233445566778899aabbccddeeff\""),
        std::path::Path::new("."),
        &AuthSpec::HubV1,
    )
    .unwrap();
    client
        .call(
            "POST",
            "/api/v1/tickets/sign",
            "",
            b"{}".to_vec(),
            "application/json",
            &[("X-Idempotency-Key", "msg-9".to_string())],
        )
        .await
        .unwrap();
    let got = seen.lock().unwrap()[0].clone();
    let list = got.header("x-hub-signed-headers").unwrap().to_string();
    assert_eq!(list, "content-type;x-hub-encryption;x-idempotency-key");
    let signed: Vec<Value> = list
        .split(';')
        .map(|n| json!([n, got.header(n).unwrap()]))
        .collect();
    let py = python(json!([{
        "op": "hub_v1_bytes", "method": "POST", "path": got.path(), "query": got.query(),
        "app_id": "hub-app", "timestamp": got.header("x-hub-timestamp").unwrap().parse::<i64>().unwrap(),
        "nonce": got.header("x-hub-nonce").unwrap(), "body_hex": hex::encode(&got.body),
        "headers": signed, "secret": "hub-secret-0123456789",
    }]));
    assert_eq!(
        py[0]["signature"].as_str().unwrap(),
        got.header("x-hub-signature").unwrap()
    );
}

#[path = "../../../tests/node/peer.rs"]
mod node_peer;

#[tokio::test]
async fn sm2_cert_calls_verify_with_npm_sm_crypto() {
    // The hub's SM2 key signs each call; npm sm-crypto (tests/node), as a JavaScript partner
    // would, verifies the signature of the canonical string rebuilt from what arrived, raw r‖s
    // in hex and DER in base64, and refuses it over another body.
    use base64::Engine as _;
    let key = hub_security::sm::Sm2PrivateKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("hub-sm2.key");
    std::fs::write(&key_file, hex::encode(key.to_bytes())).unwrap();
    for (params, der) in [
        ("", false),
        ("format = \"der\"\nencoding = \"base64\"\n", true),
    ] {
        let (url, seen) = partner().await;
        let text = format!("[auth]\nscheme = \"sm2-cert\"\n{params}");
        let auth = spec(&text);
        let section: PartnerSection = toml::from_str(&format!(
            "base_url = \"{url}\"\napp_id = \"hub-app\"\nsm2_private_key_file = \"{}\"\ntimeout_ms = 5000\n",
            key_file.display()
        ))
        .unwrap();
        let client = PartnerClient::new("p", &section, std::path::Path::new("."), &auth).unwrap();
        assert_eq!(client.scheme(), "sm2-cert");
        let body = r#"{"licenceNo":"310101-L-1","holder":"张三"}"#.as_bytes().to_vec();
        client
            .call(
                "POST",
                "/api/licence/verify",
                "lang=zh-CN",
                body.clone(),
                "application/json",
                &[],
            )
            .await
            .unwrap();
        let got = seen.lock().unwrap()[0].clone();
        let hub_protocols::AuthSpec::Sm2Cert(s) = spec(&text) else {
            unreachable!()
        };
        let canonical = |body: &[u8]| {
            s.canonical(
                &got.method,
                got.path(),
                got.query(),
                got.header("x-app-id").unwrap(),
                got.header("x-timestamp").unwrap(),
                got.header("x-nonce").unwrap(),
                body,
            )
        };
        let sent = got.header("x-signature").unwrap();
        let signature = if der {
            hex::encode(
                base64::engine::general_purpose::STANDARD
                    .decode(sent)
                    .unwrap(),
            )
        } else {
            sent.to_string()
        };
        let verdicts: Vec<String> = node_peer::run(
            "sm_crypto_interop.js",
            &json!([
                {"op": "sm2_verify", "public_key": key.public_key_hex(), "signature": signature,
                 "data": hex::encode(canonical(&got.body)), "der": der},
                {"op": "sm2_verify", "public_key": key.public_key_hex(), "signature": signature,
                 "data": hex::encode(canonical(b"{}")), "der": der},
            ]),
        );
        assert_eq!(got.body, body);
        assert_eq!(got.header("x-app-id"), Some("hub-app"));
        assert_eq!(verdicts, ["ok", "bad"], "der: {der}");
    }
}

struct Ca {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { params, key, pem }
}

fn issue(ca: &Ca, name: &str, client: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A TLS partner that requires a client certificate from `client_ca`.
async fn tls_partner(server: (String, String), client_ca: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(server.0.as_bytes())
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(server.1.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve_one(tls, &s, &ok()).await;
            }
        }
    });
    (format!("https://localhost:{port}"), seen)
}

#[tokio::test]
async fn mutual_tls_presents_the_hubs_certificate_and_pins_the_partners_ca() {
    let dir = tempfile::tempdir().unwrap();
    let partner_ca = ca("partner CA");
    let hub_ca = ca("hub client CA");
    let (url, seen) = tls_partner(issue(&partner_ca, "localhost", false), &hub_ca.pem).await;
    let (client_cert, client_key) = issue(&hub_ca, "hub", true);
    std::fs::write(dir.path().join("hub.crt"), client_cert).unwrap();
    std::fs::write(dir.path().join("hub.key"), client_key).unwrap();
    std::fs::write(dir.path().join("partner-ca.pem"), &partner_ca.pem).unwrap();
    std::fs::write(dir.path().join("other-ca.pem"), ca("someone else").pem).unwrap();
    let full = "client_cert_file = \"hub.crt\"\nclient_key_file = \"hub.key\"\nserver_ca_file = \"partner-ca.pem\"";
    let call = |extra: &str| {
        let client =
            PartnerClient::new("p", &section(&url, extra), dir.path(), &AuthSpec::HubV1).unwrap();
        async move {
            client
                .call("POST", "/x", "", b"{}".to_vec(), "application/json", &[])
                .await
        }
    };
    let answer = call(full).await.expect("mutual TLS with the pinned CA");
    assert_eq!(answer.status, 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Without the hub's client certificate the partner refuses the handshake.
    assert!(call("server_ca_file = \"partner-ca.pem\"").await.is_err());
    // With another CA pinned, the partner's certificate is not trusted.
    assert!(call(
        "client_cert_file = \"hub.crt\"\nclient_key_file = \"hub.key\"\nserver_ca_file = \"other-ca.pem\""
    )
    .await
    .is_err());
    // The system roots alone do not trust the partner's private CA either.
    assert!(
        call("client_cert_file = \"hub.crt\"\nclient_key_file = \"hub.key\"")
            .await
            .is_err()
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no refused call reached the partner"
    );
    // A broken pair is refused at start, naming the key.
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let e = PartnerClient::new(
        "p",
        &section(&url, "server_ca_file = \"empty.pem\""),
        dir.path(),
        &AuthSpec::HubV1,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("server_ca_file"), "{e}");
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_once_shared_and_renewed_on_a_401() {
    use base64::Engine as _;
    // The partner: a token endpoint (RFC 6749 §4.4) and an API that takes its current token.
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let revoked = Arc::new(Mutex::new(false));
    let (iss, rev) = (Arc::clone(&issued), Arc::clone(&revoked));
    let respond: Responder = Arc::new(move |r: &Seen| {
        if r.path() == "/oauth/token" {
            // Hand-checked: Basic base64("hub-app:hub-secret-0123456789"), a form body.
            let basic =
                base64::engine::general_purpose::STANDARD.encode("hub-app:hub-secret-0123456789");
            if r.header("authorization") != Some(format!("Basic {basic}").as_str())
                || r.body != b"grant_type=client_credentials&scope=notice.write"
            {
                return (401, "{\"error\":\"invalid_client\"}".into());
            }
            let mut iss = iss.lock().unwrap();
            let token = format!("tok-{}", iss.len() + 1);
            iss.push(token.clone());
            *rev.lock().unwrap() = false;
            return (200, format!("{{\"access_token\":\"{token}\",\"token_type\":\"bearer\",\"expires_in\":3600}}"));
        }
        let current = iss.lock().unwrap().last().cloned().unwrap_or_default();
        if *rev.lock().unwrap()
            || r.header("authorization") != Some(format!("Bearer {current}").as_str())
        {
            return (401, "{\"code\":\"401\"}".into());
        }
        (200, "{\"code\":\"0\"}".into())
    });
    let (url, seen) = partner_with(respond).await;
    let auth = spec("[auth]\nscheme = \"oauth2-client-credentials\"\ntoken_url = \"/oauth/token\"\nscope = \"notice.write\"");
    let client = Arc::new(
        PartnerClient::new("p", &section(&url, ""), std::path::Path::new("."), &auth).unwrap(),
    );
    // Several calls at once share one token.
    let mut calls = Vec::new();
    for i in 0..4 {
        let c = Arc::clone(&client);
        calls.push(tokio::spawn(async move {
            c.call(
                "POST",
                &format!("/api/n/{i}"),
                "",
                b"{}".to_vec(),
                "application/json",
                &[],
            )
            .await
            .unwrap()
            .status
        }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(issued.lock().unwrap().len(), 1, "one token for all routes");
    // The partner revokes it: the next call gets a 401, fetches a new token and succeeds.
    *revoked.lock().unwrap() = true;
    let answer = client
        .call(
            "POST",
            "/api/n/5",
            "",
            b"{}".to_vec(),
            "application/json",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(issued.lock().unwrap().len(), 2, "renewed once on the 401");
    let api_calls = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path() != "/oauth/token")
        .count();
    assert_eq!(
        api_calls, 6,
        "4 calls, then one refused and its single retry"
    );
    // A client secret the partner refuses: no token, no call, and no secret in the error.
    let bad = PartnerClient::new(
        "p",
        &toml::from_str(&format!(
            "base_url = \"{url}\"\napp_id = \"hub-app\"\nhmac_secret = \"a-wrong-secret-0123456\"\ntimeout_ms = 5000"
        ))
        .unwrap(),
        std::path::Path::new("."),
        &auth,
    )
    .unwrap();
    let e = bad
        .call(
            "POST",
            "/api/n/9",
            "",
            b"{}".to_vec(),
            "application/json",
            &[],
        )
        .await
        .unwrap_err();
    let text = format!("{e:?}");
    assert!(
        text.contains("AUTH_TOKEN_UNAVAILABLE") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("a-wrong-secret"), "{text}");
}
