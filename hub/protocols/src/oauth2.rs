//! `oauth2-client-credentials` (RFC 6749 §4.4).
//!
//! * Outbound: the hub gets an access token from the partner's token endpoint with its client
//!   id (`[partners.<name>] app_id`) and secret (`hmac_secret`), keeps it for all routes of the
//!   partner (one signer per partner client), renews it `refresh_before_ms` before it expires,
//!   and once more when the partner answers 401 ([`OutboundSigner::unauthorized`]). Calls carry
//!   `Authorization: Bearer <token>`. Tokens and secrets never appear in `Debug` output, logs or
//!   error messages.
//! * Inbound: the hub issues tokens itself at `POST /v1/oauth2/token` on the gateway
//!   ([`issue`]). They are self-contained: `hub1.<payload>.<mac>`, the payload base64url JSON
//!   `{"sub": <client id>, "exp": <Unix ms>, "jti": <random>}`, the mac the hex HMAC-SM3 of
//!   `hub1.<payload>` under the client's own secret — so every replica verifies them without
//!   shared state, and rotating the client's secret revokes its tokens.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{
    equal, Claim, Credentials, InboundRequest, InboundVerifier, OutboundCredentials,
    OutboundRequest, OutboundSigner, Refusal, SignError, SpecProblem,
};

/// How the client authenticates at the token endpoint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)` (RFC 6749 §2.3.1, the recommended way).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// `[auth]` with `scheme = "oauth2-client-credentials"`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Spec {
    /// The partner's token endpoint: a path on its base URL (`/oauth/token`) or an http(s)
    /// URL; required to call the partner.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The scope asked for, if the partner wants one.
    #[serde(default)]
    pub scope: Option<String>,
    /// `basic` (HTTP Basic of the form-encoded id and secret, RFC 6749 §2.3.1) or `body`
    /// (`client_id`, `client_secret` in the form).
    #[serde(default = "default_client_auth")]
    pub client_auth: ClientAuth,
    /// Renew a token this long before it expires.
    #[serde(default = "default_refresh_before")]
    pub refresh_before_ms: u64,
    /// Lifetime of the tokens the hub issues to this partner (inbound; 60 s – 24 h).
    #[serde(default = "default_lifetime")]
    pub issued_lifetime_ms: u64,
}

fn default_client_auth() -> ClientAuth {
    ClientAuth::Basic
}
fn default_refresh_before() -> u64 {
    60_000
}
fn default_lifetime() -> u64 {
    3_600_000
}

impl OAuth2Spec {
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut out = Vec::new();
        if let Some(u) = &self.token_url {
            if !(u.starts_with('/') || u.starts_with("https://") || u.starts_with("http://")) {
                out.push(SpecProblem::error(
                    "auth.token_url",
                    "a path on the partner's base URL (`/oauth/token`) or an http(s) URL",
                ));
            }
        }
        if !(60_000..=86_400_000).contains(&self.issued_lifetime_ms) {
            out.push(SpecProblem::error(
                "auth.issued_lifetime_ms",
                "must be within 60000..=86400000",
            ));
        }
        if self.refresh_before_ms > 3_600_000 {
            out.push(SpecProblem::error(
                "auth.refresh_before_ms",
                "must be at most 3600000",
            ));
        }
        out
    }
}

/// A token the hub holds.
struct Token {
    value: String,
    expires_at_ms: i64,
}

/// Signs the hub's calls with a bearer token of the partner, shared by all its routes.
pub struct OAuth2Signer {
    spec: OAuth2Spec,
    client_id: String,
    secret: Vec<u8>,
    token_url: String,
    http: reqwest::Client,
    token: Arc<Mutex<Option<Token>>>,
}

