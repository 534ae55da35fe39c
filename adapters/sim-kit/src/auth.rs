//! The partner side of authentication: verifying the hub's calls ([`Verifier`]) and signing the
//! partner's own pushes to the hub ([`Signer`]). Each scheme is one module behind these two
//! traits; today [`hub_v1`] (the hub's own `X-Hub-*` HMAC-SM3 headers, docs/security.md). The
//! other schemes of the partner-protocols work (app key + signature over sorted parameters,
//! OAuth2 client credentials, AK/SK, SM2 certificates) are added as sibling modules, and a
//! simulator picks one in its configuration without any other change.
//!
//! Every signing and verifying call of the kit goes through these modules: when a scheme's
//! canonical string changes in `hub_security`, only its module here follows.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

pub mod hub_v1;

/// A call of the hub, as the partner received it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub http_method: &'a str,
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Inbound<'_> {
    /// A header's text, empty when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A push of the partner to the hub, before it is signed.
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    pub http_method: &'a str,
    /// The path as sent (the hub URL's own prefix included).
    pub path: &'a str,
    pub raw_query: &'a str,
    pub body: &'a [u8],
    /// Headers sent besides the scheme's own that the signature must cover (the partner
    /// message id, which steers the hub's idempotency).
    pub headers: &'a [(&'a str, &'a str)],
}

/// Checks that a call comes from the hub. `Err` names the reason for the partner's log (never a
/// secret); the kit answers it with the partner's signature-failure code and no effect.
pub trait Verifier: Send + Sync + 'static {
    /// The scheme's name, as adapter manifests write it (`hub-v1`).
    fn scheme(&self) -> &'static str;
    /// `replay` is the partner's memory of nonces (kept across restarts); a scheme without
    /// nonces ignores it.
    fn verify(
        &self,
        call: &Inbound<'_>,
        replay: &mut ReplayBook,
        now_ms: i64,
    ) -> Result<(), &'static str>;
}

/// Signs the partner's pushes to the hub.
pub trait Signer: Send + Sync + 'static {
    fn scheme(&self) -> &'static str;
    /// The headers to add to the push, signed now.
    fn sign(&self, push: &Outbound<'_>, now_ms: i64) -> Vec<(String, String)>;
    /// The same scheme with a wrong key: for planned bad signatures, which the hub must refuse.
    fn with_wrong_key(&self) -> Box<dyn Signer>;
}

/// Nonces already used, each with the timestamp (ms) of the call that used it. Kept in the state
/// file, so a restarted partner still refuses a replay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplayBook(HashMap<String, i64>);

impl ReplayBook {
    /// Claims `nonce`; false when it was used before. Nonces older than `window_ms` are
    /// forgotten first: their calls are refused by the timestamp check anyway.
    pub fn claim(&mut self, nonce: &str, timestamp_ms: i64, now_ms: i64, window_ms: i64) -> bool {
        self.0.retain(|_, ts| (now_ms - *ts).abs() <= window_ms);
        self.0.insert(nonce.to_string(), timestamp_ms).is_none()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_claimed_once_and_forgotten_after_the_window() {
        let mut book = ReplayBook::default();
        assert!(book.claim("n1", 1_000, 1_000, 500));
        assert!(!book.claim("n1", 1_000, 1_100, 500), "replay");
        // Long after: the old entry is gone (its timestamp would be refused anyway).
        assert!(book.claim("n1", 9_000, 9_000, 500));
        assert_eq!(book.len(), 1);
    }
}
