//! Tickets as the platform keeps them, and the state machine the bureau's actions go through.
//!
//! ```text
//! dispatched 待签收 ──sign──▶ signed 已签收 ──reply──▶ replied 已回复 ──close──▶ closed 已办结
//!      │                         │   ▲ extension (one pending at a time)
//!      └──return──▶ returned 已退单 ◀┘ (only within the return window after signing)
//! ```
//!
//! The rules are pure functions over a [`Ticket`] so they are tested without HTTP.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::codes;
use crate::time::{fmt_local, parse_local, rfc3339_local};
use sim_kit::PushRecord;

/// Where a ticket is in the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// 待签收
    Dispatched,
    /// 已签收
    Signed,
    /// 已回复, awaiting the platform's close
    Replied,
    /// 已办结
    Closed,
    /// 已退单
    Returned,
}

impl TicketState {
    pub fn zh(self) -> &'static str {
        match self {
            TicketState::Dispatched => "待签收",
            TicketState::Signed => "已签收",
            TicketState::Replied => "已回复",
            TicketState::Closed => "已办结",
            TicketState::Returned => "已退单",
        }
    }
}

/// An action of the bureau (the hub's deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Sign,
    Return,
    Extension,
    Reply,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sign" => Some(Action::Sign),
            "return" => Some(Action::Return),
            "extension" => Some(Action::Extension),
            "reply" => Some(Action::Reply),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Sign => "sign",
            Action::Return => "return",
            Action::Extension => "extension",
            Action::Reply => "reply",
        }
    }
}

/// The form a dispatch is pushed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// `dispatch_json`, UTF-8.
    Json,
    /// `dispatch_xml`, GBK.
    Xml,
}

/// One thing that happened to a ticket: a request of the bureau (applied or refused) or an act
/// of the platform (dispatch, extension approval, urge, close, visit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub action: String,
    /// RFC 3339, +08:00.
    pub at: String,
    pub idempotency_key: Option<String>,
    /// The business code answered (`0000` when applied).
    pub code: String,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionStatus {
    Pending,
    Approved,
}

/// An extension request (延期申请) and what the platform did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionView {
    pub requested_deadline: String,
    pub reason: String,
    pub status: ExtensionStatus,
}

/// A ticket with everything the platform knows about it (saved whole in the state file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub no: String,
    /// The dispatch as the JSON push and the query API carry it.
    pub dispatch: Value,
    pub format: PushFormat,
    /// The exact bytes pushed (so a duplicate push is byte for byte the same).
    pub push_body: Vec<u8>,
    pub state: TicketState,
    pub dispatched_at: DateTime<Utc>,
    /// When the simulator created it (the query API's indexing delay counts from here).
    pub created_at: DateTime<Utc>,
    pub handle_deadline: String,
    pub signed_at: Option<DateTime<Utc>>,
    pub extensions: Vec<ExtensionView>,
    pub history: Vec<HistoryEntry>,
    pub idempotency_keys: Vec<String>,
    pub pushes: Vec<PushRecord>,
    pub urge_count: u32,
}

