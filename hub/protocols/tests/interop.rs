//! Every scheme both ways against an independent implementation: `tests/python/partner_auth.py`
//! (Python `hmac`/`hashlib` and PyPI `gmssl`), and OpenSSL for a DER SM2 signature made with a
//! real X.509 certificate's key.

use hub_protocols::ak_sk::{AkSkSigner, AkSkVerifier};
use hub_protocols::app_key_sign::{AppKeySignSpec, AppKeySigner};
use hub_protocols::hub_v1::{HubV1Signer, HubV1Verifier};
use hub_protocols::sm2_cert::Sm2CertSpec;
use hub_protocols::{
    AuthSpec, Credentials, InboundRequest, InboundVerifier, OutboundCredentials, OutboundRequest,
    OutboundSigner, Refusal,
};
use hub_security::sm::Sm2PrivateKey;
use serde_json::{json, Value};

#[path = "../../../tests/python/peer.rs"]
mod peer;

fn python(ops: Value) -> Vec<Value> {
    peer::run("partner_auth.py", &ops)
}

fn spec(toml_text: &str) -> AuthSpec {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
        .unwrap()
        .0
}

fn lower(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect()
}

fn request(query: &str, body: &str) -> OutboundRequest {
    OutboundRequest {
        method: "POST".into(),
        host: "partner.example".into(),
        path: "/api/notice/issue".into(),
        query: query.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

const SECRET: &str = "app-secret-0123456789";

fn app_key(digest: &str, placement: &str, body: &str, extra: &str) -> AppKeySignSpec {
    match spec(&format!(
        "[auth]\nscheme = \"app-key-sign\"\ndigest = \"{digest}\"\nplacement = \"{placement}\"\nbody = \"{body}\"\n{extra}"
    )) {
        AuthSpec::AppKeySign(s) => s,
        other => panic!("{other:?}"),
    }
}

/// The parameters of a signed outbound request, as a partner would read them.
fn params_of(req: &OutboundRequest, s: &AppKeySignSpec) -> Vec<(String, String)> {
    let mut p = hub_protocols::app_key_sign::decode_pairs(&req.query);
    match s.placement {
        hub_protocols::app_key_sign::Placement::Form => p.extend(
            hub_protocols::app_key_sign::decode_pairs(std::str::from_utf8(&req.body).unwrap()),
        ),
        hub_protocols::app_key_sign::Placement::Json => {
            let v: Value = serde_json::from_slice(&req.body).unwrap();
            for (k, v) in v.as_object().unwrap() {
                if let Some(s) = v.as_str() {
                    p.push((k.clone(), s.to_string()));
                } else if v.is_number() || v.is_boolean() {
                    p.push((k.clone(), v.to_string()));
                }
            }
        }
        hub_protocols::app_key_sign::Placement::Headers => {
            for n in [
                &s.app_key_param,
                &s.timestamp_param,
                &s.nonce_param,
                &s.sign_param,
            ] {
                if let Some(v) = req.header(n) {
                    p.push((n.clone(), v.to_string()));
                }
            }
        }
        hub_protocols::app_key_sign::Placement::Query => {}
    }
    p
}

#[tokio::test]
async fn app_key_signatures_agree_with_python_for_every_digest_and_placement() {
    let cases = [
        ("hmac-sm3", "query", "digest", ""),
        (
            "sm3",
            "query",
            "raw",
            "signature_case = \"upper\"\nsecret_mode = \"wrap\"",
        ),
        ("sha256", "headers", "digest", "key_case = \"lower\""),
        ("hmac-sha256", "json", "fields", "order = [\"appKey\"]"),
        ("md5", "form", "none", "exclude = [\"ignored\"]"),
    ];
    for (digest, placement, body_part, extra) in cases {
        let s = app_key(digest, placement, body_part, extra);
        let body = match placement {
            "form" => "noticeNo=3100001&payer=%E5%BC%A0%E4%B8%89&ignored=1&empty=",
            _ => r#"{"noticeNo":"3100001","amount":"12.50","items":[1]}"#,
        };
        // Hub → partner: the hub signs, Python recomputes from what is sent.
        let signer = AppKeySigner::new(
            s.clone(),
            OutboundCredentials {
                app_id: "hub-app-key".into(),
                secret: Some(SECRET.as_bytes().to_vec()),
                ..Default::default()
            },
        )
        .unwrap();
        let mut req = request("lang=zh-CN&q=%E5%B7%A5%E5%8D%95", body);
        signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
        let mut params = params_of(&req, &s);
        match body_part {
            "digest" => params.push((
                "bodyDigest".into(),
                hex::encode(match digest {
                    "sha256" | "hmac-sha256" => hub_protocols::digest::sha256(&req.body).to_vec(),
                    _ => hub_security::sm::sm3(&req.body).to_vec(),
                }),
            )),
            "raw" => params.push((
                "bodyDigest".into(),
                String::from_utf8(req.body.clone()).unwrap(),
            )),
            _ => {}
        }
        let sent_sign = params
            .iter()
            .find(|(n, _)| n == "sign")
            .map(|(_, v)| v.clone())
            .expect("a sign parameter");
        let got = python(json!([{
            "op": "app_key_sign", "params": params, "digest": digest, "secret": SECRET,
            "exclude": s.exclude, "key_case": match s.key_case {
                hub_protocols::app_key_sign::Case::Lower => "lower",
                hub_protocols::app_key_sign::Case::Upper => "upper",
                hub_protocols::app_key_sign::Case::Keep => "keep" },
            "order": s.order,
            "secret_mode": if extra.contains("wrap") { "wrap" } else { "append" },
            "upper": extra.contains("upper"),
        }]));
        assert_eq!(
            got[0]["signature"].as_str().unwrap(),
            sent_sign,
            "{digest}/{placement}: Python computes another signature over {}",
            got[0]["string"]
        );

        // Partner → hub: the hub verifies what the hub-side signer produced (same bytes a
        // partner sends) and refuses a changed parameter.
        let mut headers = lower(&req.headers);
        headers.push(("host".into(), "hub".into()));
        let inbound = InboundRequest {
            method: "POST",
            path: &req.path,
            query: &req.query,
            headers: &headers,
            body: &req.body,
        };
        let claim = s.claim(&inbound).unwrap();
        assert_eq!(claim.app_id, "hub-app-key");
        let creds = Credentials {
            secret: Some(SECRET.as_bytes().to_vec()),
            ..Default::default()
        };
        assert_eq!(
            s.verify(&inbound, &claim, &creds),
            Ok(()),
            "{digest}/{placement}"
        );
        let changed_query = req.query.replace("lang=zh-CN", "lang=en");
        let changed = InboundRequest {
            query: &changed_query,
            ..inbound
        };
        assert_eq!(
            s.verify(&changed, &claim, &creds),
            Err(Refusal::Signature),
            "{digest}/{placement}"
        );
    }
}

#[test]
fn a_request_signed_by_python_passes_app_key_sign() {
    // The partner signs its push with HMAC-SM3 over the query parameters and the SM3 of the
    // body, in Python; the hub verifies it.
    let s = app_key("hmac-sm3", "query", "digest", "");
    let body = r#"{"noticeNo":"3100001","paid":"12.50"}"#;
    let params = json!([
        ["appKey", "finance-nontax"],
        ["timestamp", "1795836600000"],
        ["nonce", "a1b2c3d4e5f60718"],
        ["payDate", "2026-11-22"],
        ["bodyDigest", hub_security::sm::sm3_hex(body.as_bytes())],
    ]);
    let got = python(
        json!([{ "op": "app_key_sign", "params": params, "digest": "hmac-sm3", "secret": SECRET }]),
    );
    let query = format!(
        "appKey=finance-nontax&timestamp=1795836600000&nonce=a1b2c3d4e5f60718&payDate=2026-11-22&sign={}",
        got[0]["signature"].as_str().unwrap()
    );
    let headers = vec![];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/finance/payment",
        query: &query,
        headers: &headers,
        body: body.as_bytes(),
    };
    let claim = s.claim(&inbound).unwrap();
    let creds = Credentials {
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    };
    assert_eq!(s.verify(&inbound, &claim, &creds), Ok(()));
    let forged = InboundRequest {
        body: br#"{"noticeNo":"3100001","paid":"1250.00"}"#,
        ..inbound
    };
    assert_eq!(s.verify(&forged, &claim, &creds), Err(Refusal::Signature));
}

#[tokio::test]
async fn sigv4_agrees_with_python_both_ways() {
    let spec = match spec("[auth]\nscheme = \"ak-sk\"\nregion = \"cn-north-1\"\nservice = \"execute-api\"\nsign_headers = [\"content-type\"]") {
        AuthSpec::AkSk(s) => s,
        other => panic!("{other:?}"),
    };
    let signer = AkSkSigner::new(
        spec.clone(),
        OutboundCredentials {
            app_id: "AKIDHUB".into(),
            secret: Some(b"hub-secret-access-key".to_vec()),
            ..Default::default()
        },
    )
    .unwrap();
    let body = r#"{"licenceNo":"310101-L-1","holder":"张三"}"#;
    let mut req = request("b=2&a=%E5%B7%A5&c=a+b", body);
    req.host = "127.0.0.1:8443".into();
    signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
    let auth =
        hub_protocols::ak_sk::parse_authorization(req.header("authorization").unwrap()).unwrap();
    let got = python(json!([{
        "op": "sigv4", "method": "POST", "path": req.path, "query": req.query,
        "headers": [["Host", req.host], ["Content-Type", "application/json"], ["X-Amz-Date", req.header("x-amz-date").unwrap()]],
        "body": body, "amz_date": req.header("x-amz-date").unwrap(),
        "region": "cn-north-1", "service": "execute-api", "secret": "hub-secret-access-key",
    }]));
    assert_eq!(
        got[0]["signature"].as_str().unwrap(),
        auth.signature,
        "Python verifies the hub's signature"
    );

    // Python signs a partner's push; the hub verifies it.
    let date = "20261122T003000Z";
    let got = python(json!([{
        "op": "sigv4", "method": "POST", "path": "/v1/carrier/notify", "query": "x=1",
        "headers": [["Host", "hub.example"], ["X-Amz-Date", date], ["X-Partner-Message-Id", "m-7"]],
        "body": body, "amz_date": date, "region": "cn-north-1", "service": "execute-api",
        "secret": "partner-secret",
    }]));
    let authz = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDPARTNER/20261122/cn-north-1/execute-api/aws4_request, SignedHeaders={}, Signature={}",
        got[0]["signed_headers"].as_str().unwrap(),
        got[0]["signature"].as_str().unwrap()
    );
    let headers = vec![
        ("host".to_string(), "hub.example".to_string()),
        ("x-amz-date".to_string(), date.to_string()),
        ("x-partner-message-id".to_string(), "m-7".to_string()),
        ("authorization".to_string(), authz),
    ];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/carrier/notify",
        query: "x=1",
        headers: &headers,
        body: body.as_bytes(),
    };
    let verifier = AkSkVerifier { spec };
    let claim = verifier.claim(&inbound).unwrap();
    assert_eq!(claim.app_id, "AKIDPARTNER");
    let creds = Credentials {
        secret: Some(b"partner-secret".to_vec()),
        ..Default::default()
    };
    assert_eq!(verifier.verify(&inbound, &claim, &creds), Ok(()));
}

