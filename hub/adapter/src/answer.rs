//! What a partner's answer means for the message it answers.
//!
//! | answer | verdict | reason code |
//! |---|---|---|
//! | transport error (refused, reset) | retry | `EGRESS_TRANSPORT` |
//! | no answer in `timeout_ms` | retry | `EGRESS_TIMEOUT` |
//! | 5xx | retry | `EGRESS_PARTNER_UNAVAILABLE` |
//! | 429 (Retry-After honoured) | retry | `EGRESS_PARTNER_THROTTLED` |
//! | 401 / 403 (the hub's signature or credential refused) | retry | `EGRESS_PARTNER_AUTH_REFUSED` |
//! | 2xx without a business code configured | delivered | |
//! | a listed business code | its outcome | `EGRESS_PARTNER_BUSY` / `EGRESS_PARTNER_REFUSED` |
//! | an unlisted code | the manifest's `unknown` | `EGRESS_PARTNER_UNKNOWN_CODE` |
//! | 2xx whose business code cannot be read | retry | `EGRESS_ANSWER_UNREADABLE` |
//! | other 4xx without a listed code | permanent | `EGRESS_PARTNER_REJECTED` |
//!
//! Retrying is safe in every retry row because each request carries the message id as its
//! idempotency key where the partner supports one. Authentication refusals are retried (they
//! come from a rotated key or a clock out of step, which people fix) and open the breaker.

use std::time::Duration;

use serde_json::Value;

use crate::manifest::{AnswerFormat, AnswerSpec, Outcome};

/// The partner's HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered {
        code: Option<String>,
    },
    Retry {
        reason: &'static str,
        code: Option<String>,
        /// The partner asked for this wait (Retry-After).
        after: Option<Duration>,
    },
    Permanent {
        reason: &'static str,
        code: Option<String>,
    },
}

impl Verdict {
    /// Was the partner itself working? (Feeds the circuit breaker: a business refusal is the
    /// partner working correctly.)
    pub fn partner_ok(&self) -> bool {
        match self {
            Verdict::Delivered { .. } | Verdict::Permanent { .. } => true,
            Verdict::Retry { .. } => false,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Delivered { .. } => "DELIVERED",
            Verdict::Retry { reason, .. } | Verdict::Permanent { reason, .. } => reason,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Verdict::Delivered { code }
            | Verdict::Retry { code, .. }
            | Verdict::Permanent { code, .. } => code.as_deref(),
        }
    }
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    Timeout,
    Transport(String),
}

impl NoAnswer {
    pub fn verdict(&self) -> Verdict {
        Verdict::Retry {
            reason: match self {
                NoAnswer::Timeout => "EGRESS_TIMEOUT",
                NoAnswer::Transport(_) => "EGRESS_TRANSPORT",
            },
            code: None,
            after: None,
        }
    }
}

/// Reads the business code and message out of an answer body, if the manifest says where.
pub fn business_fields(spec: &AnswerSpec, body: &[u8]) -> (Option<String>, Option<String>) {
    let Some(doc) = parse(spec.format, body) else {
        return (None, None);
    };
    let read = |ptr: &Option<String>| {
        ptr.as_deref()
            .and_then(|p| doc.pointer(p))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
    };
    (read(&spec.code), read(&spec.message))
}

/// Answers are not authenticated: their depth and size are bounded like any payload's
/// ([`hub_mapping::InputLimits`]) before anything recurses over them; one beyond the bounds is
/// unreadable.
fn parse(format: AnswerFormat, body: &[u8]) -> Option<Value> {
    let limits = hub_mapping::InputLimits::default();
    match format {
        AnswerFormat::Json => {
            hub_mapping::limits::check_json_text(body, &limits).ok()?;
            serde_json::from_slice(body).ok()
        }
        AnswerFormat::Xml => {
            let text = std::str::from_utf8(body).ok()?;
            let (root, value) = hub_mapping::xml::to_value_limited(text, &limits).ok()?;
            Some(serde_json::json!({ root: value }))
        }
    }
}

/// The verdict on an HTTP answer.
pub fn classify(spec: &AnswerSpec, answer: &Answer) -> Verdict {
    let status = answer.status;
    if status >= 500 {
        return Verdict::Retry {
            reason: "EGRESS_PARTNER_UNAVAILABLE",
            code: None,
            after: answer.retry_after,
        };
    }
    if status == 429 {
        return Verdict::Retry {
            reason: "EGRESS_PARTNER_THROTTLED",
            code: None,
            after: answer.retry_after,
        };
    }
    if status == 401 || status == 403 {
        return Verdict::Retry {
            reason: "EGRESS_PARTNER_AUTH_REFUSED",
            code: business_fields(spec, &answer.body).0,
            after: None,
        };
    }
    let code = if spec.code.is_some() {
        business_fields(spec, &answer.body).0
    } else {
        None
    };
    let success = (200..300).contains(&status);
    match (&spec.code, code) {
        (None, _) if success => Verdict::Delivered { code: None },
        (Some(_), None) if success => Verdict::Retry {
            reason: "EGRESS_ANSWER_UNREADABLE",
            code: None,
            after: None,
        },
        (Some(_), Some(code)) => {
            let (outcome, reason) = match spec.code(&code) {
                Some(c) => (
                    c.outcome,
                    match c.outcome {
                        Outcome::Retryable => "EGRESS_PARTNER_BUSY",
                        _ => "EGRESS_PARTNER_REFUSED",
                    },
                ),
                None => (spec.unknown, "EGRESS_PARTNER_UNKNOWN_CODE"),
            };
            match outcome {
                // A success code on a 4xx is still a refusal: trust the stricter signal.
                Outcome::Delivered if success => Verdict::Delivered { code: Some(code) },
                Outcome::Delivered => Verdict::Permanent {
                    reason: "EGRESS_PARTNER_REJECTED",
                    code: Some(code),
                },
                Outcome::Retryable => Verdict::Retry {
                    reason,
                    code: Some(code),
                    after: answer.retry_after,
                },
                Outcome::Permanent => Verdict::Permanent {
                    reason,
                    code: Some(code),
                },
            }
        }
        _ => Verdict::Permanent {
            reason: "EGRESS_PARTNER_REJECTED",
            code: None,
        },
    }
}

