//! Pushes to the hub's gateway (`POST {hub}/v1/{adapter}/{mapping}`), signed by the partner's
//! [`Signer`], with a stable `X-Partner-Message-Id` so a retry is de-duplicated by the hub, and
//! retried with full-jitter backoff when the hub refuses for a passing reason (408, 429, 5xx, or
//! a "later" code in the partner's envelope) or cannot be reached.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::RngExt;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::{Outbound, Signer};
use crate::codes::Codes;
use crate::time::{now_s, rfc3339_local};

/// The hub's header that makes a push idempotent.
pub const PARTNER_MESSAGE_ID: &str = "x-partner-message-id";

/// How pushes to the hub are retried.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// HTTP 2xx: on the hub's bus.
    Accepted,
    /// The hub refused it (a permanent 4xx, or a passing refusal until the attempts ran out).
    Refused,
    /// The hub could not be reached (until the attempts ran out).
    Unreachable,
}

/// One push of one message, after all its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRecord {
    /// What the partner pushed (`dispatch`, `urge`, …).
    pub kind: String,
    /// The hub mapping pushed to, e.g. `dispatch_xml`.
    pub mapping: String,
    pub partner_message_id: String,
    pub attempts: u32,
    pub outcome: PushOutcome,
    /// The last HTTP status, when there was an answer.
    pub http_status: Option<u16>,
    /// `ACCEPTED`, `ACCEPTED_DUPLICATE`, or the error code: read from `code`, or from
    /// `data.hub_code` when the hub wraps its answer in the partner's envelope.
    pub hub_code: Option<String>,
    /// The hub said it already had this message.
    pub duplicate: bool,
    /// The last answer's body (JSON when it is JSON).
    pub answer: Option<Value>,
    /// The last transport error.
    pub error: Option<String>,
    /// When the push finished (RFC 3339, +08:00).
    pub at: String,
}

/// One message to push.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    pub kind: &'a str,
    pub mapping: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub partner_message_id: &'a str,
}

/// Pushes to one hub for one partner.
pub struct Pusher {
    client: reqwest::Client,
    hub_url: String,
    adapter: String,
    signer: Box<dyn Signer>,
    codes: Arc<dyn Codes>,
    retry: RetryConfig,
    /// Pushes still to be signed with a wrong key (planned bad signatures).
    wrong_signatures: AtomicU32,
}

fn hub_code(v: &Value) -> Option<String> {
    let s = |x: &Value| x.as_str().map(str::to_string);
    match v.get("data").and_then(|d| d.get("hub_code")) {
        Some(c) => s(c),
        None => v.get("code").and_then(s),
    }
}

