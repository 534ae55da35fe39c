//! The message trace as operators ask for it (`GET /api/v1/trace/{id}` on the admin listener
//! and `hub trace <id>`): the stored events of every message the id names (message id,
//! correlation id, or the partner's object id such as a ticket number), grouped by message, plus
//! the consumer groups that have read each produced record, asked of Kafka at query time.
//! `docs/trace.md` describes the answer.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeZone;
use hub_bus::BusSection;
use hub_state::{StateError, StateStore, StoredTraceEvent};
use serde_json::{json, Value};

/// Events returned at most, unless the caller asks for another limit.
pub const DEFAULT_LIMIT: i64 = 1_000;

/// How long the consumer-group check may take in total.
pub const CONSUMED_BUDGET: Duration = Duration::from_secs(5);

fn at_text(ms: i64) -> String {
    hub_bus::shanghai()
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
        .unwrap_or_default()
}

/// The answer for `id`: `{id, found, truncated, messages: [{message_id, correlation_id,
/// object_id, events: [...], consumed: [...]}], consumed_check}`. With `bus`, each `produced`
/// event is followed by the groups whose committed offset is past it (`consumed`, `live: true`).
pub async fn lookup(
    state: &StateStore,
    bus: Option<&BusSection>,
    id: &str,
    limit: i64,
) -> Result<Value, StateError> {
    let found = state.trace(id, limit).await?;
    // Group by message, messages in the order of their first event.
    let mut order: Vec<String> = Vec::new();
    let mut by_message: BTreeMap<String, Vec<StoredTraceEvent>> = BTreeMap::new();
    for e in found.events {
        if !by_message.contains_key(&e.event.message_id) {
            order.push(e.event.message_id.clone());
        }
        by_message
            .entry(e.event.message_id.clone())
            .or_default()
            .push(e);
    }
    // Every produced record, asked of the cluster once for all groups.
    let produced: Vec<(String, String, i32, i64)> = order
        .iter()
        .flat_map(|m| by_message[m].iter())
        .filter(|e| e.event.stage == "produced")
        .filter_map(|e| {
            let d = &e.event.detail;
            Some((
                e.event.message_id.clone(),
                d["topic"].as_str()?.to_string(),
                i32::try_from(d["partition"].as_i64()?).ok()?,
                d["offset"].as_i64()?,
            ))
        })
        .collect();
    let mut consumed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let consumed_check = match bus {
        None => json!({ "asked": false }),
        Some(_) if produced.is_empty() => json!({ "asked": false }),
        Some(bus) => {
            let records: Vec<(String, i32, i64)> = produced
                .iter()
                .map(|(_, t, p, o)| (t.clone(), *p, *o))
                .collect();
            match hub_bus::consumed_by(bus, &records, CONSUMED_BUDGET).await {
                Ok(c) => {
                    for ((message_id, topic, partition, offset), groups) in
                        produced.iter().zip(c.groups)
                    {
                        for g in groups {
                            consumed.entry(message_id.clone()).or_default().push(json!({
                                "group": g.group, "topic": topic, "partition": partition,
                                "offset": offset, "committed": g.committed, "live": true,
                            }));
                        }
                    }
                    json!({
                        "asked": true,
                        "groups_listed": c.groups_listed,
                        "groups_checked": c.groups_checked,
                        "complete": c.groups_listed == c.groups_checked,
                    })
                }
                Err(e) => json!({ "asked": true, "code": e.code(), "error": e.to_string() }),
            }
        }
    };
    let messages: Vec<Value> = order
        .iter()
        .map(|m| {
            let events = &by_message[m];
            let first =
                |f: fn(&StoredTraceEvent) -> Option<&String>| events.iter().find_map(f).cloned();
            json!({
                "message_id": m,
                "correlation_id": first(|e| e.event.correlation_id.as_ref()),
                "object_id": first(|e| e.event.object_id.as_ref()),
                "events": events.iter().map(|e| json!({
                    "seq": e.seq,
                    "at": at_text(e.event.at_ms),
                    "at_ms": e.event.at_ms,
                    "stage": e.event.stage,
                    "actor": e.event.actor,
                    "detail": e.event.detail,
                })).collect::<Vec<_>>(),
                "consumed": consumed.remove(m).unwrap_or_default(),
            })
        })
        .collect();
    Ok(json!({
        "id": id,
        "found": !messages.is_empty(),
        "truncated": found.truncated,
        "messages": messages,
        "consumed_check": consumed_check,
    }))
}

/// A detail object as `key=value` pairs (nested objects as `key.sub=value`), nulls left out.
fn pairs(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                pairs(&key, x, out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push(format!("{prefix}={s}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// The answer of [`lookup`] as a table per message, Chinese and English headers.
pub fn human(answer: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for m in answer["messages"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "消息 / message {}  关联 / correlation {}  对象 / object {}\n",
            text(&m["message_id"]),
            text(&m["correlation_id"]),
            text(&m["object_id"]),
        ));
        out.push_str(&format!(
            "  {:<29}  {:<16} {:<28} 详情 / detail\n",
            "时间 / at", "环节 / stage", "执行者 / actor"
        ));
        for e in m["events"].as_array().into_iter().flatten() {
            let mut detail = Vec::new();
            pairs("", &e["detail"], &mut detail);
            out.push_str(&format!(
                "  {:<29}  {:<16} {:<28} {}\n",
                text(&e["at"]),
                text(&e["stage"]),
                text(&e["actor"]),
                detail.join(" ")
            ));
        }
        for c in m["consumed"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<29}  {:<16} {:<28} topic={} partition={} offset={} committed={}\n",
                "(实时 / live)",
                "consumed",
                text(&c["group"]),
                text(&c["topic"]),
                c["partition"],
                c["offset"],
                c["committed"],
            ));
        }
        out.push('\n');
    }
    let n = answer["messages"].as_array().map_or(0, Vec::len);
    out.push_str(&format!("共 {n} 条消息 / {n} message(s)"));
    if answer["truncated"] == Value::Bool(true) {
        out.push_str("（已截断 / truncated: use --limit）");
    }
    let check = &answer["consumed_check"];
    if check["asked"] == Value::Bool(true) {
        if let Some(code) = check["code"].as_str() {
            out.push_str(&format!(
                "\n消费者组未能查询 / consumer groups not asked: {code}"
            ));
        } else if check["complete"] == Value::Bool(false) {
            out.push_str(&format!(
                "\n消费者组仅查询了 {} / {} / consumer groups checked: {} of {}",
                check["groups_checked"],
                check["groups_listed"],
                check["groups_checked"],
                check["groups_listed"]
            ));
        }
    }
    out.push('\n');
    out
}
