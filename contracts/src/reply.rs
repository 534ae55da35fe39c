//! Reply contracts: the shape every reply contract has, so the hub can say in the same record
//! both "here is the answer" and "this request failed for good" (`docs/request-reply.md`).
//!
//! A `[[delivery]]` of an adapter with `reply = "<inbound mapping>"` is a request. Its answer goes through
//! that mapping into the mapping's contract, the *reply contract*, which must have:
//!
//! | field | type | set by |
//! |---|---|---|
//! | `request_id` | `string` | the hub: the request's message id |
//! | `outcome` | `string` | the hub: `answered`, `refused` or `failed` |
//! | `reason_code` | `["null","string"]` | the hub: a stable code when not answered |
//! | `reason` | `["null","string"]` | the hub: what happened, masked |
//! | `partner_code` | `["null","string"]` | the hub: the partner's business code, if any |
//!
//! Every other field except the key and `occurred_at` must have a default (normally
//! `["null", …]` with `"default": null`): a failed request has no answer to fill them from,
//! and its reply must still encode. The hub fills the key with the request's object id and
//! `occurred_at` with the time of the failure.

use serde_json::Value;

use crate::Contract;

/// The reply's copy of the request's message id.
pub const REQUEST_ID: &str = "request_id";
/// `answered`, `refused` or `failed`.
pub const OUTCOME: &str = "outcome";
/// A stable code (`docs/errors.md`) when the request was not answered.
pub const REASON_CODE: &str = "reason_code";
/// What happened, for people; masked, never payload values.
pub const REASON: &str = "reason";
/// The partner's business code of the answer, when it gave one.
pub const PARTNER_CODE: &str = "partner_code";

/// How a request ended, as its reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The partner answered; the reply carries what it said.
    Answered,
    /// The partner refused the request for good (a permanent business code, a 4xx).
    Refused,
    /// No usable answer: retries exhausted (timeouts, 5xx), the request could not be made, or
    /// the answer did not fit the reply contract.
    Failed,
}

impl ReplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyOutcome::Answered => "answered",
            ReplyOutcome::Refused => "refused",
            ReplyOutcome::Failed => "failed",
        }
    }
}

fn field<'a>(contract: &'a Contract, name: &str) -> Option<&'a Value> {
    contract
        .schema_json
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
}

fn is_string(t: &Value) -> bool {
    t.as_str() == Some("string") || t.get("type").and_then(Value::as_str) == Some("string")
}

fn is_nullable_string(f: &Value) -> bool {
    let Some(branches) = f.get("type").and_then(Value::as_array) else {
        return false;
    };
    branches.len() == 2
        && branches[0].as_str() == Some("null")
        && is_string(&branches[1])
        && f.get("default") == Some(&Value::Null)
}

/// What keeps `contract` from being a reply contract; empty when it is one.
pub fn reply_contract_problems(contract: &Contract) -> Vec<String> {
    let topic = &contract.declaration.topic;
    let mut out = Vec::new();
    for name in [REQUEST_ID, OUTCOME] {
        match field(contract, name) {
            Some(f) if f.get("type").is_some_and(is_string) => {}
            Some(_) => out.push(format!(
                "reply contract `{topic}`: field `{name}` must be a string"
            )),
            None => out.push(format!(
                "reply contract `{topic}`: field `{name}` is missing (docs/request-reply.md)"
            )),
        }
    }
    for name in [REASON_CODE, REASON, PARTNER_CODE] {
        match field(contract, name) {
            Some(f) if is_nullable_string(f) => {}
            Some(_) => out.push(format!(
                "reply contract `{topic}`: field `{name}` must be [\"null\", \"string\"] with default null"
            )),
            None => out.push(format!(
                "reply contract `{topic}`: field `{name}` is missing (docs/request-reply.md)"
            )),
        }
    }
    match field(contract, &contract.declaration.key) {
        Some(f) if f.get("type").is_some_and(is_string) => {}
        _ => out.push(format!(
            "reply contract `{topic}`: its key `{}` must be a string field (a failed request's reply carries the request's object id in it)",
            contract.declaration.key
        )),
    }
    let hub_set = [
        REQUEST_ID,
        OUTCOME,
        REASON_CODE,
        REASON,
        PARTNER_CODE,
        "occurred_at",
        contract.declaration.key.as_str(),
    ];
    let fields = contract
        .schema_json
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for f in &fields {
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        if !hub_set.contains(&name) && f.get("default").is_none() {
            out.push(format!(
                "reply contract `{topic}`: field `{name}` needs a default (e.g. [\"null\", …] with default null): a failed request has no answer to fill it from"
            ));
        }
    }
    out
}

/// Is `contract` shaped as a reply contract? (The mapping fixtures complete a reply mapping's
/// record with the hub's fields before checking it, as the egress does.)
pub fn is_reply_contract(contract: &Contract) -> bool {
    reply_contract_problems(contract).is_empty()
}

