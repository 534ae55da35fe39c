//! Files carried by pushes (`docs/files.md`, "Wiring files into an adapter"): a route whose
//! adapter declares `[[file]]`s has each file stored in the hub's file store after
//! authentication and before the mapping, and replaced by its hub file id, so the mapping and
//! the contract carry only the id. A refusal answers the unified error with the file store's
//! code (`FILE_*`, `docs/errors.md`). A JSON route's fields are JSON pointers into the body; an
//! XML route's address elements of the tree the mapping reads (`hub_mapping::fields`), whose
//! text is replaced in place, in the document's own charset.
//!
//! The hub also serves the download links a delivery sends a file as (`file.style = "url"`):
//! `GET /v1/files/<file id>?expires=…&sig=…` ([`download`]), streamed from the store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_files::transfer::DownloadLinks;
use hub_files::wiring::{self, InboundFile, ReceiveStyle};
use hub_files::{FileError, FileErrorCode, FileMeta, FileStore};
use hub_mapping::fields::FieldError;
use hub_mapping::{Format, Mapping};
use hub_state::{FileHold, StateStore};
use serde_json::json;

use crate::Gateway;

/// The store and the routes that carry files.
pub struct FileIntake {
    pub store: FileStore,
    /// By route `<partner>/<mapping>`.
    pub routes: HashMap<String, Vec<InboundFile>>,
}

impl FileIntake {
    /// Stores the files of a push to `route`, if it declares any: `Err(body)` for a route
    /// without files, else the body the mapping reads and the ids of the files stored, each
    /// held provisional in `state` ([`hold`]) until [`reference`] after Kafka's acknowledgement.
    pub(crate) async fn intake(
        &self,
        route: &str,
        mapping: &Mapping,
        headers: &HeaderMap,
        body: Vec<u8>,
        state: &StateStore,
    ) -> Result<Result<(Vec<u8>, Vec<String>), Vec<u8>>, FileError> {
        let Some(files) = self.routes.get(route) else {
            return Ok(Err(body));
        };
        let started = chrono::Utc::now();
        if mapping.format == Format::Xml {
            let (body, metas) = match self.intake_xml(route, mapping, files, body).await? {
                Ok(stored) => stored,
                Err(unchanged) => return Ok(Err(unchanged)),
            };
            let held = hold(&self.store, state, &metas, started).await?;
            return Ok(Ok((body, held)));
        }
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let got = wiring::intake(&self.store, files, content_type, body).await?;
        for f in &got.files {
            stored(route, f);
        }
        let held = hold(&self.store, state, &got.files, started).await?;
        Ok(Ok((got.body, held)))
    }

    /// An XML push: each declared element's text (base64, or a URL to fetch) stored and
    /// replaced by the file id, the rest of the document (charset included) unchanged. A body
    /// that is not readable XML is handed on unchanged: the mapping refuses it with its code.
    /// Returns the new document and the files stored.
    async fn intake_xml(
        &self,
        route: &str,
        mapping: &Mapping,
        files: &[InboundFile],
        body: Vec<u8>,
    ) -> Result<Result<(Vec<u8>, Vec<FileMeta>), Vec<u8>>, FileError> {
        let mut doc = match mapping.text_body(&body) {
            Ok(d) => d,
            Err(_) => return Ok(Err(body)),
        };
        let not_text = |f: &InboundFile, e: FieldError| {
            FileError::new(
                match f.style {
                    ReceiveStyle::Url => FileErrorCode::UrlRefused,
                    ReceiveStyle::Multipart => FileErrorCode::MultipartInvalid,
                    ReceiveStyle::Base64 => FileErrorCode::Base64Invalid,
                },
                e.to_string(),
            )
        };
        let mut metas = Vec::new();
        for f in files {
            let text = match doc.text(&f.pointer) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => return Err(not_text(f, e)),
            };
            let meta = wiring::receive_text(&self.store, f, &text).await?;
            doc.set_text(&f.pointer, &meta.id.to_string())
                .map_err(|e| not_text(f, e))?;
            stored(route, &meta);
            metas.push(meta);
        }
        // The document was decoded from its charset; the ids are ASCII: always encodable.
        doc.into_bytes()
            .map(|bytes| Ok((bytes, metas)))
            .map_err(|e| FileError::new(FileErrorCode::Base64Invalid, e.to_string()))
    }
}

