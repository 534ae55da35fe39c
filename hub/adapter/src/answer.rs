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
//! | a SOAP Fault (any status; `[answer] format = "soap"`) | the listed outcome of its code, else Client/Sender permanent, Server/Receiver retry | `EGRESS_SOAP_FAULT` |
//!
//! A SOAP answer that is not a Fault is read like the others, its pointers addressing the
//! content of the Body's first child (the response element of whichever operation answered,
//! element names without their prefix), so one `[answer]` serves every operation. A SOAP Fault's code is looked up in `[[answer.codes]]` in this order: the partner's own code
//! at `[answer] fault_code` inside the Fault, the SOAP 1.2 Subcode, then the fault code itself,
//! each without its namespace prefix (`Client`, `Server`, `Sender`, `Receiver`,
//! `Client.Authentication`). Unlisted, `Client*`/`Sender*` and `VersionMismatch`,
//! `MustUnderstand`, `DataEncodingUnknown` are permanent (the request itself is wrong),
//! `Server*`/`Receiver*` retryable, anything else as `unknown` says.
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

/// A SOAP Fault, read (1.1 `faultcode`/`faultstring`, 1.2 `Code/Value`, `Subcode/Value`,
/// `Reason/Text`); codes without their namespace prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct SoapFault {
    pub code: String,
    pub subcode: Option<String>,
    pub reason: Option<String>,
    /// The Fault element's tree, prefixes dropped (where `fault_code` points).
    pub tree: Value,
}

/// A SOAP answer: a Fault, or the content of the Body's first child (the operation's
/// response element, whatever its name, so one `[answer]` serves every operation).
#[derive(Debug, Clone, PartialEq)]
pub enum SoapAnswer {
    Fault(SoapFault),
    Body(Value),
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The tree with element names stripped of their prefix (attributes and `#text` kept). The
/// tree comes from the limited reader, so its depth is bounded and the recursion with it.
fn strip_prefixes(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let k = if k.starts_with('@') || k.starts_with('#') {
                        k
                    } else {
                        local(&k).to_string()
                    };
                    (k, strip_prefixes(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_prefixes).collect()),
        other => other,
    }
}

/// The text of an element: a string, `#text` beside attributes, the first of repeats.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(map) => text_of(map.get("#text")),
        Value::Array(items) => text_of(items.first()),
        _ => None,
    }
}

/// Reads a SOAP 1.1 or 1.2 envelope within the payload limits; `None` when the body is not an
/// envelope with a Body.
pub fn read_soap(body: &[u8]) -> Option<SoapAnswer> {
    let limits = hub_mapping::InputLimits::default();
    let charset = match hub_mapping::xml::declared_encoding(body) {
        Some(label) => hub_mapping::xml::charset_from_label(&label)?,
        None => hub_mapping::Charset::Utf8,
    };
    let text = hub_mapping::xml::decode(body, charset).ok()?;
    let (root, tree) = hub_mapping::xml::to_value_limited(&text, &limits).ok()?;
    if local(&root) != "Envelope" {
        return None;
    }
    let tree = strip_prefixes(tree);
    let soap_body = tree.get("Body")?;
    let Some(children) = soap_body.as_object() else {
        return Some(SoapAnswer::Body(serde_json::json!({})));
    };
    if let Some(fault) = children.get("Fault") {
        let qname = |v: Option<&Value>| text_of(v).map(|c| local(c.trim()).to_string());
        let (code, subcode, reason) = if fault.get("faultcode").is_some() {
            (
                qname(fault.get("faultcode")),
                None,
                text_of(fault.get("faultstring")),
            )
        } else {
            let code = fault.get("Code");
            (
                qname(code.and_then(|c| c.get("Value"))),
                qname(
                    code.and_then(|c| c.get("Subcode"))
                        .and_then(|s| s.get("Value")),
                ),
                text_of(fault.get("Reason").and_then(|r| r.get("Text"))),
            )
        };
        return Some(SoapAnswer::Fault(SoapFault {
            code: code.unwrap_or_default(),
            subcode,
            reason,
            tree: fault.clone(),
        }));
    }
    let first = children
        .iter()
        .find(|(k, _)| !k.starts_with('@') && !k.starts_with('#'));
    Some(SoapAnswer::Body(match first {
        Some((_, value)) => value.clone(),
        None => serde_json::json!({}),
    }))
}

/// The code a Fault is known by: the first of the partner's code (`fault_code`), the Subcode
/// and the fault code that `[[answer.codes]]` lists, else the fault code.
fn fault_code(spec: &AnswerSpec, f: &SoapFault) -> String {
    let detail = spec
        .fault_code
        .as_deref()
        .and_then(|p| text_of(f.tree.pointer(p)));
    let candidates = [detail, f.subcode.clone(), Some(f.code.clone())];
    candidates
        .iter()
        .flatten()
        .find(|c| spec.code(c).is_some())
        .cloned()
        .unwrap_or_else(|| f.code.clone())
}

fn fault_verdict(spec: &AnswerSpec, f: &SoapFault, after: Option<Duration>) -> Verdict {
    let code = fault_code(spec, f);
    let outcome = match spec.code(&code) {
        Some(c) => c.outcome,
        None => {
            let c = f.code.as_str();
            if c.starts_with("Client")
                || c.starts_with("Sender")
                || matches!(
                    c,
                    "VersionMismatch" | "MustUnderstand" | "DataEncodingUnknown"
                )
            {
                Outcome::Permanent
            } else if c.starts_with("Server") || c.starts_with("Receiver") {
                Outcome::Retryable
            } else {
                spec.unknown
            }
        }
    };
    let code = Some(code);
    match outcome {
        Outcome::Delivered => Verdict::Delivered { code },
        Outcome::Retryable => Verdict::Retry {
            reason: "EGRESS_SOAP_FAULT",
            code,
            after,
        },
        Outcome::Permanent => Verdict::Permanent {
            reason: "EGRESS_SOAP_FAULT",
            code,
        },
    }
}

