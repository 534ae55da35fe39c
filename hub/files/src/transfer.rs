//! How adapters receive files from partners and send files to them, three ways each:
//!
//! | style | receive | send |
//! |---|---|---|
//! | multipart/form-data | [`receive_multipart`] (streamed, `multer`) | [`send_multipart`] (streamed, reqwest) |
//! | base64 in a JSON or XML field | [`receive_base64`] (whitespace and `data:` URLs accepted, decoded in pieces, size checked before decoding) | [`send_base64`] |
//! | a URL | [`fetch_url`]: the hub fetches (https only, loopback http by opt-in, host allow-list, size limit, timeout, redirects only to the same host) | [`DownloadLinks`]: an expiring link signed with HMAC-SM3 that the partner fetches from the hub |
//!
//! Every refusal is a [`FileError`] with a stable code; every received file goes through the
//! store's type and size checks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::error::{FileError, FileErrorCode};
use crate::id::FileId;
use crate::store::{FileMeta, FileStore, PutOptions};

/// Text fields accepted beside the file in a multipart body, at most.
const MAX_TEXT_FIELDS: usize = 32;
/// Size of one text field beside the file, at most.
const MAX_TEXT_FIELD_BYTES: u64 = 64 * 1024;

/// A file received in a multipart/form-data body, with the text fields sent beside it.
#[derive(Debug, Clone)]
pub struct ReceivedMultipart {
    pub file: FileMeta,
    /// The file name the sender gave (may hold personal data: never log it).
    pub file_name: Option<String>,
    pub fields: BTreeMap<String, String>,
}

fn multipart_error(e: multer::Error) -> FileError {
    match e {
        multer::Error::FieldSizeExceeded { limit, .. }
        | multer::Error::StreamSizeExceeded { limit } => FileError::new(
            FileErrorCode::TooLarge,
            format!("a part is larger than {limit} bytes"),
        ),
        multer::Error::StreamReadFailed(e) => {
            FileError::new(FileErrorCode::UploadIncomplete, e.to_string())
        }
        other => FileError::new(FileErrorCode::MultipartInvalid, other.to_string()),
    }
}

/// Receives the part named `field` of a multipart/form-data body into the store, streaming.
/// `content_type` is the request's `Content-Type` (it carries the boundary). The part's own
/// `Content-Type` is the declared type, checked against the content. Other parts must be small
/// text fields.
pub async fn receive_multipart<S, E>(
    store: &FileStore,
    content_type: &str,
    body: S,
    field: &str,
    opts: &PutOptions,
) -> Result<ReceivedMultipart, FileError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        FileError::new(
            FileErrorCode::MultipartInvalid,
            format!("the Content-Type names no multipart boundary: {e}"),
        )
    })?;
    let max = opts.max_bytes.map_or(store.limits().max_bytes, |m| {
        m.min(store.limits().max_bytes)
    });
    let limits = multer::SizeLimit::new()
        .per_field(MAX_TEXT_FIELD_BYTES)
        .for_field(field.to_string(), max)
        .whole_stream(max + MAX_TEXT_FIELD_BYTES * MAX_TEXT_FIELDS as u64 + 64 * 1024);
    let mut multipart = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut file: Option<(FileMeta, Option<String>)> = None;
    let mut fields = BTreeMap::new();
    while let Some(part) = multipart.next_field().await.map_err(multipart_error)? {
        let name = part.name().unwrap_or_default().to_string();
        if name == field {
            if file.is_some() {
                return Err(FileError::new(
                    FileErrorCode::MultipartInvalid,
                    format!("the part `{field}` is sent twice"),
                ));
            }
            let file_name = part.file_name().map(str::to_string);
            let mut o = opts.clone();
            if let Some(ct) = part.content_type() {
                o.declared_type = Some(ct.to_string());
            }
            let stream = part.map(|r| r.map_err(multipart_error));
            let meta = store.put_stream(stream, &o).await?;
            file = Some((meta, file_name));
        } else {
            if part.file_name().is_some() {
                return Err(FileError::new(
                    FileErrorCode::MultipartInvalid,
                    format!("a file part `{name}` where `{field}` was expected"),
                ));
            }
            if fields.len() >= MAX_TEXT_FIELDS {
                return Err(FileError::new(
                    FileErrorCode::MultipartInvalid,
                    format!("more than {MAX_TEXT_FIELDS} fields beside the file"),
                ));
            }
            let text = part.text().await.map_err(multipart_error)?;
            fields.insert(name, text);
        }
    }
    let (file, file_name) = file.ok_or_else(|| {
        FileError::new(
            FileErrorCode::MultipartInvalid,
            format!("the body has no part named `{field}`"),
        )
    })?;
    Ok(ReceivedMultipart {
        file,
        file_name,
        fields,
    })
}