fn stored(route: &str, f: &hub_files::FileMeta) {
    // Never the file name (it may be personal): the id, size and type only.
    tracing::info!(route, file_id = %f.id, size = f.size, media_type = %f.media_type, encrypted = f.encrypted, "file stored");
}

/// What serves download links: the store and the links' key.
pub struct Downloads {
    pub store: FileStore,
    pub links: DownloadLinks,
}

/// `GET /v1/files/{id}?expires=…&sig=…`: a download link the hub issued (a delivery's
/// `file.style = "url"`), checked (signature in constant time, then expiry) before the store is
/// asked, then the file streamed with its type and length; the stream checks the SM3 as it
/// goes and breaks the connection off on a mismatch. Never buffered whole, never cached.
pub(crate) async fn download(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let request_id = crate::ingest::request_id(request.headers());
    let started = std::time::Instant::now();
    let (response, code, size) = serve_download(&gw, &id, query.as_deref(), &request_id).await;
    metrics::counter!("hub_gateway_file_downloads_total", "code" => code).increment(1);
    // One access-log line, as for pushes; never the link's signature.
    tracing::info!(
        target: "hub_gateway::access",
        request_id = %request_id,
        route = "files/download",
        status = response.status().as_u16(),
        code,
        bytes = size,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    let mut response = response;
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Passes each chunk on only once the next one (or the clean end) has arrived. The store
/// reports a file that does not match its SM3 only after its last byte; held back, that last
/// chunk is never sent then, so with the `Content-Length` announced the body comes up short
/// and the client sees a broken download, never a complete, wrong file.
fn hold_back_last(
    stream: hub_files::FileStream,
) -> impl futures::Stream<Item = Result<bytes::Bytes, FileError>> + Send {
    use futures::StreamExt;
    futures::stream::unfold(
        (stream, None::<bytes::Bytes>, false),
        |(mut stream, mut held, done)| async move {
            if done {
                return None;
            }
            loop {
                match stream.next().await {
                    Some(Ok(chunk)) => match held.replace(chunk) {
                        None => continue,
                        Some(previous) => return Some((Ok(previous), (stream, held, false))),
                    },
                    Some(Err(e)) => return Some((Err(e), (stream, None, true))),
                    None => return held.map(|last| (Ok(last), (stream, None, true))),
                }
            }
        },
    )
}

async fn serve_download(
    gw: &Gateway,
    id: &str,
    query: Option<&str>,
    request_id: &str,
) -> (Response, &'static str, u64) {
    let Some(downloads) = &gw.downloads else {
        let e = crate::ApiError::new(crate::ErrorCode::RouteNotFound, request_id);
        return (e.into_response(), "ROUTE_NOT_FOUND", 0);
    };
    let mut expires = "";
    let mut sig = "";
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("expires", v)) => expires = v,
            Some(("sig", v)) => sig = v,
            _ => {}
        }
    }
    let refused = |e: FileError| {
        let code = e.code();
        tracing::warn!(request_id, code, detail = %e.detail, "download refused");
        (refusal(&e, request_id), code, 0)
    };
    let file_id = match downloads.links.verify(id, expires, sig) {
        Ok(f) => f,
        Err(e) => return refused(e),
    };
    let (meta, stream) = match downloads.store.open(&file_id).await {
        Ok(opened) => opened,
        Err(e) => return refused(e),
    };
    let mut response = Response::new(Body::from_stream(hold_back_last(stream)));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&meta.media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The file is served as an attachment named by its id (never a partner's name for it).
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file_id.sm3_hex()))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    tracing::info!(request_id, file_id = %meta.id, size = meta.size, "file served");
    (response, "FILE_SERVED", meta.size)
}

