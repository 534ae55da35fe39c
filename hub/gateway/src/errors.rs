//! Unified error answers: every refusal, from any route, has one shape and a stable code.
//!
//! ```json
//! {"code": "AUTH_SIGNATURE_INVALID", "message_zh": "签名验证失败", "message_en": "the signature does not verify", "request_id": "…"}
//! ```
//!
//! `docs/errors.md` lists every code; a test checks the page against [`ErrorCode::ALL`].

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Every code the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    AuthHeadersMissing,
    AuthMethodUnsupported,
    AuthHeaderUnsigned,
    AuthSignedHeadersInvalid,
    AuthPartnerMismatch,
    AuthTimestampOutOfWindow,
    AuthNonceInvalid,
    AuthSignatureInvalid,
    AuthReplay,
    AuthClientCertRequired,
    AuthClientCertMismatch,
    AuthTokenExpired,
    RateLimited,
    Overloaded,
    BodyTooLarge,
    BodyTimeout,
    RouteNotFound,
    PartnerMessageIdInvalid,
    IngestInProgress,
    EncryptionUnsupported,
    EncryptionKeyMissing,
    DecryptionFailed,
    MappingInputUnreadable,
    MappingFailed,
    MappingOutputInvalid,
    PersonalDataUnprotected,
    BusUnavailable,
    StateUnavailable,
    IdempotencyKeyReused,
    InputTooDeep,
    InputTooManyNodes,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::AuthHeadersMissing,
        ErrorCode::AuthMethodUnsupported,
        ErrorCode::AuthHeaderUnsigned,
        ErrorCode::AuthSignedHeadersInvalid,
        ErrorCode::AuthPartnerMismatch,
        ErrorCode::AuthTimestampOutOfWindow,
        ErrorCode::AuthNonceInvalid,
        ErrorCode::AuthSignatureInvalid,
        ErrorCode::AuthReplay,
        ErrorCode::AuthClientCertRequired,
        ErrorCode::AuthClientCertMismatch,
        ErrorCode::AuthTokenExpired,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::BodyTooLarge,
        ErrorCode::BodyTimeout,
        ErrorCode::RouteNotFound,
        ErrorCode::PartnerMessageIdInvalid,
        ErrorCode::IngestInProgress,
        ErrorCode::EncryptionUnsupported,
        ErrorCode::EncryptionKeyMissing,
        ErrorCode::DecryptionFailed,
        ErrorCode::MappingInputUnreadable,
        ErrorCode::MappingFailed,
        ErrorCode::MappingOutputInvalid,
        ErrorCode::PersonalDataUnprotected,
        ErrorCode::BusUnavailable,
        ErrorCode::StateUnavailable,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::InputTooDeep,
        ErrorCode::InputTooManyNodes,
    ];

    /// The stable code string.
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::AuthHeadersMissing => "AUTH_HEADERS_MISSING",
            ErrorCode::AuthMethodUnsupported => "AUTH_METHOD_UNSUPPORTED",
            ErrorCode::AuthHeaderUnsigned => "AUTH_HEADER_UNSIGNED",
            ErrorCode::AuthSignedHeadersInvalid => "AUTH_SIGNED_HEADERS_INVALID",
            ErrorCode::AuthPartnerMismatch => "AUTH_PARTNER_MISMATCH",
            ErrorCode::AuthTimestampOutOfWindow => "AUTH_TIMESTAMP_OUT_OF_WINDOW",
            ErrorCode::AuthNonceInvalid => "AUTH_NONCE_INVALID",
            ErrorCode::AuthSignatureInvalid => "AUTH_SIGNATURE_INVALID",
            ErrorCode::AuthReplay => "AUTH_REPLAY",
            ErrorCode::AuthClientCertRequired => "AUTH_CLIENT_CERT_REQUIRED",
            ErrorCode::AuthClientCertMismatch => "AUTH_CLIENT_CERT_MISMATCH",
            ErrorCode::AuthTokenExpired => "AUTH_TOKEN_EXPIRED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::BodyTooLarge => "BODY_TOO_LARGE",
            ErrorCode::BodyTimeout => "BODY_TIMEOUT",
            ErrorCode::RouteNotFound => "ROUTE_NOT_FOUND",
            ErrorCode::PartnerMessageIdInvalid => "PARTNER_MESSAGE_ID_INVALID",
            ErrorCode::IngestInProgress => "INGEST_IN_PROGRESS",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::EncryptionUnsupported => "ENCRYPTION_UNSUPPORTED",
            ErrorCode::EncryptionKeyMissing => "ENCRYPTION_KEY_MISSING",
            ErrorCode::DecryptionFailed => "DECRYPTION_FAILED",
            ErrorCode::MappingInputUnreadable => "MAPPING_INPUT_UNREADABLE",
            ErrorCode::MappingFailed => "MAPPING_FAILED",
            ErrorCode::MappingOutputInvalid => "MAPPING_OUTPUT_INVALID",
            ErrorCode::PersonalDataUnprotected => "PERSONAL_DATA_UNPROTECTED",
            ErrorCode::BusUnavailable => "BUS_UNAVAILABLE",
            ErrorCode::StateUnavailable => "STATE_UNAVAILABLE",
            ErrorCode::InputTooDeep => "INPUT_TOO_DEEP",
            ErrorCode::InputTooManyNodes => "INPUT_TOO_MANY_NODES",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::AuthHeadersMissing
            | ErrorCode::AuthMethodUnsupported
            | ErrorCode::AuthHeaderUnsigned
            | ErrorCode::AuthSignedHeadersInvalid
            | ErrorCode::AuthTimestampOutOfWindow
            | ErrorCode::AuthNonceInvalid
            | ErrorCode::AuthSignatureInvalid
            | ErrorCode::AuthClientCertRequired
            | ErrorCode::AuthTokenExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::AuthPartnerMismatch | ErrorCode::AuthClientCertMismatch => {
                StatusCode::FORBIDDEN
            }
            ErrorCode::AuthReplay
            | ErrorCode::IngestInProgress
            | ErrorCode::IdempotencyKeyReused => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded | ErrorCode::BusUnavailable | ErrorCode::StateUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::PersonalDataUnprotected => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RouteNotFound => StatusCode::NOT_FOUND,
            ErrorCode::PartnerMessageIdInvalid
            | ErrorCode::EncryptionUnsupported
            | ErrorCode::EncryptionKeyMissing
            | ErrorCode::DecryptionFailed
            | ErrorCode::MappingInputUnreadable
            | ErrorCode::InputTooDeep
            | ErrorCode::InputTooManyNodes => StatusCode::BAD_REQUEST,
            ErrorCode::MappingFailed | ErrorCode::MappingOutputInvalid => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    /// Chinese, then English.
    pub fn messages(self) -> (&'static str, &'static str) {
        match self {
            ErrorCode::AuthHeadersMissing => ("缺少签名请求头", "a signature header is missing"),
            ErrorCode::AuthMethodUnsupported => (
                "不支持的签名方法",
                "the signature method is not HMAC-SM3 or SM2-SM3",
            ),
            ErrorCode::AuthHeaderUnsigned => (
                "请求头须纳入签名（X-Hub-Signed-Headers）",
                "a header that steers the request (message id, correlation id, encryption) is not signed: name it in X-Hub-Signed-Headers",
            ),
            ErrorCode::AuthSignedHeadersInvalid => (
                "X-Hub-Signed-Headers 格式不正确或所列请求头缺失",
                "X-Hub-Signed-Headers is malformed or names a header that is not sent",
            ),
            ErrorCode::AuthPartnerMismatch => (
                "该应用无权调用此合作方的接口",
                "this app may not call this partner's routes",
            ),
            ErrorCode::AuthTimestampOutOfWindow => (
                "时间戳超出允许范围",
                "the timestamp is outside the allowed window",
            ),
            ErrorCode::AuthNonceInvalid => (
                "随机数格式不正确",
                "the nonce must be 16-64 characters of A-Z a-z 0-9 - _",
            ),
            ErrorCode::AuthSignatureInvalid => (
                "签名验证失败",
                "the signature does not verify (or the app id is not known)",
            ),
            ErrorCode::AuthReplay => (
                "重复的请求（随机数已使用）",
                "replayed request: the nonce was already used",
            ),
            ErrorCode::AuthClientCertRequired => (
                "该应用须使用客户端证书",
                "this app must connect with its client certificate",
            ),
            ErrorCode::AuthClientCertMismatch => (
                "客户端证书与该应用登记的不符",
                "the client certificate is not the one registered for this app",
            ),
            ErrorCode::AuthTokenExpired => (
                "访问令牌已过期，请重新获取",
                "the access token has expired: get a new one from /v1/oauth2/token",
            ),
            ErrorCode::RateLimited => (
                "请求过于频繁，请稍后重试",
                "too many requests; retry after the indicated time",
            ),
            ErrorCode::Overloaded => ("服务繁忙，请稍后重试", "the hub is busy; retry shortly"),
            ErrorCode::BodyTooLarge => ("请求体过大", "the request body is too large"),
            ErrorCode::BodyTimeout => ("请求体接收超时", "the request body did not arrive in time"),
            ErrorCode::RouteNotFound => ("接口不存在", "no such route"),
            ErrorCode::PartnerMessageIdInvalid => (
                "合作方报文标识格式不正确",
                "the partner message id must be 1-128 printable ASCII characters",
            ),
            ErrorCode::IngestInProgress => (
                "同一报文正在处理中，请稍后重试",
                "the same message is being processed; retry shortly",
            ),
            ErrorCode::IdempotencyKeyReused => (
                "报文编号已用于其他报文（路由或内容不同），请为新报文使用新的报文编号",
                "this partner message id was already used for another message (another route or body); give a new message a new id",
            ),
            ErrorCode::EncryptionUnsupported => (
                "不支持的报文加密方式",
                "X-Hub-Encryption must be SM4-CBC or SM4-GCM",
            ),
            ErrorCode::EncryptionKeyMissing => (
                "缺少报文解密密钥",
                "no SM4 key: send X-Hub-Encryption-Key or agree a pre-shared key",
            ),
            ErrorCode::DecryptionFailed => (
                "报文解密失败",
                "the body does not decrypt with the key given",
            ),
            ErrorCode::MappingInputUnreadable => ("报文无法解析", "the payload cannot be read"),
            ErrorCode::MappingFailed => (
                "报文内容不符合约定",
                "the payload does not follow the agreed format",
            ),
            ErrorCode::MappingOutputInvalid => (
                "报文转换结果不符合契约",
                "the mapped record does not satisfy its contract",
            ),
            ErrorCode::PersonalDataUnprotected => (
                "个人信息无法加密，报文未接收",
                "personal data could not be encrypted; nothing was accepted",
            ),
            ErrorCode::BusUnavailable => (
                "消息总线暂不可用，请稍后重试",
                "the message bus is unavailable; retry shortly",
            ),
            ErrorCode::StateUnavailable => (
                "状态存储暂不可用，请稍后重试",
                "the state store is unavailable; retry shortly",
            ),
            ErrorCode::InputTooDeep => (
                "报文嵌套层级过深",
                "the payload nests deeper than the hub accepts",
            ),
            ErrorCode::InputTooManyNodes => (
                "报文元素或字段过多",
                "the payload has more elements or values than the hub accepts",
            ),
        }
    }
}

