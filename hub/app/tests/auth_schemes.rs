//! Adapters' authentication schemes on a running hub: a partner whose adapter declares
//! `app-key-sign` pushes through the real gateway, signed by an independent implementation
//! (tests/python/partner_auth.py), and one whose adapter declares `sm2-cert` signs with npm
//! sm-crypto (tests/node); every refusal answers its code; `hub check` names the file,
//! line and key of a bad `[auth]` and warns about a legacy digest.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::isolate::copy_dir;
use support::*;

const SECRET: &str = "test-only-app-secret-0123456789";
const PATH: &str = "/v1/hotline12345/dispatch_json";

fn python(ops: Value) -> Vec<Value> {
    peer::run("partner_auth.py", &ops)
}

/// The repository's adapters copied under `dir`, 12345's manifest given `auth`.
fn adapters_with(dir: &std::path::Path, auth: &str) -> std::path::PathBuf {
    let adapters = dir.join("adapters");
    copy_dir(
        &repo().join("adapters/hotline12345"),
        &adapters.join("hotline12345"),
    );
    let manifest = adapters.join("hotline12345/adapter.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n{auth}")).unwrap();
    adapters
}

/// The query string of a push signed by Python with HMAC-SHA256 over the sorted parameters.
fn signed_query(app_key: &str, ts: i64, nonce: &str, body: &[u8], secret: &str) -> String {
    let digest = hex::encode(hub_protocols::digest::sha256(body));
    let params = json!([
        ["appKey", app_key],
        ["timestamp", ts.to_string()],
        ["nonce", nonce],
        ["lang", "zh-CN"],
        ["bodyDigest", digest]
    ]);
    let got = python(
        json!([{ "op": "app_key_sign", "params": params, "digest": "hmac-sha256", "secret": secret }]),
    );
    format!(
        "lang=zh-CN&appKey={app_key}&timestamp={ts}&nonce={nonce}&sign={}",
        got[0]["signature"].as_str().unwrap()
    )
}

#[tokio::test]
async fn an_app_key_sign_partner_pushes_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    adapters_with(
        dir.path(),
        "[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sha256\"\n",
    );
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nkey_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-appkey\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n",
        repo().join("ops/dev-keyring.toml").display(),
    );
    let serving = start_serving_env(dir.path(), &kafka(), &extra, &[]);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    let gateway = format!("http://127.0.0.1:{port}");
    // The OpenAPI document tells the integrator this partner's scheme, not hub-v1's.
    let doc = openapi(&gateway).await;
    let op = &doc["paths"][PATH]["post"];
    assert_eq!(op["x-hub-auth"]["scheme"], "app-key-sign", "{op}");
    assert_eq!(op["x-hub-auth"]["digest"], "hmac-sha256", "{op}");
    assert_eq!(op["x-hub-auth"]["placement"], "query", "{op}");
    let required: Vec<&String> = op["security"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        required,
        [
            "hotline12345.appKey",
            "hotline12345.nonce",
            "hotline12345.sign",
            "hotline12345.timestamp"
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["hotline12345.sign"],
        json!({"type": "apiKey", "in": "query", "name": "sign", "description": "签名 / signature"})
    );
    // Partners without `[auth]` keep hub-v1's headers in the same document.
    let other = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(path, _)| !path.starts_with("/v1/hotline12345/"))
        .map(|(_, item)| item["post"].clone())
        .expect("another partner's path");
    assert_eq!(other["x-hub-auth"], json!({"scheme": "hub-v1"}));
    assert!(other["security"][0]["signature"].is_array(), "{other}");
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let client = reqwest::Client::new();
    let post = |query: String, body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let mut req = client
            .post(format!("{gateway}{PATH}?{query}"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, hub_answer(r.json().await.unwrap_or(Value::Null)))
        }
    };

    // Signed by the partner's own implementation: accepted, on Kafka.
    let query = signed_query("hotline-appkey", now, "nonce-0000000001", &body, SECRET);
    let (s, v) = post(query.clone(), body.clone(), vec![]).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ACCEPTED")), "{v}");
    // The same request again: a replay.
    let (s, v) = post(query.clone(), body.clone(), vec![]).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("AUTH_REPLAY")), "{v}");
    // Another body under the same signature: refused.
    let mut changed = body.clone();
    changed.push(b' ');
    let query = signed_query("hotline-appkey", now, "nonce-0000000002", &body, SECRET);
    let (s, v) = post(query, changed, vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    // An unknown app key answers like a bad signature.
    let query = signed_query("nobody", now, "nonce-0000000003", &body, SECRET);
    let (s, v) = post(query, body.clone(), vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    // A wrong secret.
    let query = signed_query(
        "hotline-appkey",
        now,
        "nonce-0000000004",
        &body,
        "another-secret-0123456789",
    );
    let (s, v) = post(query, body.clone(), vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    // An old timestamp, a missing signature, a short nonce.
    let query = signed_query(
        "hotline-appkey",
        now - 3_600_000,
        "nonce-0000000005",
        &body,
        SECRET,
    );
    let (s, v) = post(query, body.clone(), vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_TIMESTAMP_OUT_OF_WINDOW")),
        "{v}"
    );
    let query = format!("appKey=hotline-appkey&timestamp={now}&nonce=nonce-0000000006");
    let (s, v) = post(query, body.clone(), vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_HEADERS_MISSING")),
        "{v}"
    );
    let query = signed_query("hotline-appkey", now, "short", &body, SECRET);
    let (s, v) = post(query, body.clone(), vec![]).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_NONCE_INVALID")),
        "{v}"
    );
    // hub-v1 headers are not this partner's scheme.
    let (s, _) = post(
        String::new(),
        body.clone(),
        vec![("x-hub-app-id", "hotline-appkey")],
    )
    .await;
    assert_eq!(s, 401);
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(SECRET), "the secret is never logged");
}

