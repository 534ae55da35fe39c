//! Planned faults in the platform's words: a rule picks requests by endpoint (`action`) and/or
//! ticket, a count, and what goes wrong (the kit's [`Fault`]). The kit's fault book applies
//! them; this type keeps the JSON of the control API (`{"action": "sign", "ticket": "GD…"}`).

use serde::{Deserialize, Serialize};
pub use sim_kit::Fault;

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
}

impl sim_kit::Rule for FaultRule {
    type Endpoint = Endpoint;

    fn matches(&self, endpoint: Endpoint, ticket: Option<&str>) -> bool {
        self.action.is_none_or(|a| a == endpoint)
            && self.ticket.as_deref().is_none_or(|t| Some(t) == ticket)
    }

    fn fault(&self) -> &Fault {
        &self.fault
    }

    fn remaining(&mut self) -> &mut Option<u32> {
        &mut self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_from_json_in_the_platforms_words() {
        let r: FaultRule = serde_json::from_str(
            r#"{"action":"reply","ticket":"GD1","count":1,"fault":{"kind":"throttle","retry_after_secs":2}}"#,
        )
        .unwrap();
        assert_eq!(r.action, Some(Endpoint::Reply));
        assert_eq!(r.ticket.as_deref(), Some("GD1"));
        assert_eq!(
            r.fault,
            Fault::Throttle {
                retry_after_secs: 2
            }
        );
        let r: FaultRule =
            serde_json::from_str(r#"{"fault":{"kind":"code","code":"2001"}}"#).unwrap();
        assert_eq!(r.count, None);
        let mut book = sim_kit::FaultBook::default();
        book.add(
            FaultRule::new(Fault::Reset)
                .on(Endpoint::Sign)
                .for_ticket("GD1")
                .times(1),
        );
        assert_eq!(book.take(Endpoint::Sign, Some("GD2")), None);
        assert_eq!(book.take(Endpoint::Query, Some("GD1")), None);
        assert_eq!(book.take(Endpoint::Sign, Some("GD1")), Some(Fault::Reset));
        assert!(book.rules().is_empty());
    }
}