/// How much older than the push a file may be and still count as stored by it (clocks of
/// replicas sharing an S3 store differ a little; a concurrent push of the same content is
/// held by that push too).
const FRESH_SKEW_SECS: i64 = 60;

/// Holds the files a push stored as provisional (`hub_file_refs`, `docs/files.md` "Files no
/// record references"), so the sweep may remove them if the push's record never reaches Kafka.
/// A file this push's put created gets a row; one stored earlier (by a pickup, before the
/// table existed) only has its provisional row touched, if it has one, and is otherwise left
/// untracked: never sweepable because of this push. A file a sweep is removing, or removed
/// between the put and the hold, refuses the push with `FILE_STORE_UNAVAILABLE` (503): the
/// partner's retry stores it again.
async fn hold(
    store: &FileStore,
    state: &StateStore,
    files: &[FileMeta],
    started: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, FileError> {
    let retry = |detail: &str| FileError::new(FileErrorCode::StoreUnavailable, detail.to_string());
    let mut ids = Vec::with_capacity(files.len());
    for f in files {
        let id = f.id.to_string();
        let created = chrono::DateTime::parse_from_rfc3339(&f.created_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        let fresh =
            created.is_some_and(|t| t >= started - chrono::Duration::seconds(FRESH_SKEW_SECS));
        match state.hold_file(&id, fresh).await {
            Ok(FileHold::Sweeping) => {
                return Err(retry(
                    "the same file is being removed as unreferenced; retry the push",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(retry(&format!("the state store is unavailable: {e}"))),
        }
        // The sweep deletes the file before its row: a hold made after that finds no file.
        match store.head(&f.id).await {
            Ok(_) => {}
            Err(e) if e.code == FileErrorCode::NotFound => {
                return Err(retry(
                    "the same file was just removed as unreferenced; retry the push",
                ))
            }
            Err(e) => return Err(e),
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Checks that every file of a push is (still) in the store; a missing one is
/// `FILE_STORE_UNAVAILABLE`, so the partner retries and the retry stores it again.
pub(crate) async fn still_stored(store: &FileStore, ids: &[String]) -> Result<(), FileError> {
    for id in ids {
        let parsed = hub_files::FileId::parse(id)?;
        match store.head(&parsed).await {
            Ok(_) => {}
            Err(e) if e.code == FileErrorCode::NotFound => {
                return Err(FileError::new(
                    FileErrorCode::StoreUnavailable,
                    "a file of this push was removed as unreferenced; retry the push",
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Marks the files of a push whose record Kafka acknowledged as referenced for good. The
/// record is on Kafka already: when the state store fails, the marking is retried in the
/// background (for up to an hour, well within `files.unreferenced_grace_minutes`).
pub(crate) async fn reference(state: &StateStore, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    if state.reference_files(&ids).await.is_ok() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3_600);
        let mut wait = std::time::Duration::from_millis(500);
        loop {
            tokio::time::sleep(wait).await;
            match state.reference_files(&ids).await {
                Ok(()) => return,
                Err(e) if std::time::Instant::now() > deadline => {
                    tracing::error!(files = ?ids, error = %e, "files of an acknowledged push could not be marked referenced; the sweep may remove them");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "files of an acknowledged push not yet marked referenced; retrying");
                    wait = (wait * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    });
}

/// The unified error answer of a file refusal.
pub(crate) fn refusal(e: &FileError, request_id: &str) -> Response {
    let (zh, en) = e.code.messages();
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({
            "code": e.code(),
            "message_zh": zh,
            "message_en": en,
            "request_id": request_id,
            "detail": {"reason": e.detail},
        })),
    )
        .into_response()
}
