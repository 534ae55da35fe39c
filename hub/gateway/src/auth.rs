//! Authentication of a partner request (`docs/security.md`).

use std::time::Duration;

use axum::http::HeaderMap;
use hub_security::signing::{header, nonce_is_valid, RequestParts, SignatureMethod};

use crate::errors::{ApiError, ErrorCode};
use crate::{App, Gateway};

/// The authenticated caller.
pub struct Caller<'g> {
    pub app: &'g App,
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies the request's signature headers for `partner`'s route; claims the nonce and
/// charges the app's rate limit only once the signature verifies, so a forger can neither burn
/// a partner's nonces nor its quota.
#[allow(clippy::too_many_arguments)]
pub async fn authenticate<'g>(
    gw: &'g Gateway,
    request_id: &str,
    headers: &HeaderMap,
    http_method: &str,
    path: &str,
    raw_query: &str,
    partner: &str,
    body: &[u8],
    now_ms: i64,
    client_cert: Option<&str>,
) -> Result<Caller<'g>, ApiError> {
    let fail = |code| ApiError::new(code, request_id);
    let (Some(app_id), Some(ts), Some(nonce), Some(method), Some(signature)) = (
        text(headers, header::APP_ID),
        text(headers, header::TIMESTAMP),
        text(headers, header::NONCE),
        text(headers, header::SIGNATURE_METHOD),
        text(headers, header::SIGNATURE),
    ) else {
        return Err(fail(ErrorCode::AuthHeadersMissing));
    };
    let method =
        SignatureMethod::parse(method).ok_or_else(|| fail(ErrorCode::AuthMethodUnsupported))?;
    let app = gw
        .apps
        .get(app_id)
        .ok_or_else(|| fail(ErrorCode::AuthAppUnknown))?;
    let timestamp_ms: i64 = ts
        .parse()
        .map_err(|_| fail(ErrorCode::AuthTimestampOutOfWindow))?;
    let window = i64::try_from(gw.config.timestamp_window_ms).unwrap_or(i64::MAX);
    if (now_ms - timestamp_ms).abs() > window {
        return Err(fail(ErrorCode::AuthTimestampOutOfWindow)
            .with_detail(serde_json::json!({ "hub_time_ms": now_ms, "window_ms": window })));
    }
    if !nonce_is_valid(nonce) {
        return Err(fail(ErrorCode::AuthNonceInvalid));
    }
    let credential = app
        .credentials
        .iter()
        .find(|c| c.method() == method)
        .ok_or_else(|| fail(ErrorCode::AuthMethodNotAllowed))?;
    let parts = RequestParts {
        method,
        http_method,
        path,
        raw_query,
        app_id,
        timestamp_ms,
        nonce,
        body,
    };
    let verifying = std::time::Instant::now();
    if credential.verify(&parts.canonical(), signature).is_err() {
        return Err(fail(ErrorCode::AuthSignatureInvalid));
    }
    hub_pipeline::stage_done("verify", verifying);
    if app.partner != partner {
        return Err(fail(ErrorCode::AuthPartnerMismatch));
    }
    match (&app.client_cert, client_cert) {
        (None, _) => {}
        (Some(_), None) => return Err(fail(ErrorCode::AuthClientCertRequired)),
        (Some(None), Some(_)) => {}
        (Some(Some(pin)), Some(presented)) => {
            if pin != presented {
                return Err(fail(ErrorCode::AuthClientCertMismatch));
            }
        }
    }
    // The nonce is remembered for twice the window: a timestamp may be up to one window in the
    // past or the future, so a replay is caught for as long as its timestamp is acceptable.
    let keep = Duration::from_millis(gw.config.timestamp_window_ms.saturating_mul(2));
    let claiming = std::time::Instant::now();
    let claimed = gw.state.claim_nonce(app_id, nonce, keep).await;
    hub_pipeline::stage_done("nonce_claim", claiming);
    match claimed {
        Ok(true) => {}
        Ok(false) => {
            crate::metrics::replay_refused(partner);
            return Err(fail(ErrorCode::AuthReplay));
        }
        Err(_) => return Err(fail(ErrorCode::StateUnavailable).retry_after(1)),
    }
    if let Err(not_until) = app.limiter.check_key(&()) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(fail(ErrorCode::RateLimited)
            .with_detail(serde_json::json!({ "scope": "app" }))
            .retry_after(wait.as_secs_f64().ceil() as u64));
    }
    Ok(Caller { app })
}