/// The hub's fields of a reply, set over what the reply mapping made (which may not set them);
/// the key, when the mapping left it empty, is the request's object id.
pub fn complete_answered(
    record: &mut Value,
    contract: &Contract,
    request_id: &str,
    object_id: &str,
    partner_code: Option<&str>,
    now: &str,
) {
    if let Some(map) = record.as_object_mut() {
        let key = &contract.declaration.key;
        if map.get(key).is_none_or(Value::is_null) {
            map.insert(key.clone(), Value::from(object_id));
        }
        map.insert(REQUEST_ID.into(), Value::from(request_id));
        map.insert(OUTCOME.into(), Value::from(ReplyOutcome::Answered.as_str()));
        map.insert(REASON_CODE.into(), Value::Null);
        map.insert(REASON.into(), Value::Null);
        map.insert(
            PARTNER_CODE.into(),
            partner_code.map_or(Value::Null, Value::from),
        );
        if !map.contains_key("occurred_at") {
            map.insert("occurred_at".into(), Value::from(now));
        }
    }
}

/// Why a request was not answered, as its reply says.
#[derive(Debug, Clone, Copy)]
pub struct NotAnswered<'a> {
    /// [`ReplyOutcome::Refused`] or [`ReplyOutcome::Failed`].
    pub outcome: ReplyOutcome,
    pub reason_code: &'a str,
    pub reason: &'a str,
    pub partner_code: Option<&'a str>,
}

/// The whole reply to a request that failed for good: only the hub's fields, the key and the
/// time; every other field takes its default.
pub fn failed_record(
    contract: &Contract,
    request_id: &str,
    object_id: &str,
    why: NotAnswered<'_>,
    now: &str,
) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(contract.declaration.key.clone(), Value::from(object_id));
    map.insert(REQUEST_ID.into(), Value::from(request_id));
    map.insert(OUTCOME.into(), Value::from(why.outcome.as_str()));
    map.insert(REASON_CODE.into(), Value::from(why.reason_code));
    map.insert(REASON.into(), Value::from(why.reason));
    map.insert(
        PARTNER_CODE.into(),
        why.partner_code.map_or(Value::Null, Value::from),
    );
    if field(contract, "occurred_at").is_some() {
        map.insert("occurred_at".into(), Value::from(now));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(extra_fields: &str) -> Contract {
        let dir = tempfile::tempdir().unwrap();
        let schema = format!(
            r#"{{"type": "record", "name": "Checked", "namespace": "cn.gov.sh.hub.test.v1",
  "doc": "测试 / test",
  "x-hub": {{"topic": "test.thing.checked.v1", "key": "thing_no", "partitions": 1,
    "retention_ms": 86400000, "cleanup_policy": "delete", "compatibility": "BACKWARD",
    "volume": "测试 / test"}},
  "fields": [
    {{"name": "thing_no", "type": "string", "doc": "编号 / number"}},
    {extra_fields}
    {{"name": "occurred_at", "type": {{"type": "string", "x-format": "date-time"}}, "doc": "时间 / time"}}
  ]}}"#
        );
        std::fs::write(dir.path().join("checked.v1.avsc"), schema).unwrap();
        let catalog = crate::load_dir(dir.path()).unwrap();
        catalog.contracts[0].clone()
    }

    const REPLY_FIELDS: &str = r#"
    {"name": "request_id", "type": "string", "doc": "请求 / request"},
    {"name": "outcome", "type": "string", "doc": "结果 / outcome"},
    {"name": "reason_code", "type": ["null", "string"], "default": null, "doc": "原因码 / code"},
    {"name": "reason", "type": ["null", "string"], "default": null, "doc": "原因 / reason"},
    {"name": "partner_code", "type": ["null", "string"], "default": null, "doc": "对方码 / partner code"},"#;

    #[test]
    fn a_contract_with_the_five_fields_and_defaults_is_a_reply_contract() {
        let c = contract(&format!(
            r#"{REPLY_FIELDS} {{"name": "valid", "type": ["null", "boolean"], "default": null, "doc": "有效 / valid"}},"#
        ));
        assert_eq!(reply_contract_problems(&c), Vec::<String>::new());
        // A failed request's record encodes: key, hub fields and time; the rest defaults.
        let record = failed_record(
            &c,
            "req-1",
            "T-1",
            NotAnswered {
                outcome: ReplyOutcome::Failed,
                reason_code: "EGRESS_RETRY_EXHAUSTED",
                reason: "2 attempts",
                partner_code: None,
            },
            "2026-12-03T10:00:00.000+08:00",
        );
        c.encode(&record).expect("the failure reply encodes");
    }

    #[test]
    fn a_missing_hub_field_or_a_field_without_default_is_named() {
        let c = contract(
            r#"{"name": "request_id", "type": "string", "doc": "请求 / request"},
               {"name": "valid", "type": "boolean", "doc": "有效 / valid"},"#,
        );
        let problems = reply_contract_problems(&c).join("\n");
        for expected in [
            "field `outcome` is missing",
            "field `reason_code` is missing",
            "field `valid` needs a default",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        assert!(!problems.contains("`request_id`"), "{problems}");
        assert!(!is_reply_contract(&c));
    }

    #[test]
    fn an_answer_is_completed_over_what_the_mapping_set() {
        let c = contract(REPLY_FIELDS);
        let mut record = serde_json::json!({"outcome": "made up by the mapping"});
        complete_answered(
            &mut record,
            &c,
            "req-2",
            "T-2",
            Some("0"),
            "2026-12-03T10:00:00.000+08:00",
        );
        assert_eq!(record["outcome"], "answered");
        assert_eq!(record["thing_no"], "T-2");
        assert_eq!(record["partner_code"], "0");
        assert_eq!(record["request_id"], "req-2");
        c.encode(&record).expect("the completed answer encodes");
    }
}
