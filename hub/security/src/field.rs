//! Field-by-field encryption of personal data with SM4-GCM and a rotating key ring.
//!
//! A personal field (a contract field marked `x-pii`) leaves the gateway as text of the form
//!
//! ```text
//! sm4gcm:v1:<key id>:<base64url, no padding, of nonce(12) ‖ ciphertext ‖ tag(16)>
//! ```
//!
//! The key id travels with the ciphertext, so keys rotate without re-encrypting what is already
//! on Kafka: new values use the ring's current key, old values still name theirs. The
//! authenticated data is `<context>|<key id>`, where the caller's context names the contract
//! and field (`hotline.ticket.dispatched.v1/caller_phone`): a ciphertext moved to another field
//! or record type does not decrypt.
//!
//! The key ring file (TOML) is the embedded default; production keys come from a KMS (gateway
//! issue) through the same [`KeyRing`].
//!
//! ```toml
//! current = "2026-11"
//! [keys]
//! "2026-11" = "0123456789abcdeffedcba9876543210"   # 16 bytes, hex
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::sm::{random, sm4_gcm_decrypt, sm4_gcm_encrypt};
use crate::CryptoError;

const PREFIX: &str = "sm4gcm:v1:";

/// Named SM4 keys and which one encrypts.
#[derive(Clone)]
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, [u8; 16]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only, never key bytes.
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRingFile {
    current: String,
    keys: BTreeMap<String, String>,
}

/// One entry of a key ring file: a plain key, or a data key wrapped by a KMS
/// (`kms:<master key id>:<hex>`).
pub(crate) enum RingEntry {
    Plain([u8; 16]),
    Wrapped { master: String, bytes: Vec<u8> },
}

/// The one parser of key ring files: the current key id and every entry, checked for form.
pub(crate) fn parse_ring(text: &str) -> Result<(String, Vec<(String, RingEntry)>), CryptoError> {
    let file: KeyRingFile =
        toml::from_str(text).map_err(|e| CryptoError::Key(e.message().to_string()))?;
    if !file.keys.contains_key(&file.current) {
        return Err(CryptoError::UnknownKey(file.current));
    }
    let mut entries = Vec::with_capacity(file.keys.len());
    for (id, value) in file.keys {
        let entry = match value.trim().strip_prefix("kms:") {
            Some(rest) => {
                let (master, wrapped) = rest
                    .split_once(':')
                    .filter(|(m, _)| !m.is_empty())
                    .ok_or_else(|| {
                        CryptoError::Key(format!("key `{id}`: write kms:<master key id>:<hex>"))
                    })?;
                let bytes = hex::decode(wrapped).map_err(|_| {
                    CryptoError::Key(format!("key `{id}`: the wrapped key is not hex"))
                })?;
                RingEntry::Wrapped {
                    master: master.to_string(),
                    bytes,
                }
            }
            None => RingEntry::Plain(
                hex::decode(value.trim())
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .ok_or_else(|| {
                        CryptoError::Key(format!("key `{id}` is not 32 hex digits (16 bytes)"))
                    })?,
            ),
        };
        entries.push((id, entry));
    }
    Ok((file.current, entries))
}

/// The marker line of a development key ring (`ops/dev-keyring.toml`): its keys are public.
pub const DEVELOPMENT_MARKER: &str = "DEVELOPMENT ONLY";

/// Keys published with the project (the development ring, the examples in `docs/`): anyone can
/// read them, so a ring holding one protects nothing.
const PUBLIC_KEYS: &[&str] = &[
    "5cf2082bb24e3d4d657062eddda7925d",
    "0123456789abcdeffedcba9876543210",
    "000102030405060708090a0b0c0d0e0f",
];

/// Why a key ring file's text is a development ring, if it is one: it carries
/// [`DEVELOPMENT_MARKER`], or a plain key that was published. Never names key bytes.
pub fn development_ring(text: &str) -> Option<String> {
    if text.contains(DEVELOPMENT_MARKER) {
        return Some(format!("the file is marked `{DEVELOPMENT_MARKER}`"));
    }
    let (_, entries) = parse_ring(text).ok()?;
    let public: Vec<&str> = entries
        .iter()
        .filter_map(|(id, e)| match e {
            RingEntry::Plain(k) if PUBLIC_KEYS.contains(&hex::encode(k).as_str()) => {
                Some(id.as_str())
            }
            _ => None,
        })
        .collect();
    (!public.is_empty()).then(|| format!("key(s) {} are published keys", public.join(", ")))
}

/// Reads a key ring file's text.
pub(crate) fn read_ring_file(path: &Path) -> Result<String, CryptoError> {
    std::fs::read_to_string(path)
        .map_err(|e| CryptoError::Key(format!("cannot read {}: {e}", path.display())))
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl KeyRing {
    pub fn new(current: &str, keys: BTreeMap<String, [u8; 16]>) -> Result<Self, CryptoError> {
        if let Some(bad) = keys.keys().find(|k| !valid_key_id(k)) {
            return Err(CryptoError::Key(format!(
                "key id `{bad}` must be 1–64 characters of A–Z a–z 0–9 - _ ."
            )));
        }
        if !keys.contains_key(current) {
            return Err(CryptoError::UnknownKey(current.to_string()));
        }
        Ok(Self {
            current: current.to_string(),
            keys,
        })
    }

    /// Parses a key ring file's text whose keys are all plain (for wrapped keys see
    /// [`crate::kms::load_key_ring`]).
    pub fn from_toml(text: &str) -> Result<Self, CryptoError> {
        let (current, entries) = parse_ring(text)?;
        let mut keys = BTreeMap::new();
        for (id, entry) in entries {
            match entry {
                RingEntry::Plain(key) => {
                    keys.insert(id, key);
                }
                RingEntry::Wrapped { .. } => {
                    return Err(CryptoError::Key(format!(
                        "key `{id}` is wrapped by a KMS, but no KMS is configured"
                    )))
                }
            }
        }
        Self::new(&current, keys)
    }

    /// Reads a key ring file whose keys are all plain.
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        Self::from_toml(&read_ring_file(path)?)
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }
}

