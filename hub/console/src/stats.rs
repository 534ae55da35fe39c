//! The console's numbers: the hub's own metrics (the Prometheus text `/metrics` serves,
//! parsed back) and a ring of snapshots of the counters, one every [`SAMPLE_EVERY`] for the
//! last minutes and one a minute for the last day. Rates are per minute over the last minute;
//! hour and day totals are differences from the snapshot that old, or the counts since this
//! replica started when it is younger. They are this replica's numbers only: the cluster's
//! are in Grafana.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

/// How often the counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const RATE_WINDOW_MS: i64 = 60_000;
const FINE_KEEP_MS: i64 = 3 * 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The counters kept in history (gauges are read live only).
const COUNTERS: &[&str] = &[
    "hub_gateway_requests_total",
    "hub_bus_produced_total",
    "hub_egress_messages_total",
    "hub_egress_retries_total",
    "hub_egress_dead_letters_total",
    "hub_poller_items_total",
    "hub_poller_runs_total",
];

/// One sample of the text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Parses the Prometheus text exposition format (comments skipped, histogram buckets kept
/// as their own names).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: Vec::new(),
                value: v.split_whitespace().next()?.parse().ok()?,
            });
        }
    };
    // Labels: key="value" pairs, values with \" \\ \n escapes.
    let mut labels = Vec::new();
    let chars: Vec<char> = rest[1..].chars().collect();
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i] == ',' || chars[i] == ' ') {
            i += 1;
        }
        if i >= chars.len() {
            return None;
        }
        if chars[i] == '}' {
            i += 1;
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        i += 1;
        if chars.get(i) != Some(&'"') {
            return None;
        }
        i += 1;
        let mut value = String::new();
        while i < chars.len() && chars[i] != '"' {
            if chars[i] == '\\' && i + 1 < chars.len() {
                i += 1;
                value.push(match chars[i] {
                    'n' => '\n',
                    c => c,
                });
            } else {
                value.push(chars[i]);
            }
            i += 1;
        }
        i += 1;
        labels.push((key.trim().to_string(), value));
    }
    let tail: String = chars[i..].iter().collect();
    let value = tail.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[derive(Debug, Clone)]
struct Snapshot {
    at_ms: i64,
    samples: Vec<Sample>,
}

