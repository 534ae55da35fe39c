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

use serde::Deserialize;
use serde_json::json;

use crate::field::KeyRing;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RingFile {
    current: String,
    keys: BTreeMap<String, String>,
}

/// Checks a key ring file's form without unwrapping anything (for `hub check`); returns how
/// many entries are KMS-wrapped.
pub fn check_key_ring_file(path: &Path) -> Result<usize, CryptoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CryptoError::Key(format!("cannot read {}: {e}", path.display())))?;
    let file: RingFile =
        toml::from_str(&text).map_err(|e| CryptoError::Key(e.message().to_string()))?;
    if !file.keys.contains_key(&file.current) {
        return Err(CryptoError::UnknownKey(file.current));
    }
    let mut wrapped = 0;
    for (id, value) in &file.keys {
        match value.trim().strip_prefix("kms:") {
            Some(rest) => {
                let ok = rest
                    .split_once(':')
                    .is_some_and(|(m, h)| !m.is_empty() && hex::decode(h).is_ok());
                if !ok {
                    return Err(CryptoError::Key(format!(
                        "key `{id}`: write kms:<master key id>:<hex>"
                    )));
                }
                wrapped += 1;
            }
            None => {
                if hex::decode(value.trim()).map(|b| b.len()).ok() != Some(16) {
                    return Err(CryptoError::Key(format!(
                        "key `{id}` is not 32 hex digits (16 bytes)"
                    )));
                }
            }
        }
    }
    Ok(wrapped)
}

/// Loads a key ring file whose entries are plain keys (32 hex digits) or KMS-wrapped
/// (`kms:<master key id>:<hex>`); wrapped entries need `kms`.
pub async fn load_key_ring<K: Unwrap>(
    path: &Path,
    kms: Option<&K>,
) -> Result<KeyRing, CryptoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CryptoError::Key(format!("cannot read {}: {e}", path.display())))?;
    let file: RingFile =
        toml::from_str(&text).map_err(|e| CryptoError::Key(e.message().to_string()))?;
    let mut keys = BTreeMap::new();
    for (id, value) in file.keys {
        let key = match value.trim().strip_prefix("kms:") {
            Some(rest) => {
                let (master, wrapped) = rest.split_once(':').ok_or_else(|| {
                    CryptoError::Key(format!("key `{id}`: write kms:<master key id>:<hex>"))
                })?;
                let wrapped = hex::decode(wrapped).map_err(|_| {
                    CryptoError::Key(format!("key `{id}`: the wrapped key is not hex"))
                })?;
                let kms = kms.ok_or_else(|| {
                    CryptoError::Key(format!(
                        "key `{id}` is wrapped by a KMS, but no KMS is configured"
                    ))
                })?;
                kms.unwrap_key(master, &wrapped).await?
            }
            None => hex::decode(value.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    CryptoError::Key(format!("key `{id}` is not 32 hex digits (16 bytes)"))
                })?,
        };
        keys.insert(id, key);
    }
    KeyRing::new(&file.current, keys)
}
