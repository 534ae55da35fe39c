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
//! A vendor KMS with another API gets its own [`Unwrap`] implementation; the simulator used by
//! the tests (`tests/src/bin/kms_sim.rs`) implements this one.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::field::{parse_ring, read_ring_file, KeyRing, RingEntry};
use crate::signing::SigningCredential;
use crate::CryptoError;

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
    pub fn new(base_url: &str, app_id: &str, hmac_secret: &str) -> Result<Self, CryptoError> {
        let http = reqwest::Client::builder()
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
        for (k, v) in self
            .credential
            .sign_request(&self.app_id, "POST", path, "", &bytes, now_ms)
        {
            req = req.header(k, v);
        }
        let answer = req
            .header("content-type", "application/json")
            .send()
            .await
            .map_err(|e| CryptoError::Key(format!("KMS unreachable: {e}")))?;
        let status = answer.status();
        let value: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| CryptoError::Key(format!("KMS answer unreadable: {e}")))?;
        if !status.is_success() {
            return Err(CryptoError::Key(format!(
                "KMS refused ({status}): {}",
                value["code"].as_str().unwrap_or("unknown")
            )));
        }
        Ok(value)
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
