//! API callers: bearer tokens, configured only as their SM3 digests, each with a role and
//! whether it may see personal data in clear.
//!
//! The configuration never holds a token itself, so a leaked configuration file grants nothing.
//! A request's `Authorization: Bearer <token>` is digested with SM3 and compared with every
//! configured digest in constant time. [`require_caller`] is a tower layer (axum middleware):
//! it refuses unauthenticated requests before any handler runs and hands the [`Caller`] to the
//! handlers as a request extension.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::ApiError;

/// What a caller may do. Ordered: a handler may do everything a viewer may.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads lists and details.
    Viewer,
    /// Reads, and acts on the app's objects.
    Handler,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Handler => "handler",
        }
    }
}

/// One `[[http.tokens]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds the token (a person or a system); recorded as the actor of what it does.
    pub name: String,
    /// SM3 digest of the token, 64 hex digits (`hotline-app hash-token` computes it).
    pub sm3: String,
    pub role: Role,
    /// Whether this caller sees personal data (names, phones, addresses) in clear; otherwise
    /// it sees them masked.
    #[serde(default)]
    pub personal_data: bool,
}

/// An authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub personal_data: bool,
}

impl Caller {
    /// Refuses unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AUTH_ROLE_FORBIDDEN",
                "当前令牌的角色无权执行此操作",
                "the token's role may not do this",
            )
            .with_detail(serde_json::json!({
                "role": self.role.as_str(),
                "required": role.as_str(),
            })))
        }
    }
}

/// The configured tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
}

impl Tokens {
    /// From the configuration (digests already checked for form by the section's validation).
    pub fn new(entries: &[TokenEntry]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let digest: [u8; 32] = hex_digest(&e.sm3)
                .ok_or_else(|| format!("token `{}`: sm3 is not 64 hex digits", e.name))?;
            out.push((
                digest,
                Caller {
                    name: e.name.clone(),
                    role: e.role,
                    personal_data: e.personal_data,
                },
            ));
        }
        Ok(Self { entries: out })
    }

    /// The caller a request's `Authorization` header names, or the refusal.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "AUTH_TOKEN_MISSING",
                    "缺少访问令牌（Authorization: Bearer …）",
                    "no bearer token (Authorization: Bearer …)",
                )
            })?;
        let digest = hub_security::sm::sm3(token.as_bytes());
        // Compare with every entry, whatever matches, so timing does not tell which did.
        let mut found = None;
        for (d, caller) in &self.entries {
            if constant_time_eq(d, &digest) {
                found = Some(caller);
            }
        }
        found.cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "AUTH_TOKEN_INVALID",
                "访问令牌无效",
                "the bearer token is not valid",
            )
        })
    }
}

/// The SM3 digest a token is configured as, in lowercase hex.
pub fn token_digest(token: &str) -> String {
    hub_security::sm::sm3_hex(token.trim().as_bytes())
}

fn hex_digest(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: authenticates the request and adds its [`Caller`] as an extension.
pub async fn require_caller(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match tokens.authenticate(header) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            TokenEntry {
                name: "viewer".into(),
                sm3: token_digest("view-token"),
                role: Role::Viewer,
                personal_data: false,
            },
            TokenEntry {
                name: "handler".into(),
                sm3: token_digest("handle-token").to_uppercase(),
                role: Role::Handler,
                personal_data: true,
            },
        ])
        .unwrap()
    }

    #[test]
    fn a_token_is_known_by_its_digest_only() {
        let t = tokens();
        let c = t.authenticate(Some("Bearer handle-token")).unwrap();
        assert_eq!(c.name, "handler");
        assert!(c.personal_data);
        assert_eq!(
            t.authenticate(Some("Bearer view-token")).unwrap().role,
            Role::Viewer
        );
        assert_eq!(
            t.authenticate(Some("Bearer nope")).unwrap_err().code,
            "AUTH_TOKEN_INVALID"
        );
        assert_eq!(t.authenticate(None).unwrap_err().code, "AUTH_TOKEN_MISSING");
        assert_eq!(
            t.authenticate(Some("Basic abc")).unwrap_err().code,
            "AUTH_TOKEN_MISSING"
        );
    }

    #[test]
    fn roles_are_ordered() {
        let viewer = Caller {
            name: "v".into(),
            role: Role::Viewer,
            personal_data: false,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(
            viewer.require(Role::Handler).unwrap_err().code,
            "AUTH_ROLE_FORBIDDEN"
        );
    }
}
