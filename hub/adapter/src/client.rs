//! The HTTP client of one partner: every request signed, limited and bounded in time.

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hub_security::signing::SigningCredential;
use tokio::sync::Semaphore;

use crate::answer::{retry_after, Answer, NoAnswer};
use crate::breaker::Breaker;
use crate::partner::PartnerSection;

/// Largest answer body read from a partner; more is cut (answers are acknowledgements or
/// pages of a query, never bulk data).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Header naming the body encryption, as on the gateway (`docs/security.md`).
pub const ENCRYPTION: &str = "x-hub-encryption";

/// What the hub got back.
pub type PartnerAnswer = Answer;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("partners.{partner}: {message}")]
    Config { partner: String, message: String },
}

/// One partner's client, shared by its delivery routes and pull jobs.
pub struct PartnerClient {
    pub partner: String,
    base_url: String,
    app_id: String,
    credential: SigningCredential,
    sm4_key: Option<[u8; 16]>,
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    pub breaker: Breaker,
    pub section: PartnerSection,
}

impl PartnerClient {
    /// Builds the client; `base_dir` resolves a relative SM2 key file.
    pub fn new(
        partner: &str,
        section: &PartnerSection,
        base_dir: &std::path::Path,
    ) -> Result<Self, ClientError> {
        let fail = |message: String| ClientError::Config {
            partner: partner.to_string(),
            message,
        };
        let credential = match (&section.hmac_secret, &section.sm2_private_key_file) {
            (Some(secret), None) => SigningCredential::HmacSm3 {
                secret: secret.as_bytes().to_vec(),
            },
            (None, Some(file)) => {
                let path = base_dir.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("sm2_private_key_file {}: {e}", path.display())))?;
                let key = hub_security::sm::Sm2PrivateKey::from_hex(text.trim())
                    .map_err(|e| fail(format!("sm2_private_key_file: {e}")))?;
                SigningCredential::Sm2 { key }
            }
            _ => {
                return Err(fail(
                    "set exactly one of hmac_secret and sm2_private_key_file".into(),
                ))
            }
        };
        let sm4_key = match &section.sm4_key {
            None => None,
            Some(k) => Some(
                hex::decode(k.trim())
                    .ok()
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .ok_or_else(|| fail("sm4_key is not 32 hex digits".into()))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(section.timeout_ms))
            .connect_timeout(Duration::from_millis(section.timeout_ms.min(5_000)))
            .pool_max_idle_per_host(section.concurrency)
            .user_agent(concat!("shanghai-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        let per_second = std::num::NonZeroU32::new(section.rate_per_second.max(1)).expect("≥ 1");
        let burst = std::num::NonZeroU32::new(section.burst.max(1)).expect("≥ 1");
        Ok(Self {
            partner: partner.to_string(),
            base_url: section.base_url.trim_end_matches('/').to_string(),
            app_id: section.app_id.clone(),
            credential,
            sm4_key,
            http,
            limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            in_flight: Arc::new(Semaphore::new(section.concurrency)),
            breaker: Breaker::new(
                section.breaker_failures,
                Duration::from_millis(section.breaker_open_ms),
            ),
            section: section.clone(),
        })
    }

    /// Sends one signed request. Waits for the rate limit and a concurrency slot first (that
    /// wait is not part of the timeout). `query` is the raw query string, already encoded.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Vec<u8>,
        content_type: &str,
        extra_headers: &[(&str, String)],
    ) -> Result<PartnerAnswer, NoAnswer> {
        self.limiter.until_ready().await;
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| NoAnswer::Transport("client closed".into()))?;
        let (body, encrypted) = match &self.sm4_key {
            Some(key) => {
                let nonce: [u8; 12] = hub_security::sm::random();
                let sealed = hub_security::sm::sm4_gcm_encrypt(key, &nonce, b"", &body)
                    .map_err(|e| NoAnswer::Transport(format!("body encryption: {e}")))?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                (out, true)
            }
            None => (body, false),
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let signed = self
            .credential
            .sign_request(&self.app_id, method, path, query, &body, now_ms);
        let url = if query.is_empty() {
            format!("{}{path}", self.base_url)
        } else {
            format!("{}{path}?{query}", self.base_url)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| NoAnswer::Transport(e.to_string()))?;
        let mut request = self.http.request(method, &url).body(body);
        request = request.header(
            reqwest::header::CONTENT_TYPE,
            if encrypted {
                "application/octet-stream"
            } else {
                content_type
            },
        );
        if encrypted {
            request = request.header(ENCRYPTION, "SM4-GCM");
        }
        for (name, value) in signed
            .iter()
            .map(|(n, v)| (*n, v))
            .chain(extra_headers.iter().map(|(n, v)| (*n, v)))
        {
            request = request.header(name, value.as_str());
        }
        let response = request.send().await.map_err(no_answer)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(no_answer)? {
            let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

fn no_answer(e: reqwest::Error) -> NoAnswer {
    if e.is_timeout() {
        NoAnswer::Timeout
    } else {
        // The chain of sources says "connection reset", "refused", …; no payload is in it.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        NoAnswer::Transport(text)
    }
}