const B64_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, B64_CONFIG);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, B64_CONFIG);

/// Receives a file sent as base64 text in a JSON or XML field. Line breaks and spaces (XML
/// senders wrap at 76) are ignored; a `data:<type>;base64,` prefix declares the type; the
/// URL-safe alphabet is accepted too. The size is checked on the encoded length before
/// anything is decoded, and decoding goes in pieces straight into the store.
pub async fn receive_base64(
    store: &FileStore,
    text: &str,
    opts: &PutOptions,
) -> Result<FileMeta, FileError> {
    let max = opts.max_bytes.map_or(store.limits().max_bytes, |m| {
        m.min(store.limits().max_bytes)
    });
    let mut o = opts.clone();
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("data:") {
        let (head, data) = rest.split_once(',').ok_or_else(|| {
            FileError::new(FileErrorCode::Base64Invalid, "a data: URL without a comma")
        })?;
        let declared = head.strip_suffix(";base64").ok_or_else(|| {
            FileError::new(
                FileErrorCode::Base64Invalid,
                "a data: URL that is not ;base64",
            )
        })?;
        if !declared.is_empty() {
            o.declared_type = Some(declared.to_string());
        }
        body = data;
    }
    let significant = body.bytes().filter(|b| !b.is_ascii_whitespace()).count() as u64;
    if significant / 4 * 3 > max.saturating_add(3) {
        return Err(FileError::new(
            FileErrorCode::TooLarge,
            format!("the base64 text decodes to more than {max} bytes"),
        ));
    }
    let engine = if body.bytes().any(|b| b == b'-' || b == b'_') {
        &B64_URL_SAFE
    } else {
        &B64_STANDARD
    };
    // Pieces of 64 KiB of significant characters (a multiple of 4), decoded one at a time.
    let mut pieces: Vec<Result<Bytes, FileError>> = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let flush = |buf: &mut Vec<u8>, pieces: &mut Vec<Result<Bytes, FileError>>| {
        if buf.is_empty() {
            return;
        }
        pieces.push(
            engine
                .decode(&buf[..])
                .map(Bytes::from)
                .map_err(|e| FileError::new(FileErrorCode::Base64Invalid, e.to_string())),
        );
        buf.clear();
    };
    for b in body.bytes().filter(|b| !b.is_ascii_whitespace()) {
        buf.push(b);
        if buf.len() == 64 * 1024 {
            flush(&mut buf, &mut pieces);
        }
    }
    flush(&mut buf, &mut pieces);
    // A decoding error ends the stream and so the put: nothing is stored.
    store.put_stream(futures::stream::iter(pieces), &o).await
}

/// A stored file as base64 text (standard alphabet, padded), for a JSON or XML field. Refuses
/// a file larger than `max` (the text is 4/3 of it, in memory).
pub async fn send_base64(store: &FileStore, id: &FileId, max: u64) -> Result<String, FileError> {
    let (_, bytes) = store.read_all(id, max).await?;
    Ok(base64::engine::general_purpose::STANDARD.encode(&bytes))
}

/// What [`fetch_url`] may fetch.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Only these hosts (exact names, case-insensitive); empty: any public host.
    pub allowed_hosts: Vec<String>,
    /// Allow `http://` to a loopback address (local simulators and tests only).
    pub allow_loopback_http: bool,
    /// The whole fetch, body included, within this.
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            allow_loopback_http: false,
            timeout: Duration::from_secs(60),
        }
    }
}

