//! What an adapter declares about files in its `adapter.toml` (`docs/files.md`, "Wiring files
//! into an adapter"), and the steps the hub runs with it:
//!
//! * `[[file]]` ([`InboundFile`]): an inbound mapping whose pushes carry a file, and how
//!   (base64 in a JSON field or XML element, a multipart part, a URL the hub fetches); the gateway stores the
//!   file before the mapping and puts its hub file id where the file was ([`intake`]);
//! * `file = { … }` on a `[[delivery]]` ([`OutboundFile`]): the mapped body's field holding a
//!   file id is replaced by the file's base64 or by a download link the partner fetches, or
//!   the body is sent as multipart ([`outbound_body`], [`outbound_text`] for XML and form
//!   bodies);
//! * `[[batch]]` ([`BatchSpec`]): files picked up from a partner's SFTP folder on a schedule.
//!
//! The declarations live here, beside the helpers they drive, so the gateway, the egress and
//! the manifest loader share one definition.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{FileError, FileErrorCode};
use crate::id::FileId;
use crate::media::MediaType;
use crate::store::{FileMeta, FileStore, PutOptions};
use crate::transfer::{self, DownloadLinks, FetchPolicy};

/// How a partner sends a file with a push.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ReceiveStyle {
    /// Base64 text (or a `data:` URL) in a JSON field or an XML element.
    Base64,
    /// A multipart/form-data body: one file part, its text fields become the JSON the mapping
    /// reads.
    Multipart,
    /// An https URL in a JSON field or an XML element, fetched by the hub.
    Url,
}

/// `[[file]]`: a file carried by the pushes of one inbound mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundFile {
    /// The **inbound** mapping (route `/v1/<partner>/<mapping>`).
    pub mapping: String,
    /// `base64` (text or a `data:` URL in a JSON field or XML element), `multipart` (a
    /// multipart/form-data body; its text fields become the JSON the mapping reads; the only
    /// `[[file]]` of its mapping; a JSON mapping) or `url` (an https URL in a JSON field or
    /// XML element, fetched by the hub).
    pub style: ReceiveStyle,
    /// JSON pointer of the field that holds the base64 or URL and gets the id; for an XML
    /// mapping, of the element in the tree the mapping reads (the root element dropped: `/fj`
    /// is `<root><fj>`, `/fj/1` the second `<fj>`, `/fj/#text` the text of an `<fj>` with
    /// attributes); for multipart, where the id is put in the JSON made of the text fields.
    pub pointer: String,
    /// Multipart: the name of the file part.
    #[serde(default)]
    #[schemars(extend("x-default" = "`file`"))]
    pub part: Option<String>,
    /// The file holds personal data: SM4-GCM at rest.
    #[serde(default)]
    pub personal: bool,
    /// Media types accepted on this route (by magic bytes), narrowing `files.allowed_types`.
    #[serde(default)]
    #[schemars(extend("x-default" = "all of `files.allowed_types`"))]
    pub allowed_types: Option<Vec<String>>,
    /// Largest file on this route (never more than `files.max_bytes`; the push also stays
    /// within `gateway.max_body_bytes`).
    #[serde(default)]
    #[schemars(extend("x-default" = "`files.max_bytes`"))]
    pub max_bytes: Option<u64>,
    /// URL: the only hosts fetched from (set it to the partner's file hosts); empty: any
    /// public host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// URL: allow `http://` to a loopback address (simulators and tests only).
    #[serde(default)]
    pub allow_loopback_http: bool,
    /// URL: the whole fetch within this many milliseconds (1000–600000).
    #[serde(default = "default_fetch_timeout_ms")]
    pub fetch_timeout_ms: u64,
}

fn default_fetch_timeout_ms() -> u64 {
    60_000
}

fn is_pointer(p: &str) -> bool {
    p.starts_with('/') && p.len() > 1
}

