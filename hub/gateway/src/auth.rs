//! Authentication of a partner request (`docs/security.md`).

use std::time::Duration;

use axum::http::HeaderMap;
use hub_security::signing::{
    header, nonce_is_valid, received_signed_headers, RequestParts, SignatureMethod,
    SignedHeadersError, VerifyingCredential,
};

use hub_protocols::{InboundRequest, InboundVerifier, Refusal};

use crate::errors::{ApiError, ErrorCode};
use crate::{App, Gateway};

/// The authenticated caller.
pub struct Caller<'g> {
    pub app: &'g App,
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a header, joined by `,` (a header that is not text counts as absent).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Is `timestamp_ms` within `window_ms` of `now_ms`, either way? Never overflows: a
/// difference that does not fit an `i64` is outside any window.
pub fn within_window(now_ms: i64, timestamp_ms: i64, window_ms: i64) -> bool {
    now_ms
        .checked_sub(timestamp_ms)
        .and_then(i64::checked_abs)
        .is_some_and(|skew| skew <= window_ms)
}

/// The answer to every failed signature check, whatever its reason.
fn refused(fail: &dyn Fn(ErrorCode) -> ApiError, reason: &'static str) -> ApiError {
    crate::metrics::auth_refused(reason);
    fail(ErrorCode::AuthSignatureInvalid).because(reason)
}

/// A credential that verifies nothing, checked when there is no real one so that an unknown
/// app id costs the same work as a known one.
fn decoy(method: SignatureMethod) -> VerifyingCredential {
    match method {
        SignatureMethod::HmacSm3 => VerifyingCredential::HmacSm3 {
            secret: b"decoy-secret-that-never-verifies".to_vec(),
        },
        SignatureMethod::Sm2Sm3 => VerifyingCredential::Sm2 {
            public_key: DECOY_SM2_PUBLIC_KEY.to_vec(),
        },
    }
}

/// The public key of the GM/T 0003.5 example (a valid point; nobody signs as it here).
const DECOY_SM2_PUBLIC_KEY: [u8; 65] = [
    0x04, 0x09, 0xf9, 0xdf, 0x31, 0x1e, 0x54, 0x21, 0xa1, 0x50, 0xdd, 0x7d, 0x16, 0x1e, 0x4b, 0xc5,
    0xc6, 0x72, 0x17, 0x9f, 0xad, 0x18, 0x33, 0xfc, 0x07, 0x6b, 0xb0, 0x8f, 0xf3, 0x56, 0xf3, 0x50,
    0x20, 0xcc, 0xea, 0x49, 0x0c, 0xe2, 0x67, 0x75, 0xa5, 0x2d, 0xc6, 0xea, 0x71, 0x8c, 0xc1, 0xaa,
    0x60, 0x0a, 0xed, 0x05, 0xfb, 0xf3, 0x5e, 0x08, 0x4a, 0x66, 0x32, 0xf6, 0x07, 0x2d, 0xa9, 0xad,
    0x13,
];

