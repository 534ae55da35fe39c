//! Operator accounts, sessions, roles, CSRF and login limits.
//!
//! A session is a random 32-byte token, hex in the `hub_console` cookie (`HttpOnly;
//! SameSite=Strict; Path=/console`, `Secure` with `[console] secure_cookie`); the state store
//! keeps only its SM3 digest. The CSRF token is `SM3("csrf\n" ‖ token)`: the page gets it from
//! the login answer or `GET /console/api/session` and sends it in `X-CSRF-Token` with every
//! mutating request; a request from another site carries the cookie (at most) but cannot read
//! the token.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use crate::api::ApiError;
use crate::Console;

/// The session cookie's name.
pub const COOKIE: &str = "hub_console";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads every page.
    Viewer,
    /// Also replays and discards dead letters.
    Operator,
    /// Also manages operators (through `hub operator …`).
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The argon2id PHC string of `password` (default parameters of the `argon2` crate: 19 MiB,
/// 2 passes, 1 lane, as OWASP recommends), with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// A hash nobody's password matches, verified against when the name is unknown or disabled,
/// so a failed login costs the same whatever the reason.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        hash_password(&hex::encode(random)).expect("argon2 hashes")
    })
}

/// The SM3 digest (hex) under which a session token is stored.
pub fn token_digest(token: &str) -> String {
    hub_security::sm::sm3_hex(token.as_bytes())
}

/// The CSRF token of a session token.
pub fn csrf_of(token: &str) -> String {
    hub_security::sm::sm3_hex(format!("csrf\n{token}").as_bytes())
}

/// Equal in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Login attempts allowed per client address, on this replica: a cheap flood guard in front
/// of the password hashing. It never depends on the name tried, so nobody can use it to keep
/// an operator out; the throttle that follows an operator's name is per (source, name) and
/// shared by every replica ([`failure_backoff_ms`], in the state store).
pub(crate) struct LoginLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
}

/// Login attempts per client address per minute.
pub const ATTEMPTS_PER_ADDRESS_PER_MINUTE: u32 = 20;
/// Failed logins of one source for one name that cost no wait.
pub const FREE_FAILURES: i64 = 3;
/// The longest wait after failed logins (15 minutes).
pub const MAX_BACKOFF_MS: i64 = 15 * 60_000;
/// Failed logins are forgotten an hour after the last one.
pub const FAILURE_MEMORY_MS: i64 = 3_600_000;

/// How long a source waits after its `failures`-th failed login for one name: nothing for
/// the first [`FREE_FAILURES`], then 2 s, 4 s, 8 s, … up to [`MAX_BACKOFF_MS`].
pub fn failure_backoff_ms(failures: i64) -> i64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(20);
    (1_000_i64 << doublings).min(MAX_BACKOFF_MS)
}

impl LoginLimits {
    pub(crate) fn new() -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).expect("non-zero"));
        Self {
            by_address: RateLimiter::keyed(quota(ATTEMPTS_PER_ADDRESS_PER_MINUTE)),
        }
    }

    /// Charges one attempt; `Err(seconds to wait)` when the address's limit is used up.
    fn charge(&self, address: Option<IpAddr>) -> Result<(), u64> {
        let wait = |n: governor::NotUntil<governor::clock::QuantaInstant>| {
            let clock = governor::clock::DefaultClock::default();
            n.wait_time_from(governor::clock::Clock::now(&clock))
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64
        };
        match address {
            Some(ip) => self.by_address.check_key(&ip).map_err(wait),
            None => Ok(()),
        }
    }
}

/// A signed-in operator, extracted from the session cookie of a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: String,
    pub role: Role,
    pub token_digest: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

impl Session {
    /// The actor written to the audit chain and the message trace.
    pub fn actor(&self) -> String {
        format!("console:{}", self.operator)
    }

    /// `Err(CONSOLE_FORBIDDEN)` unless the operator's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(role))
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl FromRequestParts<Arc<Console>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie_token(&parts.headers).ok_or_else(ApiError::auth_required)?;
        let digest = token_digest(&token);
        let state = &console.deps.state;
        let found = state
            .console_session(&digest)
            .await
            .map_err(ApiError::state)?
            .ok_or_else(ApiError::auth_required)?;
        let now = chrono::Utc::now().timestamp_millis();
        let idle_ms = i64::from(console.section.session_idle_minutes) * 60_000;
        let expired = now >= found.expires_at_ms || now - found.last_seen_at_ms >= idle_ms;
        let role = Role::parse(&found.role);
        if expired || found.operator_disabled || role.is_none() {
            state
                .delete_console_session(&digest)
                .await
                .map_err(ApiError::state)?;
            return Err(ApiError::session_expired());
        }
        // Last use written at most every 15 s: enough for an idle limit counted in minutes.
        if now - found.last_seen_at_ms >= 15_000 {
            state
                .touch_console_session(&digest)
                .await
                .map_err(ApiError::state)?;
        }
        let session = Session {
            operator: found.operator,
            role: role.expect("checked"),
            csrf: csrf_of(&token),
            token_digest: digest,
            expires_at_ms: found.expires_at_ms,
        };
        // Every request that changes something carries the session's CSRF token.
        let safe = matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS");
        if !safe {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(given, &session.csrf) {
                return Err(ApiError::csrf());
            }
        }
        Ok(session)
    }
}

