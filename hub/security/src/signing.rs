//! The request signature scheme partners and the hub use in both directions.
//!
//! A request carries five headers ([`header`]), a sixth naming the other headers it signs
//! when there are any, and is signed over a canonical string of nine or more lines joined by
//! `\n` (no trailing newline):
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
//! <signed header names>     lower case, sorted, joined by `;`; empty line when none
//! <name>:<value>            one line per signed header, in the same order, value trimmed
//! ```
//!
//! Headers that change what the hub does with a request ([`PROTECTED_HEADERS`]: the partner
//! message id, the correlation id, the body encryption headers) must be signed whenever they
//! are sent; the verifier refuses a request that carries one outside the signature.
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
    /// The other headers the signature covers, `;`-separated (`x-correlation-id;x-partner-message-id`).
    pub const SIGNED_HEADERS: &str = "x-hub-signed-headers";
}

/// Headers that change what is done with a request: when present they must be signed
/// (named in `X-Hub-Signed-Headers`), so nobody on the path can add, change or remove them.
pub const PROTECTED_HEADERS: &[&str] = &[
    "x-correlation-id",
    "x-hub-encrypt-response",
    "x-hub-encryption",
    "x-hub-encryption-key",
    "x-partner-message-id",
];

/// Most headers one request may sign besides the five of the scheme.
pub const MAX_SIGNED_HEADERS: usize = 16;

/// Why the signed-header block of a request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedHeadersError {
    /// `X-Hub-Signed-Headers` is malformed (empty name, bad characters, too many, repeated).
    #[error("X-Hub-Signed-Headers is malformed")]
    Malformed,
    /// A header named in `X-Hub-Signed-Headers` is not in the request.
    #[error("signed header `{0}` is not in the request")]
    Missing(String),
    /// A protected header is in the request but not named in `X-Hub-Signed-Headers`.
    #[error("header `{0}` must be signed")]
    Unsigned(String),
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The signed headers of a received request: reads `X-Hub-Signed-Headers` (`list`), looks each
/// named header up with `value` (all its values joined by `,`), and checks that every protected
/// header present (`present(name)`) is signed. Names come back lower case and sorted.
pub fn received_signed_headers(
    list: Option<&str>,
    value: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, SignedHeadersError> {
    let mut names: Vec<String> = match list.map(str::trim) {
        None | Some("") => Vec::new(),
        Some(l) => l
            .split(';')
            .map(|n| n.trim().to_ascii_lowercase())
            .collect(),
    };
    if names.len() > MAX_SIGNED_HEADERS || names.iter().any(|n| !is_header_name(n)) {
        return Err(SignedHeadersError::Malformed);
    }
    names.sort();
    let before = names.len();
    names.dedup();
    if names.len() != before {
        return Err(SignedHeadersError::Malformed);
    }
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let v = value(&n).ok_or_else(|| SignedHeadersError::Missing(n.clone()))?;
        out.push((n, v.trim().to_string()));
    }
    for p in PROTECTED_HEADERS {
        if value(p).is_some() && !out.iter().any(|(n, _)| n == p) {
            return Err(SignedHeadersError::Unsigned((*p).to_string()));
        }
    }
    Ok(out)
}

/// Headers to sign, as a sender has them: names lower-cased, sorted, values trimmed.
pub fn headers_to_sign(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
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
    /// The other signed headers: names lower case and sorted, values trimmed
    /// ([`received_signed_headers`], [`headers_to_sign`]).
    pub signed_headers: &'a [(String, String)],
}