/// The history of counters.
pub(crate) struct Stats {
    started_ms: i64,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    fine: VecDeque<Snapshot>,
    minutes: VecDeque<Snapshot>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            started_ms: now_ms(),
            history: Mutex::new(History::default()),
        }
    }

    /// Keeps the counters of `text` (rendered metrics) as a snapshot taken now.
    pub(crate) fn record(&self, text: &str) {
        self.record_at(text, now_ms());
    }

    fn record_at(&self, text: &str, at_ms: i64) {
        let samples: Vec<Sample> = parse(text)
            .into_iter()
            .filter(|s| COUNTERS.contains(&s.name.as_str()))
            .collect();
        let snap = Snapshot { at_ms, samples };
        let mut h = self.history.lock().expect("not poisoned");
        if h.minutes.back().is_none_or(|m| at_ms - m.at_ms >= 60_000) {
            h.minutes.push_back(snap.clone());
        }
        h.fine.push_back(snap);
        while h.fine.len() > 2 && h.fine[1].at_ms < at_ms - FINE_KEEP_MS {
            h.fine.pop_front();
        }
        while h.minutes.len() > 2 && h.minutes[1].at_ms < at_ms - DAY_MS {
            h.minutes.pop_front();
        }
    }

    /// The overview (`GET /console/api/overview`) from the metrics `text` rendered now.
    pub(crate) fn overview(&self, text: &str, topology: &crate::Topology) -> Value {
        self.overview_at(text, topology, now_ms())
    }

    fn overview_at(&self, text: &str, topology: &crate::Topology, now: i64) -> Value {
        let current = parse(text);
        let h = self.history.lock().expect("not poisoned");
        // The newest snapshot at least `age` old; `None` when the replica is younger (the
        // counters started at zero with it).
        let older_than = |age: i64| -> Option<&Snapshot> {
            h.fine
                .iter()
                .rev()
                .chain(h.minutes.iter().rev())
                .filter(|s| s.at_ms <= now - age)
                .max_by_key(|s| s.at_ms)
        };
        let hour_base = older_than(HOUR_MS);
        let day_base = older_than(DAY_MS);
        // The rate's base: about a minute ago, or the oldest sample at least 5 s old.
        let rate_base = older_than(RATE_WINDOW_MS).or_else(|| {
            h.fine
                .iter()
                .find(|s| s.at_ms <= now - SAMPLE_EVERY.as_millis() as i64)
        });
        let uptime_ms = (now - self.started_ms).max(0);
        let m = Measurer {
            current: &current,
            hour: hour_base,
            day: day_base,
            rate: rate_base,
            now,
        };

        let gateway = "hub_gateway_requests_total";
        let items = "hub_poller_items_total";
        let produced = "hub_bus_produced_total";
        let finished = "hub_egress_messages_total";

        // Every partner, topic, route and pull this replica knows of or has counted.
        let mut partners: BTreeSet<String> = topology.ingress_partners.iter().cloned().collect();
        let mut topics: BTreeSet<String> = BTreeSet::new();
        let mut routes: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut pulls: BTreeMap<String, (String, String)> = BTreeMap::new();
        for f in &topology.routes {
            routes.insert(f.route.clone(), (f.partner.clone(), f.topic.clone()));
            topics.insert(f.topic.clone());
        }
        for f in &topology.pulls {
            pulls.insert(f.route.clone(), (f.partner.clone(), f.topic.clone()));
            partners.insert(f.partner.clone());
            topics.insert(f.topic.clone());
        }
        for s in &current {
            match s.name.as_str() {
                n if n == gateway => {
                    partners.insert(s.label("partner").to_string());
                }
                n if n == produced => {
                    topics.insert(s.label("topic").to_string());
                }
                n if n == finished => {
                    let r = s.label("route").to_string();
                    let partner = r.split('/').next().unwrap_or_default().to_string();
                    routes.entry(r).or_insert((partner, String::new()));
                }
                _ => {}
            }
        }
        partners.remove("");
        topics.remove("");

        let partner_rows: Vec<Value> = partners
            .iter()
            .map(|p| {
                let ok = m.edge(
                    |s| {
                        (s.name == gateway
                            && s.label("partner") == p
                            && s.label("outcome") != "rejected")
                            || (s.name == items
                                && pull_partner(s.label("pull")) == p
                                && s.label("outcome") != "dead_lettered")
                    },
                    |s| {
                        (s.name == gateway
                            && s.label("partner") == p
                            && s.label("outcome") == "rejected")
                            || (s.name == items
                                && pull_partner(s.label("pull")) == p
                                && s.label("outcome") == "dead_lettered")
                    },
                );
                json!({ "partner": p, "ingress": ok, "breaker": breaker(&current, p) })
            })
            .collect();
        let topic_rows: Vec<Value> = topics
            .iter()
            .map(|t| {
                let e = m.edge(
                    |s| s.name == produced && s.label("topic") == t && s.label("outcome") == "ok",
                    |s| s.name == produced && s.label("topic") == t && s.label("outcome") != "ok",
                );
                json!({ "topic": t, "produced": e })
            })
            .collect();
        let route_rows: Vec<Value> = routes
            .iter()
            .map(|(r, (partner, topic))| {
                let e = m.edge(
                    |s| {
                        s.name == finished
                            && s.label("route") == r
                            && s.label("outcome") == "delivered"
                    },
                    |s| {
                        s.name == finished
                            && s.label("route") == r
                            && s.label("outcome") == "dead_lettered"
                    },
                );
                let retries =
                    m.measure(|s| s.name == "hub_egress_retries_total" && s.label("route") == r);
                let held = gauge(&current, "hub_egress_held_messages", "route", r);
                json!({
                    "route": r, "partner": partner, "topic": topic, "deliveries": e,
                    "retries": retries, "held": held, "breaker": breaker(&current, partner),
                })
            })
            .collect();
        let pull_rows: Vec<Value> = pulls
            .iter()
            .map(|(r, (partner, topic))| {
                let e = m.edge(
                    |s| {
                        s.name == items
                            && s.label("pull") == r
                            && s.label("outcome") != "dead_lettered"
                    },
                    |s| {
                        s.name == items
                            && s.label("pull") == r
                            && s.label("outcome") == "dead_lettered"
                    },
                );
                json!({
                    "pull": r, "partner": partner, "topic": topic, "items": e,
                    "lag_seconds": gauge(&current, "hub_poller_lag_seconds", "pull", r),
                })
            })
            .collect();

        // The flow picture: partners → hub → topics → delivery routes.
        let mut nodes = vec![json!({ "id": "hub", "kind": "hub", "name": "hub" })];
        let mut edges = Vec::new();
        for row in &partner_rows {
            let p = row["partner"].as_str().unwrap_or_default();
            nodes.push(json!({ "id": format!("in:{p}"), "kind": "partner", "name": p }));
            edges.push(
                json!({ "source": format!("in:{p}"), "target": "hub", "flow": row["ingress"] }),
            );
        }
        for row in &topic_rows {
            let t = row["topic"].as_str().unwrap_or_default();
            nodes.push(json!({ "id": format!("topic:{t}"), "kind": "topic", "name": t }));
            edges.push(
                json!({ "source": "hub", "target": format!("topic:{t}"), "flow": row["produced"] }),
            );
        }
        for row in &route_rows {
            let r = row["route"].as_str().unwrap_or_default();
            let t = row["topic"].as_str().unwrap_or_default();
            nodes.push(json!({ "id": format!("out:{r}"), "kind": "route", "name": r }));
            let source = if t.is_empty() || !topics.contains(t) {
                "hub".to_string()
            } else {
                format!("topic:{t}")
            };
            edges.push(json!({ "source": source, "target": format!("out:{r}"), "flow": row["deliveries"] }));
        }

        let sum_of = |rows: &[Value], key: &str, part: &str, window: &str| -> f64 {
            rows.iter()
                .map(|r| r[key][part][window].as_f64().unwrap_or(0.0))
                .sum()
        };
        let totals = |window: &str| {
            json!({
                "ingress_ok": sum_of(&partner_rows, "ingress", "ok", window),
                "ingress_rejected": sum_of(&partner_rows, "ingress", "errors", window),
                "produced": sum_of(&topic_rows, "produced", "ok", window),
                "delivered": sum_of(&route_rows, "deliveries", "ok", window),
                "dead_lettered": sum_of(&route_rows, "deliveries", "errors", window),
            })
        };
        json!({
            "scope": "replica",
            "scope_zh": "本副本自启动以来的计数（集群总览请看 Grafana）",
            "scope_en": "this replica's counts since it started (for the cluster, use Grafana)",
            "started_at_ms": self.started_ms,
            "uptime_seconds": uptime_ms / 1_000,
            "hour_since_start": hour_base.is_none(),
            "day_since_start": day_base.is_none(),
            "rate_window_seconds": rate_base.map(|b| (now - b.at_ms) / 1_000),
            "totals": {
                "since_start": totals("since_start"),
                "hour": totals("hour"),
                "day": totals("day"),
            },
            "partners": partner_rows,
            "topics": topic_rows,
            "routes": route_rows,
            "pulls": pull_rows,
            "graph": { "nodes": nodes, "edges": edges },
        })
    }
}

