//! The gateway over TLS (rustls): served with the configured certificate, reloaded without a
//! restart when the files change or on SIGHUP, a broken pair keeps the previous one, and a
//! plain HTTP client gets nothing.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::*;

fn pair() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

fn client(trusted_pem: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusted_pem.as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn answer(client: &reqwest::Client, port: u16) -> Result<(u16, String), String> {
    let r = client
        .post(format!(
            "https://localhost:{port}/v1/hotline12345/dispatch_json"
        ))
        .body("{}")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn the_gateway_serves_tls_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = pair();
    std::fs::write(dir.path().join("gw.crt"), &cert1).unwrap();
    std::fs::write(dir.path().join("gw.key"), &key1).unwrap();
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nkey_ring = \"{}\"\n\
         [gateway.tls]\ncert = \"gw.crt\"\nkey = \"gw.key\"\ncheck_interval_ms = 60000\n",
        repo().join("ops/dev-keyring.toml").display()
    );
    let serving = start_serving_with(dir.path(), &kafka(), &extra);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;

    // Served over TLS with the configured certificate: the gateway answers (here: unsigned).
    let first = client(&cert1, port);
    let (status, body) = answer(&first, port).await.expect("a TLS answer");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("AUTH_HEADERS_MISSING"), "{body}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/v1/hotline12345/dispatch_json"
        ))
        .body("{}")
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status().as_u16() != 401,
        "plain HTTP must not be served"
    );

    // New files + SIGHUP: new handshakes use the new certificate.
    let (cert2, key2) = pair();
    std::fs::write(dir.path().join("gw.crt"), &cert2).unwrap();
    std::fs::write(dir.path().join("gw.key"), &key2).unwrap();
    kill(Pid::from_raw(serving.child.id() as i32), Signal::SIGHUP).unwrap();
    let second = client(&cert2, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if answer(&second, port).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10 s of SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answer(&client(&cert1, port), port).await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken pair is refused and the working one stays.
    std::fs::write(dir.path().join("gw.key"), "not a key").unwrap();
    kill(Pid::from_raw(serving.child.id() as i32), Signal::SIGHUP).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        answer(&client(&cert2, port), port).await.is_ok(),
        "still serving the last good certificate"
    );

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    assert!(logs.contains("TLS certificate not reloaded"), "{logs}");
}

#[test]
fn tls_or_explicit_plain_http_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n[contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n",
        repo().join("contracts/schemas").display(),
        repo().join("mappings").display()
    );
    let ring = repo().join("ops/dev-keyring.toml");
    let neither = write_config(
        dir.path(),
        &format!("{base}[gateway]\nkey_ring = \"{}\"\n", ring.display()),
    );
    let out = hub(&["check", "--config", neither.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "key `gateway.tls`: the gateway needs [gateway.tls] cert and key, or plain_http = true"
        ),
        "{}",
        text(&out.stderr)
    );
    let both = write_config(
        dir.path(),
        &format!("{base}[gateway]\nplain_http = true\nkey_ring = \"{}\"\n[gateway.tls]\ncert = \"a\"\nkey = \"b\"\n", ring.display()),
    );
    let out = hub(&["check", "--config", both.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("choose one: plain_http = true, or a [gateway.tls] section"),
        "{}",
        text(&out.stderr)
    );
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

/// A client certificate issued by `ca`: (cert PEM, key PEM, SM3 of its DER).
fn client_cert(ca: &Ca, name: &str) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let sm3 = hub_security::sm::sm3_hex(cert.der());
    (cert.pem(), key.serialize_pem(), sm3)
}