fn types_problems(types: &Option<Vec<String>>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(types) = types {
        if types.is_empty() {
            out.push(format!("{key}: must name at least one type"));
        }
        for t in types {
            if MediaType::parse(t).is_none() {
                out.push(format!(
                    "{key}: `{t}` is not one of {}",
                    MediaType::ALL
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    out
}

fn put_options(
    personal: bool,
    allowed_types: &Option<Vec<String>>,
    max_bytes: Option<u64>,
) -> PutOptions {
    let mut o = PutOptions::default().personal(personal);
    if let Some(types) = allowed_types {
        let t: Vec<MediaType> = types.iter().filter_map(|t| MediaType::parse(t)).collect();
        o = o.allowed(&t);
    }
    if let Some(m) = max_bytes {
        o = o.max_bytes(m);
    }
    o
}

impl InboundFile {
    /// What is wrong with the declaration (the caller adds file and key).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let at = format!("file for mapping `{}`", self.mapping);
        if !is_pointer(&self.pointer) {
            out.push(format!(
                "{at}: pointer `{}` must be a JSON pointer such as `/file`",
                self.pointer
            ));
        }
        if self.part.is_some() && self.style != ReceiveStyle::Multipart {
            out.push(format!("{at}: part is only for style = \"multipart\""));
        }
        if let Some(p) = &self.part {
            if p.is_empty() {
                out.push(format!("{at}: part must not be empty"));
            }
        }
        if self.style != ReceiveStyle::Url
            && (!self.allowed_hosts.is_empty() || self.allow_loopback_http)
        {
            out.push(format!(
                "{at}: allowed_hosts and allow_loopback_http are only for style = \"url\""
            ));
        }
        if self.max_bytes == Some(0) {
            out.push(format!("{at}: max_bytes must be at least 1"));
        }
        if !(1_000..=600_000).contains(&self.fetch_timeout_ms) {
            out.push(format!("{at}: fetch_timeout_ms must be 1000..=600000"));
        }
        out.extend(types_problems(
            &self.allowed_types,
            &format!("{at}: allowed_types"),
        ));
        out
    }

    /// How the file is put.
    pub fn put_options(&self) -> PutOptions {
        put_options(self.personal, &self.allowed_types, self.max_bytes)
    }

    fn fetch_policy(&self) -> FetchPolicy {
        FetchPolicy {
            allowed_hosts: self.allowed_hosts.clone(),
            allow_loopback_http: self.allow_loopback_http,
            timeout: Duration::from_millis(self.fetch_timeout_ms),
        }
    }
}

/// Problems of the `[[file]]` declarations of one adapter taken together: one multipart
/// declaration per mapping, and not mixed with the other styles.
pub fn inbound_problems(files: &[InboundFile]) -> Vec<String> {
    let mut out: Vec<String> = files.iter().flat_map(InboundFile::problems).collect();
    let mut by_mapping: BTreeMap<&str, Vec<&InboundFile>> = BTreeMap::new();
    for f in files {
        by_mapping.entry(&f.mapping).or_default().push(f);
    }
    for (mapping, fs) in by_mapping {
        let multipart = fs
            .iter()
            .filter(|f| f.style == ReceiveStyle::Multipart)
            .count();
        if multipart > 0 && fs.len() > 1 {
            out.push(format!(
                "mapping `{mapping}`: a multipart file is the only [[file]] of its mapping"
            ));
        }
        let mut pointers: Vec<&str> = fs.iter().map(|f| f.pointer.as_str()).collect();
        pointers.sort_unstable();
        if pointers.windows(2).any(|w| w[0] == w[1]) {
            out.push(format!(
                "mapping `{mapping}`: two [[file]] declarations name the same pointer"
            ));
        }
    }
    out
}

/// What [`intake`] did: the body the mapping reads and the files stored for it.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The JSON body with each file replaced by its hub file id.
    pub body: Vec<u8>,
    pub files: Vec<FileMeta>,
}

/// Stores the files of a push declared by `files` (the `[[file]]`s of its mapping) and
/// replaces each by its hub file id. `content_type` is the request's. A field that is absent
/// or `null` is left alone (the mapping decides whether the file is required). A body that is
/// not JSON is handed on unchanged (the mapping refuses it). Every file is durable in the
/// store when this returns; a push that fails afterwards leaves files nothing references:
/// content-addressed, a retry reuses them, and the gateway holds them provisional so that
/// [`crate::sweep::remove_unreferenced`] removes them if no retry succeeds.
pub async fn intake(
    store: &FileStore,
    files: &[InboundFile],
    content_type: &str,
    body: Vec<u8>,
) -> Result<Intake, FileError> {
    if let Some(f) = files.iter().find(|f| f.style == ReceiveStyle::Multipart) {
        if !content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            return Err(FileError::new(
                FileErrorCode::MultipartInvalid,
                "this route takes a multipart/form-data body",
            ));
        }
        let stream = futures::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(body))]);
        let got = transfer::receive_multipart(
            store,
            content_type,
            stream,
            f.part.as_deref().unwrap_or("file"),
            &f.put_options(),
        )
        .await?;
        let mut json = Value::Object(
            got.fields
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        set_pointer(
            &mut json,
            &f.pointer,
            Value::String(got.file.id.to_string()),
        );
        return Ok(Intake {
            body: serde_json::to_vec(&json).expect("JSON"),
            files: vec![got.file],
        });
    }
    let Ok(mut json) = serde_json::from_slice::<Value>(&body) else {
        return Ok(Intake {
            body,
            files: Vec::new(),
        });
    };
    let mut stored = Vec::new();
    for f in files {
        let Some(field) = json.pointer_mut(&f.pointer) else {
            continue;
        };
        let text = match field {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            _ => {
                return Err(FileError::new(
                    match f.style {
                        ReceiveStyle::Url => FileErrorCode::UrlRefused,
                        _ => FileErrorCode::Base64Invalid,
                    },
                    format!("the field at {} is not a string", f.pointer),
                ))
            }
        };
        let meta = receive_text(store, f, &text).await?;
        *field = Value::String(meta.id.to_string());
        stored.push(meta);
    }
    Ok(Intake {
        body: serde_json::to_vec(&json).expect("JSON"),
        files: stored,
    })
}

