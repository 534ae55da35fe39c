//! The worked example of docs/security.md, recomputed: if this test fails, the page is wrong.

use hub_security::signing::{
    headers_to_sign, RequestParts, SignatureMethod, SigningCredential, VerifyingCredential,
};
use hub_security::sm::{sm3_hex, Sm2PrivateKey};

const DOC: &str = include_str!("../../../docs/security.md");

/// The example's signed headers, as a sender lists them.
fn signed_headers() -> &'static [(String, String)] {
    static H: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        headers_to_sign(&[
            ("X-Partner-Message-Id", "GD20261122000123-PD1"),
            ("X-Correlation-Id", "case-2026-0042"),
        ])
    })
}

fn example(method: SignatureMethod) -> RequestParts<'static> {
    RequestParts {
        method,
        http_method: "POST",
        path: "/v1/hotline12345/dispatch",
        raw_query: "format=json&lang=zh-CN",
        app_id: "hotline12345-city",
        timestamp_ms: 1_795_836_600_000,
        nonce: "7f3a9c1e5b2d4f60",
        body: "{\"gdbh\":\"GD20261122000123\",\"bt\":\"张江路积水\"}".as_bytes(),
        signed_headers: signed_headers(),
    }
}

#[test]
fn the_documented_hmac_example_is_exact() {
    let parts = example(SignatureMethod::HmacSm3);
    let canonical = parts.canonical();
    let signature = SigningCredential::HmacSm3 {
        secret: b"test-secret-do-not-use".to_vec(),
    }
    .sign(&canonical);
    println!(
        "body sm3: {}\ncanonical:\n{canonical}\nsignature: {signature}",
        sm3_hex(parts.body)
    );
    assert!(
        DOC.contains(&format!("```text\n{canonical}\n```")),
        "docs/security.md shows another canonical string"
    );
    assert!(
        DOC.contains(&format!("`X-Hub-Signature`: `{signature}`")),
        "docs/security.md shows another HMAC-SM3 signature: {signature}"
    );
    assert!(DOC.contains("`X-Hub-Signed-Headers`: `x-correlation-id;x-partner-message-id`"));
}

#[test]
fn the_documented_sm2_example_verifies() {
    let key =
        Sm2PrivateKey::from_hex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
            .unwrap();
    let parts = example(SignatureMethod::Sm2Sm3);
    let canonical = parts.canonical();
    let ours = SigningCredential::Sm2 { key: key.clone() }.sign(&canonical);
    println!(
        "sm2 signature: {ours}\npublic key: {}",
        key.public_key_hex()
    );
    // The page shows one signature; SM2 signatures of other implementations differ (random k)
    // and must verify just the same.
    let shown = DOC
        .lines()
        .find_map(|l| l.strip_prefix("SM2 signature: "))
        .expect("the page shows an SM2 signature");
    let check = VerifyingCredential::Sm2 {
        public_key: key.public_key(),
    };
    assert_eq!(check.verify(&canonical, shown.trim()), Ok(()));
    assert!(
        DOC.contains(&key.public_key_hex()),
        "the page shows the public key"
    );
}
