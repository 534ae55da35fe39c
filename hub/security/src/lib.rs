//! Security building blocks of the hub, shared by the gateway, egress and the domain apps:
//!
//! * [`sm`]: national cryptography (SM2, SM3, SM4) in the encodings partners use;
//! * [`signing`]: the request signature scheme (canonical string, HMAC-SM3 or SM2), documented
//!   for partners in `docs/security.md`;
//! * [`field`]: field-by-field SM4-GCM encryption of personal data with a rotating key ring;
//! * [`kms`]: data keys kept wrapped by a KMS, unwrapped at start;
//! * [`mask`]: masking of ID-card numbers, phone numbers, names and addresses for logs.

pub mod field;
pub mod kms;
pub mod mask;
pub mod signing;
pub mod sm;

/// A cryptographic operation failed. Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("CRYPTO_KEY_INVALID: {0}")]
    Key(String),
    #[error("CRYPTO_SIGNATURE_INVALID: the signature does not verify")]
    Signature,
    #[error("CRYPTO_DECRYPT_FAILED: the ciphertext is damaged or was made with another key")]
    Decrypt,
    #[error("CRYPTO_ENCRYPT_FAILED")]
    Encrypt,
    #[error("CRYPTO_KEY_UNKNOWN: no key `{0}` in the key ring")]
    UnknownKey(String),
    #[error("CRYPTO_FORMAT: {0}")]
    Format(String),
}
