//! What a request must pass before its body is read (`docs/security.md`, "Unauthenticated
//! load"):
//!
//! 1. a declared `Content-Length` over `max_body_bytes` is refused at once (413);
//! 2. for partners on the hub's own scheme, the header part of authentication, which costs
//!    nothing: the five signature headers are present, the method is supported, the timestamp is
//!    inside the window and the nonce well-formed. The answers are the ones the full check
//!    ([`crate::auth::authenticate`]) gives for the same faults. Whether the app id is known is
//!    left to the full check, so an unknown app is answered like a bad signature; unknown app
//!    ids share one upload bound ([`UNKNOWN_APP_SLOTS`]);
//! 3. an upload slot of the request's source address and one of its app: bodies read at once
//!    are bounded per source and per app, so one address, or one claimed app id, cannot hold
//!    every body read of the hub.
//!
//! Only then is the body read; the global concurrency permit is taken after it, for the
//! expensive part (signature, decryption, mapping, produce). A caller without credentials
//! therefore never holds a permit, and one with a known app id but no secret holds at most its
//! source's and that app's upload slots, never another app's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use hub_security::signing::{header, nonce_is_valid, SignatureMethod};

use crate::errors::{ApiError, ErrorCode};
use crate::Gateway;

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The body length the request declares, if it declares one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    text(headers, "content-length").and_then(|v| v.trim().parse().ok())
}

/// Upload slots of requests that name an app id the hub does not know: they share one app
/// bound, so invented app ids cannot multiply it, and they are not refused before the body is
/// read, so an unknown app id is answered exactly like a bad signature (no enumeration oracle).
pub(crate) const UNKNOWN_APP_SLOTS: &str = "?unknown-app";

/// The header part of authentication, for partners on the hub's own scheme (`hub-v1`); the key
/// of the request's app upload bound. A partner whose adapter declares another scheme carries its
/// credentials in its own places (parameters, possibly inside the body): its bodies are bounded
/// by its source and by the partner as a whole, and its whole check runs once the body is read.
pub(crate) fn precheck(
    gw: &Gateway,
    request_id: &str,
    partner: &str,
    headers: &HeaderMap,
    now_ms: i64,
) -> Result<String, ApiError> {
    if gw.schemes.contains_key(partner) {
        return Ok(format!("?partner:{partner}"));
    }
    let fail = |code| ApiError::new(code, request_id);
    let (Some(app_id), Some(ts), Some(nonce), Some(method), Some(_)) = (
        text(headers, header::APP_ID),
        text(headers, header::TIMESTAMP),
        text(headers, header::NONCE),
        text(headers, header::SIGNATURE_METHOD),
        text(headers, header::SIGNATURE),
    ) else {
        return Err(fail(ErrorCode::AuthHeadersMissing));
    };
    if SignatureMethod::parse(method).is_none() {
        return Err(fail(ErrorCode::AuthMethodUnsupported));
    }
    let window = i64::try_from(gw.config.timestamp_window_ms).unwrap_or(i64::MAX);
    let inside = ts
        .parse::<i64>()
        .ok()
        .is_some_and(|t| crate::auth::within_window(now_ms, t, window));
    if !inside {
        return Err(fail(ErrorCode::AuthTimestampOutOfWindow)
            .with_detail(serde_json::json!({ "hub_time_ms": now_ms, "window_ms": window })));
    }
    if !nonce_is_valid(nonce) {
        return Err(fail(ErrorCode::AuthNonceInvalid));
    }
    // An unknown app id, or an app without a credential for this method, is refused by the
    // full check after the body, with the same answer as a bad signature.
    Ok(match gw.apps.get(app_id) {
        Some(app) => app.app_id.clone(),
        None => UNKNOWN_APP_SLOTS.to_string(),
    })
}

/// Which bound an upload hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadScope {
    Source,
    App,
}

impl UploadScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UploadScope::Source => "source_uploads",
            UploadScope::App => "app_uploads",
        }
    }
}

/// Bodies being read, by source address and by app id.
#[derive(Default)]
pub(crate) struct Uploads {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    sources: HashMap<Option<IpAddr>, usize>,
    apps: HashMap<String, usize>,
}

/// One body read in progress; gives its slots back when dropped.
pub(crate) struct UploadSlot {
    uploads: Arc<Uploads>,
    source: Option<IpAddr>,
    app: String,
}

impl Uploads {
    /// Takes a slot of `source` and one of `app`, or says which is full.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        source: Option<IpAddr>,
        app: &str,
        per_source: usize,
        per_app: usize,
    ) -> Result<UploadSlot, UploadScope> {
        let mut c = self.counts.lock().expect("not poisoned");
        let s = c.sources.get(&source).copied().unwrap_or(0);
        if s >= per_source {
            return Err(UploadScope::Source);
        }
        let a = c.apps.get(app).copied().unwrap_or(0);
        if a >= per_app {
            return Err(UploadScope::App);
        }
        c.sources.insert(source, s + 1);
        c.apps.insert(app.to_string(), a + 1);
        Ok(UploadSlot {
            uploads: Arc::clone(self),
            source,
            app: app.to_string(),
        })
    }

    #[cfg(test)]
    fn in_use(&self) -> (usize, usize) {
        let c = self.counts.lock().expect("not poisoned");
        (c.sources.len(), c.apps.len())
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut c = self.uploads.counts.lock().expect("not poisoned");
        if let Some(n) = c.sources.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.sources.remove(&self.source);
            }
        }
        if let Some(n) = c.apps.get_mut(&self.app) {
            *n -= 1;
            if *n == 0 {
                c.apps.remove(&self.app);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_source_and_per_app_and_given_back() {
        let uploads = Arc::new(Uploads::default());
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        let s1 = uploads.acquire(a, "x", 2, 3).unwrap();
        let _s2 = uploads.acquire(a, "y", 2, 3).unwrap();
        assert_eq!(
            uploads.acquire(a, "z", 2, 3).err(),
            Some(UploadScope::Source)
        );
        let _s3 = uploads.acquire(b, "x", 2, 3).unwrap();
        let _s4 = uploads.acquire(b, "x", 2, 3).unwrap();
        assert_eq!(
            uploads.acquire(None, "x", 2, 3).err(),
            Some(UploadScope::App)
        );
        drop(s1);
        assert!(uploads.acquire(None, "x", 2, 3).is_ok(), "slot given back");
        drop(_s2);
        drop(_s3);
        drop(_s4);
        assert_eq!(uploads.in_use(), (0, 0), "no entries left behind");
    }
}