#[tokio::test]
async fn hub_v1_agrees_with_python_both_ways() {
    let signer = HubV1Signer::new(OutboundCredentials {
        app_id: "water-bureau-hub".into(),
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    })
    .unwrap();
    let body = r#"{"gdbh":"GD1"}"#;
    let mut req = request("b=2&a=1", body);
    req.headers
        .push(("X-Idempotency-Key".into(), "msg-1".into()));
    signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
    let signed: Vec<Value> = req
        .header("x-hub-signed-headers")
        .unwrap()
        .split(';')
        .map(|n| json!([n, req.header(n).unwrap()]))
        .collect();
    let got = python(json!([{
        "op": "hub_v1", "method": "POST", "path": req.path, "query": req.query,
        "app_id": "water-bureau-hub", "timestamp": 1_795_836_600_000_i64,
        "nonce": req.header("x-hub-nonce").unwrap(), "body": body, "headers": signed,
        "secret": SECRET,
    }]));
    assert_eq!(
        got[0]["signature"].as_str().unwrap(),
        req.header("x-hub-signature").unwrap()
    );

    let got = python(json!([{
        "op": "hub_v1", "method": "POST", "path": "/v1/p/m", "query": "",
        "app_id": "partner-app", "timestamp": 1_795_836_600_000_i64, "nonce": "0123456789abcdef",
        "body": body, "headers": [["X-Partner-Message-Id", "pm-1"]], "secret": SECRET,
    }]));
    let headers = vec![
        ("x-hub-app-id".to_string(), "partner-app".to_string()),
        ("x-hub-timestamp".to_string(), "1795836600000".to_string()),
        ("x-hub-nonce".to_string(), "0123456789abcdef".to_string()),
        ("x-hub-signature-method".to_string(), "HMAC-SM3".to_string()),
        (
            "x-hub-signature".to_string(),
            got[0]["signature"].as_str().unwrap().to_string(),
        ),
        (
            "x-hub-signed-headers".to_string(),
            "x-partner-message-id".to_string(),
        ),
        ("x-partner-message-id".to_string(), "pm-1".to_string()),
    ];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/p/m",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let claim = HubV1Verifier.claim(&inbound).unwrap();
    let creds = Credentials {
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    };
    assert_eq!(HubV1Verifier.verify(&inbound, &claim, &creds), Ok(()));
}