/// Verifies the request for `partner`'s route with the scheme its adapter declares (hub-v1
/// when none); claims the nonce and charges the app's rate limit only once the signature
/// verifies, so a forger can neither burn a partner's nonces nor its quota.
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
    let fail = |code: ErrorCode| ApiError::new(code, request_id);
    let verifying = std::time::Instant::now();
    let (app, app_id, nonce) = match gw.schemes.get(partner) {
        Some(verifier) => by_scheme(
            gw,
            verifier.as_ref(),
            &fail,
            headers,
            http_method,
            path,
            raw_query,
            body,
            now_ms,
        )?,
        None => hub_v1(
            gw,
            &fail,
            headers,
            http_method,
            path,
            raw_query,
            body,
            now_ms,
        )?,
    };
    hub_pipeline::stage_done("verify", verifying);
    let app_id = app_id.as_str();
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
    // A scheme without a nonce (a bearer token, valid until it expires) claims none.
    if let Some(nonce) = nonce {
        let claiming = std::time::Instant::now();
        let claimed = gw.state.claim_nonce(app_id, &nonce, keep).await;
        hub_pipeline::stage_done("nonce_claim", claiming);
        match claimed {
            Ok(true) => {}
            Ok(false) => {
                crate::metrics::replay_refused(partner);
                return Err(fail(ErrorCode::AuthReplay));
            }
            Err(_) => return Err(fail(ErrorCode::StateUnavailable).retry_after(1)),
        }
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

/// The hub's own scheme (`docs/security.md`): the app, its id and the nonce.
#[allow(clippy::too_many_arguments)]
fn hub_v1<'g>(
    gw: &'g Gateway,
    fail: &dyn Fn(ErrorCode) -> ApiError,
    headers: &HeaderMap,
    http_method: &str,
    path: &str,
    raw_query: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<(&'g App, String, Option<String>), ApiError> {
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
    let timestamp_ms: i64 = ts
        .parse()
        .map_err(|_| fail(ErrorCode::AuthTimestampOutOfWindow))?;
    let window = i64::try_from(gw.config.timestamp_window_ms).unwrap_or(i64::MAX);
    if !within_window(now_ms, timestamp_ms, window) {
        return Err(fail(ErrorCode::AuthTimestampOutOfWindow)
            .with_detail(serde_json::json!({ "hub_time_ms": now_ms, "window_ms": window })));
    }
    if !nonce_is_valid(nonce) {
        return Err(fail(ErrorCode::AuthNonceInvalid));
    }
    // Headers that steer the request (idempotency, correlation, encryption) must be signed.
    let signed_headers = received_signed_headers(text(headers, header::SIGNED_HEADERS), |name| {
        joined(headers, name)
    })
    .map_err(|e| match e {
        SignedHeadersError::Unsigned(_) => fail(ErrorCode::AuthHeaderUnsigned),
        SignedHeadersError::Malformed | SignedHeadersError::Missing(_) => {
            fail(ErrorCode::AuthSignedHeadersInvalid)
        }
    })?;
    let parts = RequestParts {
        method,
        http_method,
        path,
        raw_query,
        app_id,
        timestamp_ms,
        nonce,
        body,
        signed_headers: &signed_headers,
    };
    let canonical = parts.canonical();
    // An unknown app id, an app without a credential for the method and a wrong signature
    // answer alike (same code, status and body, and a signature computed in each case), so the
    // answer does not tell which app ids exist; the audit record and the metrics keep the
    // reason.
    let found = gw
        .apps
        .get(app_id)
        .map(|app| (app, app.credentials.iter().find(|c| c.method() == method)));
    let app = match found {
        Some((app, Some(credential))) => {
            if credential.verify(&canonical, signature).is_err() {
                return Err(refused(fail, "auth.signature_invalid"));
            }
            app
        }
        Some((_, None)) => {
            let _ = decoy(method).verify(&canonical, signature);
            return Err(refused(fail, "auth.method_not_allowed"));
        }
        None => {
            let _ = decoy(method).verify(&canonical, signature);
            return Err(refused(fail, "auth.app_unknown"));
        }
    };
    Ok((app, app_id.to_string(), Some(nonce.to_string())))
}

/// The code a scheme's refusal is answered with.
fn code_of(r: Refusal) -> ErrorCode {
    match r {
        Refusal::Missing => ErrorCode::AuthHeadersMissing,
        Refusal::MethodUnsupported => ErrorCode::AuthMethodUnsupported,
        Refusal::Timestamp => ErrorCode::AuthTimestampOutOfWindow,
        Refusal::Nonce => ErrorCode::AuthNonceInvalid,
        Refusal::Signature => ErrorCode::AuthSignatureInvalid,
        Refusal::HeaderUnsigned => ErrorCode::AuthHeaderUnsigned,
        Refusal::SignedHeadersInvalid => ErrorCode::AuthSignedHeadersInvalid,
        Refusal::TokenExpired => ErrorCode::AuthTokenExpired,
    }
}

/// An adapter's own scheme (`docs/auth-schemes.md`): what the scheme claims, the window, the
/// app (an unknown one answered like a bad signature), then the scheme's verification.
#[allow(clippy::too_many_arguments)]
fn by_scheme<'g>(
    gw: &'g Gateway,
    verifier: &dyn InboundVerifier,
    fail: &dyn Fn(ErrorCode) -> ApiError,
    headers: &HeaderMap,
    http_method: &str,
    path: &str,
    raw_query: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<(&'g App, String, Option<String>), ApiError> {
    let lowered: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let request = InboundRequest {
        method: http_method,
        path,
        query: raw_query,
        headers: &lowered,
        body,
    };
    let claim = verifier.claim(&request).map_err(|r| fail(code_of(r)))?;
    if let Some(ts) = claim.timestamp_ms {
        let window = i64::try_from(gw.config.timestamp_window_ms).unwrap_or(i64::MAX);
        if !within_window(now_ms, ts, window) {
            return Err(fail(ErrorCode::AuthTimestampOutOfWindow)
                .with_detail(serde_json::json!({ "hub_time_ms": now_ms, "window_ms": window })));
        }
    }
    let Some(app) = gw.apps.get(&claim.app_id) else {
        // The same work as for a known app, then the same answer as a bad signature.
        let _ = verifier.verify(&request, &claim, &decoy_credentials());
        return Err(refused(fail, "auth.app_unknown"));
    };
    match verifier.verify(&request, &claim, &app.scheme_credentials) {
        Ok(()) => Ok((app, claim.app_id, claim.nonce)),
        Err(Refusal::Signature) => Err(refused(fail, "auth.signature_invalid")),
        Err(other) => Err(fail(code_of(other))),
    }
}

/// Credentials nobody signs with, checked for an unknown caller.
fn decoy_credentials() -> hub_protocols::Credentials {
    hub_protocols::Credentials {
        secret: Some(b"decoy-secret-that-never-verifies".to_vec()),
        sm2_public_key: Some(DECOY_SM2_PUBLIC_KEY.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::within_window;

    #[test]
    fn the_window_never_overflows() {
        let w = 300_000;
        assert!(within_window(1_000_000, 1_000_000, w));
        assert!(within_window(1_000_000, 700_000, w));
        assert!(within_window(1_000_000, 1_300_000, w));
        assert!(!within_window(1_000_000, 699_999, w));
        assert!(!within_window(1_000_000, 1_300_001, w));
        // Extremes that overflowed `(now - ts).abs()`.
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, -1] {
            assert!(!within_window(1_795_836_600_000, ts, w), "{ts}");
        }
        assert!(!within_window(i64::MIN, i64::MAX, i64::MAX));
        assert!(!within_window(i64::MAX, i64::MIN, i64::MAX));
        assert!(within_window(i64::MAX, i64::MAX, 0));
        assert!(within_window(i64::MIN, i64::MIN, 0));
        // |MIN - 0| does not fit an i64 either.
        assert!(!within_window(i64::MIN, 0, i64::MAX));
    }
}
