//! The at-rest encryption of personal files: SM4-GCM in chunks, so a file of any size is
//! encrypted and decrypted as it streams (the STREAM construction: each chunk is sealed on its
//! own with a nonce that carries the chunk's index and a "last chunk" flag, so chunks cannot be
//! reordered, dropped or the file cut short without the read failing).
//!
//! Each file gets a fresh random 16-byte data key, sealed by the hub's key ring
//! ([`hub_security::field::FieldCipher`], the same SM4-GCM key ring that seals personal fields on
//! Kafka) and kept in the object's own header, so an object is self-contained and the ring's key
//! id travels with it (rotation: new files use the ring's current key, old files still name
//! theirs).
//!
//! ```text
//! header:  "HUBFSM4\x01"              8 bytes, magic and format version 1
//!          chunk size                 4 bytes, big-endian (65536)
//!          nonce prefix               7 random bytes
//!          sealed key length          2 bytes, big-endian
//!          sealed data key            ASCII `sm4gcm:v1:<key id>:<base64url>` (FieldCipher,
//!                                     context `hub-files/v1/data-key`, plaintext = key as hex)
//! chunks:  SM4-GCM(data key, nonce = prefix ‖ index (4 bytes, big-endian) ‖ last (1 byte: 1 or 0),
//!                  aad = the whole header) of each chunk-size piece of the clear file:
//!          ciphertext ‖ 16-byte tag. Every chunk but the last holds exactly chunk-size bytes;
//!          the last holds 1..=chunk size bytes (an empty file is never stored).
//! ```

use hub_security::field::FieldCipher;
use hub_security::sm::{random, sm4_gcm_decrypt, sm4_gcm_encrypt};

use crate::error::{FileError, FileErrorCode};

pub(crate) const MAGIC: &[u8; 8] = b"HUBFSM4\x01";
pub(crate) const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const KEY_CONTEXT: &str = "hub-files/v1/data-key";

fn integrity(detail: &str) -> FileError {
    FileError::new(FileErrorCode::Integrity, detail.to_string())
}

fn nonce(prefix: &[u8; 7], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// The key id a sealed data key names (`sm4gcm:v1:<key id>:…`).
fn key_id_of(sealed: &str) -> Option<&str> {
    sealed
        .strip_prefix("sm4gcm:v1:")
        .and_then(|r| r.split_once(':'))
        .map(|(id, _)| id)
}

/// Encrypts a clear file chunk by chunk.
pub(crate) struct Encryptor {
    key: [u8; 16],
    prefix: [u8; 7],
    header: Vec<u8>,
    key_id: String,
    buf: Vec<u8>,
    index: u32,
}

impl Encryptor {
    pub(crate) fn new(cipher: &FieldCipher) -> Result<Self, FileError> {
        let key: [u8; 16] = random();
        let prefix: [u8; 7] = random();
        let sealed = cipher
            .seal(KEY_CONTEXT, &hex::encode(key))
            .map_err(|e| FileError::new(FileErrorCode::EncryptionUnavailable, e.to_string()))?;
        let key_id = key_id_of(&sealed)
            .ok_or_else(|| integrity("the key ring sealed the data key in an unknown form"))?
            .to_string();
        let len = u16::try_from(sealed.len()).map_err(|_| integrity("sealed key too long"))?;
        let mut header = Vec::with_capacity(21 + sealed.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(CHUNK as u32).to_be_bytes());
        header.extend_from_slice(&prefix);
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(sealed.as_bytes());
        Ok(Self {
            key,
            prefix,
            header,
            key_id,
            buf: Vec::with_capacity(2 * CHUNK),
            index: 0,
        })
    }

    pub(crate) fn header(&self) -> &[u8] {
        &self.header
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    fn seal(&mut self, piece: &[u8], last: bool) -> Result<Vec<u8>, FileError> {
        let n = nonce(&self.prefix, self.index, last);
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| integrity("too many chunks"))?;
        sm4_gcm_encrypt(&self.key, &n, &self.header, piece)
            .map_err(|e| FileError::new(FileErrorCode::EncryptionUnavailable, e.to_string()))
    }

    /// Takes clear bytes; returns the sealed chunks that are complete and certainly not last.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, FileError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        // Strictly more than one chunk buffered: the first is not the last.
        while self.buf.len() > CHUNK {
            let piece: Vec<u8> = self.buf.drain(..CHUNK).collect();
            out.extend_from_slice(&self.seal(&piece, false)?);
        }
        Ok(out)
    }

    /// Seals what is left as the last chunk.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, FileError> {
        let piece = std::mem::take(&mut self.buf);
        self.seal(&piece, true)
    }
}

/// Decrypts a stored object chunk by chunk.
pub(crate) struct Decryptor {
    key: [u8; 16],
    prefix: [u8; 7],
    header: Vec<u8>,
    chunk: usize,
    buf: Vec<u8>,
    index: u32,
}

