//! Interoperability with Python `gmssl` (PyPI), an implementation partners really use: every
//! operation is done on one side and checked on the other, in both directions.

use hub_security::signing::{
    RequestParts, SignatureMethod, SigningCredential, VerifyingCredential,
};
use hub_security::sm::*;
use serde_json::{json, Value};

#[path = "../../../tests/python/peer.rs"]
mod peer;

/// Runs operations through tests/python/gmssl_interop.py; returns one result per operation.
fn gmssl(ops: Value) -> Vec<String> {
    peer::run("gmssl_interop.py", &ops)
}

fn xy(key: &Sm2PrivateKey) -> String {
    key.public_key_hex()[2..].to_string()
}

#[test]
fn sm3_and_hmac_sm3_agree() {
    let data = "12345 工单 GD20261122000123".as_bytes();
    let key = b"partner-shared-secret";
    let got = gmssl(json!([
        {"op": "sm3", "data": hex::encode(data)},
        {"op": "hmac_sm3", "key": hex::encode(key), "data": hex::encode(data)},
        {"op": "hmac_sm3", "key": hex::encode([7u8; 100]), "data": hex::encode(data)},
    ]));
    assert_eq!(got[0], sm3_hex(data));
    assert_eq!(got[1], hex::encode(hmac_sm3(key, data)));
    assert_eq!(
        got[2],
        hex::encode(hmac_sm3(&[7u8; 100], data)),
        "keys longer than a block are hashed first"
    );
}

#[test]
fn sm4_cbc_agrees_in_both_directions() {
    let key = random::<16>();
    let iv = random::<16>();
    let plain = "来电人：张三，联系电话 13800138000".as_bytes();
    let ours = sm4_cbc_encrypt(&key, &iv, plain).unwrap();
    let got = gmssl(json!([
        {"op": "sm4_cbc_encrypt", "key": hex::encode(key), "iv": hex::encode(iv), "data": hex::encode(plain)},
        {"op": "sm4_cbc_decrypt", "key": hex::encode(key), "iv": hex::encode(iv), "data": hex::encode(&ours)},
    ]));
    assert_eq!(got[0], hex::encode(&ours), "same ciphertext");
    assert_eq!(hex::decode(&got[1]).unwrap(), plain, "gmssl decrypts ours");
    assert_eq!(
        sm4_cbc_decrypt(&key, &iv, &hex::decode(&got[0]).unwrap()).unwrap(),
        plain
    );
}

#[test]
fn sm2_signatures_verify_across_implementations() {
    let key = Sm2PrivateKey::generate();
    let data = "POST\n/v1/hotline12345/dispatch".as_bytes();
    let ours = key.sign(data);
    let got = gmssl(json!([
        {"op": "sm2_sign", "private_key": hex::encode(key_bytes(&key)), "public_key": xy(&key), "data": hex::encode(data)},
        {"op": "sm2_verify", "public_key": xy(&key), "signature": hex::encode(ours), "data": hex::encode(data)},
        {"op": "sm2_verify", "public_key": xy(&key), "signature": hex::encode(ours), "data": hex::encode(b"other")},
    ]));
    assert_eq!(
        sm2_verify(&key.public_key(), data, &hex::decode(&got[0]).unwrap()),
        Ok(()),
        "we verify gmssl's signature"
    );
    assert_eq!(got[1], "ok", "gmssl verifies ours");
    assert_eq!(got[2], "bad");
}

#[test]
fn sm2_encryption_agrees_in_both_directions() {
    let key = Sm2PrivateKey::generate();
    let sm4_key = random::<16>();
    let ours = sm2_encrypt(&key.public_key(), &sm4_key).unwrap();
    let got = gmssl(json!([
        {"op": "sm2_encrypt", "public_key": xy(&key), "data": hex::encode(sm4_key)},
        // gmssl writes C1 without its 04 prefix; strip ours the same way for it.
        {"op": "sm2_decrypt", "private_key": hex::encode(key_bytes(&key)), "public_key": xy(&key), "data": hex::encode(&ours[1..])},
    ]));
    assert_eq!(
        key.decrypt(&hex::decode(&got[0]).unwrap()).unwrap(),
        sm4_key,
        "we decrypt gmssl's key wrap"
    );
    assert_eq!(
        hex::decode(&got[1]).unwrap(),
        sm4_key,
        "gmssl decrypts ours"
    );
}

#[test]
fn a_request_signed_with_gmssl_passes_the_hub_scheme() {
    // A partner builds the canonical string (docs/security.md) and signs it with gmssl.
    let key = Sm2PrivateKey::generate();
    let parts = RequestParts {
        method: SignatureMethod::Sm2Sm3,
        http_method: "POST",
        path: "/v1/hotline12345/dispatch",
        raw_query: "lx=json",
        app_id: "hotline12345-city",
        timestamp_ms: 1_795_836_600_000,
        nonce: "4f1c2a9e8b7d6c5a",
        body: "{\"gdbh\":\"GD20261122000123\"}".as_bytes(),
        signed_headers: &[],
    };
    let canonical = parts.canonical();
    let secret = b"shared-secret-of-the-partner".to_vec();
    let got = gmssl(json!([
        {"op": "sm2_sign", "private_key": hex::encode(key_bytes(&key)), "public_key": xy(&key), "data": hex::encode(canonical.as_bytes())},
        {"op": "hmac_sm3", "key": hex::encode(&secret), "data": hex::encode(canonical.as_bytes())},
    ]));
    let sm2 = VerifyingCredential::Sm2 {
        public_key: key.public_key(),
    };
    assert_eq!(sm2.verify(&canonical, &got[0]), Ok(()));
    let hmac = VerifyingCredential::HmacSm3 {
        secret: secret.clone(),
    };
    let mut hmac_parts = parts.clone();
    hmac_parts.method = SignatureMethod::HmacSm3;
    assert!(
        hmac.verify(&hmac_parts.canonical(), &got[1]).is_err(),
        "the method is part of what is signed"
    );
    assert_eq!(
        got[1],
        SigningCredential::HmacSm3 { secret }.sign(&canonical)
    );
}

fn key_bytes(key: &Sm2PrivateKey) -> Vec<u8> {
    key.to_bytes().to_vec()
}

/// Many random keys: edge cases that one key rarely hits (a coordinate with leading zero
/// digits, which gmssl's constructor mangles: see gmssl_interop.py) show up here.
#[test]
fn sm2_signatures_by_gmssl_verify_for_many_random_keys() {
    let keys: Vec<Sm2PrivateKey> = (0..256).map(|_| Sm2PrivateKey::generate()).collect();
    let data: Vec<[u8; 32]> = (0..256).map(|_| random::<32>()).collect();
    let ops: Vec<Value> = keys
        .iter()
        .zip(&data)
        .map(|(k, d)| json!({"op": "sm2_sign", "private_key": hex::encode(key_bytes(k)), "public_key": xy(k), "data": hex::encode(d)}))
        .collect();
    let sigs = gmssl(Value::Array(ops));
    let failures: Vec<String> = keys
        .iter()
        .zip(&data)
        .zip(&sigs)
        .filter(|((k, d), s)| {
            sm2_verify(&k.public_key(), &d[..], &hex::decode(s).unwrap()).is_err()
        })
        .map(|((k, _), _)| k.public_key_hex())
        .collect();
    assert!(
        failures.is_empty(),
        "gmssl signatures that do not verify, by public key: {failures:?}"
    );
}
