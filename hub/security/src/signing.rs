//! The request signature scheme partners and the hub use in both directions.
//!
//! A request carries five headers ([`header`]) and is signed over a canonical string of eight
//! lines joined by `\n` (no trailing newline):
//!
//! ```text
//! <signature method>        HMAC-SM3 or SM2-SM3
//! <HTTP method>             upper case
//! <path>                    as sent, e.g. /v1/hotline12345/dispatch
//! <canonical query>         see below; empty line when there is none
//! <app id>
//! <timestamp>               Unix time in milliseconds, decimal
//! <nonce>                   16–64 characters of A–Z a–z 0–9 - _
//! <body digest>             lowercase hex SM3 of the body bytes exactly as sent
//! ```
//!
//! Canonical query: split the raw query on `&`, each part on the first `=`, percent-decode
//! names and values (`+` stays `+`), re-encode them with RFC 3986 (everything but
//! `A–Z a–z 0–9 - . _ ~` as `%XX`, upper-case hex), sort by name then value, and join as
//! `name=value` with `&`.
//!
//! The signature is lowercase hex of HMAC-SM3(secret, canonical) or of the SM2 signature
//! `r‖s` (SM3, default id `1234567812345678`) over the canonical string's UTF-8 bytes.
//! `docs/security.md` has the whole scheme with a worked example that a test keeps true.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::sm::{hmac_sm3, sm2_verify, sm3_hex, verify_hmac_sm3, Sm2PrivateKey};
use crate::CryptoError;

/// Header names of a signed request.
pub mod header {
    pub const APP_ID: &str = "x-hub-app-id";
    pub const TIMESTAMP: &str = "x-hub-timestamp";
    pub const NONCE: &str = "x-hub-nonce";
    pub const SIGNATURE_METHOD: &str = "x-hub-signature-method";
    pub const SIGNATURE: &str = "x-hub-signature";
}

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    HmacSm3,
    Sm2Sm3,
}

impl SignatureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMethod::HmacSm3 => "HMAC-SM3",
            SignatureMethod::Sm2Sm3 => "SM2-SM3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HMAC-SM3" => Some(SignatureMethod::HmacSm3),
            "SM2-SM3" => Some(SignatureMethod::Sm2Sm3),
            _ => None,
        }
    }
}

