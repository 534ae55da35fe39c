//! The harness's results: one row per scenario and level, the per-stage table, ratios to the
//! ceilings of the same run, the project's targets (reported, never asserted), and the checks
//! that say whether the run itself worked. Rendered as markdown and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::loadgen::LoadResult;
use crate::stages::Stage;
use crate::stats::{Latencies, ProcUsage};

/// One measured scenario at one level.
#[derive(Debug)]
pub struct Row {
    /// `ceiling-http`, `ceiling-produce`, `plain-pipeline`, `ingest-1k`, `ingest-1k-xml-gbk`,
    /// `broker-open`.
    pub scenario: String,
    /// `closed c=64`, `open 5000/s c=256`, `burst n=100000`.
    pub shape: String,
    pub closed_connections: Option<usize>,
    pub open_loop: bool,
    /// Requests sent, including the warm-up.
    pub sent: u64,
    /// Not answered 200 / not acknowledged, including the warm-up, by status (0: no answer).
    pub failures: BTreeMap<u16, u64>,
    pub measured: u64,
    pub window_s: f64,
    pub rate: f64,
    pub latencies: Latencies,
    /// The process under test: `hub`, `http-sink`, `plain-pipeline`, or `hub-bench`
    /// (in-process producer).
    pub sut: &'static str,
    pub sut_usage: Option<ProcUsage>,
    /// The load generator (this process), when it is not the process under test.
    pub generator: Option<ProcUsage>,
    pub broker: Option<ProcUsage>,
    /// Requests signed during the window because the pre-signed pool ran out.
    pub signed_live: u64,
    pub presigned: usize,
    /// Rate divided by the ceiling it is compared with, and that ceiling.
    pub ratio: Option<(f64, f64)>,
}

impl Row {
    pub fn from_load(
        scenario: &str,
        shape: String,
        warmup: &LoadResult,
        window: &LoadResult,
        sut: &'static str,
    ) -> Self {
        let mut failures = BTreeMap::new();
        for r in [warmup, window] {
            for (k, v) in &r.statuses {
                *failures.entry(*k).or_default() += v;
            }
            if r.errors > 0 {
                *failures.entry(0).or_default() += r.errors;
            }
        }
        Self {
            scenario: scenario.into(),
            shape,
            closed_connections: None,
            open_loop: false,
            sent: warmup.sent + window.sent,
            failures,
            measured: window.measured,
            window_s: window.window.as_secs_f64(),
            rate: window.rate(),
            latencies: window.latencies.clone(),
            sut,
            sut_usage: None,
            generator: None,
            broker: None,
            signed_live: 0,
            presigned: 0,
            ratio: None,
        }
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn cpu_us_per_request(&self) -> Option<f64> {
        let u = self.sut_usage?;
        (self.measured > 0).then(|| u.cpu_s * 1e6 / self.measured as f64)
    }

    fn to_json(&self) -> Value {
        let usage = |u: &Option<ProcUsage>| {
            u.map(|u| {
                json!({ "cpu_s": u.cpu_s, "system_cpu_s": u.system_s, "cores": u.cores, "peak_rss_mb": u.peak_rss_mb,
                        "peak_is_windowed": u.peak_is_windowed })
            })
        };
        let l = &self.latencies;
        json!({
            "scenario": self.scenario, "shape": self.shape,
            "connections": self.closed_connections, "open_loop": self.open_loop,
            "sent_including_warmup": self.sent,
            "failures_by_status": self.failures.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "measured": self.measured, "window_s": self.window_s, "per_s": self.rate,
            "p50_ms": l.ms(0.5), "p90_ms": l.ms(0.9), "p99_ms": l.ms(0.99), "max_ms": l.ms(1.0),
            "sut": self.sut, "sut_usage": usage(&self.sut_usage),
            "sut_cpu_us_per_request": self.cpu_us_per_request(),
            "generator_usage": usage(&self.generator), "broker_usage": usage(&self.broker),
            "presigned": self.presigned, "signed_live_in_window": self.signed_live,
            "ratio": self.ratio.map(|r| r.0), "ratio_ceiling_per_s": self.ratio.map(|r| r.1),
        })
    }
}

/// The project's targets, as this run stands against them (information, not a verdict).
#[derive(Debug, Default)]
pub struct Targets {
    pub lines: Vec<String>,
    pub json: BTreeMap<String, Value>,
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Report {
    pub meta: BTreeMap<String, Value>,
    pub rows: Vec<Row>,
    pub stages: Vec<Stage>,
    /// The same stages as the hub's own histograms saw them over the ingest runs.
    pub hub_stages: Vec<crate::hub_stages::HubStage>,
    pub pii_fields_sealed: usize,
    /// Bytes of the framed Avro record the hub produces for one ingest-1k request.
    pub record_bytes: usize,
    pub summary: Vec<String>,
    pub targets: Targets,
    /// (what, passed, detail).
    pub checks: Vec<(String, bool, String)>,
}

fn best<'a>(rows: &'a [Row], scenario: &str) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.scenario == scenario && !r.open_loop)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
}

