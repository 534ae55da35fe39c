//! The digests the schemes use, and HMAC (RFC 2104) over any of them.
//!
//! SM3 comes from `hub-security` (RustCrypto `sm3`), SHA-256 from `sha2`, MD5 from `md-5` (a
//! legacy option only). HMAC is written once here over a 64-byte block, which all three share.

use md5::Digest as _;
use serde::Deserialize;

/// A digest named in `adapter.toml`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
pub enum Algorithm {
    #[serde(rename = "sm3")]
    Sm3,
    #[serde(rename = "hmac-sm3")]
    HmacSm3,
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// Legacy only: MD5 is broken; `hub check` warns about it.
    #[serde(rename = "md5")]
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sm3 => "sm3",
            Algorithm::HmacSm3 => "hmac-sm3",
            Algorithm::Sha256 => "sha256",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::Md5 => "md5",
        }
    }

    /// Keyed by the secret (HMAC), rather than the secret joined into the string.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HmacSm3 | Algorithm::HmacSha256)
    }

    /// The digest of `data`, unkeyed (for HMAC algorithms, their underlying hash).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sm3 | Algorithm::HmacSm3 => hub_security::sm::sm3(data).to_vec(),
            Algorithm::Sha256 | Algorithm::HmacSha256 => sha256(data).to_vec(),
            Algorithm::Md5 => md5::Md5::digest(data).to_vec(),
        }
    }

    /// HMAC of `data` under `key` with the algorithm's hash.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac(|d| self.hash(d), key, data)
    }
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// HMAC-SHA256.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let out = hmac(|d| sha256(d).to_vec(), key, data);
    let mut a = [0u8; 32];
    a.copy_from_slice(&out);
    a
}

/// RFC 2104 over a hash with a 64-byte block (SM3, SHA-256, MD5).
fn hmac(hash: impl Fn(&[u8]) -> Vec<u8>, key: &[u8], data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(BLOCK, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hash(&inner));
    hash(&outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vectors() {
        // FIPS 180-2 "abc"; RFC 1321 "abc"; RFC 4231 test case 2 (HMAC-SHA256).
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(Algorithm::Md5.hash(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // HMAC-SM3 here and in hub-security agree.
        assert_eq!(
            Algorithm::HmacSm3.hmac(b"k", b"data"),
            hub_security::sm::hmac_sm3(b"k", b"data").to_vec()
        );
    }
}
