//! Data keys kept wrapped by a KMS (envelope encryption).
//!
//! In production the key ring file holds no usable key: each entry is
//! `kms:<master key id>:<hex of the wrapped data key>`, and at start the hub asks the KMS to
//! unwrap each one, keeping the plaintext keys in memory only. The KMS speaks a small HTTP API,
//! signed with the hub's own request signature scheme (`docs/security.md`):
//!
//! * `POST /v1/unwrap` `{"master_key_id": …, "ciphertext": hex}` → `{"plaintext": hex}`
//! * `POST /v1/wrap` `{"master_key_id": …, "plaintext": hex}` → `{"ciphertext": hex}`
//!
//! The KMS must be reached over HTTPS; plain `http://` is accepted only on a loopback address
//! and only when the caller opts in (`allow_plain_http`, for development and tests), otherwise
//! `KMS_PLAIN_HTTP`. Every successful answer is authenticated: the KMS sends
//! `X-Kms-Answer-Signature`, the lowercase hex HMAC-SM3, under the hub's KMS secret, of
//!
//! ```text
//! KMS-ANSWER-V1\n<path>\n<the request's X-Hub-Nonce>\n<lowercase hex SM3 of the answer body>
//! ```
//!
//! so an answer forged or replayed by anyone on the path (or by a server that does not hold
//! the secret) is refused (`KMS_ANSWER_UNAUTHENTICATED`) and no key it names is used.
//!
//! A vendor KMS with another API gets its own [`Unwrap`] implementation; the simulator used by
//! the tests (`tests/src/bin/kms_sim.rs`) implements this one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::field::{parse_ring, read_ring_file, KeyRing, RingEntry};
use crate::signing::{header, SigningCredential};
use crate::sm::{hmac_sm3, sm3_hex, verify_hmac_sm3};
use crate::CryptoError;

/// The header of the KMS's answer signature.
pub const ANSWER_SIGNATURE: &str = "x-kms-answer-signature";

/// What the KMS signs in its answer to the request made at `path` with `nonce`.
pub fn answer_signing_string(path: &str, nonce: &str, body: &[u8]) -> String {
    format!("KMS-ANSWER-V1\n{path}\n{nonce}\n{}", sm3_hex(body))
}

/// The answer signature a KMS holding `secret` sends (for KMS implementations and tests).
pub fn sign_answer(secret: &[u8], path: &str, nonce: &str, body: &[u8]) -> String {
    hex::encode(hmac_sm3(
        secret,
        answer_signing_string(path, nonce, body).as_bytes(),
    ))
}

/// Is `url` allowed as the KMS's address? `https://` always; `http://` only to a loopback
/// host (127.0.0.0/8, ::1, localhost) and only with `allow_plain_http`.
pub fn check_kms_url(url: &str, allow_plain_http: bool) -> Result<(), CryptoError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CryptoError::Key(format!("KMS_URL_INVALID: `{url}`: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback());
            if loopback && allow_plain_http {
                Ok(())
            } else if loopback {
                Err(CryptoError::Key(
                    "KMS_PLAIN_HTTP: the KMS is reached over plain http; use https, or set allow_plain_http = true (loopback development only)".into(),
                ))
            } else {
                Err(CryptoError::Key(
                    "KMS_PLAIN_HTTP: plain http to a KMS is allowed only on a loopback address; use https".into(),
                ))
            }
        }
        other => Err(CryptoError::Key(format!(
            "KMS_URL_INVALID: scheme `{other}`; use https"
        ))),
    }
}

