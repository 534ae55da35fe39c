//! The monitoring files stay true to the code: every metric a Grafana dashboard
//! (`dashboards/grafana/*.json`) or a Prometheus alert rule (`dashboards/alerts/*.yml`) names
//! is one the hub (`hub::metrics::EXPORTED`) or a domain app (`app_kit::metrics::KIT`,
//! `hotline_app::metrics::HOTLINE`) describes; `docs/metrics.md` lists exactly those; the
//! names follow Prometheus conventions; every alert carries bilingual annotations and a
//! runbook link. (`promtool check rules` checks the rules' syntax in CI.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every described metric: name → (kind, labels).
fn described() -> BTreeMap<&'static str, (&'static str, Vec<&'static str>)> {
    let mut out = BTreeMap::new();
    for m in hub::metrics::EXPORTED {
        assert!(
            out.insert(m.name, (m.kind.as_str(), m.labels.to_vec()))
                .is_none(),
            "{} described twice",
            m.name
        );
    }
    for m in app_kit::metrics::KIT
        .iter()
        .chain(hotline_app::metrics::HOTLINE)
    {
        let kind = match m.kind {
            app_kit::metrics::Kind::Counter => "counter",
            app_kit::metrics::Kind::Gauge => "gauge",
            app_kit::metrics::Kind::Histogram => "histogram",
        };
        let mut labels = m.labels.to_vec();
        labels.push("app");
        assert!(
            out.insert(m.name, (kind, labels)).is_none(),
            "{} described twice",
            m.name
        );
    }
    out
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The metric names a PromQL expression (or a Grafana variable query) reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Grafana variables ($partner, ${DS}, $__rate_interval) and string literals go first.
    let mut s = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
                s.push_str("\"\"");
            }
            '$' => {
                if chars.peek() == Some(&'{') {
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                    }
                } else {
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                    {
                        chars.next();
                    }
                }
                s.push('0');
            }
            _ => s.push(c),
        }
    }
    // Label matchers, ranges and label lists of by/without/on/ignoring/group_*.
    let mut cleaned = String::new();
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth > 0 => {}
            _ => cleaned.push(c),
        }
    }
    let tokens = tokenize(&cleaned);
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let next = tokens.get(i + 1).map(String::as_str);
        let is_ident = t
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        if is_ident {
            if matches!(
                t.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) && next == Some("(")
            {
                // Skip the label list.
                while i < tokens.len() && tokens[i] != ")" {
                    i += 1;
                }
            } else if t == "label_values" && next == Some("(") {
                // label_values(metric, label): only the metric.
                if let Some(m) = tokens.get(i + 2) {
                    names.insert(m.clone());
                }
                while i < tokens.len() && tokens[i] != ")" {
                    i += 1;
                }
            } else if next != Some("(")
                && next != Some("by")
                && next != Some("without")
                && !KEYWORDS.contains(&t.as_str())
            {
                // Not a function or an aggregation (`sum by (…) (…)`): a metric.
                names.insert(t.clone());
            }
        }
        i += 1;
    }
    names
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Checks a name read by a query against the described metrics: histograms are read through
/// `_bucket`, `_sum` and `_count`.
fn check_name(
    described: &BTreeMap<&'static str, (&'static str, Vec<&'static str>)>,
    name: &str,
    wher: &str,
) -> Result<(), String> {
    if let Some((kind, _)) = described.get(name) {
        if *kind == "histogram" {
            return Err(format!(
                "{wher}: histogram `{name}` is read without _bucket/_sum/_count"
            ));
        }
        return Ok(());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if described.get(base).is_some_and(|(k, _)| *k == "histogram") {
                return Ok(());
            }
        }
    }
    Err(format!("{wher}: `{name}` is not a described metric"))
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo().join("dashboards/grafana");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((p, v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every `expr` of every target, and every variable query, of a dashboard.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("definition", Value::String(e)) => out.push(e.clone()),
                    _ => queries(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

/// Every `datasource` object of a dashboard that points at a data source.
fn datasources<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "datasource" && x.get("type").is_some_and(|t| t == "prometheus") {
                    out.push(x);
                } else {
                    datasources(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| datasources(x, out)),
        _ => {}
    }
}

#[test]
fn the_expression_reader_finds_metric_names_only() {
    let names = metric_names(
        r#"sum by (partner) (rate(hub_gateway_requests_total{outcome="rejected",route=~"$partner/.*"}[$__rate_interval])) / ignoring(x) histogram_quantile(0.95, sum by (le) (rate(hub_egress_delivery_seconds_bucket[5m]))) > 0.1 and hub_up == 0 unless time() - hub_audit_chain_verified_seconds > 3600"#,
    );
    let want: BTreeSet<String> = [
        "hub_gateway_requests_total",
        "hub_egress_delivery_seconds_bucket",
        "hub_up",
        "hub_audit_chain_verified_seconds",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
    assert_eq!(
        metric_names("label_values(hub_egress_breaker_open, partner)"),
        ["hub_egress_breaker_open".to_string()].into()
    );
    assert_eq!(metric_names("up == 0"), ["up".to_string()].into());
}

#[test]
fn described_metrics_follow_prometheus_conventions() {
    let forbidden = [
        "message_id",
        "ticket_no",
        "ticket",
        "id",
        "request_id",
        "nonce",
        "phone",
        "name",
        "job",
        "instance",
    ];
    for (name, (kind, labels)) in described() {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: not snake_case"
        );
        assert!(
            name.starts_with("hub_") || name.starts_with("app_") || name.starts_with("hotline_"),
            "{name}: no project prefix"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        if kind == "histogram" {
            // Base units, or a count of named things (Prometheus: the unit in plural form).
            assert!(
                ["_seconds", "_bytes", "_records", "_operations"]
                    .iter()
                    .any(|unit| name.ends_with(unit)),
                "{name}: a histogram in base units"
            );
        }
        for l in labels {
            assert!(
                !forbidden.contains(&l),
                "{name}: label `{l}` is unbounded, personal or reserved by Prometheus"
            );
        }
    }
}

#[test]
fn dashboards_read_only_described_metrics_through_the_datasource_variable() {
    let described = described();
    let all = dashboards();
    let titles: BTreeSet<&str> = all
        .iter()
        .map(|(p, _)| p.file_stem().unwrap().to_str().unwrap())
        .collect();
    for want in [
        "hub-overview",
        "hub-adapter",
        "hub-egress",
        "hub-kafka",
        "domain-apps",
    ] {
        assert!(titles.contains(want), "dashboard {want}.json is missing");
    }
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (path, d) in &all {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{file}: schemaVersion"
        );
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{file}: uid"
        );
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
            "{file}: no DS_PROMETHEUS data source variable"
        );
        let mut ds = Vec::new();
        datasources(d, &mut ds);
        assert!(!ds.is_empty(), "{file}: no Prometheus panels");
        for x in ds {
            assert_eq!(
                x["uid"], "${DS_PROMETHEUS}",
                "{file}: a panel bypasses the variable"
            );
        }
        let mut qs = Vec::new();
        queries(d, &mut qs);
        assert!(!qs.is_empty(), "{file}: no queries");
        for q in qs {
            let names = metric_names(&q);
            assert!(!names.is_empty(), "{file}: `{q}` reads no metric");
            for n in names {
                if let Err(e) = check_name(&described, &n, &file) {
                    problems.push(e);
                }
                used.insert(n);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every metric is on some dashboard.
    let unseen: Vec<&str> = described
        .iter()
        .filter(|(name, (kind, _))| {
            let direct = used.contains(**name);
            let hist = *kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| used.contains(&format!("{name}{s}")));
            !direct && !hist
        })
        .map(|(n, _)| *n)
        .collect();
    assert!(
        unseen.is_empty(),
        "described metrics no dashboard shows: {unseen:?}"
    );
}

/// `(alert name, expr, annotations)` of a rules file of this repository's layout.
fn alerts(text: &str) -> Vec<(String, String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut in_annotations = None;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(a) = t.strip_prefix("- alert:") {
            out.push((a.trim().to_string(), String::new(), BTreeMap::new()));
            in_annotations = None;
        } else if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            let expr = if e == "|" || e == ">" {
                let mut block = Vec::new();
                while i + 1 < lines.len() {
                    let n = lines[i + 1];
                    let nt = n.trim_start();
                    if !nt.is_empty() && n.len() - nt.len() <= indent {
                        break;
                    }
                    block.push(nt);
                    i += 1;
                }
                block.join(" ")
            } else {
                e.to_string()
            };
            if let Some(last) = out.last_mut() {
                last.1 = expr;
            }
        } else if t == "annotations:" {
            in_annotations = Some(indent);
        } else if let Some(ai) = in_annotations {
            if indent <= ai || t.is_empty() {
                in_annotations = None;
            } else if let Some((k, v)) = t.split_once(':') {
                if let Some(last) = out.last_mut() {
                    last.2
                        .insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
                }
            }
        }
        i += 1;
    }
    out
}

