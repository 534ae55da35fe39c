//! Encrypted request bodies (and answers, when asked), `docs/security.md`.
//!
//! `X-Hub-Encryption: SM4-CBC` or `SM4-GCM` says the body is `IV(16) ‖ ciphertext` (CBC,
//! PKCS#7) or `nonce(12) ‖ ciphertext ‖ tag(16)` (GCM, no additional data). The signature
//! covers these bytes as sent, IV included, so nothing in them can be altered unnoticed. The
//! SM4 key is the app's pre-shared key, or, when `X-Hub-Encryption-Key` is present, the key it
//! carries wrapped with the hub's SM2 public key (C1C3C2, hex).

use axum::http::HeaderMap;
use hub_security::sm::{
    random, sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_gcm_decrypt, sm4_gcm_encrypt, Sm2PrivateKey,
};

use crate::errors::ErrorCode;

pub const ENCRYPTION: &str = "x-hub-encryption";
pub const ENCRYPTION_KEY: &str = "x-hub-encryption-key";
pub const ENCRYPT_RESPONSE: &str = "x-hub-encrypt-response";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sm4Cbc,
    Sm4Gcm,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sm4Cbc => "SM4-CBC",
            Mode::Sm4Gcm => "SM4-GCM",
        }
    }
}

/// The key and mode of an encrypted exchange, kept to encrypt the answer.
pub struct Session {
    pub mode: Mode,
    key: [u8; 16],
}

/// Decrypts the body if the request says it is encrypted; returns the plaintext and the session.
pub fn open_body(
    headers: &HeaderMap,
    body: Vec<u8>,
    app_key: Option<&[u8; 16]>,
    hub_key: Option<&Sm2PrivateKey>,
) -> Result<(Vec<u8>, Option<Session>), ErrorCode> {
    let Some(mode) = headers.get(ENCRYPTION) else {
        return Ok((body, None));
    };
    let mode = match mode.to_str() {
        Ok("SM4-CBC") => Mode::Sm4Cbc,
        Ok("SM4-GCM") => Mode::Sm4Gcm,
        _ => return Err(ErrorCode::EncryptionUnsupported),
    };
    let key: [u8; 16] = match headers.get(ENCRYPTION_KEY) {
        Some(wrapped) => {
            let hub_key = hub_key.ok_or(ErrorCode::EncryptionKeyMissing)?;
            let wrapped = wrapped
                .to_str()
                .ok()
                .and_then(|h| hex::decode(h.trim()).ok())
                .ok_or(ErrorCode::DecryptionFailed)?;
            // An SM4 key: 113 bytes with C1's 0x04 prefix, 112 without (by length, never by
            // the first byte, which is x's first byte once in 256 unprefixed ciphertexts).
            hub_key
                .decrypt_key(&wrapped, 16)
                .ok()
                .and_then(|k| <[u8; 16]>::try_from(k).ok())
                .ok_or(ErrorCode::DecryptionFailed)?
        }
        None => *app_key.ok_or(ErrorCode::EncryptionKeyMissing)?,
    };
    let plain = match mode {
        Mode::Sm4Cbc if body.len() > 16 => sm4_cbc_decrypt(&key, &body[..16], &body[16..]),
        Mode::Sm4Gcm if body.len() > 12 + 16 => {
            let nonce: [u8; 12] = body[..12].try_into().expect("checked length");
            sm4_gcm_decrypt(&key, &nonce, b"", &body[12..])
        }
        _ => return Err(ErrorCode::DecryptionFailed),
    }
    .map_err(|_| ErrorCode::DecryptionFailed)?;
    Ok((plain, Some(Session { mode, key })))
}

impl Session {
    /// Encrypts an answer the way the request was encrypted, with a fresh IV or nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        match self.mode {
            Mode::Sm4Cbc => {
                let iv: [u8; 16] = random();
                let mut out = iv.to_vec();
                out.extend(sm4_cbc_encrypt(&self.key, &iv, plain).expect("a 16-byte key and IV"));
                out
            }
            Mode::Sm4Gcm => {
                let nonce: [u8; 12] = random();
                let mut out = nonce.to_vec();
                out.extend(sm4_gcm_encrypt(&self.key, &nonce, b"", plain).expect("a 16-byte key"));
                out
            }
        }
    }
}
