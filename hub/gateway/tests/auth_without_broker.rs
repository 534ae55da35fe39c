//! Authentication refusals of the real gateway router, served on 127.0.0.1, with a state store
//! but no reachable broker (every case here is refused before anything is produced): the
//! hub-v1 fixes of issue #16 and an app-key-sign partner's refusals, and the OAuth2 token
//! endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use hub_gateway::{Dependencies, Gateway, GatewaySection, KeyFiles};
use hub_security::signing::SigningCredential;
use serde_json::Value;

const SECRET: &str = "test-only-hmac-secret-0123456789";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn gateway(dir: &std::path::Path) -> String {
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let mappings = hub_mapping::MappingSet::load(&repo().join("mappings"), &catalog).unwrap();
    let config: GatewaySection = toml::from_str(&format!(
        "plain_http = true\nkey_ring = \"{}\"\n\
         [[apps]]\napp_id = \"hotline-test\"\npartner = \"hotline12345\"\nhmac_secret = \"{SECRET}\"\n\
         [[apps]]\napp_id = \"licence-key\"\npartner = \"elicense\"\nhmac_secret = \"{SECRET}\"\n\
         [[apps]]\napp_id = \"carrier-client\"\npartner = \"carrier\"\nhmac_secret = \"{SECRET}\"\n",
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
        client_id: "auth-test".into(),
        compression: hub_config::sections::Compression::Lz4,
        delivery_timeout_ms: 1_000,
        linger_ms: 0,
        session_timeout_ms: 10_000,
        replication_factor: 1,
        librdkafka: Default::default(),
    })
    .unwrap();
    let auth_of = |t: &str| {
        let table: toml::Table = toml::from_str(t).unwrap();
        hub_protocols::AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
            .unwrap()
            .0
    };
    let mut auth = HashMap::new();
    auth.insert(
        "elicense".to_string(),
        auth_of("[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sm3\""),
    );
    auth.insert(
        "carrier".to_string(),
        auth_of("[auth]\nscheme = \"oauth2-client-credentials\""),
    );
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
            auth,
            config_dir: dir.to_path_buf(),
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Arc::new(gw).router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn post(url: String, headers: Vec<(String, String)>, body: &[u8]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    // 12345's routes answer in the platform's envelope: the hub's code is `data.hub_code`.
    let v = match v.get("data").and_then(|d| d.get("hub_code")) {
        Some(code) => {
            let mut d = v["data"].clone();
            d["code"] = code.clone();
            d
        }
        None => v,
    };
    (status, v)
}

fn signed(app: &str, ts: i64, extra: &[(&str, &str)], body: &[u8]) -> Vec<(String, String)> {
    SigningCredential::HmacSm3 {
        secret: SECRET.as_bytes().to_vec(),
    }
    .sign_request_with(
        app,
        "POST",
        "/v1/hotline12345/dispatch_json",
        "",
        body,
        ts,
        extra,
    )
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test]
async fn hub_v1_refusals_do_not_leak_and_do_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let base = gateway(dir.path()).await;
    let url = format!("{base}/v1/hotline12345/dispatch_json");
    let body = br#"{"gdbh":"GD1"}"#;
    let now = chrono::Utc::now().timestamp_millis();
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    // Unknown app and wrong secret: the same status and body.
    let (s1, v1) = post(url.clone(), signed("nobody", now, &[], body), body).await;
    let mut wrong = signed("hotline-test", now, &[], body);
    for (k, v) in &mut wrong {
        if k == "x-hub-signature" {
            v.replace_range(0..2, if v.starts_with("00") { "11" } else { "00" });
        }
    }
    let (s2, v2) = post(url.clone(), wrong, body).await;
    assert_eq!(s1, 401);
    assert_eq!(v1["code"], "AUTH_SIGNATURE_INVALID");
    assert_eq!((s1, strip(v1)), (s2, strip(v2)));
    // Timestamps at the ends of i64: out of the window, no overflow.
    for ts in [i64::MIN, i64::MAX, i64::MIN + 1] {
        let (s, v) = post(url.clone(), signed("hotline-test", ts, &[], body), body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("AUTH_TIMESTAMP_OUT_OF_WINDOW"))
        );
    }
    // A steering header outside the signature, and a changed signed one.
    let mut h = signed("hotline-test", now, &[], body);
    h.push(("x-correlation-id".into(), "case-1".into()));
    let (s, v) = post(url.clone(), h, body).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("AUTH_HEADER_UNSIGNED")));
    let mut h = signed(
        "hotline-test",
        now,
        &[("X-Hub-Encrypt-Response", "true")],
        body,
    );
    h.push(("x-hub-encrypt-response".into(), "false".into()));
    let (s, v) = post(url.clone(), h, body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID"))
    );
    let h = signed(
        "hotline-test",
        now,
        &[("X-Partner-Message-Id", "m-1")],
        body,
    );
    let (s, v) = post(url.clone(), h, body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNED_HEADERS_INVALID"))
    );
}