fn xy(key: &Sm2PrivateKey) -> String {
    key.public_key_hex()[2..].to_string()
}

fn sm2(toml_text: &str) -> Sm2CertSpec {
    match spec(&format!("[auth]\nscheme = \"sm2-cert\"\n{toml_text}")) {
        AuthSpec::Sm2Cert(s) => s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sm2_cert_headers_and_json_envelopes_agree_with_gmssl() {
    let hub_key = Sm2PrivateKey::generate();
    // Header placement, hub → partner: gmssl verifies the hub's signature of the canonical string.
    let s = sm2("");
    let signer = AuthSpec::Sm2Cert(s.clone())
        .signer(OutboundCredentials {
            app_id: "hub".into(),
            sm2_private_key: Some(hub_key.clone()),
            ..Default::default()
        })
        .unwrap();
    let body = r#"{"licenceNo":"L-1"}"#;
    let mut req = request("a=1", body);
    signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
    let got = python(json!([
        {"op": "sm2_canonical", "method": "POST", "path": req.path, "query": "a=1", "app_id": "hub",
         "timestamp": req.header("x-timestamp").unwrap(), "nonce": req.header("x-nonce").unwrap(), "body": body},
    ]));
    let canonical = got[0].as_str().unwrap().to_string();
    let got = python(json!([
        {"op": "sm2_verify", "public_key": xy(&hub_key), "signature": req.header("x-signature").unwrap(), "data": canonical},
    ]));
    assert_eq!(got[0], "ok", "gmssl verifies the hub's SM2 signature");

    // JSON envelope, partner → hub: gmssl signs the canonical JSON of `data`.
    let partner = Sm2PrivateKey::generate();
    let s = sm2("signature_in = \"json\"\ndata_pointer = \"/data\"\nsignature_pointer = \"/sign\"\napp_id_pointer = \"/data/appId\"\ntimestamp_pointer = \"/data/timestamp\"\nnonce_pointer = \"/data/nonce\"");
    let data = json!({"appId": "elicense-lib", "timestamp": "1795836600000", "nonce": "n0nce-0000-0001",
                      "licence": {"no": "310101-L-1", "holder": "张三", "pages": [1, 2]}});
    let got = python(json!([{ "op": "canonical_json", "value": data }]));
    let canonical = got[0].as_str().unwrap().to_string();
    assert_eq!(
        canonical.as_bytes(),
        hub_protocols::canonical_json::to_vec(&data),
        "the hub's canonical JSON is Python's"
    );
    let got = python(
        json!([{ "op": "sm2_sign", "private_key": hex::encode(partner.to_bytes()), "public_key": xy(&partner), "data": canonical }]),
    );
    let envelope = json!({"data": data, "sign": got[0]});
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let headers = vec![];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/elicense/changed",
        query: "",
        headers: &headers,
        body: &bytes,
    };
    let claim = s.claim(&inbound).unwrap();
    assert_eq!(claim.app_id, "elicense-lib");
    let creds = Credentials {
        sm2_public_key: Some(partner.public_key()),
        ..Default::default()
    };
    assert_eq!(s.verify(&inbound, &claim, &creds), Ok(()));
    let mut forged = envelope.clone();
    forged["data"]["licence"]["holder"] = json!("李四");
    let forged = serde_json::to_vec(&forged).unwrap();
    let inbound_forged = InboundRequest {
        body: &forged,
        ..inbound
    };
    assert_eq!(
        s.verify(&inbound_forged, &claim, &creds),
        Err(Refusal::Signature)
    );
}

#[test]
fn an_openssl_der_signature_verifies_with_the_key_of_its_x509_certificate() {
    // Made with OpenSSL 3 (tests/fixtures/README.md): an SM2 key, a self-signed SM2/SM3
    // certificate, and `openssl dgst -sm3 -sign -sigopt distid:1234567812345678` of message.txt (DER).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let cert = std::fs::read(format!("{dir}/partner-sm2.test-only.crt")).unwrap();
    let der_sig = std::fs::read(format!("{dir}/message.sig.der")).unwrap();
    let message = std::fs::read(format!("{dir}/message.txt")).unwrap();
    let key = hub_protocols::sm2_public_key_of_certificate(&cert).unwrap();
    assert_eq!(key.len(), 65);
    let s = sm2("signed = \"body\"\nformat = \"der\"\nencoding = \"base64\"");
    use base64::Engine as _;
    let headers = vec![
        ("x-app-id".to_string(), "partner".to_string()),
        ("x-timestamp".to_string(), "1795836600000".to_string()),
        ("x-nonce".to_string(), "0123456789abcdef".to_string()),
        (
            "x-signature".to_string(),
            base64::engine::general_purpose::STANDARD.encode(&der_sig),
        ),
    ];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/p/m",
        query: "",
        headers: &headers,
        body: &message,
    };
    let claim = s.claim(&inbound).unwrap();
    let creds = Credentials {
        sm2_public_key: Some(key),
        ..Default::default()
    };
    assert_eq!(s.verify(&inbound, &claim, &creds), Ok(()));
    let other = b"{\"amount\":\"99.99\",\"noticeNo\":\"3100001\"}".to_vec();
    let changed = InboundRequest {
        body: &other,
        ..inbound
    };
    assert_eq!(s.verify(&changed, &claim, &creds), Err(Refusal::Signature));
    assert!(hub_protocols::sm2_public_key_of_certificate(b"not a certificate").is_err());
}

