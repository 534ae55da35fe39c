//! The worked examples of docs/auth-schemes.md, recomputed with the hub's code: if this test
//! fails, the page is wrong (the page's values were computed with tests/python/partner_auth.py).

use hub_protocols::ak_sk::{sigv4, SigV4Input};
use hub_protocols::{AuthSpec, Credentials, InboundRequest, InboundVerifier};
use serde_json::json;

const DOC: &str = include_str!("../../../docs/auth-schemes.md");

fn spec(text: &str) -> AuthSpec {
    let table: toml::Table = toml::from_str(text).unwrap();
    AuthSpec::parse(table.get("auth").and_then(|a| a.as_table()))
        .unwrap()
        .0
}

#[test]
fn the_app_key_sign_example_is_exact() {
    let AuthSpec::AppKeySign(s) = spec("[auth]\nscheme = \"app-key-sign\"\ndigest = \"hmac-sm3\"")
    else {
        panic!()
    };
    assert!(DOC.contains("scheme = \"app-key-sign\"\ndigest = \"hmac-sm3\""));
    let body = br#"{"noticeNo":"3100001","paid":"12.50"}"#;
    let digest = hub_security::sm::sm3_hex(body);
    let params: Vec<(String, String)> = [
        ("appKey", "finance-nontax"),
        ("timestamp", "1795836600000"),
        ("nonce", "a1b2c3d4e5f60718"),
        ("payDate", "2026-11-22"),
        ("bodyDigest", digest.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let string = s.string_to_sign(&params);
    let signature = s.signature(&string, b"test-secret-do-not-use");
    println!("{digest}\n{string}\n{signature}");
    assert!(DOC.contains(&format!("`bodyDigest`): `{digest}`")));
    assert!(DOC.contains(&format!("```text\n{string}\n```")));
    assert!(DOC.contains(&format!("`sign` = HMAC-SM3: `{signature}`")));
    // And it verifies as the page's request.
    let query = format!(
        "appKey=finance-nontax&timestamp=1795836600000&nonce=a1b2c3d4e5f60718&payDate=2026-11-22&sign={signature}"
    );
    let request = InboundRequest {
        method: "POST",
        path: "/v1/finance_nontax/payment",
        query: &query,
        headers: &[],
        body,
    };
    let claim = s.claim(&request).unwrap();
    let creds = Credentials {
        secret: Some(b"test-secret-do-not-use".to_vec()),
        ..Default::default()
    };
    assert_eq!(s.verify(&request, &claim, &creds), Ok(()));
}

#[test]
fn the_ak_sk_example_is_exact() {
    let body = br#"{"licenceNo":"310101-L-1"}"#;
    let headers = vec![
        ("Host".to_string(), "partner.example".to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Amz-Date".to_string(), "20261122T003000Z".to_string()),
    ];
    let out = sigv4(
        &SigV4Input {
            method: "POST",
            path: "/v1/licences/verify",
            query: "lang=zh-CN",
            headers: &headers,
            payload_hash: &hex::encode(hub_protocols::digest::sha256(body)),
            amz_date: "20261122T003000Z",
            region: "cn-north-1",
            service: "execute-api",
            double_encode: true,
        },
        b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    );
    println!(
        "{}\n{}\n{}",
        out.canonical_request, out.string_to_sign, out.signature
    );
    assert!(DOC.contains(&format!("```text\n{}\n```", out.canonical_request)));
    assert!(DOC.contains(&format!("```text\n{}\n```", out.string_to_sign)));
    assert!(DOC.contains(&format!("Signature: `{}`", out.signature)));
}

#[test]
fn the_sm2_envelope_example_verifies() {
    let AuthSpec::Sm2Cert(s) = spec(
        "[auth]\nscheme = \"sm2-cert\"\nsignature_in = \"json\"\ndata_pointer = \"/data\"\napp_id_pointer = \"/data/appId\"\ntimestamp_pointer = \"/data/timestamp\"\nnonce_pointer = \"/data/nonce\"",
    ) else {
        panic!()
    };
    let shown = DOC
        .lines()
        .find_map(|l| l.strip_prefix("SM2 envelope signature: "))
        .expect("the page shows a signature");
    let envelope = json!({"data": {"appId": "elicense-lib", "timestamp": "1795836600000",
        "nonce": "n0nce-0000-0001", "licence": {"status": "valid", "no": "310101-L-1"}},
        "sign": shown.trim()});
    let canonical = String::from_utf8(s.envelope_data(&envelope).unwrap()).unwrap();
    assert!(DOC.contains(&format!("```text\n{canonical}\n```")));
    let body = serde_json::to_vec(&envelope).unwrap();
    let request = InboundRequest {
        method: "POST",
        path: "/v1/elicense/changed",
        query: "",
        headers: &[],
        body: &body,
    };
    let claim = s.claim(&request).unwrap();
    let key = hub_security::sm::Sm2PrivateKey::from_hex(
        "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
    )
    .unwrap();
    let creds = Credentials {
        sm2_public_key: Some(key.public_key()),
        ..Default::default()
    };
    assert_eq!(s.verify(&request, &claim, &creds), Ok(()));
}

#[test]
fn the_oauth2_token_example_is_exact() {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode("carrier-1:test-secret-do-not-use");
    assert!(DOC.contains(&format!("Authorization: Basic {basic}")));
    let token = hub_protocols::oauth2::token_of(
        r#"{"exp":1795840200000,"jti":"000102030405060708090a0b","sub":"carrier-1"}"#,
        b"test-secret-do-not-use",
    );
    assert!(DOC.contains(&format!("Hub token: {token}")), "{token}");
    // It names its client, and verifies with its secret (it has expired since 2026-11-28).
    let headers = vec![("authorization".to_string(), format!("Bearer {token}"))];
    let request = InboundRequest {
        method: "POST",
        path: "/v1/p/m",
        query: "",
        headers: &headers,
        body: b"",
    };
    let claim = hub_protocols::oauth2::OAuth2Verifier
        .claim(&request)
        .unwrap();
    assert_eq!(claim.app_id, "carrier-1");
    let creds = Credentials {
        secret: Some(b"test-secret-do-not-use".to_vec()),
        ..Default::default()
    };
    let verdict = hub_protocols::oauth2::OAuth2Verifier.verify(&request, &claim, &creds);
    assert!(
        matches!(verdict, Ok(()) | Err(hub_protocols::Refusal::TokenExpired)),
        "{verdict:?}"
    );
}
