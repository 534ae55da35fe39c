//! The fault book: planned faults a test (or an operator, through `POST /sim/faults`) sets on a
//! simulator. A rule picks calls (by endpoint and/or the object they are about), a count, and
//! what goes wrong. Rules are tried in the order they were added; the first that matches is
//! used, and a rule with a count is gone once used up.
//!
//! The kit's own rule is [`FaultRule`]; a partner that must keep the vocabulary of its control
//! API (12345 says `ticket`) implements [`Rule`] for its own type.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The call is handled normally (its effect is applied) but answered `ms` late: the hub may
    /// give up first and retry with the same idempotency key.
    Delay { ms: u64 },
    /// Held `ms`, then refused with 503 and the maintenance code; nothing applied.
    Hold { ms: u64 },
    /// Refused with this HTTP status (e.g. 500, 503); nothing applied.
    Status { status: u16 },
    /// 429 with `Retry-After: retry_after_secs` and the busy code; nothing applied.
    Throttle { retry_after_secs: u64 },
    /// The connection is dropped (RST) without an answer; nothing applied.
    Reset,
    /// HTTP 200 with this business code (a business refusal: busy, maintenance, any code of the
    /// partner); nothing applied, and a retry with the same idempotency key is handled anew.
    Code { code: String },
    /// The call is refused as if its signature were wrong (the partner's key rotated, its
    /// clock drifted); nothing applied.
    Signature,
}

/// A planned fault and the calls it applies to.
pub trait Rule: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The partner's endpoints (sign, query, …).
    type Endpoint: Copy + PartialEq + Send + Sync + 'static;
    fn matches(&self, endpoint: Self::Endpoint, object: Option<&str>) -> bool;
    fn fault(&self) -> &Fault;
    /// How many calls it still applies to; `None`: until cleared.
    fn remaining(&mut self) -> &mut Option<u32>;
}

/// The kit's rule: `{"endpoint": "sign", "object": "GD…", "count": 2, "fault": {...}}`, every
/// field but `fault` optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule<E> {
    /// `None`: every endpoint.
    #[serde(default = "none")]
    pub endpoint: Option<E>,
    /// The object a call is about (ticket, licence, notice number); `None`: every object.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    pub fault: Fault,
}

fn none<E>() -> Option<E> {
    None
}

impl<E> FaultRule<E> {
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            endpoint: None,
            object: None,
            count: None,
            fault,
        }
    }

    pub fn on(mut self, endpoint: E) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    pub fn for_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    pub fn times(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }
}

impl<E> Rule for FaultRule<E>
where
    E: Copy + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Endpoint = E;

    fn matches(&self, endpoint: E, object: Option<&str>) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.object.as_deref().is_none_or(|o| Some(o) == object)
    }

    fn fault(&self) -> &Fault {
        &self.fault
    }

    fn remaining(&mut self) -> &mut Option<u32> {
        &mut self.count
    }
}

/// The rules in force.
#[derive(Debug)]
pub struct FaultBook<R> {
    rules: Vec<R>,
}

impl<R> Default for FaultBook<R> {
    fn default() -> Self {
        FaultBook { rules: Vec::new() }
    }
}

impl<R: Rule> FaultBook<R> {
    /// Adds a rule after the ones in force (a rule for zero calls is no rule).
    pub fn add(&mut self, mut rule: R) {
        if *rule.remaining() != Some(0) {
            self.rules.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> &[R] {
        &self.rules
    }

    /// The fault for this call, if a rule matches; uses one of the rule's count.
    pub fn take(&mut self, endpoint: R::Endpoint, object: Option<&str>) -> Option<Fault> {
        let i = self
            .rules
            .iter()
            .position(|r| r.matches(endpoint, object))?;
        let fault = self.rules[i].fault().clone();
        if let Some(n) = self.rules[i].remaining().as_mut() {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(i);
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Ep {
        Sign,
        Query,
    }

    #[test]
    fn rules_match_by_endpoint_and_object_and_run_out() {
        let mut book = FaultBook::default();
        book.add(
            FaultRule::new(Fault::Status { status: 503 })
                .on(Ep::Sign)
                .for_object("A1")
                .times(2),
        );
        book.add(FaultRule::new(Fault::Reset).on(Ep::Query));
        book.add(FaultRule::new(Fault::Signature).times(0));
        assert_eq!(book.rules().len(), 2, "a rule for no call is no rule");
        assert_eq!(book.take(Ep::Sign, Some("A2")), None);
        assert_eq!(
            book.take(Ep::Sign, Some("A1")),
            Some(Fault::Status { status: 503 })
        );
        assert!(book.take(Ep::Sign, Some("A1")).is_some());
        assert_eq!(book.take(Ep::Sign, Some("A1")), None, "used up");
        for _ in 0..3 {
            assert_eq!(book.take(Ep::Query, None), Some(Fault::Reset));
        }
        book.clear();
        assert!(book.rules().is_empty());
    }

    #[test]
    fn rules_read_from_json() {
        let r: FaultRule<Ep> = serde_json::from_str(
            r#"{"endpoint":"query","count":1,"fault":{"kind":"throttle","retry_after_secs":2}}"#,
        )
        .unwrap();
        assert_eq!(r.endpoint, Some(Ep::Query));
        assert_eq!(
            r.fault,
            Fault::Throttle {
                retry_after_secs: 2
            }
        );
        let r: FaultRule<Ep> = serde_json::from_str(r#"{"fault":{"kind":"signature"}}"#).unwrap();
        assert_eq!((r.endpoint, r.count), (None, None));
        assert!(serde_json::from_str::<FaultRule<Ep>>(r#"{"fault":{"kind":"melt"}}"#).is_err());
    }
}