/// The anchors of docs/operations.md's headings, as GitHub makes them: lower case, spaces to
/// hyphens, punctuation other than hyphens dropped.
fn operations_sections() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    text.lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn alert_rules_read_described_metrics_and_explain_themselves() {
    let described = described();
    let dir = repo().join("dashboards/alerts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|p| p.ends_with("hub.rules.yml")));
    let sections = operations_sections();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for f in files {
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let rules = alerts(&text);
        assert!(!rules.is_empty(), "{file}: no alerts");
        for (alert, expr, ann) in rules {
            assert!(names.insert(alert.clone()), "alert {alert} defined twice");
            let wher = format!("{file} {alert}");
            assert!(!expr.is_empty(), "{wher}: no expr");
            for n in metric_names(&expr) {
                if let Err(e) = check_name(&described, &n, &wher) {
                    problems.push(e);
                }
            }
            for key in ["summary", "description"] {
                let v = ann.get(key).unwrap_or_else(|| panic!("{wher}: no {key}"));
                let (zh, en) = v
                    .split_once("/ ")
                    .unwrap_or_else(|| panic!("{wher}: {key} is not `中文 / English`"));
                assert!(
                    zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{wher}: {key} does not start in Chinese"
                );
                assert!(
                    en.chars().any(|c| c.is_ascii_alphabetic()),
                    "{wher}: {key} has no English"
                );
            }
            let runbook = ann.get("runbook").map(String::as_str).unwrap_or_default();
            let anchor = runbook
                .strip_prefix("docs/operations.md#")
                .unwrap_or_default();
            assert!(
                sections.contains(anchor),
                "{wher}: runbook `{runbook}` is not a section of docs/operations.md \
                 (its sections: {sections:?})"
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for required in [
        "HubPartnerBreakerOpen",
        "HubPartnerAllAttemptsFailing",
        "HubDeadLettersGrowing",
        "HubConsumerLagGrowing",
        "HubIngressErrorRatioHigh",
        "HubPollerLagHigh",
        "HubTlsCertificateExpiresSoon",
        "HubAuditChainBroken",
    ] {
        assert!(names.contains(required), "alert {required} is missing");
    }
}

#[test]
fn docs_metrics_lists_every_described_metric_and_no_other() {
    let described = described();
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let mut listed = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | meaning |
        if cells.len() >= 5 {
            if let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
                if described.contains_key(name) || name.contains('_') {
                    listed.insert(
                        name.to_string(),
                        (cells[2].to_string(), cells[3].to_string()),
                    );
                }
            }
        }
    }
    for (name, (kind, labels)) in &described {
        let (k, l) = listed
            .get(*name)
            .unwrap_or_else(|| panic!("docs/metrics.md: `{name}` is not in a table"));
        assert_eq!(k, kind, "docs/metrics.md: type of `{name}`");
        let doc_labels: BTreeSet<&str> = l
            .split(',')
            .map(|x| x.trim().trim_matches('`'))
            .filter(|x| !x.is_empty() && *x != "—")
            .collect();
        let want: BTreeSet<&str> = labels.iter().copied().collect();
        assert_eq!(doc_labels, want, "docs/metrics.md: labels of `{name}`");
    }
    for name in listed.keys() {
        assert!(
            described.contains_key(name.as_str()),
            "docs/metrics.md lists `{name}`, which nothing describes"
        );
    }
}