/// Receives the file a field's text holds the way `f` declares: base64 (or a `data:` URL), or
/// a URL the hub fetches. For bodies other than JSON (an XML element's text, which the gateway
/// reads with the mapping's XML reader). A multipart declaration has no text field:
/// `FILE_MULTIPART_INVALID`.
pub async fn receive_text(
    store: &FileStore,
    f: &InboundFile,
    text: &str,
) -> Result<FileMeta, FileError> {
    match f.style {
        ReceiveStyle::Base64 => transfer::receive_base64(store, text, &f.put_options()).await,
        ReceiveStyle::Url => {
            transfer::fetch_url(store, text, &f.fetch_policy(), &f.put_options()).await
        }
        ReceiveStyle::Multipart => Err(FileError::new(
            FileErrorCode::MultipartInvalid,
            "a multipart file is not a field of the body",
        )),
    }
}

/// Sets `pointer` in `value` to `new`, making the objects on the way.
pub fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut at = value;
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        let obj = at.as_object_mut().expect("an object");
        if i + 1 == tokens.len() {
            obj.insert(t.clone(), new);
            return;
        }
        at = obj.entry(t.clone()).or_insert(Value::Null);
    }
}

/// How a delivery sends the file its record references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SendStyle {
    /// The field's file id replaced by the file's base64 text.
    Base64,
    /// A multipart/form-data body: the file as one part, the mapped body's other top-level
    /// fields as text parts.
    Multipart,
    /// The field's file id replaced by an expiring signed link to the hub's download route
    /// (`GET /v1/files/<id>`), which the partner fetches. Text, so in a JSON, XML or form body.
    Url,
    /// No body: the file is uploaded to the partner's SFTP `outbox` under the name at
    /// `file_name` (`[[delivery]] transport = "sftp"`, [`upload_target`]).
    Sftp,
}

/// `file = { … }` on a `[[delivery]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundFile {
    /// JSON pointer, in the mapped body, of the field holding the hub file id (`sm3:<hex>`); in
    /// an XML body, of the element in the tree the mapping writes (the root element dropped:
    /// `/fjnr` is `<root><fjnr>`).
    pub pointer: String,
    /// `base64`: the id replaced by the file's base64 (a JSON or XML mapping; not with method
    /// GET); `multipart`: the body sent as multipart/form-data, the file as one part and the
    /// body's other top-level fields as text parts (a JSON mapping; HTTP POST, PUT or PATCH);
    /// `url`: the id replaced by a signed, expiring link to the hub's `GET /v1/files/<id>`,
    /// which the partner fetches (any mapping format and transport; needs
    /// `files.download_base_url` and a download secret in `hub.toml`); `sftp` (only with
    /// `transport = "sftp"`): the file uploaded to the partner's SFTP outbox under the name
    /// at `file_name`.
    pub style: SendStyle,
    /// Multipart: the name of the file part.
    #[serde(default)]
    #[schemars(extend("x-default" = "`file`"))]
    pub part: Option<String>,
    /// Multipart: JSON pointer, in the mapped body, of the file name sent with the part
    /// (absent: the file id's hex digits). Sftp (required): JSON pointer of the remote file
    /// name, which must be a plain name (`FILE_NAME_INVALID` otherwise).
    #[serde(default)]
    pub file_name: Option<String>,
    /// Largest file sent (base64 and multipart hold it in memory while sent; a URL's download
    /// streams and ignores it); 1–268435456.
    #[serde(default = "default_send_max")]
    pub max_bytes: u64,
}