impl RequestParts<'_> {
    /// The canonical string (module docs).
    pub fn canonical(&self) -> String {
        let names: Vec<&str> = self
            .signed_headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut lines = vec![
            self.method.as_str().to_string(),
            self.http_method.to_ascii_uppercase(),
            self.path.to_string(),
            canonical_query(self.raw_query),
            self.app_id.to_string(),
            self.timestamp_ms.to_string(),
            self.nonce.to_string(),
            sm3_hex(self.body),
            names.join(";"),
        ];
        lines.extend(self.signed_headers.iter().map(|(n, v)| format!("{n}:{v}")));
        lines.join("\n")
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

    /// Signs a request now with a fresh nonce; returns the five headers to send. For a request
    /// that sends other headers to be signed (and always for [`PROTECTED_HEADERS`]), use
    /// [`SigningCredential::sign_request_with`].
    pub fn sign_request(
        &self,
        app_id: &str,
        http_method: &str,
        path: &str,
        raw_query: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Vec<(&'static str, String)> {
        self.sign_request_with(app_id, http_method, path, raw_query, body, now_ms, &[])
    }

    /// Signs a request that also sends `headers` (name, value), which the signature covers;
    /// returns the headers to add: the five, and `X-Hub-Signed-Headers` when `headers` is not
    /// empty.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_request_with(
        &self,
        app_id: &str,
        http_method: &str,
        path: &str,
        raw_query: &str,
        body: &[u8],
        now_ms: i64,
        headers: &[(&str, &str)],
    ) -> Vec<(&'static str, String)> {
        let signed_headers = headers_to_sign(headers);
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
            signed_headers: &signed_headers,
        };
        let signature = self.sign(&parts.canonical());
        let mut out = vec![
            (header::APP_ID, app_id.to_string()),
            (header::TIMESTAMP, now_ms.to_string()),
            (header::NONCE, nonce),
            (header::SIGNATURE_METHOD, self.method().as_str().to_string()),
            (header::SIGNATURE, signature),
        ];
        if !signed_headers.is_empty() {
            let names: Vec<&str> = signed_headers.iter().map(|(n, _)| n.as_str()).collect();
            out.push((header::SIGNED_HEADERS, names.join(";")));
        }
        out
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
            signed_headers: &[],
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

#[cfg(test)]
mod signed_header_tests {
    use super::*;

    fn lookup<'a>(h: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name: &str| {
            h.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn a_protected_header_outside_the_signature_is_refused() {
        let sent = [("X-Partner-Message-Id", "M-1"), ("X-Correlation-Id", "C-1")];
        assert_eq!(
            received_signed_headers(None, lookup(&sent)),
            Err(SignedHeadersError::Unsigned("x-correlation-id".into()))
        );
        assert_eq!(
            received_signed_headers(Some("x-partner-message-id"), lookup(&sent)),
            Err(SignedHeadersError::Unsigned("x-correlation-id".into()))
        );
        assert_eq!(
            received_signed_headers(
                Some("X-Partner-Message-Id; x-correlation-id"),
                lookup(&sent)
            ),
            Ok(vec![
                ("x-correlation-id".into(), "C-1".into()),
                ("x-partner-message-id".into(), "M-1".into())
            ])
        );
        // Named but absent, repeated, or malformed.
        assert_eq!(
            received_signed_headers(Some("x-hub-encryption"), lookup(&[])),
            Err(SignedHeadersError::Missing("x-hub-encryption".into()))
        );
        for bad in ["a;;b", "a;a", "x y", &"h;".repeat(17)] {
            assert_eq!(
                received_signed_headers(Some(bad), |_| Some("v".into())),
                Err(SignedHeadersError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(received_signed_headers(Some(""), lookup(&[])), Ok(vec![]));
    }

    #[test]
    fn a_changed_signed_header_fails_the_signature() {
        let cred = SigningCredential::HmacSm3 {
            secret: b"0123456789abcdef".to_vec(),
        };
        let sent = [("X-Partner-Message-Id", "M-1")];
        let headers = cred.sign_request_with("app", "POST", "/v1/p/m", "", b"{}", 1, &sent);
        let list = headers
            .iter()
            .find(|(n, _)| *n == header::SIGNED_HEADERS)
            .map(|(_, v)| v.clone());
        assert_eq!(list.as_deref(), Some("x-partner-message-id"));
        let nonce = &headers.iter().find(|(n, _)| *n == header::NONCE).unwrap().1;
        let sig = &headers
            .iter()
            .find(|(n, _)| *n == header::SIGNATURE)
            .unwrap()
            .1;
        let check = VerifyingCredential::HmacSm3 {
            secret: b"0123456789abcdef".to_vec(),
        };
        let verify = |sent: &[(&str, &str)]| {
            let signed = received_signed_headers(list.as_deref(), lookup(sent)).unwrap();
            let parts = RequestParts {
                method: SignatureMethod::HmacSm3,
                http_method: "POST",
                path: "/v1/p/m",
                raw_query: "",
                app_id: "app",
                timestamp_ms: 1,
                nonce,
                body: b"{}",
                signed_headers: &signed,
            };
            check.verify(&parts.canonical(), sig)
        };
        assert_eq!(verify(&sent), Ok(()));
        assert_eq!(
            verify(&[("X-Partner-Message-Id", "M-2")]),
            Err(CryptoError::Signature)
        );
    }
}