fn is_duplicate(v: &Value) -> bool {
    let flag = |x: Option<&Value>| x.and_then(Value::as_bool).unwrap_or(false);
    flag(v.get("duplicate"))
        || flag(v.get("data").and_then(|d| d.get("duplicate")))
        || hub_code(v).as_deref() == Some("ACCEPTED_DUPLICATE")
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

impl Pusher {
    pub fn new(
        hub_url: &str,
        adapter: &str,
        signer: Box<dyn Signer>,
        codes: Arc<dyn Codes>,
        retry: RetryConfig,
    ) -> Self {
        Pusher {
            client: reqwest::Client::builder()
                .build()
                .expect("an HTTP client with default settings builds"),
            hub_url: hub_url.trim_end_matches('/').to_string(),
            adapter: adapter.to_string(),
            signer,
            codes,
            retry,
            wrong_signatures: AtomicU32::new(0),
        }
    }

    /// Signs the next `n` pushes with a wrong key (each push's attempts included).
    pub fn sign_wrongly(&self, n: u32) {
        self.wrong_signatures.fetch_add(n, Ordering::SeqCst);
    }

    fn take_wrong_signature(&self) -> bool {
        self.wrong_signatures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Pushes until the message is accepted, refused for good, the attempts run out, or
    /// `cancel` fires.
    pub async fn push(&self, push: Push<'_>, cancel: &CancellationToken) -> PushRecord {
        let Push {
            kind,
            mapping,
            content_type,
            body,
            partner_message_id,
        } = push;
        let url = format!("{}/v1/{}/{mapping}", self.hub_url, self.adapter);
        // The signature covers the path as sent, prefix of the hub URL included.
        let path = reqwest::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| format!("/v1/{}/{mapping}", self.adapter));
        let mut record = PushRecord {
            kind: kind.to_string(),
            mapping: mapping.to_string(),
            partner_message_id: partner_message_id.to_string(),
            attempts: 0,
            outcome: PushOutcome::Unreachable,
            http_status: None,
            hub_code: None,
            duplicate: false,
            answer: None,
            error: None,
            at: String::new(),
        };
        let wrong = self
            .take_wrong_signature()
            .then(|| self.signer.with_wrong_key());
        let signer = wrong.as_deref().unwrap_or(&*self.signer);
        let max = self.retry.max_attempts.max(1);
        loop {
            record.attempts += 1;
            let now_ms = Utc::now().timestamp_millis();
            let mut request = self
                .client
                .post(&url)
                .timeout(self.retry.timeout)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(PARTNER_MESSAGE_ID, partner_message_id)
                .body(body.to_vec());
            // The partner message id steers the hub (idempotency): it is signed.
            let out = Outbound {
                http_method: "POST",
                path: &path,
                raw_query: "",
                body,
                headers: &[(PARTNER_MESSAGE_ID, partner_message_id)],
            };
            for (name, value) in signer.sign(&out, now_ms) {
                request = request.header(name, value);
            }
            let mut retry_after = None;
            let passing = match request.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    let answer = serde_json::from_str::<Value>(&text)
                        .unwrap_or_else(|_| Value::String(text.clone()));
                    record.http_status = Some(status.as_u16());
                    record.hub_code = hub_code(&answer);
                    record.error = None;
                    // The hub's answers carry ids and codes, never the payload: safe to log.
                    debug!(partner_message_id, status = status.as_u16(), answer = %text, "hub answered");
                    // A 2xx is taken, unless the answer is in the partner's envelope with a
                    // refusal code (the hub keeps the HTTP status, so this is a safety net).
                    let envelope_refusal = self
                        .codes
                        .envelope_code(&answer)
                        .filter(|c| *c != self.codes.ok())
                        .map(str::to_string);
                    if status.is_success() && envelope_refusal.is_none() {
                        record.duplicate = is_duplicate(&answer);
                        record.answer = Some(answer);
                        record.outcome = PushOutcome::Accepted;
                        break;
                    }
                    let again = match envelope_refusal {
                        Some(c) if status.is_success() => self.codes.retry_later(&c),
                        _ => retryable(status),
                    };
                    record.answer = Some(answer);
                    record.outcome = PushOutcome::Refused;
                    again
                }
                Err(e) => {
                    record.outcome = PushOutcome::Unreachable;
                    record.error = Some(e.to_string());
                    true
                }
            };
            if !passing || record.attempts >= max {
                break;
            }
            let backoff = retry_after.unwrap_or_else(|| self.backoff(record.attempts));
            warn!(
                partner_message_id,
                mapping,
                attempt = record.attempts,
                status = record.http_status,
                code = record.hub_code.as_deref().unwrap_or("-"),
                error = record.error.as_deref().unwrap_or("-"),
                backoff_ms = backoff.as_millis() as u64,
                "push not accepted; retrying"
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.cancelled() => break,
            }
        }
        record.at = rfc3339_local(now_s());
        match record.outcome {
            PushOutcome::Accepted => info!(
                partner_message_id,
                mapping,
                attempts = record.attempts,
                code = record.hub_code.as_deref().unwrap_or("-"),
                duplicate = record.duplicate,
                "push accepted"
            ),
            _ => warn!(
                partner_message_id,
                mapping,
                attempts = record.attempts,
                outcome = ?record.outcome,
                status = record.http_status,
                code = record.hub_code.as_deref().unwrap_or("-"),
                error = record.error.as_deref().unwrap_or("-"),
                "push failed"
            ),
        }
        record
    }

    /// Exponential backoff, capped, with jitter (a random wait between half and all of
    /// `initial · 2^(attempt-1)`) so that many pushes do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .retry
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.retry.max_backoff);
        let ms = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_answer_shapes_are_read() {
        let plain = json!({"code": "ACCEPTED", "duplicate": true});
        assert_eq!(hub_code(&plain).as_deref(), Some("ACCEPTED"));
        assert!(is_duplicate(&plain));
        let wrapped =
            json!({"code": "0000", "msg": "成功", "data": {"hub_code": "ACCEPTED_DUPLICATE"}});
        assert_eq!(hub_code(&wrapped).as_deref(), Some("ACCEPTED_DUPLICATE"));
        assert!(is_duplicate(&wrapped));
        assert!(!is_duplicate(&json!({"code": "ACCEPTED"})));
    }
}
