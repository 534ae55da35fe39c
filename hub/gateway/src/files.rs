//! Files carried by pushes (`docs/files.md`, "Wiring files into an adapter"): a route whose
//! adapter declares `[[file]]`s has each file stored in the hub's file store after
//! authentication and before the mapping, and replaced by its hub file id, so the mapping and
//! the contract carry only the id. A refusal answers the unified error with the file store's
//! code (`FILE_*`, `docs/errors.md`).

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_files::wiring::{self, InboundFile};
use hub_files::{FileError, FileErrorCode, FileMeta, FileStore};
use hub_state::{FileHold, StateStore};
use serde_json::json;

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
        headers: &HeaderMap,
        body: Vec<u8>,
        state: &StateStore,
    ) -> Result<Result<(Vec<u8>, Vec<String>), Vec<u8>>, FileError> {
        let Some(files) = self.routes.get(route) else {
            return Ok(Err(body));
        };
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let started = chrono::Utc::now();
        let got = wiring::intake(&self.store, files, content_type, body).await?;
        for f in &got.files {
            // Never the file name (it may be personal): the id, size and type only.
            tracing::info!(route, file_id = %f.id, size = f.size, media_type = %f.media_type, encrypted = f.encrypted, "file stored");
        }
        let held = hold(&self.store, state, &got.files, started).await?;
        Ok(Ok((got.body, held)))
    }
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