#[test]
fn auth_sections_are_checked_key_by_key() {
    let parse = |t: &str| {
        let table: toml::Table = toml::from_str(t).unwrap();
        AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
    };
    assert_eq!(parse("").unwrap().0, AuthSpec::HubV1);
    let e = parse("[auth]\nscheme = \"kerberos\"").unwrap_err();
    assert_eq!(e[0].key, "auth.scheme");
    let e = parse("[auth]\nscheme = \"app-key-sign\"\ndigest = \"sha1\"").unwrap_err();
    assert_eq!(e[0].key, "auth.digest", "{e:?}");
    let e = parse("[auth]\nscheme = \"app-key-sign\"\ndigest = \"sm3\"\nsalt = 1").unwrap_err();
    assert_eq!(e[0].key, "auth.salt", "{e:?}");
    let e = parse("[auth]\nscheme = \"app-key-sign\"").unwrap_err();
    assert_eq!(e[0].key, "auth.digest", "{e:?}");
    let (_, warnings) = parse("[auth]\nscheme = \"app-key-sign\"\ndigest = \"md5\"").unwrap();
    assert!(warnings.iter().any(|w| w.warning && w.key == "auth.digest"));
    let e = parse("[auth]\nscheme = \"app-key-sign\"\ndigest = \"sm3\"\nplacement = \"json\"")
        .unwrap_err();
    assert_eq!(e[0].key, "auth.body");
    let e =
        parse("[auth]\nscheme = \"ak-sk\"\nregion = \"Bad Region\"\nservice = \"s3\"").unwrap_err();
    assert_eq!(e[0].key, "auth.region");
    let e = parse("[auth]\nscheme = \"sm2-cert\"\ndata_pointer = \"data\"").unwrap_err();
    assert_eq!(e[0].key, "auth.data_pointer");
    let e = parse("[auth]\nscheme = \"hub-v1\"\ndigest = \"sm3\"").unwrap_err();
    assert_eq!(e[0].key, "auth.digest");
    // Debug output never shows a secret.
    let creds = OutboundCredentials {
        app_id: "a".into(),
        secret: Some(b"do-not-print-me".to_vec()),
        ..Default::default()
    };
    assert!(!format!("{creds:?}").contains("do-not-print-me"));
    let creds = Credentials {
        secret: Some(b"do-not-print-me".to_vec()),
        ..Default::default()
    };
    assert!(!format!("{creds:?}").contains("do-not-print-me"));
}