fn refused(detail: impl Into<String>) -> FileError {
    FileError::new(FileErrorCode::UrlRefused, detail)
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Addresses a partner's URL must never point the hub at (its own network).
fn is_internal_literal(host: &str) -> bool {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(v4)) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks a URL against the policy without fetching it.
pub fn check_url(url: &str, policy: &FetchPolicy) -> Result<reqwest::Url, FileError> {
    let u = reqwest::Url::parse(url).map_err(|e| refused(format!("not a URL: {e}")))?;
    let host = u
        .host_str()
        .ok_or_else(|| refused("the URL has no host"))?
        .to_string();
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refused("credentials in a URL are not accepted"));
    }
    match u.scheme() {
        "https" => {}
        "http" if policy.allow_loopback_http && is_loopback_host(&host) => {}
        "http" => return Err(refused("only https:// URLs are fetched")),
        other => return Err(refused(format!("the scheme `{other}` is not fetched"))),
    }
    let loopback_allowed = policy.allow_loopback_http && is_loopback_host(&host);
    if is_internal_literal(&host) && !loopback_allowed {
        return Err(refused(format!("`{host}` is an internal address")));
    }
    if !policy.allowed_hosts.is_empty()
        && !policy
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
    {
        return Err(refused(format!("`{host}` is not among the allowed hosts")));
    }
    Ok(u)
}

/// Fetches a file from a URL a partner gave, into the store: the URL is checked against the
/// policy, redirects are followed only to the same host (at most 5), the whole fetch is bounded
/// by the policy's timeout, the declared length and the streamed size by the store's limit, and
/// the response's `Content-Type` is the declared type.
pub async fn fetch_url(
    store: &FileStore,
    url: &str,
    policy: &FetchPolicy,
    opts: &PutOptions,
) -> Result<FileMeta, FileError> {
    let u = check_url(url, policy)?;
    let origin_host = u.host_str().unwrap_or_default().to_string();
    let origin_scheme = u.scheme().to_string();
    let client = reqwest::Client::builder()
        .timeout(policy.timeout)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            let same = attempt.url().host_str() == Some(origin_host.as_str())
                && attempt.url().scheme() == origin_scheme;
            if !same {
                attempt.error("a redirect to another host or scheme")
            } else if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| FileError::new(FileErrorCode::FetchFailed, e.to_string()))?;
    let resp = client.get(u).send().await.map_err(|e| {
        if e.is_redirect() {
            refused(format!("{e}"))
        } else {
            FileError::new(FileErrorCode::FetchFailed, e.without_url().to_string())
        }
    })?;
    if !resp.status().is_success() {
        return Err(FileError::new(
            FileErrorCode::FetchFailed,
            format!("the server answered {}", resp.status()),
        ));
    }
    let max = opts.max_bytes.map_or(store.limits().max_bytes, |m| {
        m.min(store.limits().max_bytes)
    });
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(FileError::new(
            FileErrorCode::TooLarge,
            format!("the server announces more than {max} bytes"),
        ));
    }
    let mut o = opts.clone();
    if o.declared_type.is_none() {
        o.declared_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }
    let body = resp.bytes_stream().map(|r| {
        r.map_err(|e| {
            FileError::new(
                FileErrorCode::FetchFailed,
                format!("the body broke off: {}", e.without_url()),
            )
        })
    });
    store.put_stream(body, &o).await
}

/// Sends a stored file to a partner as the part `field` of a multipart/form-data POST, streamed
/// from the store, with text fields beside it. Returns the partner's response (any status: the
/// adapter classifies it); a transport failure is `FILE_SEND_FAILED`.
pub async fn send_multipart(
    client: &reqwest::Client,
    url: &str,
    store: &FileStore,
    id: &FileId,
    field: &str,
    file_name: &str,
    fields: &[(&str, &str)],
) -> Result<reqwest::Response, FileError> {
    let (meta, stream) = store.open(id).await?;
    let body = reqwest::Body::wrap_stream(stream);
    let part = reqwest::multipart::Part::stream_with_length(body, meta.size)
        .file_name(file_name.to_string())
        .mime_str(&meta.media_type)
        .map_err(|e| FileError::new(FileErrorCode::SendFailed, e.to_string()))?;
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form = form.part(field.to_string(), part);
    client
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| FileError::new(FileErrorCode::SendFailed, e.without_url().to_string()))
}

/// Expiring download links a partner fetches a file from the hub with:
/// `<base>/<file id>?expires=<unix seconds>&sig=<hex HMAC-SM3 of "<file id>\n<expires>">`.
/// The hub's route that serves them checks the link with [`DownloadLinks::verify`] and streams
/// [`FileStore::open`]; the partner checks the SM3 of what it got against the id.
#[derive(Clone)]
pub struct DownloadLinks {
    base: String,
    secret: Vec<u8>,
    ttl: Duration,
}