/// An SM2 signature by npm sm-crypto (tests/node) of `data` with `key`: raw `r‖s` hex, or DER
/// hex with `der`.
fn sm_crypto_sign(key: &hub_security::sm::Sm2PrivateKey, data: &[u8], der: bool) -> String {
    let got: Vec<String> = node_peer::run(
        "sm_crypto_interop.js",
        &json!([{"op": "sm2_sign", "private_key": hex::encode(key.to_bytes()),
                 "public_key": key.public_key_hex(), "data": hex::encode(data), "der": der}]),
    );
    got[0].clone()
}

#[tokio::test]
async fn an_sm2_cert_partner_signing_with_npm_sm_crypto_pushes_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    adapters_with(dir.path(), "[auth]\nscheme = \"sm2-cert\"\n");
    let partner = hub_security::sm::Sm2PrivateKey::generate();
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nkey_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-sm2\"\npartner = \"hotline12345\"\nsm2_public_key = \"{}\"\n",
        repo().join("ops/dev-keyring.toml").display(),
        partner.public_key_hex(),
    );
    let serving = start_serving_env(dir.path(), &kafka(), &extra, &[]);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    let gateway = format!("http://127.0.0.1:{port}");
    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    // The adapter's `[auth]`: sm2-cert with every default (header placement, hex).
    let spec: hub_protocols::sm2_cert::Sm2CertSpec = serde_json::from_value(json!({})).unwrap();
    let client = reqwest::Client::new();
    // The partner's side: the canonical string of docs/auth-schemes.md (its construction is
    // checked against Python in hub-protocols' interop tests), signed by sm-crypto.
    let push = |nonce: &str, signed_body: &[u8], sent_body: Vec<u8>, der: bool| {
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let canonical = spec.canonical("POST", PATH, "", "hotline-sm2", &ts, nonce, signed_body);
        let req = client
            .post(format!("{gateway}{PATH}"))
            .header("content-type", "application/json")
            .header("X-App-Id", "hotline-sm2")
            .header("X-Timestamp", ts)
            .header("X-Nonce", nonce)
            .header("X-Signature", sm_crypto_sign(&partner, &canonical, der))
            .body(sent_body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, hub_answer(r.json().await.unwrap_or(Value::Null)))
        }
    };
    let (s, v) = push("sm-crypto-nonce-0001", &body, body.clone(), false).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (200, Some("ACCEPTED")),
        "raw r‖s: {v}"
    );
    let (s, v) = push("sm-crypto-nonce-0002", &body, body.clone(), true).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ACCEPTED")), "DER: {v}");
    // Signed over one body, sent with another: refused.
    let mut changed = body.clone();
    changed.push(b' ');
    let (s, v) = push("sm-crypto-nonce-0003", &body, changed, false).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
}

