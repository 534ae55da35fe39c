//! The one shape of every refusal an app's API gives, as the gateway's (`docs/errors.md`):
//!
//! ```json
//! {"code": "HOTLINE_ILLEGAL_TRANSITION", "message_zh": "…", "message_en": "…", "request_id": "…", "detail": {…}}
//! ```
//!
//! `code` is stable; the messages are Chinese first, English beside. `detail` never echoes
//! personal data. The request id is logged with the code so an operator can find the refusal.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A refusal with its HTTP status, stable code and bilingual message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message_zh: Cow<'static, str>,
    pub message_en: Cow<'static, str>,
    pub detail: Option<Value>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message_zh: impl Into<Cow<'static, str>>,
        message_en: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message_zh: message_zh.into(),
            message_en: message_en.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The database did not answer: the caller may retry.
    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        // The error text may name tables and constraints, never values: log it, do not send it.
        tracing::error!(error = %error, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "DB_UNAVAILABLE",
            "数据库暂不可用，请稍后重试",
            "the database is not available; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::now_v7().to_string();
        if self.status.is_server_error() {
            tracing::warn!(
                code = self.code,
                request_id,
                status = self.status.as_u16(),
                "request refused"
            );
        } else {
            tracing::info!(
                code = self.code,
                request_id,
                status = self.status.as_u16(),
                "request refused"
            );
        }
        let mut body = json!({
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "request_id": request_id,
        });
        if let Some(d) = self.detail {
            body["detail"] = d;
        }
        (self.status, Json(body)).into_response()
    }
}