impl std::fmt::Debug for OAuth2Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Signer")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("secret", &"<redacted>")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl OAuth2Signer {
    pub fn new(spec: OAuth2Spec, credentials: OutboundCredentials) -> Result<Self, SignError> {
        let secret = credentials.secret.ok_or_else(|| {
            SignError::Credential(
                "oauth2-client-credentials needs the client secret (hmac_secret)".into(),
            )
        })?;
        let token_url = match &spec.token_url {
            Some(u) if u.starts_with('/') => format!("{}{u}", credentials.base_url),
            Some(u) => u.clone(),
            None => {
                return Err(SignError::Credential(
                    "oauth2-client-credentials needs auth.token_url to call the partner".into(),
                ))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| SignError::Credential(format!("HTTP client: {e}")))?;
        Ok(Self {
            spec,
            client_id: credentials.app_id,
            secret,
            token_url,
            http: credentials.http.unwrap_or(http),
            token: Arc::new(Mutex::new(None)),
        })
    }

    async fn fetch(&self, now_ms: i64) -> Result<Token, SignError> {
        let secret = String::from_utf8_lossy(&self.secret).into_owned();
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if let Some(scope) = &self.spec.scope {
            form.push(("scope", scope.clone()));
        }
        let mut request = self.http.post(&self.token_url);
        match self.spec.client_auth {
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: id and secret form-encoded before the Basic encoding.
                let enc = |s: &str| crate::app_key_sign::encode(s);
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(&secret)
                ));
                request = request.header("Authorization", format!("Basic {basic}"));
            }
            ClientAuth::Body => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::app_key_sign::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            // Only the kind of failure: the URL and the request are not echoed.
            .map_err(|e| SignError::Token(format!("token endpoint unreachable ({})", kind(&e))))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|_| SignError::Token("token answer unreadable".into()))?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            token_type: Option<String>,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        if status != 200 {
            #[derive(Deserialize)]
            struct Failure {
                error: String,
            }
            let code = serde_json::from_str::<Failure>(&text)
                .map(|f| f.error.chars().take(64).collect::<String>())
                .unwrap_or_else(|_| "-".into());
            return Err(SignError::Token(format!(
                "token endpoint answered HTTP {status} ({code})"
            )));
        }
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|_| SignError::Token("token answer is not an RFC 6749 token".into()))?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(SignError::Token("token_type is not Bearer".into()));
        }
        let lifetime_ms = answer.expires_in.unwrap_or(3600).clamp(1, 86_400 * 30) * 1000;
        Ok(Token {
            value: answer.access_token,
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
        })
    }
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}

#[async_trait::async_trait]
impl OutboundSigner for OAuth2Signer {
    fn scheme(&self) -> &'static str {
        "oauth2-client-credentials"
    }

    async fn sign(&self, request: &mut OutboundRequest, now_ms: i64) -> Result<(), SignError> {
        // One fetch at a time: concurrent calls wait for it and share the token.
        let mut held = self.token.lock().await;
        let fresh = held.as_ref().is_some_and(|t| {
            now_ms.saturating_add(i64::try_from(self.spec.refresh_before_ms).unwrap_or(0))
                < t.expires_at_ms
        });
        if !fresh {
            *held = Some(self.fetch(now_ms).await?);
        }
        let token = held.as_ref().expect("set above");
        request.set_header("Authorization", format!("Bearer {}", token.value));
        Ok(())
    }

    async fn unauthorized(&self) -> bool {
        // The partner no longer takes the token (revoked, rotated): drop it; the retry fetches.
        self.token.lock().await.take();
        true
    }
}

/// Prefix of the tokens the hub issues.
const PREFIX: &str = "hub1";

/// A token for `client_id`, valid until `expires_at_ms`, signed with the client's secret.
pub fn issue(client_id: &str, secret: &[u8], expires_at_ms: i64) -> String {
    let payload = serde_json::json!({
        "sub": client_id,
        "exp": expires_at_ms,
        "jti": hex::encode(hub_security::sm::random::<12>()),
    });
    token_of(&payload.to_string(), secret)
}

/// The token of a payload's JSON text: `hub1.<base64url(payload)>.<hex HMAC-SM3>`.
pub fn token_of(payload: &str, secret: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
    let signed = format!("{PREFIX}.{b64}");
    let mac = hex::encode(hub_security::sm::hmac_sm3(secret, signed.as_bytes()));
    format!("{signed}.{mac}")
}