fn default_send_max() -> u64 {
    20 * 1024 * 1024
}

impl OutboundFile {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_pointer(&self.pointer) {
            out.push(format!(
                "file.pointer `{}` must be a JSON pointer such as `/file`",
                self.pointer
            ));
        }
        if self.style != SendStyle::Multipart && self.part.is_some() {
            out.push("file.part is only for style = \"multipart\"".into());
        }
        if !matches!(self.style, SendStyle::Multipart | SendStyle::Sftp) && self.file_name.is_some()
        {
            out.push("file.file_name is only for style = \"multipart\" or \"sftp\"".into());
        }
        if self.style == SendStyle::Sftp && self.file_name.is_none() {
            out.push(
                "file.file_name is required for style = \"sftp\": the JSON pointer of the remote file name".into(),
            );
        }
        if let Some(p) = &self.file_name {
            if !is_pointer(p) {
                out.push(format!("file.file_name `{p}` must be a JSON pointer"));
            }
        }
        if self.max_bytes == 0 || self.max_bytes > 256 * 1024 * 1024 {
            out.push("file.max_bytes must be 1..=268435456".into());
        }
        out
    }
}

/// The text a delivery puts in place of the file id `id_text` (the text at `spec.pointer` of
/// its mapped body, `None` when absent): the file's base64, or a download link to it (the file
/// must be in the store). A missing or invalid id is `FILE_ID_INVALID`, a file not stored
/// `FILE_NOT_FOUND`, a URL delivery on a hub that serves no links `FILE_CONFIG_INVALID`.
pub async fn outbound_text(
    store: &FileStore,
    spec: &OutboundFile,
    links: Option<&DownloadLinks>,
    id_text: Option<&str>,
) -> Result<String, FileError> {
    let id_text = id_text.ok_or_else(|| {
        FileError::new(
            FileErrorCode::IdInvalid,
            format!("no file id at {}", spec.pointer),
        )
    })?;
    let id = FileId::parse(id_text.trim())?;
    match spec.style {
        SendStyle::Base64 => transfer::send_base64(store, &id, spec.max_bytes).await,
        SendStyle::Url => {
            let links = links.ok_or_else(|| {
                FileError::new(
                    FileErrorCode::ConfigInvalid,
                    "the delivery sends its file as a URL, but [files] has no download_base_url and secret",
                )
            })?;
            store.head(&id).await?;
            Ok(links.issue(&id))
        }
        SendStyle::Multipart => Err(FileError::new(
            FileErrorCode::ConfigInvalid,
            "a multipart file is not a field of the body",
        )),
        SendStyle::Sftp => Err(FileError::new(
            FileErrorCode::ConfigInvalid,
            "an sftp file is uploaded to the partner's outbox, not sent in a body",
        )),
    }
}

