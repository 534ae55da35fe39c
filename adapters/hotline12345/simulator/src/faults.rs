//! Planned faults: a rule picks requests (by endpoint and/or ticket), a count, and what goes
//! wrong. Rules are tried in the order they were added; the first that matches is used.

use serde::{Deserialize, Serialize};

/// The platform API a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Sign,
    Return,
    Extension,
    Reply,
    Query,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Sign => "sign",
            Endpoint::Return => "return",
            Endpoint::Extension => "extension",
            Endpoint::Reply => "reply",
            Endpoint::Query => "query",
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The request is handled normally (its effect is applied) but answered `ms` late: the
    /// hub may give up first and retry with the same idempotency key.
    Delay { ms: u64 },
    /// Held `ms`, then refused with 503; nothing applied.
    Hold { ms: u64 },
    /// Refused with this HTTP status (e.g. 500, 503); nothing applied.
    Status { status: u16 },
    /// 429 with `Retry-After: retry_after_secs`; nothing applied.
    Throttle { retry_after_secs: u64 },
    /// The connection is dropped (RST) without an answer; nothing applied.
    Reset,
    /// HTTP 200 with this business code (e.g. `2001` busy, `2002` maintenance); nothing
    /// applied, and a retry with the same idempotency key is handled anew.
    Code { code: String },
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// `None`: every endpoint.
    #[serde(default)]
    pub action: Option<Endpoint>,
    /// `None`: every ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// How many requests it applies to; `None`: until cleared.
    #[serde(default)]
    pub count: Option<u32>,
    pub fault: Fault,
}

impl FaultRule {
    pub fn new(fault: Fault) -> Self {
        FaultRule {
            action: None,
            ticket: None,
            count: None,
            fault,
        }
    }

    pub fn on(mut self, action: Endpoint) -> Self {
        self.action = Some(action);
        self
    }

    pub fn for_ticket(mut self, ticket: impl Into<String>) -> Self {
        self.ticket = Some(ticket.into());
        self
    }

    pub fn times(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    fn matches(&self, endpoint: Endpoint, ticket: Option<&str>) -> bool {
        self.action.is_none_or(|a| a == endpoint)
            && self.ticket.as_deref().is_none_or(|t| Some(t) == ticket)
    }
}

/// The rules in force.
#[derive(Debug, Default)]
pub struct FaultBook {
    rules: Vec<FaultRule>,
}

impl FaultBook {
    pub fn add(&mut self, rule: FaultRule) {
        if rule.count != Some(0) {
            self.rules.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// The fault for this request, if any rule matches; uses one of the rule's count.
    pub fn take(&mut self, endpoint: Endpoint, ticket: Option<&str>) -> Option<Fault> {
        let i = self
            .rules
            .iter()
            .position(|r| r.matches(endpoint, ticket))?;
        let fault = self.rules[i].fault.clone();
        if let Some(n) = self.rules[i].count.as_mut() {
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

    #[test]
    fn rules_match_by_endpoint_and_ticket_and_run_out() {
        let mut book = FaultBook::default();
        book.add(
            FaultRule::new(Fault::Status { status: 503 })
                .on(Endpoint::Sign)
                .for_ticket("GD1")
                .times(2),
        );
        book.add(FaultRule::new(Fault::Reset).on(Endpoint::Query));
        assert_eq!(book.take(Endpoint::Sign, Some("GD2")), None);
        assert_eq!(book.take(Endpoint::Reply, Some("GD1")), None);
        assert_eq!(
            book.take(Endpoint::Sign, Some("GD1")),
            Some(Fault::Status { status: 503 })
        );
        assert!(book.take(Endpoint::Sign, Some("GD1")).is_some());
        assert_eq!(book.take(Endpoint::Sign, Some("GD1")), None, "used up");
        for _ in 0..3 {
            assert_eq!(book.take(Endpoint::Query, None), Some(Fault::Reset));
        }
        book.clear();
        assert!(book.rules().is_empty());
    }

    #[test]
    fn rules_read_from_json() {
        let r: FaultRule = serde_json::from_str(
            r#"{"action":"reply","count":1,"fault":{"kind":"throttle","retry_after_secs":2}}"#,
        )
        .unwrap();
        assert_eq!(r.action, Some(Endpoint::Reply));
        assert_eq!(
            r.fault,
            Fault::Throttle {
                retry_after_secs: 2
            }
        );
        let r: FaultRule =
            serde_json::from_str(r#"{"fault":{"kind":"code","code":"2001"}}"#).unwrap();
        assert_eq!(r.count, None);
    }
}