fn pull_partner(pull: &str) -> &str {
    pull.split('/').next().unwrap_or_default()
}

/// `open` (gauge 1: open or half-open), `closed` (0) or `unknown` (no delivery yet).
pub fn breaker(samples: &[Sample], partner: &str) -> &'static str {
    match samples
        .iter()
        .find(|s| s.name == "hub_egress_breaker_open" && s.label("partner") == partner)
    {
        Some(s) if s.value > 0.0 => "open",
        Some(_) => "closed",
        None => "unknown",
    }
}

/// The value of gauge `name` whose `key` label is `value`, if recorded.
pub fn gauge(samples: &[Sample], name: &str, key: &str, value: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.label(key) == value)
        .map(|s| s.value)
}

struct Measurer<'a> {
    current: &'a [Sample],
    hour: Option<&'a Snapshot>,
    day: Option<&'a Snapshot>,
    rate: Option<&'a Snapshot>,
    now: i64,
}

fn total(samples: &[Sample], pred: &dyn Fn(&Sample) -> bool) -> f64 {
    samples.iter().filter(|s| pred(s)).map(|s| s.value).sum()
}

impl Measurer<'_> {
    /// A counter sum: since start, last hour, last day, per minute.
    fn measure(&self, pred: impl Fn(&Sample) -> bool) -> Value {
        let now = total(self.current, &pred);
        let since = |base: Option<&Snapshot>| now - base.map_or(0.0, |b| total(&b.samples, &pred));
        let per_minute = self.rate.map(|b| {
            let secs = ((self.now - b.at_ms) as f64 / 1_000.0).max(1.0);
            ((now - total(&b.samples, &pred)).max(0.0) * 60.0 / secs * 100.0).round() / 100.0
        });
        json!({
            "since_start": now,
            "hour": since(self.hour).max(0.0),
            "day": since(self.day).max(0.0),
            "per_minute": per_minute,
        })
    }

    /// An edge of the flow: what went through and what failed, with the error ratio over the
    /// rate window (or since start when nothing moved in it).
    fn edge(&self, ok: impl Fn(&Sample) -> bool, err: impl Fn(&Sample) -> bool) -> Value {
        let ok = self.measure(ok);
        let errors = self.measure(err);
        let ratio = |window: &str| {
            let (o, e) = (
                ok[window].as_f64().unwrap_or(0.0),
                errors[window].as_f64().unwrap_or(0.0),
            );
            (o + e > 0.0).then(|| (e / (o + e) * 1_000.0).round() / 1_000.0)
        };
        let error_ratio = ratio("per_minute").or_else(|| ratio("since_start"));
        let per_minute = match (ok["per_minute"].as_f64(), errors["per_minute"].as_f64()) {
            (Some(a), Some(b)) => Some(((a + b) * 100.0).round() / 100.0),
            _ => None,
        };
        json!({ "ok": ok, "errors": errors, "per_minute": per_minute, "error_ratio": error_ratio })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP hub_gateway_requests_total x\n\
        # TYPE hub_gateway_requests_total counter\n\
        hub_gateway_requests_total{partner=\"hotline12345\",route=\"hotline12345/dispatch_json\",outcome=\"accepted\",code=\"ACCEPTED\"} 8\n\
        hub_gateway_requests_total{partner=\"hotline12345\",route=\"hotline12345/dispatch_json\",outcome=\"rejected\",code=\"AUTH_SIGNATURE_INVALID\"} 2\n\
        hub_bus_produced_total{topic=\"hotline.ticket.dispatched.v1\",outcome=\"ok\"} 8\n\
        hub_egress_messages_total{route=\"hotline12345/sign\",outcome=\"delivered\"} 3\n\
        hub_egress_messages_total{route=\"hotline12345/sign\",outcome=\"dead_lettered\"} 1\n\
        hub_egress_breaker_open{partner=\"hotline12345\"} 0\n\
        hub_poller_lag_seconds{pull=\"hotline12345/pull.tickets\"} 42.5\n\
        odd{a=\"x\\\"y\"} 1\n";

    #[test]
    fn the_text_format_is_parsed_with_labels_and_escapes() {
        let s = parse(TEXT);
        assert_eq!(s.len(), 8);
        assert_eq!(s[0].label("code"), "ACCEPTED");
        assert_eq!(s[0].value, 8.0);
        assert_eq!(s[7].label("a"), "x\"y");
        assert_eq!(breaker(&s, "hotline12345"), "closed");
        assert_eq!(breaker(&s, "other"), "unknown");
        assert_eq!(
            gauge(
                &s,
                "hub_poller_lag_seconds",
                "pull",
                "hotline12345/pull.tickets"
            ),
            Some(42.5)
        );
    }

    #[test]
    fn rates_and_windows_come_from_the_snapshots() {
        let stats = Stats::new();
        let t0 = stats.started_ms;
        let topology = crate::Topology {
            ingress_partners: vec!["hotline12345".into()],
            routes: vec![crate::Flow {
                route: "hotline12345/sign".into(),
                partner: "hotline12345".into(),
                topic: "hotline.ticket.signed.v1".into(),
            }],
            pulls: vec![],
        };
        stats.record_at("", t0);
        let v = stats.overview_at(TEXT, &topology, t0 + 30_000);
        let p = &v["partners"][0];
        assert_eq!(p["partner"], "hotline12345");
        assert_eq!(p["ingress"]["ok"]["since_start"], 8.0);
        assert_eq!(p["ingress"]["errors"]["hour"], 2.0);
        // 10 pushes in 30 s: 20 a minute, 20 % refused.
        assert_eq!(p["ingress"]["per_minute"], 20.0);
        assert_eq!(p["ingress"]["error_ratio"], 0.2);
        assert_eq!(v["hour_since_start"], true);
        let r = &v["routes"][0];
        assert_eq!(r["deliveries"]["ok"]["since_start"], 3.0);
        assert_eq!(r["breaker"], "closed");
        assert_eq!(v["totals"]["since_start"]["dead_lettered"], 1.0);
        // The route reads a topic nothing produced to yet: drawn from the topic anyway.
        let edges = v["graph"]["edges"].as_array().unwrap();
        assert!(edges
            .iter()
            .any(|e| e["source"] == "topic:hotline.ticket.signed.v1"
                && e["target"] == "out:hotline12345/sign"));
        assert!(edges
            .iter()
            .any(|e| e["source"] == "in:hotline12345" && e["target"] == "hub"));

        // Two hours later, with a snapshot an hour old: the hour is the difference.
        stats.record_at(TEXT, t0 + 3_600_000);
        let later = TEXT.replace(
            "outcome=\"accepted\",code=\"ACCEPTED\"} 8",
            "outcome=\"accepted\",code=\"ACCEPTED\"} 20",
        );
        let v = stats.overview_at(&later, &topology, t0 + 2 * 3_600_000);
        assert_eq!(v["partners"][0]["ingress"]["ok"]["hour"], 12.0);
        assert_eq!(v["partners"][0]["ingress"]["ok"]["since_start"], 20.0);
        assert_eq!(v["hour_since_start"], false);
        assert_eq!(v["day_since_start"], true);
    }
}