/// The body a delivery sends, and its content type, once the file its mapped JSON body
/// references is put in: the file id at `spec.pointer` replaced by the file's base64 or a
/// download link (`links`), or the body turned into multipart/form-data. A missing or invalid
/// id is `FILE_ID_INVALID`.
pub async fn outbound_body(
    store: &FileStore,
    spec: &OutboundFile,
    links: Option<&DownloadLinks>,
    mapped: &[u8],
) -> Result<(Vec<u8>, String), FileError> {
    let mut json: Value = serde_json::from_slice(mapped).map_err(|_| {
        FileError::new(
            FileErrorCode::ConfigInvalid,
            "a delivery with a file needs a JSON mapping",
        )
    })?;
    let id_text = json
        .pointer(&spec.pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            FileError::new(
                FileErrorCode::IdInvalid,
                format!("no file id at {}", spec.pointer),
            )
        })?;
    let id = FileId::parse(id_text)?;
    match spec.style {
        SendStyle::Base64 | SendStyle::Url => {
            let text = outbound_text(store, spec, links, Some(id_text)).await?;
            *json.pointer_mut(&spec.pointer).expect("read above") = Value::String(text);
            Ok((
                serde_json::to_vec(&json).expect("JSON"),
                "application/json".into(),
            ))
        }
        SendStyle::Multipart => {
            let (meta, bytes) = store.read_all(&id, spec.max_bytes).await?;
            let name = spec
                .file_name
                .as_deref()
                .and_then(|p| json.pointer(p))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| id.sm3_hex());
            let part = spec.part.as_deref().unwrap_or("file");
            let boundary = format!("hub-{}", uuid::Uuid::now_v7().simple());
            let mut body = Vec::with_capacity(bytes.len() + 512);
            let field_of_file = spec.pointer.trim_start_matches('/');
            if let Value::Object(fields) = &json {
                for (k, v) in fields {
                    if k == field_of_file {
                        continue;
                    }
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    body.extend_from_slice(
                        format!(
                            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{v}\r\n",
                            quote(k)
                        )
                        .as_bytes(),
                    );
                }
            }
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                    quote(part),
                    quote(&name),
                    meta.media_type
                )
                .as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            Ok((body, format!("multipart/form-data; boundary={boundary}")))
        }
        SendStyle::Sftp => Err(FileError::new(
            FileErrorCode::ConfigInvalid,
            "an sftp file is uploaded to the partner's outbox, not sent in a body",
        )),
    }
}

/// What an SFTP delivery uploads (`style = "sftp"`): the file id at `spec.pointer` and the
/// remote name at `spec.file_name` of the mapped JSON body. A missing or malformed id is
/// `FILE_ID_INVALID`; a missing name or one that is not a plain name
/// ([`crate::sftp::plain_name`]) is `FILE_NAME_INVALID`. Both are permanent for the record.
pub fn upload_target(spec: &OutboundFile, mapped: &[u8]) -> Result<(FileId, String), FileError> {
    let json: Value = serde_json::from_slice(mapped).map_err(|_| {
        FileError::new(
            FileErrorCode::ConfigInvalid,
            "a delivery with a file needs a JSON mapping",
        )
    })?;
    let id_text = json
        .pointer(&spec.pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            FileError::new(
                FileErrorCode::IdInvalid,
                format!("no file id at {}", spec.pointer),
            )
        })?;
    let id = FileId::parse(id_text)?;
    let at = spec.file_name.as_deref().unwrap_or_default();
    let name = json.pointer(at).and_then(Value::as_str).ok_or_else(|| {
        FileError::new(
            FileErrorCode::NameInvalid,
            format!("no file name (a string) at {at}"),
        )
    })?;
    crate::sftp::plain_name(name)?;
    Ok((id, name.to_string()))
}

/// A name inside a quoted multipart header parameter (quotes and line breaks escaped as the
/// HTML form encoding does).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// `[[batch]]`: files picked up from the partner's SFTP folder (`[partners.<p>.sftp]`) on a
/// schedule, each once and only once, each announced by one record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Unique among batches, `a-z 0-9 _`; the ledger and lease name the job
    /// `<partner>/<name>`.
    pub name: String,
    /// An **inbound** mapping from `{"file_id", "file_name", "size", "media_type", "partner",
    /// "batch", "pickup_id"}` to the "file received" contract; a file it refuses is
    /// dead-lettered (route `<partner>/batch.<name>`, sealed) and not tried again.
    pub mapping: String,
    /// Run every so many milliseconds (at least 1000); exactly one of `every_ms` and `cron`.
    #[serde(default)]
    pub every_ms: Option<u64>,
    /// Or a cron schedule with a seconds field, in Asia/Shanghai time.
    #[serde(default)]
    pub cron: Option<String>,
    /// Only file names matching it (`*`, `?`), e.g. `DZ_*.csv`; absent: every file (hidden
    /// and `*.part`/`*.tmp` names are always left alone).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The absolute remote folder picked up from.
    #[serde(default)]
    #[schemars(extend("x-default" = "the partner's `sftp.inbox`"))]
    pub remote_dir: Option<String>,
    /// The type the partner's files are declared as (checked against the content), e.g.
    /// `text/csv`: text files are otherwise `text/plain`.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The files hold personal data: SM4-GCM at rest.
    #[serde(default)]
    pub personal: bool,
    /// Media types accepted.
    #[serde(default)]
    #[schemars(extend("x-default" = "all of `files.allowed_types`"))]
    pub allowed_types: Option<Vec<String>>,
    /// Largest file picked up.
    #[serde(default)]
    #[schemars(extend("x-default" = "`files.max_bytes`"))]
    pub max_bytes: Option<u64>,
}

