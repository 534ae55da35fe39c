//! Per-stage costs as the hub itself measured them: its `hub_ingest_stage_seconds` histogram
//! (verify, nonce_claim, decrypt, map, seal, encode, receipt, produce), scraped from `/metrics`
//! after the ingest runs. These cover every request of the run, under its real concurrency,
//! unlike the in-process stage loop (`stages.rs`), which isolates one stage at a time.

use std::collections::BTreeMap;

/// One stage over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct HubStage {
    pub stage: String,
    pub count: u64,
    pub mean_us: f64,
    /// Estimated from the buckets the way Prometheus' `histogram_quantile` does.
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Reads the stages out of a Prometheus text exposition.
pub fn parse(exposition: &str) -> Vec<HubStage> {
    const NAME: &str = "hub_ingest_stage_seconds";
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in exposition.lines().filter(|l| l.starts_with(NAME)) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let label = |key: &str| {
            series
                .split_once('{')
                .and_then(|(_, labels)| {
                    labels.trim_end_matches('}').split(',').find_map(|kv| {
                        kv.split_once('=')
                            .filter(|(k, _)| *k == key)
                            .map(|(_, v)| v.trim_matches('"').to_string())
                    })
                })
                .unwrap_or_default()
        };
        let stage = label("stage");
        if series.starts_with(&format!("{NAME}_sum")) {
            sums.insert(stage, value);
        } else if series.starts_with(&format!("{NAME}_count")) {
            counts.insert(stage, value as u64);
        } else if series.starts_with(&format!("{NAME}_bucket")) {
            let le = label("le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            buckets.entry(stage).or_default().push((le, value));
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(stage, count)| {
            let sum = sums.get(&stage).copied().unwrap_or_default();
            let mut b = buckets.remove(&stage).unwrap_or_default();
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            HubStage {
                mean_us: sum / count as f64 * 1e6,
                p50_us: quantile(&b, 0.5) * 1e6,
                p99_us: quantile(&b, 0.99) * 1e6,
                stage,
                count,
            }
        })
        .collect()
}

/// `histogram_quantile` over cumulative `(upper bound, count)` buckets: linear within the
/// bucket the rank falls in; the highest finite bound when it falls in `+Inf`.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return lower.0;
            }
            let width = count - lower.1;
            return if width <= 0.0 {
                le
            } else {
                lower.0 + (le - lower.0) * (rank - lower.1) / width
            };
        }
        lower = (le, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_read_with_their_mean_and_quantiles() {
        let text = "\
# TYPE hub_ingest_stage_seconds histogram
hub_ingest_stage_seconds_bucket{stage=\"map\",le=\"0.0001\"} 0
hub_ingest_stage_seconds_bucket{stage=\"map\",le=\"0.0002\"} 50
hub_ingest_stage_seconds_bucket{stage=\"map\",le=\"0.0004\"} 100
hub_ingest_stage_seconds_bucket{stage=\"map\",le=\"+Inf\"} 100
hub_ingest_stage_seconds_sum{stage=\"map\"} 0.02
hub_ingest_stage_seconds_count{stage=\"map\"} 100
hub_ingest_stage_seconds_bucket{stage=\"seal\",le=\"+Inf\"} 0
hub_ingest_stage_seconds_sum{stage=\"seal\"} 0
hub_ingest_stage_seconds_count{stage=\"seal\"} 0
hub_other_total 3
";
        let stages = parse(text);
        assert_eq!(stages.len(), 1, "a stage that never ran is left out");
        let map = &stages[0];
        assert_eq!((map.stage.as_str(), map.count), ("map", 100));
        assert!((map.mean_us - 200.0).abs() < 1e-6);
        // The 50th of 100 falls at the top of the (100 µs, 200 µs] bucket.
        assert!((map.p50_us - 200.0).abs() < 1e-6, "{map:?}");
        // The 99th: 49 of the 50 in (200 µs, 400 µs] → 200 + 200 × 49/50.
        assert!((map.p99_us - 396.0).abs() < 1e-6, "{map:?}");
    }
}
