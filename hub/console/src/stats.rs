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
/// How often the cluster's consumer groups (the domain apps) are sampled.
pub const APPS_EVERY: Duration = Duration::from_secs(15);
/// At most this many groups that are not the hub's own are asked about per sample…
pub const APPS_MAX_GROUPS: usize = 50;
/// …within this long.
pub const APPS_BUDGET: Duration = Duration::from_secs(5);
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
    apps: Mutex<AppHistory>,
}

/// One sample of the consumer groups that are not the hub's own.
#[derive(Debug, Clone)]
struct AppSnapshot {
    at_ms: i64,
    groups: Vec<hub_bus::AppGroup>,
}

#[derive(Default)]
struct AppHistory {
    snaps: VecDeque<AppSnapshot>,
    /// When the last sample was tried, and why it failed if it did.
    tried_at_ms: Option<i64>,
    error: Option<String>,
    groups_skipped: usize,
    groups_unchecked: usize,
}

/// Records consumed per minute between two samples `(at_ms, committed offsets summed)`: the
/// growth of the committed offsets over the time between them (a reset offset counts as 0).
/// `None` when `after` is not later than `before`.
pub fn consumption_per_minute(before: (i64, i64), after: (i64, i64)) -> Option<f64> {
    let secs = (after.0 - before.0) as f64 / 1_000.0;
    if secs <= 0.0 {
        return None;
    }
    let consumed = (after.1 - before.1).max(0) as f64;
    Some((consumed * 60.0 / secs * 100.0).round() / 100.0)
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
            apps: Mutex::new(AppHistory::default()),
        }
    }

    /// Keeps a sample of the cluster's consumer groups (or why it failed) taken now.
    pub(crate) fn record_apps(&self, sample: Result<hub_bus::AppGroups, String>) {
        self.record_apps_at(sample, now_ms());
    }

    fn record_apps_at(&self, sample: Result<hub_bus::AppGroups, String>, at_ms: i64) {
        let mut h = self.apps.lock().expect("not poisoned");
        h.tried_at_ms = Some(at_ms);
        match sample {
            Ok(found) => {
                h.error = None;
                h.groups_skipped = found.groups_skipped;
                h.groups_unchecked = found
                    .groups_listed
                    .saturating_sub(found.groups_skipped)
                    .saturating_sub(found.groups_checked);
                h.snaps.push_back(AppSnapshot {
                    at_ms,
                    groups: found.groups,
                });
                while h.snaps.len() > 2 && h.snaps[1].at_ms < at_ms - FINE_KEEP_MS {
                    h.snaps.pop_front();
                }
            }
            Err(e) => h.error = Some(e),
        }
    }

    /// The apps' rows: for each group of the newest sample, its topics with committed offsets,
    /// lag and consumption per minute (against the sample about a minute older, or the oldest
    /// kept when there is none that old).
    fn app_rows(&self) -> (Vec<Value>, Value) {
        let h = self.apps.lock().expect("not poisoned");
        let status = json!({
            "sampled_at_ms": h.snaps.back().map(|s| s.at_ms),
            "tried_at_ms": h.tried_at_ms,
            "error": h.error,
            "groups_skipped": h.groups_skipped,
            "groups_unchecked": h.groups_unchecked,
            "every_seconds": APPS_EVERY.as_secs(),
        });
        let Some(newest) = h.snaps.back() else {
            return (Vec::new(), status);
        };
        let base = h
            .snaps
            .iter()
            .rev()
            .find(|s| s.at_ms <= newest.at_ms - RATE_WINDOW_MS)
            .or_else(|| h.snaps.front().filter(|s| s.at_ms < newest.at_ms));
        let rows = newest
            .groups
            .iter()
            .map(|g| {
                let topics: Vec<Value> = g
                    .topics
                    .iter()
                    .map(|t| {
                        let before = base.and_then(|b| {
                            b.groups
                                .iter()
                                .find(|x| x.group == g.group)?
                                .topics
                                .iter()
                                .find(|x| x.topic == t.topic)
                                .map(|x| (b.at_ms, x.committed))
                        });
                        let per_minute = before
                            .and_then(|b| consumption_per_minute(b, (newest.at_ms, t.committed)));
                        json!({
                            "topic": t.topic, "partitions": t.partitions,
                            "committed": t.committed, "high_watermark": t.high_watermark,
                            "lag": t.lag, "per_minute": per_minute,
                        })
                    })
                    .collect();
                let sum = |key: &str| -> Option<f64> {
                    topics.iter().map(|t| t[key].as_f64()).sum::<Option<f64>>()
                };
                json!({
                    "group": g.group, "topics": topics,
                    "lag": sum("lag"), "per_minute": sum("per_minute"),
                })
            })
            .collect();
        (rows, status)
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

        let (app_rows, apps_status) = self.app_rows();

        // The flow picture: partners → hub → topics → delivery routes and domain apps.
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
        // Domain apps: a node per consumer group, an edge from each topic it committed on.
        let mut extra_topics: BTreeSet<String> = BTreeSet::new();
        for row in &app_rows {
            let g = row["group"].as_str().unwrap_or_default();
            nodes.push(json!({ "id": format!("app:{g}"), "kind": "app", "name": g }));
            for t in row["topics"].as_array().into_iter().flatten() {
                let topic = t["topic"].as_str().unwrap_or_default();
                if !topics.contains(topic) && extra_topics.insert(topic.to_string()) {
                    nodes.push(
                        json!({ "id": format!("topic:{topic}"), "kind": "topic", "name": topic }),
                    );
                }
                edges.push(json!({
                    "source": format!("topic:{topic}"), "target": format!("app:{g}"),
                    "kind": "consumption",
                    "consumption": { "per_minute": t["per_minute"], "lag": t["lag"] },
                }));
            }
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
            "apps": app_rows,
            "apps_status": apps_status,
            "apps_note_zh": "业务应用（非枢纽的消费者组）在向 Kafka 提交消费位点后才会出现；速率为位点每分钟的增长，积压为高水位减已提交位点（整个集群的数字）",
            "apps_note_en": "domain apps (consumer groups not the hub's own) appear once they commit offsets to Kafka; the rate is the growth of their committed offsets per minute, the lag the high watermark minus the committed offset (cluster-wide numbers)",
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

    #[test]
    fn consumption_is_the_growth_of_committed_offsets_per_minute() {
        // 30 records in 15 s: 120 a minute.
        assert_eq!(consumption_per_minute((0, 100), (15_000, 130)), Some(120.0));
        assert_eq!(consumption_per_minute((0, 100), (60_000, 100)), Some(0.0));
        // An offset reset is not negative consumption.
        assert_eq!(consumption_per_minute((0, 100), (60_000, 10)), Some(0.0));
        assert_eq!(consumption_per_minute((5_000, 1), (5_000, 9)), None);
    }

    fn app(group: &str, topic: &str, committed: i64, high: i64) -> hub_bus::AppGroups {
        hub_bus::AppGroups {
            groups: vec![hub_bus::AppGroup {
                group: group.into(),
                topics: vec![hub_bus::AppTopic {
                    topic: topic.into(),
                    partitions: 2,
                    committed,
                    high_watermark: Some(high),
                    lag: Some(hub_bus::partition_lag(committed, 0, high)),
                }],
            }],
            groups_listed: 3,
            groups_skipped: 0,
            groups_checked: 1,
        }
    }

    #[test]
    fn apps_are_drawn_from_their_topics_with_rate_and_lag() {
        let stats = Stats::new();
        let t0 = stats.started_ms;
        let topology = crate::Topology::default();
        let topic = "hotline.ticket.dispatched.v1";
        // Before any sample: no apps, said so.
        let v = stats.overview_at("", &topology, t0);
        assert_eq!(v["apps"].as_array().unwrap().len(), 0);
        assert_eq!(v["apps_status"]["sampled_at_ms"], Value::Null);

        stats.record_apps_at(Ok(app("hotline-app", topic, 100, 110)), t0);
        let v = stats.overview_at("", &topology, t0 + 1_000);
        // One sample: the lag is known, the rate not yet.
        assert_eq!(v["apps"][0]["group"], "hotline-app");
        assert_eq!(v["apps"][0]["lag"], 10.0);
        assert_eq!(v["apps"][0]["per_minute"], Value::Null);

        stats.record_apps_at(Err("broker away".into()), t0 + 15_000);
        stats.record_apps_at(Ok(app("hotline-app", topic, 130, 132)), t0 + 30_000);
        let v = stats.overview_at("", &topology, t0 + 31_000);
        assert_eq!(v["apps_status"]["error"], Value::Null);
        let a = &v["apps"][0];
        assert_eq!(a["topics"][0]["per_minute"], 60.0);
        assert_eq!(a["topics"][0]["lag"], 2);
        assert_eq!(a["per_minute"], 60.0);
        let nodes = v["graph"]["nodes"].as_array().unwrap();
        assert!(nodes
            .iter()
            .any(|n| n["id"] == "app:hotline-app" && n["kind"] == "app"));
        // The topic is drawn even though this replica produced nothing to it.
        assert!(nodes.iter().any(|n| n["id"] == format!("topic:{topic}")));
        let edge = v["graph"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["target"] == "app:hotline-app")
            .unwrap()
            .clone();
        assert_eq!(edge["source"], format!("topic:{topic}"));
        assert_eq!(edge["consumption"]["per_minute"], 60.0);
        assert_eq!(edge["consumption"]["lag"], 2);

        // A failed sample keeps the last one and says why.
        stats.record_apps_at(Err("broker away".into()), t0 + 45_000);
        let v = stats.overview_at("", &topology, t0 + 46_000);
        assert_eq!(v["apps_status"]["error"], "broker away");
        assert_eq!(v["apps"][0]["group"], "hotline-app");
    }
}