impl BatchSpec {
    /// Problems besides the schedule and the mapping (which the manifest loader checks).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let at = format!("batch `{}`", self.name);
        if let Some(p) = &self.pattern {
            if p.is_empty() || p.contains('/') {
                out.push(format!("{at}: pattern must be a file name pattern"));
            }
        }
        if let Some(d) = &self.remote_dir {
            if !d.starts_with('/') {
                out.push(format!("{at}: remote_dir must be absolute"));
            }
        }
        if self.max_bytes == Some(0) {
            out.push(format!("{at}: max_bytes must be at least 1"));
        }
        out.extend(types_problems(
            &self.allowed_types,
            &format!("{at}: allowed_types"),
        ));
        if let Some(t) = &self.media_type {
            out.extend(types_problems(
                &Some(vec![t.clone()]),
                &format!("{at}: media_type"),
            ));
        }
        out
    }

    pub fn put_options(&self) -> PutOptions {
        let o = put_options(self.personal, &self.allowed_types, self.max_bytes);
        match &self.media_type {
            Some(t) => o.declared(t.clone()),
            None => o,
        }
    }

    /// Does `name` match the pattern?
    pub fn matches(&self, name: &str) -> bool {
        self.pattern.as_deref().is_none_or(|p| glob(p, name))
    }
}

