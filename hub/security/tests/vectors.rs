//! Standard test vectors: GB/T 32905-2016 (SM3), GB/T 32907-2016 (SM4) and the SM2 signature
//! example on the recommended curve from GM/T 0003.5-2012 (the basis of GB/T 32918.5-2017).

use hub_security::sm::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[test]
fn sm3_gbt_32905_examples() {
    assert_eq!(
        sm3_hex(b"abc"),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    assert_eq!(
        sm3_hex(&b"abcd".repeat(16)),
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    );
}

#[test]
fn sm4_gbt_32907_example() {
    // Key and plaintext 0123456789abcdeffedcba9876543210 → 681edf34d206965e86b3e94f536e4246.
    // One CBC block with a zero IV is the bare block cipher; PKCS#7 adds a second block.
    let key = h("0123456789abcdeffedcba9876543210");
    let out = sm4_cbc_encrypt(&key, &[0u8; 16], &key).unwrap();
    assert_eq!(hex::encode(&out[..16]), "681edf34d206965e86b3e94f536e4246");
    assert_eq!(out.len(), 32);
    assert_eq!(sm4_cbc_decrypt(&key, &[0u8; 16], &out).unwrap(), key);
}

#[test]
fn sm2_gmt_0003_5_signature_example_verifies() {
    let public_key = h(
        "04 09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020 \
            CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
    );
    let signature = h(
        "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3 \
         B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
    );
    // The example signs with the default distinguishing id 1234567812345678.
    assert_eq!(
        sm2_verify(&public_key, b"message digest", &signature),
        Ok(())
    );
    // The same signature under another id or message does not verify.
    assert!(sm2_verify_with_id(
        "ALICE123@YAHOO.COM",
        &public_key,
        b"message digest",
        &signature
    )
    .is_err());
    assert!(sm2_verify(&public_key, b"message digesT", &signature).is_err());
    // And the private key of the example gives that public key.
    let key =
        Sm2PrivateKey::from_hex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
            .unwrap();
    assert_eq!(key.public_key(), public_key);
}

#[test]
fn sm2_encryption_and_sm4_gcm_round_trip_and_detect_tampering() {
    let key = Sm2PrivateKey::generate();
    let secret = random::<16>();
    let wrapped = sm2_encrypt(&key.public_key(), &secret).unwrap();
    assert_eq!(wrapped.len(), 65 + 32 + 16, "C1 (uncompressed) ‖ C3 ‖ C2");
    assert_eq!(key.decrypt(&wrapped).unwrap(), secret);
    assert_eq!(
        key.decrypt(&wrapped[1..]).unwrap(),
        secret,
        "C1 without its 04 prefix, as gmssl writes it"
    );
    let mut bad = wrapped.clone();
    bad[80] ^= 1;
    assert!(key.decrypt(&bad).is_err());

    let nonce = random::<12>();
    let sealed = sm4_gcm_encrypt(&secret, &nonce, b"aad", "派单".as_bytes()).unwrap();
    assert_eq!(
        sm4_gcm_decrypt(&secret, &nonce, b"aad", &sealed).unwrap(),
        "派单".as_bytes()
    );
    assert!(sm4_gcm_decrypt(&secret, &nonce, b"other", &sealed).is_err());
    assert!(sm4_cbc_decrypt(&secret, &[0u8; 16], &[1u8; 15]).is_err());
    assert!(sm4_cbc_encrypt(&secret[..8], &[0u8; 16], b"x").is_err());
}
