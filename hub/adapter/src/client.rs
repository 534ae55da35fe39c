//! The HTTP client of one partner: every request signed with the partner's scheme (its
//! adapter's `[auth]`, `hub_protocols`), limited, bounded in time, and optionally over mutual
//! TLS with a pinned server CA.

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hub_protocols::{AuthSpec, OutboundCredentials, OutboundRequest, OutboundSigner};
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
    /// `host[:port]` of the base URL, as the `Host` header carries it.
    host: String,
    signer: Arc<dyn OutboundSigner>,
    sm4_key: Option<[u8; 16]>,
    http: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    pub breaker: Breaker,
    pub section: PartnerSection,
}

fn read_file(base_dir: &std::path::Path, file: &std::path::Path) -> Result<Vec<u8>, String> {
    let path = base_dir.join(file);
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

impl PartnerClient {
    /// Builds the client with the partner's authentication scheme (`auth`, from its adapter);
    /// `base_dir` resolves relative key and certificate files.
    pub fn new(
        partner: &str,
        section: &PartnerSection,
        base_dir: &std::path::Path,
        auth: &AuthSpec,
    ) -> Result<Self, ClientError> {
        let fail = |message: String| ClientError::Config {
            partner: partner.to_string(),
            message,
        };
        let sm2_private_key = match &section.sm2_private_key_file {
            None => None,
            Some(file) => {
                let text = read_file(base_dir, file)
                    .map_err(|e| fail(format!("sm2_private_key_file {e}")))?;
                Some(
                    hub_security::sm::Sm2PrivateKey::from_hex(
                        String::from_utf8_lossy(&text).trim(),
                    )
                    .map_err(|e| fail(format!("sm2_private_key_file: {e}")))?,
                )
            }
        };
        let certificate_der = match &section.sm2_certificate_file {
            None => None,
            Some(file) => {
                let bytes = read_file(base_dir, file)
                    .map_err(|e| fail(format!("sm2_certificate_file {e}")))?;
                Some(
                    hub_protocols::certificate_der(&bytes)
                        .map_err(|e| fail(format!("sm2_certificate_file: {e}")))?,
                )
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
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(section.timeout_ms))
            .connect_timeout(Duration::from_millis(section.timeout_ms.min(5_000)))
            .pool_max_idle_per_host(section.concurrency)
            .user_agent(concat!("shanghai-hub/", env!("CARGO_PKG_VERSION")));
        // Mutual TLS: the hub's client certificate and key for this partner.
        if let (Some(cert), Some(key)) = (&section.client_cert_file, &section.client_key_file) {
            let mut pem =
                read_file(base_dir, cert).map_err(|e| fail(format!("client_cert_file {e}")))?;
            pem.push(b'\n');
            pem.extend(read_file(base_dir, key).map_err(|e| fail(format!("client_key_file {e}")))?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| fail(format!("client_cert_file/client_key_file: {e}")))?;
            builder = builder.identity(identity);
        }
        // A pinned server CA: only it is trusted for this partner.
        if let Some(ca) = &section.server_ca_file {
            let pem = read_file(base_dir, ca).map_err(|e| fail(format!("server_ca_file {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| fail(format!("server_ca_file: {e}")))?;
            if certs.is_empty() {
                return Err(fail("server_ca_file holds no certificate".into()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        let base_url = section.base_url.trim_end_matches('/').to_string();
        let signer = auth
            .signer(OutboundCredentials {
                app_id: section.app_id.clone(),
                secret: section.hmac_secret.as_ref().map(|s| s.as_bytes().to_vec()),
                sm2_private_key,
                certificate_der,
                base_url: base_url.clone(),
                http: Some(http.clone()),
            })
            .map_err(|e| fail(format!("[auth] scheme {}: {e}", auth.scheme())))?;
        let host = reqwest::Url::parse(&base_url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .ok_or_else(|| fail(format!("base_url `{base_url}` has no host")))?;
        let per_second = std::num::NonZeroU32::new(section.rate_per_second.max(1)).expect("≥ 1");
        let burst = std::num::NonZeroU32::new(section.burst.max(1)).expect("≥ 1");
        Ok(Self {
            partner: partner.to_string(),
            base_url,
            host,
            signer,
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

    async fn send(&self, request: OutboundRequest) -> Result<reqwest::Response, NoAnswer> {
        let url = if request.query.is_empty() {
            format!("{}{}", self.base_url, request.path)
        } else {
            format!("{}{}?{}", self.base_url, request.path, request.query)
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| NoAnswer::Transport(e.to_string()))?;
        let mut builder = self.http.request(method, &url).body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.send().await.map_err(no_answer)
    }

    /// The scheme the calls are signed with.
    pub fn scheme(&self) -> &'static str {
        self.signer.scheme()
    }

    /// Sends one signed request. Waits for the rate limit and a concurrency slot first (that
    /// wait is not part of the timeout). `query` is the raw query string, already encoded; an
    /// empty `content_type` sends no `Content-Type`.
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
        // No content type for a request without one (a GET delivery's query carries its data).
        let mut headers = Vec::new();
        if encrypted {
            headers.push((
                "Content-Type".to_string(),
                "application/octet-stream".to_string(),
            ));
        } else if !content_type.is_empty() {
            headers.push(("Content-Type".to_string(), content_type.to_string()));
        }
        if encrypted {
            headers.push((ENCRYPTION.to_string(), "SM4-GCM".to_string()));
        }
        headers.extend(
            extra_headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone())),
        );
        let mut request = OutboundRequest {
            method: method.to_ascii_uppercase(),
            host: self.host.clone(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body,
        };
        // The scheme signs whatever it needs (for hub-v1 every header above, so nobody on the
        // path can change the idempotency key or the encryption mode).
        let unsigned = request.clone();
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.signer
            .sign(&mut request, now_ms)
            .await
            .map_err(|e| NoAnswer::Transport(e.to_string()))?;
        let mut response = self.send(request).await?;
        // A 401 to a token-bearing scheme: the token is dropped, fetched again, and the call
        // sent once more (a second 401 is the partner's answer).
        if response.status() == reqwest::StatusCode::UNAUTHORIZED
            && self.signer.unauthorized().await
        {
            let mut again = unsigned;
            let now_ms = chrono::Utc::now().timestamp_millis();
            if self.signer.sign(&mut again, now_ms).await.is_ok() {
                response = self.send(again).await?;
            }
        }
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