/// The client id and expiry a token claims (not yet verified).
fn read(token: &str) -> Option<(String, i64, String, String)> {
    let mut parts = token.split('.');
    let (prefix, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || token.len() > 1024 {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Payload {
        sub: String,
        exp: i64,
    }
    let p: Payload = serde_json::from_slice(&json).ok()?;
    Some((p.sub, p.exp, format!("{prefix}.{payload}"), mac.to_string()))
}

/// Verifies the bearer tokens the hub issued.
pub struct OAuth2Verifier;

fn bearer(request: &InboundRequest<'_>) -> Option<String> {
    let auth = request.header("authorization")?;
    let (kind, token) = auth.split_once(' ')?;
    kind.eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

impl InboundVerifier for OAuth2Verifier {
    fn scheme(&self) -> &'static str {
        "oauth2-client-credentials"
    }

    /// A bearer token carries no request timestamp and no nonce: it is valid, for any number
    /// of requests, until it expires (`X-Partner-Message-Id` makes retries idempotent).
    fn claim(&self, request: &InboundRequest<'_>) -> Result<Claim, Refusal> {
        let token = bearer(request).ok_or(Refusal::Missing)?;
        let (sub, _, _, _) = read(&token).ok_or(Refusal::Signature)?;
        Ok(Claim {
            app_id: sub,
            timestamp_ms: None,
            nonce: None,
        })
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        _claim: &Claim,
        credentials: &Credentials,
    ) -> Result<(), Refusal> {
        let secret = credentials.secret.as_ref().ok_or(Refusal::Signature)?;
        let token = bearer(request).ok_or(Refusal::Missing)?;
        let (_, exp, signed, mac) = read(&token).ok_or(Refusal::Signature)?;
        let expected = hex::encode(hub_security::sm::hmac_sm3(secret, signed.as_bytes()));
        if !equal(expected.as_bytes(), mac.to_ascii_lowercase().as_bytes()) {
            return Err(Refusal::Signature);
        }
        if exp <= chrono::Utc::now().timestamp_millis() {
            return Err(Refusal::TokenExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire_and_only_with_their_secret() {
        let now = chrono::Utc::now().timestamp_millis();
        let token = issue("carrier-1", b"client-secret-0123", now + 60_000);
        let headers = vec![("authorization".to_string(), format!("Bearer {token}"))];
        let r = InboundRequest {
            method: "POST",
            path: "/v1/p/m",
            query: "",
            headers: &headers,
            body: b"{}",
        };
        let claim = OAuth2Verifier.claim(&r).unwrap();
        assert_eq!(claim.app_id, "carrier-1");
        assert_eq!(claim.nonce, None);
        let good = Credentials {
            secret: Some(b"client-secret-0123".to_vec()),
            ..Default::default()
        };
        assert_eq!(OAuth2Verifier.verify(&r, &claim, &good), Ok(()));
        let other = Credentials {
            secret: Some(b"rotated-secret-456".to_vec()),
            ..Default::default()
        };
        assert_eq!(
            OAuth2Verifier.verify(&r, &claim, &other),
            Err(Refusal::Signature)
        );
        let old = issue("carrier-1", b"client-secret-0123", now - 1);
        let headers = vec![("authorization".to_string(), format!("Bearer {old}"))];
        let r2 = InboundRequest {
            headers: &headers,
            ..r
        };
        assert_eq!(
            OAuth2Verifier.verify(&r2, &claim, &good),
            Err(Refusal::TokenExpired)
        );
        // Another client's name put into the payload breaks the mac.
        let (_, _, signed, mac) = read(&token).unwrap();
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{{\"sub\":\"carrier-2\",\"exp\":{}}}",
            now + 60_000
        ));
        let forged = format!("hub1.{forged_payload}.{mac}");
        assert_ne!(signed, format!("hub1.{forged_payload}"));
        let headers = vec![("authorization".to_string(), format!("Bearer {forged}"))];
        let r3 = InboundRequest {
            headers: &headers,
            ..r
        };
        let claim3 = OAuth2Verifier.claim(&r3).unwrap();
        assert_eq!(
            OAuth2Verifier.verify(&r3, &claim3, &good),
            Err(Refusal::Signature)
        );
    }
}