#[tokio::test]
async fn an_oauth2_partner_gets_a_token_and_pushes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    adapters_with(
        dir.path(),
        "[auth]\nscheme = \"oauth2-client-credentials\"\n",
    );
    let port = free_port();
    let extra = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nplain_http = true\nkey_ring = \"{}\"\n\
         [[gateway.apps]]\napp_id = \"hotline-client\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n\
         [[gateway.apps]]\napp_id = \"elicense-client\"\npartner = \"elicense\"\nhmac_secret = \"{SECRET}\"\n",
        repo().join("ops/dev-keyring.toml").display(),
    );
    let serving = start_serving_env(dir.path(), &kafka(), &extra, &[]);
    wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    let gateway = format!("http://127.0.0.1:{port}");
    let doc = openapi(&gateway).await;
    let op = &doc["paths"][PATH]["post"];
    assert_eq!(op["x-hub-auth"]["scheme"], "oauth2-client-credentials");
    assert_eq!(op["security"], json!([{"hotline12345.oauth2": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["hotline12345.oauth2"]["flows"]["clientCredentials"]
            ["tokenUrl"],
        "/v1/oauth2/token"
    );
    assert!(doc["paths"]["/v1/oauth2/token"]["post"].is_object());
    let client = reqwest::Client::new();
    let token_request = |form: String, basic: Option<(&str, &str)>| {
        let mut req = client
            .post(format!("{gateway}/v1/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // RFC 6749 §4.4 with HTTP Basic client authentication.
    let (s, v) = token_request(
        "grant_type=client_credentials".into(),
        Some(("hotline-client", SECRET)),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let token = v["access_token"].as_str().unwrap().to_string();
    // A wrong secret, an unknown client and a client of a partner without the scheme answer alike.
    let (s1, v1) = token_request(
        "grant_type=client_credentials".into(),
        Some(("hotline-client", "wrong-secret-0123456789")),
    )
    .await;
    let (s2, v2) = token_request(
        format!("grant_type=client_credentials&client_id=nobody&client_secret={SECRET}"),
        None,
    )
    .await;
    let (s3, v3) = token_request(
        "grant_type=client_credentials".into(),
        Some(("elicense-client", SECRET)),
    )
    .await;
    assert_eq!(
        (s1, &v1),
        (
            401,
            &json!({"error": "invalid_client", "error_description": "客户端认证失败 / client authentication failed"})
        )
    );
    assert_eq!((s2, &v2), (s1, &v1));
    assert_eq!((s3, &v3), (s1, &v1));
    let (s, v) = token_request(
        "grant_type=password".into(),
        Some(("hotline-client", SECRET)),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let body = std::fs::read(
        repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json"),
    )
    .unwrap();
    let push = |auth: String| {
        let req = client
            .post(format!("{gateway}{PATH}"))
            .header("content-type", "application/json")
            .header("authorization", auth)
            .body(body.clone());
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, hub_answer(r.json().await.unwrap_or(Value::Null)))
        }
    };
    let (s, v) = push(format!("Bearer {token}")).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ACCEPTED")), "{v}");
    // A token is good for several requests until it expires.
    let (s, _) = push(format!("Bearer {token}")).await;
    assert_eq!(s, 200);
    // Forged, foreign-keyed and expired tokens are refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('0') { '1' } else { '0' });
    let (s, v) = push(format!("Bearer {forged}")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    let foreign = hub_protocols::oauth2::issue(
        "hotline-client",
        b"not-the-clients-secret",
        chrono::Utc::now().timestamp_millis() + 60_000,
    );
    let (s, v) = push(format!("Bearer {foreign}")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID")),
        "{v}"
    );
    let expired = hub_protocols::oauth2::issue(
        "hotline-client",
        SECRET.as_bytes(),
        chrono::Utc::now().timestamp_millis() - 1,
    );
    let (s, v) = push(format!("Bearer {expired}")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_TOKEN_EXPIRED")),
        "{v}"
    );
    let (s, v) = push(String::new()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_HEADERS_MISSING")),
        "{v}"
    );
    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "{logs}");
    assert!(!logs.contains(&token), "tokens are never logged");
}

#[test]
fn check_names_file_line_and_key_of_a_bad_auth_section() {
    let dir = tempfile::tempdir().unwrap();
    let adapters = adapters_with(
        dir.path(),
        "[auth]\nscheme = \"app-key-sign\"\ndigest = \"sha1\"\n",
    );
    let manifest = adapters.join("hotline12345/adapter.toml");
    let line = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("digest = \"sha1\""))
        .unwrap()
        + 1;
    let config = write_config(
        dir.path(),
        &format!(
            "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n[contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n",
            repo().join("contracts/schemas").display(),
            repo().join("mappings").display()
        ),
    );
    let out = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let expected = format!(
        "{}:{line}: key `auth.digest`: unknown variant `sha1`",
        manifest.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );

    // MD5 is a warning, not a failure.
    std::fs::remove_dir_all(&adapters).unwrap();
    adapters_with(
        dir.path(),
        "[auth]\nscheme = \"app-key-sign\"\ndigest = \"md5\"\n",
    );
    let out = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("key `auth.digest`: md5 is a legacy digest"),
        "{stderr}"
    );

    // A partner whose credential does not fit its adapter's scheme.
    std::fs::remove_dir_all(&adapters).unwrap();
    adapters_with(dir.path(), "[auth]\nscheme = \"sm2-cert\"\n");
    let config = write_config(
        dir.path(),
        &format!(
            "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n[contracts]\ndir = \"{}\"\n[mappings]\ndir = \"{}\"\n\
             [gateway]\nplain_http = true\nkey_ring = \"{}\"\n\
             [partners.hotline12345]\nbase_url = \"http://127.0.0.1:1\"\napp_id = \"hub\"\nhmac_secret = \"a-secret-of-enough-length\"\n",
            repo().join("contracts/schemas").display(),
            repo().join("mappings").display(),
            repo().join("ops/dev-keyring.toml").display(),
        ),
    );
    let out = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("partners.hotline12345") && stderr.contains("sm2-cert"),
        "{stderr}"
    );
}