impl Ticket {
    pub fn new(
        dispatch: Value,
        format: PushFormat,
        push_body: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Self {
        let no = dispatch["gdbh"].as_str().unwrap_or_default().to_string();
        let dispatched_at = dispatch["pdsj"]
            .as_str()
            .and_then(parse_local)
            .unwrap_or(now);
        let handle_deadline = dispatch["blsx"].as_str().unwrap_or_default().to_string();
        let mut t = Ticket {
            no,
            dispatch,
            format,
            push_body,
            state: TicketState::Dispatched,
            dispatched_at,
            created_at: now,
            handle_deadline,
            signed_at: None,
            extensions: Vec::new(),
            history: Vec::new(),
            idempotency_keys: Vec::new(),
            pushes: Vec::new(),
            urge_count: 0,
        };
        t.record(
            "dispatch",
            None,
            codes::OK,
            json!({ "format": format }),
            now,
        );
        t
    }

    pub fn record(
        &mut self,
        action: &str,
        key: Option<&str>,
        code: &str,
        body: Value,
        now: DateTime<Utc>,
    ) {
        if let Some(k) = key {
            if !self.idempotency_keys.iter().any(|x| x == k) {
                self.idempotency_keys.push(k.to_string());
            }
        }
        self.history.push(HistoryEntry {
            action: action.to_string(),
            at: rfc3339_local(now),
            idempotency_key: key.map(str::to_string),
            code: code.to_string(),
            body,
        });
    }

    pub fn pending_extension(&self) -> bool {
        self.extensions
            .iter()
            .any(|e| e.status == ExtensionStatus::Pending)
    }

    /// Approves the pending extension: the handling deadline moves. `false` when none pends.
    pub fn approve_extension(&mut self, now: DateTime<Utc>) -> bool {
        let Some(e) = self
            .extensions
            .iter_mut()
            .find(|e| e.status == ExtensionStatus::Pending)
        else {
            return false;
        };
        e.status = ExtensionStatus::Approved;
        self.handle_deadline = e.requested_deadline.clone();
        let body = json!({ "blsx": self.handle_deadline });
        self.record("extension_approved", None, codes::OK, body, now);
        true
    }
}

/// The rules that are configurable.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How long after signing a ticket may still be returned.
    pub return_window: Duration,
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn time_field(body: &Value, field: &str) -> Result<DateTime<Utc>, &'static str> {
    text(body, field)
        .and_then(parse_local)
        .ok_or(codes::MALFORMED)
}

/// Checks the fields the platform requires of `action` (README of the mappings); returns the
/// ticket number. `1005` when something is missing or malformed.
pub fn validate(action: Action, body: &Value) -> Result<String, &'static str> {
    if !body.is_object() {
        return Err(codes::MALFORMED);
    }
    let no = text(body, "gdbh").ok_or(codes::MALFORMED)?.to_string();
    let unit = body.get("cbdw").ok_or(codes::MALFORMED)?;
    text(unit, "dm").ok_or(codes::MALFORMED)?;
    text(unit, "mc").ok_or(codes::MALFORMED)?;
    match action {
        Action::Sign => {
            time_field(body, "qssj")?;
        }
        Action::Return => {
            text(body, "tdly").ok_or(codes::MALFORMED)?;
            time_field(body, "tdsj")?;
        }
        Action::Extension => {
            let current = time_field(body, "yblsx")?;
            let requested = time_field(body, "sqblsx")?;
            if requested <= current {
                return Err(codes::MALFORMED);
            }
            text(body, "yqly").ok_or(codes::MALFORMED)?;
            time_field(body, "sqsj")?;
        }
        Action::Reply => {
            text(body, "bljg").ok_or(codes::MALFORMED)?;
            text(body, "cbr").ok_or(codes::MALFORMED)?;
            let contacted = match body.get("sflxldr") {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(codes::MALFORMED),
            };
            if contacted != "0" && contacted != "1" {
                return Err(codes::MALFORMED);
            }
            time_field(body, "bjsj")?;
        }
    }
    Ok(no)
}