/// Reads the business code and message out of an answer body, if the manifest says where. A
/// SOAP Fault gives its code and reason.
pub fn business_fields(spec: &AnswerSpec, body: &[u8]) -> (Option<String>, Option<String>) {
    if spec.format == AnswerFormat::Soap {
        if let Some(SoapAnswer::Fault(f)) = read_soap(body) {
            return (Some(fault_code(spec, &f)), f.reason);
        }
    }
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
        AnswerFormat::Soap => match read_soap(body)? {
            SoapAnswer::Body(doc) => Some(doc),
            SoapAnswer::Fault(_) => None,
        },
    }
}

/// The verdict on an HTTP answer.
pub fn classify(spec: &AnswerSpec, answer: &Answer) -> Verdict {
    let status = answer.status;
    // A SOAP Fault comes with 500 (1.1) or 400/500 (1.2): its code says more than the status.
    if spec.format == AnswerFormat::Soap {
        if let Some(SoapAnswer::Fault(f)) = read_soap(&answer.body) {
            return fault_verdict(spec, &f, answer.retry_after);
        }
    }
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
            fault_code: None,
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

    fn soap_spec() -> AnswerSpec {
        let mut s = spec();
        s.format = AnswerFormat::Soap;
        s.code = Some("/ResultCode".into());
        s.message = Some("/ResultMessage".into());
        s.fault_code = Some("/detail/ErrorCode".into());
        s.codes.push(BusinessCode {
            code: "CaseClosed".into(),
            outcome: Outcome::Permanent,
            zh: String::new(),
            en: String::new(),
        });
        s.codes.push(BusinessCode {
            code: "Duplicate".into(),
            outcome: Outcome::Delivered,
            zh: String::new(),
            en: String::new(),
        });
        s
    }

    #[test]
    fn soap_bodies_are_read_through_their_first_child_whatever_the_prefixes() {
        let s = soap_spec();
        let ok = r#"<?xml version="1.0" encoding="utf-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Header/><S:Body><ns2:SubmitCaseResponse xmlns:ns2="urn:case"><ns2:ResultCode>0</ns2:ResultCode><ns2:ResultMessage>受理</ns2:ResultMessage></ns2:SubmitCaseResponse></S:Body></S:Envelope>"#;
        assert_eq!(
            classify(&s, &answer(200, ok)),
            Verdict::Delivered {
                code: Some("0".into())
            }
        );
        assert_eq!(
            business_fields(&s, ok.as_bytes()),
            (Some("0".into()), Some("受理".into()))
        );
        let busy = ok.replace(">0<", ">E9001<");
        assert_eq!(
            classify(&s, &answer(200, &busy)).reason(),
            "EGRESS_PARTNER_BUSY"
        );
        assert_eq!(
            classify(&s, &answer(200, "<html>gateway</html>")).reason(),
            "EGRESS_ANSWER_UNREADABLE"
        );
    }

    #[test]
    fn soap11_faults_map_to_listed_codes_or_by_client_and_server() {
        let s = soap_spec();
        let fault = |code: &str, detail: &str| {
            format!(
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode><faultstring>案件不存在 case unknown</faultstring><detail>{detail}</detail></soap:Fault></soap:Body></soap:Envelope>"#
            )
        };
        let client = fault("Client", "");
        assert_eq!(
            classify(&s, &answer(500, &client)),
            Verdict::Permanent {
                reason: "EGRESS_SOAP_FAULT",
                code: Some("Client".into())
            }
        );
        assert_eq!(
            business_fields(&s, client.as_bytes()),
            (
                Some("Client".into()),
                Some("案件不存在 case unknown".into())
            )
        );
        let server = fault("Server", "");
        let v = classify(&s, &answer(500, &server));
        assert_eq!(v.reason(), "EGRESS_SOAP_FAULT");
        assert!(matches!(v, Verdict::Retry { .. }), "{v:?}");
        // The partner's own code inside detail wins over Client/Server.
        let dup = fault(
            "Client",
            r#"<e:ErrorCode xmlns:e="urn:case">Duplicate</e:ErrorCode>"#,
        );
        assert_eq!(
            classify(&s, &answer(500, &dup)),
            Verdict::Delivered {
                code: Some("Duplicate".into())
            }
        );
    }

    #[test]
    fn soap12_faults_read_code_subcode_and_reason() {
        let s = soap_spec();
        let fault = |code: &str, sub: &str| {
            format!(
                r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>c:{sub}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="zh">案件已办结</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#
            )
        };
        let closed = fault("Sender", "CaseClosed");
        assert_eq!(
            classify(&s, &answer(400, &closed)),
            Verdict::Permanent {
                reason: "EGRESS_SOAP_FAULT",
                code: Some("CaseClosed".into())
            }
        );
        assert_eq!(
            business_fields(&s, closed.as_bytes()),
            (Some("CaseClosed".into()), Some("案件已办结".into()))
        );
        let receiver = fault("Receiver", "Overloaded");
        assert!(matches!(
            classify(&s, &answer(500, &receiver)),
            Verdict::Retry {
                reason: "EGRESS_SOAP_FAULT",
                ..
            }
        ));
        // A hostile answer nests too deep: unreadable, not a stack overflow.
        let deep = format!(
            "<env:Envelope><env:Body>{}{}</env:Body></env:Envelope>",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
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