/// Encrypts and decrypts personal fields.
#[derive(Debug, Clone)]
pub struct FieldCipher {
    ring: KeyRing,
}

impl FieldCipher {
    pub fn new(ring: KeyRing) -> Self {
        Self { ring }
    }

    /// Is this value already a field ciphertext?
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }

    /// `sm4gcm:v1:<key id>` of a well-formed field ciphertext (a valid key id and a base64url
    /// payload long enough for nonce and tag), for screens that show which key sealed a value;
    /// `None` for anything else, including clear text written with the prefix in front, which
    /// must then be masked as clear text.
    pub fn sealed_label(value: &str) -> Option<String> {
        let (id, b64) = value.strip_prefix(PREFIX)?.split_once(':')?;
        let blob = URL_SAFE_NO_PAD.decode(b64).ok()?;
        (valid_key_id(id) && blob.len() >= 12 + 16).then(|| format!("{PREFIX}{id}"))
    }

    /// Encrypts `plaintext` for the field named by `context`, with the current key.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, CryptoError> {
        let id = &self.ring.current;
        let key = &self.ring.keys[id];
        let nonce: [u8; 12] = random();
        let aad = format!("{context}|{id}");
        let sealed = sm4_gcm_encrypt(key, &nonce, aad.as_bytes(), plaintext.as_bytes())?;
        let mut blob = Vec::with_capacity(12 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Decrypts a value sealed for `context`, with whichever key it names.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, CryptoError> {
        let rest = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| CryptoError::Format("not an sm4gcm:v1 field ciphertext".into()))?;
        let (id, b64) = rest
            .split_once(':')
            .ok_or_else(|| CryptoError::Format("no key id".into()))?;
        let key = self
            .ring
            .keys
            .get(id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| CryptoError::Format("the payload is not base64url".into()))?;
        if blob.len() < 12 + 16 {
            return Err(CryptoError::Format("too short for nonce and tag".into()));
        }
        let nonce: [u8; 12] = blob[..12].try_into().expect("checked length");
        let aad = format!("{context}|{id}");
        let plain = sm4_gcm_decrypt(key, &nonce, aad.as_bytes(), &blob[12..])?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: &str) -> KeyRing {
        KeyRing::from_toml(&format!(
            "current = \"{current}\"\n[keys]\n\"2026-10\" = \"000102030405060708090a0b0c0d0e0f\"\n\"2026-11\" = \"0123456789abcdeffedcba9876543210\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_field_round_trips_and_names_its_key() {
        let c = FieldCipher::new(ring("2026-11"));
        let sealed = c
            .seal("hotline.ticket.dispatched.v1/caller_phone", "13800138000")
            .unwrap();
        assert!(sealed.starts_with("sm4gcm:v1:2026-11:"), "{sealed}");
        assert!(!sealed.contains("13800138000"));
        assert!(FieldCipher::is_sealed(&sealed));
        assert_eq!(
            c.open("hotline.ticket.dispatched.v1/caller_phone", &sealed)
                .unwrap(),
            "13800138000"
        );
        // Same plaintext, fresh nonce: different ciphertext.
        assert_ne!(
            c.seal("x", "13800138000").unwrap(),
            c.seal("x", "13800138000").unwrap()
        );
    }

    #[test]
    fn keys_rotate_without_re_encrypting() {
        let old = FieldCipher::new(ring("2026-10"))
            .seal("ctx", "张三")
            .unwrap();
        let rotated = FieldCipher::new(ring("2026-11"));
        assert_eq!(rotated.open("ctx", &old).unwrap(), "张三");
        assert!(rotated
            .seal("ctx", "张三")
            .unwrap()
            .starts_with("sm4gcm:v1:2026-11:"));
    }

    #[test]
    fn tampering_moving_or_an_unknown_key_is_refused() {
        let c = FieldCipher::new(ring("2026-11"));
        let sealed = c.seal("t/caller_phone", "13800138000").unwrap();
        assert_eq!(
            c.open("t/caller_name", &sealed),
            Err(CryptoError::Decrypt),
            "bound to its field"
        );
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            c.open("t/caller_phone", &String::from_utf8(flipped).unwrap()),
            Err(CryptoError::Decrypt)
        );
        let foreign = sealed.replace(":2026-11:", ":2025-01:");
        assert_eq!(
            c.open("t/caller_phone", &foreign),
            Err(CryptoError::UnknownKey("2025-01".into()))
        );
        assert!(matches!(
            c.open("t/caller_phone", "13800138000"),
            Err(CryptoError::Format(_))
        ));
    }

    #[test]
    fn a_bad_key_ring_is_refused_without_echoing_keys() {
        let err = KeyRing::from_toml("current = \"a\"\n[keys]\na = \"00112233\"\n").unwrap_err();
        assert_eq!(
            err,
            CryptoError::Key("key `a` is not 32 hex digits (16 bytes)".into())
        );
        assert!(matches!(
            KeyRing::from_toml(
                "current = \"b\"\n[keys]\na = \"0123456789abcdeffedcba9876543210\"\n"
            ),
            Err(CryptoError::UnknownKey(_))
        ));
        let debug = format!("{:?}", ring("2026-11"));
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }
}