/// The client's address, when the listener records it.
pub fn client_address(parts_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    parts_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// What a login attempt came to.
pub enum LoginOutcome {
    /// `(session, cookie value for Set-Cookie)`.
    Ok(Session, String),
    Refused,
    Limited(u64),
}

/// A name as it may appear in the audit log: printable, at most 64 characters.
fn shown_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Checks a login; on success starts a session. Audited either way.
pub async fn login(
    console: &Console,
    name: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<LoginOutcome, ApiError> {
    let shown = shown_name(name);
    let ip = address.map(|a| a.to_string()).unwrap_or_default();
    let source = if ip.is_empty() {
        "unknown"
    } else {
        ip.as_str()
    };
    let state = &console.deps.state;
    let now = chrono::Utc::now().timestamp_millis();
    let blocked = match console.limits.charge(address) {
        Err(wait) => Some((wait, "address")),
        Ok(()) => state
            .login_blocked_until(source, &shown)
            .await
            .map_err(ApiError::state)?
            .map(|until| {
                (
                    u64::try_from((until - now + 999) / 1_000)
                        .unwrap_or(1)
                        .max(1),
                    "backoff",
                )
            }),
    };
    if let Some((wait, scope)) = blocked {
        state
            .append_audit(
                &format!("console-login:{ip}"),
                "console.login_limited",
                &shown,
                &json!({ "address": ip, "scope": scope, "retry_after_s": wait }),
            )
            .await
            .map_err(ApiError::state)?;
        return Ok(LoginOutcome::Limited(wait));
    }
    let account = state.operator(name).await.map_err(ApiError::state)?;
    // The same work whatever fails: an unknown or disabled name is checked against a decoy.
    let (hash, usable) = match &account {
        Some(a) if !a.disabled && Role::parse(&a.role).is_some() => (a.password_hash.clone(), true),
        _ => (decoy_hash().to_string(), false),
    };
    let given = password.to_string();
    let matched = tokio::task::spawn_blocking(move || verify_password(&given, &hash))
        .await
        .unwrap_or(false);
    let Some(account) = account.clone().filter(|_| matched && usable) else {
        let reason = match &account {
            None => "unknown_operator",
            Some(a) if a.disabled => "disabled",
            Some(_) => "wrong_password",
        };
        let failures = state
            .record_login_failure(source, &shown, FAILURE_MEMORY_MS, failure_backoff_ms)
            .await
            .map_err(ApiError::state)?;
        state
            .append_audit(
                &format!("console-login:{ip}"),
                "console.login_failed",
                &shown,
                &json!({ "address": ip, "reason": reason, "failures": failures }),
            )
            .await
            .map_err(ApiError::state)?;
        return Ok(LoginOutcome::Refused);
    };
    state
        .clear_login_failures(source, &shown)
        .await
        .map_err(ApiError::state)?;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the operating system's random source works");
    let token = hex::encode(random);
    let digest = token_digest(&token);
    let max_ms = i64::from(console.section.session_max_hours) * 3_600_000;
    let expires_at_ms = chrono::Utc::now().timestamp_millis() + max_ms;
    state
        .create_console_session(&digest, &account.name, expires_at_ms)
        .await
        .map_err(ApiError::state)?;
    state
        .append_audit(
            &format!("console:{}", account.name),
            "console.login",
            &account.name,
            &json!({ "address": ip, "role": account.role }),
        )
        .await
        .map_err(ApiError::state)?;
    let cookie = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{}",
        max_ms / 1_000,
        if console.section.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    );
    Ok(LoginOutcome::Ok(
        Session {
            operator: account.name,
            role: Role::parse(&account.role).expect("checked"),
            csrf: csrf_of(&token),
            token_digest: digest,
            expires_at_ms,
        },
        cookie,
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// 429 with Retry-After.
pub fn limited(wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "CONSOLE_RATE_LIMITED",
        &format!("登录尝试过于频繁，请 {wait} 秒后再试"),
        &format!("too many login attempts; try again in {wait} s"),
    )
    .retry_after(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("Correct horse battery staple", &h));
        assert!(!verify_password("x", "not a phc string"));
        // A fresh salt each time.
        assert_ne!(h, hash_password("correct horse battery staple").unwrap());
    }

    #[test]
    fn roles_are_ordered_and_csrf_is_bound_to_the_token() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(Role::parse("root"), None);
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert_ne!(csrf_of("a"), token_digest("a"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn the_cookie_token_is_read_only_when_well_formed() {
        let mut h = HeaderMap::new();
        let t = "ab".repeat(32);
        h.insert(
            header::COOKIE,
            format!("x=1; {COOKIE}={t}; y=2").parse().unwrap(),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some(t.as_str()));
        h.insert(header::COOKIE, format!("{COOKIE}=zz").parse().unwrap());
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn login_attempts_are_limited_per_address_never_per_name_alone() {
        let limits = LoginLimits::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ATTEMPTS_PER_ADDRESS_PER_MINUTE {
            assert!(limits.charge(Some(a)).is_ok());
        }
        assert!(limits.charge(Some(a)).unwrap_err() >= 1);
        assert!(limits.charge(Some("10.0.0.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn failed_logins_back_off_exponentially_up_to_a_cap() {
        assert_eq!(failure_backoff_ms(1), 0);
        assert_eq!(failure_backoff_ms(FREE_FAILURES), 0);
        assert_eq!(failure_backoff_ms(FREE_FAILURES + 1), 2_000);
        assert_eq!(failure_backoff_ms(FREE_FAILURES + 2), 4_000);
        assert_eq!(failure_backoff_ms(FREE_FAILURES + 9), 512_000);
        assert_eq!(failure_backoff_ms(FREE_FAILURES + 10), MAX_BACKOFF_MS);
        assert_eq!(failure_backoff_ms(i64::MAX), MAX_BACKOFF_MS);
    }
}
