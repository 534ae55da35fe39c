//! SM2, SM3 and SM4 as the hub uses them, in the encodings partners' implementations use
//! (GmSSL, the `sm-crypto` npm package, Python `gmssl`, BouncyCastle):
//!
//! * SM3 digests and HMAC-SM3 as lowercase hex;
//! * SM2 signatures over SM3 with the default distinguishing id `1234567812345678`, as raw
//!   `r‖s` (64 bytes), public keys as uncompressed points (`04‖x‖y`, or `x‖y` as Python
//!   `gmssl` writes them), private keys as 32 bytes;
//! * SM2 encryption in C1C3C2 order (the current standard's; GmSSL's and `gmssl`'s mode 1);
//! * SM4-CBC with PKCS#7 padding and SM4-GCM with a 12-byte nonce and a 16-byte tag.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, Mac};
use sm2::dsa::signature::{Signer, Verifier};
use sm3::{Digest, Sm3};

use crate::CryptoError;

/// The default SM2 distinguishing id of GB/T 32918 and GM/T 0009.
pub const DEFAULT_SM2_ID: &str = "1234567812345678";

/// SM3 digest.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// SM3 digest as lowercase hex.
pub fn sm3_hex(data: &[u8]) -> String {
    hex::encode(sm3(data))
}

type HmacSm3 = Hmac<Sm3>;

/// HMAC-SM3 of `data` under `key`.
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSm3::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SM3 in constant time.
pub fn verify_hmac_sm3(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut mac = HmacSm3::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

/// Parses an SM2 public key: uncompressed SEC1 (`04‖x‖y`, 65 bytes) or bare `x‖y` (64 bytes).
fn public_key_bytes(key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match key.len() {
        65 if key[0] == 4 => Ok(key.to_vec()),
        64 => Ok([&[4u8][..], key].concat()),
        33 if key[0] == 2 || key[0] == 3 => Ok(key.to_vec()),
        n => Err(CryptoError::Key(format!(
            "an SM2 public key is 64 or 65 bytes (x‖y or 04‖x‖y), not {n}"
        ))),
    }
}

/// An SM2 private key that signs and decrypts.
#[derive(Clone)]
pub struct Sm2PrivateKey {
    signing: sm2::dsa::SigningKey,
    secret: sm2::SecretKey,
}

impl std::fmt::Debug for Sm2PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Sm2PrivateKey(public {})", self.public_key_hex())
    }
}

impl Sm2PrivateKey {
    /// From the 32-byte private scalar.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let secret = sm2::SecretKey::from_slice(bytes).map_err(|_| {
            CryptoError::Key("an SM2 private key is a 32-byte scalar in range".into())
        })?;
        let signing = sm2::dsa::SigningKey::new(DEFAULT_SM2_ID, &secret)
            .map_err(|_| CryptoError::Key("unusable SM2 private key".into()))?;
        Ok(Self { signing, secret })
    }

    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&hex::decode(text.trim()).map_err(|e| CryptoError::Key(e.to_string()))?)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the operating system's random source works");
            if let Ok(k) = Self::from_bytes(&bytes) {
                return k;
            }
        }
    }

    /// The 32-byte private scalar (for handing a key to another implementation in tests and
    /// key ceremonies; never log it).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes().into()
    }

    /// The public key, uncompressed (`04‖x‖y`).
    pub fn public_key(&self) -> Vec<u8> {
        self.signing.verifying_key().to_sec1_bytes().to_vec()
    }

    /// The public key as hex of `04‖x‖y`.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Signs `message` (SM3 with Z computed from the default id); returns `r‖s`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let sig: sm2::dsa::Signature = self.signing.sign(message);
        sig.to_bytes().into()
    }

    /// Decrypts SM2 ciphertext in C1C3C2 order, C1 uncompressed with or without its leading
    /// 0x04 (Python gmssl and npm sm-crypto omit it by default).
    ///
    /// The first byte cannot tell the two forms apart: without the prefix, C1 starts with the
    /// x coordinate, whose first byte is 0x04 once in 256 ciphertexts. So a ciphertext starting
    /// with 0x04 is read as prefixed and, if that does not decrypt, as unprefixed; C3 (an SM3
    /// over the plaintext and the shared point) authenticates whichever reading succeeds.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = sm2::pke::DecryptingKey::new_with_mode(
            self.secret.to_nonzero_scalar(),
            sm2::pke::Mode::C1C3C2,
        );
        let unprefixed = || key.decrypt(&[&[4u8][..], ciphertext].concat());
        let result = if ciphertext.first() == Some(&4) {
            key.decrypt(ciphertext).or_else(|_| unprefixed())
        } else {
            unprefixed()
        };
        result.map_err(|_| CryptoError::Decrypt)
    }

    /// Decrypts an SM2-wrapped key of `key_len` bytes (C1C3C2), deciding by the length alone
    /// whether C1 carries its 0x04 prefix (65 + 32 + `key_len` bytes) or not (64 + 32 +
    /// `key_len`); any other length is refused.
    pub fn decrypt_key(&self, ciphertext: &[u8], key_len: usize) -> Result<Vec<u8>, CryptoError> {
        let key = sm2::pke::DecryptingKey::new_with_mode(
            self.secret.to_nonzero_scalar(),
            sm2::pke::Mode::C1C3C2,
        );
        let plain = if ciphertext.len() == 65 + 32 + key_len && ciphertext[0] == 4 {
            key.decrypt(ciphertext)
        } else if ciphertext.len() == 64 + 32 + key_len {
            key.decrypt(&[&[4u8][..], ciphertext].concat())
        } else {
            return Err(CryptoError::Decrypt);
        };
        plain
            .ok()
            .filter(|p| p.len() == key_len)
            .ok_or(CryptoError::Decrypt)
    }
}