impl std::fmt::Debug for DownloadLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadLinks")
            .field("base", &self.base)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl DownloadLinks {
    /// `base` is the public URL prefix of the serving route; `secret` at least 16 bytes. Links
    /// [`DownloadLinks::issue`]s are valid for a day unless [`DownloadLinks::with_ttl`] says.
    pub fn new(base: &str, secret: &[u8]) -> Result<Self, FileError> {
        if secret.len() < 16 {
            return Err(FileError::new(
                FileErrorCode::ConfigInvalid,
                "the download link secret must be at least 16 bytes",
            ));
        }
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_vec(),
            ttl: Duration::from_secs(86_400),
        })
    }

    /// Links issued valid for `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an issued link stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A link valid for the configured time from now.
    pub fn issue(&self, id: &FileId) -> String {
        self.link(id, self.ttl)
    }

    /// A link valid until `expires` (unix seconds).
    pub fn link_until(&self, id: &FileId, expires: i64) -> String {
        format!(
            "{}/{id}?expires={expires}&sig={}",
            self.base,
            self.sig(id, expires)
        )
    }

    fn sig(&self, id: &FileId, expires: i64) -> String {
        hex::encode(hub_security::sm::hmac_sm3(
            &self.secret,
            format!("{id}\n{expires}").as_bytes(),
        ))
    }

    /// A link valid until `now + ttl`.
    pub fn link(&self, id: &FileId, ttl: Duration) -> String {
        let expires = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
        self.link_until(id, expires)
    }

    /// Checks the file id, `expires` and `sig` of a request; returns the id to serve.
    pub fn verify(&self, id: &str, expires: &str, sig: &str) -> Result<FileId, FileError> {
        let id = FileId::parse(id)?;
        let expires: i64 = expires
            .parse()
            .map_err(|_| refused("the link's expiry is not a number"))?;
        let tag = hex::decode(sig).map_err(|_| refused("the link's signature is not hex"))?;
        if !hub_security::sm::verify_hmac_sm3(
            &self.secret,
            format!("{id}\n{expires}").as_bytes(),
            &tag,
        ) {
            return Err(refused("the link's signature does not verify"));
        }
        if chrono::Utc::now().timestamp() > expires {
            return Err(refused("the link has expired"));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_fetch() {
        let strict = FetchPolicy::default();
        assert!(check_url("https://partner.example/f.pdf", &strict).is_ok());
        for bad in [
            "http://partner.example/f.pdf",
            "ftp://partner.example/f.pdf",
            "file:///etc/passwd",
            "https://127.0.0.1/f.pdf",
            "https://10.1.2.3/f.pdf",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/f",
            "https://user:pw@partner.example/f.pdf",
            "http://127.0.0.1:8080/f.pdf",
            "not a url",
        ] {
            assert_eq!(
                check_url(bad, &strict).unwrap_err().code,
                FileErrorCode::UrlRefused,
                "{bad}"
            );
        }
        let local = FetchPolicy {
            allow_loopback_http: true,
            ..FetchPolicy::default()
        };
        assert!(check_url("http://127.0.0.1:8080/f.pdf", &local).is_ok());
        assert!(check_url("http://10.0.0.1/f.pdf", &local).is_err());
        let listed = FetchPolicy {
            allowed_hosts: vec!["files.partner.example".into()],
            ..FetchPolicy::default()
        };
        assert!(check_url("https://FILES.partner.example/x", &listed).is_ok());
        assert!(check_url("https://evil.example/x", &listed).is_err());
    }

    #[test]
    fn download_links_verify_and_expire() {
        let links = DownloadLinks::new("https://hub.example/files/", b"0123456789abcdef").unwrap();
        let id = FileId::of(b"x");
        let link = links.link(&id, Duration::from_secs(60));
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(path, format!("https://hub.example/files/{id}"));
        let q: BTreeMap<&str, &str> = query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        assert_eq!(
            links
                .verify(&id.to_string(), q["expires"], q["sig"])
                .unwrap(),
            id
        );
        let other = FileId::of(b"y").to_string();
        assert_eq!(
            links
                .verify(&other, q["expires"], q["sig"])
                .unwrap_err()
                .code,
            FileErrorCode::UrlRefused
        );
        let later = (q["expires"].parse::<i64>().unwrap() + 3600).to_string();
        assert!(links.verify(&id.to_string(), &later, q["sig"]).is_err());
        let past = chrono::Utc::now().timestamp() - 1;
        let sig = links.sig(&id, past);
        assert!(links
            .verify(&id.to_string(), &past.to_string(), &sig)
            .unwrap_err()
            .detail
            .contains("expired"));
        assert!(DownloadLinks::new("https://x", b"short").is_err());
    }
}