/// Something that turns a wrapped data key back into a key.
pub trait Unwrap {
    fn unwrap_key(
        &self,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> impl std::future::Future<Output = Result<[u8; 16], CryptoError>> + Send;
}

/// The HTTP KMS client.
#[derive(Clone)]
pub struct HttpKms {
    base: String,
    app_id: String,
    credential: SigningCredential,
    http: reqwest::Client,
}

impl HttpKms {
    /// A client of the KMS at `base_url` (see [`check_kms_url`] for `allow_plain_http`).
    pub fn new(
        base_url: &str,
        app_id: &str,
        hmac_secret: &str,
        allow_plain_http: bool,
    ) -> Result<Self, CryptoError> {
        check_kms_url(base_url, allow_plain_http)?;
        let http = reqwest::Client::builder()
            // Never follow a redirect away from the checked address.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| CryptoError::Key(format!("KMS client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            app_id: app_id.to_string(),
            credential: SigningCredential::HmacSm3 {
                secret: hmac_secret.as_bytes().to_vec(),
            },
            http,
        })
    }

    async fn call(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, CryptoError> {
        let bytes = body.to_string().into_bytes();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .body(bytes.clone());
        let mut nonce = String::new();
        for (k, v) in self
            .credential
            .sign_request(&self.app_id, "POST", path, "", &bytes, now_ms)
        {
            if k == header::NONCE {
                nonce = v.clone();
            }
            req = req.header(k, v);
        }
        let answer = req
            .header("content-type", "application/json")
            .send()
            .await
            .map_err(|e| CryptoError::Key(format!("KMS unreachable: {e}")))?;
        let status = answer.status();
        let signature = answer
            .headers()
            .get(ANSWER_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v.trim()).ok());
        let body = answer
            .bytes()
            .await
            .map_err(|e| CryptoError::Key(format!("KMS answer unreadable: {e}")))?;
        if !status.is_success() {
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            return Err(CryptoError::Key(format!(
                "KMS refused ({status}): {}",
                value["code"].as_str().unwrap_or("unknown")
            )));
        }
        let SigningCredential::HmacSm3 { secret } = &self.credential else {
            return Err(CryptoError::Key(
                "KMS_ANSWER_UNAUTHENTICATED: no secret to check the answer with".into(),
            ));
        };
        let signed = answer_signing_string(path, &nonce, &body);
        if !signature.is_some_and(|tag| verify_hmac_sm3(secret, signed.as_bytes(), &tag)) {
            return Err(CryptoError::Key(
                "KMS_ANSWER_UNAUTHENTICATED: the KMS answer is not signed with the KMS credential for this request".into(),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| CryptoError::Key(format!("KMS answer unreadable: {e}")))
    }

    /// Wraps a data key under a master key (for key ceremonies and tests).
    pub async fn wrap_key(
        &self,
        master_key_id: &str,
        key: &[u8; 16],
    ) -> Result<Vec<u8>, CryptoError> {
        let v = self
            .call(
                "/v1/wrap",
                json!({ "master_key_id": master_key_id, "plaintext": hex::encode(key) }),
            )
            .await?;
        v["ciphertext"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| CryptoError::Key("KMS answer has no ciphertext".into()))
    }
}

impl Unwrap for HttpKms {
    async fn unwrap_key(
        &self,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> Result<[u8; 16], CryptoError> {
        let v = self
            .call(
                "/v1/unwrap",
                json!({ "master_key_id": master_key_id, "ciphertext": hex::encode(wrapped) }),
            )
            .await?;
        v["plaintext"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| CryptoError::Key("KMS answer is not a 16-byte key".into()))
    }
}

/// Checks a key ring file's form without unwrapping anything (for `hub check`); returns how
/// many entries are KMS-wrapped.
pub fn check_key_ring_file(path: &Path) -> Result<usize, CryptoError> {
    let (_, entries) = parse_ring(&read_ring_file(path)?)?;
    Ok(entries
        .iter()
        .filter(|(_, e)| matches!(e, RingEntry::Wrapped { .. }))
        .count())
}

/// Loads a key ring file whose entries are plain keys (32 hex digits) or KMS-wrapped
/// (`kms:<master key id>:<hex>`); wrapped entries need `kms`.
pub async fn load_key_ring<K: Unwrap>(
    path: &Path,
    kms: Option<&K>,
) -> Result<KeyRing, CryptoError> {
    let (current, entries) = parse_ring(&read_ring_file(path)?)?;
    let mut keys = BTreeMap::new();
    for (id, entry) in entries {
        let key = match entry {
            RingEntry::Plain(key) => key,
            RingEntry::Wrapped { master, bytes } => {
                let kms = kms.ok_or_else(|| {
                    CryptoError::Key(format!(
                        "key `{id}` is wrapped by a KMS, but no KMS is configured"
                    ))
                })?;
                kms.unwrap_key(&master, &bytes).await?
            }
        };
        keys.insert(id, key);
    }
    KeyRing::new(&current, keys)
}