// npm sm-crypto (tests/node), the second independent peer, wherever a scheme uses SM2 or SM3.
// The canonical strings come from the hub (their construction is checked against Python
// above); sm-crypto does the SM3, HMAC-SM3 and SM2 over their bytes.

#[path = "../../../tests/node/peer.rs"]
mod node_peer;

fn sm_crypto(ops: Value) -> Vec<String> {
    node_peer::run("sm_crypto_interop.js", &ops)
}

fn sm_crypto_sign(key: &Sm2PrivateKey, data: &[u8], der: bool) -> String {
    sm_crypto(
        json!([{"op": "sm2_sign", "private_key": hex::encode(key.to_bytes()),
                      "public_key": key.public_key_hex(), "data": hex::encode(data), "der": der}]),
    )
    .remove(0)
}

fn sm_crypto_verify(key: &Sm2PrivateKey, data: &[u8], signature: &str, der: bool) -> String {
    sm_crypto(
        json!([{"op": "sm2_verify", "public_key": key.public_key_hex(),
                      "signature": signature, "data": hex::encode(data), "der": der}]),
    )
    .remove(0)
}

#[tokio::test]
async fn sm2_cert_agrees_with_npm_sm_crypto_both_ways_raw_and_der() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let hub_key = Sm2PrivateKey::generate();
    let body = r#"{"licenceNo":"L-1","holder":"张三"}"#;
    // Hub → partner, header placement: sm-crypto verifies the hub's signature of the canonical
    // string, raw r‖s in hex and DER in base64, and refuses it over another body.
    for (toml_text, der) in [
        ("", false),
        ("format = \"der\"\nencoding = \"base64\"", true),
    ] {
        let s = sm2(toml_text);
        let signer = AuthSpec::Sm2Cert(s.clone())
            .signer(OutboundCredentials {
                app_id: "hub".into(),
                sm2_private_key: Some(hub_key.clone()),
                ..Default::default()
            })
            .unwrap();
        let mut req = request("b=2&a=1", body);
        signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
        let sent = req.header("x-signature").unwrap().to_string();
        let signature = if der {
            hex::encode(b64.decode(&sent).unwrap())
        } else {
            sent
        };
        let canonical = |body: &str| {
            s.canonical(
                "POST",
                &req.path,
                "b=2&a=1",
                "hub",
                req.header("x-timestamp").unwrap(),
                req.header("x-nonce").unwrap(),
                body.as_bytes(),
            )
        };
        assert_eq!(
            sm_crypto_verify(&hub_key, &canonical(body), &signature, der),
            "ok",
            "sm-crypto verifies the hub's signature (der: {der})"
        );
        assert_eq!(
            sm_crypto_verify(&hub_key, &canonical("{}"), &signature, der),
            "bad",
            "not over another body (der: {der})"
        );
    }

    // Partner → hub, header placement: sm-crypto signs, raw and DER; the hub verifies either
    // whatever `format` says, and refuses a changed body.
    let partner = Sm2PrivateKey::generate();
    let s = sm2("");
    let canonical = s.canonical(
        "POST",
        "/v1/elicense/changed",
        "",
        "elicense-lib",
        "1795836600000",
        "n0nce-0000-0001",
        body.as_bytes(),
    );
    let creds = Credentials {
        sm2_public_key: Some(partner.public_key()),
        ..Default::default()
    };
    for der in [false, true] {
        let headers = vec![
            ("x-app-id".to_string(), "elicense-lib".to_string()),
            ("x-timestamp".to_string(), "1795836600000".to_string()),
            ("x-nonce".to_string(), "n0nce-0000-0001".to_string()),
            (
                "x-signature".to_string(),
                sm_crypto_sign(&partner, &canonical, der),
            ),
        ];
        let inbound = InboundRequest {
            method: "POST",
            path: "/v1/elicense/changed",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let claim = s.claim(&inbound).unwrap();
        assert_eq!(s.verify(&inbound, &claim, &creds), Ok(()), "der: {der}");
        let changed = InboundRequest {
            body: b"{}",
            ..inbound
        };
        assert_eq!(
            s.verify(&changed, &claim, &creds),
            Err(Refusal::Signature),
            "der: {der}"
        );
    }

    // Partner → hub, JSON envelope: sm-crypto signs the canonical JSON of `data`.
    let s = sm2("signature_in = \"json\"\ndata_pointer = \"/data\"\nsignature_pointer = \"/sign\"\napp_id_pointer = \"/data/appId\"\ntimestamp_pointer = \"/data/timestamp\"\nnonce_pointer = \"/data/nonce\"");
    let data = json!({"appId": "elicense-lib", "timestamp": "1795836600000", "nonce": "n0nce-0000-0002",
                      "licence": {"no": "310101-L-1", "holder": "张三", "pages": [1, 2]}});
    let signature = sm_crypto_sign(
        &partner,
        &hub_protocols::canonical_json::to_vec(&data),
        false,
    );
    let envelope = json!({"data": data, "sign": signature});
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let headers = vec![];
    let inbound = InboundRequest {
        method: "POST",
        path: "/v1/elicense/changed",
        query: "",
        headers: &headers,
        body: &bytes,
    };
    let claim = s.claim(&inbound).unwrap();
    assert_eq!(s.verify(&inbound, &claim, &creds), Ok(()));
    let mut forged = envelope.clone();
    forged["data"]["licence"]["holder"] = json!("李四");
    let forged = serde_json::to_vec(&forged).unwrap();
    let inbound_forged = InboundRequest {
        body: &forged,
        ..inbound
    };
    assert_eq!(
        s.verify(&inbound_forged, &claim, &creds),
        Err(Refusal::Signature)
    );
}