/// Verifies an SM2 signature (`r‖s`, 64 bytes) by `public_key` over `message`, with the
/// default distinguishing id.
pub fn sm2_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
    sm2_verify_with_id(DEFAULT_SM2_ID, public_key, message, signature)
}

/// Verifies an SM2 signature made with distinguishing id `id`.
pub fn sm2_verify_with_id(
    id: &str,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes(id, &public_key_bytes(public_key)?)
        .map_err(|_| CryptoError::Key("not a point on the SM2 curve".into()))?;
    let sig = sm2::dsa::Signature::from_slice(signature).map_err(|_| CryptoError::Signature)?;
    key.verify(message, &sig)
        .map_err(|_| CryptoError::Signature)
}

/// Encrypts with an SM2 public key, C1C3C2, C1 uncompressed with its 0x04 prefix.
pub fn sm2_encrypt(public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let point = sm2::PublicKey::from_sec1_bytes(&public_key_bytes(public_key)?)
        .map_err(|_| CryptoError::Key("not a point on the SM2 curve".into()))?;
    let key = sm2::pke::EncryptingKey::new_with_mode(point, sm2::pke::Mode::C1C3C2);
    key.encrypt(&mut getrandom::SysRng, plaintext)
        .map_err(|_| CryptoError::Encrypt)
}

type Sm4CbcEnc = cbc::Encryptor<sm4::Sm4>;
type Sm4CbcDec = cbc::Decryptor<sm4::Sm4>;
type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, aes_gcm::aead::consts::U12>;

fn sm4_key(key: &[u8]) -> Result<[u8; 16], CryptoError> {
    key.try_into()
        .map_err(|_| CryptoError::Key(format!("an SM4 key is 16 bytes, not {}", key.len())))
}

/// SM4-CBC with PKCS#7 padding.
pub fn sm4_cbc_encrypt(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| CryptoError::Key("an SM4-CBC IV is 16 bytes".into()))?;
    let enc = Sm4CbcEnc::new(&sm4_key(key)?.into(), &iv.into());
    Ok(enc.encrypt_padded_vec::<Pkcs7>(plaintext))
}

/// SM4-CBC with PKCS#7 padding; a wrong key or damaged ciphertext fails on the padding.
pub fn sm4_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| CryptoError::Key("an SM4-CBC IV is 16 bytes".into()))?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CryptoError::Decrypt);
    }
    let dec = Sm4CbcDec::new(&sm4_key(key)?.into(), &iv.into());
    dec.decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| CryptoError::Decrypt)
}

/// SM4-GCM: returns `ciphertext‖tag`.
pub fn sm4_gcm_encrypt(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = Sm4Gcm::new(&sm4_key(key)?.into());
    cipher
        .encrypt(
            &(*nonce).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)
}

/// SM4-GCM: takes `ciphertext‖tag`; fails if anything (key, nonce, data, aad) was altered.
pub fn sm4_gcm_decrypt(
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = Sm4Gcm::new(&sm4_key(key)?.into());
    cipher
        .decrypt(&(*nonce).into(), Payload { msg: sealed, aad })
        .map_err(|_| CryptoError::Decrypt)
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source works");
    out
}