#[tokio::test]
async fn mutual_tls_requires_and_pins_the_apps_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server_cert, server_key) = pair();
    std::fs::write(dir.path().join("gw.crt"), &server_cert).unwrap();
    std::fs::write(dir.path().join("gw.key"), &server_key).unwrap();
    let partners = ca("partners CA");
    std::fs::write(dir.path().join("clients.pem"), &partners.pem).unwrap();
    let (a_cert, a_key, a_sm3) = client_cert(&partners, "hotline-a");
    let (b_cert, b_key, _) = client_cert(&partners, "hotline-b");
    let (x_cert, x_key, _) = client_cert(&ca("some other CA"), "stranger");
    let secret = "test-only-hmac-secret-0123456789";
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nkey_ring = \"{}\"\n\
         [gateway.tls]\ncert = \"gw.crt\"\nkey = \"gw.key\"\nclient_ca = \"clients.pem\"\n\
         [[gateway.apps]]\napp_id = \"hotline-pinned\"\npartner = \"hotline12345\"\nhmac_secret = \"{secret}\"\nclient_cert_sm3 = \"{a_sm3}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-open\"\npartner = \"hotline12345\"\nhmac_secret = \"{secret}\"\n",
        repo().join("ops/dev-keyring.toml").display()
    );
    let serving = start_serving_with(dir.path(), &kafka(), &extra);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;

    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let path = "/v1/hotline12345/dispatch_json";
    let call = |identity: Option<(String, String)>, app: &'static str| {
        let body = body.clone();
        let server_cert = server_cert.clone();
        async move {
            let mut builder = reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(
                    reqwest::Certificate::from_pem(server_cert.as_bytes()).unwrap(),
                )
                .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap());
            if let Some((cert, key)) = identity {
                builder = builder.identity(
                    reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap(),
                );
            }
            let now = chrono::Utc::now().timestamp_millis();
            let mut req = builder
                .build()
                .unwrap()
                .post(format!("https://localhost:{port}{path}"))
                .body(body.clone());
            let signer = hub_security::signing::SigningCredential::HmacSm3 {
                secret: secret.as_bytes().to_vec(),
            };
            for (k, v) in signer.sign_request(app, "POST", path, "", &body, now) {
                req = req.header(k, v);
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v = hub_answer(r.json().await.unwrap_or_default());
                    Ok((status, v["code"].as_str().unwrap_or_default().to_string()))
                }
                Err(e) => Err(format!("{e:?}")),
            }
        }
    };
    assert_eq!(
        call(Some((a_cert.clone(), a_key.clone())), "hotline-pinned").await,
        Ok((200, "ACCEPTED".into()))
    );
    assert_eq!(
        call(Some((b_cert.clone(), b_key.clone())), "hotline-pinned").await,
        Ok((403, "AUTH_CLIENT_CERT_MISMATCH".into()))
    );
    assert_eq!(
        call(None, "hotline-pinned").await,
        Ok((401, "AUTH_CLIENT_CERT_REQUIRED".into()))
    );
    // An app without a client-certificate requirement may connect either way.
    assert_eq!(
        call(None, "hotline-open").await,
        Ok((200, "ACCEPTED".into()))
    );
    assert_eq!(
        call(Some((b_cert, b_key)), "hotline-open").await,
        Ok((200, "ACCEPTED".into()))
    );
    // A certificate from a CA the hub does not trust fails the handshake.
    assert!(call(Some((x_cert, x_key)), "hotline-open").await.is_err());

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
}

/// Reads until the peer closes the connection (true) or 30 s pass (false).
async fn closed_by_peer<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
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

#[tokio::test]
async fn a_tls_connection_without_a_handshake_or_without_headers_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("gw.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("gw.key"), ck.signing_key.serialize_pem()).unwrap();
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nkey_ring = \"{}\"\n\
         header_timeout_ms = 500\ntls_handshake_timeout_ms = 500\n\
         [gateway.tls]\ncert = \"gw.crt\"\nkey = \"gw.key\"\n",
        repo().join("ops/dev-keyring.toml").display()
    );
    let serving = start_serving_with(dir.path(), &kafka(), &extra);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;

    // A TCP connection that never starts the handshake.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    assert!(
        closed_by_peer(&mut silent).await,
        "a connection without a handshake is closed"
    );

    // A completed handshake, then no request head.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the handshake completes");
    assert!(
        closed_by_peer(&mut tls).await,
        "a TLS connection that sends no request head is closed"
    );

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
}