/// Applies a validated `action` to `t` at `now`; the answer's `data`, or the refusal code.
pub fn apply(
    t: &mut Ticket,
    action: Action,
    body: &Value,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Value, &'static str> {
    use TicketState::*;
    match action {
        Action::Sign => match t.state {
            Dispatched => {
                t.state = Signed;
                t.signed_at = Some(now);
            }
            Signed | Replied => return Err(codes::ALREADY_SIGNED),
            Closed | Returned => return Err(codes::STATE_FORBIDS),
        },
        Action::Return => match t.state {
            Dispatched => t.state = Returned,
            Signed => {
                let signed = t.signed_at.unwrap_or(now);
                let window = chrono::Duration::from_std(rules.return_window)
                    .unwrap_or(chrono::Duration::MAX);
                // `now` is whole seconds: a return in the second of the sign is 0 s after it,
                // so "within the window" must be strictly less than it, or a zero window would
                // let such a return through.
                if now - signed >= window {
                    return Err(codes::RETURN_WINDOW_PASSED);
                }
                t.state = Returned;
            }
            Replied | Closed | Returned => return Err(codes::STATE_FORBIDS),
        },
        Action::Extension => {
            if t.state != Signed || t.pending_extension() {
                return Err(codes::STATE_FORBIDS);
            }
            t.extensions.push(ExtensionView {
                requested_deadline: text(body, "sqblsx").unwrap_or_default().to_string(),
                reason: text(body, "yqly").unwrap_or_default().to_string(),
                status: ExtensionStatus::Pending,
            });
        }
        Action::Reply => {
            if t.state != Signed {
                return Err(codes::STATE_FORBIDS);
            }
            t.state = Replied;
        }
    }
    let mut data = json!({
        "gdbh": t.no,
        "gdzt": t.state.zh(),
        "clsj": fmt_local(now),
    });
    if action == Action::Extension {
        data["sqzt"] = json!("待审核");
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        let dispatch = json!({
            "gdbh": "GD20261122000001", "pdsj": "2026-11-22 09:30:00", "blsx": "2026-11-29 18:00:00"
        });
        Ticket::new(dispatch, PushFormat::Json, Vec::new(), Utc::now())
    }

    fn unit() -> Value {
        json!({"dm": "11310000002420347T", "mc": "上海市水务局"})
    }

    fn body(action: Action) -> Value {
        let mut b = json!({"gdbh": "GD20261122000001", "cbdw": unit()});
        let m = b.as_object_mut().unwrap();
        match action {
            Action::Sign => {
                m.insert("qssj".into(), json!("2026-11-22 09:45:00"));
            }
            Action::Return => {
                m.insert("tdly".into(), json!("不属于水务职责"));
                m.insert("tdsj".into(), json!("2026-11-22 10:00:00"));
            }
            Action::Extension => {
                m.insert("yblsx".into(), json!("2026-11-29 18:00:00"));
                m.insert("sqblsx".into(), json!("2026-12-13 18:00:00"));
                m.insert("yqly".into(), json!("需开挖施工"));
                m.insert("sqsj".into(), json!("2026-11-27 14:20:00"));
            }
            Action::Reply => {
                m.insert("bljg".into(), json!("已疏通"));
                m.insert("sflxldr".into(), json!("1"));
                m.insert("cbr".into(), json!("孙八"));
                m.insert("bjsj".into(), json!("2026-11-28 16:30:00"));
            }
        }
        b
    }

    const RULES: Rules = Rules {
        return_window: Duration::from_secs(24 * 3600),
    };

    fn act(t: &mut Ticket, a: Action) -> Result<Value, &'static str> {
        apply(t, a, &body(a), Utc::now(), &RULES)
    }

    #[test]
    fn the_happy_path_goes_through_every_state() {
        let mut t = ticket();
        assert_eq!(act(&mut t, Action::Sign).unwrap()["gdzt"], "已签收");
        assert_eq!(t.state, TicketState::Signed);
        assert_eq!(act(&mut t, Action::Extension).unwrap()["sqzt"], "待审核");
        assert!(t.pending_extension());
        assert_eq!(act(&mut t, Action::Extension), Err(codes::STATE_FORBIDS));
        assert!(t.approve_extension(Utc::now()));
        assert_eq!(t.handle_deadline, "2026-12-13 18:00:00");
        assert!(
            act(&mut t, Action::Extension).is_ok(),
            "a second one after approval"
        );
        act(&mut t, Action::Reply).unwrap();
        assert_eq!(t.state, TicketState::Replied);
    }

    #[test]
    fn a_zero_return_window_refuses_a_return_in_the_second_of_the_sign() {
        // The platform's clock is whole seconds: the sign and the return may share one.
        let second = Utc::now();
        let closed = Rules {
            return_window: Duration::ZERO,
        };
        let mut t = ticket();
        apply(&mut t, Action::Sign, &body(Action::Sign), second, &closed).unwrap();
        assert_eq!(
            apply(
                &mut t,
                Action::Return,
                &body(Action::Return),
                second,
                &closed
            ),
            Err(codes::RETURN_WINDOW_PASSED)
        );
        assert_eq!(t.state, TicketState::Signed);
        // Within a real window, the same second is inside it.
        let mut t = ticket();
        apply(&mut t, Action::Sign, &body(Action::Sign), second, &RULES).unwrap();
        apply(
            &mut t,
            Action::Return,
            &body(Action::Return),
            second,
            &RULES,
        )
        .unwrap();
        assert_eq!(t.state, TicketState::Returned);
    }

    #[test]
    fn every_refusal_has_its_code() {
        let mut t = ticket();
        // Not signed yet: no extension, no reply.
        assert_eq!(act(&mut t, Action::Extension), Err(codes::STATE_FORBIDS));
        assert_eq!(act(&mut t, Action::Reply), Err(codes::STATE_FORBIDS));
        act(&mut t, Action::Sign).unwrap();
        assert_eq!(act(&mut t, Action::Sign), Err(codes::ALREADY_SIGNED));
        act(&mut t, Action::Reply).unwrap();
        assert_eq!(act(&mut t, Action::Sign), Err(codes::ALREADY_SIGNED));
        assert_eq!(act(&mut t, Action::Return), Err(codes::STATE_FORBIDS));
        assert_eq!(act(&mut t, Action::Reply), Err(codes::STATE_FORBIDS));
        assert_eq!(act(&mut t, Action::Extension), Err(codes::STATE_FORBIDS));
        t.state = TicketState::Closed;
        for a in [
            Action::Sign,
            Action::Return,
            Action::Extension,
            Action::Reply,
        ] {
            assert_eq!(act(&mut t, a), Err(codes::STATE_FORBIDS), "{a:?} on closed");
        }
    }

    #[test]
    fn a_returned_ticket_takes_nothing_more() {
        let mut t = ticket();
        act(&mut t, Action::Return).unwrap();
        assert_eq!(t.state, TicketState::Returned);
        for a in [
            Action::Sign,
            Action::Return,
            Action::Extension,
            Action::Reply,
        ] {
            assert_eq!(
                act(&mut t, a),
                Err(codes::STATE_FORBIDS),
                "{a:?} on returned"
            );
        }
    }

    #[test]
    fn return_after_signing_only_within_the_window() {
        let mut t = ticket();
        let signed = Utc::now();
        apply(&mut t, Action::Sign, &body(Action::Sign), signed, &RULES).unwrap();
        let late = signed + chrono::Duration::hours(25);
        let b = body(Action::Return);
        assert_eq!(
            apply(&mut t, Action::Return, &b, late, &RULES),
            Err(codes::RETURN_WINDOW_PASSED)
        );
        let in_time = signed + chrono::Duration::hours(23);
        apply(&mut t, Action::Return, &b, in_time, &RULES).unwrap();
        assert_eq!(t.state, TicketState::Returned);
    }

    #[test]
    fn malformed_bodies_are_1005() {
        assert_eq!(validate(Action::Sign, &json!([])), Err(codes::MALFORMED));
        for a in [
            Action::Sign,
            Action::Return,
            Action::Extension,
            Action::Reply,
        ] {
            assert_eq!(validate(a, &body(a)).unwrap(), "GD20261122000001");
            let mut b = body(a);
            b["gdbh"] = json!("  ");
            assert_eq!(validate(a, &b), Err(codes::MALFORMED));
            let mut b = body(a);
            b.as_object_mut().unwrap().remove("cbdw");
            assert_eq!(validate(a, &b), Err(codes::MALFORMED));
        }
        let mut b = body(Action::Extension);
        b["sqblsx"] = json!("2026-11-29 18:00:00");
        assert_eq!(validate(Action::Extension, &b), Err(codes::MALFORMED));
        let mut b = body(Action::Reply);
        b["sflxldr"] = json!("2");
        assert_eq!(validate(Action::Reply, &b), Err(codes::MALFORMED));
        let mut b = body(Action::Sign);
        b["qssj"] = json!("2026-11-22T09:45:00+08:00");
        assert_eq!(validate(Action::Sign, &b), Err(codes::MALFORMED));
    }
}