/// `*` any run, `?` one character.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_pointers() {
        assert!(glob("DZ_*.csv", "DZ_20261203.csv"));
        assert!(!glob("DZ_*.csv", "DZ_20261203.txt"));
        assert!(glob("a?c", "abc"));
        let mut v = serde_json::json!({"a": "x"});
        set_pointer(&mut v, "/b/c", Value::String("id".into()));
        assert_eq!(v, serde_json::json!({"a": "x", "b": {"c": "id"}}));
    }

    #[test]
    fn declarations_are_checked() {
        let f: InboundFile = toml::from_str(
            "mapping = \"m\"\nstyle = \"base64\"\npointer = \"file\"\nallowed_hosts = [\"x\"]\nallowed_types = [\"application/x-exe\"]\n",
        )
        .unwrap();
        assert_eq!(f.problems().len(), 3, "{:?}", f.problems());
        let two = [
            toml::from_str::<InboundFile>(
                "mapping = \"m\"\nstyle = \"multipart\"\npointer = \"/f\"\n",
            )
            .unwrap(),
            toml::from_str::<InboundFile>(
                "mapping = \"m\"\nstyle = \"base64\"\npointer = \"/g\"\n",
            )
            .unwrap(),
        ];
        assert_eq!(inbound_problems(&two).len(), 1);
    }

    #[test]
    fn an_sftp_upload_takes_an_id_and_a_plain_name() {
        let spec: OutboundFile =
            toml::from_str("pointer = \"/id\"\nstyle = \"sftp\"\nfile_name = \"/name\"\n").unwrap();
        assert!(spec.problems().is_empty(), "{:?}", spec.problems());
        let nameless: OutboundFile =
            toml::from_str("pointer = \"/id\"\nstyle = \"sftp\"\n").unwrap();
        assert_eq!(nameless.problems().len(), 1);
        let id = FileId::of(b"abc").to_string();
        let body =
            |name: &str| serde_json::to_vec(&serde_json::json!({"id": id, "name": name})).unwrap();
        let (got, name) = upload_target(&spec, &body("DZ_1.csv")).unwrap();
        assert_eq!((got.to_string(), name.as_str()), (id.clone(), "DZ_1.csv"));
        for bad in ["../DZ_1.csv", ".DZ_1.csv", "a/b", "a\u{1}b"] {
            assert_eq!(
                upload_target(&spec, &body(bad)).unwrap_err().code,
                FileErrorCode::NameInvalid
            );
        }
        let no_id = serde_json::to_vec(&serde_json::json!({"id": "sm3:xyz", "name": "a"})).unwrap();
        assert_eq!(
            upload_target(&spec, &no_id).unwrap_err().code,
            FileErrorCode::IdInvalid
        );
        let no_name = serde_json::to_vec(&serde_json::json!({"id": id})).unwrap();
        assert_eq!(
            upload_target(&spec, &no_name).unwrap_err().code,
            FileErrorCode::NameInvalid
        );
    }

    #[tokio::test]
    async fn a_base64_field_becomes_a_file_id_and_goes_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::local(dir.path(), None, Default::default()).unwrap();
        let spec: InboundFile =
            toml::from_str("mapping = \"m\"\nstyle = \"base64\"\npointer = \"/doc/pdf\"\n")
                .unwrap();
        let pdf = b"%PDF-1.7\n1 0 obj\n";
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pdf);
        let body = serde_json::to_vec(&serde_json::json!({"doc": {"pdf": b64}, "n": 1})).unwrap();
        let got = intake(
            &store,
            std::slice::from_ref(&spec),
            "application/json",
            body,
        )
        .await
        .unwrap();
        let id = FileId::of(pdf).to_string();
        let json: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(json["doc"]["pdf"], Value::String(id.clone()));
        let out: OutboundFile = toml::from_str("pointer = \"/f\"\nstyle = \"base64\"\n").unwrap();
        let mapped = serde_json::to_vec(&serde_json::json!({"f": id})).unwrap();
        let (sent, ct) = outbound_body(&store, &out, None, &mapped).await.unwrap();
        assert_eq!(ct, "application/json");
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent["f"], Value::String(b64));
        let bad = serde_json::to_vec(&serde_json::json!({"doc": {"pdf": "%%%"}})).unwrap();
        let e = intake(&store, &[spec], "application/json", bad)
            .await
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::Base64Invalid);
    }

    #[tokio::test]
    async fn a_url_delivery_puts_a_link_to_a_stored_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::local(dir.path(), None, Default::default()).unwrap();
        let meta = store
            .put_bytes(
                Bytes::from_static(b"%PDF-1.7\nlink\n"),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let links =
            DownloadLinks::new("https://hub.example/v1/files", b"0123456789abcdef").unwrap();
        let out: OutboundFile = toml::from_str("pointer = \"/fj\"\nstyle = \"url\"\n").unwrap();
        assert!(out.problems().is_empty());
        let mapped = serde_json::to_vec(&serde_json::json!({"fj": meta.id.to_string()})).unwrap();
        let (sent, _) = outbound_body(&store, &out, Some(&links), &mapped)
            .await
            .unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        let link = sent["fj"].as_str().unwrap();
        assert!(link.starts_with(&format!(
            "https://hub.example/v1/files/{}?expires=",
            meta.id
        )));
        // Not stored: dead-lettered; no links configured: a configuration error.
        let other =
            serde_json::to_vec(&serde_json::json!({"fj": FileId::of(b"y").to_string()})).unwrap();
        let e = outbound_body(&store, &out, Some(&links), &other)
            .await
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::NotFound);
        let e = outbound_body(&store, &out, None, &mapped)
            .await
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::ConfigInvalid);
        let e = outbound_text(&store, &out, Some(&links), None)
            .await
            .unwrap_err();
        assert_eq!(e.code, FileErrorCode::IdInvalid);
    }

    #[tokio::test]
    async fn a_multipart_delivery_is_read_back_with_the_same_id_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::local(dir.path(), None, Default::default()).unwrap();
        let pdf = b"%PDF-1.7\nmultipart\n";
        let meta = store
            .put_bytes(Bytes::from_static(pdf), &PutOptions::default())
            .await
            .unwrap();
        let out: OutboundFile = toml::from_str(
            "pointer = \"/fj\"\nstyle = \"multipart\"\npart = \"att\"\nfile_name = \"/wjm\"\n",
        )
        .unwrap();
        assert!(out.problems().is_empty());
        let mapped = serde_json::to_vec(
            &serde_json::json!({"wsbh": "WS-1", "fj": meta.id.to_string(), "wjm": "a.pdf"}),
        )
        .unwrap();
        let (body, ct) = outbound_body(&store, &out, None, &mapped).await.unwrap();
        let other = tempfile::tempdir().unwrap();
        let partner = FileStore::local(other.path(), None, Default::default()).unwrap();
        let stream = futures::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(body))]);
        let got = transfer::receive_multipart(&partner, &ct, stream, "att", &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(got.file.id, meta.id);
        assert_eq!(got.file_name.as_deref(), Some("a.pdf"));
        assert_eq!(got.fields.get("wsbh").map(String::as_str), Some("WS-1"));
        assert!(!got.fields.contains_key("fj"));
    }
}