impl Decryptor {
    /// Reads the header from the start of `data`; `Ok(None)` when more bytes are needed.
    /// Returns the decryptor and how many bytes the header took.
    pub(crate) fn from_header(
        data: &[u8],
        cipher: &FieldCipher,
    ) -> Result<Option<(Self, usize)>, FileError> {
        if data.len() < 21 {
            return Ok(None);
        }
        if &data[..8] != MAGIC {
            return Err(integrity(
                "the object is not in the hub-files encrypted format",
            ));
        }
        let chunk = u32::from_be_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
        if chunk == 0 || chunk > 16 * 1024 * 1024 {
            return Err(integrity("the object's chunk size is out of range"));
        }
        let prefix: [u8; 7] = data[12..19].try_into().expect("7 bytes");
        let len = u16::from_be_bytes(data[19..21].try_into().expect("2 bytes")) as usize;
        if data.len() < 21 + len {
            return Ok(None);
        }
        let sealed = std::str::from_utf8(&data[21..21 + len])
            .map_err(|_| integrity("the sealed data key is not text"))?;
        let hex_key = cipher.open(KEY_CONTEXT, sealed).map_err(|e| match e {
            hub_security::CryptoError::UnknownKey(id) => FileError::new(
                FileErrorCode::EncryptionUnavailable,
                format!("the file's key `{id}` is not in the key ring"),
            ),
            _ => integrity("the data key does not unseal"),
        })?;
        let key: [u8; 16] = hex::decode(hex_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| integrity("the data key is malformed"))?;
        Ok(Some((
            Self {
                key,
                prefix,
                header: data[..21 + len].to_vec(),
                chunk,
                buf: Vec::new(),
                index: 0,
            },
            21 + len,
        )))
    }

    fn open(&mut self, record: &[u8], last: bool) -> Result<Vec<u8>, FileError> {
        let n = nonce(&self.prefix, self.index, last);
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| integrity("too many chunks"))?;
        sm4_gcm_decrypt(&self.key, &n, &self.header, record)
            .map_err(|_| integrity("a chunk does not decrypt (damaged, reordered or cut short)"))
    }

    /// Takes stored bytes; returns the clear bytes of the records that are complete and
    /// certainly not last.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, FileError> {
        self.buf.extend_from_slice(data);
        let record = self.chunk + TAG;
        let mut out = Vec::new();
        while self.buf.len() > record {
            let r: Vec<u8> = self.buf.drain(..record).collect();
            out.extend_from_slice(&self.open(&r, false)?);
        }
        Ok(out)
    }

    /// Opens what is left as the last record.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>, FileError> {
        let r = std::mem::take(&mut self.buf);
        if r.len() < TAG {
            return Err(integrity("the object is cut short"));
        }
        self.open(&r, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_security::field::KeyRing;

    fn cipher() -> FieldCipher {
        FieldCipher::new(
            KeyRing::from_toml(
                "current = \"k1\"\n[keys]\nk1 = \"0123456789abcdeffedcba9876543210\"\n",
            )
            .unwrap(),
        )
    }

    fn seal_all(data: &[u8], pieces: usize) -> Vec<u8> {
        let mut e = Encryptor::new(&cipher()).unwrap();
        let mut out = e.header().to_vec();
        for p in data.chunks(pieces.max(1)) {
            out.extend(e.push(p).unwrap());
        }
        out.extend(e.finish().unwrap());
        out
    }

    fn open_all(stored: &[u8], pieces: usize) -> Result<Vec<u8>, FileError> {
        let c = cipher();
        let (mut d, used) = Decryptor::from_header(stored, &c)?.expect("whole header");
        let mut out = Vec::new();
        for p in stored[used..].chunks(pieces.max(1)) {
            out.extend(d.push(p)?);
        }
        out.extend(d.finish()?);
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for len in [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for pieces in [1000, CHUNK, 7 * CHUNK] {
                let stored = seal_all(&data, pieces);
                assert_eq!(open_all(&stored, 777).unwrap(), data, "len {len}");
            }
        }
    }

    #[test]
    fn truncation_reordering_and_tampering_are_detected() {
        let data: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 13) as u8).collect();
        let stored = seal_all(&data, 4096);
        let header_len = Decryptor::from_header(&stored, &cipher())
            .unwrap()
            .unwrap()
            .1;
        // Cut after the second full record: the last-flag no longer matches.
        let cut = &stored[..header_len + 2 * (CHUNK + TAG)];
        assert_eq!(
            open_all(cut, 999).unwrap_err().code,
            FileErrorCode::Integrity
        );
        let mut flipped = stored.clone();
        flipped[header_len + 10] ^= 1;
        assert_eq!(
            open_all(&flipped, 999).unwrap_err().code,
            FileErrorCode::Integrity
        );
        // The clear bytes do not appear in what is stored.
        assert!(!stored.windows(64).any(|w| w == &data[CHUNK..CHUNK + 64]));
    }
}
