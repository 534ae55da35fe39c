//! Authentication refusals in the audit chain, aggregated per source.
//!
//! Every refusal used to be one serialised write to the audit chain, with the URL's
//! `{partner}/{mapping}` as its subject: anyone could flood the chain (and the state store's
//! pool) without credentials. Now, per source address and action (`auth.signature_invalid`,
//! …) and per interval (`gateway.auth_audit_interval_ms`), the first refusal is written at once
//! and the others are counted; when the interval ends one record carries their count, the
//! first and last time, and up to [`MAX_NAMES`] of the app ids and routes they named. Subjects
//! are bounded: a configured route by its name, anything else as [`UNKNOWN_ROUTE`]; app ids
//! are cut to 64 printable characters. At most [`MAX_SOURCES`] sources are tracked per
//! interval; the rest share one bucket (`source = "*"`), so writes stay bounded whatever the
//! number of addresses an attacker uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::Gateway;

/// The subject of a refusal on a path that names no configured route.
pub const UNKNOWN_ROUTE: &str = "unknown-route";
/// Sources tracked separately per interval.
pub const MAX_SOURCES: usize = 1_000;
/// App ids and routes named in one aggregate record at most.
pub const MAX_NAMES: usize = 5;

/// What one refusal is about.
pub struct Refusal<'a> {
    pub source: String,
    pub action: &'static str,
    /// A configured route, or [`UNKNOWN_ROUTE`].
    pub subject: &'a str,
    pub app_id: String,
    pub request_id: &'a str,
    pub at_ms: i64,
}

/// A record to append: action, subject, detail.
pub type Record = (&'static str, String, Value);

struct Bucket {
    subject: String,
    /// Refusals counted since the record written at once.
    suppressed: u64,
    first_at_ms: i64,
    last_at_ms: i64,
    app_ids: BTreeSet<String>,
    routes: BTreeSet<String>,
}

/// Refusals of the current interval, by source and action.
#[derive(Default)]
pub struct RefusalAudit {
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
}

/// An app id as the headers claim it: at most 64 printable ASCII characters.
pub fn bounded_app_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

impl RefusalAudit {
    /// Counts a refusal; returns the record to write now when it is the first of its source
    /// and action in this interval.
    pub fn note(&self, r: Refusal<'_>) -> Option<Record> {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let mut key = (r.source.clone(), r.action);
        if !buckets.contains_key(&key) && buckets.len() >= MAX_SOURCES {
            key.0 = "*".into();
        }
        if let Some(b) = buckets.get_mut(&key) {
            b.suppressed += 1;
            b.last_at_ms = r.at_ms;
            if b.app_ids.len() < MAX_NAMES {
                b.app_ids.insert(r.app_id);
            }
            if b.routes.len() < MAX_NAMES {
                b.routes.insert(r.subject.to_string());
            }
            return None;
        }
        buckets.insert(
            key.clone(),
            Bucket {
                subject: r.subject.to_string(),
                suppressed: 0,
                first_at_ms: r.at_ms,
                last_at_ms: r.at_ms,
                app_ids: BTreeSet::new(),
                routes: BTreeSet::new(),
            },
        );
        Some((
            r.action,
            r.subject.to_string(),
            json!({ "source": key.0, "app_id": r.app_id, "request_id": r.request_id }),
        ))
    }

    /// Ends the interval: one record per source and action with refusals counted since the
    /// first, and a fresh start for all.
    pub fn drain(&self, window_ms: u64) -> Vec<Record> {
        let buckets = std::mem::take(&mut *self.buckets.lock().expect("not poisoned"));
        let mut out: Vec<Record> = buckets
            .into_iter()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|((source, action), b)| {
                (
                    action,
                    b.subject,
                    json!({
                        "source": source,
                        "count": b.suppressed,
                        "first_at_ms": b.first_at_ms,
                        "last_at_ms": b.last_at_ms,
                        "window_ms": window_ms,
                        "app_ids": b.app_ids,
                        "routes": b.routes,
                        "aggregated": true,
                    }),
                )
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }
}

/// Writes each interval's aggregate records until `stop`, then the last ones.
pub async fn run(gw: Arc<Gateway>, stop: CancellationToken) {
    let every = Duration::from_millis(gw.config.auth_audit_interval_ms);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        for (action, subject, detail) in gw.refusals.drain(gw.config.auth_audit_interval_ms) {
            if let Err(e) = gw
                .state
                .append_audit(&gw.actor, action, &subject, &detail)
                .await
            {
                warn!(error = %e, "aggregated audit record not written");
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(source: &str, action: &'static str, subject: &'a str, app: &str) -> Refusal<'a> {
        Refusal {
            source: source.into(),
            action,
            subject,
            app_id: app.into(),
            request_id: "r",
            at_ms: 1,
        }
    }

    #[test]
    fn the_first_refusal_is_written_at_once_and_the_rest_counted() {
        let audit = RefusalAudit::default();
        let first = audit
            .note(refusal("10.0.0.1", "auth.signature_invalid", "p/m", "a"))
            .expect("the first is written at once");
        assert_eq!(first.0, "auth.signature_invalid");
        assert_eq!(first.2["source"], "10.0.0.1");
        for i in 0..999 {
            assert!(audit
                .note(refusal(
                    "10.0.0.1",
                    "auth.signature_invalid",
                    "p/m",
                    &format!("app{i}")
                ))
                .is_none());
        }
        // Another action, another source: their own first records.
        assert!(audit
            .note(refusal("10.0.0.1", "auth.app_unknown", UNKNOWN_ROUTE, "x"))
            .is_some());
        assert!(audit
            .note(refusal("10.0.0.2", "auth.signature_invalid", "p/m", "a"))
            .is_some());
        let records = audit.drain(60_000);
        assert_eq!(records.len(), 1, "one aggregate for the refusals counted");
        let (action, subject, detail) = &records[0];
        assert_eq!(
            (*action, subject.as_str()),
            ("auth.signature_invalid", "p/m")
        );
        assert_eq!(detail["count"], 999);
        assert_eq!(detail["app_ids"].as_array().unwrap().len(), MAX_NAMES);
        // A fresh interval: the next one is written at once again.
        assert!(audit
            .note(refusal("10.0.0.1", "auth.signature_invalid", "p/m", "a"))
            .is_some());
    }

    #[test]
    fn sources_beyond_the_cap_share_one_bucket() {
        let audit = RefusalAudit::default();
        let mut written = 0;
        for i in 0..(MAX_SOURCES + 500) {
            let source = format!("10.1.{}.{}", i / 256, i % 256);
            if audit
                .note(refusal(&source, "auth.app_unknown", UNKNOWN_ROUTE, "x"))
                .is_some()
            {
                written += 1;
            }
        }
        assert_eq!(written, MAX_SOURCES + 1, "the rest share the `*` bucket");
        let records = audit.drain(60_000);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].2["source"], "*");
        assert_eq!(records[0].2["count"], 499);
    }

    #[test]
    fn app_ids_are_bounded() {
        let long = "x".repeat(10_000) + "\n\u{1b}[31m";
        let b = bounded_app_id(&long);
        assert_eq!(b.len(), 64);
        assert!(b.chars().all(|c| c.is_ascii_graphic()));
    }
}
