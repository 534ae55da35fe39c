//! Hub file ids: `sm3:<64 lowercase hex digits>`, the SM3 digest of the file's clear content.
//!
//! Content addressing was chosen over an opaque id mapped to a digest: the id itself proves the
//! content (anyone holding the file recomputes it, a partner included), the same file stored
//! twice is stored once, and no mapping table has to be kept consistent with the objects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FileError, FileErrorCode};

/// A stored file's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId([u8; 32]);

impl FileId {
    pub const PREFIX: &'static str = "sm3:";

    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The id of some clear content.
    pub fn of(content: &[u8]) -> Self {
        Self(hub_security::sm::sm3(content))
    }

    pub fn parse(text: &str) -> Result<Self, FileError> {
        let bad = || {
            FileError::new(
                FileErrorCode::IdInvalid,
                "a file id is `sm3:` and 64 lowercase hex digits",
            )
        };
        let hex_part = text.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad());
        }
        let mut d = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut d).map_err(|_| bad())?;
        Ok(Self(d))
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The SM3 digest as lowercase hex (what a partner computes to check the file).
    pub fn sm3_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.sm3_hex())
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({self})")
    }
}

impl FromStr for FileId {
    type Err = FileError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for FileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_anything_else() {
        let id = FileId::of(b"abc");
        // GB/T 32905 example A.1: SM3("abc").
        assert_eq!(
            id.to_string(),
            "sm3:66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(FileId::parse(&id.to_string()).unwrap(), id);
        for bad in [
            "",
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
            "sm3:66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0",
            "sm3:66c7",
            "sha256:66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
            "sm3:../../etc/passwd",
        ] {
            assert_eq!(
                FileId::parse(bad).unwrap_err().code,
                FileErrorCode::IdInvalid,
                "{bad}"
            );
        }
    }
}