/// An error answer: the code, an optional detail (never personal data), the request id, and
/// an optional Retry-After in seconds.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: Option<Value>,
    pub request_id: String,
    pub retry_after_secs: Option<u64>,
    /// Why, for the audit record and the metrics only (never answered): e.g.
    /// `auth.app_unknown` behind an `AUTH_SIGNATURE_INVALID` answer.
    pub reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, request_id: &str) -> Self {
        Self {
            code,
            detail: None,
            request_id: request_id.to_string(),
            retry_after_secs: None,
            reason: None,
        }
    }

    /// The reason kept for the audit record and metrics, not answered.
    pub fn because(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (zh, en) = self.code.messages();
        let mut body = json!({
            "code": self.code.code(),
            "message_zh": zh,
            "message_en": en,
            "request_id": self.request_id,
        });
        if let Some(d) = self.detail {
            body["detail"] = d;
        }
        let mut response = (self.code.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` must hold every variant: this match fails to compile when one is added without
    /// a place here, and the assertion fails when `ALL` misses it.
    #[test]
    fn all_lists_every_variant_once() {
        let place = |c: ErrorCode| -> usize {
            match c {
                ErrorCode::AuthHeadersMissing => 0,
                ErrorCode::AuthMethodUnsupported => 1,
                ErrorCode::AuthHeaderUnsigned => 2,
                ErrorCode::AuthSignedHeadersInvalid => 3,
                ErrorCode::AuthPartnerMismatch => 4,
                ErrorCode::AuthTimestampOutOfWindow => 5,
                ErrorCode::AuthNonceInvalid => 6,
                ErrorCode::AuthSignatureInvalid => 7,
                ErrorCode::AuthReplay => 8,
                ErrorCode::AuthClientCertRequired => 9,
                ErrorCode::AuthClientCertMismatch => 10,
                ErrorCode::AuthTokenExpired => 11,
                ErrorCode::RateLimited => 12,
                ErrorCode::Overloaded => 13,
                ErrorCode::BodyTooLarge => 14,
                ErrorCode::BodyTimeout => 15,
                ErrorCode::RouteNotFound => 16,
                ErrorCode::PartnerMessageIdInvalid => 17,
                ErrorCode::IngestInProgress => 18,
                ErrorCode::EncryptionUnsupported => 19,
                ErrorCode::EncryptionKeyMissing => 20,
                ErrorCode::DecryptionFailed => 21,
                ErrorCode::MappingInputUnreadable => 22,
                ErrorCode::MappingFailed => 23,
                ErrorCode::MappingOutputInvalid => 24,
                ErrorCode::PersonalDataUnprotected => 25,
                ErrorCode::BusUnavailable => 26,
                ErrorCode::StateUnavailable => 27,
                ErrorCode::IdempotencyKeyReused => 28,
                ErrorCode::InputTooDeep => 29,
                ErrorCode::InputTooManyNodes => 30,
            }
        };
        assert_eq!(ErrorCode::ALL.len(), 31);
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(place(*c), i);
        }
    }
}