#[tokio::test]
async fn app_key_sign_and_oauth2_partners_are_refused_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let base = gateway(dir.path()).await;
    let url = format!("{base}/v1/elicense/issued");
    let now = chrono::Utc::now().timestamp_millis();
    let (s, v) = post(url.clone(), vec![], b"{}").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("AUTH_HEADERS_MISSING")));
    let q = |key: &str, ts: i64, sign: &str| {
        format!("{url}?appKey={key}&timestamp={ts}&nonce=abcdef0123456789&sign={sign}")
    };
    let (s1, v1) = post(q("licence-key", now, "00"), vec![], b"{}").await;
    let (s2, v2) = post(q("nobody", now, "00"), vec![], b"{}").await;
    assert_eq!(
        (s1, v1["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID"))
    );
    assert_eq!(
        (s2, v2["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID"))
    );
    let (s, v) = post(q("licence-key", i64::MIN, "00"), vec![], b"{}").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_TIMESTAMP_OUT_OF_WINDOW"))
    );

    // OAuth2: the token endpoint, then the token on the partner's route (refused only by the
    // broker-less produce, i.e. after authentication: not a 401).
    let token_url = format!("{base}/v1/oauth2/token");
    let form = |id: &str, secret: &str| {
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}")
    };
    let h = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let (s, v) = post(
        token_url.clone(),
        h.clone(),
        form("carrier-client", SECRET).as_bytes(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = v["access_token"].as_str().unwrap().to_string();
    let (sa, va) = post(
        token_url.clone(),
        h.clone(),
        form("carrier-client", "nope").as_bytes(),
    )
    .await;
    let (sb, vb) = post(
        token_url.clone(),
        h.clone(),
        form("nobody", SECRET).as_bytes(),
    )
    .await;
    let (sc, vc) = post(
        token_url.clone(),
        h.clone(),
        form("hotline-test", SECRET).as_bytes(),
    )
    .await;
    assert_eq!((sa, &va["error"]), (401, &Value::from("invalid_client")));
    assert_eq!((sa, &va), (sb, &vb));
    assert_eq!(
        (sa, &va),
        (sc, &vc),
        "a client of a partner without the scheme"
    );
    let bearer = |t: &str| vec![("authorization".to_string(), format!("Bearer {t}"))];
    let route = format!("{base}/v1/carrier/anything");
    let (s, v) = post(route.clone(), bearer(&token), b"{}").await;
    assert!(s != 401, "a valid token authenticates: {s} {v}");
    let expired = hub_protocols::oauth2::issue("carrier-client", SECRET.as_bytes(), now - 1);
    let (s, v) = post(route.clone(), bearer(&expired), b"{}").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("AUTH_TOKEN_EXPIRED")));
    let foreign = hub_protocols::oauth2::issue("carrier-client", b"another-secret", now + 60_000);
    let (s, v) = post(route, bearer(&foreign), b"{}").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("AUTH_SIGNATURE_INVALID"))
    );
}