/// Parses `Retry-After` (seconds; an HTTP date is taken as "a minute" rather than trusted).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    match v.parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s.min(3_600))),
        Err(_) if !v.is_empty() => Some(Duration::from_secs(60)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::BusinessCode;

    fn spec() -> AnswerSpec {
        let code = |c: &str, outcome| BusinessCode {
            code: c.into(),
            outcome,
            zh: String::new(),
            en: String::new(),
        };
        AnswerSpec {
            format: AnswerFormat::Json,
            code: Some("/code".into()),
            message: Some("/msg".into()),
            unknown: Outcome::Permanent,
            codes: vec![
                code("0", Outcome::Delivered),
                code("E9001", Outcome::Retryable),
                code("E2001", Outcome::Permanent),
            ],
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn business_codes_decide_on_a_2xx() {
        let s = spec();
        assert_eq!(
            classify(&s, &answer(200, r#"{"code":"0","msg":"ok"}"#)),
            Verdict::Delivered {
                code: Some("0".into())
            }
        );
        assert_eq!(
            classify(&s, &answer(200, r#"{"code":0}"#)),
            Verdict::Delivered {
                code: Some("0".into())
            },
            "numeric codes read as text"
        );
        assert_eq!(
            classify(&s, &answer(200, r#"{"code":"E2001"}"#)).reason(),
            "EGRESS_PARTNER_REFUSED"
        );
        assert_eq!(
            classify(&s, &answer(200, r#"{"code":"E9001"}"#)).reason(),
            "EGRESS_PARTNER_BUSY"
        );
        assert_eq!(
            classify(&s, &answer(200, r#"{"code":"X"}"#)),
            Verdict::Permanent {
                reason: "EGRESS_PARTNER_UNKNOWN_CODE",
                code: Some("X".into())
            }
        );
        assert_eq!(
            classify(&s, &answer(200, "<html>proxy error</html>")).reason(),
            "EGRESS_ANSWER_UNREADABLE"
        );
    }

    #[test]
    fn http_status_decides_before_codes() {
        let s = spec();
        assert_eq!(
            classify(&s, &answer(502, "")).reason(),
            "EGRESS_PARTNER_UNAVAILABLE"
        );
        let mut throttled = answer(429, "");
        throttled.retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            classify(&s, &throttled),
            Verdict::Retry {
                reason: "EGRESS_PARTNER_THROTTLED",
                code: None,
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify(&s, &answer(401, "")).reason(),
            "EGRESS_PARTNER_AUTH_REFUSED"
        );
        assert_eq!(
            classify(&s, &answer(400, "bad")).reason(),
            "EGRESS_PARTNER_REJECTED"
        );
        assert_eq!(
            classify(&s, &answer(409, r#"{"code":"0"}"#)).reason(),
            "EGRESS_PARTNER_REJECTED",
            "a success code on a 4xx is not a delivery"
        );
        assert!(!classify(&s, &answer(503, "")).partner_ok());
        assert!(classify(&s, &answer(200, r#"{"code":"E2001"}"#)).partner_ok());
    }

    #[test]
    fn xml_answers_are_read_by_element_path() {
        let mut s = spec();
        s.format = AnswerFormat::Xml;
        s.code = Some("/Response/Code".into());
        let a = answer(
            200,
            "<Response><Code>E2001</Code><Msg>已签收</Msg></Response>",
        );
        assert_eq!(classify(&s, &a).code(), Some("E2001"));
    }

    #[test]
    fn answers_nesting_too_deep_are_unreadable_not_a_stack_overflow() {
        let mut s = spec();
        s.format = AnswerFormat::Xml;
        s.code = Some("/Response/Code".into());
        let deep = format!(
            "<Response><Code>0</Code>{}{}</Response>",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        assert_eq!(
            classify(&s, &answer(200, &deep)).reason(),
            "EGRESS_ANSWER_UNREADABLE"
        );
        let s = spec();
        let deep = format!(
            r#"{{"code":"0","x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            classify(&s, &answer(200, &deep)).reason(),
            "EGRESS_ANSWER_UNREADABLE"
        );
        // 100 levels: below serde_json's own limit, above the hub's.
        let deep = format!(
            r#"{{"code":"0","x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(
            classify(&s, &answer(200, &deep)).reason(),
            "EGRESS_ANSWER_UNREADABLE"
        );
    }

    #[test]
    fn retry_after_in_seconds_is_honoured_and_capped() {
        assert_eq!(retry_after(Some("5")), Some(Duration::from_secs(5)));
        assert_eq!(
            retry_after(Some("999999")),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(retry_after(None), None);
    }
}
