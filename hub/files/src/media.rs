//! Media types the store knows, recognised by their magic bytes, never by the declared type
//! alone.
//!
//! | media type | recognised by |
//! |---|---|
//! | `application/pdf` | starts with `%PDF-` |
//! | `image/png` | the 8-byte PNG signature |
//! | `image/jpeg` | `FF D8 FF` |
//! | `application/ofd` | a zip (`PK\3\4`) whose first 64 KiB name the entry `OFD.xml` (GB/T 33190) |
//! | `application/zip` | `PK\3\4` or `PK\5\6` (an empty archive) |
//! | `text/csv`, `text/plain` | no NUL byte and no control character other than TAB, LF, CR, FF, ESC, in the whole file; any charset (GBK files are common) |
//!
//! Text is checked over every byte as it streams by, so a binary payload behind a text-looking
//! first chunk is still refused.

use crate::error::{FileError, FileErrorCode};

/// How many leading bytes [`sniff`] looks at.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// A media type the store can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    Ofd,
    Zip,
    Csv,
    Text,
}

impl MediaType {
    pub const ALL: &'static [MediaType] = &[
        MediaType::Pdf,
        MediaType::Png,
        MediaType::Jpeg,
        MediaType::Ofd,
        MediaType::Zip,
        MediaType::Csv,
        MediaType::Text,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Ofd => "application/ofd",
            MediaType::Zip => "application/zip",
            MediaType::Csv => "text/csv",
            MediaType::Text => "text/plain",
        }
    }

    /// Parses a declared type (`Content-Type` value): parameters such as `; charset=GBK` are
    /// ignored, case too. `None` for a type the store does not know.
    pub fn parse(declared: &str) -> Option<MediaType> {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/pdf" => MediaType::Pdf,
            "image/png" => MediaType::Png,
            "image/jpeg" | "image/jpg" => MediaType::Jpeg,
            "application/ofd" => MediaType::Ofd,
            "application/zip" | "application/x-zip-compressed" => MediaType::Zip,
            "text/csv" => MediaType::Csv,
            "text/plain" => MediaType::Text,
            _ => return None,
        })
    }

    pub fn is_text(self) -> bool {
        matches!(self, MediaType::Csv | MediaType::Text)
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Is `b` allowed in a text file?
fn text_byte(b: u8) -> bool {
    b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)
}

/// Checks a chunk of a text file (every chunk, not only the first).
pub(crate) fn text_chunk_ok(chunk: &[u8]) -> bool {
    chunk.iter().all(|&b| text_byte(b))
}

/// What the leading bytes are, as far as they tell. Text is only a candidate here: the whole
/// file is checked as it streams ([`text_chunk_ok`]).
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    if head.starts_with(b"%PDF-") {
        return Some(MediaType::Pdf);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(MediaType::Png);
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(MediaType::Jpeg);
    }
    if head.starts_with(b"PK\x03\x04") {
        let window = &head[..head.len().min(SNIFF_BYTES)];
        if window.windows(7).any(|w| w == b"OFD.xml") {
            return Some(MediaType::Ofd);
        }
        return Some(MediaType::Zip);
    }
    if head.starts_with(b"PK\x05\x06") {
        return Some(MediaType::Zip);
    }
    if !head.is_empty() && text_chunk_ok(head) {
        return Some(MediaType::Text);
    }
    None
}

/// Decides a file's media type from its leading bytes and what the sender declared, against
/// the allow-list: the content must be recognised, must agree with the declared type, and the
/// result must be allowed.
pub fn decide(
    head: &[u8],
    declared: Option<&str>,
    allowed: &[MediaType],
) -> Result<MediaType, FileError> {
    let declared_type = match declared.map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        // An unspecific declaration says nothing: the content decides.
        Some(d) if d.eq_ignore_ascii_case("application/octet-stream") => None,
        Some(d) => Some(MediaType::parse(d).ok_or_else(|| {
            FileError::new(
                FileErrorCode::TypeNotAllowed,
                format!(
                    "declared type `{}` is not one the store accepts",
                    printable(d)
                ),
            )
        })?),
    };
    let sniffed = sniff(head).ok_or_else(|| match declared_type {
        Some(d) => FileError::new(
            FileErrorCode::TypeMismatch,
            format!("declared {d}, but the content is none of the known types"),
        ),
        None => FileError::new(
            FileErrorCode::TypeUnrecognised,
            "the content is none of PDF, PNG, JPEG, OFD, zip or text",
        ),
    })?;
    let chosen = match declared_type {
        None => sniffed,
        Some(d) if d == sniffed => d,
        // Text content declared as CSV is CSV; an OFD declared as a zip is a zip.
        Some(MediaType::Csv) if sniffed == MediaType::Text => MediaType::Csv,
        Some(MediaType::Zip) if sniffed == MediaType::Ofd => MediaType::Zip,
        Some(d) => {
            return Err(FileError::new(
                FileErrorCode::TypeMismatch,
                format!("declared {d}, but the content is {sniffed}"),
            ))
        }
    };
    if !allowed.contains(&chosen) {
        return Err(FileError::new(
            FileErrorCode::TypeNotAllowed,
            format!(
                "{chosen} is not among the allowed types ({})",
                allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(chosen)
}

/// A declared value cut to something safe to put in a log line.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[MediaType] = MediaType::ALL;

    #[test]
    fn magic_bytes_decide_not_the_declaration() {
        assert_eq!(decide(b"%PDF-1.7\n", None, ALL).unwrap(), MediaType::Pdf);
        assert_eq!(
            decide(b"%PDF-1.7\n", Some("application/pdf"), ALL).unwrap(),
            MediaType::Pdf
        );
        let e = decide(b"%PDF-1.7\n", Some("image/png"), ALL).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeMismatch);
        let e = decide(b"MZ\x90\x00\x03\x00\x00\x00", Some("application/pdf"), ALL).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeMismatch, "{e}");
        let e = decide(b"\x00\x01\x02", None, ALL).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeUnrecognised);
        let e = decide(b"%PDF-1.7", Some("application/x-msdownload"), ALL).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeNotAllowed);
        let e = decide(b"%PDF-1.7", None, &[MediaType::Png]).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeNotAllowed);
    }

    #[test]
    fn text_csv_ofd_and_zip() {
        assert_eq!(
            decide(
                "流水号,金额\n1,0.01\n".as_bytes(),
                Some("text/csv; charset=utf-8"),
                ALL
            )
            .unwrap(),
            MediaType::Csv
        );
        assert_eq!(decide(b"a,b\r\n", None, ALL).unwrap(), MediaType::Text);
        let mut ofd = b"PK\x03\x04\x14\x00\x00\x00".to_vec();
        ofd.extend_from_slice(b"....OFD.xml....");
        assert_eq!(decide(&ofd, None, ALL).unwrap(), MediaType::Ofd);
        assert_eq!(
            decide(&ofd, Some("application/zip"), ALL).unwrap(),
            MediaType::Zip
        );
        let e = decide(b"PK\x03\x04other", Some("application/ofd"), ALL).unwrap_err();
        assert_eq!(e.code, FileErrorCode::TypeMismatch);
        assert!(text_chunk_ok("GBK 文本\tok\r\n".as_bytes()));
        assert!(!text_chunk_ok(b"a\x00b"));
        assert!(!text_chunk_ok(b"end\x1a"));
    }
}