impl Report {
    /// Ratios of the hub's rows to the ceilings, the summary lines and the targets.
    pub fn compute(&mut self) {
        let best_produce = best(&self.rows, "ceiling-produce").map(|r| (r.rate, r.shape.clone()));
        let best_http = best(&self.rows, "ceiling-http").map(|r| (r.rate, r.shape.clone()));
        let http_at: BTreeMap<usize, f64> = self
            .rows
            .iter()
            .filter(|r| r.scenario == "ceiling-http")
            .filter_map(|r| Some((r.closed_connections?, r.rate)))
            .collect();
        for r in &mut self.rows {
            if !(r.scenario.starts_with("ingest") || r.scenario == "plain-pipeline") || r.open_loop
            {
                continue;
            }
            // The HTTP ceiling at the same connection count; the producer's best shape.
            let http = r
                .closed_connections
                .and_then(|c| http_at.get(&c).copied())
                .or(best_http.as_ref().map(|b| b.0));
            let ceiling = match (http, best_produce.as_ref().map(|b| b.0)) {
                (Some(h), Some(p)) => Some(h.min(p)),
                (h, p) => h.or(p),
            };
            r.ratio = ceiling.map(|c| (r.rate / c, c));
        }
        if let Some((rate, shape)) = &best_http {
            self.summary.push(format!(
                "ceiling-http, best: {rate:.0} requests/s ({shape})"
            ));
        }
        if let Some((rate, shape)) = &best_produce {
            self.summary.push(format!(
                "ceiling-produce, best of its shapes: {rate:.0} records/s ({shape})"
            ));
        }
        let ceiling = match (&best_http, &best_produce) {
            (Some(h), Some(p)) => Some(h.0.min(p.0)),
            (h, p) => h.as_ref().or(p.as_ref()).map(|b| b.0),
        };
        for scenario in ["plain-pipeline", "ingest-1k", "ingest-1k-xml-gbk"] {
            if let Some(b) = best(&self.rows, scenario) {
                let ratio = ceiling.map(|c| b.rate / c);
                self.summary.push(format!(
                    "{scenario}, best: {:.0} requests/s ({}), p99 {:.2} ms; ratio to min(ceilings) {}",
                    b.rate,
                    b.shape,
                    b.latencies.ms(0.99),
                    ratio.map_or("n/a".into(), |r| format!("{r:.3}"))
                ));
                if scenario == "ingest-1k" {
                    if let Some(r) = ratio {
                        self.targets.lines.push(format!(
                            "throughput: ingest-1k / min(ceiling-http, ceiling-produce) = {r:.3} (target ≥ 0.8): {}",
                            if r >= 0.8 { "met" } else { "not met" }
                        ));
                        self.targets.json.insert("ingest_ratio".into(), json!(r));
                    }
                }
            }
        }
        // The hub against the cost of the work itself, at the same connection count.
        let plain_at: BTreeMap<usize, f64> = self
            .rows
            .iter()
            .filter(|r| r.scenario == "plain-pipeline" && !r.open_loop)
            .filter_map(|r| Some((r.closed_connections?, r.rate)))
            .collect();
        for r in self
            .rows
            .iter()
            .filter(|r| r.scenario == "ingest-1k" && !r.open_loop)
        {
            let Some((c, plain)) = r
                .closed_connections
                .and_then(|c| Some((c, *plain_at.get(&c)?)))
            else {
                continue;
            };
            let ratio = r.rate / plain;
            self.targets.lines.push(format!(
                "against the work itself: ingest-1k / plain-pipeline at c={c} = {ratio:.3} ({:.0} / {plain:.0} requests/s; target ≥ 0.8 with SQLite, ≥ 0.6 with PostgreSQL): {}",
                r.rate,
                if ratio >= 0.8 { "met" } else { "not met" }
            ));
            self.targets
                .json
                .insert(format!("ingest_to_plain_c{c}"), json!(ratio));
        }
        let open = |s: &str| self.rows.iter().find(|r| r.scenario == s && r.open_loop);
        if let (Some(hub), Some(broker)) = (open("ingest-1k"), open("broker-open")) {
            let (h, b) = (hub.latencies.ms(0.99), broker.latencies.ms(0.99));
            self.targets.lines.push(format!(
                "latency at half of the maximum load ({}): ingest-1k p99 {h:.2} ms, the broker's own p99 {b:.2} ms, difference {:.2} ms (target ≤ 5 ms): {}",
                hub.shape,
                h - b,
                if h - b <= 5.0 { "met" } else { "not met" }
            ));
            self.targets
                .json
                .insert("p99_difference_ms".into(), json!(h - b));
        }
        let peak = self
            .rows
            .iter()
            .filter(|r| r.sut == "hub")
            .filter_map(|r| {
                Some((
                    r.sut_usage?.peak_rss_mb,
                    r.shape.clone(),
                    r.scenario.clone(),
                ))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((mb, shape, scenario)) = peak {
            self.targets.lines.push(format!(
                "memory: hub peak RSS {mb:.0} MB (largest, at {scenario} {shape}; target ≤ 200 MB at maximum load): {}",
                if mb <= 200.0 { "met" } else { "not met" }
            ));
            self.targets
                .json
                .insert("hub_peak_rss_mb".into(), json!(mb));
        }
        // Where the time of one request goes, from the stages measured in-process.
        let on_path: f64 = self
            .stages
            .iter()
            .filter(|s| s.on_ingest_path)
            .map(|s| s.cpu_us.unwrap_or(s.mean_us))
            .sum();
        if on_path > 0.0 {
            let cores = std::thread::available_parallelism().map_or(1, |p| p.get()) as f64;
            let hub_cpu = self
                .rows
                .iter()
                .filter(|r| r.scenario == "ingest-1k" && !r.open_loop)
                .filter_map(|r| Some((r.cpu_us_per_request()?, r.shape.clone())))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            self.summary.push(format!(
                "stages on the ingest-1k path (verify, nonce claim, map, seal, encode, frame, produce): {on_path:.0} µs CPU per request in-process, i.e. at most {:.0} requests/s on {cores} cores if nothing else ran{}",
                cores * 1e6 / on_path,
                hub_cpu.map_or(String::new(), |(us, shape)| format!(
                    "; the live hub used {us:.0} µs CPU per request ({shape})"
                ))
            ));
        }
    }

    /// Adds the checks that say the run produced numbers: every row measured something at a
    /// nonzero rate and every request was answered 200 (acknowledged), every stage ran.
    pub fn check_rows(&mut self) {
        for r in &self.rows {
            let what = format!("{} {}", r.scenario, r.shape);
            let ok = r.measured > 0 && r.rate > 0.0 && r.rate.is_finite();
            self.checks.push((
                format!("{what}: numbers"),
                ok,
                format!("{} measured, {:.0}/s", r.measured, r.rate),
            ));
            self.checks.push((
                format!("{what}: every request answered 200"),
                r.failed() == 0,
                format!(
                    "{} sent, {} not 200: {:?} (0 = no answer)",
                    r.sent,
                    r.failed(),
                    r.failures
                ),
            ));
        }
        for s in &self.stages {
            let ok = s.ops > 0 && s.per_s.is_finite() && s.per_s > 0.0 && s.mean_us.is_finite();
            self.checks.push((
                format!("stage {}: numbers", s.name),
                ok,
                format!("{} ops, {:.1} µs mean", s.ops, s.mean_us),
            ));
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.1)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let f = |v: f64| {
            if v.is_finite() {
                format!("{v:.2}")
            } else {
                "–".into()
            }
        };
        let u =
            |u: &Option<ProcUsage>, g: fn(&ProcUsage) -> String| u.as_ref().map_or("–".into(), g);
        md.push_str("| scenario | shape | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | not 200 | process under test | its CPU, cores (kernel share) | its CPU µs/req | its peak RSS MB | generator CPU | broker CPU | ratio to ceiling |\n");
        md.push_str(
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let l = &r.latencies;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.shape,
                r.measured,
                r.rate,
                f(l.ms(0.5)),
                f(l.ms(0.9)),
                f(l.ms(0.99)),
                f(l.ms(1.0)),
                r.failed(),
                r.sut,
                u(&r.sut_usage, |u| format!(
                    "{:.2} ({:.0}% sys)",
                    u.cores,
                    100.0 * u.system_s / u.cpu_s.max(1e-9)
                )),
                r.cpu_us_per_request().map_or("–".into(), |v| format!("{v:.0}")),
                u(&r.sut_usage, |u| format!("{:.0}", u.peak_rss_mb)),
                u(&r.generator, |u| format!("{:.2}", u.cores)),
                u(&r.broker, |u| format!("{:.2}", u.cores)),
                r.ratio.map_or("–".into(), |(r, _)| format!("{r:.3}")),
            );
        }
        if !self.summary.is_empty() {
            md.push('\n');
            for s in &self.summary {
                let _ = writeln!(md, "- {s}");
            }
        }
        if !self.targets.lines.is_empty() {
            md.push_str("\nTargets (reported, not asserted):\n\n");
            for s in &self.targets.lines {
                let _ = writeln!(md, "- {s}");
            }
        }
        if !self.stages.is_empty() {
            let _ = writeln!(
                md,
                "\nPer-stage costs, in-process (one thread for CPU stages; {} personal fields sealed per record; the record produced is {} bytes):\n",
                self.pii_fields_sealed, self.record_bytes
            );
            md.push_str(
                "| stage | calls | ops | mean µs | p50 µs | p99 µs | per second | CPU µs/op |\n",
            );
            md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
            for s in &self.stages {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
                    s.name,
                    s.calls,
                    s.ops,
                    s.mean_us,
                    s.p50_us,
                    s.p99_us,
                    s.per_s,
                    s.cpu_us.map_or("–".into(), |c| format!("{c:.1}")),
                );
            }
        }
        if !self.hub_stages.is_empty() {
            md.push_str(
                "\nPer-stage costs from the hub's own histograms (`hub_ingest_stage_seconds`, every request of the ingest runs above, at their concurrency; quantiles estimated from the buckets):\n\n",
            );
            md.push_str(
                "| stage | count | mean µs | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n",
            );
            for s in &self.hub_stages {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {:.1} | {:.1} |",
                    s.stage, s.count, s.mean_us, s.p50_us, s.p99_us
                );
            }
        }
        md
    }

    pub fn checks_text(&self) -> String {
        let mut out = String::new();
        for (what, ok, detail) in &self.checks {
            let _ = writeln!(
                out,
                "{} {what} ({detail})",
                if *ok { "ok  " } else { "FAIL" }
            );
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "meta": self.meta,
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "stages": self.stages.iter().map(|s| json!({
                "stage": s.name, "calls": s.calls, "ops": s.ops, "mean_us": s.mean_us,
                "p50_us": s.p50_us, "p99_us": s.p99_us, "per_s": s.per_s, "cpu_us_per_op": s.cpu_us,
                "on_ingest_path": s.on_ingest_path,
            })).collect::<Vec<_>>(),
            "hub_stages": self.hub_stages.iter().map(|s| json!({
                "stage": s.stage, "count": s.count, "mean_us": s.mean_us,
                "p50_us": s.p50_us, "p99_us": s.p99_us,
            })).collect::<Vec<_>>(),
            "pii_fields_sealed_per_record": self.pii_fields_sealed,
            "record_bytes": self.record_bytes,
            "summary": self.summary,
            "targets": self.targets.json,
            "checks": self.checks.iter().map(|(w, ok, d)| json!({"check": w, "passed": ok, "detail": d})).collect::<Vec<_>>(),
            "passed": self.passed(),
        })
    }
}
