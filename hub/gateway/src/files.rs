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
use hub_files::{FileError, FileStore};
use serde_json::json;

/// The store and the routes that carry files.
pub struct FileIntake {
    pub store: FileStore,
    /// By route `<partner>/<mapping>`.
    pub routes: HashMap<String, Vec<InboundFile>>,
}

impl FileIntake {
    /// Stores the files of a push to `route`, if it declares any: `Ok(None)` for a route
    /// without files, else the body the mapping reads.
    pub(crate) async fn intake(
        &self,
        route: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Result<Vec<u8>, Vec<u8>>, FileError> {
        let Some(files) = self.routes.get(route) else {
            return Ok(Err(body));
        };
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let got = wiring::intake(&self.store, files, content_type, body).await?;
        for f in &got.files {
            // Never the file name (it may be personal): the id, size and type only.
            tracing::info!(route, file_id = %f.id, size = f.size, media_type = %f.media_type, encrypted = f.encrypted, "file stored");
        }
        Ok(Ok(got.body))
    }
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