/// RFC 3986 unreserved characters stay; everything else is escaped.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The canonical form of a raw query string.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let norm = |s: &str| {
                let decoded = percent_decode_str(s).decode_utf8_lossy();
                utf8_percent_encode(&decoded, ESCAPE).to_string()
            };
            (norm(k), norm(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Is `nonce` acceptable (16–64 characters of `A–Z a–z 0–9 - _`)?
pub fn nonce_is_valid(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    pub method: SignatureMethod,
    pub http_method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub app_id: &'a str,
    pub timestamp_ms: i64,
    pub nonce: &'a str,
    pub body: &'a [u8],
}

impl RequestParts<'_> {
    /// The canonical string (module docs).
    pub fn canonical(&self) -> String {
        [
            self.method.as_str().to_string(),
            self.http_method.to_ascii_uppercase(),
            self.path.to_string(),
            canonical_query(self.raw_query),
            self.app_id.to_string(),
            self.timestamp_ms.to_string(),
            self.nonce.to_string(),
            sm3_hex(self.body),
        ]
        .join("\n")
    }
}

/// A credential that signs.
#[derive(Debug, Clone)]
pub enum SigningCredential {
    HmacSm3 { secret: Vec<u8> },
    Sm2 { key: Sm2PrivateKey },
}

impl SigningCredential {
    pub fn method(&self) -> SignatureMethod {
        match self {
            SigningCredential::HmacSm3 { .. } => SignatureMethod::HmacSm3,
            SigningCredential::Sm2 { .. } => SignatureMethod::Sm2Sm3,
        }
    }

    /// The signature (lowercase hex) over `canonical`.
    pub fn sign(&self, canonical: &str) -> String {
        match self {
            SigningCredential::HmacSm3 { secret } => {
                hex::encode(hmac_sm3(secret, canonical.as_bytes()))
            }
            SigningCredential::Sm2 { key } => hex::encode(key.sign(canonical.as_bytes())),
        }
    }

    /// Signs a request now with a fresh nonce; returns the five headers to send.
    pub fn sign_request(
        &self,
        app_id: &str,
        http_method: &str,
        path: &str,
        raw_query: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Vec<(&'static str, String)> {
        let nonce = hex::encode(crate::sm::random::<16>());
        let parts = RequestParts {
            method: self.method(),
            http_method,
            path,
            raw_query,
            app_id,
            timestamp_ms: now_ms,
            nonce: &nonce,
            body,
        };
        let signature = self.sign(&parts.canonical());
        vec![
            (header::APP_ID, app_id.to_string()),
            (header::TIMESTAMP, now_ms.to_string()),
            (header::NONCE, nonce),
            (header::SIGNATURE_METHOD, self.method().as_str().to_string()),
            (header::SIGNATURE, signature),
        ]
    }
}

/// A credential that verifies.
#[derive(Debug, Clone)]
pub enum VerifyingCredential {
    HmacSm3 { secret: Vec<u8> },
    Sm2 { public_key: Vec<u8> },
}

impl VerifyingCredential {
    pub fn method(&self) -> SignatureMethod {
        match self {
            VerifyingCredential::HmacSm3 { .. } => SignatureMethod::HmacSm3,
            VerifyingCredential::Sm2 { .. } => SignatureMethod::Sm2Sm3,
        }
    }

    /// Checks `signature_hex` over `canonical`. Comparison of HMACs is constant-time.
    pub fn verify(&self, canonical: &str, signature_hex: &str) -> Result<(), CryptoError> {
        let sig = hex::decode(signature_hex).map_err(|_| CryptoError::Signature)?;
        match self {
            VerifyingCredential::HmacSm3 { secret } => {
                if verify_hmac_sm3(secret, canonical.as_bytes(), &sig) {
                    Ok(())
                } else {
                    Err(CryptoError::Signature)
                }
            }
            VerifyingCredential::Sm2 { public_key } => {
                sm2_verify(public_key, canonical.as_bytes(), &sig)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_normalised_and_sorted() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(
            canonical_query("q=%e5%b7%a5%e5%8d%95&x=a+b&flag"),
            "flag=&q=%E5%B7%A5%E5%8D%95&x=a%2Bb"
        );
        assert_eq!(
            canonical_query("q=工单&sort=-time"),
            "q=%E5%B7%A5%E5%8D%95&sort=-time"
        );
    }

    #[test]
    fn nonces_are_bounded() {
        assert!(nonce_is_valid("0123456789abcdef"));
        assert!(!nonce_is_valid("short"));
        assert!(!nonce_is_valid("0123456789abcdef/"));
        assert!(!nonce_is_valid(&"a".repeat(65)));
    }

    #[test]
    fn hmac_and_sm2_signatures_verify_and_detect_any_change() {
        let parts = RequestParts {
            method: SignatureMethod::HmacSm3,
            http_method: "post",
            path: "/v1/hotline12345/dispatch",
            raw_query: "",
            app_id: "hotline12345-city",
            timestamp_ms: 1_795_836_600_000,
            nonce: "0123456789abcdef",
            body: "{\"gdbh\":\"GD1\"}".as_bytes(),
        };
        let hmac = SigningCredential::HmacSm3 {
            secret: b"s3cret".to_vec(),
        };
        let sig = hmac.sign(&parts.canonical());
        let check = VerifyingCredential::HmacSm3 {
            secret: b"s3cret".to_vec(),
        };
        assert_eq!(check.verify(&parts.canonical(), &sig), Ok(()));
        let mut changed = parts.clone();
        changed.body = b"{\"gdbh\":\"GD2\"}";
        assert_eq!(
            check.verify(&changed.canonical(), &sig),
            Err(CryptoError::Signature)
        );
        assert_eq!(
            check.verify(&parts.canonical(), "zz"),
            Err(CryptoError::Signature)
        );

        let key = Sm2PrivateKey::generate();
        let mut sm2_parts = parts.clone();
        sm2_parts.method = SignatureMethod::Sm2Sm3;
        let sig = SigningCredential::Sm2 { key: key.clone() }.sign(&sm2_parts.canonical());
        let check = VerifyingCredential::Sm2 {
            public_key: key.public_key(),
        };
        assert_eq!(check.verify(&sm2_parts.canonical(), &sig), Ok(()));
        let mut changed = sm2_parts.clone();
        changed.timestamp_ms += 1;
        assert_eq!(
            check.verify(&changed.canonical(), &sig),
            Err(CryptoError::Signature)
        );
    }
}
