//! SM2 ciphertexts whose C1 is written without its 0x04 prefix (Python gmssl, npm sm-crypto's
//! `doEncrypt` by default) and whose x coordinate happens to start with byte 0x04: about one
//! in 256. Reading the form from the first byte misread them; these tests construct such a
//! ciphertext deterministically with the hub's own encryption.

use hub_security::sm::{sm2_encrypt, Sm2PrivateKey};

/// A C1C3C2 ciphertext of `plain` (with its 0x04 prefix) whose x coordinate starts with 0x04.
fn with_x_starting_04(key: &Sm2PrivateKey, plain: &[u8]) -> Vec<u8> {
    for _ in 0..100_000 {
        let c = sm2_encrypt(&key.public_key(), plain).unwrap();
        assert_eq!(c[0], 4, "the hub writes C1 with its prefix");
        if c[1] == 4 {
            return c;
        }
    }
    panic!("no x coordinate starting with 0x04 in 100000 encryptions");
}

#[test]
fn an_unprefixed_c1_whose_x_starts_with_04_decrypts() {
    let key = Sm2PrivateKey::generate();
    let sm4_key = *b"0123456789abcdef";
    let prefixed = with_x_starting_04(&key, &sm4_key);
    let unprefixed = &prefixed[1..];
    assert_eq!(unprefixed[0], 4, "looks prefixed, but is not");
    assert_eq!(key.decrypt(&prefixed).unwrap(), sm4_key);
    assert_eq!(key.decrypt(unprefixed).unwrap(), sm4_key, "generic decrypt");
    // A wrapped SM4 key is decided by its length: 113 bytes prefixed, 112 not.
    assert_eq!(key.decrypt_key(&prefixed, 16).unwrap(), sm4_key);
    assert_eq!(key.decrypt_key(unprefixed, 16).unwrap(), sm4_key);
}

#[test]
fn every_form_of_c1_decrypts_and_damage_is_still_refused() {
    let key = Sm2PrivateKey::generate();
    for i in 0..64u8 {
        let plain = [i; 16];
        let c = sm2_encrypt(&key.public_key(), &plain).unwrap();
        assert_eq!(key.decrypt_key(&c, 16).unwrap(), plain);
        assert_eq!(key.decrypt_key(&c[1..], 16).unwrap(), plain);
        assert_eq!(key.decrypt(&c[1..]).unwrap(), plain);
    }
    let c = sm2_encrypt(&key.public_key(), b"0123456789abcdef").unwrap();
    // Wrong lengths, a damaged C3, another key: refused, never a wrong key.
    assert!(key.decrypt_key(&c[2..], 16).is_err());
    assert!(key.decrypt_key(&[c.clone(), vec![0]].concat(), 16).is_err());
    assert!(key.decrypt_key(&c, 15).is_err());
    let mut damaged = c.clone();
    damaged[70] ^= 1;
    assert!(key.decrypt_key(&damaged, 16).is_err());
    assert!(key.decrypt(&damaged[1..]).is_err());
    assert!(Sm2PrivateKey::generate().decrypt_key(&c, 16).is_err());
}
