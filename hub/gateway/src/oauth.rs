//! `POST /v1/oauth2/token`: the hub's token endpoint for partners whose adapter declares
//! `oauth2-client-credentials` (RFC 6749 §4.4). The client authenticates with its app id and
//! secret (`[[gateway.apps]]`), by HTTP Basic (§2.3.1) or in the form body; the answer is a
//! bearer token the gateway then accepts on that partner's routes (`hub_protocols::oauth2`).
//! Errors have the RFC's shape (§5.2): `invalid_request`, `invalid_client` (unknown client and
//! wrong secret alike), `unsupported_grant_type`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use hub_protocols::app_key_sign::decode_pairs;
use hub_protocols::AuthSpec;
use serde_json::json;

use crate::Gateway;

/// Largest token request read.
const MAX_BODY: usize = 8 * 1024;

fn error(status: StatusCode, code: &'static str, description: &'static str) -> Response {
    let mut r = (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"hub\""),
        );
    }
    r
}

/// Constant-time equality.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn token(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "请求体过大或无法读取 / the body is too large or unreadable",
        );
    };
    let form = decode_pairs(&String::from_utf8_lossy(&body));
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if field("grant_type").as_deref() != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "仅支持 client_credentials / only grant_type=client_credentials is supported",
        );
    }
    let basic = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| decode_pairs(&format!("v={x}")).pop().map(|(_, v)| v);
            Some((dec(id)?, dec(secret)?))
        });
    let Some((client_id, secret)) =
        basic.or_else(|| Some((field("client_id")?, field("client_secret")?)))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "缺少客户端凭据 / client credentials are missing",
        );
    };
    // Unknown clients, clients of partners without this scheme and wrong secrets answer alike.
    let found = gw.apps.get(&client_id).and_then(|app| {
        let lifetime = match gw.auth_specs.get(&app.partner) {
            Some(AuthSpec::OAuth2(spec)) => spec.issued_lifetime_ms,
            _ => return None,
        };
        let stored = app.scheme_credentials.secret.as_ref()?;
        Some((app, stored, lifetime))
    });
    let ok = match &found {
        Some((_, stored, _)) => same(stored, secret.as_bytes()),
        None => {
            let _ = same(b"decoy-secret-that-never-matches", secret.as_bytes());
            false
        }
    };
    let Some((app, stored, lifetime)) = found.filter(|_| ok) else {
        crate::metrics::auth_refused("oauth2.invalid_client");
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "客户端认证失败 / client authentication failed",
        );
    };
    if app.limiter.check_key(&()).is_err() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "请求过于频繁 / too many token requests",
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let lifetime = i64::try_from(lifetime).unwrap_or(3_600_000);
    let token = hub_protocols::oauth2::issue(&client_id, stored, now.saturating_add(lifetime));
    let mut r = (
        StatusCode::OK,
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime / 1000,
        })),
    )
        .into_response();
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("pragma", HeaderValue::from_static("no-cache"));
    r
}