#[tokio::test]
async fn hub_v1_agrees_with_npm_sm_crypto_both_ways_hmac_sm3_and_sm2_sm3() {
    use hub_security::signing::{headers_to_sign, RequestParts, SignatureMethod};
    // Hub → partner: sm-crypto's own HMAC-SM3 over the canonical string is the hub's signature.
    let signer = HubV1Signer::new(OutboundCredentials {
        app_id: "water-bureau-hub".into(),
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    })
    .unwrap();
    let body = r#"{"gdbh":"GD1"}"#;
    let mut req = request("b=2&a=1", body);
    req.headers
        .push(("X-Idempotency-Key".into(), "msg-1".into()));
    signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
    let names: Vec<(&str, &str)> = req
        .header("x-hub-signed-headers")
        .unwrap()
        .split(';')
        .map(|n| (n, req.header(n).unwrap()))
        .collect();
    let signed_headers = headers_to_sign(&names);
    let parts = RequestParts {
        method: SignatureMethod::HmacSm3,
        http_method: "POST",
        path: &req.path,
        raw_query: &req.query,
        app_id: "water-bureau-hub",
        timestamp_ms: 1_795_836_600_000,
        nonce: req.header("x-hub-nonce").unwrap(),
        body: body.as_bytes(),
        signed_headers: &signed_headers,
    };
    let got = sm_crypto(json!([
        {"op": "hmac_sm3", "key": hex::encode(SECRET), "data": hex::encode(parts.canonical())},
        {"op": "sm3", "data": hex::encode(body)},
    ]));
    assert_eq!(got[0], req.header("x-hub-signature").unwrap());
    assert!(
        parts.canonical().contains(&got[1]),
        "the body's SM3 is sm-crypto's"
    );

    // Partner → hub: sm-crypto signs with HMAC-SM3 and with SM2-SM3; the hub verifies both and
    // refuses them over another body.
    let partner = Sm2PrivateKey::generate();
    let extra = vec![("x-partner-message-id".to_string(), "pm-1".to_string())];
    for method in [SignatureMethod::HmacSm3, SignatureMethod::Sm2Sm3] {
        let canonical = RequestParts {
            method,
            http_method: "POST",
            path: "/v1/p/m",
            raw_query: "",
            app_id: "partner-app",
            timestamp_ms: 1_795_836_600_000,
            nonce: "0123456789abcdef",
            body: body.as_bytes(),
            signed_headers: &extra,
        }
        .canonical();
        let signature = match method {
            SignatureMethod::HmacSm3 => sm_crypto(json!([
                {"op": "hmac_sm3", "key": hex::encode(SECRET), "data": hex::encode(&canonical)},
            ]))
            .remove(0),
            SignatureMethod::Sm2Sm3 => sm_crypto_sign(&partner, canonical.as_bytes(), false),
        };
        let headers = vec![
            ("x-hub-app-id".to_string(), "partner-app".to_string()),
            ("x-hub-timestamp".to_string(), "1795836600000".to_string()),
            ("x-hub-nonce".to_string(), "0123456789abcdef".to_string()),
            (
                "x-hub-signature-method".to_string(),
                method.as_str().to_string(),
            ),
            ("x-hub-signature".to_string(), signature),
            (
                "x-hub-signed-headers".to_string(),
                "x-partner-message-id".to_string(),
            ),
            ("x-partner-message-id".to_string(), "pm-1".to_string()),
        ];
        let inbound = InboundRequest {
            method: "POST",
            path: "/v1/p/m",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let claim = HubV1Verifier.claim(&inbound).unwrap();
        let creds = Credentials {
            secret: Some(SECRET.as_bytes().to_vec()),
            sm2_public_key: Some(partner.public_key()),
        };
        assert_eq!(
            HubV1Verifier.verify(&inbound, &claim, &creds),
            Ok(()),
            "{method:?}"
        );
        let changed = InboundRequest {
            body: b"{}",
            ..inbound
        };
        assert_eq!(
            HubV1Verifier.verify(&changed, &claim, &creds),
            Err(Refusal::Signature),
            "{method:?}"
        );
    }
}

#[tokio::test]
async fn app_key_sign_sm3_digests_agree_with_npm_sm_crypto() {
    // Hub → partner: over the string Python builds from what is sent (the string's rules are
    // checked above), sm-crypto's SM3 and HMAC-SM3 give the hub's signature.
    for (digest, body_part, extra) in [
        ("hmac-sm3", "digest", ""),
        (
            "sm3",
            "raw",
            "signature_case = \"upper\"\nsecret_mode = \"wrap\"",
        ),
        ("sm3", "digest", ""),
    ] {
        let s = app_key(digest, "query", body_part, extra);
        let body = r#"{"noticeNo":"3100001","amount":"12.50"}"#;
        let signer = AppKeySigner::new(
            s.clone(),
            OutboundCredentials {
                app_id: "hub-app-key".into(),
                secret: Some(SECRET.as_bytes().to_vec()),
                ..Default::default()
            },
        )
        .unwrap();
        let mut req = request("lang=zh-CN&q=%E5%B7%A5%E5%8D%95", body);
        signer.sign(&mut req, 1_795_836_600_000).await.unwrap();
        let mut params = params_of(&req, &s);
        let sent = params
            .iter()
            .find(|(n, _)| n == "sign")
            .map(|(_, v)| v.clone())
            .unwrap();
        let body_value = match body_part {
            "digest" => sm_crypto(json!([{"op": "sm3", "data": hex::encode(&req.body)}])).remove(0),
            _ => body.to_string(),
        };
        params.push(("bodyDigest".into(), body_value));
        let wrap = extra.contains("wrap");
        let got = python(json!([{
            "op": "app_key_sign", "params": params, "digest": digest, "secret": SECRET,
            "secret_mode": if wrap { "wrap" } else { "append" },
        }]));
        let string = got[0]["string"].as_str().unwrap();
        let op = match (digest, wrap) {
            ("hmac-sm3", _) => {
                json!({"op": "hmac_sm3", "key": hex::encode(SECRET), "data": hex::encode(string)})
            }
            (_, true) => {
                json!({"op": "sm3", "data": hex::encode(format!("{SECRET}{string}{SECRET}"))})
            }
            _ => json!({"op": "sm3", "data": hex::encode(format!("{string}&key={SECRET}"))}),
        };
        let ours = sm_crypto(json!([op])).remove(0);
        assert_eq!(
            ours,
            sent.to_ascii_lowercase(),
            "{digest}/{body_part}: sm-crypto computes another signature over {string}"
        );
    }
}
